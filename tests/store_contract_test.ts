/**
 * The {@link FileStore} contract: one set of behaviours, run against every store (on disk, in
 * memory, and in an S3 bucket of the real gateway that scripts/s3_gateway.sh runs), so that a test
 * written against a `MemoryStore` says something true of the server's folder too. What only the
 * disk has (links, races with local users) is in store_test.ts; what only the object store has
 * (leases, parts, two servers) in s3_store_test.ts.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path/posix";
import { BusyError, ExistsError, NotFoundError, PathError } from "../lib/errors.ts";
import { LocalStore } from "../lib/store/local.ts";
import { MemoryStore } from "../lib/store/memory.ts";
import type { FileStore, StoredFile } from "../lib/store/store.ts";
import { peekHex } from "../lib/transfer/hashing.ts";
import { tempDir } from "./_helpers.ts";
import { gatewaySettings, S3_SKIP, s3Place } from "./_s3.ts";

/** A store under test, and a way to change it behind its back, as a local user would. */
interface Harness extends AsyncDisposable {
  store: FileStore;
  /** Puts a file (text) or, for `null`, a folder at `path`, creating the folders above it. */
  plant(path: string, content: string | null): Promise<void>;
}

type Maker = (options?: { exclude?: string[] }) => Promise<Harness>;

/**
 * What a reader of a file that an upload replaced gets: the old bytes (disk and memory keep them
 * for open readers), or, in an object store that keeps one version, nothing more, and `changed()`
 * says so; never bytes of the new version.
 */
type ReplacedRead = "old bytes" | "ends, changed";

const makers: [string, Maker, { replacedRead: ReplacedRead; skip?: string }][] = [
  ["LocalStore", async (options = {}) => {
    const dir = await tempDir("ferry-contract-");
    const store = await LocalStore.open(dir.path, {
      exclude: (options.exclude ?? []).map((path) => join(dir.path, path)),
    });
    return {
      store,
      async plant(path, content) {
        const local = join(dir.path, path);
        if (content === null) return await Deno.mkdir(local, { recursive: true });
        await Deno.mkdir(dirname(local), { recursive: true });
        await Deno.writeTextFile(local, content);
      },
      [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
    };
  }, { replacedRead: "old bytes" }],
  ["MemoryStore", (options = {}) => {
    const store = new MemoryStore(options);
    return Promise.resolve({
      store,
      async plant(path, content) {
        if (content === null) await store.makeFolder(path);
        else store.writeFile(path, content);
      },
      [Symbol.asyncDispose]: () => Promise.resolve(),
    });
  }, { replacedRead: "old bytes" }],
  ["S3Store", async (options = {}) => {
    const place = s3Place(gatewaySettings());
    const store = await place.open(options);
    return {
      store,
      async plant(path, content) {
        const key = `${place.prefix}/${path}`;
        await place.client.put(content === null ? `${key}/` : key, content ?? "");
      },
      [Symbol.asyncDispose]: () => place[Symbol.asyncDispose](),
    };
  }, { replacedRead: "ends, changed", skip: S3_SKIP }],
];

/**
 * ```
 * a.txt "hello"    B.txt ""    ä.txt ""
 * docs/b.md "# b"  docs/c/ (empty)
 * ```
 */
async function seed(harness: Harness): Promise<FileStore> {
  await harness.plant("a.txt", "hello");
  await harness.plant("B.txt", "");
  await harness.plant("ä.txt", "");
  await harness.plant("docs/b.md", "# b");
  await harness.plant("docs/c", null);
  return harness.store;
}

async function names(store: FileStore, path: string): Promise<string[]> {
  return (await Array.fromAsync(store.entries(path))).map((entry) => entry.name);
}

async function readAll(file: StoredFile): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(3); // small, so reads come in several pieces
  for (let count = await file.read(buffer); count !== null; count = await file.read(buffer)) {
    chunks.push(buffer.slice(0, count));
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
}

async function upload(store: FileStore, path: string, text: string, force = false) {
  const pending = await store.beginUpload(path);
  await pending.truncate(0);
  await pending.write(new TextEncoder().encode(text));
  await pending.commit({ force });
}

const encode = (text: string) => new TextEncoder().encode(text);
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const MTIME = Date.UTC(2021, 4, 6, 7, 8, 9);

for (const [kind, make, { replacedRead, skip }] of makers) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${name} (${kind})`, ignore: skip !== undefined, fn });

  test("`FileStore.resolve()` describes a file, a folder and the served folder itself", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const file = await store.resolve("a.txt");
    deepStrictEqual([file.name, file.type, file.size], ["a.txt", "file", 5]);
    ok(file.mtime > 0);
    const folder = await store.resolve("docs/c/");
    deepStrictEqual([folder.name, folder.type, folder.size], ["c", "dir", 0]);
    for (const spelling of ["", ".", "./"]) {
      strictEqual((await store.resolve(spelling)).name, "");
      strictEqual((await store.resolve(spelling)).type, "dir");
    }
  });

  test("`FileStore.resolve()` reports a missing path as not found", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await rejects(store.resolve("nope.txt"), NotFoundError);
    await rejects(store.resolve("docs/nope/x"), NotFoundError);
    await rejects(store.resolve("a.txt/x"), NotFoundError);
  });

  test("`FileStore` refuses hostile paths (`..`, absolute, NUL, partial names) in every method", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const hostile = [
      "..",
      "../outside",
      "docs/../../outside",
      "/etc/passwd",
      "a\0b",
      "docs/b.md\0.txt",
      "..\\x",
      ".ferry-partial.a.txt",
      "docs//b.md",
    ];
    for (const path of hostile) {
      await rejects(store.resolve(path), PathError, path);
      await rejects(Array.fromAsync(store.entries(path)), PathError, path);
      await rejects(Array.fromAsync(store.walk(path)), PathError, path);
      await rejects(store.openRead(path), PathError, path);
      await rejects(store.openExisting(path), PathError, path);
      await rejects(store.targetKind(path), PathError, path);
      await rejects(store.makeFolder(path), PathError, path);
      await rejects(store.beginUpload(path), PathError, path);
    }
    deepStrictEqual(await names(store, ""), ["B.txt", "a.txt", "docs", "ä.txt"]);
  });

  test("`FileStore.entries()` lists a folder's children by UTF-16 code units", async () => {
    await using harness = await make();
    const store = await seed(harness);
    deepStrictEqual(await names(store, ""), ["B.txt", "a.txt", "docs", "ä.txt"]);
    deepStrictEqual(await names(store, "docs"), ["b.md", "c"]);
    deepStrictEqual(await names(store, "docs/c"), []);
    deepStrictEqual(await Array.fromAsync(store.entries("docs/b.md")), [
      await store.resolve("docs/b.md"),
    ]);
    await rejects(Array.fromAsync(store.entries("nope")), NotFoundError);
  });

  test("`FileStore.entries()` hides uploads in progress and cut until committed", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const pending = await store.beginUpload("docs/new.txt");
    await pending.write(encode("half"));
    deepStrictEqual(await names(store, "docs"), ["b.md", "c"]);
    pending.close();
    deepStrictEqual(await names(store, "docs"), ["b.md", "c"]);
    await rejects(store.resolve("docs/new.txt"), NotFoundError);
    strictEqual(await store.targetKind("docs/new.txt"), "missing");
    ok(!(await Array.fromAsync(store.walk(""))).some((entry) => entry.path.includes("new")));
  });

  test("`FileStore.walk()` yields files and folders depth first in name order", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await harness.plant("docs/c/d", null);
    await harness.plant("docs/c/z.txt", "z");
    const paths = async (path: string) =>
      (await Array.fromAsync(store.walk(path))).map((e) =>
        e.type === "dir" ? `${e.path}/` : e.path
      );
    deepStrictEqual(await paths(""), [
      "B.txt",
      "a.txt",
      "docs/",
      "docs/b.md",
      "docs/c/",
      "docs/c/d/",
      "docs/c/z.txt",
      "ä.txt",
    ]);
    deepStrictEqual(await paths("docs/c"), ["d/", "z.txt"]);
    const [first] = await Array.fromAsync(store.walk("docs"));
    deepStrictEqual({ ...first, mtime: 0 }, {
      ...(await store.resolve("docs/b.md")),
      path: "b.md",
      mtime: 0,
    });
    await rejects(Array.fromAsync(store.walk("a.txt")), PathError);
    await rejects(Array.fromAsync(store.walk("nope")), NotFoundError);
  });

  test("`FileStore.openRead()` reads a file from any position", async () => {
    await using harness = await make();
    const store = await seed(harness);
    using file = await store.openRead("a.txt");
    deepStrictEqual(file.info, await store.resolve("a.txt"));
    strictEqual(await readAll(file), "hello");
    strictEqual(await file.seek(1, Deno.SeekMode.Start), 1);
    strictEqual(await readAll(file), "ello");
    strictEqual(await file.seek(-2, Deno.SeekMode.End), 3);
    strictEqual(await readAll(file), "lo");
  });

  test("`FileStore.openRead()` refuses a folder and reports a missing file", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await rejects(store.openRead("docs"), PathError);
    await rejects(store.openRead(""), PathError);
    await rejects(store.openRead("nope"), NotFoundError);
  });

  test("`FileStore.openExisting()` opens the file at a path, or gives null", async () => {
    await using harness = await make();
    const store = await seed(harness);
    {
      using file = await store.openExisting("docs/b.md");
      strictEqual(file === null ? null : await readAll(file), "# b");
    }
    strictEqual(await store.openExisting("docs"), null);
    strictEqual(await store.openExisting("docs/nope"), null);
    strictEqual(await store.openExisting("nope/nope"), null);
    strictEqual(await store.openExisting(""), null);
    await rejects(store.openExisting("a.txt/x"), PathError);
  });

  test("`FileStore.targetKind()` says what an upload would land on", async () => {
    await using harness = await make();
    const store = await seed(harness);
    strictEqual(await store.targetKind("a.txt"), "file");
    strictEqual(await store.targetKind("docs/c"), "dir");
    strictEqual(await store.targetKind(""), "dir");
    strictEqual(await store.targetKind("docs/nope"), "missing");
    strictEqual(await store.targetKind("nope/deeper/x"), "missing");
    await rejects(store.targetKind("a.txt/x"), PathError);
  });

  test("`FileStore.makeFolder()` creates missing folders, owner-accessible", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await store.makeFolder("x/y/z", { mode: 0o500 });
    deepStrictEqual(await names(store, "x/y"), ["z"]);
    strictEqual((await store.resolve("x/y/z")).mode & 0o700, 0o700);
    await store.makeFolder("x/y/z"); // an existing folder is fine
    await store.makeFolder("docs");
    deepStrictEqual(await names(store, "docs"), ["b.md", "c"]);
  });

  test("`FileStore.makeFolder()` applies mtime to a new and to an existing folder", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await store.makeFolder("new/inner", { mtime: MTIME });
    strictEqual((await store.resolve("new/inner")).mtime, MTIME);
    await store.makeFolder("docs", { mtime: MTIME - 1000 });
    strictEqual((await store.resolve("docs")).mtime, MTIME - 1000);
    await store.makeFolder("new", { mtime: MTIME + 1000 }); // after its files, as the client does
    strictEqual((await store.resolve("new")).mtime, MTIME + 1000);
    strictEqual((await store.resolve("new/inner")).mtime, MTIME);
  });

  test("`FileStore.makeFolder()` refuses a file in the way", async () => {
    await using harness = await make();
    const store = await seed(harness);
    await rejects(store.makeFolder("a.txt"), ExistsError);
    await rejects(store.makeFolder("a.txt/x"), PathError);
    await rejects(store.makeFolder("docs/b.md/x/y"), PathError);
    strictEqual((await store.resolve("a.txt")).type, "file");
  });

  test("`FileStore.beginUpload()` then `commit()` gives the file its name, mode and mtime", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const pending = await store.beginUpload("up/deep/new.txt");
    strictEqual(pending.size, 0);
    await pending.write(encode("new "));
    await pending.write(encode("bytes"));
    strictEqual(pending.size, 9);
    await pending.commit({ force: false, mode: 0o640, mtime: MTIME });
    const info = await store.resolve("up/deep/new.txt");
    deepStrictEqual(info, { name: "new.txt", type: "file", size: 9, mtime: MTIME, mode: 0o640 });
    using file = await store.openRead("up/deep/new.txt");
    strictEqual(await readAll(file), "new bytes");
    deepStrictEqual(await names(store, "up/deep"), ["new.txt"]);
  });

  test("`FileStore.beginUpload()` resumes the kept bytes of a cut upload", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const first = await store.beginUpload("docs/big.bin");
    await first.write(encode("0123456789"));
    first.close(); // the connection was cut
    const second = await store.beginUpload("docs/big.bin");
    strictEqual(second.size, 10);
    strictEqual(peekHex(await second.hashPrefix(10)), sha256("0123456789"));
    strictEqual(peekHex(await second.hashPrefix(4)), sha256("0123"));
    await second.truncate(8); // the sender's file differs after byte 8
    strictEqual(second.size, 8);
    await second.write(encode("xy!"));
    await second.commit({ force: false });
    using file = await store.openRead("docs/big.bin");
    strictEqual(await readAll(file), "01234567xy!");
  });

  test("`PendingFile.discard()` deletes the kept bytes", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const first = await store.beginUpload("gone.bin");
    await first.write(encode("junk"));
    await first.discard();
    const second = await store.beginUpload("gone.bin");
    strictEqual(second.size, 0);
    await second.discard();
    await rejects(store.resolve("gone.bin"), NotFoundError);
  });

  test("`FileStore.beginUpload()` refuses a second writer of the same file as busy", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const first = await store.beginUpload("docs/one.txt");
    await rejects(store.beginUpload("docs/one.txt"), BusyError);
    const other = await store.beginUpload("docs/two.txt"); // another name is free
    await other.discard();
    first.close();
    const again = await store.beginUpload("docs/one.txt"); // free once the first let go
    await again.discard();
  });

  test("`PendingFile.commit()` refuses a name taken meanwhile and keeps the bytes", async () => {
    await using harness = await make();
    const store = await seed(harness);
    const pending = await store.beginUpload("docs/late.txt");
    await pending.write(encode("mine"));
    await harness.plant("docs/late.txt", "theirs");
    await rejects(pending.commit({ force: false }), ExistsError);
    {
      using file = await store.openRead("docs/late.txt");
      strictEqual(await readAll(file), "theirs");
    }
    const again = await store.beginUpload("docs/late.txt"); // a `--force` re-run
    strictEqual(again.size, 4);
    await again.commit({ force: true });
    using file = await store.openRead("docs/late.txt");
    strictEqual(await readAll(file), "mine");
  });

  test("`PendingFile.commit()` with force replaces a file, and its readers never see the new bytes", async () => {
    await using harness = await make();
    const store = await seed(harness);
    using reader = await store.openRead("a.txt");
    await rejects(upload(store, "a.txt", "replaced"), ExistsError);
    await upload(store, "a.txt", "replaced", true);
    if (replacedRead === "old bytes") {
      strictEqual(await readAll(reader), "hello");
      strictEqual(await reader.changed(), true);
    } else {
      strictEqual(await readAll(reader), "");
      strictEqual(await reader.changed(), true);
    }
    using file = await store.openRead("a.txt");
    strictEqual(await readAll(file), "replaced");
  });

  test("`PendingFile.commit()` refuses a folder that took the name, with or without force", async () => {
    await using harness = await make();
    const store = await seed(harness);
    for (const force of [false, true]) {
      const pending = await store.beginUpload("docs/c");
      await pending.write(encode("x"));
      await rejects(pending.commit({ force }), PathError);
      await pending.discard();
    }
    strictEqual(await store.targetKind("docs/c"), "dir");
  });

  test("`FileStore` hides and refuses an excluded path, existing or not", async () => {
    await using harness = await make({ exclude: ["ferry.code", "docs/later.code"] });
    const store = await seed(harness);
    await harness.plant("ferry.code", "7-secret-code");
    // Answered as missing (no existence oracle); the reason stays in `cause` for the log.
    const refused = (error: unknown) =>
      error instanceof NotFoundError && /excluded from the served folder/.test(
        String((error.cause as Error | undefined)?.message),
      );
    deepStrictEqual(await names(store, ""), ["B.txt", "a.txt", "docs", "ä.txt"]);
    ok(!(await Array.fromAsync(store.walk(""))).some((entry) => entry.path.includes("code")));
    await rejects(store.resolve("ferry.code"), refused);
    await rejects(store.openRead("ferry.code"), refused);
    await rejects(store.openExisting("ferry.code"), refused);
    await rejects(store.targetKind("ferry.code"), refused);
    await rejects(store.beginUpload("ferry.code"), refused);
    await rejects(store.makeFolder("ferry.code"), refused);
    await rejects(store.beginUpload("docs/later.code"), refused);
    await rejects(store.makeFolder("docs/later.code"), refused);
    await rejects(store.beginUpload("docs/later.code/inside.txt"), refused);
    deepStrictEqual(await names(store, "docs"), ["b.md", "c"]);
    await rejects(store.resolve("docs/later.code"), NotFoundError);
  });
}
