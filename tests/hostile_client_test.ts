/**
 * Hostile clients against a real server over loopback: garbage, truncation, absurd lengths,
 * records out of order, replays and bit flips, stalls, crowds and guessing. Each case checks that
 * only the offending connection ends, with a logged reason, and that an honest client is still
 * served afterwards.
 */
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret, formatCode, generateCode, normaliseCode } from "../lib/code.ts";
import { AuthenticationError, ConnectionError } from "../lib/errors.ts";
import { MAX_RECORD_PLAINTEXT, RecordType } from "../lib/protocol/framing.ts";
import { makeFile, runFerry, sha256File, startServe, tempDir, until } from "./_helpers.ts";
import {
  assertStillServes,
  exists,
  HELLO_BYTES,
  manualSession,
  rawConnect,
  readUntilClosed,
  startTestServer,
  writeRaw,
} from "./_hostile.ts";

/** Penalties that never trigger, for cases that are not about guessing. */
const NO_PENALTY = { penalty: { freeFailures: 1_000_000 } };

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + 65536)));
  }
  return bytes;
}

/** The log line prefix of a connection: `127.0.0.1:<its local port>`. */
function peerOf(conn: Deno.Conn): string {
  return `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port} `;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The start of a log line about `peer` (from {@link peerOf}): once authenticated, its code. */
function at(peer: string): string {
  return `${escape(peer)}(?:code=\\S+ )?`;
}

// --- Garbage before and during the handshake --------------------------------------------------

Deno.test("hostile client: random bytes instead of the handshake end that connection only", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  for (const length of [1, 51, 52, 116, 4096, 1024 * 1024]) {
    const conn = await rawConnect(server.port);
    const peer = peerOf(conn);
    // The server may close before reading everything: a failed write is part of the game.
    await writeRaw(conn, randomBytes(length)).catch(() => {});
    if (length < 116) conn.closeWrite();
    await readUntilClosed(conn);
    const line = await server.log.waitFor(
      new RegExp(`${at(peer)}(handshake failed|authentication failed): `),
    );
    ok(line.length < 300, line);
  }
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a truncated handshake ends with a logged reason", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  const conn = await rawConnect(server.port);
  const peer = peerOf(conn);
  // Half of nonce_c || identifier || Ya, then the client stops sending.
  await writeRaw(conn, randomBytes(24));
  conn.closeWrite();
  const { bytes } = await readUntilClosed(conn);
  strictEqual(bytes.length, HELLO_BYTES, "only the hello was sent");
  await server.log.waitFor(
    new RegExp(`${at(peer)}handshake failed: Connection closed in the middle`),
  );
  await assertStillServes(server.port, server.secret);
});

// --- Garbage after the handshake --------------------------------------------------------------

Deno.test("hostile client: oversized frame is refused before allocation", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  const lengths = [0xffff_ffff, 0x7fff_ffff, MAX_RECORD_PLAINTEXT + 17, 15];
  for (const length of lengths) {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session.conn);
    const before = Deno.memoryUsage().rss;
    // Only the 5-byte header: if the server waited for (or allocated) the body, it would hang.
    const header = Uint8Array.of(
      RecordType.data,
      length >>> 24,
      (length >>> 16) & 0xff,
      (length >>> 8) & 0xff,
      length & 0xff,
    );
    await writeRaw(session.conn, header);
    const { ms } = await readUntilClosed(session.conn, 5000);
    ok(ms < 2000, `closed after ${ms} ms`);
    await server.log.waitFor(
      new RegExp(`${at(peer)}closed: Record length ${length} is outside`),
    );
    ok(Deno.memoryUsage().rss - before < 64 * 1024 * 1024, "no allocation of the claimed length");
  }
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: an unknown record type ends the connection", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  await using session = await manualSession(server.port, server.secret);
  const peer = peerOf(session.conn);
  await writeRaw(session.conn, Uint8Array.of(9, 0, 0, 0, 16, ...new Uint8Array(16)));
  await readUntilClosed(session.conn);
  await server.log.waitFor(new RegExp(`${at(peer)}closed: Unknown record type 9`));
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a control record that is not a JSON message ends the connection", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  const payloads = [
    new Uint8Array([0xff, 0xfe, 0x00]),
    new TextEncoder().encode("[1,2,3]"),
    new TextEncoder().encode('{"t":"list","path":7,"recursive":false}'),
    new TextEncoder().encode('{"t":"rm","path":"a"}'),
    new TextEncoder().encode(`{"t":"list","path":"${"a/".repeat(30_000)}","recursive":true}`),
  ];
  for (const payload of payloads) {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session.conn);
    await session.record(RecordType.control, payload);
    await readUntilClosed(session.conn);
    await server.log.waitFor(
      new RegExp(`${at(peer)}closed: (Control message|Message field|Unknown client message)`),
    );
  }
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: valid records in a wrong order end the connection and leave no file", async (t) => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  const put = {
    t: "put",
    dir: "",
    name: "order.bin",
    size: 1000,
    mode: 0o644,
    mtime: Date.now(),
    force: false,
  } as const;
  const cases: {
    name: string;
    reason: RegExp;
    run: (session: Awaited<ReturnType<typeof manualSession>>) => Promise<void>;
  }[] = [
    {
      name: "put-start without a put",
      reason: /Message "put-start" outside its place/,
      run: (session) => session.send({ t: "put-start", offset: 0 }),
    },
    {
      name: "put-end without a put",
      reason: /Message "put-end" outside its place/,
      run: (session) => session.send({ t: "put-end", sha256: "0".repeat(64) }),
    },
    {
      name: "a data record outside an upload",
      reason: /Data record outside an upload/,
      run: (session) => session.record(RecordType.data, new Uint8Array(100)),
    },
    {
      name: "data right after put, before put-start",
      reason: /Expected put-start/,
      run: async (session) => {
        await session.send(put);
        strictEqual((await session.next())?.t, "put-ready");
        await session.record(RecordType.data, new Uint8Array(100));
      },
    },
    {
      name: "put-end without any data",
      reason: /Upload sent 0 of 1000 bytes/,
      run: async (session) => {
        await session.send(put);
        strictEqual((await session.next())?.t, "put-ready");
        await session.send({ t: "put-start", offset: 0 });
        await session.send({ t: "put-end", sha256: "0".repeat(64) });
      },
    },
    {
      name: "more data than announced",
      reason: /Upload sent more than the 1000 bytes announced/,
      run: async (session) => {
        await session.send(put);
        strictEqual((await session.next())?.t, "put-ready");
        await session.send({ t: "put-start", offset: 0 });
        await session.record(RecordType.data, new Uint8Array(600));
        await session.record(RecordType.data, new Uint8Array(600));
      },
    },
    {
      name: "a put-start at an offset that was not offered",
      reason: /Expected put-start at 0 or at the offered offset/,
      run: async (session) => {
        await session.send(put);
        strictEqual((await session.next())?.t, "put-ready");
        await session.send({ t: "put-start", offset: 500 });
      },
    },
    {
      name: "a get request in the middle of an upload",
      reason: /Upload ended early|Expected put-end/,
      run: async (session) => {
        await session.send(put);
        strictEqual((await session.next())?.t, "put-ready");
        await session.send({ t: "put-start", offset: 0 });
        await session.record(RecordType.data, new Uint8Array(10));
        await session.send({ t: "get", path: "x", offset: 0, prefixSha256: "" });
      },
    },
    {
      name: "a record after the end record",
      reason: /closed by client/,
      run: async (session) => {
        await session.channel.writer.end();
        await writeRaw(session.conn, randomBytes(64)).catch(() => {});
      },
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, async () => {
      await using session = await manualSession(server.port, server.secret);
      const peer = peerOf(session.conn);
      await testCase.run(session);
      await readUntilClosed(session.conn);
      await server.log.waitFor(new RegExp(`${at(peer)}.*${testCase.reason.source}`));
    });
  }
  ok(!await exists(join(dir.path, "uploaded_order.bin")), "no file under the final name");
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a replayed record fails authentication and ends the connection", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "a.txt"), "hello");
  await using server = await startTestServer(dir.path, NO_PENALTY);
  await using session = await manualSession(server.port, server.secret);
  const peer = peerOf(session.conn);
  await session.send({ t: "list", path: "", recursive: false });
  const listing = await session.next();
  strictEqual(listing?.t, "listing");
  // The same sealed bytes again: same ciphertext, but the server now expects sequence 1.
  strictEqual(session.sent.length, 1);
  await writeRaw(session.conn, session.sent[0]!);
  await readUntilClosed(session.conn);
  await server.log.waitFor(new RegExp(`${at(peer)}closed: Record failed authentication`));
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a bit-flipped record fails authentication and ends the connection", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, NO_PENALTY);
  // Flip one bit in the header's type, in the ciphertext, and in the tag.
  for (const [index, bit] of [[0, 0x02], [8, 0x01], [-1, 0x80]] as const) {
    await using session = await manualSession(server.port, server.secret);
    const peer = peerOf(session.conn);
    session.alter = (bytes) => {
      bytes[index < 0 ? bytes.length + index : index]! ^= bit;
      return bytes;
    };
    await session.send({ t: "list", path: "", recursive: false });
    await readUntilClosed(session.conn);
    await server.log.waitFor(new RegExp(`${at(peer)}closed: Record failed authentication`));
  }
  await assertStillServes(server.port, server.secret);
});

// --- Stalls -----------------------------------------------------------------------------------

Deno.test("hostile client: a connection that never finishes the handshake is closed at the deadline", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { ...NO_PENALTY, handshakeTimeoutMs: 300 });
  const started = performance.now();
  const silent = await rawConnect(server.port);
  const silentPeer = peerOf(silent);
  // A slow drip: one byte every 50 ms must not extend the deadline.
  const drip = await rawConnect(server.port);
  const dripPeer = peerOf(drip);
  const dripping = (async () => {
    for (let index = 0; index < 100; index++) {
      try {
        await drip.write(Uint8Array.of(index));
      } catch {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const closedAfter = await Promise.all([silent, drip].map(async (conn) => {
    await readUntilClosed(conn, 5000);
    return performance.now() - started;
  }));
  await dripping;
  for (const ms of closedAfter) ok(ms >= 290 && ms < 2000, `closed after ${ms} ms`);
  await server.log.waitFor(
    new RegExp(`${escape(silentPeer)}handshake failed: handshake deadline passed`),
  );
  await server.log.waitFor(
    new RegExp(`${escape(dripPeer)}handshake failed: handshake deadline passed`),
  );
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: an authenticated connection left idle is closed at the idle deadline", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { ...NO_PENALTY, idleTimeoutMs: 300 });
  await using session = await manualSession(server.port, server.secret);
  const peer = peerOf(session.conn);
  // Activity keeps it open: a request at 200 ms restarts the deadline.
  await new Promise((resolve) => setTimeout(resolve, 200));
  await session.send({ t: "list", path: "", recursive: false });
  strictEqual((await session.next())?.t, "listing");
  const { ms } = await readUntilClosed(session.conn, 5000);
  // (Measured from a little after the server restarted its clock.)
  ok(ms >= 200 && ms < 2000, `closed after ${ms} ms`);
  await server.log.waitFor(new RegExp(`${at(peer)}closed: idle deadline passed`));
  await assertStillServes(server.port, server.secret);
});

Deno.test("hostile client: a client that stops reading during a download does not block others", async () => {
  await using dir = await tempDir();
  await makeFile(join(dir.path, "big.bin"), 32 * 1024 * 1024, 7);
  await makeFile(join(dir.path, "small.bin"), 1024 * 1024 + 3, 8);
  await using server = await startTestServer(dir.path, { ...NO_PENALTY, idleTimeoutMs: 1500 });
  await using stuck = await manualSession(server.port, server.secret);
  const stuckPeer = peerOf(stuck.conn);
  await stuck.send({ t: "get", path: "big.bin", offset: 0, prefixSha256: "" });
  // Never read again. Meanwhile, others list and download.
  await using out = await tempDir();
  for (let round = 0; round < 3; round++) {
    await using client = await FerryClient.connect({
      hostname: "127.0.0.1",
      port: server.port,
      secret: server.secret,
    });
    const names = (await client.list("")).map((entry) => entry.name).sort();
    deepStrictEqual(names, ["big.bin", "small.bin"]);
    await client.download("small.bin", out.path, `small-${round}.bin`);
    strictEqual(
      await sha256File(join(out.path, `small-${round}.bin`)),
      await sha256File(join(dir.path, "small.bin")),
    );
  }
  ok(
    !server.log.lines.some((line) => new RegExp(`${at(stuckPeer)}closed`).test(line)),
    "still stuck",
  );
  // The stalled download is closed at the idle deadline.
  await server.log.waitFor(new RegExp(`${at(stuckPeer)}closed: transfer stalled`), 10_000);
  await assertStillServes(server.port, server.secret);
});

// --- Crowds -----------------------------------------------------------------------------------

Deno.test("hostile client: over the connection cap, new connections are refused quickly with a reason", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "a.txt"), "hello");
  await using server = await startTestServer(dir.path, { ...NO_PENALTY, maxConnections: 2 });
  await using first = await manualSession(server.port, server.secret);
  // One that never authenticates: handshakes have a budget of their own (admission_test.ts).
  const stalled = await rawConnect(server.port);
  await using second = await manualSession(server.port, server.secret);
  // (A connection is logged once it authenticates; the server's count shows this one is in.)
  await until(() => server.server.connections === 3, "the stalled connection to be accepted");
  for (let attempt = 0; attempt < 5; attempt++) {
    const started = performance.now();
    await rejects(
      FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret: server.secret }),
      (error: unknown) => {
        ok(error instanceof ConnectionError);
        match(error.message, /refused the connection: too many connections, try again later/);
        return true;
      },
    );
    ok(performance.now() - started < 1000, "refused quickly");
  }
  strictEqual(server.log.count(/refused: too many connections/), 5);
  // The ones in progress are unaffected.
  for (const session of [first, second]) {
    await session.send({ t: "list", path: "", recursive: false });
    const listing = await session.next();
    ok(listing?.t === "listing" && listing.entries.length === 1);
  }
  // A freed slot is available again.
  const peer = peerOf(first.conn);
  await first.channel.writer.end();
  await server.log.waitFor(new RegExp(`${at(peer)}closed by client`));
  stalled.close();
  await assertStillServes(server.port, server.secret);
});

// --- Guessing ---------------------------------------------------------------------------------

/**
 * Runs an honest client from source address 127.0.0.2 in a subprocess (Deno.connect cannot pick
 * its source address; node:net can, and needs net permission for 127.0.0.2, which the test
 * process is not given). Returns the welcome's mode, or the error message.
 */
async function connectFrom127002(port: number, code: string): Promise<string> {
  await using dir = await tempDir();
  const lib = new URL("../lib/", import.meta.url).href;
  const script = join(dir.path, "from_127_0_0_2.ts");
  await Deno.writeTextFile(
    script,
    `
import net from "node:net";
import { codeSecret } from "${lib}code.ts";
import { clientHandshake } from "${lib}protocol/handshake.ts";
import { RecordType } from "${lib}protocol/framing.ts";
import { decodeServerMessage } from "${lib}protocol/messages.ts";

const socket = net.connect({ host: "127.0.0.1", port: Number(Deno.args[0]), localAddress: "127.0.0.2" });
const chunks: Uint8Array[] = [];
let ended = false;
let wake = () => {};
socket.on("data", (chunk: Uint8Array) => { chunks.push(new Uint8Array(chunk)); wake(); });
socket.on("close", () => { ended = true; wake(); });
socket.on("error", () => { ended = true; wake(); });
const stream = {
  async read(buffer: Uint8Array): Promise<number | null> {
    while (chunks.length === 0 && !ended) await new Promise<void>((resolve) => wake = resolve);
    const chunk = chunks.shift();
    if (!chunk) return null;
    const count = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, count));
    if (count < chunk.length) chunks.unshift(chunk.subarray(count));
    return count;
  },
  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) =>
      socket.write(bytes.slice(), (error?: Error | null) => error ? reject(error) : resolve(bytes.length))
    );
  },
};
try {
  const code = new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer());
  const channel = await clientHandshake(stream, codeSecret(code.trim()));
  const record = await channel.reader.next();
  if (record.type !== RecordType.control) throw new Error("no welcome");
  const welcome = decodeServerMessage(record.payload);
  await channel.writer.end();
  console.log(welcome.t === "welcome" ? "welcome " + welcome.mode : "unexpected " + welcome.t);
} catch (error) {
  console.log("error " + (error instanceof Error ? error.message : String(error)));
}
socket.destroy();
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-net=127.0.0.1,127.0.0.2", script, String(port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  strictEqual(output.code, 0, new TextDecoder().decode(output.stderr));
  return stdout;
}

Deno.test("hostile client: repeated wrong codes from one address are slowed, other addresses are not", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  const wrongCode = generateCode();
  const wrong = { hostname: "127.0.0.1", port: server.port, secret: codeSecret(wrongCode) };
  // Three free failures, then a fourth that earns a delay.
  // (The client sees the wrong code before the server does: wait for the server's log line.)
  for (let attempt = 1; attempt <= 4; attempt++) {
    await rejects(FerryClient.connect(wrong), AuthenticationError);
    await server.log.waitForCount(/authentication failed/, attempt);
  }
  // The next attempt (any code) from 127.0.0.1 is refused at once, with the reason.
  for (const secret of [wrong.secret, server.secret]) {
    await rejects(FerryClient.connect({ ...wrong, secret }), (error: unknown) => {
      ok(error instanceof ConnectionError);
      match(error.message, /refused the connection: too many failed attempts from your address/);
      return true;
    });
  }
  // A correct code from another address is unaffected.
  strictEqual(await connectFrom127002(server.port, server.code), "welcome read-write");
  await server.log.waitFor(/127\.0\.0\.2:\d+ code=default authenticated/);

  // Each failure is logged with the address and without code material.
  const failures = server.log.lines.filter((line) => / authentication failed/.test(line));
  strictEqual(failures.length, 4);
  for (const line of failures) {
    // The identifier the client named is public (it travels in the clear); the code is not.
    match(
      line,
      /^\S+ 127\.0\.0\.1:\d+ authentication failed: wrong code \(identifier 0000, code default\)$/,
    );
  }
  strictEqual(server.log.count(/127\.0\.0\.1:\d+ refused: too many failed attempts/), 2);
  const text = server.log.text().toLowerCase();
  for (const code of [server.code, wrongCode]) {
    for (const form of [formatCode(code), normaliseCode(code)]) {
      ok(!text.includes(form.toLowerCase()), "the log holds no code");
    }
  }
});

Deno.test("hostile client: parallel guesses from a penalised address get one attempt, not many", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { penalty: { freeFailures: 1 } });
  const wrong = { hostname: "127.0.0.1", port: server.port, secret: codeSecret(generateCode()) };
  await rejects(FerryClient.connect(wrong), AuthenticationError);
  await server.log.waitFor(/authentication failed/);
  // Eight guesses at once: only one may be tried, the others are told to slow down.
  const results = await Promise.allSettled(
    Array.from({ length: 8 }, () => FerryClient.connect(wrong)),
  );
  const reasons = results.map((result) =>
    result.status === "rejected" && result.reason instanceof AuthenticationError
      ? "guessed"
      : result.status === "rejected" && /too many failed attempts/.test(String(result.reason))
      ? "slowed"
      : "other"
  ).sort();
  deepStrictEqual(reasons, ["guessed", ...Array(7).fill("slowed")]);
  await server.log.waitForCount(/authentication failed/, 2);
  strictEqual(server.log.count(/authentication failed/), 2);
});

// --- The real CLI -----------------------------------------------------------------------------

Deno.test("hostile client: `ferry serve` survives garbage, stalls and bad frames and keeps serving", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "a.txt"), "hello");
  await using serve = await startServe(dir.path, { args: ["--handshake-timeout", "0.3"] });
  const secret = codeSecret(serve.code);

  const garbage = await rawConnect(serve.port);
  await writeRaw(garbage, randomBytes(4096)).catch(() => {});
  await readUntilClosed(garbage);

  const started = performance.now();
  const stalled = await rawConnect(serve.port);
  await readUntilClosed(stalled, 5000);
  const ms = performance.now() - started;
  ok(ms >= 290 && ms < 3000, `stalled connection closed after ${ms} ms`);

  {
    await using session = await manualSession(serve.port, secret);
    await writeRaw(session.conn, Uint8Array.of(RecordType.data, 0xff, 0xff, 0xff, 0xff));
    await readUntilClosed(session.conn);
  }

  const result = await runFerry(["ls", serve.address, "--code-file", serve.codeFile]);
  strictEqual(result.code, 0, result.stderr);
  match(result.stdout, /a\.txt/);
  const running = await Promise.race([
    serve.child.status.then(() => false),
    Promise.resolve(true),
  ]);
  ok(running, "ferry serve is still running");
  const log = serve.log();
  match(log, /127\.0\.0\.1:\d+ (handshake|authentication) failed/);
  match(log, /handshake failed: handshake deadline passed/);
  match(log, /closed: Record length 4294967295 is outside/);
});
