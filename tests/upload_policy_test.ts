/**
 * What an upload may replace: never the code file (whatever the prefix and --force), and nothing
 * at all in a drop box (upload-only), where uploaders must not overwrite one another.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Rights } from "../lib/server/rights.ts";
import { formatBytes, formatBytesPair } from "../lib/units.ts";
import { runFerry, startServe, tempDir } from "./_helpers.ts";

Deno.test("`put --force` with an empty upload prefix cannot replace the code file in the served folder", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const codeFile = join(served.path, "share.code"); // --code-file may name any file
  await using server = await startServe(served.path, { codeFile, args: ["--upload-prefix", ""] });
  const before = await Deno.readTextFile(codeFile);
  const forged = join(local.path, "share.code");
  await Deno.writeTextFile(forged, "AAAA-AAAA-AAAA-AAAA\n");

  const result = await runFerry([
    "put",
    server.address,
    forged,
    "--force",
    "--code-file",
    codeFile,
  ]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /Cannot find "share\.code"/); // as if missing: no oracle
  assert.equal(await Deno.readTextFile(codeFile), before, "the code file is unchanged");

  const other = join(local.path, "notes.txt");
  await Deno.writeTextFile(other, "mine");
  const allowed = await runFerry(["put", server.address, other, "--code-file", codeFile]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(await Deno.readTextFile(join(served.path, "notes.txt")), "mine");
});

Deno.test("`serve --upload-only` (a drop box) refuses --force: uploaders cannot replace each other's files", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  await using server = await startServe(served.path, { args: ["--upload-only"] });
  const file = join(local.path, "report.txt");
  await Deno.writeTextFile(file, "first");
  const first = await runFerry(["put", server.address, file, "--code-file", server.codeFile]);
  assert.equal(first.code, 0, first.stderr);

  await Deno.writeTextFile(file, "second");
  const forced = await runFerry([
    "put",
    server.address,
    file,
    "--force",
    "--code-file",
    server.codeFile,
  ]);
  assert.equal(forced.code, 1);
  assert.match(forced.stderr, /drop box/);
  assert.equal(await Deno.readTextFile(join(served.path, "uploaded_report.txt")), "first");
});

Deno.test("a folder upload leaves out the connection code and partial files inside it", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const folder = join(local.path, "project");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(join(folder, "notes.txt"), "notes");
  await Deno.writeTextFile(join(folder, ".connection_code"), "ABCD-EFGH-JKMN-PQRS\n");
  await Deno.writeTextFile(join(folder, ".ferry-partial.big.iso"), "half a download");
  await using server = await startServe(served.path);
  const result = await runFerry(["put", server.address, folder, "--code-file", server.codeFile]);
  assert.equal(result.code, 0, result.stderr);
  const names = [];
  for await (const entry of Deno.readDir(join(served.path, "uploaded_project"))) {
    names.push(entry.name);
  }
  assert.deepEqual(names, ["notes.txt"]);
});

Deno.test("an upload sent with mode 000 is stored owner-readable and writable, and downloads again", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  await using out = await tempDir();
  const source = join(local.path, "locked.txt");
  await Deno.writeTextFile(source, "mine");
  await Deno.chmod(source, 0o000);
  await using serve = await startServe(served.path);
  const put = await runFerry(["put", serve.address, source, "--code-file", serve.codeFile]);
  // (As root the client can read its own mode-000 file; elsewhere the put itself is refused.)
  if (put.code !== 0) return assert.match(put.stderr, /ermission/);
  const stored = await Deno.stat(join(served.path, "uploaded_locked.txt"));
  assert.equal((stored.mode ?? 0) & 0o600, 0o600);
  const get = await runFerry([
    "get",
    serve.address,
    "uploaded_locked.txt",
    "-o",
    out.path,
    "--code-file",
    serve.codeFile,
  ]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(await Deno.readTextFile(join(out.path, "uploaded_locked.txt")), "mine");
});

Deno.test("`Rights.requireUploadSize()` refuses a too-large upload in sizes a person reads", () => {
  const rights = new Rights("read-write", 1024 * 1024);
  assert.throws(
    () => rights.requireUploadSize(3 * 1024 * 1024),
    { message: "Upload of 3.00 MiB refused: the server accepts at most 1.00 MiB" },
  );
  // One byte over: the rounded sizes look the same, so the exact counts are added.
  assert.throws(
    () => rights.requireUploadSize(1024 * 1024 + 1),
    {
      message: "Upload of 1.00 MiB (1048577 bytes) refused: " +
        "the server accepts at most 1.00 MiB (1048576 bytes)",
    },
  );
  rights.requireUploadSize(1024 * 1024);
});

Deno.test("`formatBytes()` and `formatBytesPair()` write byte counts in binary multiples", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.00 GiB");
  assert.deepEqual(formatBytesPair(2048, 1024), ["2.00 KiB", "1.00 KiB"]);
  assert.deepEqual(formatBytesPair(1025, 1024), ["1.00 KiB (1025 bytes)", "1.00 KiB (1024 bytes)"]);
});
