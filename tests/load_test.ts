/**
 * A crowd against one in-process server, kept to seconds: 300 connections that send garbage, 64
 * that stall in the handshake and 16 honest clients that each download and upload a file of
 * 1-4 MiB, all at the same time.
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
  partialFiles,
  rawConnect,
  readUntilClosed,
  startTestServer,
  writeRaw,
} from "./_hostile.ts";

const MiB = 1024 * 1024;
const GARBAGE = 300;
const STALLED = 64;
const HONEST = 16;
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
  await using server = await startTestServer(served.path, {
    maxConnections: 512,
    handshakeTimeoutMs: HANDSHAKE_DEADLINE_MS,
    // Every connection comes from 127.0.0.1: without this, the garbage would (rightly) get the
    // honest clients' shared address slowed down. Penalties have their own tests.
    penalty: { freeFailures: 1_000_000 },
    // Each failure logged, so that the stalled ones can be counted (log_flood_test limits it).
    repeatedLog: { perWindow: 1_000_000 },
  });
  const port = server.port;

  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, 20);

  const garbage = Array.from({ length: GARBAGE }, async (_, index) => {
    const conn = await rawConnect(port);
    const bytes = crypto.getRandomValues(new Uint8Array(1 + ((index * 977) % 4096)));
    await writeRaw(conn, bytes).catch(() => {});
    if (bytes.length < 112) conn.closeWrite();
    await readUntilClosed(conn, 15_000);
  });
  const stalled = Array.from({ length: STALLED }, async () => {
    const started = performance.now();
    const conn = await rawConnect(port);
    const { bytes } = await readUntilClosed(conn, 15_000);
    strictEqual(bytes.length, 22, "only the hello");
    return performance.now() - started;
  });
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
  // The stalled ones were cut at the deadline, not before.
  for (const ms of stalledMs) ok(ms >= HANDSHAKE_DEADLINE_MS - 100, `stalled closed after ${ms}`);
  strictEqual(server.log.count(/handshake failed: handshake deadline passed/), STALLED);
  strictEqual(server.log.count(/ authenticated$/), HONEST);
  // Memory follows the honest work (both ends of 16 transfers live in this process), not the
  // crowd: were each hostile connection to cost a record buffer (1 MiB), this would exceed it.
  const grown = (peak - before) / MiB;
  ok(grown < 256, `RSS grew by ${grown.toFixed(0)} MiB`);
  await assertStillServes(port, server.secret);
});
