/**
 * A client busy with local work between two requests (hashing a kept file before it can offer
 * it for a resume) keeps its session: it sends `keepalive` messages within the server's idle
 * deadline, which the welcome announces. Before, a partial file of a few GiB on a slow disk could
 * never resume: every retry hashed it again and was cut by the server's idle deadline.
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { ClientConversation } from "../lib/client/conversation.ts";
import { clientHandshake } from "../lib/protocol/handshake.ts";
import { makeFile, partialPath, sha256File, tempDir } from "./_helpers.ts";
import { rawConnect, startTestServer } from "./_hostile.ts";

const IDLE_MS = 150;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("`FerryClient.welcome` carries the server's idle deadline", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { idleTimeoutMs: 4321 });
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  strictEqual(client.welcome.idleTimeoutMs, 4321);
});

Deno.test("`ClientConversation.whileWorking()` keeps a session alive past the server's idle deadline", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "a.txt"), "a");
  await using server = await startTestServer(dir.path, { idleTimeoutMs: IDLE_MS });
  const open = async () => {
    const conn = await rawConnect(server.port);
    const conversation = new ClientConversation(
      conn,
      await clientHandshake(conn, server.secret),
      10_000,
    );
    const welcome = await conversation.expect("welcome");
    conversation.serverIdleTimeoutMs = welcome.idleTimeoutMs;
    return conversation;
  };
  const listOnce = async (conversation: ClientConversation) => {
    await conversation.send({ t: "list", path: "", recursive: false });
    return (await conversation.expect("listing")).entries.map((entry) => entry.name);
  };

  const idle = await open();
  await sleep(IDLE_MS * 5);
  const cut = await listOnce(idle).then(() => false, () => true);
  ok(cut, "without keep-alives, the server ends a session idle past its deadline");
  await idle.close();

  const busy = await open();
  await busy.whileWorking(() => sleep(IDLE_MS * 5));
  strictEqual((await listOnce(busy)).join(), "a.txt");
  await busy.close();
});

Deno.test("a download resumes a kept prefix that takes longer to hash than the server's idle deadline", async () => {
  await using dir = await tempDir();
  await using out = await tempDir();
  const size = 256 * 1024 * 1024;
  await makeFile(join(dir.path, "big.bin"), size, 7);
  // A kept prefix of all but the last MiB: 0.15 s or more to hash here (more under load).
  const kept = partialPath(out.path, "big.bin");
  await Deno.copyFile(join(dir.path, "big.bin"), kept);
  await Deno.truncate(kept, size - 1024 * 1024);
  await using server = await startTestServer(dir.path, { idleTimeoutMs: IDLE_MS });
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  const result = await client.download("big.bin", out.path, "big.bin", { verify: true });
  strictEqual(result.resumedFrom, size - 1024 * 1024);
  strictEqual(await sha256File(join(out.path, "big.bin")), result.sha256);
});
