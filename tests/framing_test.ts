/**
 * The record layer as a specification: what a reader accepts, what it refuses and when, and what
 * the writer puts on the wire. Streams are in-memory pipes (`_pipes.ts`), so every byte can be
 * captured, changed, dropped, replayed, reordered or cut.
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { ConnectionError, ProtocolError } from "../lib/errors.ts";
import {
  BUNDLED_PAYLOAD_MAX_BYTES,
  ByteReader,
  MAX_RECORD_PLAINTEXT,
  RECORD_HEADER_BYTES,
  RECORD_TAG_BYTES,
  RecordReader,
  RecordType,
  RecordWriter,
} from "../lib/protocol/framing.ts";
import { until } from "./_helpers.ts";
import { BytePipe, concat, sourceOf } from "./_pipes.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const IV = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const MAX_LENGTH = MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES;

type Plain = [RecordType, Uint8Array];

/** Deterministic, non-repeating-looking bytes. */
function patterned(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

/** The bytes a {@link RecordWriter} puts on the wire for `records`. */
async function seal(records: readonly Plain[], key = KEY, iv = IV): Promise<Uint8Array> {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, key, iv);
  for (const [type, payload] of records) await writer.write(type, payload);
  await writer.flush();
  return pipe.sent;
}

/** Splits a well-formed record stream into the bytes of each record. */
function splitRecords(stream: Uint8Array): Uint8Array[] {
  const records: Uint8Array[] = [];
  let offset = 0;
  while (offset < stream.length) {
    const view = new DataView(stream.buffer, stream.byteOffset + offset);
    const end = offset + RECORD_HEADER_BYTES + view.getUint32(1);
    records.push(stream.slice(offset, end));
    offset = end;
  }
  return records;
}

function readerOf(bytes: Uint8Array, options: { maxRead?: number } = {}) {
  const source = sourceOf(bytes, options);
  return { source, reader: new RecordReader(new ByteReader(source), KEY, IV) };
}

/** The next record, its payload as a plain `Uint8Array` (the reader may hand out a subclass). */
async function next(reader: RecordReader): Promise<{ type: RecordType; payload: Uint8Array }> {
  const record = await reader.next();
  return { type: record.type, payload: new Uint8Array(record.payload) };
}

/** A 5-byte record header. */
function header(type: number, length: number): Uint8Array {
  const bytes = new Uint8Array(RECORD_HEADER_BYTES);
  bytes[0] = type;
  new DataView(bytes.buffer).setUint32(1, length);
  return bytes;
}

/**
 * Every payload up to the end record, sorted by the producer that wrote it (its first byte, the
 * producer's number, for the tests where several writers do not wait for each other).
 */
async function byProducer(reader: RecordReader, producers: number): Promise<Uint8Array[][]> {
  const received: Uint8Array[][] = Array.from({ length: producers }, () => []);
  for (
    let record = await next(reader);
    record.type !== RecordType.end;
    record = await next(reader)
  ) {
    received[record.payload[0]!]!.push(record.payload);
  }
  return received;
}

// Round trips

Deno.test("`RecordReader` returns control, data and end records exactly as written (0 B, 1 B, 256 KiB)", async () => {
  const records: Plain[] = [
    [RecordType.control, new Uint8Array(0)],
    [RecordType.control, Uint8Array.of(0x7b)],
    [RecordType.control, patterned(MAX_RECORD_PLAINTEXT, 2)],
    [RecordType.data, new Uint8Array(0)],
    [RecordType.data, Uint8Array.of(0)],
    [RecordType.data, patterned(MAX_RECORD_PLAINTEXT, 3)],
    [RecordType.end, new Uint8Array(0)],
  ];
  const { reader } = readerOf(await seal(records));
  for (const [type, payload] of records) {
    assert.deepEqual(await next(reader), { type, payload });
  }
});

Deno.test("`RecordWriter` puts type, big-endian length, ciphertext and a 16-byte tag on the wire", async () => {
  const stream = await seal([[RecordType.data, patterned(100)], [
    RecordType.end,
    new Uint8Array(0),
  ]]);
  const [data, end] = splitRecords(stream);
  assert.deepEqual(data!.subarray(0, 5), header(RecordType.data, 100 + RECORD_TAG_BYTES));
  assert.equal(data!.length, RECORD_HEADER_BYTES + 100 + RECORD_TAG_BYTES);
  assert.notDeepEqual(data!.subarray(5, 105), patterned(100), "the payload is not sent in clear");
  assert.deepEqual(end!.subarray(0, 5), header(RecordType.end, RECORD_TAG_BYTES));
});

Deno.test("`RecordReader` and `RecordWriter` survive 3-byte reads and 7-byte partial writes", async () => {
  const records: Plain[] = [
    [RecordType.control, patterned(10)],
    [RecordType.data, patterned(70_000, 4)],
    [RecordType.end, new Uint8Array(0)],
  ];
  const pipe = new BytePipe({ maxRead: 3, maxWrite: 7 });
  const writer = new RecordWriter(pipe, KEY, IV);
  for (const [type, payload] of records) await writer.write(type, payload);
  await writer.flush();
  assert.ok(pipe.writes.every((write) => write.length <= 7));
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  for (const [type, payload] of records) {
    assert.deepEqual(await next(reader), { type, payload });
  }
});

Deno.test("`RecordWriter` keeps every record whole, and each writer's records in order, when writers and flushes do not wait for each other", async () => {
  // A sink that takes 4093 bytes per write: batches stay on the wire while other writers seal
  // records and start flushes (keepalives beside a transfer, answers finished side by side).
  const pipe = new BytePipe({ maxRead: 4096, maxWrite: 4093 });
  const writer = new RecordWriter(pipe, KEY, IV);
  const written: Uint8Array[][] = [[], [], []];
  const producer = async (id: number) => {
    for (let i = 0; i < 15; i++) {
      // Large records fill 1 MiB batches, so batches are started while one is going out.
      const payload = patterned((i + id) % 3 === 0 ? MAX_RECORD_PLAINTEXT : 100 + i, id * 100 + i);
      payload[0] = id;
      written[id]!.push(payload);
      await writer.write(RecordType.data, payload);
      if (i % 4 === id) await writer.flush();
    }
  };
  await Promise.all([producer(0), producer(1), producer(2), writer.flush(), writer.flush()]);
  await writer.end();
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  assert.deepEqual(await byProducer(reader, written.length), written);
});

Deno.test("`RecordWriter.end()` sends an end record, after which `RecordReader.next()` keeps returning end", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  await writer.send(RecordType.data, Uint8Array.of(1, 2, 3));
  await writer.end();
  await writer.end(); // idempotent: no second end record
  // Whatever follows the end record is never read.
  pipe.inject(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  assert.equal((await reader.next()).type, RecordType.data);
  for (let i = 0; i < 3; i++) {
    const record = await reader.next();
    assert.equal(record.type, RecordType.end);
    assert.equal(record.payload.length, 0);
  }
  assert.equal(splitRecords(pipe.sent).length, 2);
});

Deno.test("`RecordWriter` refuses to write after the end record", async () => {
  const writer = new RecordWriter(new BytePipe(), KEY, IV);
  await writer.end();
  await assert.rejects(writer.write(RecordType.data, Uint8Array.of(1)), ProtocolError);
});

// What the writer refuses

Deno.test("`RecordWriter` refuses a payload over 256 KiB and stays usable", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  await assert.rejects(
    writer.write(RecordType.data, new Uint8Array(MAX_RECORD_PLAINTEXT + 1)),
    RangeError,
  );
  await writer.send(RecordType.data, Uint8Array.of(42));
  const reader = new RecordReader(new ByteReader(sourceOf(pipe.sent)), KEY, IV);
  assert.deepEqual(await next(reader), { type: RecordType.data, payload: Uint8Array.of(42) });
});

Deno.test("`RecordReader` and `RecordWriter` reject a key or IV of the wrong length", () => {
  const sink = new BytePipe();
  const reader = new ByteReader(sink);
  for (const [key, iv] of [[31, 12], [33, 12], [0, 12], [32, 11], [32, 13], [32, 0], [16, 8]]) {
    const k = new Uint8Array(key!);
    const n = new Uint8Array(iv!);
    assert.throws(() => new RecordWriter(sink, k, n), TypeError, `writer key ${key}, iv ${iv}`);
    assert.throws(() => new RecordReader(reader, k, n), TypeError, `reader key ${key}, iv ${iv}`);
  }
});

// Lengths and types refused from the header alone

for (
  const [label, length] of [
    ["over the maximum by one", MAX_LENGTH + 1],
    ["of 2^32 - 1", 0xffff_ffff],
    ["of 2^31 (sign bit)", 0x8000_0000],
    ["below the tag size (15)", RECORD_TAG_BYTES - 1],
    ["of zero", 0],
  ] as const
) {
  Deno.test(`hostile peer: a record length ${label} is refused before its body is read`, async () => {
    const source = sourceOf(header(RecordType.data, length));
    const reader = new RecordReader(new ByteReader(source), KEY, IV);
    await assert.rejects(reader.next(), (error) => {
      assert.ok(error instanceof ProtocolError, String(error));
      assert.match(error.message, /length/);
      return true;
    });
    // The source handed over the 5 header bytes in one read and was never asked again.
    assert.equal(source.readCalls, 1);
    assert.equal(source.pending, 0);
  });
}

Deno.test("`RecordReader` accepts the largest legal length and then reads the body", async () => {
  const stream = await seal([[RecordType.data, new Uint8Array(MAX_RECORD_PLAINTEXT)]]);
  assert.deepEqual(stream.subarray(0, 5), header(RecordType.data, MAX_LENGTH));
  const { reader } = readerOf(stream);
  assert.equal((await reader.next()).payload.length, MAX_RECORD_PLAINTEXT);
});

Deno.test("hostile peer: an unknown record type byte is refused", async () => {
  const valid = await seal([[RecordType.data, Uint8Array.of(1)]]);
  for (const type of [0, 4, 5, 0x80, 0xff]) {
    const stream = valid.slice();
    stream[0] = type;
    const { reader, source } = readerOf(stream);
    await assert.rejects(reader.next(), ProtocolError, `type ${type}`);
    assert.equal(source.readCalls, 1, "nothing past the header is read");
  }
});

// Tampering

/** Reads `stream`; the first record must be refused with ProtocolError. */
async function assertRefused(stream: Uint8Array, message: string): Promise<void> {
  const { reader } = readerOf(stream);
  await assert.rejects(reader.next(), ProtocolError, message);
}

Deno.test("hostile peer: every single-bit flip in a record's header is refused", async () => {
  // A full-size record follows, so a length made larger still finds bytes to read.
  const stream = await seal([
    [RecordType.data, patterned(100)],
    [RecordType.data, patterned(MAX_RECORD_PLAINTEXT)],
  ]);
  for (let bit = 0; bit < RECORD_HEADER_BYTES * 8; bit++) {
    const flipped = stream.slice();
    flipped[bit >> 3]! ^= 0x80 >> (bit & 7);
    await assertRefused(flipped, `header bit ${bit}`);
  }
});

Deno.test("hostile peer: every single-bit flip in a record's ciphertext or tag is refused", async () => {
  const stream = await seal([[RecordType.control, patterned(40)], [
    RecordType.end,
    new Uint8Array(0),
  ]]);
  const firstLength = RECORD_HEADER_BYTES + 40 + RECORD_TAG_BYTES;
  for (let bit = RECORD_HEADER_BYTES * 8; bit < firstLength * 8; bit++) {
    const flipped = stream.slice();
    flipped[bit >> 3]! ^= 0x80 >> (bit & 7);
    await assertRefused(flipped, `body bit ${bit}`);
  }
});

Deno.test("hostile peer: a flipped bit in an empty end record's tag is refused", async () => {
  const stream = await seal([[RecordType.end, new Uint8Array(0)]]);
  for (let byte = RECORD_HEADER_BYTES; byte < stream.length; byte++) {
    const flipped = stream.slice();
    flipped[byte]! ^= 1;
    await assertRefused(flipped, `tag byte ${byte}`);
  }
});

Deno.test("hostile peer: a record sealed with another key is refused", async () => {
  const otherKey = KEY.map((byte) => byte ^ 0x55);
  await assertRefused(await seal([[RecordType.data, patterned(8)]], otherKey), "other key");
  const otherIv = IV.map((byte) => byte ^ 0x55);
  await assertRefused(await seal([[RecordType.data, patterned(8)]], KEY, otherIv), "other IV");
});

Deno.test("hostile peer: a record whose type is changed to another valid type is refused", async () => {
  const stream = await seal([[RecordType.data, patterned(8)]]);
  for (const type of [RecordType.control, RecordType.end]) {
    const changed = stream.slice();
    changed[0] = type;
    await assertRefused(changed, `data changed to ${type}`);
  }
});

Deno.test("hostile peer: an end record that carries a payload is refused", async () => {
  const pipe = new BytePipe();
  await new RecordWriter(pipe, KEY, IV).send(RecordType.end, Uint8Array.of(0));
  await assertRefused(pipe.sent, "non-empty end");
});

Deno.test("hostile peer: a replayed record is refused on its second arrival", async () => {
  const [first, second] = splitRecords(
    await seal([[RecordType.control, patterned(20)], [RecordType.data, patterned(30)]]),
  );
  const { reader } = readerOf(concat([first!, first!, second!]));
  assert.deepEqual((await next(reader)).payload, patterned(20));
  await assert.rejects(reader.next(), ProtocolError);
});

Deno.test("hostile peer: a record replayed after the same plaintext was sent again is refused", async () => {
  // Same type and payload twice: the second record's bytes still differ, and neither stands in
  // for the other.
  const [first, second, third] = splitRecords(
    await seal([
      [RecordType.data, patterned(20)],
      [RecordType.data, patterned(20)],
      [RecordType.end, new Uint8Array(0)],
    ]),
  );
  const { reader } = readerOf(concat([first!, first!, third!]));
  await reader.next();
  await assert.rejects(reader.next(), ProtocolError);
  const swapped = readerOf(concat([second!, first!, third!]));
  await assert.rejects(swapped.reader.next(), ProtocolError);
});

Deno.test("hostile peer: two records swapped are refused", async () => {
  const [first, second, end] = splitRecords(
    await seal([
      [RecordType.control, patterned(20)],
      [RecordType.control, patterned(20, 9)],
      [RecordType.end, new Uint8Array(0)],
    ]),
  );
  await assertRefused(concat([second!, first!, end!]), "swapped");
});

Deno.test("hostile peer: a dropped record makes the next one fail", async () => {
  const [first, , third, end] = splitRecords(
    await seal([
      [RecordType.data, patterned(10, 1)],
      [RecordType.data, patterned(10, 2)],
      [RecordType.data, patterned(10, 3)],
      [RecordType.end, new Uint8Array(0)],
    ]),
  );
  const { reader } = readerOf(concat([first!, third!, end!]));
  assert.deepEqual((await next(reader)).payload, patterned(10, 1));
  await assert.rejects(reader.next(), ProtocolError);
});

Deno.test("hostile peer: a dropped end record leaves the stream truncated (ConnectionError)", async () => {
  const [data] = splitRecords(
    await seal([[RecordType.data, patterned(10)], [RecordType.end, new Uint8Array(0)]]),
  );
  const { reader } = readerOf(data!);
  await reader.next();
  await assert.rejects(reader.next(), ConnectionError);
});

// Truncation

Deno.test("`RecordReader` reports a stream cut in the middle of a record as ConnectionError", async () => {
  const stream = await seal([[RecordType.data, patterned(50)], [
    RecordType.end,
    new Uint8Array(0),
  ]]);
  const recordLength = RECORD_HEADER_BYTES + 50 + RECORD_TAG_BYTES;
  for (const cut of [1, 4, 5, 6, 30, recordLength - 1]) {
    const { reader } = readerOf(stream.subarray(0, cut));
    await assert.rejects(reader.next(), ConnectionError, `cut after ${cut} bytes`);
  }
  // The same holds for the second record, after the first was read.
  for (const cut of [recordLength + 1, recordLength + 5, stream.length - 1]) {
    const { reader } = readerOf(stream.subarray(0, cut));
    await reader.next();
    await assert.rejects(reader.next(), ConnectionError, `cut after ${cut} bytes`);
  }
});

Deno.test("`RecordReader` reports a stream that ends cleanly without an end record as ConnectionError", async () => {
  const { reader: empty } = readerOf(new Uint8Array(0));
  await assert.rejects(empty.next(), ConnectionError);
  const { reader } = readerOf(await seal([[RecordType.control, patterned(5)]]));
  await reader.next();
  await assert.rejects(reader.next(), ConnectionError);
});

Deno.test("`RecordReader` turns a failing socket into ConnectionError", async () => {
  const pipe = new BytePipe();
  pipe.fail(new Deno.errors.ConnectionReset("reset by peer"));
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  await assert.rejects(reader.next(), (error) => {
    assert.ok(error instanceof ConnectionError);
    assert.match(error.message, /reset by peer/);
    return true;
  });
});

Deno.test("`RecordWriter` turns a failing socket into ConnectionError", async () => {
  const pipe = new BytePipe();
  pipe.close();
  const writer = new RecordWriter(pipe, KEY, IV);
  await assert.rejects(writer.send(RecordType.data, Uint8Array.of(1)), ConnectionError);
});

// The writer's batching and buffers

Deno.test("`RecordWriter` batches small records into one socket write on flush", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  for (let i = 0; i < 10; i++) await writer.write(RecordType.data, patterned(100, i + 1));
  assert.equal(pipe.writes.length, 0, "nothing is written before flush");
  await writer.flush();
  assert.equal(pipe.writes.length, 1);
  assert.equal(splitRecords(pipe.writes[0]!).length, 10);
  await writer.flush();
  assert.equal(pipe.writes.length, 1, "an empty flush writes nothing");
});

Deno.test("`RecordWriter` writes by itself once about 1 MiB is queued", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  for (let i = 0; i < 3; i++) await writer.write(RecordType.data, patterned(MAX_RECORD_PLAINTEXT));
  assert.equal(pipe.writes.length, 0);
  await writer.write(RecordType.data, patterned(MAX_RECORD_PLAINTEXT));
  assert.equal(pipe.writes.length, 1);
  assert.equal(splitRecords(pipe.writes[0]!).length, 4);
});

Deno.test("`RecordWriter.write()` copies the payload: reusing the buffer at once does not corrupt the stream", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  const buffer = new Uint8Array(64);
  for (let i = 0; i < 5; i++) {
    buffer.fill(i);
    await writer.write(RecordType.data, buffer);
  }
  buffer.fill(0xee);
  await writer.end();
  const { reader } = readerOf(pipe.sent);
  for (let i = 0; i < 5; i++) {
    assert.deepEqual((await next(reader)).payload, new Uint8Array(64).fill(i));
  }
  assert.equal((await reader.next()).type, RecordType.end);
});

Deno.test("`RecordReader.next()` returns payloads the caller may keep", async () => {
  const { reader } = readerOf(
    await seal([[RecordType.data, patterned(32, 1)], [RecordType.data, patterned(32, 2)]]),
  );
  const first = await reader.next();
  await reader.next();
  assert.deepEqual(new Uint8Array(first.payload), patterned(32, 1));
});

Deno.test("`RecordWriter` uses a fresh nonce per record: the same plaintext twice gives different ciphertext", async () => {
  const payload = patterned(48);
  const [first, second] = splitRecords(
    await seal([[RecordType.data, payload], [RecordType.data, payload]]),
  );
  assert.deepEqual(first!.subarray(0, 5), second!.subarray(0, 5));
  assert.notDeepEqual(first!.subarray(5), second!.subarray(5));
  // Two writers with the same key and IV produce the same stream: the nonce is the sequence
  // number, so the keys must never be reused across connections (the handshake makes them fresh).
  assert.deepEqual(await seal([[RecordType.data, payload]]), first);
});

// Bundles (the `bundle` feature: small records sealed together)

/** What the traffic of small files writes with: records that may travel in a bundle. */
const GATHER = { gather: true } as const;

/** A writer and a reader over one pipe that have both agreed to bundles. */
function bundlingPair(pipe = new BytePipe()) {
  const writer = new RecordWriter(pipe, KEY, IV);
  writer.useBundles();
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  reader.acceptBundles();
  return { pipe, writer, reader };
}

/** The type byte of every record on the wire. */
function wireTypes(stream: Uint8Array): number[] {
  return splitRecords(stream).map((record) => record[0]!);
}

/** The plaintext of a bundle holding `records`: each `type || u32be(len) || payload`. */
function bundled(records: readonly [number, Uint8Array][]): Uint8Array {
  return concat(records.flatMap(([type, payload]) => [header(type, payload.length), payload]));
}

/**
 * The first record of a stream, sealed by hand as PROTOCOL.md section 3 says (sequence 0, so the
 * nonce is the IV itself), whatever its type and plaintext: what a hostile peer can send.
 */
function sealFirstByHand(type: number, plaintext: Uint8Array): Uint8Array {
  const recordHeader = header(type, plaintext.length + RECORD_TAG_BYTES);
  const cipher = createCipheriv("chacha20-poly1305", KEY, IV, {
    authTagLength: RECORD_TAG_BYTES,
  });
  cipher.setAAD(recordHeader, { plaintextLength: plaintext.length });
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  return concat([recordHeader, ciphertext, cipher.getAuthTag()]);
}

Deno.test("with bundles agreed, small records gathered in a row travel as one bundle and come out one by one, exactly as written", async () => {
  const { pipe, writer, reader } = bundlingPair();
  const records: Plain[] = [
    [RecordType.control, new TextEncoder().encode('{"t":"file"}')],
    [RecordType.data, new Uint8Array(0)],
    [RecordType.data, patterned(1)],
    [RecordType.data, patterned(1024, 2)],
    [RecordType.control, patterned(300, 3)],
    [RecordType.data, patterned(BUNDLED_PAYLOAD_MAX_BYTES, 4)],
  ];
  for (const [type, payload] of records) await writer.write(type, payload, GATHER);
  await writer.flush();
  assert.deepEqual(wireTypes(pipe.sent), [RecordType.bundle], "six records, one cipher call");
  for (const record of records) {
    assert.deepEqual(await next(reader), { type: record[0], payload: record[1] });
  }
});

Deno.test("with bundles agreed, a record over 64 KiB and the end record are sealed alone, after what was gathered before them", async () => {
  const { pipe, writer, reader } = bundlingPair();
  const big = patterned(BUNDLED_PAYLOAD_MAX_BYTES + 1, 5);
  const records: Plain[] = [
    [RecordType.control, patterned(40, 1)],
    [RecordType.data, patterned(40, 2)],
    [RecordType.data, big],
    [RecordType.control, patterned(40, 3)],
  ];
  for (const [type, payload] of records) await writer.write(type, payload, GATHER);
  await writer.end();
  assert.deepEqual(wireTypes(pipe.sent), [
    RecordType.bundle,
    RecordType.data,
    RecordType.control, // one record gathered alone goes as itself
    RecordType.end,
  ]);
  for (const record of records) {
    assert.deepEqual(await next(reader), { type: record[0], payload: record[1] });
  }
  assert.equal((await reader.next()).type, RecordType.end);
});

Deno.test("with bundles agreed, a bundle holds at most 256 KiB: records past that start the next one", async () => {
  const { pipe, writer, reader } = bundlingPair();
  const records: Plain[] = Array.from(
    { length: 10 },
    (_, i) => [RecordType.data, patterned(60 * 1024, i + 1)] as Plain,
  );
  for (const [type, payload] of records) await writer.write(type, payload, GATHER);
  await writer.flush();
  const sizes = splitRecords(pipe.sent).map((record) => record.length);
  assert.equal(sizes.length, 3, "4 + 4 + 2 records of 60 KiB");
  for (const size of sizes) assert.ok(size <= RECORD_HEADER_BYTES + MAX_LENGTH);
  for (const record of records) {
    assert.deepEqual(await next(reader), { type: record[0], payload: record[1] });
  }
});

Deno.test("with bundles agreed, writers that do not wait for each other still get every record through whole and in order", async () => {
  const { writer, reader } = bundlingPair(new BytePipe({ maxRead: 4096, maxWrite: 4093 }));
  const written: Uint8Array[][] = [[], [], []];
  const producer = async (id: number) => {
    for (let i = 0; i < 40; i++) {
      const size = (i + id) % 5 === 0 ? MAX_RECORD_PLAINTEXT : (i * 997 + id) % 9000;
      const payload = patterned(Math.max(1, size), id * 100 + i);
      payload[0] = id;
      written[id]!.push(payload);
      await writer.write(RecordType.data, payload, GATHER);
      if (i % 7 === id) await writer.flush();
    }
  };
  await Promise.all([producer(0), producer(1), producer(2), writer.flush()]);
  await writer.end();
  assert.deepEqual(await byProducer(reader, written.length), written);
});

Deno.test("`RecordWriter.flushSoon()` sends the records of one turn of the event loop in one write, once that turn is over", async () => {
  const { pipe, writer, reader } = bundlingPair();
  for (let i = 0; i < 5; i++) {
    await writer.write(RecordType.control, patterned(50, i + 1), GATHER);
    writer.flushSoon();
  }
  assert.equal(pipe.writes.length, 0, "nothing goes out during the turn");
  await until(() => pipe.writes.length > 0, "the flush set for later");
  assert.equal(pipe.writes.length, 1);
  assert.deepEqual(wireTypes(pipe.sent), [RecordType.bundle]);
  for (let i = 0; i < 5; i++) assert.deepEqual((await next(reader)).payload, patterned(50, i + 1));
  // A flush made meanwhile takes the place of the one set for later (no timer is left behind).
  await writer.write(RecordType.control, patterned(50, 9), GATHER);
  writer.flushSoon();
  await writer.flush();
  assert.equal(pipe.writes.length, 2);
});

Deno.test("`RecordWriter` makes bundles itself: writing one by hand is refused", async () => {
  const writer = new RecordWriter(new BytePipe(), KEY, IV);
  await assert.rejects(
    writer.write(RecordType.bundle, bundled([[RecordType.data, patterned(8)]])),
    TypeError,
  );
});

Deno.test("hostile peer: a bundle to a reader that has not agreed to bundles is an unknown record type", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  writer.useBundles();
  await writer.write(RecordType.control, patterned(20, 1), GATHER);
  await writer.write(RecordType.data, patterned(20, 2), GATHER);
  await writer.flush();
  const { reader } = readerOf(pipe.sent);
  await assert.rejects(reader.next(), { name: "ProtocolError", message: /Unknown record type 4/ });
});

Deno.test("hostile peer: a malformed bundle is refused whole, before any record in it is handed out", async () => {
  const data = [RecordType.data, patterned(10)] as [number, Uint8Array];
  const cases: [string, Uint8Array, RegExp][] = [
    ["an empty bundle", new Uint8Array(0), /Empty record bundle/],
    [
      "a header cut short",
      concat([bundled([data]), Uint8Array.of(2, 0, 0)]),
      /inside a record header/,
    ],
    [
      "a length past the end",
      concat([bundled([data]), header(RecordType.data, 11), patterned(10)]),
      /ends inside a record/,
    ],
    ["an end record inside", bundled([data, [RecordType.end, new Uint8Array(0)]]), /type 3 inside/],
    ["a bundle inside a bundle", bundled([data, [RecordType.bundle, bundled([data])]]), /type 4/],
    ["an unknown type inside", bundled([data, [9, patterned(4)]]), /type 9 inside/],
    ["a length of 4 GiB", concat([bundled([data]), header(RecordType.data, 0xffffffff)]), /inside/],
  ];
  for (const [name, plaintext, reason] of cases) {
    const { reader } = readerOf(sealFirstByHand(RecordType.bundle, plaintext));
    reader.acceptBundles();
    await assert.rejects(reader.next(), (error: Error) => {
      assert.ok(error instanceof ProtocolError, name);
      assert.match(error.message, reason, name);
      return true;
    });
  }
});

Deno.test("hostile peer: a well-formed bundle sealed by hand reads as its records, and a flipped bit in it is refused", async () => {
  const records: [number, Uint8Array][] = [
    [RecordType.control, patterned(12, 1)],
    [RecordType.data, patterned(700, 2)],
  ];
  const sealed = sealFirstByHand(RecordType.bundle, bundled(records));
  const { reader } = readerOf(sealed);
  reader.acceptBundles();
  for (const [type, payload] of records) assert.deepEqual(await next(reader), { type, payload });
  const flipped = sealed.slice();
  flipped[RECORD_HEADER_BYTES + 3]! ^= 0x01; // a sub-record's length byte, under the cipher
  const tampered = readerOf(flipped);
  tampered.reader.acceptBundles();
  await assert.rejects(tampered.reader.next(), {
    name: "ProtocolError",
    message: /failed authentication/,
  });
});

Deno.test("`RecordReader.ready` says whether the next record is already here: left in a bundle, or received whole", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  await writer.write(RecordType.control, patterned(30, 1)); // sealed alone: bundles are not on yet
  writer.useBundles();
  await writer.write(RecordType.data, patterned(30, 2), GATHER);
  await writer.write(RecordType.data, patterned(30, 3), GATHER); // these two: one bundle
  await writer.flush();
  const stream = pipe.sent;
  const cutShort = stream.subarray(0, stream.length - 1);
  const { reader } = readerOf(cutShort);
  reader.acceptBundles();
  assert.equal(reader.ready, false, "nothing received yet");
  await reader.next(); // receives all it can: the first record and most of the bundle
  assert.equal(reader.ready, false, "the bundle is not whole");
  const whole = readerOf(stream).reader;
  whole.acceptBundles();
  await whole.next();
  assert.equal(whole.ready, true, "the bundle is here whole");
  await whole.next();
  assert.equal(whole.ready, true, "one record is left in the bundle");
  await whole.next();
  assert.equal(whole.ready, false);
});

Deno.test("`RecordWriter.unsent` counts the records written since a batch last went out", async () => {
  const pipe = new BytePipe();
  const writer = new RecordWriter(pipe, KEY, IV);
  await writer.write(RecordType.control, patterned(10, 1));
  writer.useBundles();
  await writer.write(RecordType.control, patterned(10, 2), GATHER);
  await writer.write(RecordType.data, patterned(10, 3));
  assert.equal(writer.unsent, 3);
  await writer.flush();
  assert.equal(writer.unsent, 0);
  assert.equal(pipe.writes.length, 1);
});

Deno.test("with bundles agreed, records written without `gather` keep a record each, as on a connection without bundles", async () => {
  const { pipe, writer, reader } = bundlingPair();
  const records: Plain[] = [
    [RecordType.control, patterned(40, 1)],
    [RecordType.data, patterned(4000, 2)],
    [RecordType.data, patterned(12, 3)],
    [RecordType.control, patterned(40, 4)],
  ];
  await writer.write(RecordType.control, patterned(40, 5), GATHER);
  await writer.write(RecordType.data, patterned(40, 6), GATHER);
  for (const [type, payload] of records) await writer.write(type, payload);
  await writer.flush();
  assert.deepEqual(wireTypes(pipe.sent), [
    RecordType.bundle, // the two gathered first, sealed before the next record
    RecordType.control,
    RecordType.data,
    RecordType.data,
    RecordType.control,
  ]);
  await reader.next();
  await reader.next();
  for (const [type, payload] of records) assert.deepEqual(await next(reader), { type, payload });
});
