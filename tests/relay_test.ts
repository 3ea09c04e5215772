/**
 * `ferry relay` on loopback: a real ferry server registered through a `RelayListener` and real
 * clients dialling through `relayDial`, and the relay's defences against strangers (garbage,
 * stalled connections, limits per address, a wrong or missing token) and against the servers that
 * hold its token (identifiers owned by their control connection).
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { writeAll } from "../lib/_fs.ts";
import { readExact } from "../lib/net/_exact.ts";
import { FerryClient } from "../lib/client/client.ts";
import { type ReachOptions, reachServer } from "../lib/client/reach.ts";
import {
  AuthenticationError,
  ConnectionError,
  ProtocolError,
  RefusedError,
  RelayRefusedError,
} from "../lib/errors.ts";
import { relayDial } from "../lib/net/relay_dial.ts";
import {
  encodeClientRequest,
  encodeHeader,
  RegistrationStatus,
  RelayRole,
  RelayStatus,
} from "../lib/relay/wire.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { makeFile, sha256File, tempDir } from "./_helpers.ts";
import { assertStillServes, connectFrom, startTestServer } from "./_hostile.ts";
import { LoopbackRelay } from "./_relay.ts";
import {
  askRelay,
  closeQuietly,
  connectRelay,
  manualControl,
  openData,
  readStatus,
  startRelayedServer,
  startTestRelay,
} from "./_relaying.ts";

const MiB = 1024 * 1024;

/** Connects through the relay on `port` to the server holding `identifier`. */
function viaRelay(port: number, secret: Uint8Array, identifier = "K7QD"): Promise<FerryClient> {
  return FerryClient.connect({
    hostname: "127.0.0.1",
    port,
    secret,
    dial: relayDial(identifier),
    timeoutMs: 5000,
  });
}

/** Every byte a client at `source` gets before the relay closes, after sending `bytes`. */
async function sendFrom(source: string, port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const { socket, closed } = connectFrom(source, port);
  socket.write(bytes);
  return await closed;
}

Deno.test("a list and a download through the relay: exact bytes, the client seen as relay:ADDRESS", async () => {
  await using relay = await startTestRelay();
  await using served = await tempDir();
  await using out = await tempDir();
  await makeFile(join(served.path, "big.bin"), 5 * MiB + 7, 3);
  await using server = await startRelayedServer(served.path, relay);
  await using client = await viaRelay(relay.port, server.secret);
  deepStrictEqual((await client.list("")).map((entry) => entry.name), ["big.bin"]);
  const result = await client.download("big.bin", out.path, "big.bin");
  strictEqual(result.size, 5 * MiB + 7);
  strictEqual(
    await sha256File(join(out.path, "big.bin")),
    await sha256File(join(served.path, "big.bin")),
  );
  // The server logs the client by the address the relay reported, marked as relayed.
  await server.log.waitFor(/127\.0\.0\.1:\d+ via relay code=default authenticated$/);
  await relay.log.waitFor(/paired with K7QD/);
  ok(server.log.text().includes("registered K7QD"), server.log.text());
});

Deno.test("a client naming an identifier nobody registered is told not-found, one line, no hang", async () => {
  await using relay = await startTestRelay();
  const secret = codeSecret(generateCode());
  await rejects(viaRelay(relay.port, secret, "ZZZZ"), (error: Error) => {
    ok(error instanceof RelayRefusedError, String(error));
    strictEqual(error.status, RelayStatus.notFound);
    ok(error.message.startsWith("No server with identifier ZZZZ is registered at the relay"));
    return true;
  });
});

Deno.test("a wrong code through the relay fails the handshake end to end (exit 3's error)", async () => {
  await using relay = await startTestRelay();
  await using served = await tempDir();
  await using server = await startRelayedServer(served.path, relay);
  await rejects(viaRelay(relay.port, codeSecret(generateCode())), AuthenticationError);
  await server.log.waitFor(/via relay authentication failed: wrong code \(identifier 0000/);
  await assertStillServesViaRelay(relay.port, server.secret);
});

async function assertStillServesViaRelay(port: number, secret: Uint8Array): Promise<void> {
  await using client = await viaRelay(port, secret);
  ok(Array.isArray(await client.list("")));
}

Deno.test("registering needs the relay's token, which never crosses the wire", async (t) => {
  await using relay = await startTestRelay();
  await using served = await tempDir();

  await t.step(
    "a server with another token is refused as unauthorized and keeps trying",
    async () => {
      await using server = await startRelayedServer(
        served.path,
        { port: relay.port, token: crypto.getRandomValues(new Uint8Array(32)) },
        { wait: false },
      );
      await server.events.waitFor(
        (event) => event.kind === "disconnected" && event.unauthorized,
        "an unauthorized refusal",
      );
      ok(server.log.text().includes("the relay refused its token"), server.log.text());
      await relay.log.waitFor(/registration refused: wrong token/);
      strictEqual(relay.relay.counts.identifiers, 0);
      await rejects(viaRelay(relay.port, server.secret), RelayRefusedError);
    },
  );

  await t.step(
    "a recording of a registration holds neither the token nor a replayable proof",
    async () => {
      const recorded: Uint8Array[] = [];
      await using tap = new RecordingRelay(relay.port, recorded);
      await using server = await startRelayedServer(served.path, {
        port: tap.port,
        token: relay.token,
      });
      await using client = await viaRelay(relay.port, server.secret);
      await client.list("");
      const upstream = Buffer.concat(recorded);
      ok(upstream.length > 54, "the registration was recorded");
      ok(!upstream.includes(Buffer.from(relay.token)), "the token crossed the wire");
      const hex = [...relay.token].map((byte) => byte.toString(16).padStart(2, "0")).join("");
      ok(!upstream.includes(Buffer.from(hex)), "the token's text crossed the wire");
      // Replaying the recorded opening (header, then server id and proof) is refused: the relay's
      // nonce differs every time.
      const conn = await connectRelay(relay.port);
      await writeAll(conn, encodeHeader(RelayRole.control));
      strictEqual(await readStatus(conn), RelayStatus.ok);
      await readExact(conn, 32); // this connection's nonce
      await writeAll(conn, upstream.subarray(6, 54));
      strictEqual(await readStatus(conn), RelayStatus.unauthorized);
      closeQuietly(conn);
      await relay.log.waitForCount(/registration refused: wrong token/, 2);
    },
  );
});

/** A loopback TCP relay in front of `target` that records what flows towards it. */
class RecordingRelay extends LoopbackRelay {
  #recorded: Uint8Array[];
  constructor(target: number, recorded: Uint8Array[]) {
    super(target);
    this.#recorded = recorded;
  }
  protected relay(client: Deno.Conn, server: Deno.Conn): void {
    const pump = async (from: Deno.Conn, to: Deno.Conn, record: boolean) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const count = await from.read(buffer);
          if (count === null) break;
          if (record) this.#recorded.push(buffer.slice(0, count));
          await writeAll(to, buffer.subarray(0, count));
        }
      } catch {
        // cut
      }
      this.closeConn(from);
      this.closeConn(to);
    };
    void pump(client, server, true);
    void pump(server, client, false);
  }
}

Deno.test("a stranger's garbage closes only its own connection; honest pairs go on", async () => {
  await using relay = await startTestRelay({ headerTimeoutMs: 500 });
  await using served = await tempDir();
  await makeFile(join(served.path, "f.bin"), MiB, 5);
  await using server = await startRelayedServer(served.path, relay);
  const header = (role: number, version = 1) =>
    Uint8Array.of(0x46, 0x52, 0x4c, 0x59, version, role);
  const cases: Uint8Array[] = [
    new TextEncoder().encode("GET / HTTP/1.1\r\nHost: relay\r\n\r\n"),
    new TextEncoder().encode("FRY1"), // a ferry hello, half a header
    header(9), // unknown role
    Uint8Array.of(...header(3), 0x6b, 0x37, 0x71, 0x64), // lowercase identifier
    Uint8Array.of(...header(3), 0x4b, 0x37, 0x51), // identifier cut short
    Uint8Array.of(...header(2), ...new Uint8Array(16)), // a pairing nobody asked for
    Uint8Array.of(...header(1), ...new Uint8Array(48)), // a control connection with a bad proof
  ];
  for (let index = 0; index < 200; index++) {
    cases.push(crypto.getRandomValues(new Uint8Array(1 + ((index * 131) % 3000))));
  }
  const sources = (index: number) => `127.0.0.${2 + (index % 8)}`;
  const answers = await Promise.all(
    cases.map((bytes, index) => sendFrom(sources(index), relay.port, bytes)),
  );
  // Whatever is answered is one 6-byte answer (an unknown pairing and a bad proof, not-found
  // and unauthorized; a control header gets its challenge first).
  strictEqual(answers[5]!.length, 6);
  strictEqual(answers[5]![5], RelayStatus.notFound);
  strictEqual(answers[6]!.at(-1), RelayStatus.unauthorized);
  for (const [index, answer] of answers.entries()) {
    if (index === 6) continue;
    ok(answer.length === 0 || answer.length === 6, `case ${index} got ${answer.length} bytes`);
  }
  await using out = await tempDir();
  await using client = await viaRelay(relay.port, server.secret);
  strictEqual((await client.download("f.bin", out.path, "f.bin")).size, MiB);
  strictEqual(relay.relay.counts.controls, 1);
  strictEqual(relay.relay.counts.identifiers, 1);
});

Deno.test("deadlines: a silent connection, a server that never answers, an idle pair", async (t) => {
  await using relay = await startTestRelay({
    headerTimeoutMs: 300,
    pairTimeoutMs: 300,
    idleTimeoutMs: 400,
  });

  await t.step("a connection that sends nothing is closed at the header deadline", async () => {
    const { closed } = connectFrom("127.0.0.2", relay.port);
    strictEqual((await closed).length, 0);
  });

  await t.step(
    "a connection that stops inside its header is closed at the deadline too",
    async () => {
      const { socket, closed } = connectFrom("127.0.0.2", relay.port);
      socket.write(encodeClientRequest("K7QD").subarray(0, 8));
      strictEqual((await closed).length, 0);
    },
  );

  await t.step(
    "a server that does not open its data connection leaves the client busy",
    async () => {
      await using control = await manualControl(relay.port, relay.token);
      deepStrictEqual(await control.register(["K7QD"]), [RegistrationStatus.registered]);
      const { conn, status } = await askRelay(relay.port, "K7QD");
      strictEqual(status, RelayStatus.busy);
      closeQuietly(conn);
      // ...and the pairing it was asked for is gone by then.
      const late = await openData(relay.port, await control.nextPairing());
      strictEqual(late.status, RelayStatus.notFound);
      closeQuietly(late.conn);
    },
  );

  await t.step("a pair with no byte either way is closed at the idle deadline", async () => {
    await using control = await manualControl(relay.port, relay.token);
    await control.register(["AB12"]);
    const asking = askRelay(relay.port, "AB12");
    const data = await openData(relay.port, await control.nextPairing());
    const { conn, status } = await asking;
    strictEqual(status, RelayStatus.ok);
    strictEqual(data.peer?.hostname, "127.0.0.1");
    // Bytes flow, then nothing: both ends are closed.
    await writeAll(conn, Uint8Array.of(1, 2, 3));
    deepStrictEqual([...await readN(data.conn, 3)], [1, 2, 3]);
    strictEqual(await data.conn.read(new Uint8Array(1)), null);
    strictEqual(await conn.read(new Uint8Array(1)).catch(() => null), null);
    closeQuietly(conn);
    closeQuietly(data.conn);
    await relay.log.waitFor(/pair with AB12 ended \(idle\): 3 bytes to the server, 0 back/);
  });
});

async function readN(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await conn.read(bytes.subarray(filled));
    if (count === null) throw new Error("ended early");
    filled += count;
  }
  return bytes;
}

Deno.test("limits per address: refused as busy, in the same 6-byte shape; other addresses unaffected", async (t) => {
  await using relay = await startTestRelay({
    maxUnidentifiedPerAddress: 2,
    maxClientsPerAddress: 2,
    maxControlsPerAddress: 1,
    maxIdentifiersPerAddress: 2,
    maxPendingPerServer: 1,
    headerTimeoutMs: 5000,
    pairTimeoutMs: 5000,
  });
  const busy = [0x46, 0x52, 0x4c, 0x59, 1, RelayStatus.busy];

  await t.step("connections still in their header", async () => {
    const silent = [connectFrom("127.0.0.2", relay.port), connectFrom("127.0.0.2", relay.port)];
    await waitUntil(() => relay.relay.counts.connections >= 2);
    deepStrictEqual([...await connectFrom("127.0.0.2", relay.port).closed], busy);
    // Another address is not concerned.
    const other = connectFrom("127.0.0.3", relay.port);
    other.socket.write(encodeClientRequest("ZZZZ"));
    deepStrictEqual([...await other.closed], [...busy.slice(0, 5), RelayStatus.notFound]);
    for (const { socket } of silent) socket.destroy();
  });

  await t.step("identifiers, and control connections", async () => {
    await using control = await manualControl(relay.port, relay.token);
    deepStrictEqual(await control.register(["AAAA", "BBBB", "CCCC"]), [
      RegistrationStatus.registered,
      RegistrationStatus.registered,
      RegistrationStatus.limit,
    ]);
    await rejects(manualControl(relay.port, relay.token), /status 2/);
  });

  await t.step("clients waiting for one server, and clients of one address", async () => {
    await waitUntil(() => relay.relay.counts.controls === 0);
    await using control = await manualControl(relay.port, relay.token);
    await control.register(["K7QD"]);
    const pair = async () => {
      const asking = askRelay(relay.port, "K7QD");
      const data = await openData(relay.port, await control.nextPairing());
      const client = await asking;
      strictEqual(client.status, RelayStatus.ok);
      return [client.conn, data.conn];
    };
    // One client waits for its pairing: the next one for that server is refused meanwhile.
    const waiting = askRelay(relay.port, "K7QD");
    const pairing = await control.nextPairing();
    const refused = await askRelay(relay.port, "K7QD");
    strictEqual(refused.status, RelayStatus.busy);
    closeQuietly(refused.conn);
    const data = await openData(relay.port, pairing);
    const first = await waiting;
    strictEqual(first.status, RelayStatus.ok);
    // A second pair fills 127.0.0.1's two client places: a third is refused as busy whatever it
    // asks for, even an identifier nobody holds, so a refusal never tells which ones exist.
    const second = await pair();
    const third = await askRelay(relay.port, "ZZZZ");
    strictEqual(third.status, RelayStatus.busy);
    const elsewhere = connectFrom("127.0.0.3", relay.port);
    elsewhere.socket.write(encodeClientRequest("ZZZZ"));
    strictEqual((await elsewhere.closed)[5], RelayStatus.notFound);
    for (const conn of [first.conn, data.conn, ...second, third.conn]) closeQuietly(conn);
  });
});

/** `promise`, or a failure naming `what` after 10 s. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No ${what} within 10 s`)), 10_000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `condition()` holds (polling every 10 ms, 10 s at most). */
async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not reached");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("an identifier belongs to its server's control connection: refused to another, freed with it", async () => {
  await using relay = await startTestRelay();
  await using first = await tempDir();
  await using second = await tempDir();
  await Deno.writeTextFile(join(first.path, "first.txt"), "1");
  await Deno.writeTextFile(join(second.path, "second.txt"), "2");
  const a = await startRelayedServer(first.path, relay);
  await using b = await startRelayedServer(second.path, relay, {
    wait: false,
    listener: { retryRefusedMs: 100, refreshMs: 50 },
  });
  await b.events.waitFor(
    (event) =>
      event.kind === "registered" &&
      event.refused.some(({ identifier, reason }) => identifier === "K7QD" && reason === "taken"),
    "a refusal of K7QD as taken",
  );
  ok(b.log.text().includes("K7QD refused: another server holds it there"), b.log.text());
  // Clients still reach the first server.
  {
    await using client = await viaRelay(relay.port, a.secret);
    deepStrictEqual((await client.list("")).map((entry) => entry.name), ["first.txt"]);
  }
  // The first server leaves: its identifier goes with its control connection, and the second
  // server, asking again, gets it.
  await a[Symbol.asyncDispose]();
  await b.events.registered("K7QD");
  await using client = await viaRelay(relay.port, b.secret);
  deepStrictEqual((await client.list("")).map((entry) => entry.name), ["second.txt"]);
});

Deno.test("the same server connecting again from its address replaces its older control connection; from another it does not", async () => {
  await using relay = await startTestRelay();
  const serverId = crypto.getRandomValues(new Uint8Array(16));
  await using older = await manualControl(relay.port, relay.token, serverId);
  await older.register(["K7QD"]);
  // Another token holder who saw the server id on the wire cannot push the server out with it.
  await using elsewhere = await manualControl(relay.port, relay.token, serverId, "127.0.0.2");
  deepStrictEqual(await elsewhere.register(["K7QD"]), [RegistrationStatus.taken]);
  deepStrictEqual(await older.register(["K7QD"]), [RegistrationStatus.registered]);
  await using newer = await manualControl(relay.port, relay.token, serverId);
  // The older connection is closed by the relay, and its identifier with it.
  await within(older.closed, "the older connection closed by the relay");
  deepStrictEqual(await newer.register(["K7QD"]), [RegistrationStatus.registered]);
  await relay.log.waitFor(/replaced by a newer connection of the same server/);
});

Deno.test("failures through the relay are counted per client, apart from direct clients", async () => {
  await using relay = await startTestRelay();
  await using served = await tempDir();
  await using server = await startRelayedServer(served.path, relay, {
    alsoTcp: true,
    server: { penalty: { freeFailures: 2, baseDelayMs: 60_000, maxDelayMs: 60_000 } },
  });
  const wrong = codeSecret(generateCode());
  for (let attempt = 0; attempt < 3; attempt++) {
    await rejects(viaRelay(relay.port, wrong), AuthenticationError);
  }
  // The relayed address (relay:127.0.0.1) must now wait...
  await rejects(viaRelay(relay.port, server.secret), (error: Error) => {
    ok(
      error instanceof RefusedError && /too many failed attempts/.test(error.message),
      String(error),
    );
    return true;
  });
  // ...while a client connecting directly from 127.0.0.1 is not slowed by it.
  await assertStillServes(server.port, server.secret);
  ok(server.log.text().includes("via relay"), server.log.text());
});

Deno.test("a cut relay is an ordinary cut transfer: the server registers again, the download resumes", async () => {
  const first = await startTestRelay();
  const { port, token } = first;
  await using served = await tempDir();
  await using out = await tempDir();
  await makeFile(join(served.path, "big.bin"), 48 * MiB, 9);
  await using server = await startRelayedServer(served.path, first);
  {
    await using client = await viaRelay(port, server.secret);
    let cut: Promise<void> | undefined;
    await rejects(
      client.download("big.bin", out.path, "big.bin", {
        onProgress: ({ bytes }) => {
          if (bytes > 4 * MiB) cut ??= first.relay.close(); // the relay dies mid-transfer
        },
      }),
      ConnectionError,
    );
    await cut;
  }
  // The same relay comes back; the server's listener finds it again by itself.
  await using second = await startTestRelay({}, port, token);
  await server.events.waitFor(
    () => server.events.events.filter((event) => event.kind === "registered").length >= 2,
    "a second registration",
  );
  await using client = await viaRelay(port, server.secret);
  const result = await client.download("big.bin", out.path, "big.bin");
  ok(result.resumedFrom > 0, `resumed from ${result.resumedFrom}`);
  ok(result.transferred < 48 * MiB);
  strictEqual(
    await sha256File(join(out.path, "big.bin")),
    await sha256File(join(served.path, "big.bin")),
  );
  ok(second.log.text().includes("registered K7QD"));
});

Deno.test("a hostile relay cannot flood the server: pairings beyond the limit are ignored, nonsense ends the connection", async () => {
  await using served = await tempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const dataConnections: Deno.Conn[] = [];
  let controls = 0;
  // The fake relay accepts any proof, asks for 200 pairings at once, never answers a data
  // connection, then sends a message type that does not exist.
  const handle = async (conn: Deno.Conn) => {
    const header = await readExact(conn, 6);
    if (header[5] === RelayRole.data) {
      dataConnections.push(conn);
      return;
    }
    controls++;
    await writeAll(conn, Uint8Array.of(0x46, 0x52, 0x4c, 0x59, 1, 0, ...new Uint8Array(32)));
    await readExact(conn, 48);
    await writeAll(conn, Uint8Array.of(0x46, 0x52, 0x4c, 0x59, 1, 0));
    for (let index = 0; index < 200; index++) {
      await writeAll(conn, Uint8Array.of(3, ...crypto.getRandomValues(new Uint8Array(16))));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    await writeAll(conn, Uint8Array.of(99)).catch(() => {});
  };
  const serving = (async () => {
    for await (const conn of listener) void handle(conn).catch(() => {});
  })().catch(() => {});
  await using server = await startRelayedServer(served.path, { port, token: new Uint8Array(32) }, {
    wait: false,
    alsoTcp: true,
    listener: { maxOpening: 8, stepTimeoutMs: 2000 },
  });
  await server.events.waitFor(
    (event) => event.kind === "disconnected" && /unknown message/.test(event.reason),
    "the listener leaving a relay that talks nonsense",
  );
  // At most 8 data connections are opened at once (they wait 2 s for an answer that never
  // comes); the rest of the 200 pairings were ignored.
  await waitUntil(() => dataConnections.length >= 8);
  await new Promise((resolve) => setTimeout(resolve, 200));
  strictEqual(dataConnections.length, 8);
  ok(server.log.text().includes("a pairing was ignored"), server.log.text());
  ok(controls >= 1);
  await assertStillServes(server.port, server.secret); // direct clients are served meanwhile
  listener.close();
  for (const conn of dataConnections) closeQuietly(conn);
  await serving;
});

Deno.test("reachServer(): every LAN candidate is tried in turn; a fake costs one attempt, the relay comes last", async (t) => {
  await using relay = await startTestRelay();
  await using served = await tempDir();
  await Deno.writeTextFile(join(served.path, "real.txt"), "real");
  // The server's code carries the identifier K7QD, which reachServer names in the handshake.
  await using codes = await tempDir();
  const code = `K7QD-${generateCode()}`;
  const codeFile = join(codes.path, "code");
  await Deno.writeTextFile(codeFile, `${code}\n`, { mode: 0o600 });
  await using server = await startRelayedServer(served.path, relay, {
    alsoTcp: true,
    server: { code, secret: undefined, codeFile },
  });
  // A fake announcer's port: a ferry server holding another code, and a port that is no ferry
  // server at all.
  await using other = await tempDir();
  await using impostor = await startTestServer(other.path);
  const garbage = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const garbageServing = (async () => {
    for await (const conn of garbage) {
      await writeAll(conn, new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n")).catch(() => {});
      closeQuietly(conn);
    }
  })();
  const candidates = (...ports: number[]) =>
    async function* () {
      for (const port of ports) yield { hostname: "127.0.0.1", port };
    };
  const tried: string[] = [];
  const reach = (find: ReachOptions["find"], secret = server.secret, withRelay = true) =>
    reachServer({
      identifier: "K7QD",
      secret,
      find,
      relay: withRelay ? { hostname: "127.0.0.1", port: relay.port } : undefined,
      onAttempt: (route) => tried.push(`${route.kind}:${route.port}`),
    });

  await t.step("fakes first, then the real server on the LAN: the direct route wins", async () => {
    tried.length = 0;
    const { client, route } = await reach(
      candidates(impostor.port, garbage.addr.port, server.port),
    );
    await using _ = client;
    deepStrictEqual(route, { kind: "lan", hostname: "127.0.0.1", port: server.port });
    deepStrictEqual((await client.list("")).map((entry) => entry.name), ["real.txt"]);
    deepStrictEqual(tried, [
      `lan:${impostor.port}`,
      `lan:${garbage.addr.port}`,
      `lan:${server.port}`,
    ]);
    // The impostor got one handshake, which failed for it: one guess, wrong.
    strictEqual(impostor.log.count(/authentication failed: wrong code/), 1);
    ok(!relay.log.text().includes("paired"), "the relay was not used");
  });

  await t.step("only fakes on the LAN: the relay reaches the server", async () => {
    tried.length = 0;
    const { client, route } = await reach(candidates(impostor.port));
    await using _ = client;
    deepStrictEqual(route, { kind: "relay", hostname: "127.0.0.1", port: relay.port });
    deepStrictEqual(tried, [`lan:${impostor.port}`, `relay:${relay.port}`]);
    deepStrictEqual((await client.list("")).map((entry) => entry.name), ["real.txt"]);
  });

  await t.step(
    "a route that worked before is tried first; when it fails, the search goes on",
    async () => {
      tried.length = 0;
      const relayRoute = { kind: "relay", hostname: "127.0.0.1", port: relay.port } as const;
      const { client, route } = await reachServer({
        identifier: "K7QD",
        secret: server.secret,
        find: candidates(server.port),
        relay: { hostname: "127.0.0.1", port: relay.port },
        prefer: relayRoute,
        onAttempt: (attempt) => tried.push(`${attempt.kind}:${attempt.port}`),
      });
      await client.close();
      deepStrictEqual(route, relayRoute);
      deepStrictEqual(tried, [`relay:${relay.port}`]);
      tried.length = 0;
      const gone = { kind: "lan", hostname: "127.0.0.1", port: garbage.addr.port } as const;
      const again = await reachServer({
        identifier: "K7QD",
        secret: server.secret,
        find: candidates(garbage.addr.port, server.port),
        prefer: gone,
        onAttempt: (attempt) => tried.push(`${attempt.kind}:${attempt.port}`),
      });
      await again.client.close();
      // The route that failed is not tried twice in one search.
      deepStrictEqual(tried, [`lan:${garbage.addr.port}`, `lan:${server.port}`]);
    },
  );

  await t.step(
    "a wrong server that asks this address to slow down is passed over too",
    async () => {
      await using strict = await startTestServer(other.path, {
        penalty: { freeFailures: 0, baseDelayMs: 60_000 },
      });
      // One failed handshake there (a client's default code at another server, say)...
      await rejects(reach(candidates(strict.port), server.secret, false), AuthenticationError);
      await strict.log.waitFor(/authentication failed: wrong code/);
      // ...and the next attempt is refused before the handshake; the right server still serves.
      tried.length = 0;
      const { client, route } = await reach(
        candidates(strict.port, server.port),
        server.secret,
        false,
      );
      await client.close();
      deepStrictEqual(route, { kind: "lan", hostname: "127.0.0.1", port: server.port });
      deepStrictEqual(tried, [`lan:${strict.port}`, `lan:${server.port}`]);
      strictEqual(strict.log.count(/refused: too many failed attempts/), 1, strict.log.text());
    },
  );

  await t.step("a wrong code fails on every route and is reported as a wrong code", async () => {
    await rejects(reach(candidates(server.port), codeSecret(generateCode())), AuthenticationError);
  });

  await t.step("nothing on the LAN and no relay: one line saying where it looked", async () => {
    await rejects(reach(candidates(), server.secret, false), (error: Error) => {
      ok(error instanceof ConnectionError, String(error));
      ok(
        /^No server announced this code \(identifier K7QD\) on the local network within 2 s/
          .test(error.message),
        error.message,
      );
      return true;
    });
    await rejects(reach(candidates(garbage.addr.port), server.secret, false), ProtocolError);
  });
  garbage.close();
  await garbageServing.catch(() => {});
});
