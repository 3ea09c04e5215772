/**
 * A peer that holds the right code (and one that does not) trying to crash, exhaust or confuse the
 * server, or to make it touch anything outside the served folder: absurd sizes, offsets and
 * orders in uploads, races between connections, swapped folders, deep and wide trees, link and
 * mount loops, oversized and pipelined messages, dripping clients, crowds and penalties.
 *
 * Every case checks that only the offending request or connection fails, that the server keeps
 * serving an honest client, that nothing appears outside the folder and that no partial file is
 * left where none should be. Memory is measured on a real `ferry serve` process (its peak
 * resident size from `/proc`), so the test's own garbage does not count.
 */
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { AuthenticationError, ConnectionError } from "../lib/errors.ts";
import { MAX_RECORD_PLAINTEXT, RecordType } from "../lib/protocol/framing.ts";
import { encodeMessage, type ListEntry, type ServerMessage } from "../lib/protocol/messages.ts";
import { MAX_CONTROL_BYTES, MAX_LISTING_BATCH } from "../lib/protocol/constants.ts";
import { startServe, tempDir } from "./_helpers.ts";
import {
  assertStillServes,
  exists,
  type ManualSession,
  manualSession,
  partialFiles,
  readUntilClosed,
  startTestServer,
  writeRaw,
} from "./_hostile.ts";

const MiB = 1024 * 1024;
const encoder = new TextEncoder();

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `length` bytes that differ with `seed`. */
function bytesOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = (index * 31 + seed * 7) & 0xff;
  return bytes;
}

/** The log line prefix of a connection: `127.0.0.1:<its local port>`. */
function peerOf(session: ManualSession): string {
  return `127.0.0.1:${(session.conn.localAddr as Deno.NetAddr).port} `;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The start of a log line about `peer` (from {@link peerOf}): once authenticated, its code. */
function at(peer: string): string {
  return `${escape(peer)}(?:code=\\S+ )?`;
}

/** The next message, which must be of kind `t`. */
async function expectMessage<T extends ServerMessage["t"]>(
  session: ManualSession,
  t: T,
): Promise<Extract<ServerMessage, { t: T }>> {
  const message = await session.next();
  strictEqual(message?.t, t, `expected ${t}, got ${JSON.stringify(message)}`);
  return message as Extract<ServerMessage, { t: T }>;
}

/** The error code of the next message, which must be an error. */
async function expectError(session: ManualSession): Promise<string> {
  return (await expectMessage(session, "error")).code;
}

/** Sends `put`, then reads the server's first answer. */
async function announce(
  session: ManualSession,
  name: string,
  size: number,
  dir = "",
): Promise<ServerMessage | undefined> {
  await session.send({ t: "put", dir, name, size, mode: 0o644, mtime: 0, force: false });
  return await session.next();
}

/** Sends `bytes` as data records. */
async function sendData(session: ManualSession, bytes: Uint8Array): Promise<void> {
  for (let start = 0; start < bytes.length; start += MAX_RECORD_PLAINTEXT) {
    await session.record(RecordType.data, bytes.subarray(start, start + MAX_RECORD_PLAINTEXT));
  }
}

/** A whole upload of `bytes` from offset 0; returns the server's final answer. */
async function upload(
  session: ManualSession,
  name: string,
  bytes: Uint8Array,
  dir = "",
): Promise<ServerMessage | undefined> {
  strictEqual((await announce(session, name, bytes.length, dir))?.t, "put-ready");
  await session.send({ t: "put-start", offset: 0 });
  await sendData(session, bytes);
  await session.send({ t: "put-end", sha256: sha256(bytes) });
  return await session.next();
}

/** Every entry of a listing, and the size of each batch it came in. */
async function listAll(
  session: ManualSession,
  path: string,
  recursive: boolean,
): Promise<{ entries: ListEntry[]; batches: number[] }> {
  await session.send({ t: "list", path, recursive });
  const entries: ListEntry[] = [];
  const batches: number[] = [];
  while (true) {
    const listing = await expectMessage(session, "listing");
    entries.push(...listing.entries);
    batches.push(listing.entries.length);
    if (listing.done) return { entries, batches };
  }
}

/** The names of a folder's entries, sorted. */
async function namesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** A served folder with an `outside` sibling that must stay untouched. */
async function servedWithOutside() {
  const parent = await tempDir();
  const root = join(parent.path, "served");
  const outside = join(parent.path, "outside");
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  return { parent, root, outside };
}

/**
 * Peak resident memory of a process so far, from `/proc/<pid>/status` (Linux). Read by `cat`:
 * Deno grants files under `/proc` only with `--allow-all`.
 */
async function peakResident(pid: number): Promise<number> {
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  ok(output.success);
  const status = new TextDecoder().decode(output.stdout);
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  ok(kib, "VmHWM in /proc/<pid>/status");
  return Number(kib[1]) * 1024;
}

const onLinux = Deno.build.os === "linux";

// --- Uploads: sizes, offsets and order ------------------------------------------------------

Deno.test("hostile client: a put announcing 2^53-1 bytes and then leaving keeps no file and no empty partial file", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  {
    await using session = await manualSession(server.port, server.secret);
    const ready = await announce(session, "huge.bin", Number.MAX_SAFE_INTEGER);
    deepStrictEqual(ready, { t: "put-ready", offset: 0, prefixSha256: "" });
    await session.send({ t: "put-start", offset: 0 });
    const peer = peerOf(session);
    session.conn.close();
    await server.log.waitFor(new RegExp(`${at(peer)}closed: `));
  }
  deepStrictEqual(await namesIn(dir.path), [], "no file and no partial file");

  // 2^53 is not a safe integer: a protocol violation, refused before anything is opened.
  {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session);
    await session.record(
      RecordType.control,
      encoder.encode(
        `{"t":"put","dir":"","name":"huge.bin","size":${
          2 ** 53
        },"mode":420,"mtime":0,"force":false}`,
      ),
    );
    await readUntilClosed(session.conn);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: Message field "size"`));
  }
  deepStrictEqual(await namesIn(dir.path), []);

  // With a limit, the announcement alone is refused and the session goes on.
  await using limited = await startTestServer(dir.path, { maxUpload: MiB });
  await using session = await manualSession(limited.port, limited.secret);
  strictEqual((await announce(session, "huge.bin", Number.MAX_SAFE_INTEGER))?.t, "error");
  strictEqual((await upload(session, "small.bin", bytesOf(10, 1)))?.t, "put-done");
  deepStrictEqual(await namesIn(dir.path), ["uploaded_small.bin"]);
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a put-start at an offset that was not offered leaves the kept partial file intact", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  const content = bytesOf(3000, 2);
  {
    await using first = await manualSession(server.port, server.secret);
    strictEqual((await announce(first, "r.bin", content.length))?.t, "put-ready");
    await first.send({ t: "put-start", offset: 0 });
    await sendData(first, content.subarray(0, 1000));
    const peer = peerOf(first);
    first.conn.close();
    await server.log.waitFor(new RegExp(`${at(peer)}closed: `));
  }
  const partial = join(dir.path, ".ferry-partial.uploaded_r.bin");
  strictEqual((await Deno.stat(partial)).size, 1000);

  for (const offset of [1001, 999, 3000, 5000]) {
    await using wrong = await manualSession(server.port, server.secret);
    const peer = peerOf(wrong);
    const offer = await announce(wrong, "r.bin", content.length);
    deepStrictEqual(offer, {
      t: "put-ready",
      offset: 1000,
      prefixSha256: sha256(content.subarray(0, 1000)),
    });
    await wrong.send({ t: "put-start", offset });
    await readUntilClosed(wrong.conn);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: Expected put-start at 0 or at`));
    strictEqual((await Deno.stat(partial)).size, 1000, `put-start at ${offset} kept the bytes`);
  }

  // The honest resume still works from the kept bytes.
  await using honest = await manualSession(server.port, server.secret);
  strictEqual((await announce(honest, "r.bin", content.length))?.t, "put-ready");
  await honest.send({ t: "put-start", offset: 1000 });
  await sendData(honest, content.subarray(1000));
  await honest.send({ t: "put-end", sha256: sha256(content) });
  strictEqual((await honest.next())?.t, "put-done");
  deepStrictEqual(await Deno.readFile(join(dir.path, "uploaded_r.bin")), content);
  deepStrictEqual(await partialFiles(dir.path), []);
});

Deno.test("hostile client: records after put-end are refused, and the committed file is exactly what was verified", async (t) => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  const cases: {
    name: string;
    reason: RegExp;
    after: (session: ManualSession) => Promise<void>;
  }[] = [
    {
      name: "a data record",
      reason: /Data record outside an upload/,
      after: (session) => session.record(RecordType.data, bytesOf(100, 9)),
    },
    {
      name: "a second put-end",
      reason: /Message "put-end" outside its place/,
      after: (session) => session.send({ t: "put-end", sha256: "0".repeat(64) }),
    },
    {
      name: "a put-start",
      reason: /Message "put-start" outside its place/,
      after: (session) => session.send({ t: "put-start", offset: 0 }),
    },
  ];
  for (const [index, testCase] of cases.entries()) {
    await t.step(testCase.name, async () => {
      const content = bytesOf(5000, index);
      await using session = await manualSession(server.port, server.secret);
      const peer = peerOf(session);
      strictEqual((await upload(session, `after-${index}.bin`, content))?.t, "put-done");
      await testCase.after(session);
      await readUntilClosed(session.conn);
      await server.log.waitFor(new RegExp(`${at(peer)}closed: .*${testCase.reason.source}`));
      deepStrictEqual(await Deno.readFile(join(dir.path, `uploaded_after-${index}.bin`)), content);
    });
  }
  deepStrictEqual(await partialFiles(dir.path), []);
  await assertStillServes(server.port, server.secret);
});

// --- Races between connections ----------------------------------------------------------------

Deno.test("hostile client: two uploads of one name at once: the second is told busy, then resumes the first one's bytes once it is cut", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  const content = bytesOf(4000, 3);
  await using second = await manualSession(server.port, server.secret);
  {
    await using first = await manualSession(server.port, server.secret);
    strictEqual((await announce(first, "same.bin", content.length))?.t, "put-ready");
    await first.send({ t: "put-start", offset: 0 });
    await sendData(first, content.subarray(0, 1500));

    // While the first is in progress, the second is refused, and so is a forced one.
    strictEqual(await expectError(await announceAnd(second, "same.bin", content.length)), "busy");
    await second.send({
      t: "put",
      dir: "",
      name: "same.bin",
      size: 10,
      mode: 0o644,
      mtime: 0,
      force: true,
    });
    strictEqual(await expectError(second), "busy");
    ok(!await exists(join(dir.path, "uploaded_same.bin")));

    const peer = peerOf(first);
    first.conn.close();
    await server.log.waitFor(new RegExp(`${at(peer)}closed: `));
  }
  // Every byte the first one sent is on disk before the name is free again: it is offered.
  const offer = await announce(second, "same.bin", content.length);
  deepStrictEqual(offer, {
    t: "put-ready",
    offset: 1500,
    prefixSha256: sha256(content.subarray(0, 1500)),
  });
  await second.send({ t: "put-start", offset: 1500 });
  await sendData(second, content.subarray(1500));
  await second.send({ t: "put-end", sha256: sha256(content) });
  strictEqual((await second.next())?.t, "put-done");
  deepStrictEqual(await Deno.readFile(join(dir.path, "uploaded_same.bin")), content);
  deepStrictEqual(await partialFiles(dir.path), []);
});

/** Sends a put and returns the session, for `expectError(await announceAnd(...))`. */
async function announceAnd(session: ManualSession, name: string, size: number) {
  await session.send({ t: "put", dir: "", name, size, mode: 0o644, mtime: 0, force: false });
  return session;
}

Deno.test("hostile client: a name spelled like the hash of a long name does not share its partial file", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  // A long name's partial file is named after the first 32 hex digits of its SHA-256; a short
  // name made of those very digits must not land in the same partial file.
  const long = "L".repeat(250); // its partial name would exceed 255 bytes: it is hashed
  const lookalike = sha256(encoder.encode(long)).slice(0, 32);
  const longContent = bytesOf(3000, 4);
  const otherContent = bytesOf(2000, 5);
  {
    await using victim = await manualSession(server.port, server.secret);
    strictEqual((await announce(victim, `sub/${long}`, longContent.length))?.t, "put-ready");
    await victim.send({ t: "put-start", offset: 0 });
    await sendData(victim, longContent.subarray(0, 1200));
    const peer = peerOf(victim);
    victim.conn.close();
    await server.log.waitFor(new RegExp(`${at(peer)}closed: `));
  }
  await using attacker = await manualSession(server.port, server.secret);
  // Nothing of this name was ever sent: no resume offer (which would leak the length and hash of
  // the other upload), and its upload does not disturb the other one's kept bytes.
  deepStrictEqual(await announce(attacker, `sub/${lookalike}`, otherContent.length), {
    t: "put-ready",
    offset: 0,
    prefixSha256: "",
  });
  await attacker.send({ t: "put-start", offset: 0 });
  await sendData(attacker, otherContent);
  await attacker.send({ t: "put-end", sha256: sha256(otherContent) });
  strictEqual((await attacker.next())?.t, "put-done");

  await using resumed = await manualSession(server.port, server.secret);
  deepStrictEqual(await announce(resumed, `sub/${long}`, longContent.length), {
    t: "put-ready",
    offset: 1200,
    prefixSha256: sha256(longContent.subarray(0, 1200)),
  });
  await resumed.send({ t: "put-start", offset: 1200 });
  await sendData(resumed, longContent.subarray(1200));
  await resumed.send({ t: "put-end", sha256: sha256(longContent) });
  strictEqual((await resumed.next())?.t, "put-done");
  const sub = join(dir.path, "uploaded_sub");
  deepStrictEqual(await Deno.readFile(join(sub, long)), longContent);
  deepStrictEqual(await Deno.readFile(join(sub, lookalike)), otherContent);
  deepStrictEqual(await partialFiles(sub), []);
});

Deno.test("hostile client: a folder made at an upload's name meanwhile makes that upload fail with exists", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  const content = bytesOf(1000, 6);
  await using uploader = await manualSession(server.port, server.secret);
  await using other = await manualSession(server.port, server.secret);
  strictEqual((await announce(uploader, "z", content.length))?.t, "put-ready");
  await uploader.send({ t: "put-start", offset: 0 });
  await sendData(uploader, content);
  await other.send({ t: "mkdir", dir: "", name: "z", mode: 0o755, mtime: 0 });
  strictEqual((await other.next())?.t, "mkdir-done");
  await uploader.send({ t: "put-end", sha256: sha256(content) });
  strictEqual(await expectError(uploader), "exists");
  ok((await Deno.lstat(join(dir.path, "uploaded_z"))).isDirectory, "the folder is untouched");
  deepStrictEqual(await namesIn(join(dir.path, "uploaded_z")), []);
  // The session is still usable.
  strictEqual((await upload(uploader, "z2", content))?.t, "put-done");
});

Deno.test("hostile client: a folder swapped for a link to outside, between or during requests, leads nowhere outside", async () => {
  const { parent, root, outside } = await servedWithOutside();
  await using _parent = parent;
  await Deno.writeTextFile(join(outside, "secret.txt"), "secret");
  await using server = await startTestServer(root);
  await using session = await manualSession(server.port, server.secret);

  // Between requests: the client made the folder, someone on the server swaps it for a link.
  // Every refusal is `not-found`, as for a missing path: answers tell nothing of what is outside.
  await session.send({ t: "mkdir", dir: "", name: "d", mode: 0o755, mtime: 0 });
  strictEqual((await session.next())?.t, "mkdir-done");
  await Deno.rename(join(root, "uploaded_d"), join(root, "moved_d"));
  await Deno.symlink(outside, join(root, "uploaded_d"));
  strictEqual(await expectError(await announceAnd(session, "d/x.txt", 1)), "not-found");
  await session.send({
    t: "put",
    dir: "uploaded_d",
    name: "x.txt",
    size: 1,
    mode: 0o644,
    mtime: 0,
    force: true,
  });
  strictEqual(await expectError(session), "not-found");
  await session.send({ t: "mkdir", dir: "", name: "d/sub", mode: 0o755, mtime: 0 });
  strictEqual(await expectError(session), "not-found");
  await session.send({ t: "list", path: "uploaded_d", recursive: true });
  strictEqual(await expectError(session), "not-found");
  await session.send({ t: "get", path: "uploaded_d/secret.txt", offset: 0, prefixSha256: "" });
  strictEqual(await expectError(session), "not-found");

  // During an upload: the folder is swapped after put-ready. The commit fails; nothing lands
  // outside, not even a partial file.
  const content = bytesOf(2000, 7);
  strictEqual((await announce(session, "e/y.bin", content.length))?.t, "put-ready");
  await Deno.rename(join(root, "uploaded_e"), join(root, "moved_e"));
  await Deno.symlink(outside, join(root, "uploaded_e"));
  await session.send({ t: "put-start", offset: 0 });
  await sendData(session, content);
  await session.send({ t: "put-end", sha256: sha256(content) });
  strictEqual((await session.next())?.t, "error");

  deepStrictEqual(await namesIn(outside), ["secret.txt"], "nothing was written outside");
  strictEqual(await Deno.readTextFile(join(outside, "secret.txt")), "secret");
  deepStrictEqual(await namesIn(parent.path), ["outside", "served"]);
  await assertStillServes(server.port, server.secret);
});

// --- Deep and wide trees, loops ---------------------------------------------------------------

Deno.test("hostile client: a 1,000-folder-deep mkdir and its recursive listing are answered in seconds", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  await using session = await manualSession(server.port, server.secret);
  // 1,000 levels (a 2,000-byte path). Resolving the whole chain for every level cost depth³
  // syscalls: about 30 s of server CPU for this one request, and 10 s for each recursive listing.
  const deep = Array(1000).fill("a").join("/");
  let started = performance.now();
  await session.send({ t: "mkdir", dir: "", name: deep, mode: 0o755, mtime: 0 });
  const made = await expectMessage(session, "mkdir-done");
  strictEqual(made.name, `uploaded_${deep}`);
  const mkdirMs = performance.now() - started;

  started = performance.now();
  const { entries } = await listAll(session, "", true);
  const listMs = performance.now() - started;
  strictEqual(entries.length, 1000);
  strictEqual(entries.at(-1)?.name, `uploaded_${deep}`);
  ok(mkdirMs < 10_000 && listMs < 10_000, `mkdir ${mkdirMs} ms, recursive list ${listMs} ms`);

  // The deepest folder takes an upload; one byte over 4,096 is refused as a string.
  strictEqual((await upload(session, "f", bytesOf(10, 1), `uploaded_${deep}`))?.t, "put-done");
  await session.send({ t: "mkdir", dir: "", name: "b/".repeat(2048) + "c", mode: 0o755, mtime: 0 });
  strictEqual(await expectError(session), "invalid-path");
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: recursive listing through link loops and links to ancestors ends, each folder once", async () => {
  await using dir = await tempDir();
  const root = dir.path;
  await Deno.mkdir(join(root, "a", "b"), { recursive: true });
  await Deno.writeTextFile(join(root, "a", "b", "file.txt"), "x");
  await Deno.writeTextFile(join(root, "top.txt"), "y");
  await Deno.symlink("../..", join(root, "a", "b", "up")); // to the served folder
  await Deno.symlink(root, join(root, "a", "root")); // absolute, to the served folder
  await Deno.symlink("..", join(root, "a", "b", "parent")); // to a
  await Deno.symlink("self", join(root, "self")); // a loop of one
  await Deno.symlink("y", join(root, "x")); // a loop of two
  await Deno.symlink("x", join(root, "y"));
  await Deno.symlink("../top.txt", join(root, "a", "top-link.txt")); // a file link inside
  await using server = await startTestServer(root, { uploadPrefix: "" });
  await using session = await manualSession(server.port, server.secret);

  const expected = ["a", "a/b", "a/b/file.txt", "a/top-link.txt", "top.txt"];
  deepStrictEqual((await listAll(session, "", true)).entries.map((entry) => entry.name), expected);
  // Listing through a link to the folder itself walks it once too.
  deepStrictEqual(
    (await listAll(session, "a/b/up", true)).entries.map((entry) => entry.name),
    expected,
  );
  for (const path of ["self", "x", "y/z"]) {
    await session.send({ t: "list", path, recursive: true });
    strictEqual(await expectError(session), "not-found", path);
    await session.send({ t: "get", path, offset: 0, prefixSha256: "" });
    strictEqual(await expectError(session), "not-found", path);
  }
  await session.send({
    t: "put",
    dir: "x",
    name: "f",
    size: 1,
    mode: 0o644,
    mtime: 0,
    force: true,
  });
  strictEqual(await expectError(session), "not-found");
  await session.send({ t: "mkdir", dir: "", name: "self/sub", mode: 0o755, mtime: 0 });
  strictEqual(await expectError(session), "not-found");
  deepStrictEqual(await namesIn(root), ["a", "self", "top.txt", "x", "y"], "nothing was made");
  await assertStillServes(server.port, server.secret);
});

/** Whether this process may bind-mount (root on Linux). */
async function canBindMount(): Promise<boolean> {
  if (!onLinux) return false;
  try {
    const probe = await Deno.makeTempDir({ prefix: "ferry-bind-" });
    try {
      await Deno.mkdir(join(probe, "m"));
      const mounted = await new Deno.Command("mount", {
        args: ["--bind", probe, join(probe, "m")],
        stdout: "null",
        stderr: "null",
      }).output();
      if (mounted.success) {
        await new Deno.Command("umount", { args: [join(probe, "m")] }).output();
      }
      return mounted.success;
    } finally {
      await Deno.remove(probe, { recursive: true }).catch(() => {});
    }
  } catch {
    return false;
  }
}

Deno.test({
  // Bind mounts need root; skipped elsewhere.
  name:
    "hostile client: a bind mount of the served folder inside itself is listed once, not forever",
  ignore: !(await canBindMount()),
  async fn() {
    await using dir = await tempDir();
    const root = dir.path;
    await Deno.mkdir(join(root, "a", "loop"), { recursive: true });
    await Deno.writeTextFile(join(root, "a", "f.txt"), "x");
    const mountPoint = join(root, "a", "loop");
    const mounted = await new Deno.Command("mount", { args: ["--bind", root, mountPoint] })
      .output();
    ok(mounted.success);
    // Unmounted before the folder is removed (disposed in reverse order).
    await using _mount = {
      async [Symbol.asyncDispose]() {
        await new Deno.Command("umount", { args: [mountPoint] }).output();
      },
    };
    await using server = await startTestServer(root);
    await using session = await manualSession(server.port, server.secret);
    deepStrictEqual(
      (await listAll(session, "", true)).entries.map((entry) => entry.name),
      ["a", "a/f.txt", "a/loop"],
    );
    await assertStillServes(server.port, server.secret);
  },
});

Deno.test({
  name:
    "hostile client: a folder of 10,000 entries (500 of them made by pipelined mkdirs) lists in batches of at most 256, with bounded server memory",
  ignore: !onLinux,
  async fn() {
    await using dir = await tempDir();
    const wide = join(dir.path, "wide");
    await Deno.mkdir(wide);
    for (let index = 0; index < 9_500; index++) {
      Deno.writeFileSync(join(wide, `file-${index}`), new Uint8Array(0));
    }
    await using serve = await startServe(dir.path, { args: ["--upload-prefix", ""] });
    await using _stop = { [Symbol.asyncDispose]: () => serve.stop().then(() => {}) };
    await using session = await manualSession(serve.port, codeSecret(serve.code));
    // Hundreds of mkdirs, sent without waiting for the answers.
    for (let index = 0; index < 500; index++) {
      await session.send({ t: "mkdir", dir: "wide", name: `dir-${index}`, mode: 0o755, mtime: 0 });
    }
    for (let index = 0; index < 500; index++) await expectMessage(session, "mkdir-done");

    const before = await peakResident(serve.child.pid);
    for (const recursive of [false, true]) {
      const { entries, batches } = await listAll(session, "wide", recursive);
      strictEqual(entries.length, 10_000);
      ok(batches.every((size) => size <= MAX_LISTING_BATCH), "batches are bounded");
    }
    const growth = (await peakResident(serve.child.pid)) - before;
    // A few hundred bytes per entry are held while a folder is sorted: a few MiB here.
    ok(growth < 48 * MiB, `the server grew by ${growth / MiB} MiB`);
    await assertStillServes(serve.port, codeSecret(serve.code));
  },
});

// --- Names ------------------------------------------------------------------------------------

Deno.test("hostile client: names that differ only by Unicode normalisation or case are distinct files, each served as itself", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { uploadPrefix: "" });
  const names = ["caf\u00e9.txt", "cafe\u0301.txt", "A.txt", "a.txt", "\u212a.txt", "K.txt"];
  // All at once, each from its own connection: none is told busy by another.
  const sessions = await Promise.all(names.map(() => manualSession(server.port, server.secret)));
  try {
    await Promise.all(names.map(async (name, index) => {
      const session = sessions[index]!;
      strictEqual((await announce(session, name, 100))?.t, "put-ready", name);
      await session.send({ t: "put-start", offset: 0 });
      await sendData(session, bytesOf(100, 10 + index));
    }));
    await Promise.all(names.map(async (_name, index) => {
      const session = sessions[index]!;
      await session.send({ t: "put-end", sha256: sha256(bytesOf(100, 10 + index)) });
      strictEqual((await session.next())?.t, "put-done");
    }));
    const session = sessions[0]!;
    deepStrictEqual(
      (await listAll(session, "", false)).entries.map((entry) => entry.name),
      [...names].sort(),
    );
    for (const [index, name] of names.entries()) {
      await session.send({ t: "get", path: name, offset: 0, prefixSha256: "" });
      await expectMessage(session, "file");
      strictEqual(await session.next(), undefined, "one data record");
      strictEqual(
        (await expectMessage(session, "file-end")).sha256,
        sha256(bytesOf(100, 10 + index)),
      );
    }
  } finally {
    for (const session of sessions) await session[Symbol.asyncDispose]();
  }
  deepStrictEqual(await partialFiles(dir.path), []);
});

// --- Downloads --------------------------------------------------------------------------------

Deno.test("hostile client: a get past the end, at the end, or with a wrong prefix hash starts where the rules say; a malformed hash ends the connection", async () => {
  await using dir = await tempDir();
  const content = bytesOf(3000, 8);
  await Deno.writeFile(join(dir.path, "f.bin"), content);
  await using server = await startTestServer(dir.path);
  await using session = await manualSession(server.port, server.secret);

  const get = async (offset: number, prefixSha256: string) => {
    await session.send({ t: "get", path: "f.bin", offset, prefixSha256 });
    const file = await expectMessage(session, "file");
    let records = 0;
    let message: ServerMessage | undefined;
    while ((message = await session.next()) === undefined) records++;
    strictEqual(message.t, "file-end");
    strictEqual(message.sha256, sha256(content), "the hash always covers the whole file");
    return { offset: file.offset, records };
  };
  const whole = sha256(content);
  // Past the end, even with the whole file's hash: from the start.
  deepStrictEqual(await get(3001, whole), { offset: 0, records: 1 });
  deepStrictEqual(await get(Number.MAX_SAFE_INTEGER, whole), { offset: 0, records: 1 });
  // At the end with the right hash: nothing left to send.
  deepStrictEqual(await get(3000, whole), { offset: 3000, records: 0 });
  // A wrong or missing hash: from the start.
  deepStrictEqual(await get(3000, "0".repeat(64)), { offset: 0, records: 1 });
  deepStrictEqual(await get(1000, ""), { offset: 0, records: 1 });
  deepStrictEqual(await get(1000, sha256(content.subarray(0, 1000))), {
    offset: 1000,
    records: 1,
  });

  for (const malformed of ["XYZ", whole.toUpperCase(), `${whole}0`, whole.slice(1)]) {
    await using bad = await manualSession(server.port, server.secret);
    const peer = peerOf(bad);
    await bad.record(
      RecordType.control,
      encoder.encode(
        JSON.stringify({ t: "get", path: "f.bin", offset: 10, prefixSha256: malformed }),
      ),
    );
    await readUntilClosed(bad.conn);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: Message field "prefixSha256"`));
  }
  await assertStillServes(server.port, server.secret);
});

// --- Messages: size, order, pace --------------------------------------------------------------

Deno.test("hostile client: a control record of exactly 64 KiB is accepted, one byte more ends the connection", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  await using session = await manualSession(server.port, server.secret);
  const padded = (length: number) => {
    const base = '{"t":"list","path":"","recursive":false,"pad":""}';
    const text = base.replace('"pad":""', `"pad":"${"x".repeat(length - base.length)}"`);
    return encoder.encode(text);
  };
  const exact = padded(MAX_CONTROL_BYTES);
  strictEqual(exact.length, MAX_CONTROL_BYTES);
  await session.record(RecordType.control, exact);
  await expectMessage(session, "listing");
  // JSON nested 30,000 deep (in an ignored field) is parsed without blowing the stack.
  const depth = 30_000;
  const nested = `{"t":"list","path":"","recursive":false,"x":${"[".repeat(depth)}${
    "]".repeat(depth)
  }}`;
  await session.record(RecordType.control, encoder.encode(nested));
  await expectMessage(session, "listing");

  const peer = peerOf(session);
  await session.record(RecordType.control, padded(MAX_CONTROL_BYTES + 1));
  await readUntilClosed(session.conn);
  await server.log.waitFor(
    new RegExp(`${at(peer)}closed: Control message of 65537 bytes exceeds the maximum`),
  );
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a request pipelined with the end record is answered, and nothing after the end is read", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  await using session = await manualSession(server.port, server.secret);
  const peer = peerOf(session);
  // One socket write: a list, the end record, then bytes that would be a protocol violation.
  const garbage = crypto.getRandomValues(new Uint8Array(64));
  garbage[0] = 9; // an unknown record type, were it ever read
  session.alter = (bytes) => {
    const joined = new Uint8Array(bytes.length + garbage.length);
    joined.set(bytes);
    joined.set(garbage, bytes.length);
    return joined;
  };
  await session.channel.writer.write(
    RecordType.control,
    encodeMessage({ t: "list", path: "", recursive: false }),
  );
  await session.channel.writer.end();
  strictEqual(session.sent.length, 1, "a single write");
  await expectMessage(session, "listing");
  await rejects(session.next(), /The server ended the stream/);
  await readUntilClosed(session.conn);
  await server.log.waitFor(new RegExp(`${at(peer)}closed by client`));
  strictEqual(server.log.count(new RegExp(`${at(peer)}closed: `)), 0, "no violation read");
  await assertStillServes(server.port, server.secret);
});

Deno.test({
  name:
    "hostile client: 300 downloads pipelined without reading are answered in order, and the server buffers none of them",
  ignore: !onLinux,
  async fn() {
    await using dir = await tempDir();
    const content = bytesOf(MiB, 11);
    await Deno.writeFile(join(dir.path, "one-mib.bin"), content);
    await using serve = await startServe(dir.path);
    await using _stop = { [Symbol.asyncDispose]: () => serve.stop().then(() => {}) };
    await using session = await manualSession(serve.port, codeSecret(serve.code));
    const before = await peakResident(serve.child.pid);
    const count = 300;
    // All 300 requests in one go: about 25 KB, which the socket takes at once.
    for (let index = 0; index < count; index++) {
      await session.channel.writer.write(
        RecordType.control,
        encodeMessage({ t: "get", path: "one-mib.bin", offset: 0, prefixSha256: "" }),
      );
    }
    await session.channel.writer.flush();
    const expected = sha256(content);
    for (let index = 0; index < count; index++) {
      strictEqual((await expectMessage(session, "file")).size, MiB);
      let bytes = 0;
      let message: ServerMessage | undefined;
      while ((message = await session.next()) === undefined) bytes += MAX_RECORD_PLAINTEXT;
      strictEqual(bytes, MiB);
      strictEqual(message.t === "file-end" && message.sha256, expected);
    }
    const growth = (await peakResident(serve.child.pid)) - before;
    // 300 MiB went out. What the server holds is its read-ahead and write buffers, and the
    // garbage they leave until V8 collects it: about 70 MiB whether 100 or 900 files are sent.
    ok(growth < 128 * MiB, `the server grew by ${growth / MiB} MiB`);
  },
});

Deno.test("hostile client: an authenticated client that drips a record a byte at a time is closed at the idle deadline", async (t) => {
  await using dir = await tempDir();
  const idleTimeoutMs = 400;
  await using server = await startTestServer(dir.path, { idleTimeoutMs });
  /** Writes `bytes` one at a time every 20 ms (50 bytes a second) until the server hangs up. */
  const drip = async (session: ManualSession, bytes: Uint8Array) => {
    const started = performance.now();
    let open = true;
    const closed = readUntilClosed(session.conn, 10_000).finally(() => open = false);
    for (const byte of bytes) {
      if (!open) break;
      try {
        await writeRaw(session.conn, Uint8Array.of(byte));
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await closed;
    return performance.now() - started;
  };
  /** The bytes of one sealed record, captured instead of sent. */
  const sealed = async (session: ManualSession, type: RecordType, payload: Uint8Array) => {
    let captured: Uint8Array = new Uint8Array(0);
    session.alter = (bytes) => {
      captured = bytes;
      return new Uint8Array(0);
    };
    await session.record(type, payload);
    return captured;
  };

  await t.step("a request", async () => {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session);
    const record = await sealed(
      session,
      RecordType.control,
      encodeMessage({ t: "list", path: "", recursive: false }),
    );
    ok(record.length > 50, "dripping it whole would take over a second");
    const ms = await drip(session, record);
    ok(ms < idleTimeoutMs + 600, `closed after ${ms} ms`);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: idle deadline passed`));
  });

  await t.step("a data record in an upload", async () => {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session);
    strictEqual((await announce(session, "drip.bin", 1000))?.t, "put-ready");
    await session.send({ t: "put-start", offset: 0 });
    await sendData(session, bytesOf(200, 1));
    const record = await sealed(session, RecordType.data, bytesOf(800, 2));
    const ms = await drip(session, record);
    ok(ms < idleTimeoutMs + 600, `closed after ${ms} ms`);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: transfer stalled`));
    // The 200 bytes that did arrive are kept for a resume.
    strictEqual((await Deno.stat(join(dir.path, ".ferry-partial.uploaded_drip.bin"))).size, 200);
  });
  await assertStillServes(server.port, server.secret);
});

// --- Crowds and penalties ---------------------------------------------------------------------

Deno.test("hostile client: 200 authenticated connections at once: 64 are served, the rest refused, and an honest client gets in once they leave", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  // In waves of 10: one address may hold 16 handshakes at once (admission_test.ts).
  const attempts: PromiseSettledResult<Awaited<ReturnType<typeof manualSession>>>[] = [];
  for (let wave = 0; wave < 20; wave++) {
    attempts.push(
      ...await Promise.allSettled(
        Array.from({ length: 10 }, () => manualSession(server.port, server.secret)),
      ),
    );
  }
  const sessions = attempts.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : []
  );
  try {
    strictEqual(sessions.length, 64);
    for (const result of attempts) {
      if (result.status === "rejected") {
        ok(result.reason instanceof ConnectionError, String(result.reason));
        match(result.reason.message, /too many connections, try again later/);
      }
    }
    // Each of them is still served while they hold the slots; one more is refused.
    const listed = await Promise.all(sessions.map((session) => listAll(session, "", false)));
    ok(listed.every(({ entries }) => entries.length === 0));
    await rejects(assertStillServes(server.port, server.secret), /too many connections/);
    strictEqual(server.server.connections, 64);
  } finally {
    for (const session of sessions) await session[Symbol.asyncDispose]();
  }
  // Each slot is freed as the server sees its connection close.
  await server.log.waitForCount(/closed: Connection closed by the peer/, 64);
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: after a wrong code, the right code from that address is refused until the penalty has passed, then served", async () => {
  await using dir = await tempDir();
  const delayMs = 1000;
  await using server = await startTestServer(dir.path, {
    penalty: { freeFailures: 0, baseDelayMs: delayMs, maxDelayMs: delayMs },
  });
  const right = { hostname: "127.0.0.1", port: server.port, secret: server.secret };
  await rejects(
    FerryClient.connect({ ...right, secret: codeSecret(generateCode()) }),
    AuthenticationError,
  );
  const failed = performance.now();
  await server.log.waitFor(/authentication failed/);
  // Too early, even with the right code: refused before any curve operation.
  await rejects(FerryClient.connect(right), /too many failed attempts from your address/);
  // Once the delay has passed (nothing to await but the clock), the right code is served, and
  // its success clears the address: the next connection needs no wait.
  await new Promise((resolve) => setTimeout(resolve, delayMs - (performance.now() - failed) + 20));
  {
    await using client = await FerryClient.connect(right);
    deepStrictEqual(await client.list(""), []);
  }
  await using again = await FerryClient.connect(right);
  deepStrictEqual(await again.list(""), []);
  strictEqual(server.log.count(/authentication failed/), 1);
});
