/**
 * Log flooding (issue 12, item 2): strangers without the code cannot grow the server's log by a
 * line per attempt. Each address's repeated connections, refusals and failed handshakes are
 * logged a few times per window, then summed up in one line that says who and how many.
 */
import { match, ok, rejects, strictEqual } from "node:assert/strict";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { RepeatedLog } from "../lib/server/repeated_log.ts";
import { tempDir } from "./_helpers.ts";
import { startTestServer } from "./_hostile.ts";

Deno.test("`RepeatedLog` logs a failing address's first events of a kind, then one line with the count", () => {
  const lines: string[] = [];
  const log = new RepeatedLog((line) => lines.push(line), { perWindow: 2, windowMs: 60_000 });
  for (let index = 0; index < 10; index++) {
    log.event("10.0.0.1", "refused", `refused #${index}`, true);
  }
  log.event("10.0.0.2", "refused", "another address", true);
  log.event("10.0.0.1", "connected", "another kind");
  // An address that never fails is logged in full, however often it connects.
  for (let index = 0; index < 4; index++) log.event("10.0.0.3", "connected", `honest #${index}`);
  strictEqual(
    lines.join("|"),
    "refused #0|refused #1|another address|another kind|honest #0|honest #1|honest #2|honest #3",
  );
  log.close();
  strictEqual(lines.length, 9);
  match(lines[8]!, /10\.0\.0\.1 8 more "refused" in the last 60 s/);
});

Deno.test("hostile client: 60 wrong-code attempts from one address leave a short log that still counts them", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, {
    penalty: { freeFailures: 1000 },
    repeatedLog: { perWindow: 5, windowMs: 60_000 },
  });
  const wrong = codeSecret(generateCode());
  for (let attempt = 0; attempt < 60; attempt++) {
    await rejects(FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret: wrong }));
  }
  await server.log.waitForCount(/authentication failed|more "handshake failed"/, 5);
  const before = server.log.lines.length;
  ok(before <= 12, `${before} lines for 60 attempts:\n${server.log.text()}`);
  await server.server.shutdown(0);
  const summary = server.log.lines.find((line) => /more "handshake failed"/.test(line));
  ok(summary, server.log.text());
  match(summary!, /127\.0\.0\.1 5\d more "handshake failed"/);
});
