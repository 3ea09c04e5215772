/**
 * `ferry get` as scp users expect it (issue 13, item 9), over the real CLI against a real
 * `ferry serve` on loopback: remote globs (`get HOST 'photos/*.jpg'`), `--no-glob` for names that
 * hold wildcard characters, and `--as LOCAL_PATH` to save one remote file under another name.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, names, runFerry, type RunResult, startServe, tempDir } from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

function assertExit(result: RunResult, expected: number): void {
  assert.equal(result.code, expected, show(result));
}

async function write(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
}

Deno.test("ferry get: remote globs, --no-glob and --as", async (t) => {
  await using root = await tempDir();
  await using local = await tempDir();
  const photos = join(root.path, "photos");
  await Deno.mkdir(join(photos, "trip.jpg"), { recursive: true });
  await write(join(photos, "trip.jpg", "inside.txt"), "inside");
  for (const name of ["a.jpg", "b.jpg", "c.png", ".d.jpg"]) await write(join(photos, name), name);
  await write(join(root.path, "a*b.txt"), "literal star");
  await write(join(root.path, "aXb.txt"), "an X");
  await write(join(root.path, "report.pdf"), "the report");
  await Deno.mkdir(join(root.path, "same"));
  await write(join(root.path, "same", "same"), "same");
  await using serve = await startServe(root.path);
  const get = (args: string[], cwd = local.path) =>
    runFerry(["get", serve.address, ...args, "--code-file", serve.codeFile, "--quiet"], { cwd });

  await t.step(
    "a glob downloads exactly the matching files and folders, not dotfiles",
    async () => {
      const out = join(local.path, "glob");
      const result = await get(["photos/*.jpg", "-o", out]);
      assertExit(result, 0);
      assert.deepEqual(await names(out), ["a.jpg", "b.jpg", "trip.jpg"]);
      assert.equal(await Deno.readTextFile(join(out, "a.jpg")), "a.jpg");
      assert.equal(await Deno.readTextFile(join(out, "trip.jpg", "inside.txt")), "inside");
    },
  );

  await t.step(
    "a glob in a folder holding only a file of its own name finds that file",
    async () => {
      const out = join(local.path, "same");
      assertExit(await get(["same/s*", "-o", out]), 0);
      assert.deepEqual(await names(out), ["same"]);
    },
  );

  await t.step("a glob that starts with a dot matches dotfiles", async () => {
    const out = join(local.path, "dot");
    assertExit(await get(["photos/.*", "-o", out]), 0);
    assert.deepEqual(await names(out), [".d.jpg"]);
  });

  await t.step(
    "a glob matching nothing fails naming it, and the other paths still land",
    async () => {
      const out = join(local.path, "nomatch");
      const result = await get(["photos/*.gif", "photos/c.png", "nowhere/*.jpg", "-o", out]);
      assertExit(result, 1);
      assert.match(
        result.stderr,
        /^ferry: not downloaded: photos\/\*\.gif \(no such file or folder\)$/m,
      );
      assert.match(
        result.stderr,
        /Nothing on the server matches photos\/\*\.gif; nowhere\/\*\.jpg/,
      );
      assert.deepEqual(await names(out), ["c.png"]);
    },
  );

  await t.step("a wildcard above the last component is a usage error", async () => {
    const result = await get(["*/a.jpg"]);
    assertExit(result, 2);
    assert.match(result.stderr, /Only the last component of a remote path may have wildcards/);
    assert.match(result.stderr, /--no-glob/);
  });

  await t.step("--no-glob reaches a file literally named with *, and only it", async () => {
    const literal = join(local.path, "literal");
    assertExit(await get(["--no-glob", "a*b.txt", "-o", literal]), 0);
    assert.deepEqual(await names(literal), ["a*b.txt"]);
    assert.equal(await Deno.readTextFile(join(literal, "a*b.txt")), "literal star");
    const globbed = join(local.path, "globbed");
    assertExit(await get(["a*b.txt", "-o", globbed]), 0);
    assert.deepEqual(await names(globbed), ["a*b.txt", "aXb.txt"]);
  });

  await t.step("--as saves one remote file under the given local name", async () => {
    const result = await get(["report.pdf", "--as", "old-report.pdf"]);
    assertExit(result, 0);
    assert.equal(await Deno.readTextFile(join(local.path, "old-report.pdf")), "the report");
    assert.equal(await exists(join(local.path, "report.pdf")), false);
    // Into another folder, made if missing.
    assertExit(await get(["report.pdf", "--as", join("saved", "r.pdf")]), 0);
    assert.equal(await Deno.readTextFile(join(local.path, "saved", "r.pdf")), "the report");
    // Again: the same bytes are already there, so it is skipped, not refused.
    assertExit(await get(["report.pdf", "--as", "old-report.pdf"]), 0);
  });

  await t.step("--as keeps an existing different file unless --force", async () => {
    const target = join(local.path, "mine.pdf");
    await write(target, "my own file");
    const refused = await get(["report.pdf", "--as", "mine.pdf"]);
    assertExit(refused, 1);
    assert.match(refused.stderr, /mine\.pdf already exists: use --force to replace it/);
    assert.equal(await Deno.readTextFile(target), "my own file");
    assertExit(await get(["report.pdf", "--as", "mine.pdf", "--force"]), 0);
    assert.equal(await Deno.readTextFile(target), "the report");
  });

  await t.step("ambiguous or wrong --as forms are usage errors", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["report.pdf", "aXb.txt", "--as", "x"],
        /--as names the local copy of one remote path, not 2/,
      ],
      [["report.pdf", "--as", "x", "-o", "dir"], /Choose one of --output and --as/],
      [["photos/*.jpg", "--as", "x"], /--as names one file or folder: .*without wildcards/],
      [["report.pdf", "--as", "saved"], /that is a folder; to download into it use -o saved/],
      [["report.pdf", "--as", "out/"], /--as needs the local file's name, not a folder/],
      [["report.pdf", "./copy.pdf"], /"\.\/copy\.pdf" looks like a local path.*--as LOCAL_PATH/],
    ];
    for (const [args, message] of cases) {
      const result = await get(args);
      assertExit(result, 2);
      assert.match(result.stderr, message);
    }
    assert.equal(await exists(join(local.path, "copy.pdf")), false);
  });
});
