/**
 * The CPace handshake as a specification, over in-memory pipes: what both sides get with the same
 * code, what they refuse, what an eavesdropper sees and what an active man in the middle can do.
 * The curve math itself is checked against the draft's vectors in `cpace_test.ts`.
 */
import assert from "node:assert/strict";
import { codeSecret, generateCode, normaliseCode } from "../lib/code.ts";
import { AuthenticationError, ConnectionError, ProtocolError } from "../lib/errors.ts";
import {
  confirmationTags,
  createShare,
  deriveTrafficKeys,
  FERRY_CI,
  intermediateSessionKey,
  sharedSecret,
} from "../lib/protocol/cpace.ts";
import { ByteReader, RecordType, RecordWriter } from "../lib/protocol/framing.ts";
import {
  clientHandshake,
  MAGIC,
  RefusalStatus,
  type SecureChannel,
  sendRefusal,
  serverHandshake,
  type Socket,
} from "../lib/protocol/handshake.ts";
import { encodeMessage } from "../lib/protocol/messages.ts";
import { PROTOCOL_VERSION } from "../lib/protocol/constants.ts";
import { concat, containsBytes, duplexPair, type PipeEnd } from "./_pipes.ts";

const EMPTY = new Uint8Array(0);
const HELLO_BYTES = 4 + 1 + 1 + 16;
const CLIENT_SHARE_BYTES = 16 + 32;
const SERVER_SHARE_BYTES = 32 + 64;
const TAG_BYTES = 64;

const vectors = JSON.parse(
  await Deno.readTextFile(new URL("./vectors/cpace-ristretto255.json", import.meta.url)),
);
const INVALID_POINTS: [string, Uint8Array][] = [
  ["the vectors' Y_i1 (not a valid encoding)", fromHex(vectors.scalar_mult_vfy_invalid.Y_i1)],
  ["the all-zero identity", fromHex(vectors.scalar_mult_vfy_invalid.Y_i2)],
  ["all 0xff (non-canonical)", new Uint8Array(32).fill(0xff)],
];

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Runs one side and closes its end if it fails, as the real client and server do. */
function side(end: PipeEnd, run: (socket: Socket) => Promise<SecureChannel>) {
  return run(end).catch((error) => {
    end.close();
    throw error;
  });
}

/** A client and a server handshaking over a fresh pipe; both outcomes are settled. */
async function handshake(clientCode: string, serverCode: string) {
  const pair = duplexPair();
  const [client, server] = await Promise.allSettled([
    side(pair.a, (socket) => clientHandshake(socket, codeSecret(clientCode))),
    side(pair.b, (socket) => serverHandshake(socket, codeSecret(serverCode))),
  ]);
  return { ...pair, client, server };
}

function channel(result: PromiseSettledResult<SecureChannel>): SecureChannel {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

function assertRejected(
  result: PromiseSettledResult<unknown>,
  type: new (...args: never[]) => Error,
  pattern?: RegExp,
): void {
  assert.equal(result.status, "rejected", "expected the handshake to fail");
  const reason = (result as PromiseRejectedResult).reason;
  assert.ok(reason instanceof type, `expected ${type.name}, got ${reason}`);
  if (pattern !== undefined) assert.match(reason.message, pattern);
}

/** Sends one record each way and an end record each way, and checks what arrives. */
async function exchange(client: SecureChannel, server: SecureChannel): Promise<void> {
  const request = encodeMessage({ t: "list", path: "", recursive: false });
  await client.writer.send(RecordType.control, request);
  const got = await server.reader.next();
  assert.equal(got.type, RecordType.control);
  assert.deepEqual(new Uint8Array(got.payload), request);
  const content = utf8("file content");
  await server.writer.send(RecordType.data, content);
  const back = await client.reader.next();
  assert.equal(back.type, RecordType.data);
  assert.deepEqual(new Uint8Array(back.payload), content);
  await client.writer.end();
  await server.writer.end();
  assert.equal((await server.reader.next()).type, RecordType.end);
  assert.equal((await client.reader.next()).type, RecordType.end);
}

// With the same code

Deno.test("`clientHandshake()` and `serverHandshake()` with the same code give working channels both ways", async () => {
  const code = generateCode();
  const { client, server } = await handshake(code, code);
  await exchange(channel(client), channel(server));
});

Deno.test("`clientHandshake()` accepts any spelling of the server's code", async () => {
  const code = generateCode();
  const { client, server } = await handshake(code.toLowerCase().replaceAll("-", " "), code);
  await exchange(channel(client), channel(server));
});

Deno.test("handshake messages have the documented sizes: hello 22, shares 48 and 96, confirmation 64", async () => {
  const code = generateCode();
  const { client, server, aToB, bToA } = await handshake(code, code);
  channel(client);
  channel(server);
  assert.deepEqual(bToA.writes.map((write) => write.length), [HELLO_BYTES, SERVER_SHARE_BYTES]);
  assert.deepEqual(aToB.writes.map((write) => write.length), [CLIENT_SHARE_BYTES, TAG_BYTES]);
  assert.deepEqual(bToA.writes[0]!.subarray(0, 6), concat([MAGIC, Uint8Array.of(1, 0)]));
  assert.equal(PROTOCOL_VERSION, 1);
});

// With different codes

Deno.test("`clientHandshake()` and `serverHandshake()` with different codes both throw AuthenticationError", async () => {
  const { client, server, aToB } = await handshake(generateCode(), generateCode());
  assertRejected(client, AuthenticationError, /different code/);
  assertRejected(server, AuthenticationError);
  // The client checks the server's tag first and sends no confirmation of its own.
  assert.equal(aToB.sent.length, CLIENT_SHARE_BYTES);
});

Deno.test("`clientHandshake()` fails on a code that differs in one symbol", async () => {
  const code = normaliseCode(generateCode());
  const other = (code[0] === "0" ? "1" : "0") + code.slice(1);
  const { client, server } = await handshake(other, code);
  assertRejected(client, AuthenticationError);
  assertRejected(server, AuthenticationError);
});

// What an eavesdropper sees

/** The 80 random bits a code stands for (Crockford base32 decoded). */
function codeBits(code: string): Uint8Array {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const out = new Uint8Array(10);
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const symbol of normaliseCode(code)) {
    buffer = (buffer << 5) | alphabet.indexOf(symbol);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[index++] = (buffer >> bits) & 0xff;
    }
  }
  return out;
}

/** Every form of `code` an implementation might leak. */
function codeForms(code: string): [string, Uint8Array][] {
  const normal = normaliseCode(code);
  const utf16 = (text: string, littleEndian: boolean) => {
    const view = new DataView(new ArrayBuffer(text.length * 2));
    for (let i = 0; i < text.length; i++) view.setUint16(i * 2, text.charCodeAt(i), littleEndian);
    return new Uint8Array(view.buffer);
  };
  const hex = Array.from(utf8(normal), (byte) => byte.toString(16).padStart(2, "0")).join("");
  return [
    ["as typed (grouped)", utf8(code)],
    ["normalised", utf8(normal)],
    ["lowercase", utf8(normal.toLowerCase())],
    ["lowercase grouped", utf8(code.toLowerCase())],
    ["first half", utf8(normal.slice(0, 8))],
    ["second half", utf8(normal.slice(8))],
    ["UTF-16LE", utf16(normal, true)],
    ["UTF-16BE", utf16(normal, false)],
    ["hex", utf8(hex)],
    ["base64", utf8(btoa(normal))],
    ["the 80 raw bits", codeBits(code)],
  ];
}

Deno.test("the code never appears on the wire, in any form, during a handshake and a session", async () => {
  const code = generateCode();
  const { client, server, aToB, bToA } = await handshake(code, code);
  await exchange(channel(client), channel(server));
  const transcript = concat([aToB.sent, bToA.sent]);
  assert.ok(transcript.length > HELLO_BYTES + CLIENT_SHARE_BYTES + SERVER_SHARE_BYTES + TAG_BYTES);
  for (const [form, bytes] of codeForms(code)) {
    // The search finds the form when it is there...
    assert.ok(containsBytes(concat([transcript, bytes]), bytes), form);
    // ...and it is not there.
    assert.ok(!containsBytes(transcript, bytes), `the code leaked ${form}`);
  }
});

Deno.test("the code never appears on the wire when the codes differ", async () => {
  const clientCode = generateCode();
  const serverCode = generateCode();
  const { aToB, bToA } = await handshake(clientCode, serverCode);
  const transcript = concat([aToB.sent, bToA.sent]);
  for (const [form, bytes] of [...codeForms(clientCode), ...codeForms(serverCode)]) {
    assert.ok(!containsBytes(transcript, bytes), `a code leaked ${form}`);
  }
});

Deno.test("an eavesdropper's transcript differs on every run with the same code (fresh nonces and shares)", async () => {
  const code = generateCode();
  const runs: { fromClient: Uint8Array[]; fromServer: Uint8Array[] }[] = [];
  for (let i = 0; i < 3; i++) {
    const { client, server, aToB, bToA } = await handshake(code, code);
    const clientChannel = channel(client);
    // The same request in each run.
    await clientChannel.writer.send(RecordType.control, utf8('{"t":"list"}'));
    await channel(server).reader.next();
    runs.push({ fromClient: aToB.writes, fromServer: bToA.writes });
  }
  type Run = typeof runs[number];
  const parts = {
    "server nonce": (run: Run) => run.fromServer[0]!.subarray(6),
    "client nonce": (run: Run) => run.fromClient[0]!.subarray(0, 16),
    "client share Ya": (run: Run) => run.fromClient[0]!.subarray(16),
    "server share Yb": (run: Run) => run.fromServer[1]!.subarray(0, 32),
    "server tag Tb": (run: Run) => run.fromServer[1]!.subarray(32),
    "client tag Ta": (run: Run) => run.fromClient[1]!,
    "the same request record": (run: Run) => run.fromClient[2]!.subarray(5),
  };
  for (const [name, part] of Object.entries(parts)) {
    const seen = new Set(runs.map((run) => Array.from(part(run)).join(",")));
    assert.equal(seen.size, runs.length, `${name} repeats across runs`);
  }
});

// A server that is not a ferry server, or refuses

/** Runs the client against a fake server that sends `bytes` and then closes. */
async function clientAgainst(bytes: Uint8Array) {
  const { a, b } = duplexPair();
  await b.write(bytes);
  b.close();
  return await clientHandshake(a, codeSecret(generateCode())).then(
    (value) => ({ status: "fulfilled", value }) as const,
    (reason) => ({ status: "rejected", reason }) as const,
  );
}

Deno.test("`clientHandshake()` throws ProtocolError when the server's greeting has a bad magic", async () => {
  const nonce = new Uint8Array(16);
  for (
    const greeting of [
      utf8("SSH-2.0-OpenSSH_9.6\r\n"),
      utf8("HTTP/1.1 400 Bad Request\r\n\r\n"),
      concat([utf8("FRY2"), Uint8Array.of(1, 0), nonce]),
      concat([utf8("fry1"), Uint8Array.of(1, 0), nonce]),
    ]
  ) {
    assertRejected(await clientAgainst(greeting), ProtocolError, /not a ferry server/);
  }
});

Deno.test("`clientHandshake()` throws ProtocolError when the server speaks another protocol version", async () => {
  for (const version of [0, 2, 255]) {
    const greeting = concat([MAGIC, Uint8Array.of(version, 0), new Uint8Array(16)]);
    assertRejected(await clientAgainst(greeting), ProtocolError, new RegExp(`version ${version}`));
  }
});

Deno.test("`clientHandshake()` throws ConnectionError when the server closes before or during its greeting", async () => {
  assertRejected(await clientAgainst(EMPTY), ConnectionError);
  assertRejected(await clientAgainst(MAGIC), ConnectionError);
  assertRejected(
    await clientAgainst(concat([MAGIC, Uint8Array.of(1, 0), new Uint8Array(8)])),
    ConnectionError,
  );
});

Deno.test("`clientHandshake()` turns a refusal hello into ConnectionError carrying the reason", async () => {
  const { a, b } = duplexPair();
  await sendRefusal(b, RefusalStatus.busy, "too many connections, try again later");
  const result = await clientHandshake(a, codeSecret(generateCode())).catch((error) => error);
  assert.ok(result instanceof ConnectionError);
  assert.match(result.message, /refused.*too many connections, try again later/);
});

Deno.test("hostile server: control characters in a refusal reason are replaced before display", async () => {
  const reason = utf8("busy\x1b[2J\x1b]0;pwned\x07\r\nnow\u202e\u00e9\x7f");
  const refusal = concat([MAGIC, Uint8Array.of(1, RefusalStatus.busy, reason.length), reason]);
  const result = await clientAgainst(refusal);
  assertRejected(result, ConnectionError, /busy/);
  const message = (result as PromiseRejectedResult).reason.message as string;
  assert.match(message, /now/);
  assert.match(message, /^[\x20-\x7e]*$/, `unsafe characters in: ${JSON.stringify(message)}`);
});

Deno.test("`sendRefusal()` sends printable ASCII only, at most 200 characters", async () => {
  const { a, b, bToA } = duplexPair();
  await sendRefusal(b, RefusalStatus.shuttingDown, "bye\n\x1b" + "x".repeat(500));
  const sent = bToA.sent;
  assert.deepEqual(sent.subarray(0, 6), concat([MAGIC, Uint8Array.of(1, 3)]));
  assert.equal(sent[6], 200);
  assert.equal(sent.length, 7 + 200);
  assert.ok(sent.subarray(7).every((byte) => byte >= 0x20 && byte <= 0x7e));
  await assert.rejects(clientHandshake(a, codeSecret(generateCode())), ConnectionError);
});

Deno.test("`clientHandshake()` throws ConnectionError when a refusal reason is cut short", async () => {
  const refusal = concat([MAGIC, Uint8Array.of(1, RefusalStatus.busy, 50), utf8("bus")]);
  assertRejected(await clientAgainst(refusal), ConnectionError);
});

// Invalid points

/** Reads exactly `length` bytes from `reader`, failing the test on a closed stream. */
async function take(reader: ByteReader, length: number): Promise<Uint8Array> {
  const bytes = await reader.readExact(length);
  assert.ok(bytes !== null, `stream closed before ${length} bytes`);
  return bytes.slice();
}

for (const [label, point] of INVALID_POINTS) {
  Deno.test(`hostile client: a share that is ${label} makes the server throw ProtocolError before it sends Tb`, async () => {
    const { a, b, bToA } = duplexPair();
    const server = side(b, (socket) => serverHandshake(socket, codeSecret(generateCode())));
    const input = new ByteReader(a);
    await take(input, HELLO_BYTES);
    await a.write(concat([new Uint8Array(16).fill(7), point]));
    await assert.rejects(server, ProtocolError);
    assert.equal(bToA.sent.length, HELLO_BYTES, "the server sent nothing after its greeting");
  });

  Deno.test(`hostile server: a share that is ${label} makes the client throw ProtocolError before it sends Ta`, async () => {
    const { a, b, aToB } = duplexPair();
    const client = side(a, (socket) => clientHandshake(socket, codeSecret(generateCode())));
    await b.write(concat([MAGIC, Uint8Array.of(PROTOCOL_VERSION, 0), new Uint8Array(16)]));
    await b.write(concat([point, new Uint8Array(TAG_BYTES)]));
    await assert.rejects(client, ProtocolError);
    assert.equal(aToB.sent.length, CLIENT_SHARE_BYTES, "the client sent no confirmation");
  });
}

// Active attackers

/** A client and a server joined through an attacker who holds the middle ends. */
function middle(code: string) {
  const toClient = duplexPair(); // a: the real client, b: the attacker
  const toServer = duplexPair(); // a: the attacker, b: the real server
  const client = side(toClient.a, (socket) => clientHandshake(socket, codeSecret(code)));
  const server = side(toServer.b, (socket) => serverHandshake(socket, codeSecret(code)));
  return {
    client: client.then(() => "accepted", (error) => error),
    server: server.then(() => "accepted", (error) => error),
    clientEnd: toClient.b,
    serverEnd: toServer.a,
    fromClient: new ByteReader(toClient.b),
    fromServer: new ByteReader(toServer.a),
    clientSent: toClient.aToB,
  };
}

/** Replaces the client's share Ya with the attacker's, then tries to confirm with the server. */
async function replaceClientShare(code: string, guess: string) {
  const mitm = middle(code);
  const hello = await take(mitm.fromServer, HELLO_BYTES);
  await mitm.clientEnd.write(hello);
  const share = await take(mitm.fromClient, CLIENT_SHARE_BYTES);
  const sid = concat([share.subarray(0, 16), hello.subarray(6)]);
  const ownPoint = createShare(codeSecret(guess), FERRY_CI, sid);
  await mitm.serverEnd.write(concat([share.subarray(0, 16), ownPoint.point]));
  const reply = await take(mitm.fromServer, SERVER_SHARE_BYTES);
  await mitm.clientEnd.write(reply); // Yb and Tb, untouched
  // Confirm to the server with what the attacker can compute from its guess.
  const yb = reply.subarray(0, 32);
  const isk = intermediateSessionKey(
    sid,
    sharedSecret(ownPoint, yb),
    ownPoint.point,
    EMPTY,
    yb,
    EMPTY,
  );
  await mitm.serverEnd.write(confirmationTags(sid, isk, ownPoint.point, EMPTY, yb, EMPTY).ta);
  return { client: await mitm.client, server: await mitm.server, clientSent: mitm.clientSent };
}

Deno.test("man in the middle: replacing the client's share with one from a guessed code fails on both sides", async () => {
  const code = generateCode();
  const { client, server, clientSent } = await replaceClientShare(code, generateCode());
  assert.ok(client instanceof AuthenticationError, String(client));
  assert.ok(server instanceof AuthenticationError, String(server));
  assert.equal(clientSent.sent.length, CLIENT_SHARE_BYTES, "the client sent no Ta");
});

Deno.test("man in the middle: replacing the client's share fails for the client even with the right code", async () => {
  // Control for the test above: the forged confirmation is computed correctly (the server takes
  // it when the guess is right), so the failures there come from the code, not from the attack.
  const code = generateCode();
  const { client, server } = await replaceClientShare(code, code);
  assert.equal(server, "accepted");
  assert.ok(client instanceof AuthenticationError, String(client));
});

Deno.test("man in the middle: replacing the server's share with one from a guessed code fails on both sides", async () => {
  const code = generateCode();
  const mitm = middle(code);
  const hello = await take(mitm.fromServer, HELLO_BYTES);
  await mitm.clientEnd.write(hello);
  const share = await take(mitm.fromClient, CLIENT_SHARE_BYTES);
  await mitm.serverEnd.write(share);
  await take(mitm.fromServer, SERVER_SHARE_BYTES); // the real Yb and Tb, withheld
  const sid = concat([share.subarray(0, 16), hello.subarray(6)]);
  const ya = share.subarray(16);
  const own = createShare(codeSecret(generateCode()), FERRY_CI, sid);
  const isk = intermediateSessionKey(sid, sharedSecret(own, ya), ya, EMPTY, own.point, EMPTY);
  const forged = confirmationTags(sid, isk, ya, EMPTY, own.point, EMPTY);
  await mitm.clientEnd.write(concat([own.point, forged.tb]));
  assert.ok((await mitm.client) instanceof AuthenticationError);
  assert.equal(mitm.clientSent.sent.length, CLIENT_SHARE_BYTES, "the client sent no Ta");
  // The attacker has nothing to confirm with; a made-up tag is refused.
  await mitm.serverEnd.write(forged.ta);
  assert.ok((await mitm.server) instanceof AuthenticationError);
});

Deno.test("man in the middle: a relayed handshake with one flipped bit in any message never authenticates the server", async () => {
  const code = generateCode();
  const sizes = [HELLO_BYTES, CLIENT_SHARE_BYTES, SERVER_SHARE_BYTES, TAG_BYTES];
  // [message, byte]: message 0 = hello, 1 = client share, 2 = server share, 3 = client tag Ta.
  const flips = [[0, 0], [0, 4], [0, 10], [1, 3], [1, 40], [2, 5], [2, 70], [3, 0], [3, 63]];
  for (const [message, offset] of flips) {
    const mitm = middle(code);
    const routes = [
      [mitm.fromServer, mitm.clientEnd],
      [mitm.fromClient, mitm.serverEnd],
      [mitm.fromServer, mitm.clientEnd],
      [mitm.fromClient, mitm.serverEnd],
    ] as const;
    for (let i = 0; i < sizes.length; i++) {
      const [from, to] = routes[i]!;
      const bytes = await from.readExact(sizes[i]!);
      if (bytes === null) break; // one side already gave up and closed
      const relayed = bytes.slice();
      if (i === message) relayed[offset!]! ^= 1;
      await to.write(relayed);
    }
    mitm.clientEnd.close();
    mitm.serverEnd.close();
    const where = `message ${message} byte ${offset}`;
    const [client, server] = [await mitm.client, await mitm.server];
    for (const outcome of [client, server]) {
      if (outcome === "accepted") continue;
      assert.ok(
        outcome instanceof AuthenticationError || outcome instanceof ProtocolError ||
          outcome instanceof ConnectionError,
        `${where}: ${outcome}`,
      );
    }
    assert.notEqual(server, "accepted", where);
    // The client has its keys once Tb checks, so only a change to Ta (after it) leaves it content.
    assert.equal(client === "accepted", message === 3, `${where}: client ${client}`);
  }
});

Deno.test("hostile client: the server accepts no record in place of the confirmation tag Ta", async () => {
  const code = generateCode();
  const { a, b } = duplexPair();
  const server = side(b, (socket) => serverHandshake(socket, codeSecret(code)));
  const input = new ByteReader(a);
  // An honest client up to its confirmation...
  const hello = await take(input, HELLO_BYTES);
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const sid = concat([nonce, hello.subarray(6)]);
  const own = createShare(codeSecret(code), FERRY_CI, sid);
  await a.write(concat([nonce, own.point]));
  const reply = await take(input, SERVER_SHARE_BYTES);
  const yb = reply.subarray(0, 32);
  const isk = intermediateSessionKey(sid, sharedSecret(own, yb), own.point, EMPTY, yb, EMPTY);
  const keys = deriveTrafficKeys(isk, sid);
  assert.deepEqual(
    reply.subarray(32),
    confirmationTags(sid, isk, own.point, EMPTY, yb, EMPTY).tb,
    "the server's Tb checks",
  );
  // ...that sends a properly keyed request record instead of Ta.
  const writer = new RecordWriter(a, keys.c2sKey, keys.c2sIv);
  const request = encodeMessage({ t: "get", path: "secret.txt", offset: 0, prefixSha256: "" });
  assert.ok(request.length + 21 > TAG_BYTES);
  await writer.send(RecordType.control, request);
  await assert.rejects(server, AuthenticationError);
});

Deno.test("hostile client: a client that sends its share and leaves makes the server throw AuthenticationError", async () => {
  const { a, b, bToA } = duplexPair();
  const server = side(b, (socket) => serverHandshake(socket, codeSecret(generateCode())));
  const input = new ByteReader(a);
  const hello = await take(input, HELLO_BYTES);
  const sid = concat([new Uint8Array(16), hello.subarray(6)]);
  await a.write(concat([new Uint8Array(16), createShare(utf8("guess"), FERRY_CI, sid).point]));
  await take(input, SERVER_SHARE_BYTES);
  a.close();
  await assert.rejects(server, AuthenticationError);
  assert.equal(bToA.sent.length, HELLO_BYTES + SERVER_SHARE_BYTES);
});

Deno.test("`serverHandshake()` throws ConnectionError when the client leaves before its share", async () => {
  const { a, b } = duplexPair();
  const server = serverHandshake(b, codeSecret(generateCode()));
  await a.write(new Uint8Array(20));
  a.close();
  await assert.rejects(server, ConnectionError);
});

Deno.test("man in the middle: records reflected back to their sender are refused", async () => {
  const code = generateCode();
  const { client, server, aToB, bToA } = await handshake(code, code);
  const clientChannel = channel(client);
  channel(server);
  await clientChannel.writer.send(RecordType.control, utf8('{"t":"list"}'));
  const ownRecord = aToB.sent.subarray(CLIENT_SHARE_BYTES + TAG_BYTES);
  bToA.inject(ownRecord);
  await assert.rejects(clientChannel.reader.next(), ProtocolError);
});

Deno.test("`serverHandshake()` keeps a request that arrives in the same packet as the client's Ta", async () => {
  const code = generateCode();
  let held: Uint8Array | undefined;
  const pair = duplexPair({
    aToB: {
      // Hold back Ta (the client's second write) and deliver it glued to the first record.
      tamper(chunk, offset) {
        if (offset === CLIENT_SHARE_BYTES) {
          held = chunk;
          return EMPTY;
        }
        if (held === undefined) return chunk;
        const glued = concat([held, chunk]);
        held = undefined;
        return glued;
      },
    },
  });
  const client = clientHandshake(pair.a, codeSecret(code));
  const server = serverHandshake(pair.b, codeSecret(code));
  const clientChannel = await client;
  const request = encodeMessage({ t: "list", path: "docs", recursive: true });
  await clientChannel.writer.send(RecordType.control, request);
  assert.deepEqual(pair.aToB.writes.map((write) => write.length).slice(0, 2), [48, 64]);
  const serverChannel = await server;
  assert.deepEqual(new Uint8Array((await serverChannel.reader.next()).payload), request);
});
