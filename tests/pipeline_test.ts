/**
 * Many small files without a round trip each (issue 11): a folder download sends the next `get`s
 * before the first answer is read, and a folder upload streams its small files ahead of their
 * answers; every file still lands whole under its name. A fake server shows it: it holds its
 * answers back until several requests have arrived, which a client asking one file at a time
 * would never send.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { getPaths } from "../lib/client/get_paths.ts";
import { planUpload, putPaths, UPLOADS_IN_FLIGHT } from "../lib/client/put_paths.ts";
import { IncompleteError, RemoteError } from "../lib/errors.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { decodeClientMessage, type ListEntry } from "../lib/protocol/messages.ts";
import { tempDir } from "./_helpers.ts";
import { fakeServer } from "./_fake_server.ts";
import { startTestServer } from "./_hostile.ts";
import { MemoryStore } from "../lib/store/memory.ts";
import type { PendingFile } from "../lib/store/store.ts";
import { COMMIT_GROUP_FILES, DEFERRED_AT_ONCE } from "../lib/server/session.ts";

const FILES = 12;
/** Answers are held until this many `get`s are waiting. */
const HELD = 6;

Deno.test("a folder download asks for the next files before the first answer comes", async () => {
  const secret = codeSecret(generateCode());
  const content = (index: number) => new TextEncoder().encode(`file number ${index}\n`);
  const entries: ListEntry[] = Array.from({ length: FILES }, (_, index) => ({
    name: `f${String(index).padStart(2, "0")}.txt`,
    type: "file",
    size: content(index).length,
    mtime: 0,
    mode: 0o644,
  }));
  const mostWaiting: number[] = [];
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    // `ferry get tree` first asks for a file, and lists the folder once told it is one.
    const first = decodeClientMessage((await reader.next()).payload);
    strictEqual(first.t, "get");
    await send({ t: "error", code: "is-dir", message: "tree is a folder" });
    const list = decodeClientMessage((await reader.next()).payload);
    strictEqual(list.t, "list");
    await send({ t: "listing", entries, done: true });
    const waiting: string[] = [];
    for (let answered = 0; answered < FILES;) {
      if (waiting.length < HELD && answered + waiting.length < FILES) {
        const request = decodeClientMessage((await reader.next()).payload);
        if (request.t === "get") waiting.push(request.path);
        continue;
      }
      mostWaiting.push(waiting.length);
      const path = waiting.shift()!;
      const index = Number(path.slice(-6, -4));
      const bytes = content(index);
      await send({ t: "file", size: bytes.length, mtime: 0, mode: 0o644, offset: 0 });
      await writer.write(RecordType.data, bytes);
      await send({ t: "file-end", sha256: "" });
      answered++;
    }
    await reader.next(); // the client's end
  });
  await using out = await tempDir();
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
    timeoutMs: 5000,
    idleTimeoutMs: 5000,
  });
  const results = await getPaths(client, ["tree"], { outputDir: out.path, force: false });
  strictEqual(results.length, FILES);
  strictEqual(Math.max(...mostWaiting), HELD, "several requests were in flight at once");
  for (let index = 0; index < FILES; index++) {
    const name = `f${String(index).padStart(2, "0")}.txt`;
    deepStrictEqual(await Deno.readFile(join(out.path, "tree", name)), content(index));
  }
});

Deno.test("a folder upload streams its small files ahead of their answers", async () => {
  const secret = codeSecret(generateCode());
  const mostWaiting: number[] = [];
  const received = new Map<string, number>();
  await using server = fakeServer(secret, async ({ reader }, send) => {
    const mkdir = decodeClientMessage((await reader.next()).payload);
    strictEqual(mkdir.t, "mkdir");
    await send({ t: "mkdir-done", name: "uploaded_tree" });
    const waiting: string[] = [];
    for (let answered = 0; answered < FILES;) {
      if (waiting.length < HELD && answered + waiting.length < FILES) {
        const put = decodeClientMessage((await reader.next()).payload);
        strictEqual(put.t === "put" && put.stream, true, "small files are streamed");
        if (put.t !== "put") continue;
        let bytes = 0;
        for (let record = await reader.next(); record.type === RecordType.data;) {
          bytes += record.payload.length;
          record = await reader.next();
        }
        received.set(put.name, bytes);
        waiting.push(put.name);
        continue;
      }
      mostWaiting.push(waiting.length);
      const name = waiting.shift()!;
      await send({
        t: "put-done",
        name: `uploaded_${name}`,
        size: received.get(name)!,
        sha256: "",
      });
      answered++;
    }
    // The folder's time, sent again once its files are in.
    const again = decodeClientMessage((await reader.next()).payload);
    strictEqual(again.t, "mkdir");
    await send({ t: "mkdir-done", name: "uploaded_tree" });
    await reader.next(); // the client's end
  });
  await using local = await tempDir();
  await Deno.mkdir(join(local.path, "tree"));
  for (let index = 0; index < FILES; index++) {
    await Deno.writeTextFile(join(local.path, "tree", `f${index}.txt`), `file ${index}\n`);
  }
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
    timeoutMs: 5000,
    idleTimeoutMs: 5000,
  });
  const plan = await planUpload([join(local.path, "tree")]);
  const results = await putPaths(client, plan, { remoteDir: "", force: false });
  strictEqual(results.length, FILES);
  strictEqual(Math.max(...mostWaiting), HELD, "several uploads were in flight at once");
  for (let index = 0; index < FILES; index++) {
    strictEqual(received.get(`tree/f${index}.txt`), `file ${index}\n`.length);
  }
});

Deno.test("refused streamed uploads are read past, so the session stays in step", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  await Deno.mkdir(join(served.path, "uploaded_tree"));
  await Deno.writeTextFile(join(served.path, "uploaded_tree", "f1.txt"), "the owner's own");
  await Deno.mkdir(join(local.path, "tree"));
  for (let index = 0; index < FILES; index++) {
    await Deno.writeTextFile(join(local.path, "tree", `f${index}.txt`), `file ${index}\n`);
  }
  await using server = await startTestServer(served.path);
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  const plan = await planUpload([join(local.path, "tree")]);
  // f1.txt exists and differs: refused (the command fails naming it), every other file lands.
  await rejects(
    putPaths(client, plan, { remoteDir: "", force: false }),
    (error) =>
      error instanceof RemoteError && error.code === "exists" && /f1\.txt/.test(error.message),
  );
  for (let index = 0; index < FILES; index++) {
    const expected = index === 1 ? "the owner's own" : `file ${index}\n`;
    strictEqual(
      await Deno.readTextFile(join(served.path, "uploaded_tree", `f${index}.txt`)),
      expected,
    );
  }
  strictEqual((await client.list("uploaded_tree")).length, FILES, "the session still answers");
  const onDisk: string[] = [];
  for await (const entry of Deno.readDir(join(served.path, "uploaded_tree"))) {
    onDisk.push(entry.name);
  }
  strictEqual(onDisk.length, FILES, `no partial file is left behind: ${onDisk.join(", ")}`);
});

Deno.test("a folder of small and big files, prepared side by side by the server, lands whole both ways", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const sizes = Array.from(
    { length: 40 },
    (_, index) => index % 5 === 0 ? 300 * 1024 + index : index,
  );
  const content = (index: number) =>
    new Uint8Array(sizes[index]!).map((_, at) => (at * 31 + index) & 0xff);
  await Deno.mkdir(join(served.path, "mixed"));
  for (const index of sizes.keys()) {
    await Deno.writeFile(join(served.path, "mixed", `f${index}.bin`), content(index));
  }
  await using server = await startTestServer(served.path);
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  await getPaths(client, ["mixed"], { outputDir: local.path, force: false });
  const plan = await planUpload([join(local.path, "mixed")]);
  await putPaths(client, plan, { remoteDir: "", force: false });
  for (const index of sizes.keys()) {
    const name = `f${index}.bin`;
    deepStrictEqual(await Deno.readFile(join(local.path, "mixed", name)), content(index), name);
    deepStrictEqual(
      await Deno.readFile(join(served.path, "uploaded_mixed", name)),
      content(index),
      `uploaded ${name}`,
    );
  }
});

Deno.test("a file the server cannot read is reported by name and skipped; the rest of the folder lands", async () => {
  const secret = codeSecret(generateCode());
  const names = ["a.txt", "unreadable.txt", "z.txt"];
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    const first = decodeClientMessage((await reader.next()).payload);
    strictEqual(first.t, "get");
    await send({ t: "error", code: "is-dir", message: "tree is a folder" });
    decodeClientMessage((await reader.next()).payload); // list
    await send({
      t: "listing",
      entries: names.map((name) => ({ name, type: "file", size: 2, mtime: 0, mode: 0o644 })),
      done: true,
    });
    for (const name of names) {
      const request = decodeClientMessage((await reader.next()).payload);
      strictEqual(request.t === "get" && request.path, `tree/${name}`);
      if (name === "unreadable.txt") {
        await send({ t: "error", code: "permission", message: "The server has no permission" });
        continue;
      }
      await send({ t: "file", size: 2, mtime: 0, mode: 0o644, offset: 0 });
      await writer.write(RecordType.data, new TextEncoder().encode("ok"));
      await send({ t: "file-end", sha256: "" });
    }
    await reader.next(); // the client's end
  });
  await using out = await tempDir();
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
  });
  await rejects(
    getPaths(client, ["tree"], { outputDir: out.path, force: false }),
    (error) =>
      error instanceof IncompleteError &&
      /1 of the entries of tree could not be downloaded/.test(error.message) &&
      /tree\/unreadable\.txt \(The server has no permission\)/.test(error.message),
  );
  strictEqual(await Deno.readTextFile(join(out.path, "tree", "a.txt")), "ok");
  strictEqual(await Deno.readTextFile(join(out.path, "tree", "z.txt")), "ok");
});

/**
 * A `MemoryStore` whose uploads' flushes wait until {@link release} lets them go, in the order they
 * were asked for, counting the uploads begun: a disk that is slow to make bytes durable.
 */
class SlowFlushStore extends MemoryStore {
  begun = 0;
  #gates: PromiseWithResolvers<void>[] = [];
  #releasedUpTo = 0;

  /** Flushes asked for so far. */
  get flushing(): number {
    return this.#gates.length;
  }

  /** Lets the first `count` flushes (asked for or still to come) go; all of them by default. */
  release(count = Infinity): void {
    this.#releasedUpTo = count;
    for (const gate of this.#gates.slice(0, count)) gate.resolve();
  }

  override async beginUpload(path: string): Promise<PendingFile> {
    const inner = await super.beginUpload(path);
    this.begun++;
    const gateFor = () => {
      const gate = Promise.withResolvers<void>();
      if (this.#gates.push(gate) <= this.#releasedUpTo) gate.resolve();
      return gate.promise;
    };
    return {
      get size() {
        return inner.size;
      },
      hashPrefix: (length) => inner.hashPrefix(length),
      truncate: (length) => inner.truncate(length),
      write: (bytes) => inner.write(bytes),
      async flush() {
        await gateFor();
        await inner.flush();
      },
      commit: (options) => inner.commit(options),
      discard: () => inner.discard(),
      close: () => inner.close(),
    };
  }
}

/** Waits (up to 20 s) until `condition()` holds; the caller then asserts what it saw. */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A folder `tree` of `files` small files under a new temporary folder, and their contents. */
async function smallTree(files: number) {
  const local = await tempDir();
  await Deno.mkdir(join(local.path, "tree"));
  const content = (index: number) => new TextEncoder().encode(`small file ${index}\n`);
  for (let index = 0; index < files; index++) {
    await Deno.writeFile(join(local.path, "tree", `f${index}.txt`), content(index));
  }
  return Object.assign(local, { content });
}

/**
 * Starts `putPaths` of a {@link smallTree} of `files` files into a test server on `store`, without
 * waiting for it: `uploading` settles when it ends. Disposing closes the client, the server and
 * the tree, in that order.
 */
async function startTreeUpload(store: MemoryStore, files: number) {
  const resources = new AsyncDisposableStack();
  try {
    const local = resources.use(await smallTree(files));
    const server = resources.use(await startTestServer("", { store }));
    const client = resources.use(
      await FerryClient.connect({
        hostname: "127.0.0.1",
        port: server.port,
        secret: server.secret,
      }),
    );
    const plan = await planUpload([join(local.path, "tree")]);
    const uploading = putPaths(client, plan, { remoteDir: "", force: false });
    return Object.assign(resources, { uploading, content: local.content });
  } catch (error) {
    await resources.disposeAsync();
    throw error;
  }
}

/** Every file of {@link smallTree} landed whole in `store` under `uploaded_tree/`. */
async function assertLanded(
  store: MemoryStore,
  files: number,
  content: (index: number) => Uint8Array,
) {
  for (let index = 0; index < files; index++) {
    using stored = await store.openRead(`uploaded_tree/f${index}.txt`);
    const bytes = new Uint8Array(64);
    const length = await stored.read(bytes);
    deepStrictEqual(bytes.subarray(0, length ?? 0), content(index), `f${index}.txt`);
  }
}

Deno.test("the server reads the next group of small uploads while the group before it is flushed", async () => {
  const files = 2 * COMMIT_GROUP_FILES + 5;
  ok(UPLOADS_IN_FLIGHT >= 2 * COMMIT_GROUP_FILES, "the client sends two groups ahead");
  ok(DEFERRED_AT_ONCE >= 2 * COMMIT_GROUP_FILES, "the server works on two groups at once");
  const store = new SlowFlushStore();
  await using upload = await startTreeUpload(store, files);
  // Not one flush has ended, yet the second group's files are read and written.
  let begunBeforeAnyFlush: number;
  let flushingThen: number;
  try {
    await waitFor(() => store.begun >= 2 * COMMIT_GROUP_FILES);
    begunBeforeAnyFlush = store.begun;
    flushingThen = store.flushing;
  } finally {
    store.release();
  }
  const results = await upload.uploading;
  strictEqual(begunBeforeAnyFlush, 2 * COMMIT_GROUP_FILES, "two groups begun before a flush ended");
  ok(flushingThen >= COMMIT_GROUP_FILES, "the first group was being flushed meanwhile");
  strictEqual(results.length, files);
  await assertLanded(store, files, upload.content);
});

Deno.test("a server with every request slot taken goes on once the oldest ends, not all of them", async () => {
  const files = 3 * COMMIT_GROUP_FILES + 5;
  const store = new SlowFlushStore();
  await using upload = await startTreeUpload(store, files);
  let begunWithSecondGroupHeld: number;
  try {
    await waitFor(() => store.begun >= DEFERRED_AT_ONCE);
    store.release(COMMIT_GROUP_FILES); // the first group only: the second stays unflushed
    await waitFor(() => store.begun >= DEFERRED_AT_ONCE + COMMIT_GROUP_FILES);
    begunWithSecondGroupHeld = store.begun;
  } finally {
    store.release();
  }
  const results = await upload.uploading;
  strictEqual(
    begunWithSecondGroupHeld,
    DEFERRED_AT_ONCE + COMMIT_GROUP_FILES,
    "the files after the first group were read while the second group was still unflushed",
  );
  strictEqual(results.length, files);
  await assertLanded(store, files, upload.content);
});
