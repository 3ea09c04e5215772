/**
 * The small-file part of `deno task bench`: a tree of many 1 KiB files in 50 folders, moved by
 * `ferry get HOST tree -o OUT` / `ferry put HOST tree` and by `sftp -r` (get and put), alternately.
 *
 * As for single files, the time is the wall time of the whole client process (start-up and
 * handshake included), the client's peak RSS and CPU come from GNU time, and the ferry server is a
 * fresh `ferry serve` per run. Every received tree is checked: the number of files, and one SHA-256
 * over every file's relative path, size and content in path order, against the source's.
 *
 * Permissions: as bench.ts (run, read and write in the temporary folder, net 127.0.0.1).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { DENO, FERRY_V8_FLAGS, MAIN, startServe } from "../tests/_helpers.ts";
import type { PrivateSshd } from "./_openssh.ts";
import {
  cell,
  type CpuSeconds,
  expectSuccess,
  formatCpu,
  formatMB,
  formatSize,
  median,
  readCpuSeconds,
  readPeakRss,
  type RssMethod,
  runMeasured,
  syncDisk,
} from "./_process.ts";

/** Folder of the tree inside the served folder, and its name on the command lines. */
export const TREE_NAME = "tree";
/** Folders the files are spread over (fewer when there are fewer files). */
export const TREE_FOLDERS = 50;
/** Size of every file of the tree. */
export const TREE_FILE_SIZE = 1024;

/** What the tree runs need from the benchmark's set-up (bench.ts's `Bench` has all of it). */
export interface TreeSetup {
  /** The folder ferry serves and sftp reads from / writes to; the tree is `files/tree`. */
  files: string;
  /** Where downloads land. */
  received: string;
  /** Folder for GNU time's reports. */
  scratch: string;
  codeFile: string;
  method: RssMethod;
  /** The private sshd, or undefined when ferry is measured alone. */
  sshd: PrivateSshd | undefined;
  /** Deno permission flags of `ferry serve`. */
  serverPermissions: readonly string[];
}

/** Number of files, their total size and one SHA-256 over paths, sizes and contents. */
export interface TreeDigest {
  files: number;
  bytes: number;
  sha256: string;
}

/** The source tree: where it is and what every copy must match. */
export interface TreeSource {
  root: string;
  digest: TreeDigest;
}

type Tool = "ferry" | "sftp";
type Direction = "download" | "upload";

/** One timed tree run of one tool. */
export interface TreeSample {
  tool: Tool;
  direction: Direction;
  seconds: number;
  clientRss: number | undefined;
  /** Peak RSS of the ferry server (sftp's sshd is not measured). */
  serverRss: number | undefined;
  clientCpu: CpuSeconds | undefined;
  serverCpu: CpuSeconds | undefined;
  /** Busy CPU seconds of the whole machine while the client ran. */
  machineBusy: number | undefined;
}

/** Ferry's summary of the tree runs, for the target lines. */
export interface TreeSummary {
  /** sftp's median time over ferry's, per direction (absent without sftp). */
  ratios: { direction: Direction; ratio: number }[];
  /** Highest client and server RSS of ferry's tree runs (Infinity when one was unreadable). */
  peakClient: number;
  peakServer: number;
}

/** Deterministic content of file `index`: xorshift32 seeded by the index. */
function fileContent(index: number): Uint8Array {
  const bytes = new Uint8Array(TREE_FILE_SIZE);
  let state = (Math.imul(index + 1, 0x9e3779b1) >>> 0) || 1;
  for (let offset = 0; offset < bytes.length; offset += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[offset] = state & 0xff;
    bytes[offset + 1] = (state >>> 8) & 0xff;
    bytes[offset + 2] = (state >>> 16) & 0xff;
    bytes[offset + 3] = (state >>> 24) & 0xff;
  }
  return bytes;
}

/** Runs `task` on every item, `width` at a time, in order of start. */
async function inBatches<T>(items: readonly T[], width: number, task: (item: T) => Promise<void>) {
  for (let start = 0; start < items.length; start += width) {
    await Promise.all(items.slice(start, start + width).map(task));
  }
}

/**
 * Creates `files/tree` with `count` files of 1 KiB (`dir-NN/file-NNNN.bin`, file i in folder
 * i mod 50) and returns its digest.
 */
export async function makeTree(files: string, count: number): Promise<TreeSource> {
  const started = performance.now();
  const root = join(files, TREE_NAME);
  const folders = Math.min(TREE_FOLDERS, count);
  const folderName = (index: number) => `dir-${String(index).padStart(2, "0")}`;
  for (let index = 0; index < folders; index++) {
    await Deno.mkdir(join(root, folderName(index)), { recursive: true });
  }
  const indexes = Array.from({ length: count }, (_, index) => index);
  await inBatches(indexes, 64, (index) =>
    Deno.writeFile(
      join(root, folderName(index % folders), `file-${String(index).padStart(4, "0")}.bin`),
      fileContent(index),
    ));
  const digest = await digestTree(root);
  console.log(
    `made ${TREE_NAME}/ (${count} files of ${
      formatSize(TREE_FILE_SIZE)
    } in ${folders} folders) in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return { root, digest };
}

/** Relative paths (with `/`) of every file under `root`, sorted. */
async function listFiles(root: string): Promise<string[]> {
  const paths: string[] = [];
  const walk = async (prefix: string) => {
    for await (const entry of Deno.readDir(join(root, prefix))) {
      const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else paths.push(path);
    }
  };
  await walk("");
  return paths.sort();
}

/**
 * Reads every file under `root` (which also brings the tree into the page cache) and hashes, in
 * path order, each one's relative path, size and content.
 */
export async function digestTree(root: string): Promise<TreeDigest> {
  const paths = await listFiles(root);
  const hash = createHash("sha256");
  let bytes = 0;
  for (let start = 0; start < paths.length; start += 64) {
    const batch = paths.slice(start, start + 64);
    const contents = await Promise.all(batch.map((path) => Deno.readFile(join(root, path))));
    for (const [index, content] of contents.entries()) {
      hash.update(`${batch[index]}\0${content.length}\0`);
      hash.update(content);
      bytes += content.length;
    }
  }
  return { files: paths.length, bytes, sha256: hash.digest("hex") };
}

/**
 * Received trees set aside until every tree run is over. Removing one right away would make the
 * next run pay for it: ext4 skips recently freed inodes when it allocates new ones, and 5,000 just
 * freed made every file the next run created cost about a millisecond more, for whichever tool
 * ran next.
 */
const setAside: string[] = [];

/** Compares the tree at `path` with the source, then sets it aside. Throws on a difference. */
async function verifyTree(source: TreeSource, path: string, what: string): Promise<void> {
  const actual = await digestTree(path);
  const aside = join(dirname(path), `.set-aside-${setAside.length}`);
  await Deno.rename(path, aside);
  setAside.push(aside);
  const expected = source.digest;
  if (actual.files !== expected.files || actual.sha256 !== expected.sha256) {
    throw new Error(
      `TREE MISMATCH after ${what}: expected ${expected.files} files, ${expected.bytes} B, ` +
        `SHA-256 ${expected.sha256}; got ${actual.files} files, ${actual.bytes} B, ` +
        `SHA-256 ${actual.sha256}`,
    );
  }
}

/** `ferry get HOST tree -o OUT` or `ferry put HOST tree` against a fresh `ferry serve`. */
async function ferryTreeRun(
  setup: TreeSetup,
  source: TreeSource,
  direction: Direction,
): Promise<TreeSample> {
  await using server = await startServe(setup.files, {
    codeFile: setup.codeFile,
    permissions: [...FERRY_V8_FLAGS, ...setup.serverPermissions],
  });
  const out = join(setup.received, "ferry-tree");
  const common = ["run", "--no-prompt", ...FERRY_V8_FLAGS, `--allow-net=127.0.0.1:${server.port}`];
  const tail = ["--quiet", "--code-file", setup.codeFile];
  let args: string[];
  let landed: string;
  if (direction === "download") {
    await Deno.mkdir(out, { recursive: true });
    args = [
      ...common,
      `--allow-read=${setup.codeFile},${out}`,
      `--allow-write=${out}`,
      MAIN,
      "get",
      server.address,
      TREE_NAME,
      "-o",
      out,
      ...tail,
    ];
    landed = join(out, TREE_NAME);
  } else {
    args = [
      ...common,
      `--allow-read=${setup.codeFile},${source.root}`,
      MAIN,
      "put",
      server.address,
      source.root,
      ...tail,
    ];
    landed = join(setup.files, `uploaded_${TREE_NAME}`);
  }
  const result = await runMeasured(DENO, args, {
    method: setup.method,
    scratch: setup.scratch,
    env: { NO_COLOR: "1" },
    machineCpu: true,
  });
  const serverRss = await readPeakRss(server.child.pid);
  const serverCpu = await readCpuSeconds(server.child.pid);
  await server.stop("SIGTERM");
  expectSuccess(result, `ferry tree ${direction}`, server.log());
  await verifyTree(source, landed, `ferry tree ${direction}`);
  return {
    tool: "ferry",
    direction,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss,
    clientCpu: result.cpu,
    serverCpu,
    machineBusy: result.machineBusy,
  };
}

/** `sftp -b` with `get -r` or `put -r` of the tree against the private sshd. */
async function sftpTreeRun(
  setup: TreeSetup,
  source: TreeSource,
  direction: Direction,
): Promise<TreeSample> {
  const sshd = setup.sshd!;
  const landed = direction === "download"
    ? join(setup.received, "sftp-tree")
    : join(setup.files, `sftp_${TREE_NAME}`);
  const line = direction === "download"
    ? `get -r "${source.root}" "${landed}"`
    : `put -r "${source.root}" "${landed}"`;
  const args = await sshd.batch(`tree-${direction}`, [line]);
  const result = await runMeasured("sftp", args, {
    method: setup.method,
    scratch: setup.scratch,
    machineCpu: true,
  });
  expectSuccess(result, `sftp tree ${direction}`, sshd.log());
  await verifyTree(source, landed, `sftp tree ${direction}`);
  return {
    tool: "sftp",
    direction,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss: undefined,
    clientCpu: result.cpu,
    serverCpu: undefined,
    machineBusy: result.machineBusy,
  };
}

/** Files each probe of {@link waitForQuietDisk} creates. */
const PROBE_FILES = 200;
/** A probe this fast per file (µs) finds the disk quiet: about 3x a quiet disk's, measured here. */
const QUIET_MICROSECONDS_PER_FILE = 150;
/**
 * The longest wait for a quiet disk before the first tree run goes ahead anyway: after another
 * benchmark's clean-up (some 150,000 files) creation stayed slow here for over 2 minutes.
 */
const FIRST_QUIET_WAIT_MAX_SECONDS = 300;
/** The same before each later run (the runs themselves delete nothing until the end). */
const QUIET_WAIT_MAX_SECONDS = 20;
let probes = 0;

/**
 * Waits until creating files is as cheap as on a quiet disk again, and says how long it waited.
 * On ext4 without a journal (this VM's), after many files were deleted every new inode is found by
 * skipping each lately freed one, for any program: 0.3-0.8 ms of kernel time per file for a minute
 * or more (`recently_deleted`, seen with `perf`), which once made `sftp -r` 2.5x slower in the run
 * after another benchmark's clean-up. Each probe creates {@link PROBE_FILES} files of 1 KiB in a
 * new folder of `scratch`, deleted only with the rest at the end.
 */
async function waitForQuietDisk(scratch: string, maxSeconds: number): Promise<void> {
  const started = performance.now();
  const bytes = new Uint8Array(1024);
  while (true) {
    const folder = join(scratch, `disk-probe-${probes++}`);
    await Deno.mkdir(folder, { recursive: true });
    const probeStarted = performance.now();
    for (let index = 0; index < PROBE_FILES; index++) {
      Deno.writeFileSync(join(folder, `probe-${index}`), bytes);
    }
    const perFile = (performance.now() - probeStarted) * 1000 / PROBE_FILES;
    const waited = (performance.now() - started) / 1000;
    if (perFile <= QUIET_MICROSECONDS_PER_FILE || waited >= maxSeconds) {
      if (waited >= 1) {
        console.log(
          `  (waited ${waited.toFixed(0)} s for file creation to be cheap again: ` +
            `${perFile.toFixed(0)} µs per file)`,
        );
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
}

/**
 * Downloads then uploads the tree with ferry and sftp alternately, `runs` times each, the order
 * swapped every run; before each run, `sync`, a wait for file creation to be cheap (see
 * {@link waitForQuietDisk}) and a read of the whole source tree (page cache). Prints a line per
 * run.
 */
export async function measureTrees(
  setup: TreeSetup,
  source: TreeSource,
  runs: number,
): Promise<TreeSample[]> {
  const samples: TreeSample[] = [];
  const count = source.digest.files;
  for (const direction of ["download", "upload"] as const) {
    for (let runIndex = 0; runIndex < runs; runIndex++) {
      const order: Tool[] = runIndex % 2 === 0 ? ["ferry", "sftp"] : ["sftp", "ferry"];
      for (const tool of order) {
        if (tool === "sftp" && !setup.sshd) continue;
        await syncDisk();
        await waitForQuietDisk(
          setup.scratch,
          samples.length === 0 ? FIRST_QUIET_WAIT_MAX_SECONDS : QUIET_WAIT_MAX_SECONDS,
        );
        await digestTree(source.root);
        const sample = tool === "ferry"
          ? await ferryTreeRun(setup, source, direction)
          : await sftpTreeRun(setup, source, direction);
        samples.push(sample);
        console.log(
          `  ${cell(tool, 5)} ${cell(direction, 8)} tree run ${runIndex + 1}: ` +
            `${sample.seconds.toFixed(2)} s, ${(count / sample.seconds).toFixed(0)} files/s, ` +
            `client ${formatMB(sample.clientRss)} ${formatCpu(sample.clientCpu)}` +
            (tool === "ferry"
              ? `, server ${formatMB(sample.serverRss)} ${formatCpu(sample.serverCpu)}`
              : "") +
            `, machine busy ${sample.machineBusy?.toFixed(2) ?? "?"} s`,
        );
      }
    }
  }
  for (const path of setAside.splice(0)) await Deno.remove(path, { recursive: true });
  return samples;
}

/**
 * Prints the tree table (median seconds, files/s, ratio to sftp = sftp's time over the tool's,
 * peak RSS) and returns what the target lines need.
 */
export function reportTrees(samples: TreeSample[], source: TreeSource, runs: number): TreeSummary {
  const count = source.digest.files;
  console.log(
    `\nTree of ${count} files of ${formatSize(TREE_FILE_SIZE)} (${TREE_NAME}/, ` +
      `${Math.min(TREE_FOLDERS, count)} folders): median of ${runs} runs; seconds of client wall ` +
      `time (start-up included); vs sftp = sftp's time / the tool's (above 1: faster than sftp).`,
  );
  const header = ["tool", "direction", "seconds", "files/s", "vs sftp", "client RSS", "server RSS"];
  const widths = [5, 9, 7, 7, 7, 10, 10];
  const line = (cells: string[]) =>
    cells.map((text, index) => cell(text, widths[index]!, index >= 2)).join("  ");
  console.log(line(header));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  const summary: TreeSummary = { ratios: [], peakClient: 0, peakServer: 0 };
  for (const direction of ["download", "upload"] as const) {
    const of = (tool: Tool) => samples.filter((s) => s.tool === tool && s.direction === direction);
    const seconds = (tool: Tool) => median(of(tool).map((s) => s.seconds));
    const sftpSeconds = seconds("sftp");
    for (const tool of ["ferry", "sftp"] as const) {
      if (of(tool).length === 0) continue;
      const ratio = sftpSeconds / seconds(tool);
      if (tool === "ferry" && Number.isFinite(ratio)) summary.ratios.push({ direction, ratio });
      const peak = (pick: (s: TreeSample) => number | undefined) =>
        Math.max(...of(tool).map((s) => pick(s) ?? Infinity));
      const clientRss = peak((s) => s.clientRss);
      const serverRss = peak((s) => s.serverRss);
      if (tool === "ferry") {
        summary.peakClient = Math.max(summary.peakClient, clientRss);
        summary.peakServer = Math.max(summary.peakServer, serverRss);
      }
      console.log(line([
        tool,
        direction,
        seconds(tool).toFixed(2),
        (count / seconds(tool)).toFixed(0),
        Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
        Number.isFinite(clientRss) ? formatMB(clientRss) : "?",
        tool === "ferry" ? (Number.isFinite(serverRss) ? formatMB(serverRss) : "?") : "-",
      ]));
    }
  }
  return summary;
}
