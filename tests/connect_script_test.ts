/**
 * `ferry connect` fed a script from a pipe: the remote and local current folders (`cd`, `pwd`,
 * `lcd`, `lpwd`) and the paths of `ls`, `get` and `put` taken from them, `get` with a remote
 * pattern as `ferry get` takes it, and a script that stops at its first failing command (a
 * missing remote folder, a file where a folder belongs, a missing local folder).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, names, runFerry, type RunResult, startServe, tempDir } from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** A served folder with a subfolder, a deeper one, and names with a space and a wildcard. */
async function servedTree(root: string): Promise<void> {
  await Deno.mkdir(join(root, "photos", "2024"), { recursive: true });
  await Deno.mkdir(join(root, "my folder"));
  await Deno.writeTextFile(join(root, "a.txt"), "top a\n");
  await Deno.writeTextFile(join(root, "photos", "one.jpg"), "one\n");
  await Deno.writeTextFile(join(root, "photos", "two.jpg"), "two\n");
  await Deno.writeTextFile(join(root, "photos", "x*.txt"), "literally\n");
  await Deno.writeTextFile(join(root, "photos", "2024", "deep.png"), "deep\n");
}

Deno.test("`ferry connect` script: cd, pwd, lcd and lpwd, and every path taken from them", async () => {
  await using served = await tempDir();
  await using work = await tempDir();
  await servedTree(served.path);
  await using server = await startServe(served.path);
  await Deno.mkdir(join(work.path, "out"));
  await Deno.writeTextFile(join(work.path, "out", "up.txt"), "sent from out\n");
  const script = [
    "pwd",
    "cd photos",
    "pwd",
    "ls",
    "lcd out",
    "lpwd",
    "get one.jpg",
    "get ../a.txt",
    "cd 2024",
    "get deep.png copy.png",
    "put up.txt ..",
    "cd /",
    "pwd",
    'cd "my folder"',
    "pwd",
    "cd ../photos/2024/..",
    "pwd",
  ].join("\n") + "\n";
  const result = await runFerry(["connect", server.address, "--code-file", server.codeFile], {
    cwd: work.path,
    stdin: script,
  });
  assert.equal(result.code, 0, show(result));
  const printed = result.stdout.split("\n");
  const folders = printed.filter((line) => line.startsWith("/"));
  assert.deepEqual(folders, [
    "/",
    "/photos",
    join(await Deno.realPath(work.path), "out"),
    "/",
    "/my folder",
    "/photos",
  ]);
  assert.ok(printed.some((line) => /^file .*one\.jpg$/.test(line)), "ls lists the current folder");
  assert.ok(printed.some((line) => /^dir .*2024\/$/.test(line)), show(result));
  const out = join(work.path, "out");
  assert.deepEqual(await names(out), ["a.txt", "copy.png", "one.jpg", "up.txt"]);
  assert.equal(await Deno.readTextFile(join(out, "a.txt")), "top a\n");
  assert.equal(await Deno.readTextFile(join(out, "copy.png")), "deep\n");
  assert.equal(
    await Deno.readTextFile(join(served.path, "photos", "uploaded_up.txt")),
    "sent from out\n",
    "put's remote folder is relative to the current one",
  );
});

Deno.test("`ferry connect` script: get takes a pattern in the current folder, and -N takes it literally", async () => {
  await using served = await tempDir();
  await using work = await tempDir();
  await servedTree(served.path);
  await using server = await startServe(served.path);
  const run = (script: string) =>
    runFerry(["connect", server.address, "--code-file", server.codeFile], {
      cwd: work.path,
      stdin: script,
    });
  const globbed = await run("cd photos\nget *.jpg\nget -N x*.txt\n");
  assert.equal(globbed.code, 0, show(globbed));
  assert.deepEqual(await names(work.path), ["one.jpg", "two.jpg", "x*.txt"]);
  assert.equal(await Deno.readTextFile(join(work.path, "x*.txt")), "literally\n");
  assert.match(globbed.stdout, /Downloaded 2 files/, "a pattern reports as many files");

  const none = await run("get photos/*.gif\nget a.txt\n");
  assert.equal(none.code, 1, show(none));
  assert.match(none.stderr, /^ferry: Nothing on the server matches photos\/\*\.gif$/m);
  assert.ok(!await exists(join(work.path, "a.txt")), "the script stopped there");

  const above = await run("get */one.jpg\n");
  assert.equal(above.code, 2, show(above));
  assert.match(above.stderr, /Only the last component of a remote path may have wildcards/);
});

Deno.test("`ferry connect` script: cd to a missing folder or a file, or lcd to nothing, stops it", async () => {
  await using served = await tempDir();
  await using work = await tempDir();
  await servedTree(served.path);
  await using server = await startServe(served.path);
  const run = (script: string) =>
    runFerry(["connect", server.address, "--code-file", server.codeFile], {
      cwd: work.path,
      stdin: script + "get a.txt\n",
    });
  const cases: [string, number, RegExp][] = [
    ["cd nowhere", 1, /^ferry: No folder \/nowhere on the server$/],
    ["cd photos/one.jpg", 2, /^ferry: \/photos\/one\.jpg is a file, not a folder$/],
    ["cd ..", 2, /^ferry: "\.\." leads above the served folder$/],
    ["lcd nowhere", 2, /^ferry: No local folder nowhere$/],
    ["lcd ~/x", 2, /~ is not expanded here/],
    ["pwd extra", 2, /^ferry: Usage: pwd$/],
    ["get -x a.txt", 2, /^ferry: Unknown option "-x" for get: .*\.\/-x/],
  ];
  for (const [line, code, message] of cases) {
    const result = await run(`${line}\n`);
    assert.equal(result.code, code, `${line}\n${show(result)}`);
    assert.match(result.stderr.trimEnd(), message, line);
    assert.equal(result.stderr.trimEnd().split("\n").length, 1, `one line for ${line}`);
    assert.deepEqual(await names(work.path), [], `nothing ran after ${line}`);
  }
});
