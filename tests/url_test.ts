/**
 * ferry runs straight from a URL, with no local checkout: the repository is served over HTTP on
 * loopback and `deno run http://127.0.0.1:PORT/main.ts serve` and `... get` are run from an empty
 * folder (so no deno.json or import map can help them).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DENO, makeCodeFile, makeFile, sha256File, tempDir } from "./_helpers.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** Serves the repository's files read-only over HTTP on 127.0.0.1 (TypeScript as text). */
function serveRepository(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.includes("..")) return new Response("no", { status: 400 });
    try {
      const body = await Deno.readFile(join(REPO, path));
      return new Response(body, { headers: { "content-type": "application/typescript" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test("ferry runs from a URL: serve and get round trip with no local checkout", async () => {
  await using http = {
    server: serveRepository(),
    async [Symbol.asyncDispose]() {
      await this.server.shutdown();
    },
  };
  const origin = `127.0.0.1:${http.server.addr.port}`;
  const url = `http://${origin}/main.ts`;
  await using served = await tempDir();
  await using downloads = await tempDir();
  await using codeDir = await tempDir();
  const codeFile = join(codeDir.path, "code");
  await makeCodeFile(codeFile);
  await makeFile(join(served.path, "data.bin"), 3 * 1024 * 1024 + 17, 7);

  const server = new Deno.Command(DENO, {
    args: [
      "run",
      "--no-prompt",
      `--allow-import=${origin}`,
      "--allow-net=127.0.0.1:0",
      `--allow-read=${served.path},${codeFile}`,
      `--allow-write=${served.path}`,
      url,
      "serve",
      served.path,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--code-file",
      codeFile,
    ],
    cwd: codeDir.path,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const port = await boundPort(server.stderr);

    const client = await new Deno.Command(DENO, {
      args: [
        "run",
        "--no-prompt",
        `--allow-import=${origin}`,
        `--allow-net=127.0.0.1:${port}`,
        `--allow-read=${downloads.path},${codeFile}`,
        `--allow-write=${downloads.path}`,
        url,
        "get",
        `127.0.0.1:${port}`,
        "data.bin",
        "-o",
        downloads.path,
        "--code-file",
        codeFile,
      ],
      cwd: codeDir.path,
    }).output();
    const stderr = new TextDecoder().decode(client.stderr);
    assert.equal(client.code, 0, stderr);
    assert.equal(
      await sha256File(join(downloads.path, "data.bin")),
      await sha256File(join(served.path, "data.bin")),
    );
  } finally {
    server.kill("SIGKILL");
    await server.status;
  }
});

/** Reads a `ferry serve` stderr until the "on 127.0.0.1:PORT" line and returns PORT. */
async function boundPort(stderr: ReadableStream<Uint8Array>): Promise<number> {
  let log = "";
  for await (const text of stderr.pipeThrough(new TextDecoderStream())) {
    log += text;
    const match = / on 127\.0\.0\.1:(\d+) /.exec(log);
    if (match) return Number(match[1]);
  }
  throw new Error(`ferry serve from a URL exited before listening:\n${log}`);
}
