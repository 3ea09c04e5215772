/**
 * Faults: a client or server killed mid-transfer, a disk that fills up, and a server stopped with
 * SIGTERM. Clients are the real CLI; servers are in-process or the real `ferry serve`.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { writeCodeFile } from "../lib/code_file.ts";
import {
  canMountTmpfs,
  makeFile,
  partialGrows,
  runFerry,
  sha256File,
  spawnFerry,
  startServe,
  tempDir,
  until,
} from "./_helpers.ts";
import {
  assertStillServes,
  exists,
  partialFiles,
  readUntilClosed,
  startTestServer,
} from "./_hostile.ts";

const MiB = 1024 * 1024;

// --- Cuts -------------------------------------------------------------------------------------

Deno.test("a client killed mid-upload leaves no file under the final name, and the upload resumes at once", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  const source = join(local.path, "big.bin");
  await makeFile(source, 32 * MiB, 11);
  await using server = await startTestServer(dir.path);
  const codeFile = join(local.path, "code");
  await writeCodeFile(codeFile, server.code, { force: true });
  const address = `127.0.0.1:${server.port}`;
  {
    await using put = spawnFerry(["put", address, source, "--json", "--code-file", codeFile]);
    await partialGrows(join(dir.path, ".ferry-partial.uploaded_big.bin"));
    put.signal("SIGKILL");
    strictEqual((await put.result).signal, "SIGKILL");
  }
  await server.log.waitFor(/ closed: /);
  ok(!await exists(join(dir.path, "uploaded_big.bin")), "no file under the final name");
  const kept = await Deno.stat(join(dir.path, ".ferry-partial.uploaded_big.bin"));
  ok(kept.size < 32 * MiB, "the partial file holds part of the upload");

  // At once: the server has released the upload, which resumes where it stopped.
  const again = await runFerry(["put", address, source, "--json", "--code-file", codeFile]);
  strictEqual(again.code, 0, again.stderr);
  const done = again.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line))
    .find((event) => event.event === "done");
  strictEqual(done.resumedFrom, kept.size);
  strictEqual(await sha256File(join(dir.path, "uploaded_big.bin")), await sha256File(source));
  strictEqual((await partialFiles(dir.path)).length, 0);
});

/** The one line `ferry get` and `ferry put` end with when the server goes away mid-transfer. */
const CUT_BY_SERVER =
  /^ferry: The server closed the connection during the transfer: run the same command again to resume$/;

Deno.test("a server killed mid-download leaves the client with a one-line error that says to run it again, and a resumable partial file", async () => {
  await using dir = await tempDir();
  await using out = await tempDir();
  await makeFile(join(dir.path, "big.bin"), 32 * MiB, 12);
  const first = await startServe(dir.path);
  await using _first = first;
  const args = ["get", first.address, "big.bin", "-o", out.path, "--json"];
  {
    await using get = spawnFerry([...args, "--code-file", first.codeFile]);
    await partialGrows(join(out.path, ".ferry-partial.big.bin"));
    // Freeze the client so the download cannot finish, kill the server, then let the client go.
    get.signal("SIGSTOP");
    await first.stop("SIGKILL");
    get.signal("SIGCONT");
    const result = await get.result;
    strictEqual(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    strictEqual(lines.length, 1, result.stderr);
    match(lines[0]!, CUT_BY_SERVER);
  }
  ok(!await exists(join(out.path, "big.bin")), "no final file");
  const kept = await Deno.stat(join(out.path, ".ferry-partial.big.bin"));
  ok(kept.size > 0 && kept.size < 32 * MiB, `partial file of ${kept.size} bytes`);

  // The same download against a restarted server resumes and ends byte-exact.
  await using second = await startServe(dir.path, { codeFile: first.codeFile });
  const again = await runFerry([
    "get",
    second.address,
    "big.bin",
    "-o",
    out.path,
    "--json",
    "--code-file",
    first.codeFile,
  ]);
  strictEqual(again.code, 0, again.stderr);
  const done = again.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line))
    .find((event) => event.event === "done");
  ok(done.resumedFrom > 0, "resumed");
  strictEqual(
    await sha256File(join(out.path, "big.bin")),
    await sha256File(join(dir.path, "big.bin")),
  );
  strictEqual((await partialFiles(out.path)).length, 0);
});

Deno.test("a server killed mid-upload leaves the client with a one-line error that says to run it again, and the upload resumes", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  const source = join(local.path, "big.bin");
  await makeFile(source, 32 * MiB, 16);
  const first = await startServe(dir.path);
  await using _first = first;
  const partial = join(dir.path, ".ferry-partial.uploaded_big.bin");
  {
    await using put = spawnFerry(["put", first.address, source, "--code-file", first.codeFile]);
    await partialGrows(partial);
    // Freeze the client so the upload cannot finish, kill the server, then let the client go.
    put.signal("SIGSTOP");
    await first.stop("SIGKILL");
    put.signal("SIGCONT");
    const result = await put.result;
    strictEqual(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    strictEqual(lines.length, 1, result.stderr);
    match(lines[0]!, CUT_BY_SERVER);
  }
  ok(!await exists(join(dir.path, "uploaded_big.bin")), "no final file");
  const kept = await Deno.stat(partial);
  ok(kept.size > 0 && kept.size < 32 * MiB, `partial file of ${kept.size} bytes`);

  // Run again, as the message says, against the restarted server: it resumes.
  await using second = await startServe(dir.path, { codeFile: first.codeFile });
  const again = await runFerry([
    "put",
    second.address,
    source,
    "--json",
    "--code-file",
    first.codeFile,
  ]);
  strictEqual(again.code, 0, again.stderr);
  const done = again.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line))
    .find((event) => event.event === "done");
  ok(done.resumedFrom > 0, "resumed");
  strictEqual(await sha256File(join(dir.path, "uploaded_big.bin")), await sha256File(source));
  strictEqual((await partialFiles(dir.path)).length, 0);
});

// --- Disk -------------------------------------------------------------------------------------

/** A 1 MiB tmpfs mounted in a temporary folder, unmounted and removed on dispose. */
async function smallDisk(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(await Deno.makeTempDir({ prefix: "ferry-disk-" }));
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
  }).output();
  ok(mounted.success, new TextDecoder().decode(mounted.stderr));
  return {
    path,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

const tmpfs = await canMountTmpfs();

Deno.test({
  // Needs a real full disk: a 1 MiB tmpfs, which only root can mount. Skipped elsewhere.
  name:
    "a disk that fills up ends the upload with a clear error on both sides and no temporary file",
  ignore: !tmpfs,
  async fn() {
    await using local = await tempDir();
    await using disk = await smallDisk();
    await using server = await startTestServer(disk.path);
    const codeFile = join(local.path, "code");
    await writeCodeFile(codeFile, server.code, { force: true });
    const source = join(local.path, "large.bin");
    await makeFile(source, 3 * MiB, 13);
    const address = `127.0.0.1:${server.port}`;

    const result = await runFerry(["put", address, source, "--code-file", codeFile]);
    strictEqual(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    strictEqual(lines.length, 1, result.stderr);
    match(lines[0]!, /^ferry: The server's disk is full/);
    const line = await server.log.waitFor(/put uploaded_large\.bin failed: /);
    match(line, /No space left on device/);

    ok(!await exists(join(disk.path, "uploaded_large.bin")), "no final file");
    strictEqual((await partialFiles(disk.path)).length, 0, "no temporary file");
    // The space is free again: a small upload goes through.
    const small = join(local.path, "small.txt");
    await Deno.writeTextFile(small, "fits");
    const ok2 = await runFerry(["put", address, small, "--code-file", codeFile]);
    strictEqual(ok2.code, 0, ok2.stderr);
    await assertStillServes(server.port, server.secret);
  },
});

// --- Shutdown ---------------------------------------------------------------------------------

/**
 * A `ferry serve` with `--grace SECONDS` and a 32 MiB `put` to it, held (SIGSTOP) once its bytes
 * are arriving: a transfer in progress for the server to stop around.
 */
async function heldUpload(graceSeconds: string, seed: number) {
  const dir = await tempDir();
  const local = await tempDir();
  const source = join(local.path, "big.bin");
  await makeFile(source, 32 * MiB, seed);
  const serve = await startServe(dir.path, { args: ["--grace", graceSeconds] });
  const put = spawnFerry(["put", serve.address, source, "--json", "--code-file", serve.codeFile]);
  await partialGrows(join(dir.path, ".ferry-partial.uploaded_big.bin"));
  put.signal("SIGSTOP");
  return {
    dir,
    source,
    serve,
    put,
    async [Symbol.asyncDispose]() {
      await put[Symbol.asyncDispose]();
      await serve[Symbol.asyncDispose]();
      await local[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test("SIGTERM on `ferry serve` stops accepting, lets the transfer in progress finish, exits 0", async () => {
  await using held = await heldUpload("20", 14); // held while the server is told to stop
  const { dir, source, serve, put } = held;
  serve.child.kill("SIGTERM");
  await until(() => serve.log().includes("Stopping"), "the server to start stopping");
  // New connections are refused: by the kernel once the listening socket is gone, or, in the
  // moment before Deno has released it, by the server itself with a "shutting down" hello.
  let refused = false;
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
    const { bytes } = await readUntilClosed(conn, 5000);
    refused = new TextDecoder().decode(bytes).includes("shutting down");
  } catch (error) {
    refused = error instanceof Deno.errors.ConnectionRefused;
  }
  ok(refused, "new connections are refused");
  put.signal("SIGCONT");
  const result = await put.result;
  strictEqual(result.code, 0, result.stderr);
  const status = await serve.stop();
  strictEqual(status.code, 0, serve.log());
  strictEqual(await sha256File(join(dir.path, "uploaded_big.bin")), await sha256File(source));
  strictEqual((await partialFiles(dir.path)).length, 0);
});

Deno.test("SIGTERM on `ferry serve` with a grace shorter than the transfer closes it and leaves no partial file", async () => {
  await using held = await heldUpload("0.3", 15); // held: it cannot finish in time
  const { dir, serve, put } = held;
  const started = performance.now();
  serve.child.kill("SIGTERM");
  const status = await serve.child.status;
  strictEqual(status.code, 0);
  ok(performance.now() - started < 5000, "the server did not wait past its grace period");
  ok(!await exists(join(dir.path, "uploaded_big.bin")), "no final file");
  strictEqual((await partialFiles(dir.path)).length, 0, "no temporary file left behind");
  put.signal("SIGCONT");
  const result = await put.result;
  strictEqual(result.code, 1);
  match(result.stderr.trim(), /^ferry: /);
});
