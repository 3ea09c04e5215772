/**
 * A busy server is asked again, with a word on stderr, instead of failing at once (issue 12,
 * item 12); a server that keeps refusing, or shuts down, still ends the command with its reason.
 */
import { deepStrictEqual, match, rejects, strictEqual } from "node:assert/strict";
import { FerryClient } from "../lib/client/client.ts";
import { openClient } from "../lib/cli/remote.ts";
import { codeSecret } from "../lib/code.ts";
import { RefusedError } from "../lib/errors.ts";
import { runFerry, startServe, tempDir } from "./_helpers.ts";

Deno.test("`ferry ls` against a busy server waits, says so, and gets in once a place is free", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/a.txt`, "a");
  await using serve = await startServe(dir.path, { args: ["--max-connections", "1"] });
  const held = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: serve.port,
    secret: codeSecret(serve.code),
  });
  const release = setTimeout(() => void held.close(), 1000);
  try {
    const result = await runFerry(["ls", serve.address, "--code-file", serve.codeFile]);
    strictEqual(result.code, 0, result.stderr);
    match(result.stderr, /^ferry: server busy, retrying in 2 s$/m);
    match(result.stdout, /a\.txt/);
  } finally {
    clearTimeout(release);
    await held.close();
  }
});

Deno.test("`openClient()` gives up on a server that stays busy after 2, 4 and 8 s, naming the reason", async () => {
  await using dir = await tempDir();
  await using serve = await startServe(dir.path, { args: ["--max-connections", "1"] });
  await using _held = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: serve.port,
    secret: codeSecret(serve.code),
  });
  const waited: number[] = [];
  await rejects(
    openClient({ hostname: "127.0.0.1", port: serve.port }, serve.codeFile, (seconds) => {
      waited.push(seconds);
      return Promise.resolve();
    }),
    (error) => error instanceof RefusedError && /too many connections/.test(error.message),
  );
  deepStrictEqual(waited, [2, 4, 8]);
});
