/**
 * Resume at the worst moments: transfers cut at every phase of the conversation (during the
 * handshake, right after `put-ready` or `file`, mid-data, after the last data record, after
 * `put-end`, during the commit), a server restarted between cut and resume, sources changed,
 * truncated or grown between runs, partial files that lie, and re-runs of cut folder downloads.
 *
 * The principle checked throughout: nothing is lost or corrupted, a partial file never appears
 * under a final name, and running the same command again ends in a byte-exact file (or a clear
 * error), moving only the missing bytes when the kept prefix is still valid.
 *
 * Cuts are made by a relay that parses the record stream (record headers are not encrypted: type
 * and length) and drops both connections just before a chosen record, so each phase is hit exactly.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret } from "../lib/code.ts";
import { MAX_RECORD_PLAINTEXT, RecordType, writeAll } from "../lib/protocol/framing.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import {
  exists,
  makeFile,
  names,
  partialGrows,
  partialPath,
  runFerry,
  type RunResult,
  sha256File,
  sizeOf,
  spawnFerry,
  startServe,
  tempDir,
  until,
} from "./_helpers.ts";
import { LoopbackRelay } from "./_relay.ts";
import { manualSession } from "./_hostile.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = MAX_RECORD_PLAINTEXT;

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * Bytes of the handshake before the first record: server hello + status||Yb||Tb, client
 * nonce||identifier||Ya + Ta.
 */
const HANDSHAKE_BYTES = { down: 22 + 97, up: 52 + 64 };

/** The record a {@link CuttingRelay} is about to forward. */
interface Seen {
  /** `up` is client to server. */
  direction: "up" | "down";
  type: RecordType;
  /** Control records already forwarded in this direction (so the next one has this index). */
  controls: number;
  /** Data records already forwarded in this direction. */
  datas: number;
}

/**
 * A TCP relay on 127.0.0.1:0 in front of a server that follows the record stream (headers only)
 * and, when `cutBefore` says so, drops both connections instead of forwarding that record: a
 * network that fails at an exact phase. `rawCut` cuts inside the handshake instead, after that
 * many bytes in one direction.
 */
class CuttingRelay extends LoopbackRelay {
  /** Resolves when a cut has happened. */
  readonly cut: Promise<void>;
  #cutDone = Promise.withResolvers<void>();
  #cutBefore: (seen: Seen) => boolean;
  #rawCut: { direction: "up" | "down"; after: number } | undefined;

  constructor(
    targetPort: number,
    cutBefore: (seen: Seen) => boolean,
    rawCut?: { direction: "up" | "down"; after: number },
  ) {
    super(targetPort);
    this.cut = this.#cutDone.promise;
    this.#cutBefore = cutBefore;
    this.#rawCut = rawCut;
  }

  protected relay(client: Deno.Conn, server: Deno.Conn): void {
    const pair = [client, server];
    void this.#pump(client, server, "up", pair, this.#cutBefore, this.#rawCut);
    void this.#pump(server, client, "down", pair, this.#cutBefore, this.#rawCut);
  }

  async #pump(
    from: Deno.Conn,
    to: Deno.Conn,
    direction: "up" | "down",
    pair: Deno.Conn[],
    cutBefore: (seen: Seen) => boolean,
    rawCut: { direction: "up" | "down"; after: number } | undefined,
  ): Promise<void> {
    const block = new Uint8Array(256 * KiB);
    let pending = new Uint8Array(0);
    let raw = HANDSHAKE_BYTES[direction];
    let rawLimit = rawCut?.direction === direction ? rawCut.after : Infinity;
    let controls = 0;
    let datas = 0;
    const cut = () => {
      for (const conn of pair) this.closeConn(conn);
      this.#cutDone.resolve();
    };
    try {
      while (true) {
        const count = await from.read(block);
        if (count === null) break;
        const joined = new Uint8Array(pending.length + count);
        joined.set(pending);
        joined.set(block.subarray(0, count), pending.length);
        pending = joined;
        while (true) {
          if (raw > 0) {
            const take = Math.min(raw, pending.length, rawLimit);
            if (take === 0 && rawLimit === 0) return cut();
            if (take === 0) break;
            await writeAll(to, pending.subarray(0, take));
            pending = pending.subarray(take);
            raw -= take;
            rawLimit -= take;
            if (rawLimit === 0) return cut();
            continue;
          }
          if (pending.length < 5) break;
          const length = new DataView(pending.buffer, pending.byteOffset).getUint32(1);
          if (pending.length < 5 + length) break;
          const type = pending[0] as RecordType;
          if (cutBefore({ direction, type, controls, datas })) return cut();
          await writeAll(to, pending.subarray(0, 5 + length));
          pending = pending.subarray(5 + length);
          if (type === RecordType.control) controls++;
          if (type === RecordType.data) datas++;
        }
      }
    } catch {
      // one side went away
    } finally {
      this.closeConn(from);
      this.closeConn(to);
    }
  }
}

type Server = Awaited<ReturnType<typeof startServe>>;
type JsonEvent = Record<string, unknown> & { event: string };

/** Runs `ferry <command> <address> ARGS... --json --code-file <the server's>`. */
function ferry(
  command: "get" | "put",
  server: Server,
  args: string[],
  address = server.address,
): Promise<RunResult> {
  return runFerry([command, address, ...args, "--json", "--code-file", server.codeFile]);
}

function events(result: RunResult): JsonEvent[] {
  return result.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

/** The `done` events of a successful run. */
function done(result: RunResult): JsonEvent[] {
  assert.equal(result.code, 0, result.stderr);
  return events(result).filter((event) => event.event === "done");
}

/** The single `done` event of a successful one-file run. */
function doneOne(result: RunResult): JsonEvent {
  const all = done(result);
  assert.equal(all.length, 1, result.stdout);
  return all[0]!;
}

/** A failed run: exit 1 and one line on stderr matching `pattern`. */
function failed(result: RunResult, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, pattern);
}

async function partialsBelow(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(PARTIAL_PREFIX)) found.push(entry.name);
    if (entry.isDirectory) found.push(...await partialsBelow(join(dir, entry.name)));
  }
  return found;
}

/** Lines of the server log ending a connection (to know it has let go of a cut upload). */
function closedCount(server: Server): number {
  return server.log().split("\n").filter((line) => / closed/.test(line)).length;
}

/** Runs `run` and waits until the server has logged one more closed connection. */
async function andServerLetsGo<T>(server: Server, run: () => Promise<T>): Promise<T> {
  const before = closedCount(server);
  const result = await run();
  await until(() => closedCount(server) > before, "the server to close the cut connection");
  return result;
}

/** Writes the first `length` bytes of `source` to `path` (a partial file from an earlier cut). */
async function writePrefix(source: string, path: string, length: number): Promise<void> {
  await Deno.writeFile(path, (await Deno.readFile(source)).subarray(0, length));
}

/** A cut before the control record number `index` (from 0) in `direction`. */
function beforeControl(direction: "up" | "down", index: number): (seen: Seen) => boolean {
  return (seen) =>
    seen.direction === direction && seen.type === RecordType.control && seen.controls === index;
}

/** A cut before the data record number `index` (from 0) in `direction`. */
function beforeData(direction: "up" | "down", index: number): (seen: Seen) => boolean {
  return (seen) =>
    seen.direction === direction && seen.type === RecordType.data && seen.datas === index;
}

/** `bytes` with every byte changed. */
function inverted(bytes: Uint8Array): Uint8Array {
  return bytes.map((byte) => byte ^ 0xff);
}

// ---------------------------------------------------------------------------------------------
// Cuts at every phase

/** A cut, and what the partial file on the receiving side holds right after it. */
interface Phase {
  label: string;
  cutBefore?: (seen: Seen) => boolean;
  rawCut?: { direction: "up" | "down"; after: number };
  /** Size of the partial file after the cut (undefined: there is none). */
  kept: number | undefined;
  /** Size of the partial file kept from an earlier cut, before this one. */
  earlier?: number;
}

const SIZE = 4 * CHUNK + 1234; // five data records

Deno.test("`ferry put` cut at every phase: no final name before the commit, and the re-run resumes exactly", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(dir.path, "file.bin");
  await makeFile(source, SIZE, 1);
  const hash = await sha256File(source);
  await using server = await startServe(srv);
  // Each phase starts from no partial file, or from one kept from an earlier cut.
  const phases: Phase[] = [
    { label: "handshake", rawCut: { direction: "up", after: 48 }, kept: undefined },
    {
      label: "handshake, with a kept prefix",
      rawCut: { direction: "down", after: 30 },
      kept: CHUNK + 7,
      earlier: CHUNK + 7,
    },
    { label: "after put-ready", cutBefore: beforeControl("up", 1), kept: undefined },
    {
      label: "after put-ready, with a kept prefix",
      cutBefore: beforeControl("up", 1),
      kept: 3 * CHUNK,
      earlier: 3 * CHUNK,
    },
    { label: "after put-start", cutBefore: beforeData("up", 0), kept: undefined },
    {
      label: "after put-start, with a kept prefix",
      cutBefore: beforeData("up", 0),
      kept: 100,
      earlier: 100,
    },
    { label: "mid-data", cutBefore: beforeData("up", 2), kept: 2 * CHUNK },
    { label: "before put-end", cutBefore: beforeControl("up", 2), kept: SIZE },
  ];
  let index = 0;
  for (const phase of phases) {
    await t.step(`cut ${phase.label}`, async () => {
      const label = `put-${index++}`;
      const folder = join(srv, label);
      await Deno.mkdir(folder);
      if (phase.earlier) {
        await writePrefix(source, partialPath(folder, "uploaded_file.bin"), phase.earlier);
      }
      {
        await using relay = new CuttingRelay(
          server.port,
          phase.cutBefore ?? (() => false),
          phase.rawCut,
        );
        const run = () => ferry("put", server, [source, "--to", label], relay.address);
        failed(phase.rawCut ? await run() : await andServerLetsGo(server, run), /^ferry: /);
      }
      assert.ok(!await exists(join(folder, "uploaded_file.bin")), "nothing under the final name");
      assert.equal(await sizeOf(partialPath(folder, "uploaded_file.bin")), phase.kept);
      const again = doneOne(await ferry("put", server, [source, "--to", label]));
      assert.equal(again.resumedFrom, phase.kept ?? 0);
      assert.equal(again.transferred, SIZE - (phase.kept ?? 0));
      assert.equal(await sha256File(join(folder, "uploaded_file.bin")), hash);
      assert.deepEqual(await names(folder), ["uploaded_file.bin"]);
    });
  }

  await t.step(
    "cut after put-end, before put-done: the file is in place; the re-run finds it complete and sends nothing",
    async () => {
      const folder = join(srv, "after-put-end");
      await Deno.mkdir(folder);
      {
        await using relay = new CuttingRelay(
          server.port,
          beforeControl("down", 2),
        );
        failed(
          await ferry("put", server, [source, "--to", "after-put-end"], relay.address),
          /^ferry: /,
        );
      }
      // The server committed before it answered: the file is complete, never a partial one.
      assert.equal(await sha256File(join(folder, "uploaded_file.bin")), hash);
      assert.deepEqual(await names(folder), ["uploaded_file.bin"]);
      const rerun = doneOne(await ferry("put", server, [source, "--to", "after-put-end"]));
      assert.equal(rerun.skipped, true);
      assert.equal(rerun.transferred, 0);
      assert.equal(rerun.sha256, hash);
      const forced = doneOne(
        await ferry("put", server, [source, "--to", "after-put-end", "--force", "--verify"]),
      );
      assert.equal(forced.sha256, hash);
      assert.equal(await sha256File(join(folder, "uploaded_file.bin")), hash);
      assert.deepEqual(await names(folder), ["uploaded_file.bin"]);
    },
  );
});

Deno.test("`ferry get` cut at every phase: the kept prefix survives every cut and the re-run resumes exactly", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(srv, "file.bin");
  await makeFile(source, SIZE, 2);
  const hash = await sha256File(source);
  await using server = await startServe(srv);
  // Each phase starts from no partial file, then again from one kept from an earlier cut.
  const phases: Phase[] = [
    { label: "handshake", rawCut: { direction: "up", after: 48 }, kept: undefined },
    {
      label: "handshake, with a kept prefix",
      rawCut: { direction: "down", after: 30 },
      kept: CHUNK + 7,
      earlier: CHUNK + 7,
    },
    {
      label: "before file (the server hashing the kept prefix)",
      cutBefore: beforeControl("down", 1),
      kept: 3 * CHUNK,
      earlier: 3 * CHUNK,
    },
    {
      label: "after file",
      cutBefore: beforeData("down", 0),
      kept: undefined,
    },
    {
      label: "after file, with a kept prefix",
      cutBefore: beforeData("down", 0),
      kept: 100,
      earlier: 100,
    },
    {
      label: "mid-data",
      cutBefore: beforeData("down", 2),
      kept: 2 * CHUNK,
    },
    {
      label: "before file-end",
      cutBefore: beforeControl("down", 2),
      kept: SIZE,
    },
  ];
  let index = 0;
  for (const phase of phases) {
    await t.step(`cut ${phase.label}`, async () => {
      const out = join(dir.path, `out-${index++}`);
      await Deno.mkdir(out);
      if (phase.earlier) await writePrefix(source, partialPath(out, "file.bin"), phase.earlier);
      {
        await using relay = new CuttingRelay(
          server.port,
          phase.cutBefore ?? (() => false),
          phase.rawCut,
        );
        failed(await ferry("get", server, ["file.bin", "-o", out], relay.address), /^ferry: /);
      }
      assert.ok(!await exists(join(out, "file.bin")), "nothing under the final name");
      assert.equal(await sizeOf(partialPath(out, "file.bin")), phase.kept);
      const again = doneOne(await ferry("get", server, ["file.bin", "-o", out]));
      assert.equal(again.resumedFrom, phase.kept ?? 0);
      assert.equal(again.transferred, SIZE - (phase.kept ?? 0));
      assert.equal(await sha256File(join(out, "file.bin")), hash);
      assert.deepEqual(await names(out), ["file.bin"]);
    });
  }
});

Deno.test("`ferry put` resumes after the server restarts between the cut and the re-run", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(dir.path, "big.bin");
  await makeFile(source, 8 * MiB + 5, 3);
  const first = await startServe(srv);
  await using _first = first;
  {
    await using relay = new CuttingRelay(first.port, beforeData("up", 12));
    failed(
      await andServerLetsGo(first, () => ferry("put", first, [source], relay.address)),
      /^ferry: /,
    );
  }
  assert.equal(await first.stop("SIGKILL").then((status) => status.signal), "SIGKILL");
  assert.equal(await sizeOf(partialPath(srv, "uploaded_big.bin")), 12 * CHUNK);
  // A new process, same folder and code: the partial file on disk is all it needs.
  await using second = await startServe(srv, { codeFile: first.codeFile });
  const again = doneOne(await ferry("put", second, [source]));
  assert.equal(again.resumedFrom, 12 * CHUNK);
  assert.equal(await sha256File(join(srv, "uploaded_big.bin")), await sha256File(source));
  assert.deepEqual(await names(srv), ["uploaded_big.bin"]);
});

Deno.test("a crash between the commit's link and unlink leaves a partial linked to the target: `--force` never writes through it", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const size = 2 * MiB + 3;
  await using server = await startServe(srv);

  await t.step("upload", async () => {
    // The state a server killed inside commit leaves: target and partial name share one inode.
    const target = join(srv, "uploaded_doc.bin");
    await makeFile(target, size, 4);
    await Deno.link(target, partialPath(srv, "uploaded_doc.bin"));
    const old = await sha256File(target);
    const source = join(dir.path, "doc.bin");
    await makeFile(source, size, 5);
    {
      await using relay = new CuttingRelay(server.port, beforeData("up", 3));
      failed(
        await andServerLetsGo(
          server,
          () => ferry("put", server, [source, "--force"], relay.address),
        ),
        /^ferry: /,
      );
    }
    assert.equal(await sha256File(target), old, "the existing file is untouched by the cut upload");
    const again = doneOne(await ferry("put", server, [source, "--force", "--verify"]));
    assert.equal(await sha256File(target), await sha256File(source));
    assert.equal(again.sha256, await sha256File(source));
    assert.deepEqual(await names(srv), ["uploaded_doc.bin"]);
  });

  await t.step("download", async () => {
    const target = join(out, "doc.bin");
    await makeFile(target, size, 6);
    await Deno.link(target, partialPath(out, "doc.bin"));
    const old = await sha256File(target);
    const source = join(srv, "doc.bin");
    await makeFile(source, size, 7);
    {
      await using relay = new CuttingRelay(server.port, beforeData("down", 3));
      failed(
        await ferry("get", server, ["doc.bin", "-o", out, "--force"], relay.address),
        /^ferry: /,
      );
    }
    assert.equal(
      await sha256File(target),
      old,
      "the existing file is untouched by the cut download",
    );
    const again = doneOne(
      await ferry("get", server, ["doc.bin", "-o", out, "--force", "--verify"]),
    );
    assert.equal(await sha256File(target), await sha256File(source));
    assert.equal(again.sha256, await sha256File(source));
    assert.deepEqual(await names(out), ["doc.bin"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Sources and partial files that changed between the cut and the re-run

/** Appends `extra` bytes of another pattern to `path`. */
async function grow(path: string, extra: number, seed: number): Promise<void> {
  const tail = join(path + ".tail");
  await makeFile(tail, extra, seed);
  const bytes = await Deno.readFile(tail);
  await Deno.remove(tail);
  await Deno.writeFile(path, bytes, { append: true });
}

Deno.test("a source grown or truncated between the cut and the re-run: resumed when the kept prefix still matches, else restarted", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await using server = await startServe(srv);
  const kept = CHUNK + 99;
  let step = 0;
  const cases: { label: string; change: (path: string) => Promise<void>; resumed: boolean }[] = [
    { label: "grown", change: (path) => grow(path, MiB + 1, 9), resumed: true },
    {
      label: "truncated, still longer than the kept prefix",
      change: (path) => Deno.truncate(path, kept + 1),
      resumed: true,
    },
    {
      label: "truncated below the kept prefix",
      change: (path) => Deno.truncate(path, kept - 1),
      resumed: false,
    },
    { label: "truncated to 0", change: (path) => Deno.truncate(path, 0), resumed: false },
  ];
  for (const { label, change, resumed } of cases) {
    await t.step(`upload, local source ${label}`, async () => {
      const folder = `put-${step++}`;
      await Deno.mkdir(join(srv, folder));
      const source = join(dir.path, `${folder}.bin`);
      await makeFile(source, 2 * MiB, 8);
      await writePrefix(source, partialPath(join(srv, folder), `uploaded_${folder}.bin`), kept);
      await change(source);
      const again = doneOne(await ferry("put", server, [source, "--to", folder]));
      assert.equal(again.resumedFrom, resumed ? kept : 0);
      assert.equal(
        await sha256File(join(srv, folder, `uploaded_${folder}.bin`)),
        await sha256File(source),
      );
      assert.deepEqual(await names(join(srv, folder)), [`uploaded_${folder}.bin`]);
    });
    await t.step(`download, remote source ${label}`, async () => {
      const name = `get-${step++}.bin`;
      const source = join(srv, name);
      await makeFile(source, 2 * MiB, 8);
      const out = join(dir.path, name + ".out");
      await Deno.mkdir(out);
      await writePrefix(source, partialPath(out, name), kept);
      await change(source);
      const again = doneOne(await ferry("get", server, [name, "-o", out]));
      assert.equal(again.resumedFrom, resumed ? kept : 0);
      assert.equal(await sha256File(join(out, name)), await sha256File(source));
      assert.deepEqual(await names(out), [name]);
    });
  }
});

Deno.test("a partial file of the full size whose bytes all differ is restarted from 0, never committed", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const source = join(dir.path, "same.bin");
  await makeFile(source, MiB + 17, 10);
  await Deno.copyFile(source, join(srv, "same.bin"));
  const wrong = inverted(await Deno.readFile(source));
  await Deno.writeFile(partialPath(srv, "uploaded_same.bin"), wrong);
  await Deno.writeFile(partialPath(out, "same.bin"), wrong);
  await using server = await startServe(srv);
  const hash = await sha256File(source);

  const put = doneOne(await ferry("put", server, [source]));
  assert.deepEqual([put.resumedFrom, put.transferred], [0, MiB + 17]);
  assert.equal(await sha256File(join(srv, "uploaded_same.bin")), hash);
  const get = doneOne(await ferry("get", server, ["same.bin", "-o", out]));
  assert.deepEqual([get.resumedFrom, get.transferred], [0, MiB + 17]);
  assert.equal(await sha256File(join(out, "same.bin")), hash);
  assert.deepEqual(await partialsBelow(dir.path), []);
});

Deno.test("two different files uploaded to one remote name with a cut in between: the second is never stitched onto the first", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.mkdir(join(dir.path, "a"));
  await Deno.mkdir(join(dir.path, "b"));
  await Deno.mkdir(join(dir.path, "c"));
  await using server = await startServe(srv);
  const first = join(dir.path, "a", "x.bin");
  await makeFile(first, 3 * MiB, 11);
  const cutFirst = async () => {
    await using relay = new CuttingRelay(server.port, beforeData("up", 6));
    failed(
      await andServerLetsGo(server, () => ferry("put", server, [first], relay.address)),
      /^ferry: /,
    );
    assert.equal(await sizeOf(partialPath(srv, "uploaded_x.bin")), 6 * CHUNK);
  };

  await t.step("a different file of the same size starts from 0", async () => {
    await cutFirst();
    const second = join(dir.path, "b", "x.bin");
    await makeFile(second, 3 * MiB, 12);
    const again = doneOne(await ferry("put", server, [second]));
    assert.equal(again.resumedFrom, 0);
    assert.equal(await sha256File(join(srv, "uploaded_x.bin")), await sha256File(second));
    await Deno.remove(join(srv, "uploaded_x.bin"));
  });

  await t.step(
    "a different file that shares the kept bytes resumes, and ends as itself",
    async () => {
      await cutFirst();
      const second = join(dir.path, "c", "x.bin");
      const bytes = await Deno.readFile(first);
      bytes.fill(0x42, 2 * MiB); // the same first 2 MiB (more than was kept), then different
      await Deno.writeFile(second, bytes);
      const again = doneOne(await ferry("put", server, [second]));
      assert.equal(again.resumedFrom, 6 * CHUNK);
      assert.equal(await sha256File(join(srv, "uploaded_x.bin")), await sha256File(second));
      assert.deepEqual(await names(srv), ["uploaded_x.bin"]);
    },
  );
});

Deno.test("a target that appeared after the cut is refused naming --force, the kept prefix stays, and --force resumes from it", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  const source = join(dir.path, "doc.bin");
  await makeFile(source, 2 * MiB, 13);
  await Deno.copyFile(source, join(srv, "doc.bin"));
  const kept = 3 * CHUNK;
  await writePrefix(source, partialPath(srv, "uploaded_doc.bin"), kept);
  await writePrefix(source, partialPath(out, "doc.bin"), kept);
  await Deno.writeTextFile(join(srv, "uploaded_doc.bin"), "someone else's\n");
  await Deno.writeTextFile(join(out, "doc.bin"), "mine\n");
  await using server = await startServe(srv);

  failed(await ferry("put", server, [source]), /already exists on the server: use --force/);
  failed(await ferry("get", server, ["doc.bin", "-o", out]), /already exists: use --force/);
  assert.equal(await Deno.readTextFile(join(srv, "uploaded_doc.bin")), "someone else's\n");
  assert.equal(await Deno.readTextFile(join(out, "doc.bin")), "mine\n");
  assert.equal(await sizeOf(partialPath(srv, "uploaded_doc.bin")), kept);
  assert.equal(await sizeOf(partialPath(out, "doc.bin")), kept);

  const hash = await sha256File(source);
  const put = doneOne(await ferry("put", server, [source, "--force"]));
  assert.equal(put.resumedFrom, kept);
  assert.equal(await sha256File(join(srv, "uploaded_doc.bin")), hash);
  const get = doneOne(await ferry("get", server, ["doc.bin", "-o", out, "--force"]));
  assert.equal(get.resumedFrom, kept);
  assert.equal(await sha256File(join(out, "doc.bin")), hash);
  assert.deepEqual(await partialsBelow(dir.path), []);
});

// ---------------------------------------------------------------------------------------------
// Re-running a cut command of several files

/** Every file below `root` (relative path -> SHA-256) and every folder (-> "dir"). */
async function tree(root: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) {
        found[prefix + entry.name] = "dir";
        await walk(path, `${prefix}${entry.name}/`);
      } else found[prefix + entry.name] = await sha256File(path);
    }
  };
  await walk(root, "");
  return found;
}

Deno.test("re-running a cut folder download skips the files already complete, resumes the cut one, fetches the rest", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(join(srv, "photos", "sub"), { recursive: true });
  await Deno.mkdir(join(srv, "photos", "empty"));
  await Deno.mkdir(out);
  await makeFile(join(srv, "photos", "a.bin"), CHUNK + 5, 14); // data records 0-1
  await makeFile(join(srv, "photos", "b.bin"), 2 * MiB, 15); // data records 2-9
  await makeFile(join(srv, "photos", "sub", "c.bin"), 1000, 16);
  await using server = await startServe(srv);
  const wanted = await tree(join(srv, "photos"));
  {
    await using relay = new CuttingRelay(server.port, beforeData("down", 5));
    failed(await ferry("get", server, ["photos", "-o", out], relay.address), /^ferry: /);
  }
  assert.equal(await sha256File(join(out, "photos", "a.bin")), wanted["a.bin"]);
  assert.equal(await sizeOf(partialPath(join(out, "photos"), "b.bin")), 3 * CHUNK);
  assert.ok(!await exists(join(out, "photos", "b.bin")));

  await t.step("the re-run completes: a.bin skipped, b.bin resumed, c.bin fetched", async () => {
    const result = await ferry("get", server, ["photos", "-o", out]);
    const byName = Object.fromEntries(done(result).map((event) => [event.name, event]));
    assert.equal(byName["photos/a.bin"]?.skipped, true);
    assert.equal(byName["photos/a.bin"]?.transferred, 0);
    assert.equal(byName["photos/a.bin"]?.sha256, wanted["a.bin"]);
    assert.equal(byName["photos/b.bin"]?.resumedFrom, 3 * CHUNK);
    assert.equal(byName["photos/b.bin"]?.skipped, undefined);
    assert.equal(byName["photos/sub/c.bin"]?.resumedFrom, 0);
    assert.deepEqual(await tree(join(out, "photos")), wanted);
    assert.deepEqual(await partialsBelow(out), []);
  });

  await t.step("a third run moves nothing and says so", async () => {
    const result = await runFerry(
      ["get", server.address, "photos", "-o", out, "--code-file", server.codeFile],
    );
    assert.equal(result.code, 0, result.stderr);
    // A folder's files are summed up in one line (their own lines are for a single file).
    assert.match(result.stdout, /^Downloaded 0 files \(0 B\) .*; 3 skipped \(already complete\)$/m);
    assert.deepEqual(await tree(join(out, "photos")), wanted);
  });

  await t.step(
    "a local file that differs (same size or not) is kept and named with --force; the command exits 1",
    async () => {
      const a = join(out, "photos", "a.bin");
      await Deno.writeFile(a, inverted(await Deno.readFile(a)));
      const changed = await sha256File(a);
      failed(
        await ferry("get", server, ["photos", "-o", out]),
        /photos\/a\.bin \(already exists locally and differs: use --force to replace it\)/,
      );
      assert.equal(await sha256File(a), changed);
      await Deno.truncate(a, 10);
      failed(
        await ferry("get", server, ["photos", "-o", out]),
        /photos\/a\.bin \(already exists locally and differs: use --force to replace it\)/,
      );
      assert.equal(await sizeOf(a), 10);
      assert.deepEqual(await partialsBelow(out), []);
      doneOne(await ferry("get", server, ["photos/a.bin", "-o", join(out, "photos"), "--force"]));
      assert.deepEqual(await tree(join(out, "photos")), wanted);
    },
  );
});

Deno.test("re-running a cut download of several files skips the complete ones, and keeps and names any that differ while the rest land", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  // one.bin's 1000 bytes travel in a bundle with its messages (small files' answers are
  // gathered, PROTOCOL.md section 3): two.bin's are data records 0-3.
  await makeFile(join(srv, "one.bin"), 1000, 17);
  await makeFile(join(srv, "two.bin"), MiB, 18);
  await using server = await startServe(srv);
  {
    await using relay = new CuttingRelay(server.port, beforeData("down", 2));
    failed(
      await ferry("get", server, ["one.bin", "two.bin", "-o", out], relay.address),
      /^ferry: /,
    );
  }
  const again = done(await ferry("get", server, ["one.bin", "two.bin", "-o", out]));
  assert.deepEqual(again.map((event) => [event.name, event.skipped ?? false, event.resumedFrom]), [
    ["one.bin", true, 1000],
    ["two.bin", false, 2 * CHUNK],
  ]);
  assert.equal(await sha256File(join(out, "one.bin")), await sha256File(join(srv, "one.bin")));
  assert.equal(await sha256File(join(out, "two.bin")), await sha256File(join(srv, "two.bin")));

  // A changed `two.bin` leaves the local one as it is, named; `three.bin` still lands.
  await makeFile(join(srv, "three.bin"), 1000, 19);
  await makeFile(join(srv, "two.bin"), MiB, 20);
  const localTwo = await sha256File(join(out, "two.bin"));
  failed(
    await ferry("get", server, ["three.bin", "two.bin", "-o", out]),
    /^ferry: 1 of the 2 paths could not be downloaded: two\.bin \(already exists locally and differs: use --force/,
  );
  assert.equal(await sha256File(join(out, "three.bin")), await sha256File(join(srv, "three.bin")));
  assert.equal(await sha256File(join(out, "two.bin")), localTwo);
  assert.deepEqual(await partialsBelow(out), []);

  // A local folder where the remote path is a file is said so, with or without --force.
  await Deno.remove(join(out, "three.bin"));
  await Deno.mkdir(join(out, "three.bin"));
  failed(await ferry("get", server, ["three.bin", "-o", out]), /three\.bin exists and is a folder/);
  failed(
    await ferry("get", server, ["three.bin", "-o", out, "--force"]),
    /three\.bin exists and is a folder/,
  );
  assert.deepEqual(await names(join(out, "three.bin")), []);
});

Deno.test("re-running a cut folder upload skips the file already uploaded and resumes the cut one", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const local = join(dir.path, "docs");
  await Deno.mkdir(srv);
  await Deno.mkdir(local);
  await makeFile(join(local, "a.bin"), CHUNK + 5, 21); // data records 0-1
  await makeFile(join(local, "b.bin"), MiB, 22); // data records 2-5
  await using server = await startServe(srv);
  {
    await using relay = new CuttingRelay(server.port, beforeData("up", 4));
    failed(
      await andServerLetsGo(server, () => ferry("put", server, [local], relay.address)),
      /^ferry: /,
    );
  }
  const remote = join(srv, "uploaded_docs");
  assert.equal(await sha256File(join(remote, "a.bin")), await sha256File(join(local, "a.bin")));
  assert.equal(await sizeOf(partialPath(remote, "b.bin")), 2 * CHUNK);
  // The server confirms a.bin holds these very bytes (`ifIdentical`), and b.bin resumes.
  const again = done(await ferry("put", server, [local]));
  assert.deepEqual(
    again.map((
      event,
    ) => [event.remote, event.resumedFrom, event.transferred, event.skipped ?? false]),
    [
      ["uploaded_docs/a.bin", CHUNK + 5, 0, true],
      ["uploaded_docs/b.bin", 2 * CHUNK, MiB - 2 * CHUNK, false],
    ],
  );
  assert.deepEqual(await tree(remote), await tree(local));
});

Deno.test("an upload whose target appears just before the commit is refused naming --force, and `--force` then moves no byte again", async () => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  const source = join(dir.path, "late.bin");
  await makeFile(source, MiB + 3, 23);
  await using server = await startServe(srv);
  const target = join(srv, "uploaded_late.bin");
  {
    // Someone else's file takes the name while the last bytes are on their way.
    await using relay = new CuttingRelay(server.port, (seen) => {
      if (beforeControl("up", 2)(seen)) Deno.writeTextFileSync(target, "someone else's\n");
      return false;
    });
    const refused = await ferry("put", server, [source], relay.address);
    // Named as the client knows it: the server's own folder is none of its business.
    failed(refused, /^ferry: uploaded_late\.bin already exists on the server: use --force/);
  }
  assert.equal(await Deno.readTextFile(target), "someone else's\n");
  const forced = doneOne(await ferry("put", server, [source, "--force"]));
  assert.equal(forced.resumedFrom, MiB + 3);
  assert.equal(forced.transferred, 0);
  assert.equal(await sha256File(target), await sha256File(source));
  assert.deepEqual(await names(srv), ["uploaded_late.bin"]);

  // With --force, a folder that took the name is never replaced; the reply names no server path.
  await Deno.remove(target);
  {
    await using relay = new CuttingRelay(server.port, (seen) => {
      if (beforeControl("up", 2)(seen)) Deno.mkdirSync(target);
      return false;
    });
    const refused = await ferry("put", server, [source, "--force"], relay.address);
    failed(refused, /^ferry: uploaded_late\.bin exists and is a folder$/);
  }
  assert.ok((await Deno.lstat(target)).isDirectory);
  assert.deepEqual(await names(srv), ["uploaded_late.bin"]);
});

// ---------------------------------------------------------------------------------------------
// Resuming a large file: hashing the kept prefix takes time

/** A kept prefix that takes 0.3 s or more to hash here (a large one on a slow disk: minutes). */
const BIG = 384 * MiB;

/** A sparse file of `zeros` zero bytes followed by `tail` (cheap on disk, slow-ish to hash). */
async function sparse(path: string, zeros: number, tail = ""): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, zeros);
  if (tail) await Deno.writeTextFile(path, tail, { append: true });
}

Deno.test("resuming a large file: the time either side spends hashing the kept prefix is not taken for a stalled peer", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const out = join(dir.path, "out");
  await Deno.mkdir(srv);
  await Deno.mkdir(out);
  // This server gives an idle peer 0.15 s.
  await using server = await startServe(srv, { args: ["--idle-timeout", "0.15"] });
  const tail = "the last bytes\n";
  await sparse(join(srv, "huge.img"), BIG, tail);
  const zeros = createHash("sha256");
  const block = new Uint8Array(MiB);
  for (let index = 0; index < BIG / MiB; index++) zeros.update(block);
  const prefixSha256 = zeros.copy().digest("hex");
  const wholeSha256 = zeros.update(new TextEncoder().encode(tail)).digest("hex");

  await t.step(
    "upload: the server hashes its partial file, then waits while the client hashes",
    async () => {
      const source = join(dir.path, "huge.img");
      await sparse(source, BIG, tail);
      await sparse(partialPath(srv, "uploaded_huge.img"), BIG);
      const again = doneOne(await ferry("put", server, [source, "--verify"]));
      assert.equal(again.resumedFrom, BIG);
      assert.equal(again.transferred, tail.length);
      assert.equal(again.sha256, wholeSha256);
    },
  );

  await t.step("download: the server hashes the asked prefix before it answers", async () => {
    await using session = await manualSession(server.port, codeSecret(server.code));
    await session.send({ t: "get", path: "huge.img", offset: BIG, prefixSha256 });
    const header = await session.next();
    assert.equal(header?.t === "file" && header.offset, BIG);
    assert.equal(await session.next(), undefined); // the one data record: the tail
    const end = await session.next();
    assert.equal(end?.t === "file-end" && end.sha256, wholeSha256);
  });

  await t.step("download: the client waits while the server hashes", async () => {
    await using relaxed = await startServe(srv, { codeFile: server.codeFile });
    await sparse(partialPath(out, "huge.img"), BIG);
    await using client = await FerryClient.connect({
      hostname: "127.0.0.1",
      port: relaxed.port,
      secret: codeSecret(server.code),
      idleTimeoutMs: 150,
    });
    const result = await client.download("huge.img", out, "huge.img", { verify: true });
    assert.equal(result.resumedFrom, BIG);
    assert.equal(result.sha256, wholeSha256);
  });
});

Deno.test("two `get`s of one file into one folder at once: the second is told the file is busy, the first completes", async () => {
  await using served = await tempDir();
  await using out = await tempDir();
  await makeFile(join(served.path, "shared.bin"), 24 * 1024 * 1024, 31);
  await using server = await startServe(served.path);
  const args = [
    "get",
    server.address,
    "shared.bin",
    "-o",
    out.path,
    "--code-file",
    server.codeFile,
  ];
  await using first = spawnFerry(args);
  await partialGrows(join(out.path, PARTIAL_PREFIX + "shared.bin"), 1024 * 1024);
  first.signal("SIGSTOP"); // the first transfer is held mid-way, its partial file locked
  let second;
  try {
    second = await runFerry(args);
  } finally {
    first.signal("SIGCONT");
  }
  assert.equal(second.code, 1, second.stderr);
  assert.match(second.stderr, /being received by another transfer/);
  const done = await first.result;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(
    await sha256File(join(out.path, "shared.bin")),
    await sha256File(join(served.path, "shared.bin")),
  );
});

Deno.test("re-running a cut folder `put` skips the files already complete and sends only the rest", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const folder = join(local.path, "album");
  await Deno.mkdir(folder);
  for (const [index, name] of ["a.bin", "b.bin", "c.bin"].entries()) {
    await makeFile(join(folder, name), (index + 1) * 1024 * 1024, 40 + index);
  }
  await using server = await startServe(served.path);
  const args = ["put", server.address, folder, "--json", "--code-file", server.codeFile];
  const first = await runFerry(args);
  assert.equal(first.code, 0, first.stderr);
  // As if the first run had been cut during c.bin: its final file is gone.
  await Deno.remove(join(served.path, "uploaded_album", "c.bin"));

  const again = await runFerry(args);
  assert.equal(again.code, 0, again.stderr);
  const done = again.stdout.trim().split("\n").map((line) => JSON.parse(line))
    .filter((event) => event.event === "done");
  const byName = new Map(done.map((event) => [event.remote, event]));
  assert.equal(byName.get("uploaded_album/a.bin")?.skipped, true);
  assert.equal(byName.get("uploaded_album/b.bin")?.skipped, true);
  assert.equal(byName.get("uploaded_album/a.bin")?.transferred, 0);
  assert.equal(byName.get("uploaded_album/c.bin")?.transferred, 3 * 1024 * 1024);
  for (const name of ["a.bin", "b.bin", "c.bin"]) {
    assert.equal(
      await sha256File(join(served.path, "uploaded_album", name)),
      await sha256File(join(folder, name)),
    );
  }
});

Deno.test("`put` of a file whose remote twin differs is still refused naming --force, and changes nothing", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const file = join(local.path, "notes.txt");
  await Deno.writeTextFile(file, "version one");
  await using server = await startServe(served.path);
  const args = ["put", server.address, file, "--code-file", server.codeFile];
  assert.equal((await runFerry(args)).code, 0);
  const same = await runFerry(args);
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /Skipped notes\.txt|Skipped uploaded_notes\.txt/);
  await Deno.writeTextFile(file, "version two");
  const differs = await runFerry(args);
  assert.equal(differs.code, 1);
  assert.match(differs.stderr, /--force/);
  assert.equal(await Deno.readTextFile(join(served.path, "uploaded_notes.txt")), "version one");
});

Deno.test("a drop box never confirms that an upload matches a file already there", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const file = join(local.path, "guess.txt");
  await Deno.writeTextFile(file, "someone else's secret");
  await Deno.writeTextFile(join(served.path, "uploaded_guess.txt"), "someone else's secret");
  await using server = await startServe(served.path, { args: ["--upload-only"] });
  const result = await runFerry(["put", server.address, file, "--code-file", server.codeFile]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /already exists/);
  assert.doesNotMatch(result.stdout, /Skipped/);
});
