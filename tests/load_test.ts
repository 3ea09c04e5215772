/**
 * A crowd against one in-process server, kept to seconds: 300 connections that send garbage and
 * 64 that stall in the handshake, from 16 other loopback addresses (127.0.0.2-17), and 16 honest
 * clients on 127.0.0.1 that each download and upload a file of 1-4 MiB, all at the same time,
 * against the server's default connection budgets.
 *
 * It measures the process's memory, so `deno task test` runs it in a process of its own
 * (`deno task test:load`): test files run before it in the same process leave the collector in
 * states that made the bound flaky.
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { makeFile, sha256File, tempDir } from "./_helpers.ts";
import {
  assertStillServes,
  connectFrom,
  HELLO_BYTES,
  partialFiles,
  startTestServer,
} from "./_hostile.ts";

const MiB = 1024 * 1024;
const GARBAGE = 300;
const STALLED = 64;
const HONEST = 16;
const ATTACK_ADDRESSES = 16;
const HANDSHAKE_DEADLINE_MS = 2000;

/** 1-4 MiB, a different odd size for each client. */
function sizeFor(index: number): number {
  return MiB + Math.floor((3 * MiB * index) / (HONEST - 1)) + 2 * index + 1;
}

Deno.test("load: 300 garbage and 64 stalled connections do not disturb 16 honest clients", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  await using out = await tempDir();
  for (let index = 0; index < HONEST; index++) {
    await makeFile(join(served.path, `down-${index}.bin`), sizeFor(index), 100 + index);
    await makeFile(join(local.path, `up-${index}.bin`), sizeFor(HONEST - 1 - index), 200 + index);
  }
  // Default budgets and penalties: the crowd comes from addresses of its own (issue 12, item 1).
  await using server = await startTestServer(served.path, {
    handshakeTimeoutMs: HANDSHAKE_DEADLINE_MS,
    repeatedLog: { perWindow: 1_000_000 }, // each line kept, to be counted
  });
  const port = server.port;

  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 20);

  const attacker = (index: number) => `127.0.0.${2 + (index % ATTACK_ADDRESSES)}`;
  const garbage = Array.from({ length: GARBAGE }, async (_, index) => {
    const { socket, closed } = connectFrom(attacker(index), port);
    const bytes = crypto.getRandomValues(new Uint8Array(1 + ((index * 977) % 4096)));
    socket.write(bytes);
    if (bytes.length < 112) socket.end();
    await closed;
  });
  const stalled = Array.from({ length: STALLED }, async (_, index) => {
    const started = performance.now();
    const bytes = await connectFrom(attacker(index), port).closed;
    // The hello, then closed at the deadline or to make room; or refused (busy, slow down).
    ok(bytes.length === HELLO_BYTES || bytes[5] !== 0, `stalled got ${bytes.length} bytes`);
    return performance.now() - started;
  });
  // The honest clients come once the crowd has held its slots for longer than a handshake takes
  // (see lib/server/admission.ts: stale handshakes are the first to make room).
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const honest = Array.from({ length: HONEST }, async (_, index) => {
    await using client = await FerryClient.connect({
      hostname: "127.0.0.1",
      port,
      secret: server.secret,
    });
    const down = await client.download(`down-${index}.bin`, out.path, `down-${index}.bin`);
    const up = await client.upload(join(local.path, `up-${index}.bin`), "", `up-${index}.bin`);
    return { down, up };
  });

  const [, stalledMs, results] = await Promise.all([
    Promise.all(garbage),
    Promise.all(stalled),
    Promise.all(honest),
  ]);
  clearInterval(sampler);
  peak = Math.max(peak, Deno.memoryUsage().rss);

  // Every honest transfer is byte-exact, both ways.
  for (let index = 0; index < HONEST; index++) {
    const { down, up } = results[index]!;
    strictEqual(down.size, sizeFor(index));
    strictEqual(
      await sha256File(join(out.path, `down-${index}.bin`)),
      await sha256File(join(served.path, `down-${index}.bin`)),
    );
    strictEqual(up.size, sizeFor(HONEST - 1 - index));
    strictEqual(
      await sha256File(join(served.path, `uploaded_up-${index}.bin`)),
      await sha256File(join(local.path, `up-${index}.bin`)),
    );
  }
  strictEqual((await partialFiles(served.path)).length, 0);
  // None of the crowd held on past the handshake deadline.
  for (const ms of stalledMs) ok(ms < HANDSHAKE_DEADLINE_MS + 1000, `stalled closed after ${ms}`);
  strictEqual(server.log.count(/ authenticated$/), HONEST);
  // Memory follows the honest work (both ends of 16 transfers live in this process), not the
  // crowd: were each hostile connection to cost a record buffer (1 MiB), this would exceed it.
  const grown = (peak - before) / MiB;
  ok(grown < 256, `RSS grew by ${grown.toFixed(0)} MiB`);
  await assertStillServes(port, server.secret);
});
