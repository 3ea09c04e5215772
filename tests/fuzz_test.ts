/**
 * Property-based fuzzing (fast-check) of the code that reads what a hostile peer sends first: the
 * record reader, the handshake, the control message decoders and the remote path parser. Each
 * property says what may come out of arbitrary input: one of ferry's own errors, or something
 * well-formed, and never another exception or a hang.
 *
 * CI runs a short budget: FERRY_FUZZ_RUNS runs per property (default 200, a few seconds in all).
 * To run longer:
 *
 *     FERRY_FUZZ_RUNS=100000 deno test --allow-env tests/fuzz_test.ts
 *
 * A failure prints the seed and the counterexample's path; replay it with the same budget and
 * FERRY_FUZZ_SEED=<seed> (and FERRY_FUZZ_PATH=<path> to skip straight to the shrunk case).
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import fc from "npm:fast-check@4.10.2";
import { codeIdentifier, codeSecret, isIdentifier } from "../lib/code.ts";
import {
  AuthenticationError,
  ConnectionError,
  PathError,
  ProtocolError,
  UsageError,
} from "../lib/errors.ts";
import { parseCodeStore } from "../lib/code_store.ts";
import {
  ByteReader,
  MAX_RECORD_PLAINTEXT,
  RECORD_HEADER_BYTES,
  RECORD_TAG_BYTES,
  RecordReader,
  RecordType,
  RecordWriter,
} from "../lib/protocol/framing.ts";
import {
  clientHandshake,
  MAGIC,
  serverHandshake,
  throwawaySecret,
} from "../lib/protocol/handshake.ts";
import { createShare, FERRY_CI } from "../lib/protocol/cpace.ts";
import {
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
} from "../lib/protocol/messages.ts";
import { MAX_LISTING_BATCH, PROTOCOL_VERSION } from "../lib/protocol/constants.ts";
import { joinRemotePath, parseRemotePath, validateName } from "../lib/protocol/remote_path.ts";
import { BytePipe, concat, duplexPair, sourceOf } from "./_pipes.ts";

function env(name: string): string | undefined {
  const granted = Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
  return granted ? Deno.env.get(name) : undefined;
}

const RUNS = Number(env("FERRY_FUZZ_RUNS") ?? 200);
if (!Number.isSafeInteger(RUNS) || RUNS < 1) {
  throw new RangeError(`FERRY_FUZZ_RUNS must be a positive integer, got ${RUNS}`);
}
const SEED = env("FERRY_FUZZ_SEED");
const PATH = env("FERRY_FUZZ_PATH");

/** fast-check parameters: the budget, an optional replay, and a deadline per run (a hang fails). */
function budget<T>(runs = RUNS): fc.Parameters<T> {
  return {
    numRuns: runs,
    plugins: [fc.timeout(5_000) as fc.Plugin<T>],
    ...(SEED === undefined ? {} : { seed: Number(SEED) }),
    ...(PATH === undefined ? {} : { path: PATH }),
  };
}

const KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const IV = Uint8Array.from({ length: 12 }, (_, i) => i * 7);
const MAX_LENGTH = MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES;

/** `true` for the errors a peer's bytes may cause in the record layer. */
function isChannelError(error: unknown): boolean {
  return error instanceof ProtocolError || error instanceof ConnectionError;
}

/** Reads records until an error or the end; returns what was read and how it stopped. */
async function drain(reader: RecordReader) {
  const records: { type: RecordType; payload: Uint8Array }[] = [];
  // Each call consumes at least a header or throws, so the bound is never reached by a correct
  // reader; it keeps a reader that loops without consuming from hanging the test.
  for (let i = 0; i < 10_000; i++) {
    try {
      const record = await reader.next();
      records.push({ type: record.type, payload: new Uint8Array(record.payload) });
      if (record.type === RecordType.end) return { records, error: undefined };
    } catch (error) {
      return { records, error };
    }
  }
  throw new Error("Reader returned 10,000 records from a short stream");
}

// The record reader

Deno.test("fuzz: `RecordReader` given arbitrary bytes only throws ProtocolError or ConnectionError", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 4096 }),
      fc.integer({ min: 1, max: 4096 }),
      async (bytes, chunk) => {
        const reader = new RecordReader(
          new ByteReader(sourceOf(bytes, { maxRead: chunk })),
          KEY,
          IV,
        );
        const { records, error } = await drain(reader);
        assert.deepEqual(records, [], "no record authenticates from random bytes");
        assert.ok(isChannelError(error), `unexpected ${error}`);
      },
    ),
    budget(),
  );
});

/** A header with a type and a length chosen to hit every branch, then a body of random length. */
const hostileRecord = fc.tuple(
  fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 255), fc.integer({ min: 0, max: 255 })),
  fc.oneof(
    fc.constantFrom(0, 15, 16, 17, MAX_LENGTH, MAX_LENGTH + 1, 0x7fff_ffff, 0xffff_ffff),
    fc.integer({ min: 0, max: 600 }),
    fc.integer({ min: 0, max: 0xffff_ffff }),
  ),
  fc.uint8Array({ maxLength: 700 }),
).map(([type, length, body]) => {
  const header = new Uint8Array(RECORD_HEADER_BYTES);
  header[0] = type;
  new DataView(header.buffer).setUint32(1, length);
  return concat([header, body]);
});

Deno.test("fuzz: `RecordReader` given records with hostile headers only throws ProtocolError or ConnectionError", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(hostileRecord, { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 1024 }),
      async (records, chunk) => {
        const stream = concat(records);
        const source = sourceOf(stream, { maxRead: chunk });
        const { records: read, error } = await drain(
          new RecordReader(new ByteReader(source), KEY, IV),
        );
        assert.deepEqual(read, []);
        assert.ok(isChannelError(error), `unexpected ${error}`);
        // A length outside the legal range is refused before its body is asked for.
        const length = new DataView(stream.buffer).getUint32(1);
        if ((length < RECORD_TAG_BYTES || length > MAX_LENGTH) && error instanceof ProtocolError) {
          assert.ok(source.readCalls <= Math.ceil(RECORD_HEADER_BYTES / chunk));
        }
      },
    ),
    budget(),
  );
});

const plainRecords = fc.array(
  fc.tuple(
    fc.constantFrom(RecordType.control, RecordType.data),
    fc.uint8Array({ maxLength: 300 }),
  ),
  { minLength: 1, maxLength: 6 },
);

/** One change an active attacker can make to a stream. */
type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "cut"; at: number }
  | { kind: "delete"; at: number; count: number }
  | { kind: "duplicate"; at: number; count: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "swap"; first: number; second: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({
    kind: fc.constant("duplicate" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }),
  }),
  fc.record({ kind: fc.constant("swap" as const), first: fc.nat(), second: fc.nat() }),
);

function splitRecords(stream: Uint8Array): Uint8Array[] {
  const records: Uint8Array[] = [];
  for (let offset = 0; offset < stream.length;) {
    const end = offset + RECORD_HEADER_BYTES +
      new DataView(stream.buffer, stream.byteOffset + offset).getUint32(1);
    records.push(stream.slice(offset, end));
    offset = end;
  }
  return records;
}

function mutate(stream: Uint8Array, change: Mutation): Uint8Array {
  const at = "at" in change ? change.at % (stream.length + 1) : 0;
  switch (change.kind) {
    case "flip": {
      const out = stream.slice();
      out[at % stream.length]! ^= 1 << change.bit;
      return out;
    }
    case "cut":
      return stream.slice(0, at);
    case "delete":
      return concat([stream.subarray(0, at), stream.subarray(at + change.count)]);
    case "duplicate":
      return concat([stream.subarray(0, at + change.count), stream.subarray(at)]);
    case "insert":
      return concat([stream.subarray(0, at), change.bytes, stream.subarray(at)]);
    case "swap": {
      const records = splitRecords(stream);
      const i = change.first % records.length;
      const j = change.second % records.length;
      [records[i], records[j]] = [records[j]!, records[i]!];
      return concat(records);
    }
  }
}

/**
 * Reads `original` changed by `change`, `chunk` bytes at a time (with bundles accepted or not):
 * every record returned is the one sent at that position, and the end is reached only if every
 * record arrived as sent; otherwise the reader stops with a channel error.
 */
async function assertOnlyWhatWasSent(
  original: Uint8Array,
  expected: { type: RecordType; payload: Uint8Array }[],
  change: Mutation,
  chunk: number,
  bundles: boolean,
): Promise<void> {
  const stream = mutate(original, change);
  const reader = new RecordReader(new ByteReader(sourceOf(stream, { maxRead: chunk })), KEY, IV);
  if (bundles) reader.acceptBundles();
  const { records, error } = await drain(reader);
  assert.deepEqual(records, expected.slice(0, records.length));
  if (error === undefined) {
    assert.equal(records.length, expected.length);
    assert.deepEqual(stream.subarray(0, original.length), original);
  } else {
    assert.ok(isChannelError(error), `unexpected ${error}`);
  }
}

Deno.test("fuzz: `RecordReader` never returns a record that was not sent, whatever an attacker changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      plainRecords,
      mutation,
      fc.integer({ min: 1, max: 512 }),
      async (plain, change, chunk) => {
        const pipe = new BytePipe();
        const writer = new RecordWriter(pipe, KEY, IV);
        for (const [type, payload] of plain) await writer.write(type, payload);
        await writer.end();
        const original = pipe.sent;
        const expected = [
          ...plain.map(([type, payload]) => ({ type, payload })),
          { type: RecordType.end, payload: new Uint8Array(0) },
        ];
        await assertOnlyWhatWasSent(original, expected, change, chunk, false);
      },
    ),
    budget(),
  );
});

Deno.test("fuzz: with bundles agreed, `RecordReader` still never returns a record that was not sent, whatever an attacker changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      plainRecords,
      fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(5), { maxLength: 3 }),
      mutation,
      fc.integer({ min: 1, max: 512 }),
      async (plain, gathers, flushesAfter, change, chunk) => {
        const pipe = new BytePipe();
        const writer = new RecordWriter(pipe, KEY, IV);
        writer.useBundles();
        for (const [index, [type, payload]] of plain.entries()) {
          // Gathered or not, record by record: bundles of every size, and records between them.
          await writer.write(type, payload, { gather: gathers[index % gathers.length] });
          if (flushesAfter.includes(index)) await writer.flush(); // bundles of every size
        }
        await writer.end();
        const original = pipe.sent;
        const expected = [
          ...plain.map(([type, payload]) => ({ type, payload })),
          { type: RecordType.end, payload: new Uint8Array(0) },
        ];
        const untouched = new RecordReader(new ByteReader(sourceOf(original)), KEY, IV);
        untouched.acceptBundles();
        assert.deepEqual((await drain(untouched)).records, expected);
        await assertOnlyWhatWasSent(original, expected, change, chunk, true);
      },
    ),
    budget(),
  );
});

/**
 * What a bundle's plaintext holds by PROTOCOL.md section 3, or `undefined` when it is malformed:
 * written apart from `framing.ts`, as the oracle for the fuzz test below.
 */
function bundleRecordsBySpec(
  plaintext: Uint8Array,
): { type: RecordType; payload: Uint8Array }[] | undefined {
  const records: { type: RecordType; payload: Uint8Array }[] = [];
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.length);
  let offset = 0;
  while (offset < plaintext.length) {
    if (offset + 5 > plaintext.length) return undefined;
    const type = plaintext[offset]!;
    const length = view.getUint32(offset + 1);
    if (type !== RecordType.control && type !== RecordType.data) return undefined;
    if (offset + 5 + length > plaintext.length) return undefined;
    records.push({ type, payload: plaintext.slice(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return records.length > 0 ? records : undefined;
}

/** A bundle plaintext close to well-formed: records with any type and length, then any bytes. */
const bundlePlaintext = fc.tuple(
  fc.array(
    fc.tuple(
      fc.oneof(
        { arbitrary: fc.constantFrom(1, 2), weight: 6 },
        { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
      ),
      fc.uint8Array({ maxLength: 64 }),
      fc.oneof(
        { arbitrary: fc.constant(0), weight: 12 },
        { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 1 },
        { arbitrary: fc.nat(), weight: 1 },
      ),
    ),
    { maxLength: 5 },
  ),
  fc.oneof(
    { arbitrary: fc.constant(new Uint8Array(0)), weight: 3 },
    { arbitrary: fc.uint8Array({ maxLength: 6 }), weight: 1 },
  ),
).map(([records, tail]) =>
  concat([
    ...records.flatMap(([type, payload, skew]) => {
      const header = new Uint8Array(5);
      header[0] = type;
      const length = skew > 3 ? skew : Math.max(0, payload.length + skew);
      new DataView(header.buffer).setUint32(1, length >>> 0);
      return [header, payload];
    }),
    tail,
  ])
);

Deno.test("fuzz: a bundle sealed by a peer that holds the key yields exactly the records its plaintext holds, or ProtocolError and nothing", async () => {
  let wellFormed = 0;
  let malformed = 0;
  await fc.assert(
    fc.asyncProperty(bundlePlaintext, async (plaintext) => {
      const header = new Uint8Array(RECORD_HEADER_BYTES);
      header[0] = RecordType.bundle;
      new DataView(header.buffer).setUint32(1, plaintext.length + RECORD_TAG_BYTES);
      const cipher = createCipheriv("chacha20-poly1305", KEY, IV, {
        authTagLength: RECORD_TAG_BYTES,
      });
      cipher.setAAD(header, { plaintextLength: plaintext.length });
      const ciphertext = cipher.update(plaintext);
      cipher.final();
      const sealed = concat([header, ciphertext, cipher.getAuthTag()]); // sequence 0: nonce = IV
      const reader = new RecordReader(new ByteReader(sourceOf(sealed)), KEY, IV);
      reader.acceptBundles();
      const { records, error } = await drain(reader);
      const expected = bundleRecordsBySpec(plaintext);
      if (expected === undefined) malformed++;
      else wellFormed++;
      if (expected === undefined) {
        assert.deepEqual(records, []);
        assert.ok(error instanceof ProtocolError, `unexpected ${error}`);
      } else {
        assert.deepEqual(records, expected);
        assert.ok(error instanceof ConnectionError, "the stream then ends without an end record");
      }
    }),
    budget(),
  );
  // Both sides of the oracle were reached.
  assert.ok(wellFormed > RUNS / 10 && malformed > RUNS / 10, `${wellFormed} / ${malformed}`);
});

// The handshake

const handshakeErrors = [AuthenticationError, ProtocolError, ConnectionError];

/** A valid point (a share for some code), so that fuzzed shares also reach the code lookup's answer. */
const VALID_POINT = createShare(new Uint8Array(16), FERRY_CI, new Uint8Array(32)).point;

/** A default code and a named one: the client fuzzed with either. */
const FUZZ_CODES = ["ABCD-EFGH-JKMN-PQRS", "K7QD-ABCD-EFGH-JKMN-PQRS"];

Deno.test("fuzz: `clientHandshake()` given an arbitrary server only throws ferry's handshake errors", async () => {
  const hello = (version: number) =>
    concat([MAGIC, Uint8Array.of(version, 0), new Uint8Array(16).fill(9)]);
  const serverBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((rest) => concat([hello(PROTOCOL_VERSION), rest])),
    fc.uint8Array({ maxLength: 200 }).map((rest) => concat([hello(1), rest])),
    // A version 2 hello, then a status byte and whatever follows it in the server's share.
    fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 300 }))
      .map(([status, rest]) => concat([hello(PROTOCOL_VERSION), Uint8Array.of(status), rest])),
    fc.tuple(fc.integer({ min: 1, max: 255 }), fc.nat(255), fc.uint8Array({ maxLength: 300 }))
      .map(([status, length, rest]) => concat([MAGIC, Uint8Array.of(1, status, length), rest])),
  );
  await fc.assert(
    fc.asyncProperty(serverBytes, fc.constantFrom(...FUZZ_CODES), async (bytes, code) => {
      const { a, bToA } = duplexPair();
      await bToA.write(bytes);
      bToA.close(); // the server stops talking; the client's own writes still go through
      const error = await clientHandshake(a, codeSecret(code), codeIdentifier(code)).then(
        () => undefined,
        (error) => error,
      );
      assert.ok(handshakeErrors.some((type) => error instanceof type), `unexpected ${error}`);
      if (error instanceof ConnectionError && /refused/.test(error.message)) {
        assert.match(error.message, /^[\x20-\x7e]*$/);
      }
    }),
    budget(),
  );
});

Deno.test("fuzz: `serverHandshake()` given an arbitrary client only throws ferry's handshake errors", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
      const { b, aToB, bToA } = duplexPair();
      await aToB.write(bytes);
      aToB.close(); // the client stops talking; the server's own writes still go through
      const error = await serverHandshake(b, codeSecret("ABCD-EFGH-JKMN-PQRS")).then(
        () => undefined,
        (error) => error,
      );
      assert.ok(handshakeErrors.some((type) => error instanceof type), `unexpected ${error}`);
      // It sends its hello, and its share and tag only after a whole, valid client share.
      assert.ok([22, 22 + 97].includes(bToA.sent.length));
    }),
    budget(),
  );
});

Deno.test("fuzz: `serverHandshake()` given any identifier bytes looks up a canonical identifier or none, and answers each alike", async () => {
  const symbol = fc.constantFrom(
    ..."0123456789ABCDEFGHJKMNPQRSTVWXYZ".split("").map((c) => c.charCodeAt(0)),
  );
  const identifierBytes = fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }),
    fc.array(symbol, { minLength: 4, maxLength: 4 }).map((codes) => Uint8Array.from(codes)),
    fc.constant(new TextEncoder().encode("K7QD")),
  );
  const point = fc.oneof(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.constant(VALID_POINT),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      identifierBytes,
      point,
      fc.uint8Array({ maxLength: 80 }),
      async (nonce, identifier, share, rest) => {
        const { b, aToB, bToA } = duplexPair();
        await aToB.write(concat([nonce, identifier, share, rest]));
        aToB.close();
        const seen: string[] = [];
        const error = await serverHandshake(b, (named) => {
          seen.push(named);
          // One known code; one identifier that is refused (as a penalised one would be).
          if (named === "ZZZZ") {
            return { refusal: { status: 2, reason: "too many failed attempts with this code" } };
          }
          return { secret: named === "K7QD" ? codeSecret(FUZZ_CODES[1]!) : throwawaySecret() };
        }).then(() => undefined, (error) => error);
        assert.ok(handshakeErrors.some((type) => error instanceof type), `unexpected ${error}`);
        assert.equal(seen.length, 1);
        assert.ok(seen[0] === "" || isIdentifier(seen[0]!), `looked up ${JSON.stringify(seen)}`);
        assert.equal(seen[0] === "", !isIdentifier(String.fromCharCode(...identifier)));
        // The hello, then a refusal for the refused identifier, or else the share and tag (or
        // nothing, for a point that does not decode): never an answer that depends on the code.
        const reply = bToA.sent.length - 22;
        if (seen[0] === "ZZZZ") assert.equal(reply, 2 + 39);
        else assert.ok(reply === 0 || reply === 97, `reply of ${reply} bytes`);
      },
    ),
    budget(),
  );
});

// The code store (written by the owner, read by the server before every handshake)

Deno.test("fuzz: `parseCodeStore()` given store-like JSON only throws UsageError, never naming a secret, or returns valid codes", () => {
  const secret = "7K3MQ9XD2HFRWB6T";
  const field = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.constantFrom(secret, "K7QD", "0000", "read-only", "upload-only", "photos/2024", "../x"),
    fc.constantFrom("2025-05-01T10:00:00.000Z", null, 3, true),
  );
  const entry = fc.record({
    name: fc.oneof(fc.constantFrom("client", "default", "a b"), fc.string({ maxLength: 8 })),
    identifier: field,
    secret: field,
    rights: field,
    scope: field,
    expires: field,
    created: field,
  }, { requiredKeys: [] });
  const store = fc.oneof(
    fc.string({ maxLength: 100 }),
    fc.array(entry, { maxLength: 4 }).map((codes) =>
      JSON.stringify({ ferry: "connection codes", version: 1, codes })
    ),
  );
  fc.assert(
    fc.property(store, (text) => {
      let codes;
      try {
        codes = parseCodeStore(text, "store");
      } catch (error) {
        assert.ok(error instanceof UsageError, `unexpected ${error}`);
        assert.ok(!error.message.includes(secret), error.message);
        return;
      }
      for (const code of codes) {
        assert.ok(isIdentifier(code.identifier) && code.identifier !== "0000");
        assert.match(code.secret, /^[0-9A-HJKMNP-TV-Z]{16}$/);
        assert.ok(["read-write", "read-only", "upload-only"].includes(code.rights));
        assert.equal(joinRemotePath(parseRemotePath(code.scope)), code.scope);
      }
    }),
    budget(),
  );
});

// Control messages

const FIELDS: Record<string, readonly string[]> = {
  list: ["path", "recursive"],
  get: ["offset", "path", "prefixSha256", "verify"],
  put: ["dir", "force", "ifIdentical", "mode", "mtime", "name", "size", "verify"],
  "put-start": ["offset"],
  "put-end": ["sha256"],
  "put-cancel": [],
  keepalive: [],
  mkdir: ["dir", "mode", "mtime", "name"],
  welcome: ["maxUpload", "mode", "server"],
  listing: ["done", "entries"],
  file: ["mode", "mtime", "offset", "size"],
  "file-end": ["sha256"],
  "put-ready": ["offset", "prefixSha256"],
  "put-done": ["name", "sha256", "size", "skipped"],
  "mkdir-done": ["name"],
  error: ["code", "message"],
};
/** Fields a decoded message has only when the sender gave them. */
const OPTIONAL_FIELDS: Record<string, readonly string[]> = {
  welcome: ["idleTimeoutMs"],
  put: ["stream"],
};
const DECODERS = [decodeClientMessage, decodeServerMessage] as const;

/** Decodes with `decode`: a ProtocolError, or a message that is well-formed (see below). */
function checkDecode(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): void {
  let message: unknown;
  try {
    message = decode(bytes);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `unexpected ${error}`);
    return;
  }
  // Exactly the fields of its type, and it survives a second trip through the wire unchanged.
  const { t, ...rest } = message as Record<string, unknown>;
  assert.ok(typeof t === "string" && t in FIELDS, `type ${t}`);
  const optional = OPTIONAL_FIELDS[t] ?? [];
  assert.deepEqual(Object.keys(rest).filter((key) => !optional.includes(key)).sort(), FIELDS[t]);
  assert.deepEqual(decode(encodeMessage(message as never)), message);
}

Deno.test("fuzz: `decodeClientMessage()` and `decodeServerMessage()` given arbitrary bytes only throw ProtocolError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1024 }), (bytes) => {
      for (const decode of DECODERS) checkDecode(decode, bytes);
    }),
    budget(),
  );
});

/** JSON objects close enough to real messages to reach every field check, valid or not. */
const messageLike = (() => {
  const names = [...new Set(Object.values(FIELDS).flat())];
  const number = fc.oneof(
    fc.constantFrom(-2, -1, 0, 0.5, 1, 0o777, 0o1000, 2 ** 53 - 1, 2 ** 53, 8.64e15, 8.64e15 + 1),
    fc.integer(),
    fc.double(),
  );
  const string = fc.oneof(
    fc.constantFrom("", "a", "F".repeat(64), "read-only", "file", "dir"),
    fc.string({ maxLength: 70 }),
    fc.string({ unit: "binary", maxLength: 20 }),
  );
  const value = fc.oneof(
    number,
    string,
    fc.boolean(),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const sha = fc.stringMatching(/^[0-9a-f]{64}$/);
  const valid = {
    text: fc.string({ maxLength: 40 }),
    flag: fc.boolean(),
    count: fc.oneof(fc.nat(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER)),
    mode: fc.integer({ min: 0, max: 0o777 }),
    mtime: fc.integer({ min: 0, max: 8.64e15 }),
  };
  const entry = fc.record({
    name: valid.text,
    type: fc.constantFrom("file", "dir"),
    size: valid.count,
    mtime: valid.mtime,
    mode: valid.mode,
  });
  const validField = (t: string, name: string): fc.Arbitrary<unknown> => {
    switch (name) {
      case "recursive":
      case "force":
      case "verify":
      case "done":
        return valid.flag;
      case "offset":
      case "size":
        return valid.count;
      case "mtime":
        return valid.mtime;
      case "mode":
        return t === "welcome"
          ? fc.constantFrom("read-write", "read-only", "upload-only")
          : valid.mode;
      case "maxUpload":
        return fc.integer({ min: -1, max: 2 ** 40 });
      case "sha256":
        return sha;
      case "prefixSha256":
        return fc.oneof(fc.constant(""), sha);
      case "entries":
        return fc.array(entry, { maxLength: 3 });
      default:
        return valid.text;
    }
  };
  // A valid message of a random type, sometimes with one field removed or replaced.
  const nearlyValid = fc.constantFrom(...Object.keys(FIELDS)).chain((t) =>
    fc.tuple(
      fc.record(Object.fromEntries(FIELDS[t]!.map((name) => [name, validField(t, name)]))),
      FIELDS[t]!.length === 0
        ? fc.constant(null)
        : fc.option(fc.tuple(fc.constantFrom(...FIELDS[t]!), fc.option(value)), { freq: 2 }),
    ).map(([fields, change]) => {
      const message: Record<string, unknown> = { t, ...fields };
      if (change !== null) {
        const [name, replacement] = change;
        if (replacement === null) delete message[name];
        else message[name] = replacement;
      }
      return message;
    })
  );
  // Known and unknown keys with values of any type.
  const jumbled = fc.tuple(
    fc.oneof(fc.constantFrom(...Object.keys(FIELDS)), fc.string()),
    fc.dictionary(
      fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 8 })),
      fc.oneof(value, fc.array(fc.dictionary(fc.constantFrom(...names), value), { maxLength: 4 })),
    ),
  ).map(([t, fields]) => ({ ...fields, t }));
  return fc.oneof(nearlyValid, jumbled, fc.jsonValue());
})();

Deno.test("fuzz: decoders given message-like JSON only throw ProtocolError or return a well-formed message", () => {
  fc.assert(
    fc.property(messageLike, (value) => {
      const bytes = new TextEncoder().encode(JSON.stringify(value));
      for (const decode of DECODERS) checkDecode(decode, bytes);
    }),
    budget(),
  );
});

Deno.test("fuzz: `decodeServerMessage()` accepts listings only up to MAX_LISTING_BATCH entries", () => {
  const entry = { name: "a", type: "file", size: 0, mtime: 0, mode: 0 };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 * MAX_LISTING_BATCH }), (count) => {
      const bytes = new TextEncoder().encode(
        JSON.stringify({ t: "listing", entries: Array(count).fill(entry), done: true }),
      );
      if (count <= MAX_LISTING_BATCH) checkDecode(decodeServerMessage, bytes);
      else assert.throws(() => decodeServerMessage(bytes), ProtocolError);
    }),
    budget(Math.min(RUNS, 100)),
  );
});

// Remote paths

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Strings from every corner: any code point, any UTF-16 unit (lone surrogates), and path-like. */
const pathLike = (() => {
  const piece = fc.oneof(
    fc.constantFrom(
      "",
      ".",
      "..",
      "...",
      "a",
      "b.txt",
      "CON",
      "nul.txt",
      "C:",
      "c:x",
      "\\",
      "/",
      "./",
      "../",
      ".ferry-partial.x",
      "x ",
      "x.",
      " ",
      "\u202e",
      "\u2215",
      "\uff0f",
      "\u2024\u2024",
      "\ufe52",
      "\u0000",
      "\n",
      "\x1b",
      "\u0085",
      "\ud800",
      "\udc00",
      "é",
      "e\u0301",
      "日本",
      "🎉",
    ),
    fc.string({ maxLength: 6 }),
  );
  const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
  return fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ unit: anyUnit, maxLength: 40 }),
    fc.string({ unit: "grapheme-ascii", maxLength: 40 }),
    fc.tuple(
      fc.constantFrom("", "./", "/", "../"),
      fc.array(piece, { minLength: 1, maxLength: 6 }),
      fc.constantFrom("", "/", "//"),
    ).map(([prefix, parts, suffix]) => prefix + parts.join("/") + suffix),
    fc.string({ unit: "grapheme", minLength: 250, maxLength: 600 }),
  );
})();

Deno.test("fuzz: `parseRemotePath()` throws PathError or returns safe names that round-trip through `joinRemotePath()`", () => {
  fc.assert(
    fc.property(pathLike, (path) => {
      let components: string[];
      try {
        components = parseRemotePath(path);
      } catch (error) {
        assert.ok(error instanceof PathError, `unexpected ${error}`);
        assert.ok(!CONTROL.test(error.message), "error messages carry no control characters");
        return;
      }
      for (const name of components) {
        validateName(name);
        assert.ok(name !== "" && name !== "." && name !== "..", name);
        assert.ok(!name.includes("/") && !name.includes("\\"), name);
        assert.ok(!CONTROL.test(name), name);
        assert.ok(name.isWellFormed(), name);
        const compatible = name.normalize("NFKC");
        assert.ok(compatible !== ".." && !compatible.includes("/"), name);
      }
      const joined = joinRemotePath(components);
      assert.deepEqual(parseRemotePath(joined), components);
      // The only accepted spellings are the canonical one, "./" before it and "/" after it.
      const spellings = joined === ""
        ? ["", ".", "./"]
        : [joined, `${joined}/`, `./${joined}`, `./${joined}/`];
      assert.ok(spellings.includes(path), `${JSON.stringify(path)} -> ${JSON.stringify(joined)}`);
    }),
    budget(),
  );
});

Deno.test("fuzz: `joinRemotePath()` of valid names parses back to the same names", () => {
  const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }).filter((name) => {
    try {
      validateName(name);
      return true;
    } catch {
      return false;
    }
  });
  fc.assert(
    fc.property(fc.array(name, { maxLength: 8 }), (names) => {
      assert.deepEqual(parseRemotePath(joinRemotePath(names)), names);
    }),
    budget(),
  );
});
