/**
 * Integration tests of issue 3 (transfers people rely on), each driving the real CLI as a
 * subprocess against a real `ferry serve` on loopback: resume after a cut in both directions,
 * folders and many files, a hostile server's folder listing, the overwrite policy, `--json` and
 * pipe output, and the serving modes.
 *
 * Cuts are made two ways: for real (a relay between client and server stops forwarding after a
 * few MiB, the client is killed with SIGKILL once bytes have landed), and by writing the hidden
 * partial file directly with the first N bytes of the source, to cut at exact sizes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { codeSecret } from "../lib/code.ts";
import { MAX_RECORD_PLAINTEXT, RecordType, writeAll } from "../lib/protocol/framing.ts";
import { serverHandshake } from "../lib/protocol/handshake.ts";
import {
  decodeClientMessage,
  encodeMessage,
  type ListEntry,
  type ServerMessage,
} from "../lib/protocol/messages.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import type { WireErrorCode } from "../lib/protocol/wire_errors.ts";
import {
  canMountTmpfs,
  DENO,
  MAIN,
  makeCodeFile,
  makeFile,
  names,
  partialPath,
  runFerry,
  type RunResult,
  type ServeProcess,
  sha256File,
  sizeOf,
  spawnFerry,
  startServe,
  tempDir,
} from "./_helpers.ts";
import { LoopbackRelay } from "./_relay.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = MAX_RECORD_PLAINTEXT;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs a client command against `serve` with its code file. */
function ferry(
  command: "ls" | "get" | "put",
  serve: { address: string; codeFile: string },
  args: string[],
  options: { cwd?: string } = {},
): Promise<RunResult> {
  return runFerry([command, serve.address, ...args, "--code-file", serve.codeFile], options);
}

type JsonEvent = Record<string, unknown> & { event: string };

/** Parses `--json` output: every line must be exactly one JSON object with an `event`. */
function jsonEvents(stdout: string): JsonEvent[] {
  const lines = stdout.split("\n");
  assert.equal(lines.pop(), "", "output ends with a newline");
  return lines.map((line) => {
    const value = JSON.parse(line);
    assert.ok(
      typeof value === "object" && value !== null && !Array.isArray(value),
      `not an object: ${line}`,
    );
    assert.equal(typeof value.event, "string", `no event: ${line}`);
    return value as JsonEvent;
  });
}

/** The single `done` event of a successful one-file `--json` run. */
function doneEvent(result: RunResult): JsonEvent {
  assert.equal(result.code, 0, result.stderr);
  const done = jsonEvents(result.stdout).filter((event) => event.event === "done");
  assert.equal(done.length, 1, result.stdout);
  return done[0]!;
}

/** Polls `check` (file sizes, log lines: things with no event to await) until it holds. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The first `length` bytes of `path` (as partial data for a simulated cut). */
async function prefixOf(path: string, length: number): Promise<Uint8Array> {
  const bytes = await Deno.readFile(path);
  assert.ok(length <= bytes.length);
  return bytes.subarray(0, length);
}

/** How a {@link Relay} treats one direction. */
interface Throttle {
  /** Forward this many bytes, then forward nothing more (a stalled network). */
  stallAfter?: number;
  /** Forward at most this many bytes per second. */
  bytesPerSecond?: number;
}

/**
 * A TCP relay on 127.0.0.1:0 in front of a server, which can stall or slow one direction. It
 * stands for a network that stops moving bytes, so a client can be killed mid-transfer at a
 * moment the test controls.
 */
class Relay extends LoopbackRelay {
  #throttle: { down?: Throttle; up?: Throttle };
  #closed = Promise.withResolvers<void>();

  constructor(targetPort: number, throttle: { down?: Throttle; up?: Throttle }) {
    super(targetPort);
    this.#throttle = throttle;
  }

  protected relay(client: Deno.Conn, server: Deno.Conn): void {
    void this.#pump(client, server, this.#throttle.up ?? {});
    void this.#pump(server, client, this.#throttle.down ?? {});
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, throttle: Throttle): Promise<void> {
    const buffer = new Uint8Array(64 * KiB);
    const started = performance.now();
    let forwarded = 0;
    try {
      while (true) {
        let room = buffer.length;
        if (throttle.stallAfter !== undefined) {
          room = Math.min(room, throttle.stallAfter - forwarded);
          if (room === 0) return await this.#closed.promise;
        }
        const count = await from.read(buffer.subarray(0, room));
        if (count === null) return;
        await writeAll(to, buffer.subarray(0, count));
        forwarded += count;
        if (throttle.bytesPerSecond) {
          const due = started + (forwarded / throttle.bytesPerSecond) * 1000;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    } catch {
      // one side went away
    } finally {
      this.closeConn(from);
      this.closeConn(to);
    }
  }

  /** Cuts every relayed connection (a stalled one too) and stops listening. */
  override async close(): Promise<void> {
    this.#closed.resolve();
    await super.close();
  }
}

/** Count of lines in the server log that record a new connection. */
function connections(serve: ServeProcess): number {
  return serve.log().split("\n").filter((line) => line.endsWith(" connected")).length;
}

/** Every file and folder below `root`: relative path -> type, mode, mtime and SHA-256. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      const relative = prefix + entry.name;
      const info = await Deno.lstat(path);
      if (info.isDirectory) {
        found.set(relative, "dir");
        await walk(path, relative + "/");
      } else if (info.isFile) {
        const mode = (info.mode! & 0o777).toString(8);
        const mtime = Math.floor(info.mtime!.getTime() / 1000);
        found.set(relative, `file ${mode} ${mtime} ${info.size} ${await sha256File(path)}`);
      } else {
        found.set(relative, "other");
      }
    }
  };
  await walk(root, "");
  return new Map([...found].sort(([a], [b]) => a < b ? -1 : 1));
}

// ---------------------------------------------------------------------------------------------
// Resume

Deno.test("`ferry get` killed with SIGKILL mid-transfer resumes on the next run and moves only the missing bytes", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const size = 24 * MiB + 123;
  await makeFile(join(srv, "big.bin"), size, 7);
  await using serve = await startServe(srv);
  const partial = partialPath(out, "big.bin");
  {
    await using relay = new Relay(serve.port, { down: { stallAfter: 6 * MiB } });
    await using client = spawnFerry(
      ["get", relay.address, "big.bin", "-o", out, "--json", "--code-file", serve.codeFile],
    );
    await waitFor("downloaded bytes to land", async () => (await sizeOf(partial) ?? 0) >= 4 * MiB);
    // Mid-transfer the data lives only under the hidden partial name.
    assert.deepEqual(await names(out), [PARTIAL_PREFIX + "big.bin"]);
    client.child.kill("SIGKILL");
    assert.equal((await client.result).signal, "SIGKILL");
  }
  const cut = (await sizeOf(partial))!;
  assert.ok(cut > 0 && cut < size, `cut at ${cut}`);

  // The server survived the client's disappearance mid-send, and resumes.
  const done = doneEvent(await ferry("get", serve, ["big.bin", "-o", out, "--json", "--verify"]));
  assert.equal(done.resumedFrom, cut);
  assert.equal(done.transferred, size - cut);
  assert.equal(done.size, size);
  assert.equal(await sha256File(join(out, "big.bin")), await sha256File(join(srv, "big.bin")));
  assert.equal(done.sha256, await sha256File(join(srv, "big.bin")));
  assert.deepEqual(await names(out), ["big.bin"]);
  await waitFor(
    "the server to log the resumed send",
    () => serve.log().includes(`${size - cut} bytes sent (resumed at ${cut})`),
  );
});

Deno.test("`ferry put` killed with SIGKILL mid-transfer resumes on the next run and moves only the missing bytes", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const local = join(dir.path, "local");
  await Deno.mkdir(srv);
  await Deno.mkdir(local);
  const size = 24 * MiB + 321;
  const source = join(local, "big.bin");
  await makeFile(source, size, 8);
  await using serve = await startServe(srv);
  const partial = partialPath(srv, "uploaded_big.bin");
  {
    await using relay = new Relay(serve.port, { up: { stallAfter: 6 * MiB } });
    await using client = spawnFerry(
      ["put", relay.address, source, "--json", "--code-file", serve.codeFile],
    );
    await waitFor("uploaded bytes to land", async () => (await sizeOf(partial) ?? 0) >= 4 * MiB);
    // Never under the final name, never listed.
    assert.deepEqual(await names(srv), [PARTIAL_PREFIX + "uploaded_big.bin"]);
    const listing = await ferry("ls", serve, ["--json"]);
    assert.equal(listing.code, 0, listing.stderr);
    assert.deepEqual(JSON.parse(listing.stdout), []);
    client.child.kill("SIGKILL");
    assert.equal((await client.result).signal, "SIGKILL");
  }
  // The relay is closed: wait until the server has noticed and closed the partial file.
  await waitFor("the server to drop the cut connection", () => /closed: /.test(serve.log()));
  const kept = (await sizeOf(partial))!;
  assert.ok(kept >= 4 * MiB && kept < size, `kept ${kept}`);

  const done = doneEvent(await ferry("put", serve, [source, "--json", "--verify"]));
  assert.equal(done.remote, "uploaded_big.bin");
  // A write the server had in flight when the connection dropped may still have landed.
  const cut = done.resumedFrom as number;
  assert.ok(cut >= kept && cut < size, `resumed from ${cut}, ${kept} kept`);
  assert.equal(done.transferred, size - cut);
  assert.equal(await sha256File(join(srv, "uploaded_big.bin")), await sha256File(source));
  assert.equal(done.sha256, await sha256File(source));
  assert.deepEqual(await names(srv), ["uploaded_big.bin"]);
  await waitFor(
    "the server to log the resumed upload",
    () => serve.log().includes(`${size - cut} bytes received (resumed at ${cut})`),
  );
});

const SOURCE_SIZE = 3 * MiB + 4321;
const CUTS: [string, number][] = [
  ["0", 0],
  ["1", 1],
  ["chunk-1", CHUNK - 1],
  ["chunk", CHUNK],
  ["chunk+1", CHUNK + 1],
  ["large", 2 * MiB + 777],
  ["size-1", SOURCE_SIZE - 1],
  ["size", SOURCE_SIZE],
];

Deno.test("`ferry get` resumes a download cut at 0, 1, chunk-1, chunk, chunk+1, a large size, size-1 and size", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(srv, "file.bin");
  await makeFile(source, SOURCE_SIZE, 11);
  const hash = await sha256File(source);
  await using serve = await startServe(srv);
  for (const [label, cut] of CUTS) {
    await t.step(`cut at ${label} (${cut} bytes)`, async () => {
      const out = join(dir.path, `out-${label}`);
      await Deno.mkdir(out);
      await Deno.writeFile(partialPath(out, "file.bin"), await prefixOf(source, cut));
      const done = doneEvent(
        await ferry("get", serve, ["file.bin", "-o", out, "--json", "--verify"]),
      );
      assert.equal(done.resumedFrom, cut);
      assert.equal(done.transferred, SOURCE_SIZE - cut);
      assert.equal(done.sha256, hash);
      assert.equal(await sha256File(join(out, "file.bin")), hash);
      assert.deepEqual(await names(out), ["file.bin"]);
    });
  }
});

Deno.test("`ferry put` resumes an upload cut at 0, 1, chunk-1, chunk, chunk+1, a large size, size-1 and size", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(dir.path, "file.bin");
  await makeFile(source, SOURCE_SIZE, 12);
  const hash = await sha256File(source);
  await using serve = await startServe(srv);
  for (const [label, cut] of CUTS) {
    await t.step(`cut at ${label} (${cut} bytes)`, async () => {
      const remote = join(srv, label);
      await Deno.mkdir(remote);
      await Deno.writeFile(partialPath(remote, "uploaded_file.bin"), await prefixOf(source, cut));
      const done = doneEvent(
        await ferry("put", serve, [source, "--to", label, "--json", "--verify"]),
      );
      assert.equal(done.remote, `${label}/uploaded_file.bin`);
      assert.equal(done.resumedFrom, cut);
      assert.equal(done.transferred, SOURCE_SIZE - cut);
      assert.equal(done.sha256, hash);
      assert.equal(await sha256File(join(remote, "uploaded_file.bin")), hash);
      assert.deepEqual(await names(remote), ["uploaded_file.bin"]);
    });
  }
});

Deno.test("`ferry get` and `ferry put` restart from 0 when the source changed since the cut: never stitched", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const old = join(dir.path, "old.bin");
  await makeFile(old, SOURCE_SIZE, 21);
  await using serve = await startServe(srv);

  await t.step("download", async () => {
    await Deno.writeFile(partialPath(out, "file.bin"), await prefixOf(old, 2 * MiB));
    const source = join(srv, "file.bin");
    await makeFile(source, SOURCE_SIZE, 22);
    const done = doneEvent(
      await ferry("get", serve, ["file.bin", "-o", out, "--json", "--verify"]),
    );
    assert.equal(done.resumedFrom, 0);
    assert.equal(done.transferred, SOURCE_SIZE);
    assert.equal(await sha256File(join(out, "file.bin")), await sha256File(source));
    assert.deepEqual(await names(out), ["file.bin"]);
  });

  await t.step("upload", async () => {
    await Deno.writeFile(partialPath(srv, "uploaded_new.bin"), await prefixOf(old, 2 * MiB));
    const source = join(dir.path, "new.bin");
    await makeFile(source, SOURCE_SIZE, 23);
    const done = doneEvent(await ferry("put", serve, [source, "--json", "--verify"]));
    assert.equal(done.resumedFrom, 0);
    assert.equal(done.transferred, SOURCE_SIZE);
    assert.equal(await sha256File(join(srv, "uploaded_new.bin")), await sha256File(source));
    assert.ok(!(await names(srv)).some((name) => name.startsWith(PARTIAL_PREFIX)));
  });

  await t.step("download after a real cut, with the source changed on the server", async () => {
    const source = join(srv, "moving.bin");
    await makeFile(source, 12 * MiB, 24);
    const cutOut = join(dir.path, "cut-out");
    await Deno.mkdir(cutOut);
    {
      await using relay = new Relay(serve.port, { down: { stallAfter: 4 * MiB } });
      await using client = spawnFerry(
        ["get", relay.address, "moving.bin", "-o", cutOut, "--code-file", serve.codeFile],
      );
      await waitFor(
        "downloaded bytes to land",
        async () => (await sizeOf(partialPath(cutOut, "moving.bin")) ?? 0) >= 2 * MiB,
      );
      client.child.kill("SIGKILL");
      await client.result;
    }
    // Same size, one byte changed inside the kept prefix.
    using file = await Deno.open(source, { write: true });
    await file.seek(1000, Deno.SeekMode.Start);
    await file.write(Uint8Array.of(((await Deno.readFile(source))[1000]! + 1) & 0xff));
    const done = doneEvent(await ferry("get", serve, ["moving.bin", "-o", cutOut, "--json"]));
    assert.equal(done.resumedFrom, 0);
    assert.equal(await sha256File(join(cutOut, "moving.bin")), await sha256File(source));
  });
});

Deno.test("`ferry get` and `ferry put` restart from 0 when the partial file is longer than the source", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const source = join(dir.path, "file.bin");
  await makeFile(source, SOURCE_SIZE, 31);
  await Deno.copyFile(source, join(srv, "file.bin"));
  const longer = new Uint8Array(SOURCE_SIZE + CHUNK);
  longer.set(await Deno.readFile(source));
  longer.fill(0x5a, SOURCE_SIZE);
  await Deno.writeFile(partialPath(out, "file.bin"), longer);
  await Deno.writeFile(partialPath(srv, "uploaded_file.bin"), longer);
  await using serve = await startServe(srv);
  const hash = await sha256File(source);

  const got = doneEvent(await ferry("get", serve, ["file.bin", "-o", out, "--json"]));
  assert.equal(got.resumedFrom, 0);
  assert.equal(got.transferred, SOURCE_SIZE);
  assert.equal(await sha256File(join(out, "file.bin")), hash);
  assert.deepEqual(await names(out), ["file.bin"]);

  const put = doneEvent(await ferry("put", serve, [source, "--json"]));
  assert.equal(put.resumedFrom, 0);
  assert.equal(put.transferred, SOURCE_SIZE);
  assert.equal(await sha256File(join(srv, "uploaded_file.bin")), hash);
  assert.deepEqual(await names(srv), ["file.bin", "uploaded_file.bin"]);
});

Deno.test("partial files on the server are never listed by `ls` nor served by `get`", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "visible.txt"), "hello\n");
  await Deno.writeTextFile(partialPath(srv, "uploaded_secret.txt"), "half an upload");
  await using serve = await startServe(srv);
  const listing = await ferry("ls", serve, ["--json"]);
  assert.equal(listing.code, 0, listing.stderr);
  assert.deepEqual(JSON.parse(listing.stdout).map((entry: ListEntry) => entry.name), [
    "visible.txt",
  ]);
  const text = await ferry("ls", serve, []);
  assert.ok(!text.stdout.includes(PARTIAL_PREFIX), text.stdout);
  const get = await ferry("get", serve, [PARTIAL_PREFIX + "uploaded_secret.txt", "-o", dir.path]);
  assert.notEqual(get.code, 0);
  assert.ok(!(await names(dir.path)).includes(PARTIAL_PREFIX + "uploaded_secret.txt"));
});

// ---------------------------------------------------------------------------------------------
// Folders and many files

/** A tree with nested and empty folders, several sizes, modes and fixed mtimes. */
async function makeTree(root: string): Promise<void> {
  const files: [string, number, number][] = [
    ["readme.txt", 1000, 0o644],
    ["zero.bin", 0, 0o644],
    ["private.key", 64, 0o600],
    ["bin/run.sh", 200, 0o755],
    ["nested/big.bin", MiB + 512 * KiB + 3, 0o640],
    ["nested/deeper/deepest/data.bin", 2 * CHUNK + 3, 0o644],
    ["nested/deeper/chunk.bin", CHUNK, 0o604], // uploads are kept owner-read-writable: 0o6xx
  ];
  await Deno.mkdir(join(root, "empty"), { recursive: true });
  await Deno.mkdir(join(root, "nested/deeper/also-empty"), { recursive: true });
  let index = 0;
  for (const [name, size, mode] of files) {
    const path = join(root, name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await makeFile(path, size, 100 + index);
    await Deno.chmod(path, mode);
    const when = new Date(Date.UTC(2001, 1, 3, 4, 5, 6) + index * 61_000);
    await Deno.utime(path, when, when);
    index++;
  }
}

Deno.test("folder tree round trip: `put` then `get` keeps every byte, empty folders, file modes and mtimes", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  const tree = join(dir.path, "tree");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  await makeTree(tree);
  const original = await snapshot(tree);
  assert.equal(original.get("empty"), "dir");
  await using serve = await startServe(srv);

  const put = await ferry("put", serve, [tree, "--json"]);
  assert.equal(put.code, 0, put.stderr);
  const putEvents = jsonEvents(put.stdout);
  assert.equal(putEvents.filter((event) => event.event === "done").length, 7);
  assert.deepEqual(await names(srv), ["uploaded_tree"]);
  assert.deepEqual(await snapshot(join(srv, "uploaded_tree")), original);

  const get = await ferry("get", serve, ["uploaded_tree", "-o", out]);
  assert.equal(get.code, 0, get.stderr);
  assert.match(get.stdout, /^Downloaded 7 files \([\d.]+ \w+\) in [\d.]+ s, /m);
  assert.deepEqual(await names(out), ["uploaded_tree"]);
  assert.deepEqual(await snapshot(join(out, "uploaded_tree")), original);
});

Deno.test("`put` and `get` take several files and folders in one command", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "inbox"), { recursive: true });
  await Deno.mkdir(out);
  await makeFile(join(dir.path, "a.txt"), 10, 1);
  await makeFile(join(dir.path, "b.bin"), CHUNK + 9, 2);
  await makeTree(join(dir.path, "tree"));
  await using serve = await startServe(srv);

  const put = await ferry(
    "put",
    serve,
    ["a.txt", "b.bin", "tree", "--to", "inbox"],
    { cwd: dir.path },
  );
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^Uploaded 9 files \([\d.]+ \w+\) in [\d.]+ s, /m);
  assert.deepEqual(await names(join(srv, "inbox")), [
    "uploaded_a.txt",
    "uploaded_b.bin",
    "uploaded_tree",
  ]);

  const get = await ferry("get", serve, [
    "inbox/uploaded_a.txt",
    "inbox/uploaded_tree",
    "inbox/uploaded_b.bin",
    "-o",
    out,
  ]);
  assert.equal(get.code, 0, get.stderr);
  assert.deepEqual(await names(out), ["uploaded_a.txt", "uploaded_b.bin", "uploaded_tree"]);
  assert.equal(
    await sha256File(join(out, "uploaded_b.bin")),
    await sha256File(join(dir.path, "b.bin")),
  );
  assert.deepEqual(
    await snapshot(join(out, "uploaded_tree")),
    await snapshot(join(dir.path, "tree")),
  );
});

Deno.test("`put` of a folder does not follow symlinks out of it", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const outside = join(dir.path, "outside");
  const tree = join(dir.path, "tree");
  await Deno.mkdir(srv);
  await Deno.mkdir(outside);
  await Deno.mkdir(tree);
  await Deno.writeTextFile(join(outside, "secret.txt"), "outside secret\n");
  await Deno.writeTextFile(join(tree, "real.txt"), "inside\n");
  await Deno.symlink(join(tree, "real.txt"), join(tree, "link-in"));
  await Deno.symlink("/etc/hostname", join(tree, "link-hostname"));
  await Deno.symlink(join(outside, "secret.txt"), join(tree, "link-out"));
  await Deno.symlink("../outside", join(tree, "dir-out"));
  await Deno.symlink(join(dir.path, "nowhere"), join(tree, "dangling"));
  await using serve = await startServe(srv);

  const put = await ferry("put", serve, [tree]);
  assert.equal(put.code, 0, put.stderr);
  const uploaded = await snapshot(join(srv, "uploaded_tree"));
  // Only what lies inside the folder: the real file and the link to it.
  assert.deepEqual([...uploaded.keys()], ["link-in", "real.txt"]);
  assert.equal(
    uploaded.get("link-in")!.split(" ").at(-1),
    await sha256File(join(tree, "real.txt")),
  );
});

Deno.test("`put` and `get` check every local argument before connecting: a missing one is a usage error", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "a.txt"), "a\n");
  await Deno.writeTextFile(join(dir.path, "here.txt"), "here\n");
  await Deno.writeTextFile(join(dir.path, "a.txt"), "local a\n");
  await using serve = await startServe(srv);

  const put = await ferry("put", serve, ["here.txt", "missing.txt"], { cwd: dir.path });
  assert.equal(put.code, 2, put.stderr);
  assert.match(put.stderr, /missing\.txt/);
  // A missing -o folder is made (mkdir -p), but not below a file.
  const get = await ferry("get", serve, ["a.txt", "-o", join(dir.path, "here.txt", "sub")]);
  assert.equal(get.code, 2, get.stderr);
  assert.match(get.stderr, /local output folder .*here\.txt\/sub/);
  // An existing local file is compared with the server's (a re-run skips identical files): this
  // one differs, so it is refused before a byte moves, and kept.
  const exists = await ferry("get", serve, ["a.txt", "-o", dir.path]);
  assert.equal(exists.code, 1, exists.stderr);
  assert.match(exists.stderr, /already exists: use --force/);
  assert.equal(await Deno.readTextFile(join(dir.path, "a.txt")), "local a\n");

  // One more command that does connect: the log then shows that only these two did.
  const ls = await ferry("ls", serve, []);
  assert.equal(ls.code, 0, ls.stderr);
  await waitFor("the server to log the listing", () => serve.log().includes(" list ."));
  assert.equal(connections(serve), 2, serve.log());
  assert.deepEqual(await names(srv), ["a.txt"]);
});

// ---------------------------------------------------------------------------------------------
// A hostile server

/** Content a hostile server offers for any file, so a misplaced write is easy to find. */
const PWNED = new TextEncoder().encode("written by a hostile server\n");

/**
 * A fake ferry server that holds the right code but answers `get folder` with "is-dir" and then
 * lists `entries` (which may be hostile); any other `get` receives {@link PWNED}.
 */
async function hostileServer(code: string, entries: () => ListEntry[]) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const secret = codeSecret(code);
  const { createHash } = await import("node:crypto");
  const serveOne = async (conn: Deno.TcpConn) => {
    try {
      const { reader, writer } = await serverHandshake(conn, secret);
      const send = (message: ServerMessage) =>
        writer.send(RecordType.control, encodeMessage(message));
      await send({ t: "welcome", server: "ferry/evil", mode: "read-write", maxUpload: -1 });
      while (true) {
        const record = await reader.next();
        if (record.type === RecordType.end) {
          await writer.end();
          return;
        }
        const request = decodeClientMessage(record.payload);
        if (request.t === "get" && request.path === "folder") {
          await send({ t: "error", code: "is-dir", message: "folder is a folder" });
        } else if (request.t === "list") {
          await send({ t: "listing", entries: entries(), done: true });
        } else if (request.t === "get") {
          await send({ t: "file", size: PWNED.length, mtime: 0, mode: 0o644, offset: 0 });
          await writer.write(RecordType.data, PWNED);
          const sha256 = createHash("sha256").update(PWNED).digest("hex");
          await send({ t: "file-end", sha256 });
        } else {
          // A code this client does not know (it decodes it as "error").
          await send({ t: "error", code: "nope" as WireErrorCode, message: "nope" });
        }
      }
    } catch {
      // the client gave up on us, as it should
    } finally {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) void serveOne(conn as Deno.TcpConn);
  })().catch(() => {});
  return {
    address: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
    },
  };
}

/** Paths of every regular file below `root` (symlinks are not followed). */
async function filesBelow(root: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    const path = join(root, entry.name);
    if (entry.isDirectory) found.push(...await filesBelow(path));
    else if (entry.isFile) found.push(path);
  }
  return found;
}

function fileEntry(name: string): ListEntry {
  return { name, type: "file", size: PWNED.length, mtime: 0, mode: 0o644 };
}

Deno.test("hostile server: a folder download cannot write outside the output folder", async (t) => {
  await using codeDir = await tempDir();
  const codeFile = join(codeDir.path, "code");
  const code = await makeCodeFile(codeFile);
  let entries: ListEntry[] = [];
  let outside = "";
  await using server = await hostileServer(code, () => entries);

  const cases: [string, (base: string) => Promise<ListEntry[]>][] = [
    ["../evil", () => Promise.resolve([fileEntry("../evil")])],
    ["../../outside/evil", () => Promise.resolve([fileEntry("../../outside/evil")])],
    ["an absolute path", () => Promise.resolve([fileEntry(join(outside, "abs"))])],
    ["a/../../x", () => Promise.resolve([fileEntry("a/../../x")])],
    ["ok/../../x after a valid folder", () =>
      Promise.resolve([
        { name: "ok", type: "dir", size: 0, mtime: 0, mode: 0o755 },
        fileEntry("ok/../../x"),
      ])],
    [
      "a folder named ..",
      () => Promise.resolve([{ name: "..", type: "dir", size: 0, mtime: 0, mode: 0o755 }]),
    ],
    ["the folder is a symlink in the output folder", async (base) => {
      await Deno.symlink(outside, join(base, "out", "folder"));
      return [fileEntry("f.txt")];
    }],
    ["a subfolder is a symlink in the output folder", async (base) => {
      await Deno.mkdir(join(base, "out", "folder"));
      await Deno.symlink(outside, join(base, "out", "folder", "sub"));
      return [{ name: "sub", type: "dir", size: 0, mtime: 0, mode: 0o755 }, fileEntry("sub/f.txt")];
    }],
  ];
  for (const [label, prepare] of cases) {
    await t.step(label, async () => {
      await using base = await tempDir();
      outside = join(base.path, "outside");
      await Deno.mkdir(outside);
      await Deno.mkdir(join(base.path, "out"));
      entries = await prepare(base.path);
      const result = await runFerry(
        ["get", server.address, "folder", "-o", join(base.path, "out"), "--code-file", codeFile],
      );
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /^ferry: /);
      assert.deepEqual(await names(outside), []);
      assert.deepEqual(await filesBelow(base.path), []);
      assert.deepEqual(await names(base.path), ["out", "outside"]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Overwrite policy

/**
 * Runs `args` while watching `target`: it must exist at every look, with either the old or the
 * new size (never missing, never partial).
 */
async function watchWhileRunning(
  args: string[],
  target: string,
  sizes: number[],
): Promise<{ code: number; stderr: string }> {
  const { result: output } = spawnFerry(args);
  let finished = false;
  const result = output.finally(() => finished = true);
  let looks = 0;
  while (!finished) {
    const size = await sizeOf(target);
    assert.ok(size !== undefined && sizes.includes(size), `target seen with size ${size}`);
    looks++;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(looks > 0);
  return await result;
}

Deno.test("`get` refuses an existing local file naming --force; with --force it replaces it atomically", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const target = join(out, "doc.bin");
  await makeFile(join(srv, "doc.bin"), 8 * MiB + 1, 41);
  await makeFile(target, MiB, 42);
  const oldHash = await sha256File(target);
  await using serve = await startServe(srv);

  const refused = await ferry("get", serve, ["doc.bin", "-o", out]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /already exists.*--force/);
  assert.equal(await sha256File(target), oldHash);

  await Deno.link(target, join(dir.path, "old-inode"));
  const output = await watchWhileRunning(
    ["get", serve.address, "doc.bin", "-o", out, "--force", "--code-file", serve.codeFile],
    target,
    [MiB, 8 * MiB + 1],
  );
  assert.equal(output.code, 0, output.stderr);
  assert.equal(await sha256File(target), await sha256File(join(srv, "doc.bin")));
  assert.equal(await sha256File(join(dir.path, "old-inode")), oldHash);
  assert.notEqual(
    (await Deno.stat(target)).ino,
    (await Deno.stat(join(dir.path, "old-inode"))).ino,
  );
  assert.deepEqual(await names(out), ["doc.bin"]);
});

Deno.test("a folder `get` passes over a local file that differs, names it, lands the rest and exits 1", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "docs", "sub"), { recursive: true });
  await Deno.mkdir(join(out, "docs"), { recursive: true });
  const served = ["a.txt", "b.txt", "c.txt", "sub/d.txt"];
  for (const name of served) await Deno.writeTextFile(join(srv, "docs", name), `remote ${name}\n`);
  const mine = join(out, "docs", "b.txt");
  await Deno.writeTextFile(mine, "my own b, not the server's\n");
  await using serve = await startServe(srv);

  const result = await ferry("get", serve, ["docs", "-o", out]);
  assert.equal(result.code, 1, result.stderr);
  // Named as it is met, then again in the final error.
  assert.match(
    result.stderr,
    /^ferry: not downloaded: docs\/b\.txt \(already exists locally and differs: use --force to replace it\)$/m,
  );
  assert.match(
    result.stderr,
    /^ferry: 1 of the entries of docs could not be downloaded.*docs\/b\.txt/m,
  );
  assert.equal(await Deno.readTextFile(mine), "my own b, not the server's\n");
  for (const name of ["a.txt", "c.txt", "sub/d.txt"]) {
    assert.equal(await Deno.readTextFile(join(out, "docs", name)), `remote ${name}\n`, name);
  }
  // No line per file: one summary that counts what was not moved.
  assert.match(result.stdout, /^Downloaded 3 files \(43 B\) in .*; 1 not downloaded$/m);
  assert.equal(result.stdout.trim().split("\n").length, 1, result.stdout);
  assert.deepEqual(await names(join(out, "docs")), ["a.txt", "b.txt", "c.txt", "sub"]);

  // With --force the same command replaces it and succeeds.
  const forced = await ferry("get", serve, ["docs", "-o", out, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(await Deno.readTextFile(mine), "remote b.txt\n");
});

Deno.test("a `get` of several paths passes over one that differs locally and fetches the others, then exits 1", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "docs"), { recursive: true });
  await Deno.mkdir(out);
  await Deno.writeTextFile(join(srv, "one.txt"), "remote one\n");
  await Deno.writeTextFile(join(srv, "two.txt"), "remote two\n");
  await Deno.writeTextFile(join(srv, "docs", "three.txt"), "remote three\n");
  await Deno.writeTextFile(join(out, "one.txt"), "my one\n");
  await using serve = await startServe(srv);

  const result = await ferry("get", serve, ["one.txt", "two.txt", "docs", "-o", out, "--json"]);
  assert.equal(result.code, 1, result.stderr);
  const events = jsonEvents(result.stdout);
  assert.deepEqual(events.filter((event) => event.event === "not-transferred"), [{
    event: "not-transferred",
    direction: "get",
    name: "one.txt",
    reason: "already exists locally and differs: use --force to replace it",
  }]);
  assert.deepEqual(
    events.filter((event) => event.event === "done").map((event) => event.name),
    ["two.txt", "docs/three.txt"],
  );
  assert.equal(events.at(-1)!.event, "error");
  assert.equal(events.at(-1)!.code, "incomplete");
  assert.match(result.stderr, /^ferry: 1 of the 3 paths could not be downloaded: one\.txt \(/);
  assert.equal(await Deno.readTextFile(join(out, "one.txt")), "my one\n");
  assert.equal(await Deno.readTextFile(join(out, "two.txt")), "remote two\n");
  assert.equal(await Deno.readTextFile(join(out, "docs", "three.txt")), "remote three\n");
});

Deno.test("`put` refuses an existing remote file naming --force; with --force it replaces it atomically", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(dir.path, "doc.bin");
  const target = join(srv, "uploaded_doc.bin");
  await makeFile(source, 8 * MiB + 1, 43);
  await makeFile(target, MiB, 44);
  const oldHash = await sha256File(target);
  await using serve = await startServe(srv);

  const refused = await ferry("put", serve, [source]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /already exists.*--force/);
  assert.equal(await sha256File(target), oldHash);
  assert.deepEqual(await names(srv), ["uploaded_doc.bin"]);

  await Deno.link(target, join(dir.path, "old-inode"));
  const output = await watchWhileRunning(
    ["put", serve.address, source, "--force", "--code-file", serve.codeFile],
    target,
    [MiB, 8 * MiB + 1],
  );
  assert.equal(output.code, 0, output.stderr);
  assert.equal(await sha256File(target), await sha256File(source));
  assert.equal(await sha256File(join(dir.path, "old-inode")), oldHash);
  assert.notEqual(
    (await Deno.stat(target)).ino,
    (await Deno.stat(join(dir.path, "old-inode"))).ino,
  );
  assert.deepEqual(await names(srv), ["uploaded_doc.bin"]);
});

// ---------------------------------------------------------------------------------------------
// Output

Deno.test("`get --json` and `put --json` print one JSON object per line: start, progress, done with the real SHA-256", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const size = 4 * MiB + 5;
  await makeFile(join(srv, "data.bin"), size, 51);
  const hash = await sha256File(join(srv, "data.bin"));
  await using serve = await startServe(srv);

  for (
    const [direction, run] of [
      ["get", () => ferry("get", serve, ["data.bin", "-o", out, "--json", "--verify"])],
      ["put", () => ferry("put", serve, [join(out, "data.bin"), "--json", "--verify"])],
    ] as const
  ) {
    const result = await run();
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const events = jsonEvents(result.stdout);
    assert.equal(events[0]!.event, "start");
    assert.equal(events.at(-1)!.event, "done");
    assert.ok(events.slice(1, -1).every((event) => event.event === "progress"), result.stdout);
    assert.ok(events.length >= 3, result.stdout);
    for (const event of events) assert.equal(event.direction, direction);
    assert.deepEqual(
      { size: events[0]!.size, offset: events[0]!.offset },
      { size, offset: 0 },
    );
    const done = events.at(-1)!;
    assert.equal(done.size, size);
    assert.equal(done.sha256, hash);
    assert.equal(typeof done.seconds, "number");
    assert.ok((done.seconds as number) >= 0);
  }
  assert.equal(await sha256File(join(srv, "uploaded_data.bin")), hash);
  // Without --verify nothing is hashed end to end, so `done` claims no SHA-256.
  const plain = await ferry("get", serve, ["data.bin", "-o", out, "--json", "--force"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(!("sha256" in jsonEvents(plain.stdout).at(-1)!), plain.stdout);
});

Deno.test("`--json` progress events come at a modest rate, not one per record", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const size = 12 * MiB;
  await makeFile(join(srv, "slow.bin"), size, 52);
  await using serve = await startServe(srv);
  await using relay = new Relay(serve.port, { down: { bytesPerSecond: 10 * MiB } });
  const result = await runFerry(
    ["get", relay.address, "slow.bin", "-o", out, "--json", "--code-file", serve.codeFile],
  );
  const done = doneEvent(result);
  const progress = jsonEvents(result.stdout).filter((event) => event.event === "progress");
  const seconds = done.seconds as number;
  assert.ok(seconds > 0.8, `took ${seconds} s`);
  // At most one every 0.5 s, plus the first and the last; 48 records would otherwise give 48.
  assert.ok(progress.length >= 2, result.stdout);
  assert.ok(progress.length <= Math.floor(seconds / 0.5) + 2, result.stdout);
  assert.equal(progress.at(-1)!.bytes, size);
});

Deno.test("`get --json | head -2`: a reader that closes stdout early stops the download, which exits 1 and resumes later", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const size = 8 * MiB;
  await makeFile(join(srv, "big.bin"), size, 53);
  await using serve = await startServe(srv);
  await using relay = new Relay(serve.port, { down: { bytesPerSecond: 4 * MiB } });
  const child = new Deno.Command(DENO, {
    args: ["run", "--no-prompt", "-A", MAIN, "get", relay.address, "big.bin", "-o", out, "--json"]
      .concat(["--code-file", serve.codeFile]),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  // Read two lines (`start`, the first `progress`), then close the pipe, as `head -2` does.
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let read = "";
  while (read.split("\n").length <= 2) {
    const chunk = await lines.read();
    if (chunk.done) break;
    read += chunk.value;
  }
  await lines.cancel();
  const status = await child.status;
  const complete = await sizeOf(join(out, "big.bin")) === size;

  // Never exit 0 with only part of the file.
  assert.ok(status.code !== 0 || complete, `exit ${status.code} with a partial file`);
  // What it does: it stops, says why on stderr, exits 1 and keeps the partial file for a resume.
  assert.equal(status.code, 1, await stderr);
  assert.match(await stderr, /^ferry: Standard output was closed before the transfer finished/m);
  assert.ok(!complete);
  const kept = (await sizeOf(partialPath(out, "big.bin")))!;
  assert.ok(kept > 0 && kept < size, `kept ${kept}`);
  const done = doneEvent(await ferry("get", serve, ["big.bin", "-o", out, "--json"]));
  assert.ok((done.resumedFrom as number) > 0, `resumed from ${done.resumedFrom}`);
  assert.equal(await sha256File(join(out, "big.bin")), await sha256File(join(srv, "big.bin")));
});

Deno.test("`--json` reports a failure as one error event with code and message", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "a.txt"), "a\n");
  await Deno.writeTextFile(join(dir.path, "a.txt"), "local\n");
  await using serve = await startServe(srv);

  const exists = await ferry("get", serve, ["a.txt", "-o", dir.path, "--json"]);
  assert.equal(exists.code, 1);
  const [event, ...rest] = jsonEvents(exists.stdout);
  assert.deepEqual(rest, []);
  assert.equal(event!.event, "error");
  assert.equal(event!.code, "exists");
  assert.match(event!.message as string, /--force/);

  const missing = await ferry("get", serve, ["nope.txt", "-o", dir.path, "--json"]);
  assert.equal(missing.code, 1);
  const events = jsonEvents(missing.stdout);
  assert.deepEqual(events.map((event) => [event.event, event.code]), [["error", "not-found"]]);

  const ls = await ferry("ls", serve, ["nope", "--json"]);
  assert.equal(ls.code, 1);
  assert.deepEqual(jsonEvents(ls.stdout).map((event) => event.code), ["not-found"]);
});

Deno.test("`ls --json` prints the listing as one JSON array", async () => {
  await using dir = await tempDir();
  await makeFile(join(dir.path, "f.bin"), 1234, 1);
  await Deno.mkdir(join(dir.path, "sub"));
  await using serve = await startServe(dir.path);
  const result = await ferry("ls", serve, ["--json"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trimEnd().split("\n").length, 1);
  const entries = JSON.parse(result.stdout);
  assert.deepEqual(
    entries.map((entry: ListEntry) => [entry.name, entry.type, entry.size]),
    [["f.bin", "file", 1234], ["sub", "dir", 0]],
  );
});

Deno.test("in a pipe, and with --quiet, `get` and `put` print no progress bar and no control characters", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  await makeFile(join(srv, "data.bin"), 4 * MiB, 53);
  await makeFile(join(dir.path, "up.bin"), 4 * MiB, 54);
  await using serve = await startServe(srv);
  // Control characters other than newline and tab (escape codes, carriage returns).
  // deno-lint-ignore no-control-regex
  const control = /[\x00-\x08\x0b-\x1f\x7f]/;
  const runs = [
    await ferry("get", serve, ["data.bin", "-o", out]),
    await ferry("put", serve, [join(dir.path, "up.bin")]),
    await ferry("get", serve, ["uploaded_up.bin", "-o", out, "--quiet"]),
    await ferry("put", serve, [join(dir.path, "up.bin"), "--quiet", "--force"]),
    await ferry("get", serve, ["missing.bin", "-o", out]), // fails: not found
  ];
  for (const result of runs) {
    assert.doesNotMatch(result.stdout, control);
    assert.doesNotMatch(result.stderr, control);
    assert.ok(!result.stderr.includes("%"), result.stderr);
  }
  assert.match(runs[0]!.stdout, /^Downloaded data\.bin \(4\.00 MiB in /);
  assert.match(runs[1]!.stdout, /^Uploaded uploaded_up\.bin \(4\.00 MiB in /);
  assert.equal(runs[4]!.code, 1);
});

Deno.test("a resumed `get --json` reports `checking` the kept bytes before their `start`", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  await makeFile(join(srv, "big.bin"), 2 * MiB, 61);
  const kept = (await Deno.readFile(join(srv, "big.bin"))).subarray(0, MiB);
  await Deno.writeFile(join(out, PARTIAL_PREFIX + "big.bin"), kept);
  await using serve = await startServe(srv);

  const result = await ferry("get", serve, ["big.bin", "-o", out, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  const events = jsonEvents(result.stdout);
  assert.deepEqual(events.slice(0, 2), [
    { event: "checking", direction: "get", name: "big.bin", bytes: MiB },
    { event: "start", direction: "get", name: "big.bin", size: 2 * MiB, offset: MiB },
  ]);
  assert.equal(events.at(-1)?.resumedFrom, MiB);
});

Deno.test("a folder `get` and `put` of 50 files with --quiet print nothing at all and exit 0", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "many"), { recursive: true });
  await Deno.mkdir(out);
  for (let i = 0; i < 50; i++) await makeFile(join(srv, "many", `f${i}.txt`), 100 + i, i + 1);
  await using serve = await startServe(srv);

  const get = await ferry("get", serve, ["many", "-o", out, "--quiet"]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout, "");
  assert.equal(get.stderr, "");
  assert.equal((await names(join(out, "many"))).length, 50);

  const put = await ferry("put", serve, [join(out, "many"), "--quiet"]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout, "");
  assert.equal(put.stderr, "");
  assert.equal((await names(join(srv, "uploaded_many"))).length, 50);
});

Deno.test("a folder `get` and `put` of 50 files, not on a terminal, print one summary line instead of 50", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "many"), { recursive: true });
  await Deno.mkdir(out);
  for (let i = 0; i < 50; i++) await makeFile(join(srv, "many", `f${i}.txt`), 1024, i + 1);
  await using serve = await startServe(srv);

  const get = await ferry("get", serve, ["many", "-o", out]);
  assert.equal(get.code, 0, get.stderr);
  assert.match(get.stdout, /^Downloaded 50 files \(50\.0 KiB\) in [\d.]+ s, [\d.]+ \w+\/s\n$/);
  assert.equal(get.stderr, "");

  const put = await ferry("put", serve, [join(out, "many")]);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^Uploaded 50 files \(50\.0 KiB\) in [\d.]+ s, [\d.]+ \w+\/s\n$/);

  // A re-run moves nothing: the summary counts the files it found already complete.
  const again = await ferry("get", serve, ["many", "-o", out]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(
    again.stdout,
    /^Downloaded 0 files \(0 B\) in .*; 50 skipped \(already complete\)\n$/,
  );
});

// ---------------------------------------------------------------------------------------------
// Serving modes

Deno.test("`serve --read-only` refuses uploads and says it is read-only; downloads work", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "a.txt"), "a\n");
  await Deno.writeTextFile(join(dir.path, "up.txt"), "up\n");
  await using serve = await startServe(srv, { args: ["--read-only"] });

  const put = await ferry("put", serve, [join(dir.path, "up.txt"), "--json"]);
  assert.equal(put.code, 1);
  assert.match(put.stderr, /read-only/);
  assert.deepEqual(jsonEvents(put.stdout).map((event) => event.code), ["read-only"]);
  const mkdir = await ferry("put", serve, [srv]);
  assert.equal(mkdir.code, 1);
  assert.match(mkdir.stderr, /read-only/);
  assert.deepEqual(await names(srv), ["a.txt"]);

  const out = join(dir.path, "out");
  await Deno.mkdir(out);
  const get = await ferry("get", serve, ["a.txt", "-o", out]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(await Deno.readTextFile(join(out, "a.txt")), "a\n");
});

Deno.test("`serve --upload-only` refuses listing and downloads as a drop box, and accepts uploads", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "a.txt"), "a\n");
  await Deno.writeTextFile(join(dir.path, "up.txt"), "up\n");
  await using serve = await startServe(srv, { args: ["--upload-only"] });

  const ls = await ferry("ls", serve, []);
  assert.equal(ls.code, 1);
  assert.match(ls.stderr, /upload-only/);
  assert.match(ls.stderr, /drop box/);
  assert.equal(ls.stdout, "");
  const out = join(dir.path, "out");
  await Deno.mkdir(out);
  const get = await ferry("get", serve, ["a.txt", "-o", out]);
  assert.equal(get.code, 1);
  assert.match(get.stderr, /upload-only/);
  assert.deepEqual(await names(out), []);

  const put = await ferry("put", serve, [join(dir.path, "up.txt")]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(await Deno.readTextFile(join(srv, "uploaded_up.txt")), "up\n");
});

Deno.test("`serve --max-upload 1K` refuses a 2 KiB upload before writing a byte and accepts 1 KiB", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await makeFile(join(dir.path, "two.bin"), 2 * KiB, 61);
  await makeFile(join(dir.path, "one.bin"), KiB, 62);
  await using serve = await startServe(srv, { args: ["--max-upload", "1K"] });

  const big = await ferry("put", serve, [join(dir.path, "two.bin")]);
  assert.equal(big.code, 1);
  assert.match(big.stderr, /Upload of 2\.00 KiB refused: the server accepts at most 1\.00 KiB/);
  assert.deepEqual(await names(srv), []);

  const ok = await ferry("put", serve, [join(dir.path, "one.bin")]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(
    await sha256File(join(srv, "uploaded_one.bin")),
    await sha256File(join(dir.path, "one.bin")),
  );
});

Deno.test({
  name:
    "an upload that meets a full disk fails cleanly, removes its temporary file and the server keeps serving",
  ignore: !(await canMountTmpfs()),
  async fn() {
    await using dir = await tempDir();
    const disk = join(dir.path, "disk");
    await Deno.mkdir(disk);
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk],
    }).output();
    assert.ok(mounted.success, new TextDecoder().decode(mounted.stderr));
    try {
      await makeFile(join(dir.path, "big.bin"), 2 * MiB, 71);
      await makeFile(join(dir.path, "small.bin"), 10 * KiB, 72);
      await using serve = await startServe(disk);

      const full = await ferry("put", serve, [join(dir.path, "big.bin"), "--json"]);
      assert.equal(full.code, 1);
      assert.match(full.stderr, /disk is full/);
      assert.deepEqual(
        jsonEvents(full.stdout).filter((event) => event.event === "error")
          .map((event) => event.code),
        ["disk-full"],
      );
      await waitFor(
        "the server to log the failed upload",
        () => /put .* failed: /.test(serve.log()),
      );
      assert.deepEqual(await names(disk), []);

      const small = await ferry("put", serve, [join(dir.path, "small.bin")]);
      assert.equal(small.code, 0, small.stderr);
      const ls = await ferry("ls", serve, ["--json"]);
      assert.deepEqual(JSON.parse(ls.stdout).map((entry: ListEntry) => entry.name), [
        "uploaded_small.bin",
      ]);
    } finally {
      await new Deno.Command("umount", { args: [disk] }).output();
    }
  },
});

Deno.test("a folder download keeps its subfolders' modification times", async () => {
  await using served = await tempDir();
  await using out = await tempDir();
  const nested = join(served.path, "album", "2019", "summer");
  await Deno.mkdir(nested, { recursive: true });
  await Deno.writeTextFile(join(nested, "beach.txt"), "sand");
  const when = new Date("2019-07-14T12:00:00Z");
  for (const folder of [nested, join(served.path, "album", "2019")]) {
    await Deno.utime(folder, when, when);
  }
  await using serve = await startServe(served.path);
  const result = await runFerry([
    "get",
    serve.address,
    "album",
    "-o",
    out.path,
    "--code-file",
    serve.codeFile,
  ]);
  assert.equal(result.code, 0, result.stderr);
  for (const relative of ["album/2019", "album/2019/summer"]) {
    const info = await Deno.stat(join(out.path, relative));
    assert.equal(info.mtime?.getTime(), when.getTime(), relative);
  }
});

Deno.test("a folder upload keeps its subfolders' modification times", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const nested = join(local.path, "album", "2019", "summer");
  await Deno.mkdir(nested, { recursive: true });
  await Deno.writeTextFile(join(nested, "beach.txt"), "sand");
  const when = new Date("2019-07-14T12:00:00Z");
  for (const folder of [nested, join(local.path, "album", "2019"), join(local.path, "album")]) {
    await Deno.utime(folder, when, when);
  }
  await using serve = await startServe(served.path);
  const result = await runFerry([
    "put",
    serve.address,
    join(local.path, "album"),
    "--code-file",
    serve.codeFile,
  ]);
  assert.equal(result.code, 0, result.stderr);
  for (const relative of ["uploaded_album", "uploaded_album/2019", "uploaded_album/2019/summer"]) {
    const info = await Deno.stat(join(served.path, relative));
    assert.equal(info.mtime?.getTime(), when.getTime(), relative);
  }
});
