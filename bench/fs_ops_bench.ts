/**
 * `deno task bench:micro` (second file): what Deno's file system calls cost per file of a folder
 * transfer, under the scoped permissions ferry runs with (`--allow-read` and `--allow-write` of the
 * temporary folder only, as `ferry serve DIR` gets its folder).
 *
 * - one call made in place (`lstatSync`, `readSync` of 1 KiB, `seekSync`) against the same call
 *   handed to Deno's thread pool (`lstat`, `read`, `seek`): the hand-off, not the call, is most of
 *   the cost of the latter;
 * - receiving one small file the way ferry commits it (see `lib/store/partial_file.ts`): create the
 *   partial name (0600), lock, write 1 KiB, flush (`fdatasync`), set mode and time, link to the
 *   final name, unlink the partial name; with the flush in the pool (as ferry does, so that the
 *   flushes of a group overlap), in place, and without a flush, which shows what durability costs.
 *
 * These are the floor of ferry's per-file work on each side, beside the protocol's own.
 *
 * @module
 */

const ROOT = Deno.makeTempDirSync({ prefix: "ferry-fs-ops-" });
const SMALL = new Uint8Array(1024).map((_, index) => (index * 13) & 0xff);
const PROBE = `${ROOT}/probe`;
Deno.writeFileSync(PROBE, SMALL);
const probe = Deno.openSync(PROBE, { read: true });
const readBuffer = new Uint8Array(SMALL.length);
/** Folders the committed files are spread over, as in the benchmark's tree. */
const FOLDERS = 50;
for (let folder = 0; folder < FOLDERS; folder++) Deno.mkdirSync(`${ROOT}/dir-${folder}`);
let committed = 0;

globalThis.addEventListener("unload", () => {
  probe.close();
  Deno.removeSync(ROOT, { recursive: true });
});

Deno.bench("lstat in place (lstatSync)", { group: "lookup", baseline: true }, () => {
  Deno.lstatSync(PROBE);
});
Deno.bench("lstat in the thread pool (await lstat)", { group: "lookup" }, async () => {
  await Deno.lstat(PROBE);
});

Deno.bench("seek + read 1 KiB in place", { group: "read", baseline: true }, () => {
  probe.seekSync(0, Deno.SeekMode.Start);
  probe.readSync(readBuffer);
});
Deno.bench("seek + read 1 KiB in the thread pool", { group: "read" }, async () => {
  await probe.seek(0, Deno.SeekMode.Start);
  await probe.read(readBuffer);
});

/** Receives one 1 KiB file the way a commit does; `flush` says how its bytes are made durable. */
async function commitSmallFile(flush: "pool" | "in place" | "none"): Promise<void> {
  const index = committed++;
  const folder = `${ROOT}/dir-${index % FOLDERS}`;
  const partial = `${folder}/.ferry-partial.file-${index}`;
  const target = `${folder}/file-${index}`;
  const file = Deno.openSync(partial, { read: true, write: true, createNew: true, mode: 0o600 });
  try {
    file.tryLockSync(true);
    file.writeSync(SMALL);
    if (flush === "pool") await file.syncData();
    else if (flush === "in place") file.syncDataSync();
    Deno.chmodSync(partial, 0o644);
    const now = new Date();
    file.utimeSync(now, now);
  } finally {
    file.close();
  }
  Deno.linkSync(partial, target);
  Deno.removeSync(partial);
}

Deno.bench("commit a 1 KiB file, flush in the thread pool (ferry)", {
  group: "commit",
  baseline: true,
}, async () => {
  await commitSmallFile("pool");
});
Deno.bench("commit a 1 KiB file, flush in place", { group: "commit" }, async () => {
  await commitSmallFile("in place");
});
Deno.bench("commit a 1 KiB file, no flush", { group: "commit" }, async () => {
  await commitSmallFile("none");
});
