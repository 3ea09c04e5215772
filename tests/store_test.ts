import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path/posix";
import { ExistsError, NotFoundError, PathError } from "../lib/errors.ts";
import { LocalStore } from "../lib/store/local.ts";
import { FLUSH_AHEAD_BYTES } from "../lib/store/partial_file.ts";
import type { EntryInfo } from "../lib/store/store.ts";
import type { SkippedEntry } from "../lib/protocol/messages.ts";

/**
 * A temporary layout, removed on dispose:
 *
 * ```
 * base/
 *   root/                     the served folder
 *     a.txt                   "hello"
 *     docs/b.md, docs/c/      c is empty
 *     .ferry-partial.up.bin   a transfer in progress
 *   root2/f.txt               sibling whose name starts with "root"
 *   outside/secret.txt        must never be reachable
 * ```
 */
async function makeLayout() {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "ferry-store-" }));
  const root = join(base, "root");
  await Deno.mkdir(join(root, "docs", "c"), { recursive: true });
  await Deno.mkdir(join(base, "root2"));
  await Deno.mkdir(join(base, "outside"));
  await Deno.writeTextFile(join(root, "a.txt"), "hello");
  await Deno.writeTextFile(join(root, "docs", "b.md"), "# b");
  await Deno.writeTextFile(join(root, ".ferry-partial.up.bin"), "half");
  await Deno.writeTextFile(join(base, "root2", "f.txt"), "sibling");
  await Deno.writeTextFile(join(base, "outside", "secret.txt"), "secret");
  return {
    base,
    root,
    /** Creates a symbolic link at `root/<at>` whose target text is `target`. */
    link: (target: string, at: string) => Deno.symlink(target, join(root, at)),
    async [Symbol.asyncDispose]() {
      await Deno.remove(base, { recursive: true });
    },
  };
}

/**
 * The answer for a path refused for what it leads to (outside, excluded, a partial file, a loop,
 * a device): the same `NotFoundError` as a missing path, its reason kept in `cause` for the log.
 */
function HIDDEN(error: unknown): boolean {
  return error instanceof NotFoundError && error.cause instanceof PathError &&
    /^Cannot find ".*": no such file or folder$/.test(error.message);
}

function list(store: LocalStore, path: string): Promise<EntryInfo[]> {
  return Array.fromAsync(store.entries(path));
}

async function names(store: LocalStore, path: string): Promise<string[]> {
  return (await list(store, path)).map((entry) => entry.name);
}

async function walkPaths(store: LocalStore, path: string): Promise<string[]> {
  const paths: string[] = [];
  for await (const entry of store.walk(path)) {
    paths.push(entry.type === "dir" ? `${entry.path}/` : entry.path);
  }
  return paths;
}

// --- LocalStore.open -----------------------------------------------------------------------------

Deno.test("`LocalStore.open()` resolves the folder to its real path", async () => {
  await using layout = await makeLayout();
  await Deno.symlink(layout.root, join(layout.base, "via-link"));
  const store = await LocalStore.open(join(layout.base, "via-link"));
  strictEqual(store.root, layout.root);
});

Deno.test("`LocalStore.open()` refuses a missing folder and a file", async () => {
  await using layout = await makeLayout();
  await rejects(LocalStore.open(join(layout.base, "missing")), NotFoundError);
  await rejects(LocalStore.open(join(layout.root, "a.txt")), PathError);
});

// --- LocalStore.resolve ----------------------------------------------------------------------------

Deno.test("`LocalStore.resolve()` describes a file, a folder and the root", async () => {
  await using layout = await makeLayout();
  await Deno.chmod(join(layout.root, "a.txt"), 0o640);
  const store = await LocalStore.open(layout.root);

  const file = await store.resolve("a.txt");
  deepStrictEqual({ ...file, mtime: 0 }, {
    name: "a.txt",
    type: "file",
    size: 5,
    mtime: 0,
    mode: 0o640,
  });
  const stat = await Deno.stat(join(layout.root, "a.txt"));
  strictEqual(file.mtime, stat.mtime?.getTime());

  const folder = await store.resolve("docs/");
  deepStrictEqual([folder.name, folder.type, folder.size], ["docs", "dir", 0]);

  for (const spelling of ["", ".", "./"]) {
    deepStrictEqual({ ...(await store.resolve(spelling)), mtime: 0, mode: 0 }, {
      name: "",
      type: "dir",
      size: 0,
      mtime: 0,
      mode: 0,
    });
  }
});

Deno.test("`LocalStore.resolve()` reports a missing path as not found", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("nope.txt"), NotFoundError);
  await rejects(store.resolve("docs/nope/x"), NotFoundError);
  await rejects(store.resolve("a.txt/x"), NotFoundError);
});

Deno.test("`LocalStore.resolve()` refuses a hostile parent path before touching the disk", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  for (const path of ["../outside/secret.txt", "docs/../../outside", "/etc/passwd", "..\\x"]) {
    await rejects(store.resolve(path), PathError, path);
  }
});

Deno.test("`LocalStore.resolve()` follows a symbolic link that stays inside", async () => {
  await using layout = await makeLayout();
  await layout.link("a.txt", "alias.txt");
  await layout.link("docs", "docs-link");
  const store = await LocalStore.open(layout.root);

  const file = await store.resolve("alias.txt");
  deepStrictEqual(file, { ...(await store.resolve("a.txt")), name: "alias.txt" });
  deepStrictEqual(await store.resolve("docs-link/b.md"), await store.resolve("docs/b.md"));
  strictEqual((await store.resolve("docs-link")).type, "dir");
});

Deno.test("`LocalStore.resolve()` refuses a hostile symbolic link to a file outside", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link(join(layout.base, "outside", "secret.txt"), "absolute-link");
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("secret-link"), {
    name: "NotFoundError",
    message: 'Cannot find "secret-link": no such file or folder',
  });
  await rejects(store.resolve("absolute-link"), HIDDEN);
});

Deno.test("`LocalStore.resolve()` refuses a hostile symbolic link to a folder outside", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("out"), HIDDEN);
  await rejects(store.resolve("out/secret.txt"), HIDDEN);
  await rejects(store.resolve("out/missing.txt"), NotFoundError);
});

Deno.test("`LocalStore.resolve()` refuses a hostile chain of links that ends outside", async () => {
  await using layout = await makeLayout();
  await layout.link("step2", "step1");
  await layout.link("docs/step3", "step2");
  await Deno.symlink("../../outside/secret.txt", join(layout.root, "docs", "step3"));
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("step1"), HIDDEN);
  await rejects(store.resolve("step2"), HIDDEN);
  await rejects(store.resolve("docs/step3"), HIDDEN);
});

Deno.test("`LocalStore.resolve()` refuses a hostile link to a sibling sharing the folder's prefix", async () => {
  await using layout = await makeLayout();
  await layout.link("../root2", "sibling");
  await layout.link(join(layout.base, "root2", "f.txt"), "sibling-file");
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("sibling"), HIDDEN);
  await rejects(store.resolve("sibling/f.txt"), HIDDEN);
  await rejects(store.resolve("sibling-file"), HIDDEN);
});

Deno.test("`LocalStore.resolve()` reports a dangling link as not found and a loop as refused", async () => {
  await using layout = await makeLayout();
  await layout.link("gone.txt", "dangling");
  await layout.link("../outside/gone", "dangling-outside");
  await layout.link("loop-b", "loop-a");
  await layout.link("loop-a", "loop-b");
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("dangling"), NotFoundError);
  await rejects(store.resolve("dangling-outside"), NotFoundError);
  await rejects(store.resolve("loop-a"), HIDDEN);
});

Deno.test({
  name: "`LocalStore.resolve()` refuses a socket and `LocalStore.entries()` hides it",
  // Deno asks for net access to create a Unix socket; run with --allow-net to include this test.
  ignore: Deno.permissions.querySync({ name: "net" }).state !== "granted",
}, async () => {
  await using layout = await makeLayout();
  using _listener = Deno.listen({ transport: "unix", path: join(layout.root, "sock") });
  const store = await LocalStore.open(layout.root);
  await rejects(store.resolve("sock"), HIDDEN);
  ok(!(await names(store, "")).includes("sock"));
});

// --- exclusions and partial files -------------------------------------------------------------

Deno.test("`LocalStore` hides and refuses an excluded code file", async () => {
  await using layout = await makeLayout();
  const codeFile = join(layout.root, "ferry.code");
  await Deno.writeTextFile(codeFile, "7-secret-code");
  await layout.link("ferry.code", "code-link");
  const store = await LocalStore.open(layout.root, { exclude: [codeFile] });

  await rejects(store.resolve("ferry.code"), {
    name: "NotFoundError",
    message: 'Cannot find "ferry.code": no such file or folder',
  });
  await rejects(store.openRead("ferry.code"), HIDDEN);
  await rejects(store.openRead("code-link"), HIDDEN);
  deepStrictEqual(await names(store, ""), ["a.txt", "docs"]);
  ok(!(await walkPaths(store, "")).some((path) => path.includes("code")));
});

Deno.test("`LocalStore` excludes a relative path that does not exist yet", async () => {
  await using layout = await makeLayout();
  const cwd = Deno.cwd();
  Deno.chdir(layout.base);
  let store: LocalStore;
  try {
    store = await LocalStore.open("root", { exclude: ["root/later.code"] });
  } finally {
    Deno.chdir(cwd);
  }
  await Deno.writeTextFile(join(layout.root, "later.code"), "code");
  await rejects(store.resolve("later.code"), HIDDEN);
  ok(!(await names(store, "")).includes("later.code"));
});

Deno.test("`LocalStore` hides partial files and refuses links to them", async () => {
  await using layout = await makeLayout();
  await layout.link(".ferry-partial.up.bin", "peek");
  const store = await LocalStore.open(layout.root);
  ok(!(await names(store, "")).some((name) => name.includes("partial") || name === "peek"));
  await rejects(store.resolve(".ferry-partial.up.bin"), PathError);
  await rejects(store.resolve("peek"), HIDDEN);
});

// --- LocalStore.entries ----------------------------------------------------------------------------

Deno.test("`LocalStore.entries()` lists a folder's children sorted by name", async () => {
  await using layout = await makeLayout();
  await Deno.writeTextFile(join(layout.root, "B.txt"), "");
  await Deno.writeTextFile(join(layout.root, "ä.txt"), "");
  const store = await LocalStore.open(layout.root);
  deepStrictEqual(await names(store, ""), ["B.txt", "a.txt", "docs", "ä.txt"]);
  deepStrictEqual(await list(store, "docs"), [
    await store.resolve("docs/b.md"),
    await store.resolve("docs/c"),
  ]);
  deepStrictEqual(await list(store, "docs/c"), []);
});

Deno.test("`LocalStore.entries()` of a file gives that file", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  deepStrictEqual(await list(store, "docs/b.md"), [await store.resolve("docs/b.md")]);
});

Deno.test("`LocalStore.entries()` leaves out names that cannot be requested, and names each with why", async () => {
  await using layout = await makeLayout();
  for (const name of ["esc\u001b[31m", "back\\slash", "CON", "line\nbreak", "dot."]) {
    await Deno.writeTextFile(join(layout.root, name), "x");
  }
  await Deno.writeTextFile(join(layout.root, ".ferry-partial.a.txt"), "hidden, never named");
  const store = await LocalStore.open(layout.root);
  const skipped: SkippedEntry[] = [];
  const listed = await Array.fromAsync(store.entries("", { onSkipped: (e) => skipped.push(e) }));
  // `CON` and `dot.` are ordinary names on Linux; only Windows refuses them.
  deepStrictEqual(
    listed.map((entry) => entry.name),
    Deno.build.os === "windows" ? ["a.txt", "docs"] : ["CON", "a.txt", "docs", "dot."],
  );
  deepStrictEqual(skipped.map((entry) => entry.name).sort(), [
    "back\\slash",
    "esc\\x1b[31m",
    "line\\x0abreak",
  ]);
  ok(
    skipped.every((entry) =>
      /^its name is refused: it contains a (backslash|control)/.test(entry.reason)
    ),
  );
});

Deno.test("`LocalStore.entries()` hides hostile, dangling and looping links but shows inside ones", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("../outside", "out");
  await layout.link("../root2", "sibling");
  await layout.link("gone", "dangling");
  await layout.link("loop", "loop");
  await layout.link("a.txt", "alias.txt");
  await layout.link("docs", "docs-link");
  const store = await LocalStore.open(layout.root);
  const entries = await list(store, "");
  deepStrictEqual(entries.map((entry) => [entry.name, entry.type]), [
    ["a.txt", "file"],
    ["alias.txt", "file"],
    ["docs", "dir"],
    ["docs-link", "dir"],
  ]);
  strictEqual(entries[1]?.size, 5);
});

Deno.test("`LocalStore.entries()` refuses a hostile path", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await LocalStore.open(layout.root);
  await rejects(list(store, ".."), PathError);
  await rejects(list(store, "out"), HIDDEN);
});

// --- LocalStore.walk -------------------------------------------------------------------------------

Deno.test("`LocalStore.walk()` yields files and folders depth first in name order", async () => {
  await using layout = await makeLayout();
  await Deno.mkdir(join(layout.root, "docs", "c", "d"));
  await Deno.writeTextFile(join(layout.root, "docs", "c", "z.txt"), "z");
  const store = await LocalStore.open(layout.root);
  deepStrictEqual(await walkPaths(store, ""), [
    "a.txt",
    "docs/",
    "docs/b.md",
    "docs/c/",
    "docs/c/d/",
    "docs/c/z.txt",
  ]);
  deepStrictEqual(await walkPaths(store, "docs/c"), ["d/", "z.txt"]);
});

Deno.test("`LocalStore.walk()` keeps empty folders and reports entry details", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  const entries = [];
  for await (const entry of store.walk("docs")) entries.push(entry);
  deepStrictEqual(entries.map(({ path, name, type, size }) => ({ path, name, type, size })), [
    { path: "b.md", name: "b.md", type: "file", size: 3 },
    { path: "c", name: "c", type: "dir", size: 0 },
  ]);
});

Deno.test("`LocalStore.walk()` does not loop on a link to its own folder", async () => {
  await using layout = await makeLayout();
  await layout.link(".", "self");
  await Deno.symlink("..", join(layout.root, "docs", "up"));
  const store = await LocalStore.open(layout.root);
  deepStrictEqual(await walkPaths(store, ""), ["a.txt", "docs/", "docs/b.md", "docs/c/"]);
});

Deno.test("`LocalStore.walk()` skips linked folders and hides hostile links", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  await layout.link("../outside", "out");
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("a.txt", "alias.txt");
  const store = await LocalStore.open(layout.root);
  deepStrictEqual(await walkPaths(store, ""), [
    "a.txt",
    "alias.txt",
    "docs/",
    "docs/b.md",
    "docs/c/",
  ]);
});

Deno.test("`LocalStore.walk()` refuses a file and a hostile path", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await LocalStore.open(layout.root);
  await rejects(walkPaths(store, "a.txt"), PathError);
  await rejects(walkPaths(store, "../outside"), PathError);
  await rejects(walkPaths(store, "out"), HIDDEN);
});

// --- LocalStore.openRead ---------------------------------------------------------------------------

Deno.test("`LocalStore.openRead()` opens a file for reading", async () => {
  await using layout = await makeLayout();
  await layout.link("docs/b.md", "b-link");
  const store = await LocalStore.open(layout.root);
  {
    using file = await store.openRead("a.txt");
    strictEqual(file.info.size, 5);
    const buffer = new Uint8Array(16);
    const count = await file.read(buffer);
    strictEqual(new TextDecoder().decode(buffer.subarray(0, count ?? 0)), "hello");
  }
  {
    using file = await store.openRead("b-link");
    strictEqual(file.info.name, "b-link");
  }
});

Deno.test("`LocalStore.openRead()` refuses a folder, a missing file and hostile links", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("../outside", "out");
  const store = await LocalStore.open(layout.root);
  await rejects(store.openRead("docs"), PathError);
  await rejects(store.openRead(""), PathError);
  await rejects(store.openRead("nope"), NotFoundError);
  await rejects(store.openRead("secret-link"), HIDDEN);
  await rejects(store.openRead("out/secret.txt"), HIDDEN);
  await rejects(store.openRead("../outside/secret.txt"), PathError);
});

// --- LocalStore.makeFolder ------------------------------------------------------------------------

Deno.test("`LocalStore.makeFolder()` accepts an existing folder, also through an inside link", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  const store = await LocalStore.open(layout.root);
  await store.makeFolder("docs");
  await store.makeFolder("docs/c/");
  await store.makeFolder("docs-link/new/");
  ok((await Deno.stat(join(layout.root, "docs", "new"))).isDirectory);
});

Deno.test("`LocalStore.makeFolder()` refuses a file on the way", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  await rejects(store.makeFolder("a.txt"), ExistsError);
  await rejects(store.makeFolder("a.txt/x"), PathError);
});

Deno.test("`LocalStore.beginUpload()` enters folders, also through an inside link, and refuses a file on the way, linked or not", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  await layout.link("a.txt", "a-link");
  const store = await LocalStore.open(layout.root);
  for (const path of ["docs/c/new.txt", "docs-link/c/linked.txt"]) {
    const pending = await store.beginUpload(path);
    await pending.write(new TextEncoder().encode(path));
    await pending.commit({ force: false });
  }
  strictEqual(await Deno.readTextFile(join(layout.root, "docs", "c", "new.txt")), "docs/c/new.txt");
  strictEqual(
    await Deno.readTextFile(join(layout.root, "docs", "c", "linked.txt")),
    "docs-link/c/linked.txt",
  );
  for (const path of ["a.txt/x.txt", "a-link/x.txt", "docs/b.md/x.txt"]) {
    await rejects(store.beginUpload(path), PathError, path);
  }
  strictEqual(
    await Deno.readTextFile(join(layout.root, "a.txt")),
    "hello",
    "the file is untouched",
  );
});

Deno.test("`LocalStore.makeFolder()` makes nested folders", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  await store.makeFolder("x/y/z");
  ok((await Deno.stat(join(layout.root, "x", "y", "z"))).isDirectory);
  strictEqual((await store.resolve("x/y/z")).type, "dir");
});

Deno.test("`LocalStore.makeFolder()` refuses to create through a hostile link, or at a refused name", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  await layout.link("../root2", "sibling");
  await layout.link("../outside/not-yet", "dangling-out");
  const store = await LocalStore.open(layout.root);
  await rejects(store.makeFolder("out"), ExistsError);
  await rejects(store.makeFolder("dangling-out"), ExistsError);
  for (const path of ["out/new", "sibling/new", "dangling-out/x"]) {
    await rejects(store.makeFolder(path), HIDDEN, path);
  }
  for (const path of ["../escape", "ok/.ferry-partial.x"]) {
    await rejects(store.makeFolder(path), PathError, path);
  }
  deepStrictEqual(
    (await Array.fromAsync(Deno.readDir(join(layout.base, "outside")))).map((e) => e.name),
    ["secret.txt"],
  );
  deepStrictEqual(
    (await Array.fromAsync(Deno.readDir(join(layout.base, "root2")))).map((e) => e.name),
    ["f.txt"],
  );
  await rejects(Deno.stat(join(layout.base, "escape")), Deno.errors.NotFound);
  await rejects(Deno.stat(join(layout.root, "ok")), Deno.errors.NotFound);
});

// --- LocalStore: writing never goes through a link ---------------------------------------------

Deno.test("`LocalStore.makeFolder()` and `beginUpload()` refuse to create through a hostile link", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  await layout.link("../root2", "sibling");
  await layout.link("../outside/not-yet", "dangling-out");
  const store = await LocalStore.open(layout.root);
  for (const path of ["out/new", "sibling/new", "dangling-out/x", "out/deep/er"]) {
    await rejects(store.makeFolder(path, { mtime: 0 }), HIDDEN, path);
    await rejects(store.beginUpload(`${path}/file.txt`), HIDDEN, path);
  }
  await rejects(store.beginUpload("out/secret.txt"), HIDDEN);
  strictEqual(await store.targetKind("out/secret.txt"), "missing"); // as for a missing name
  strictEqual(await store.openExisting("out/secret.txt"), null); // as for a missing name
  deepStrictEqual(
    (await Array.fromAsync(Deno.readDir(join(layout.base, "outside")))).map((e) => e.name),
    ["secret.txt"],
  );
  deepStrictEqual(
    (await Array.fromAsync(Deno.readDir(join(layout.base, "root2")))).map((e) => e.name),
    ["f.txt"],
  );
  await rejects(Deno.lstat(join(layout.base, "outside", "not-yet")), Deno.errors.NotFound);
});

Deno.test("`LocalStore.makeFolder()` refuses a link at the path itself, and leaves its target's time", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  await layout.link("../outside", "out");
  await layout.link("gone", "dangling");
  const store = await LocalStore.open(layout.root);
  const before = (await Deno.stat(join(layout.base, "outside"))).mtime?.getTime();
  for (const path of ["docs-link", "out", "dangling"]) {
    await rejects(store.makeFolder(path, { mtime: 86_400_000 }), ExistsError, path);
  }
  strictEqual((await Deno.stat(join(layout.base, "outside"))).mtime?.getTime(), before);
  ok((await Deno.lstat(join(layout.root, "dangling"))).isSymlink);
});

Deno.test("`LocalStore` writes into a linked folder that stays inside", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  const store = await LocalStore.open(layout.root);
  await store.makeFolder("docs-link/new", { mtime: 86_400_000 });
  strictEqual((await Deno.stat(join(layout.root, "docs", "new"))).mtime?.getTime(), 86_400_000);
  const pending = await store.beginUpload("docs-link/new/f.txt");
  await pending.write(new TextEncoder().encode("via link"));
  await pending.commit({ force: false });
  strictEqual(await Deno.readTextFile(join(layout.root, "docs", "new", "f.txt")), "via link");
});

Deno.test("`LocalStore.targetKind()` sees links, and `openExisting()` never follows one", async () => {
  await using layout = await makeLayout();
  await layout.link("a.txt", "alias.txt");
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("gone", "dangling");
  await layout.link("docs", "docs-link");
  const store = await LocalStore.open(layout.root);
  for (const path of ["alias.txt", "secret-link", "dangling", "docs-link"]) {
    strictEqual(await store.targetKind(path), "link", path);
    strictEqual(await store.openExisting(path), null, path);
  }
  strictEqual(await store.targetKind("docs-link/b.md"), "file");
  using file = await store.openExisting("docs-link/b.md");
  strictEqual(file?.info.size, 3);
});

Deno.test("`LocalStore.beginUpload()` never writes through a partial name planted as a link", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", ".ferry-partial.up.txt");
  const store = await LocalStore.open(layout.root);
  const pending = await store.beginUpload("up.txt");
  strictEqual(pending.size, 0);
  await pending.write(new TextEncoder().encode("upload"));
  await pending.commit({ force: false });
  strictEqual(await Deno.readTextFile(join(layout.base, "outside", "secret.txt")), "secret");
  strictEqual(await Deno.readTextFile(join(layout.root, "up.txt")), "upload");
});

/** Writes `total` bytes of a repeating pattern to `pending`, 1 MiB at a time. */
async function writePattern(pending: { write(bytes: Uint8Array): Promise<void> }, total: number) {
  const chunk = new Uint8Array(1024 * 1024).map((_, index) => index % 251);
  for (let written = 0; written < total; written += chunk.length) {
    await pending.write(chunk.subarray(0, Math.min(chunk.length, total - written)));
  }
}

Deno.test("`LocalStore.beginUpload()`: a file larger than the flush-ahead step, flushed in the background while written, lands whole", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  const pending = await store.beginUpload("big.bin");
  const total = 2 * FLUSH_AHEAD_BYTES + 12345;
  await writePattern(pending, total);
  await pending.commit({ force: false });
  const landed = await Deno.readFile(join(layout.root, "big.bin"));
  strictEqual(landed.length, total);
  ok(landed.every((byte, index) => byte === (index % (1024 * 1024)) % 251), "every byte in place");
});

Deno.test("`LocalStore.beginUpload()`: a file discarded just after a background flush started is removed", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  const pending = await store.beginUpload("cut.bin");
  await writePattern(pending, FLUSH_AHEAD_BYTES); // the last write starts a background flush
  await pending.discard();
  deepStrictEqual(await names(store, ""), ["a.txt", "docs"]);
  await rejects(Deno.lstat(join(layout.root, ".ferry-partial.cut.bin")), Deno.errors.NotFound);
});

Deno.test("`LocalStore.beginUpload()`: a partial name swapped for a link to a FIFO while a big file is written stalls nothing, and the file still lands whole", async () => {
  await using layout = await makeLayout();
  const store = await LocalStore.open(layout.root);
  const pending = await store.beginUpload("swap.bin");
  await writePattern(pending, 1024 * 1024);
  // A local user with write access to the folder moves the partial file aside and plants a link
  // to a FIFO under its name: opened, it would block; followed, it leads outside.
  const partialPath = join(layout.root, ".ferry-partial.swap.bin");
  const aside = join(layout.base, "aside.bin");
  await Deno.rename(partialPath, aside);
  const fifo = join(layout.base, "outside", "fifo");
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  await Deno.symlink(fifo, partialPath);
  await writePattern(pending, FLUSH_AHEAD_BYTES); // reaches the flush-ahead step: must not hang
  await Deno.remove(partialPath);
  await Deno.rename(aside, partialPath); // put back, so the commit can name it
  await pending.commit({ force: false });
  strictEqual(
    (await Deno.stat(join(layout.root, "swap.bin"))).size,
    FLUSH_AHEAD_BYTES + 1024 * 1024,
  );
});
