/**
 * Names are never dropped silently (issue 12, items 9 and 10): what the receiving platform can
 * store travels (on Linux and macOS `aux.c` is an ordinary name; only Windows refuses it), and
 * whatever cannot be moved (a control character in its name, a name that is not valid UTF-8) is
 * named, the rest is moved, and the command exits non-zero.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runFerry, startServe, tempDir } from "./_helpers.ts";

/** Names that only Windows cannot store: they must travel both ways on Linux. */
const WINDOWS_ONLY = ["aux.c", "con.h", "nul.txt", "trailing.", "space "];
/** A name the path rules refuse on every platform (a tab is a control character). */
const TAB_NAME = "tab\there.txt";

/** Creates `dir/bad\xff.txt` (not valid UTF-8) and `dir/bad\uFFFD.txt` beside it. */
async function plantNonUtf8(dir: string): Promise<void> {
  const made = await new Deno.Command("sh", {
    args: ["-c", 'touch "$(printf "bad\\377.txt")"'],
    cwd: dir,
  }).output();
  assert.ok(made.success, "sh could make a name that is not valid UTF-8");
  // A real file whose name is what Deno reads the bad one as: it must not stand in for it.
  await Deno.writeTextFile(join(dir, "bad\uFFFD.txt"), "a different file");
}

/** A tree with ordinary files, Windows-only names, a tab name and names that are not UTF-8. */
async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(join(root, "src"), { recursive: true });
  await Deno.writeTextFile(join(root, "src", "main.c"), "int main() {}");
  for (const name of WINDOWS_ONLY) await Deno.writeTextFile(join(root, "src", name), name);
  await Deno.writeTextFile(join(root, "src", TAB_NAME), "tab");
  await Deno.writeTextFile(join(root, "zz-last.txt"), "after the bad names");
  await plantNonUtf8(join(root, "src"));
}

Deno.test("a folder download brings `aux.c` and the other Windows-only names, names what it cannot bring, and exits 1", async () => {
  await using served = await tempDir();
  await using out = await tempDir();
  await makeTree(join(served.path, "tree"));
  await using server = await startServe(served.path);
  const result = await runFerry([
    "get",
    server.address,
    "tree",
    "-o",
    out.path,
    "--code-file",
    server.codeFile,
  ]);
  assert.equal(result.code, 1, result.stderr);
  for (const name of WINDOWS_ONLY) {
    assert.equal(await Deno.readTextFile(join(out.path, "tree", "src", name)), name);
  }
  assert.equal(
    await Deno.readTextFile(join(out.path, "tree", "zz-last.txt")),
    "after the bad names",
  );
  // Each one left behind is named, escaped: on its own line as met, and in the final error.
  assert.match(result.stderr, /not downloaded: tree\/src\/tab\\x09here\.txt \(its name is refused/);
  assert.match(
    result.stderr,
    /not downloaded: tree\/src\/bad\uFFFD\.txt \(its name is not valid UTF-8/,
  );
  assert.match(result.stderr, /3 of the entries of tree could not be downloaded, the rest were/);
  // The real `bad\uFFFD.txt` is not listed either: two files must never pass for one.
  const names = [...Deno.readDirSync(join(out.path, "tree", "src"))].map((entry) => entry.name);
  assert.deepEqual(names.sort(), ["main.c", ...WINDOWS_ONLY].sort());
});

Deno.test("a folder upload sends `aux.c` and the rest, names what it cannot send, and exits 1", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  await makeTree(join(local.path, "tree"));
  await using server = await startServe(served.path);
  const result = await runFerry([
    "put",
    server.address,
    join(local.path, "tree"),
    "--code-file",
    server.codeFile,
  ]);
  assert.equal(result.code, 1, result.stderr);
  const landed = join(served.path, "uploaded_tree");
  for (const name of WINDOWS_ONLY) {
    assert.equal(await Deno.readTextFile(join(landed, "src", name)), name);
  }
  assert.equal(await Deno.readTextFile(join(landed, "zz-last.txt")), "after the bad names");
  assert.match(
    result.stderr,
    /not uploaded: .*tree\/src\/tab\\x09here\.txt \(it contains a control/,
  );
  assert.match(
    result.stderr,
    /not uploaded: .*tree\/src\/bad\uFFFD\.txt \(its name is not valid UTF-8/,
  );
  assert.match(result.stderr, /3 of the entries to upload could not be uploaded, the rest were/);
});

Deno.test("`ferry ls` says which entries it cannot list, and lists the rest", async () => {
  await using served = await tempDir();
  await makeTree(join(served.path, "tree"));
  await using server = await startServe(served.path);
  const result = await runFerry([
    "ls",
    server.address,
    "tree/src",
    "--code-file",
    server.codeFile,
  ]);
  assert.equal(result.code, 0, result.stderr);
  for (const name of ["main.c", "aux.c", "con.h", "nul.txt"]) {
    assert.match(result.stdout, new RegExp(name));
  }
  assert.match(result.stderr, /not listed: tab\\x09here\.txt \(its name is refused/);
  assert.match(result.stderr, /not listed: bad\uFFFD\.txt \(its name is not valid UTF-8/);
  assert.equal(result.stderr.match(/not listed/g)?.length, 3);
});
