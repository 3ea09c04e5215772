/**
 * `ferry relay` as a subprocess (the real command, with its permission flags), its splicing
 * measured from outside: exact bytes both ways at once, memory that does not follow the bytes,
 * and a reader that stops holding the sender back instead of filling the relay.
 */
import { ok, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writeAll } from "../lib/_fs.ts";
import { readTokenFile } from "../lib/relay/token.ts";
import { RegistrationStatus, RelayStatus } from "../lib/relay/wire.ts";
import { DENO, FERRY_V8_FLAGS, MAIN, tempDir, until } from "./_helpers.ts";
import { askRelay, closeQuietly, manualControl, openData } from "./_relaying.ts";

const MiB = 1024 * 1024;

/**
 * Memory of process `pid` from `/proc/<pid>/status` (`VmRSS` now, `VmHWM` its peak so far), in
 * bytes. Read by `cat`: Deno grants files under `/proc` only with `--allow-all`.
 */
async function memory(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const status = new TextDecoder().decode(output.stdout);
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  ok(kib, `${field} in /proc/${pid}/status`);
  return Number(kib[1]) * 1024;
}

/** Starts `ferry relay --host 127.0.0.1 --port 0` with a token file in `dir`. */
async function startRelayProcess(dir: string) {
  const tokenFile = join(dir, "relay_token");
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "--no-prompt",
      ...FERRY_V8_FLAGS,
      "--allow-net=127.0.0.1:0",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      MAIN,
      "relay",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--token-file",
      tokenFile,
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const port = Promise.withResolvers<number>();
  const reading = (async () => {
    for await (const chunk of child.stderr) {
      log += decoder.decode(chunk, { stream: true });
      const match = /Relay listening on 127\.0\.0\.1:(\d+) /.exec(log);
      if (match) port.resolve(Number(match[1]));
    }
    port.reject(new Error(`ferry relay exited:\n${log}`));
  })();
  return {
    child,
    port: await port.promise,
    token: await readTokenFile(tokenFile),
    log: () => log,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      await child.status;
      await reading;
    },
  };
}

/** Writes `total` bytes in 1 MiB blocks that differ from one another; resolves with their hash. */
async function sendBlocks(
  conn: Deno.Conn,
  total: number,
  seed: number,
  sent?: { bytes: number },
): Promise<string> {
  const hash = createHash("sha256");
  const block = new Uint8Array(MiB);
  for (let start = 0; start < MiB; start += 65536) {
    crypto.getRandomValues(block.subarray(start, start + 65536));
  }
  for (let offset = 0, index = seed; offset < total; offset += MiB, index++) {
    new DataView(block.buffer).setUint32(0, index);
    const part = block.subarray(0, Math.min(MiB, total - offset));
    hash.update(part);
    await writeAll(conn, part);
    if (sent) sent.bytes += part.length;
  }
  return hash.digest("hex");
}

/** Reads `total` bytes; resolves with their hash. */
async function receiveAll(conn: Deno.Conn, total: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(256 * 1024);
  let received = 0;
  while (received < total) {
    const count = await conn.read(buffer.subarray(0, Math.min(buffer.length, total - received)));
    if (count === null) throw new Error(`ended after ${received} of ${total} bytes`);
    hash.update(buffer.subarray(0, count));
    received += count;
  }
  return hash.digest("hex");
}

Deno.test("ferry relay splices 128 MiB each way at once, exactly, without its memory following the bytes", async () => {
  await using dir = await tempDir();
  await using relay = await startRelayProcess(dir.path);
  await using control = await manualControl(relay.port, relay.token);
  strictEqual((await control.register(["K7QD"]))[0], RegistrationStatus.registered);
  const asking = askRelay(relay.port, "K7QD");
  const data = await openData(relay.port, await control.nextPairing());
  const client = await asking;
  strictEqual(client.status, RelayStatus.ok);
  try {
    // Warm up (the first blocks compile the code paths), then measure from there.
    const warm = 4 * MiB;
    const [warmSent, warmReceived] = await Promise.all([
      sendBlocks(client.conn, warm, 0),
      receiveAll(data.conn, warm),
    ]);
    strictEqual(warmReceived, warmSent);
    const before = await memory(relay.child.pid, "VmHWM");
    const total = 128 * MiB;
    const [up, upReceived, down, downReceived] = await Promise.all([
      sendBlocks(client.conn, total, 1000),
      receiveAll(data.conn, total),
      sendBlocks(data.conn, total, 5000),
      receiveAll(client.conn, total),
    ]);
    strictEqual(upReceived, up, "client to server");
    strictEqual(downReceived, down, "server to client");
    const grown = (await memory(relay.child.pid, "VmHWM") - before) / MiB;
    ok(grown < 24, `the relay's memory grew by ${grown.toFixed(1)} MiB for 256 MiB spliced`);
  } finally {
    closeQuietly(client.conn);
    closeQuietly(data.conn);
  }
  // The relay counted every byte: 4 + 128 MiB to the server, 128 MiB back.
  await until(
    () =>
      /pair with K7QD ended .*: 138412032 bytes to the server, 134217728 back/.test(relay.log()),
    `the relay's count of the bytes:\n${relay.log()}`,
  );
});

Deno.test("a side that stops reading holds the sender back; the relay does not buffer for it", async () => {
  await using dir = await tempDir();
  await using relay = await startRelayProcess(dir.path);
  await using control = await manualControl(relay.port, relay.token);
  await control.register(["K7QD"]);
  const asking = askRelay(relay.port, "K7QD");
  const data = await openData(relay.port, await control.nextPairing());
  const client = await asking;
  try {
    const before = await memory(relay.child.pid, "VmRSS");
    const total = 96 * MiB;
    const sent = { bytes: 0 };
    const sending = sendBlocks(client.conn, total, 0, sent);
    // The server side reads nothing: the sender soon cannot write more.
    let last = -1;
    while (sent.bytes !== last) {
      last = sent.bytes;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    ok(sent.bytes < total / 2, `${sent.bytes / MiB} MiB were taken with nobody reading`);
    const grown = (await memory(relay.child.pid, "VmRSS") - before) / MiB;
    ok(grown < 16, `the relay's memory grew by ${grown.toFixed(1)} MiB while holding back`);
    // Reading again lets everything through, exactly.
    const [expected, received] = await Promise.all([sending, receiveAll(data.conn, total)]);
    strictEqual(received, expected);
  } finally {
    closeQuietly(client.conn);
    closeQuietly(data.conn);
  }
});
