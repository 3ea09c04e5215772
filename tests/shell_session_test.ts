/**
 * The `connect` shell's session (lib/cli/shell/session.ts) against a server in this process:
 * requests run one at a time; `drop()` (Ctrl-C) stops a download under way with its partial file
 * kept, and the next request connects again; a request from before the drop never runs on the new
 * connection; `cd` is checked against the server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connectClient } from "../lib/cli/remote.ts";
import { ShellSession } from "../lib/cli/shell/session.ts";
import { codeSecret, DEFAULT_IDENTIFIER, generateCode } from "../lib/code.ts";
import { ConnectionLostError, InterruptedError, RemoteError, UsageError } from "../lib/errors.ts";
import { WireError } from "../lib/protocol/wire_errors.ts";
import { startServer } from "../lib/server/server.ts";
import { makeFile, partialPath, tempDir } from "./_helpers.ts";

async function servedSession(root: string) {
  const secret = codeSecret(generateCode());
  const server = await startServer({ root, secret, hostname: "127.0.0.1", port: 0, log: () => {} });
  const address = { hostname: "127.0.0.1", port: server.port };
  const code = { secret, identifier: DEFAULT_IDENTIFIER };
  const session = new ShellSession(await connectClient(address, code), address, code);
  return {
    session,
    async [Symbol.asyncDispose]() {
      await session.close();
      await server.shutdown();
    },
  };
}

Deno.test("ShellSession drop() stops a download under way, keeps its partial file, and connects again", async () => {
  await using served = await tempDir();
  await using out = await tempDir();
  await makeFile(join(served.path, "big.bin"), 16 * 1024 * 1024, 5);
  await using shell = await servedSession(served.path);
  const { session } = shell;
  let dropped = false;
  const download = session.use((client) =>
    client.download("big.bin", out.path, "big.bin", {
      onProgress: ({ bytes }) => {
        if (bytes > 1024 * 1024 && !dropped) {
          dropped = true;
          session.drop();
        }
      },
    })
  );
  await assert.rejects(download, ConnectionLostError);
  const kept = (await Deno.stat(partialPath(out.path, "big.bin"))).size;
  assert.ok(kept > 0 && kept < 16 * 1024 * 1024, `${kept} bytes kept`);

  const resumed = await session.use((client) => client.download("big.bin", out.path, "big.bin"));
  assert.equal(resumed.resumedFrom, kept, "the next request, on a new connection, resumes");
});

Deno.test("ShellSession a request queued before drop() never runs on the new connection", async () => {
  await using served = await tempDir();
  await Deno.writeTextFile(join(served.path, "a.txt"), "a");
  await using shell = await servedSession(served.path);
  const { session } = shell;
  const started = Promise.withResolvers<void>();
  const holding = Promise.withResolvers<void>();
  const first = session.use(() => {
    started.resolve();
    return holding.promise;
  });
  const queued = session.use((client) => client.list(""));
  await started.promise;
  session.drop();
  holding.resolve();
  await first;
  await assert.rejects(queued, InterruptedError);
  const names = (await session.use((client) => client.list(""))).map((entry) => entry.name);
  assert.deepEqual(names, ["a.txt"]);
});

Deno.test("ShellSession changeFolder() asks the server: a folder is taken, a file or nothing is not", async () => {
  await using served = await tempDir();
  await Deno.mkdir(join(served.path, "photos", "2024"), { recursive: true });
  await Deno.writeTextFile(join(served.path, "photos", "photos"), "a file named like its folder");
  await Deno.writeTextFile(join(served.path, "a.txt"), "a");
  await using shell = await servedSession(served.path);
  const { session } = shell;
  await session.changeFolder("photos/2024");
  assert.deepEqual(session.cwd, ["photos", "2024"]);
  assert.equal(session.remotePath("../photos"), "photos/photos");
  await assert.rejects(session.changeFolder("../photos"), UsageError, "a file is not a folder");
  await assert.rejects(session.changeFolder("/a.txt"), /\/a\.txt is a file, not a folder/);
  await assert.rejects(
    session.changeFolder("/missing"),
    (error) => error instanceof RemoteError && error.code === WireError.notFound,
  );
  assert.deepEqual(session.cwd, ["photos", "2024"], "a refused cd leaves the folder as it was");
  await session.changeFolder("..");
  assert.deepEqual(session.cwd, ["photos"]);
  await session.changeFolder("/");
  assert.deepEqual(session.cwd, []);
});
