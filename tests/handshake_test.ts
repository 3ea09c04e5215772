/**
 * The CPace handshake as a specification, over in-memory pipes: what both sides get with the same
 * code, what they refuse, what an eavesdropper sees and what an active man in the middle can do.
 * The curve math itself is checked against the draft's vectors in `cpace_test.ts`.
 */
import assert from "node:assert/strict";
import {
  codeIdentifier,
  codeSecret,
  DEFAULT_IDENTIFIER,
  generateCode,
  generateIdentifier,
  generateNamedCode,
  normaliseCode,
} from "../lib/code.ts";
import {
  AuthenticationError,
  ConnectionError,
  ProtocolError,
  RefusedError,
} from "../lib/errors.ts";
import {
  confirmationTags,
  createShare,
  deriveTrafficKeys,
  FERRY_CI,
  ferryChannelIdentifier,
  intermediateSessionKey,
  lvCat,
  sharedSecret,
} from "../lib/protocol/cpace.ts";
import { ByteReader, RecordReader, RecordType, RecordWriter } from "../lib/protocol/framing.ts";
import {
  clientHandshake,
  type CodeLookup,
  MAGIC,
  RefusalStatus,
  type SecureChannel,
  sendRefusal,
  serverHandshake,
  type Socket,
  throwawaySecret,
} from "../lib/protocol/handshake.ts";
import { encodeMessage } from "../lib/protocol/messages.ts";
import { PROTOCOL_VERSION } from "../lib/protocol/constants.ts";
import { concat, containsBytes, duplexPair, type PipeEnd } from "./_pipes.ts";

const EMPTY = new Uint8Array(0);
const HELLO_BYTES = 4 + 1 + 1 + 16;
const CLIENT_SHARE_BYTES = 16 + 4 + 32;
const SERVER_SHARE_BYTES = 1 + 32 + 64;
const TAG_BYTES = 64;
/** The identifier a default code (16 symbols) names in the client's share, as bytes (ADa). */
const DEFAULT_AD = new TextEncoder().encode(DEFAULT_IDENTIFIER);

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

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const HANDSHAKE_VECTOR = JSON.parse(
  await Deno.readTextFile(new URL("./vectors/ferry-handshake-v2.json", import.meta.url)),
);

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Runs one side and closes its end if it fails, as the real client and server do. */
function side<T extends SecureChannel>(end: PipeEnd, run: (socket: Socket) => Promise<T>) {
  return run(end).catch((error) => {
    end.close();
    throw error;
  });
}

/** A client and a server handshaking over a fresh pipe; both outcomes are settled. */
async function handshake(clientCode: string, serverCodes: string | CodeLookup) {
  const pair = duplexPair();
  const lookup = typeof serverCodes === "string" ? codeSecret(serverCodes) : serverCodes;
  const [client, server] = await Promise.allSettled([
    side(
      pair.a,
      (socket) => clientHandshake(socket, codeSecret(clientCode), codeIdentifier(clientCode)),
    ),
    side(pair.b, (socket) => serverHandshake(socket, lookup)),
  ]);
  return { ...pair, client, server };
}

/** A server's codes: each named code's secret by its identifier, any other a throwaway secret. */
function codesOf(...codes: string[]): CodeLookup {
  const secrets = new Map(codes.map((code) => [codeIdentifier(code), codeSecret(code)]));
  return (identifier) => ({ secret: secrets.get(identifier) ?? throwawaySecret() });
}

/** A named code with a fresh identifier. */
function namedCode(): string {
  return generateNamedCode(generateIdentifier());
}

function channel<T extends SecureChannel>(result: PromiseSettledResult<T>): T {
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

Deno.test("handshake messages have the documented sizes: hello 22, shares 52 and 97, confirmation 64", async () => {
  const code = generateCode();
  const { client, server, aToB, bToA } = await handshake(code, code);
  channel(client);
  channel(server);
  assert.deepEqual(bToA.writes.map((write) => write.length), [HELLO_BYTES, SERVER_SHARE_BYTES]);
  assert.deepEqual(aToB.writes.map((write) => write.length), [CLIENT_SHARE_BYTES, TAG_BYTES]);
  assert.deepEqual(bToA.writes[0]!.subarray(0, 6), concat([MAGIC, Uint8Array.of(2, 0)]));
  assert.equal(PROTOCOL_VERSION, 2);
  // A default code (16 symbols) names the identifier 0000 in the client's share.
  assert.deepEqual(aToB.writes[0]!.subarray(16, 20), DEFAULT_AD);
  // The server's share starts with status 0.
  assert.equal(bToA.writes[1]![0], 0);
});

Deno.test("handshake vectors: fixed randomness gives the bytes of tests/vectors/ferry-handshake-v2.json", async () => {
  const { inputs, expected } = HANDSHAKE_VECTOR;
  const pair = duplexPair();
  const [client, server] = await Promise.all([
    clientHandshake(pair.a, utf8(inputs.prs), inputs.identifier, {
      nonce: fromHex(inputs.client_nonce),
      scalar: fromHex(inputs.client_scalar),
    }),
    serverHandshake(pair.b, codesOf(inputs.code), {
      nonce: fromHex(inputs.server_nonce),
      scalar: fromHex(inputs.server_scalar),
    }),
  ]);
  assert.equal(server.identifier, inputs.identifier);
  assert.equal(toHex(pair.bToA.writes[0]!), expected.hello);
  assert.equal(toHex(pair.aToB.writes[0]!), expected.client_share);
  assert.equal(toHex(pair.bToA.writes[1]!), expected.server_share);
  assert.equal(toHex(pair.aToB.writes[1]!), expected.client_confirmation);
  const serverSent = pair.bToA.sent.length;
  const clientSent = pair.aToB.sent.length;
  await server.writer.send(RecordType.control, utf8(inputs.server_record));
  await client.writer.send(RecordType.control, utf8(inputs.client_record));
  assert.equal(toHex(pair.bToA.sent.subarray(serverSent)), expected.server_record);
  assert.equal(toHex(pair.aToB.sent.subarray(clientSent)), expected.client_record);
});

Deno.test("handshake vectors: the expected bytes follow from PROTOCOL.md section 2 and the CPace primitives", async () => {
  // Recomputed here from the documented layout, not through clientHandshake/serverHandshake.
  const { inputs, expected } = HANDSHAKE_VECTOR;
  const prs = utf8(inputs.prs);
  assert.deepEqual(prs, codeSecret(inputs.code));
  const ada = utf8(inputs.identifier);
  const ci = concat([Uint8Array.of(7), utf8("ferry/2"), Uint8Array.of(6), utf8("client")]);
  assert.deepEqual(ferryChannelIdentifier(2), concat([ci, Uint8Array.of(6), utf8("server")]));
  const nonceC = fromHex(inputs.client_nonce);
  const nonceS = fromHex(inputs.server_nonce);
  const sid = concat([nonceC, nonceS]);
  const a = createShare(prs, FERRY_CI, sid, fromHex(inputs.client_scalar));
  const b = createShare(prs, FERRY_CI, sid, fromHex(inputs.server_scalar));
  const isk = intermediateSessionKey(sid, sharedSecret(a, b.point), a.point, ada, b.point, EMPTY);
  const tags = confirmationTags(sid, isk, a.point, ada, b.point, EMPTY);
  assert.equal(toHex(concat([utf8("FRY1"), Uint8Array.of(2, 0), nonceS])), expected.hello);
  assert.equal(toHex(concat([nonceC, ada, a.point])), expected.client_share);
  assert.equal(toHex(concat([Uint8Array.of(0), b.point, tags.tb])), expected.server_share);
  assert.equal(toHex(tags.ta), expected.client_confirmation);
  // ADa is the identifier: Ta is the MAC of lv_cat(Ya, "K7QD").
  assert.deepEqual(lvCat(a.point, ada).subarray(33), concat([Uint8Array.of(4), ada]));
  const keys = deriveTrafficKeys(isk, sid, "ferry/2");
  const sealed = async (key: Uint8Array, iv: Uint8Array, text: string) => {
    const pipe = duplexPair();
    await new RecordWriter(pipe.a, key, iv).send(RecordType.control, utf8(text));
    return toHex(pipe.aToB.sent);
  };
  assert.equal(await sealed(keys.s2cKey, keys.s2cIv, inputs.server_record), expected.server_record);
  assert.equal(await sealed(keys.c2sKey, keys.c2sIv, inputs.client_record), expected.client_record);
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

// Several codes: the identifier picks the secret

Deno.test("`serverHandshake()` with several codes lets each named code in and says which", async () => {
  const codes = [namedCode(), namedCode(), namedCode()];
  for (const code of codes) {
    const { client, server } = await handshake(code, codesOf(generateCode(), ...codes));
    const serverChannel = channel(server);
    assert.equal(serverChannel.identifier, codeIdentifier(code));
    await exchange(channel(client), serverChannel);
  }
});

Deno.test("`serverHandshake()` with several codes still takes the default code (16 symbols) as identifier 0000", async () => {
  const fallback = generateCode();
  const { client, server } = await handshake(fallback, codesOf(fallback, namedCode()));
  assert.equal(channel(server).identifier, DEFAULT_IDENTIFIER);
  await exchange(channel(client), channel(server));
});

Deno.test("a named code's secret under another identifier fails like a wrong code", async () => {
  const code = namedCode();
  const secret = normaliseCode(code).slice(4);
  const other = `${generateIdentifier(new Set([codeIdentifier(code)]))}${secret}`;
  const { client, server } = await handshake(other, codesOf(code));
  assertRejected(client, AuthenticationError, /different code/);
  assertRejected(server, AuthenticationError);
});

Deno.test("hostile client: an identifier no code has gets the answer of a wrong code, in the same bytes", async () => {
  const known = namedCode();
  const wrongSecret = `${codeIdentifier(known)}${normaliseCode(generateCode())}`;
  const unknownIdentifier = namedCode();
  const outcomes = [];
  for (const attempt of [wrongSecret, unknownIdentifier]) {
    const { client, server, aToB, bToA } = await handshake(attempt, codesOf(known));
    assertRejected(client, AuthenticationError, /different code/);
    assertRejected(server, AuthenticationError);
    outcomes.push({
      client: aToB.writes.map((write) => write.length),
      server: bToA.writes.map((write) => write.length),
      status: bToA.writes[1]![0],
    });
  }
  assert.deepEqual(outcomes[0], outcomes[1]);
});

Deno.test("man in the middle: an identifier changed on the way fails confirmation, even where both name the same secret", async () => {
  // Two identifiers for one secret: only the binding of the identifier into the keys (ADa) can
  // tell them apart.
  const first = namedCode();
  const secret = codeSecret(first);
  const firstIdentifier = codeIdentifier(first);
  const secondIdentifier = generateIdentifier(new Set([firstIdentifier]));
  const lookup: CodeLookup = (identifier) => ({
    secret: identifier === firstIdentifier || identifier === secondIdentifier
      ? secret
      : throwawaySecret(),
  });
  const seen: string[] = [];
  const pair = duplexPair({
    aToB: {
      tamper(chunk, offset) {
        if (offset !== 0) return chunk;
        const changed = chunk.slice();
        changed.set(utf8(secondIdentifier), 16);
        return changed;
      },
    },
  });
  const [client, server] = await Promise.allSettled([
    side(pair.a, (socket) => clientHandshake(socket, secret, firstIdentifier)),
    side(pair.b, (socket) =>
      serverHandshake(socket, (identifier) => {
        seen.push(identifier);
        return lookup(identifier);
      })),
  ]);
  assert.deepEqual(seen, [secondIdentifier]);
  assertRejected(client, AuthenticationError);
  assertRejected(server, AuthenticationError);
});

Deno.test("`serverHandshake()` refuses an identifier as its lookup says, before any curve operation, and the client says why", async () => {
  const code = namedCode();
  const lookup: CodeLookup = () => ({
    refusal: {
      status: RefusalStatus.slowDown,
      reason: "too many failed attempts with this code lately, wait 1 s",
    },
  });
  const { client, server, bToA } = await handshake(code, lookup);
  assertRejected(client, RefusedError, /with this code lately, wait 1 s/);
  assert.equal((client as PromiseRejectedResult).reason.status, RefusalStatus.slowDown);
  assertRejected(server, RefusedError);
  // The hello, then status 2, the reason's length and the reason: no share, no tag.
  const reply = bToA.writes[1]!;
  assert.equal(reply[0], RefusalStatus.slowDown);
  assert.equal(reply.length, 2 + reply[1]!);
});

Deno.test("`serverHandshake()` takes bytes that are no identifier as an unknown code", async () => {
  const code = generateCode();
  const { a, b } = duplexPair();
  const seen: string[] = [];
  const server = side(b, (socket) =>
    serverHandshake(socket, (identifier) => {
      seen.push(identifier);
      return { secret: codeSecret(code) };
    }));
  const input = new ByteReader(a);
  const hello = await take(input, HELLO_BYTES);
  const sid = concat([new Uint8Array(16), hello.subarray(6)]);
  const share = createShare(codeSecret(code), FERRY_CI, sid).point;
  await a.write(concat([new Uint8Array(16), utf8("k7q\u0000"), share]));
  await take(input, SERVER_SHARE_BYTES);
  a.close();
  await assert.rejects(server, AuthenticationError);
  assert.deepEqual(seen, [""]);
});

// An older server (protocol version 1)

/**
 * A version 1 server as ferry 0.1 ran it: no identifier in the client's share, no status byte in
 * the server's, CI and HKDF labels `ferry/1`, empty AD. Built here from the primitives, so that
 * the client's fallback is checked against the old format and not against itself.
 */
async function versionOneServer(socket: PipeEnd, prs: Uint8Array): Promise<SecureChannel> {
  const input = new ByteReader(socket);
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  await socket.write(concat([MAGIC, Uint8Array.of(1, 0), nonce]));
  const first = await take(input, 48);
  const sid = concat([first.subarray(0, 16), nonce]);
  const ya = first.subarray(16);
  const own = createShare(prs, ferryChannelIdentifier(1), sid);
  const isk = intermediateSessionKey(sid, sharedSecret(own, ya), ya, EMPTY, own.point, EMPTY);
  const tags = confirmationTags(sid, isk, ya, EMPTY, own.point, EMPTY);
  await socket.write(concat([own.point, tags.tb]));
  assert.deepEqual(await take(input, 64), tags.ta);
  const keys = deriveTrafficKeys(isk, sid, "ferry/1");
  return {
    reader: new RecordReader(input, keys.c2sKey, keys.c2sIv),
    writer: new RecordWriter(socket, keys.s2cKey, keys.s2cIv),
  };
}

Deno.test("`clientHandshake()` with a default code speaks version 1 to an older server", async () => {
  const code = generateCode();
  const pair = duplexPair();
  const [client, server] = await Promise.all([
    clientHandshake(pair.a, codeSecret(code)),
    versionOneServer(pair.b, codeSecret(code)),
  ]);
  assert.deepEqual(pair.aToB.writes.map((write) => write.length), [48, 64]);
  await exchange(client, server);
});

Deno.test("`clientHandshake()` with a named code refuses an older server before it sends anything", async () => {
  const { a, b, aToB } = duplexPair();
  await b.write(concat([MAGIC, Uint8Array.of(1, 0), new Uint8Array(16)]));
  const code = namedCode();
  const client = clientHandshake(a, codeSecret(code), codeIdentifier(code));
  await assert.rejects(
    client,
    (error: Error) =>
      error instanceof ProtocolError &&
      /version 1, which knows one code per server/.test(error.message) &&
      !error.message.includes(normaliseCode(code).slice(4)),
  );
  assert.equal(aToB.sent.length, 0);
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

Deno.test("a named code's secret never appears on the wire; its identifier does, as the one public part", async () => {
  const code = namedCode();
  const { client, server, aToB, bToA } = await handshake(code, codesOf(code));
  await exchange(channel(client), channel(server));
  const transcript = concat([aToB.sent, bToA.sent]);
  const secret = normaliseCode(code).slice(4);
  for (const [form, bytes] of codeForms(secret)) {
    assert.ok(!containsBytes(transcript, bytes), `the secret leaked ${form}`);
  }
  assert.deepEqual(aToB.writes[0]!.subarray(16, 20), utf8(codeIdentifier(code)));
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
    "client share Ya": (run: Run) => run.fromClient[0]!.subarray(20),
    "server share Yb": (run: Run) => run.fromServer[1]!.subarray(1, 33),
    "server tag Tb": (run: Run) => run.fromServer[1]!.subarray(33),
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
  for (const version of [0, 3, 255]) {
    const greeting = concat([MAGIC, Uint8Array.of(version, 0), new Uint8Array(16)]);
    assertRejected(
      await clientAgainst(greeting),
      ProtocolError,
      new RegExp(
        `^The server speaks protocol version ${version}; this ferry speaks 2 \\(and 1\\)$`,
      ),
    );
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
  assert.deepEqual(sent.subarray(0, 6), concat([MAGIC, Uint8Array.of(PROTOCOL_VERSION, 3)]));
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
    await a.write(concat([new Uint8Array(16).fill(7), DEFAULT_AD, point]));
    await assert.rejects(server, ProtocolError);
    assert.equal(bToA.sent.length, HELLO_BYTES, "the server sent nothing after its greeting");
  });

  Deno.test(`hostile server: a share that is ${label} makes the client throw ProtocolError before it sends Ta`, async () => {
    const { a, b, aToB } = duplexPair();
    const client = side(a, (socket) => clientHandshake(socket, codeSecret(generateCode())));
    await b.write(concat([MAGIC, Uint8Array.of(PROTOCOL_VERSION, 0), new Uint8Array(16)]));
    await b.write(concat([Uint8Array.of(0), point, new Uint8Array(TAG_BYTES)]));
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
  await mitm.serverEnd.write(concat([share.subarray(0, 16), DEFAULT_AD, ownPoint.point]));
  const reply = await take(mitm.fromServer, SERVER_SHARE_BYTES);
  await mitm.clientEnd.write(reply); // Yb and Tb, untouched
  // Confirm to the server with what the attacker can compute from its guess.
  const yb = reply.subarray(1, 33);
  const isk = intermediateSessionKey(
    sid,
    sharedSecret(ownPoint, yb),
    ownPoint.point,
    DEFAULT_AD,
    yb,
    EMPTY,
  );
  await mitm.serverEnd.write(confirmationTags(sid, isk, ownPoint.point, DEFAULT_AD, yb, EMPTY).ta);
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
  const ya = share.subarray(20);
  const own = createShare(codeSecret(generateCode()), FERRY_CI, sid);
  const isk = intermediateSessionKey(sid, sharedSecret(own, ya), ya, DEFAULT_AD, own.point, EMPTY);
  const forged = confirmationTags(sid, isk, ya, DEFAULT_AD, own.point, EMPTY);
  await mitm.clientEnd.write(concat([Uint8Array.of(0), own.point, forged.tb]));
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
  // Byte 17 of the client share is in the identifier. (Byte 0 of the server share, its status,
  // is not authenticated, like the hello's: see the test of a forged refusal below.)
  const flips = [[0, 0], [0, 4], [0, 10], [1, 3], [1, 17], [1, 40], [2, 5], [2, 70], [3, 0], [
    3,
    63,
  ]];
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

Deno.test("man in the middle: a refusal forged in place of the server's share only ends the connection; the client sends no Ta", async () => {
  const code = generateCode();
  const mitm = middle(code);
  await mitm.clientEnd.write(await take(mitm.fromServer, HELLO_BYTES));
  await mitm.serverEnd.write(await take(mitm.fromClient, CLIENT_SHARE_BYTES));
  await take(mitm.fromServer, SERVER_SHARE_BYTES); // withheld
  const reason = utf8("go away");
  await mitm.clientEnd.write(concat([Uint8Array.of(RefusalStatus.busy, reason.length), reason]));
  const outcome = await mitm.client;
  assert.ok(outcome instanceof RefusedError, String(outcome));
  assert.equal(mitm.clientSent.sent.length, CLIENT_SHARE_BYTES, "the client sent no Ta");
  mitm.serverEnd.close();
  assert.ok((await mitm.server) instanceof AuthenticationError);
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
  await a.write(concat([nonce, DEFAULT_AD, own.point]));
  const reply = await take(input, SERVER_SHARE_BYTES);
  const yb = reply.subarray(1, 33);
  const isk = intermediateSessionKey(sid, sharedSecret(own, yb), own.point, DEFAULT_AD, yb, EMPTY);
  const keys = deriveTrafficKeys(isk, sid);
  assert.deepEqual(
    reply.subarray(33),
    confirmationTags(sid, isk, own.point, DEFAULT_AD, yb, EMPTY).tb,
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
  const guess = createShare(utf8("guess"), FERRY_CI, sid).point;
  await a.write(concat([new Uint8Array(16), DEFAULT_AD, guess]));
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
  assert.deepEqual(pair.aToB.writes.map((write) => write.length).slice(0, 2), [52, 64]);
  const serverChannel = await server;
  assert.deepEqual(new Uint8Array((await serverChannel.reader.next()).payload), request);
});
