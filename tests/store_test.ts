import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path/posix";
import { NotFoundError, PathError } from "../lib/errors.ts";
import { Store } from "../lib/store/local.ts";

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

async function names(store: Store, path: string): Promise<string[]> {
  return (await store.list(path)).map((entry) => entry.name);
}

async function walkPaths(store: Store, path: string): Promise<string[]> {
  const paths: string[] = [];
  for await (const entry of store.walk(path)) {
    paths.push(entry.type === "dir" ? `${entry.path}/` : entry.path);
  }
  return paths;
}

// --- Store.open -----------------------------------------------------------------------------

Deno.test("`Store.open()` resolves the folder to its real path", async () => {
  await using layout = await makeLayout();
  await Deno.symlink(layout.root, join(layout.base, "via-link"));
  const store = await Store.open(join(layout.base, "via-link"));
  strictEqual(store.root, layout.root);
});

Deno.test("`Store.open()` refuses a missing folder and a file", async () => {
  await using layout = await makeLayout();
  await rejects(Store.open(join(layout.base, "missing")), NotFoundError);
  await rejects(Store.open(join(layout.root, "a.txt")), PathError);
});

// --- Store.resolve ----------------------------------------------------------------------------

Deno.test("`Store.resolve()` describes a file, a folder and the root", async () => {
  await using layout = await makeLayout();
  await Deno.chmod(join(layout.root, "a.txt"), 0o640);
  const store = await Store.open(layout.root);

  const file = await store.resolve("a.txt");
  strictEqual(file.realPath, join(layout.root, "a.txt"));
  deepStrictEqual({ ...file.info, mtime: 0 }, {
    name: "a.txt",
    type: "file",
    size: 5,
    mtime: 0,
    mode: 0o640,
  });
  const stat = await Deno.stat(join(layout.root, "a.txt"));
  strictEqual(file.info.mtime, stat.mtime?.getTime());

  const folder = await store.resolve("docs/");
  strictEqual(folder.realPath, join(layout.root, "docs"));
  strictEqual(folder.info.type, "dir");
  strictEqual(folder.info.size, 0);

  for (const spelling of ["", ".", "./"]) {
    strictEqual((await store.resolve(spelling)).realPath, layout.root);
  }
});

Deno.test("`Store.resolve()` reports a missing path as not found", async () => {
  await using layout = await makeLayout();
  const store = await Store.open(layout.root);
  await rejects(store.resolve("nope.txt"), NotFoundError);
  await rejects(store.resolve("docs/nope/x"), NotFoundError);
  await rejects(store.resolve("a.txt/x"), NotFoundError);
});

Deno.test("`Store.resolve()` refuses a hostile parent path before touching the disk", async () => {
  await using layout = await makeLayout();
  const store = await Store.open(layout.root);
  for (const path of ["../outside/secret.txt", "docs/../../outside", "/etc/passwd", "..\\x"]) {
    await rejects(store.resolve(path), PathError, path);
  }
});

Deno.test("`Store.resolve()` follows a symbolic link that stays inside", async () => {
  await using layout = await makeLayout();
  await layout.link("a.txt", "alias.txt");
  await layout.link("docs", "docs-link");
  const store = await Store.open(layout.root);

  const file = await store.resolve("alias.txt");
  strictEqual(file.realPath, join(layout.root, "a.txt"));
  strictEqual(file.info.name, "alias.txt");
  strictEqual(file.info.type, "file");
  strictEqual((await store.resolve("docs-link/b.md")).realPath, join(layout.root, "docs", "b.md"));
});

Deno.test("`Store.resolve()` refuses a hostile symbolic link to a file outside", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link(join(layout.base, "outside", "secret.txt"), "absolute-link");
  const store = await Store.open(layout.root);
  await rejects(store.resolve("secret-link"), {
    name: "PathError",
    message: 'Refused path "secret-link": it leads outside the served folder',
  });
  await rejects(store.resolve("absolute-link"), PathError);
});

Deno.test("`Store.resolve()` refuses a hostile symbolic link to a folder outside", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await Store.open(layout.root);
  await rejects(store.resolve("out"), PathError);
  await rejects(store.resolve("out/secret.txt"), PathError);
  await rejects(store.resolve("out/missing.txt"), NotFoundError);
});

Deno.test("`Store.resolve()` refuses a hostile chain of links that ends outside", async () => {
  await using layout = await makeLayout();
  await layout.link("step2", "step1");
  await layout.link("docs/step3", "step2");
  await Deno.symlink("../../outside/secret.txt", join(layout.root, "docs", "step3"));
  const store = await Store.open(layout.root);
  await rejects(store.resolve("step1"), PathError);
  await rejects(store.resolve("step2"), PathError);
  await rejects(store.resolve("docs/step3"), PathError);
});

Deno.test("`Store.resolve()` refuses a hostile link to a sibling sharing the folder's prefix", async () => {
  await using layout = await makeLayout();
  await layout.link("../root2", "sibling");
  await layout.link(join(layout.base, "root2", "f.txt"), "sibling-file");
  const store = await Store.open(layout.root);
  await rejects(store.resolve("sibling"), PathError);
  await rejects(store.resolve("sibling/f.txt"), PathError);
  await rejects(store.resolve("sibling-file"), PathError);
});

Deno.test("`Store.resolve()` reports a dangling link as not found and a loop as refused", async () => {
  await using layout = await makeLayout();
  await layout.link("gone.txt", "dangling");
  await layout.link("../outside/gone", "dangling-outside");
  await layout.link("loop-b", "loop-a");
  await layout.link("loop-a", "loop-b");
  const store = await Store.open(layout.root);
  await rejects(store.resolve("dangling"), NotFoundError);
  await rejects(store.resolve("dangling-outside"), NotFoundError);
  await rejects(store.resolve("loop-a"), PathError);
});

Deno.test({
  name: "`Store.resolve()` refuses a socket and `Store.list()` hides it",
  // Deno asks for net access to create a Unix socket; run with --allow-net to include this test.
  ignore: Deno.permissions.querySync({ name: "net" }).state !== "granted",
}, async () => {
  await using layout = await makeLayout();
  using _listener = Deno.listen({ transport: "unix", path: join(layout.root, "sock") });
  const store = await Store.open(layout.root);
  await rejects(store.resolve("sock"), PathError);
  ok(!(await names(store, "")).includes("sock"));
});

// --- exclusions and partial files -------------------------------------------------------------

Deno.test("`Store` hides and refuses an excluded code file", async () => {
  await using layout = await makeLayout();
  const codeFile = join(layout.root, "ferry.code");
  await Deno.writeTextFile(codeFile, "7-secret-code");
  await layout.link("ferry.code", "code-link");
  const store = await Store.open(layout.root, { exclude: [codeFile] });

  await rejects(store.resolve("ferry.code"), {
    name: "PathError",
    message: 'Refused path "ferry.code": it is excluded from the served folder',
  });
  await rejects(store.openRead("ferry.code"), PathError);
  await rejects(store.openRead("code-link"), PathError);
  deepStrictEqual(await names(store, ""), ["a.txt", "docs"]);
  ok(!(await walkPaths(store, "")).some((path) => path.includes("code")));
});

Deno.test("`Store` excludes a relative path that does not exist yet", async () => {
  await using layout = await makeLayout();
  const cwd = Deno.cwd();
  Deno.chdir(layout.base);
  let store: Store;
  try {
    store = await Store.open("root", { exclude: ["root/later.code"] });
  } finally {
    Deno.chdir(cwd);
  }
  await Deno.writeTextFile(join(layout.root, "later.code"), "code");
  await rejects(store.resolve("later.code"), PathError);
  ok(!(await names(store, "")).includes("later.code"));
});

Deno.test("`Store` hides partial files and refuses links to them", async () => {
  await using layout = await makeLayout();
  await layout.link(".ferry-partial.up.bin", "peek");
  const store = await Store.open(layout.root);
  ok(!(await names(store, "")).some((name) => name.includes("partial") || name === "peek"));
  await rejects(store.resolve(".ferry-partial.up.bin"), PathError);
  await rejects(store.resolve("peek"), PathError);
});

// --- Store.list -------------------------------------------------------------------------------

Deno.test("`Store.list()` lists a folder's children sorted by name", async () => {
  await using layout = await makeLayout();
  await Deno.writeTextFile(join(layout.root, "B.txt"), "");
  await Deno.writeTextFile(join(layout.root, "ä.txt"), "");
  const store = await Store.open(layout.root);
  deepStrictEqual(await names(store, ""), ["B.txt", "a.txt", "docs", "ä.txt"]);
  deepStrictEqual(await store.list("docs"), [
    { ...(await store.resolve("docs/b.md")).info },
    { ...(await store.resolve("docs/c")).info },
  ]);
  deepStrictEqual(await store.list("docs/c"), []);
});

Deno.test("`Store.list()` of a file gives that file", async () => {
  await using layout = await makeLayout();
  const store = await Store.open(layout.root);
  deepStrictEqual(await store.list("docs/b.md"), [(await store.resolve("docs/b.md")).info]);
});

Deno.test("`Store.list()` hides names that cannot be requested", async () => {
  await using layout = await makeLayout();
  for (const name of ["esc\u001b[31m", "back\\slash", "CON", "line\nbreak", "dot."]) {
    await Deno.writeTextFile(join(layout.root, name), "x");
  }
  const store = await Store.open(layout.root);
  deepStrictEqual(await names(store, ""), ["a.txt", "docs"]);
});

Deno.test("`Store.list()` hides hostile, dangling and looping links but shows inside ones", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("../outside", "out");
  await layout.link("../root2", "sibling");
  await layout.link("gone", "dangling");
  await layout.link("loop", "loop");
  await layout.link("a.txt", "alias.txt");
  await layout.link("docs", "docs-link");
  const store = await Store.open(layout.root);
  const entries = await store.list("");
  deepStrictEqual(entries.map((entry) => [entry.name, entry.type]), [
    ["a.txt", "file"],
    ["alias.txt", "file"],
    ["docs", "dir"],
    ["docs-link", "dir"],
  ]);
  strictEqual(entries[1]?.size, 5);
});

Deno.test("`Store.list()` refuses a hostile path", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await Store.open(layout.root);
  await rejects(store.list(".."), PathError);
  await rejects(store.list("out"), PathError);
});

// --- Store.walk -------------------------------------------------------------------------------

Deno.test("`Store.walk()` yields files and folders depth first in name order", async () => {
  await using layout = await makeLayout();
  await Deno.mkdir(join(layout.root, "docs", "c", "d"));
  await Deno.writeTextFile(join(layout.root, "docs", "c", "z.txt"), "z");
  const store = await Store.open(layout.root);
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

Deno.test("`Store.walk()` keeps empty folders and reports entry details", async () => {
  await using layout = await makeLayout();
  const store = await Store.open(layout.root);
  const entries = [];
  for await (const entry of store.walk("docs")) entries.push(entry);
  deepStrictEqual(entries.map(({ path, name, type, size }) => ({ path, name, type, size })), [
    { path: "b.md", name: "b.md", type: "file", size: 3 },
    { path: "c", name: "c", type: "dir", size: 0 },
  ]);
});

Deno.test("`Store.walk()` does not loop on a link to its own folder", async () => {
  await using layout = await makeLayout();
  await layout.link(".", "self");
  await Deno.symlink("..", join(layout.root, "docs", "up"));
  const store = await Store.open(layout.root);
  deepStrictEqual(await walkPaths(store, ""), ["a.txt", "docs/", "docs/b.md", "docs/c/"]);
});

Deno.test("`Store.walk()` skips linked folders and hides hostile links", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  await layout.link("../outside", "out");
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("a.txt", "alias.txt");
  const store = await Store.open(layout.root);
  deepStrictEqual(await walkPaths(store, ""), [
    "a.txt",
    "alias.txt",
    "docs/",
    "docs/b.md",
    "docs/c/",
  ]);
});

Deno.test("`Store.walk()` refuses a file and a hostile path", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  const store = await Store.open(layout.root);
  await rejects(walkPaths(store, "a.txt"), PathError);
  await rejects(walkPaths(store, "../outside"), PathError);
  await rejects(walkPaths(store, "out"), PathError);
});

// --- Store.openRead ---------------------------------------------------------------------------

Deno.test("`Store.openRead()` opens a file for reading", async () => {
  await using layout = await makeLayout();
  await layout.link("docs/b.md", "b-link");
  const store = await Store.open(layout.root);
  {
    const { file, info, realPath } = await store.openRead("a.txt");
    using _file = file;
    strictEqual(realPath, join(layout.root, "a.txt"));
    strictEqual(info.size, 5);
    strictEqual(await new Response(file.readable).text(), "hello");
  }
  {
    const { file, info } = await store.openRead("b-link");
    using _file = file;
    strictEqual(info.name, "b-link");
  }
});

Deno.test("`Store.openRead()` refuses a folder, a missing file and hostile links", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside/secret.txt", "secret-link");
  await layout.link("../outside", "out");
  const store = await Store.open(layout.root);
  await rejects(store.openRead("docs"), PathError);
  await rejects(store.openRead(""), PathError);
  await rejects(store.openRead("nope"), NotFoundError);
  await rejects(store.openRead("secret-link"), PathError);
  await rejects(store.openRead("out/secret.txt"), PathError);
  await rejects(store.openRead("../outside/secret.txt"), PathError);
});

// --- Store.resolveDir -------------------------------------------------------------------------

Deno.test("`Store.resolveDir()` resolves an existing folder", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  const store = await Store.open(layout.root);
  strictEqual(await store.resolveDir(""), layout.root);
  strictEqual(await store.resolveDir("docs/c/"), join(layout.root, "docs", "c"));
  strictEqual(await store.resolveDir("docs-link"), join(layout.root, "docs"));
  strictEqual(await store.resolveDir("docs", { create: true }), join(layout.root, "docs"));
});

Deno.test("`Store.resolveDir()` refuses a file and a missing folder without create", async () => {
  await using layout = await makeLayout();
  const store = await Store.open(layout.root);
  await rejects(store.resolveDir("a.txt"), PathError);
  await rejects(store.resolveDir("a.txt/x", { create: true }), PathError);
  await rejects(store.resolveDir("new"), NotFoundError);
});

Deno.test("`Store.resolveDir()` with create makes nested folders", async () => {
  await using layout = await makeLayout();
  await layout.link("docs", "docs-link");
  const store = await Store.open(layout.root);
  const created = await store.resolveDir("x/y/z", { create: true });
  strictEqual(created, join(layout.root, "x", "y", "z"));
  ok((await Deno.stat(created)).isDirectory);
  strictEqual(
    await store.resolveDir("docs-link/new/", { create: true }),
    join(layout.root, "docs", "new"),
  );
});

Deno.test("`Store.resolveDir()` refuses to create through a hostile link", async () => {
  await using layout = await makeLayout();
  await layout.link("../outside", "out");
  await layout.link("../root2", "sibling");
  await layout.link("../outside/not-yet", "dangling-out");
  const store = await Store.open(layout.root);
  await rejects(store.resolveDir("out"), PathError);
  await rejects(store.resolveDir("out/new", { create: true }), PathError);
  await rejects(store.resolveDir("sibling/new", { create: true }), PathError);
  await rejects(store.resolveDir("dangling-out", { create: true }), PathError);
  await rejects(store.resolveDir("dangling-out/x", { create: true }), PathError);
  await rejects(store.resolveDir("../escape", { create: true }), PathError);
  await rejects(store.resolveDir("ok/.ferry-partial.x", { create: true }), PathError);
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
