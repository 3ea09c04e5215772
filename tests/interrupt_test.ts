/**
 * Ctrl-C: a client interrupted mid-transfer exits 130 with one line, keeps its partial file and
 * resumes on the next run; `ferry serve` interrupted stops gracefully and exits 130.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import {
  makeFile,
  partialGrows,
  runFerry,
  sha256File,
  spawnFerry,
  startServe,
  tempDir,
  until,
} from "./_helpers.ts";

const MiB = 1024 * 1024;

Deno.test("Ctrl-C on `ferry get` exits 130 with one line, keeps the partial file, and the next run resumes", async () => {
  await using served = await tempDir();
  await using out = await tempDir();
  await makeFile(join(served.path, "big.bin"), 48 * MiB, 21);
  await using server = await startServe(served.path);
  await using client = spawnFerry([
    "get",
    server.address,
    "big.bin",
    "-o",
    out.path,
    "--code-file",
    server.codeFile,
  ]);
  const partial = join(out.path, PARTIAL_PREFIX + "big.bin");
  await partialGrows(partial, MiB);
  server.child.kill("SIGSTOP"); // hold the transfer mid-way while the user presses Ctrl-C
  try {
    client.signal("SIGINT");
    const interrupted = await client.result;
    assert.equal(interrupted.code, 130, interrupted.stderr);
    assert.equal(interrupted.stderr.trim().split("\n").length, 1, interrupted.stderr);
    assert.match(interrupted.stderr, /interrupted/);
  } finally {
    server.child.kill("SIGCONT");
  }
  const kept = (await Deno.stat(partial)).size;
  assert.ok(kept > 0, "the partial file is kept");
  await assert.rejects(() => Deno.lstat(join(out.path, "big.bin")), Deno.errors.NotFound);

  const again = await runFerry([
    "get",
    server.address,
    "big.bin",
    "-o",
    out.path,
    "--json",
    "--code-file",
    server.codeFile,
  ]);
  assert.equal(again.code, 0, again.stderr);
  const done = again.stdout.trim().split("\n").map((line) => JSON.parse(line)).find((event) =>
    event.event === "done"
  );
  assert.ok(done.resumedFrom > 0, `resumed from ${done.resumedFrom}`);
  assert.equal(
    await sha256File(join(out.path, "big.bin")),
    await sha256File(join(served.path, "big.bin")),
  );
});

Deno.test("Ctrl-C on `ferry serve` stops it gracefully with status 130", async () => {
  await using served = await tempDir();
  await using server = await startServe(served.path);
  const status = await server.stop("SIGINT");
  assert.equal(status.code, 130, server.log());
  await until(() => server.log().includes("Stopping"), "the server to say it stops");
  assert.match(server.log(), /Server stopped/);
});

for (const [signal, status] of [["SIGINT", 130], ["SIGTERM", 0]] as const) {
  Deno.test(`${signal} on \`ferry serve\` ends with the calm line "Server stopped." (exit ${status})`, async () => {
    await using served = await tempDir();
    await using server = await startServe(served.path);
    const result = await server.stop(signal);
    assert.equal(result.code, status, server.log());
    const lines = server.log().trimEnd().split("\n");
    assert.equal(lines.at(-1), "Server stopped.", server.log());
    assert.ok(!/^ferry: /m.test(server.log()), server.log());
  });
}
