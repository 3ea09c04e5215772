/**
 * `deno task bench:micro`: per-core costs of the hot path, without sockets or disks.
 *
 * - the record layer: sealing 256 KiB records through {@link RecordWriter} into a sink that
 *   discards (batched as in a transfer, and flushed per record), and opening them through
 *   {@link RecordReader} from memory;
 * - the raw `node:crypto` ChaCha20-Poly1305 call it wraps, to show what the layer adds;
 * - SHA-256 (`node:crypto`) of 1 MiB and 256 KiB, which every transfer does on both sides;
 * - a 1 MiB copy, the unit of the write batching.
 *
 * Divide the bytes in a benchmark's name by its time per iteration for a throughput
 * (256 KiB in 200 µs = 1.3 GB/s).
 *
 * @module
 */
import { createCipheriv, createHash } from "node:crypto";
import {
  ByteReader,
  type ByteSink,
  type ByteSource,
  MAX_RECORD_PLAINTEXT,
  RecordReader,
  RecordType,
  RecordWriter,
} from "../lib/protocol/framing.ts";

const KEY = new Uint8Array(32).fill(7);
const IV = new Uint8Array(12).fill(9);
const RECORD = new Uint8Array(MAX_RECORD_PLAINTEXT).map((_, index) => (index * 31) & 0xff);
const MIB = new Uint8Array(1024 * 1024).map((_, index) => (index * 17) & 0xff);
/** Records in the pre-sealed stream the reader benchmarks replay (16 MiB of plaintext). */
const STREAM_RECORDS = 64;

/** A sink that accepts every write at once and keeps nothing. */
class DiscardSink implements ByteSink {
  bytes = 0;
  write(buffer: Uint8Array): Promise<number> {
    this.bytes += buffer.length;
    return Promise.resolve(buffer.length);
  }
}

/** A sink that keeps what it is given, to build a stream for the reader. */
class CollectSink implements ByteSink {
  chunks: Uint8Array[] = [];
  write(buffer: Uint8Array): Promise<number> {
    this.chunks.push(buffer.slice());
    return Promise.resolve(buffer.length);
  }
  concat(): Uint8Array {
    const total = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/** Serves a byte string in reads of at most `readBytes` (a socket hands out ~64 KiB-1 MiB). */
class MemorySource implements ByteSource {
  #bytes: Uint8Array;
  #offset = 0;
  #readBytes: number;
  constructor(bytes: Uint8Array, readBytes: number) {
    this.#bytes = bytes;
    this.#readBytes = readBytes;
  }
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#offset >= this.#bytes.length) return Promise.resolve(null);
    const count = Math.min(buffer.length, this.#readBytes, this.#bytes.length - this.#offset);
    buffer.set(this.#bytes.subarray(this.#offset, this.#offset + count));
    this.#offset += count;
    return Promise.resolve(count);
  }
}

const sealedStream = await (async () => {
  const sink = new CollectSink();
  const writer = new RecordWriter(sink, KEY, IV);
  for (let index = 0; index < STREAM_RECORDS; index++) {
    await writer.write(RecordType.data, RECORD);
  }
  await writer.end();
  return sink.concat();
})();

/** A reader over the pre-sealed stream that starts over (new keys state) when it runs out. */
function replayingReader(readBytes: number): () => Promise<Uint8Array> {
  let reader = new RecordReader(new ByteReader(new MemorySource(sealedStream, readBytes)), KEY, IV);
  let left = STREAM_RECORDS;
  return async () => {
    if (left === 0) {
      reader = new RecordReader(new ByteReader(new MemorySource(sealedStream, readBytes)), KEY, IV);
      left = STREAM_RECORDS;
    }
    left--;
    const record = await reader.next();
    if (record.type !== RecordType.data) throw new Error("Expected a data record");
    return record.payload;
  };
}

const batchedWriter = new RecordWriter(new DiscardSink(), KEY, IV);
Deno.bench({
  name: "RecordWriter.write: seal 256 KiB (flushed in 1 MiB batches)",
  group: "seal 256 KiB",
  baseline: true,
  async fn() {
    await batchedWriter.write(RecordType.data, RECORD);
  },
});

const flushingWriter = new RecordWriter(new DiscardSink(), KEY, IV);
Deno.bench({
  name: "RecordWriter.send: seal 256 KiB and flush each record",
  group: "seal 256 KiB",
  async fn() {
    await flushingWriter.send(RecordType.data, RECORD);
  },
});

let rawCounter = 0;
Deno.bench({
  name: "node:crypto chacha20-poly1305 seal 256 KiB (no framing)",
  group: "seal 256 KiB",
  fn() {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(8, rawCounter++);
    const cipher = createCipheriv("chacha20-poly1305", KEY, nonce, { authTagLength: 16 });
    cipher.setAAD(RECORD.subarray(0, 5), { plaintextLength: RECORD.length });
    cipher.update(RECORD);
    cipher.final();
    cipher.getAuthTag();
  },
});

const nextFromSocketSized = replayingReader(64 * 1024);
Deno.bench({
  name: "RecordReader.next: open 256 KiB (source reads of 64 KiB)",
  group: "open 256 KiB",
  baseline: true,
  async fn() {
    await nextFromSocketSized();
  },
});

const nextFromLargeReads = replayingReader(4 * 1024 * 1024);
Deno.bench({
  name: "RecordReader.next: open 256 KiB (source reads up to the buffer)",
  group: "open 256 KiB",
  async fn() {
    await nextFromLargeReads();
  },
});

Deno.bench({
  name: "node:crypto SHA-256 of 1 MiB",
  group: "hash",
  baseline: true,
  fn() {
    createHash("sha256").update(MIB).digest();
  },
});

const RECORD_HASH = createHash("sha256");
Deno.bench({
  name: "node:crypto SHA-256 update with 256 KiB (running hash)",
  group: "hash",
  fn() {
    RECORD_HASH.update(RECORD);
  },
});

const copyTarget = new Uint8Array(MIB.length);
Deno.bench({
  name: "Uint8Array.set: copy 1 MiB",
  group: "copy",
  fn() {
    copyTarget.set(MIB);
  },
});

Deno.bench({
  name: "Uint8Array.slice: allocate and copy 256 KiB",
  group: "copy",
  fn() {
    RECORD.slice();
  },
});
