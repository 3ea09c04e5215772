/**
 * The record layer: after the handshake every byte travels in an authenticated, encrypted record.
 *
 * ```
 * record  = type (1 byte) || u32be(len) || ciphertext (len - 16 bytes) || tag (16 bytes)
 * nonce   = iv XOR (0^4 || u64be(seq))       seq counts records per direction from 0
 * AAD     = the 5-byte header
 * ```
 * ChaCha20-Poly1305 comes from `node:crypto` (native in Deno). A length above
 * {@link MAX_RECORD_PLAINTEXT} + 16 is refused before any byte of the body is read. Because the
 * sequence number is part of the nonce, a replayed, reordered, dropped or modified record fails
 * authentication; an explicit {@link RecordType.end} record makes truncation of the stream
 * detectable.
 *
 * Once both sides have agreed to it (the `bundle` feature, see `messages.ts`), small control and
 * data records written one after another are sealed together as one {@link RecordType.bundle}
 * record, whose plaintext is those records back to back, each as `type || u32be(len) || payload`.
 * A folder of small files then costs one cipher call per batch of files instead of three per file;
 * the reader hands the records out one by one, as if each had come alone.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { clearImmediate, setImmediate } from "node:timers";
import { writeAll as writeAllBytes } from "../_fs.ts";
import { ConnectionError, ConnectionLostError, ProtocolError } from "../errors.ts";
import { noteRecord, releaseBuffer } from "../_memory.ts";

/** The kinds of record. The type byte is authenticated as part of the AAD. */
export const RecordType = {
  /** A JSON control message (see `messages.ts`). */
  control: 1,
  /** A chunk of file content. */
  data: 2,
  /** Orderly end of the stream in this direction; nothing may follow it. */
  end: 3,
  /**
   * Control and data records sealed together (only once both sides agreed to it): its plaintext
   * is one or more `type || u32be(len) || payload`, never an end or another bundle. A reader
   * never returns it: it returns the records inside, in order.
   */
  bundle: 4,
} as const;
/** One of the {@link RecordType} values. */
export type RecordType = typeof RecordType[keyof typeof RecordType];

/** Largest plaintext a record may carry (256 KiB). */
export const MAX_RECORD_PLAINTEXT = 256 * 1024;
/** Bytes of header before the ciphertext. */
export const RECORD_HEADER_BYTES = 5;
/** Bytes of Poly1305 tag after the ciphertext. */
export const RECORD_TAG_BYTES = 16;
/** The sequence number may not reach this (far below the 2^64 wrap). */
const MAX_SEQUENCE = 2 ** 48;
/** Encrypted bytes gathered before one socket write. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** One batch buffer: a full batch plus the largest record that may overflow it. */
const BATCH_BUFFER_BYTES = WRITE_BATCH_BYTES + RECORD_HEADER_BYTES + MAX_RECORD_PLAINTEXT +
  RECORD_TAG_BYTES;
/**
 * A record with at most this much payload is gathered into a bundle (when bundles are on); a
 * bigger one is sealed alone, where one more cipher call is small beside its bytes.
 */
export const BUNDLED_PAYLOAD_MAX_BYTES = 64 * 1024;
/** Bytes before each record's payload inside a bundle: its type and its length. */
const BUNDLED_HEADER_BYTES = 5;

/** The smallest reading surface the record layer needs (a `Deno.Conn` has it). */
export interface ByteSource {
  /** Reads into `buffer`; resolves to the number of bytes read, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
}
/**
 * The smallest writing surface the record layer needs (a `Deno.Conn` has it). A sink must be
 * done with the buffer when its promise settles: the record writer frees it right after.
 */
export interface ByteSink {
  /** Writes some or all of `buffer`; resolves to the number of bytes written. */
  write(buffer: Uint8Array): Promise<number>;
}

/**
 * Reads exact byte counts from a socket through one reusable buffer.
 * Views it returns are valid only until the next call.
 */
export class ByteReader {
  #source: ByteSource;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;

  /** Wraps `source`; `bufferBytes` must exceed the largest single {@link readExact}. */
  constructor(source: ByteSource, bufferBytes = MAX_RECORD_PLAINTEXT * 4 + 64) {
    this.#source = source;
    this.#buffer = new Uint8Array(bufferBytes);
  }

  /** Bytes already received and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The `length` bytes at `offset` past the next unconsumed byte, if received (a view). */
  peek(offset: number, length: number): Uint8Array | undefined {
    if (this.#end - this.#start < offset + length) return undefined;
    return this.#buffer.subarray(this.#start + offset, this.#start + offset + length);
  }

  /**
   * Returns the next `length` bytes, or `null` if the stream ended cleanly before the first of
   * them. A stream that ends in the middle throws {@link ConnectionError}.
   */
  async readExact(length: number): Promise<Uint8Array | null> {
    if (length > this.#buffer.length) {
      throw new ProtocolError(`Cannot read ${length} bytes at once: buffer is smaller`);
    }
    while (this.#end - this.#start < length) {
      if (this.#buffer.length - this.#start < length) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      let count: number | null;
      try {
        count = await this.#source.read(this.#buffer.subarray(this.#end));
      } catch (error) {
        throw connectionLost(error);
      }
      if (count === null) {
        if (this.#end === this.#start) return null;
        throw new ConnectionLostError("Connection closed in the middle of a message");
      }
      this.#end += count;
    }
    const view = this.#buffer.subarray(this.#start, this.#start + length);
    this.#start += length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return view;
  }
}

/** Writes the whole buffer to a socket; a failure becomes a {@link ConnectionError}. */
export async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  try {
    await writeAllBytes(sink, bytes);
  } catch (error) {
    throw connectionLost(error);
  }
}

/** Turns a socket error into a {@link ConnectionLostError} with one readable line. */
export function connectionLost(error: unknown): ConnectionError {
  if (error instanceof ConnectionError || error instanceof ProtocolError) return error;
  const detail = error instanceof Error ? error.message.split("\n", 1)[0] : String(error);
  return new ConnectionLostError(`Connection lost: ${detail}`, { cause: error });
}

function nonceFor(iv: Uint8Array, sequence: number): Uint8Array {
  if (sequence >= MAX_SEQUENCE) throw new ProtocolError("Too many records on one connection");
  const nonce = new Uint8Array(iv);
  const high = Math.floor(sequence / 2 ** 32);
  const low = sequence >>> 0;
  nonce[4]! ^= high >>> 24;
  nonce[5]! ^= (high >>> 16) & 0xff;
  nonce[6]! ^= (high >>> 8) & 0xff;
  nonce[7]! ^= high & 0xff;
  nonce[8]! ^= low >>> 24;
  nonce[9]! ^= (low >>> 16) & 0xff;
  nonce[10]! ^= (low >>> 8) & 0xff;
  nonce[11]! ^= low & 0xff;
  return nonce;
}

function checkKeyMaterial(key: Uint8Array, iv: Uint8Array): void {
  if (key.length !== 32 || iv.length !== 12) {
    throw new TypeError("Record keys must be 32 bytes with a 12-byte IV");
  }
}

/** A record as it comes out of {@link RecordReader.next}. */
export interface ReceivedRecord {
  /** Control, data or end (never a bundle: the records inside it come out one by one). */
  readonly type: RecordType;
  /** The authenticated plaintext (a fresh buffer the caller may keep). */
  readonly payload: Uint8Array;
}

/** Decrypts and authenticates records from one direction of the connection. */
export class RecordReader {
  #input: ByteReader;
  #key: Uint8Array;
  #iv: Uint8Array;
  #sequence = 0;
  #ended = false;
  #bundlesAccepted = false;
  /** The plaintext of the bundle being handed out, and where its next record starts. */
  #bundle: Uint8Array | undefined;
  #bundleOffset = 0;

  /** Reads through `input` with this direction's key and IV. */
  constructor(input: ByteReader, key: Uint8Array, iv: Uint8Array) {
    checkKeyMaterial(key, iv);
    this.#input = input;
    this.#key = key;
    this.#iv = iv;
  }

  /**
   * Whether {@link next} can return a record without waiting for the socket: one is left in the
   * current bundle, or a whole record has been received.
   */
  get ready(): boolean {
    if (this.#bundle !== undefined || this.#ended) return true;
    const header = this.#input.peek(0, RECORD_HEADER_BYTES);
    return header !== undefined &&
      this.#input.buffered >= RECORD_HEADER_BYTES + readLength(header, 1);
  }

  /**
   * Accepts {@link RecordType.bundle} records from now on: called once this side has agreed to
   * them. Before, a bundle is an unknown record type.
   */
  acceptBundles(): void {
    this.#bundlesAccepted = true;
  }

  /**
   * The next record. Throws {@link ProtocolError} for an unknown type, an oversized length (before
   * reading the body) or a failed authentication, and {@link ConnectionError} when the stream stops
   * without an end record. After an end record it returns it again on every call.
   */
  async next(): Promise<ReceivedRecord> {
    if (this.#bundle !== undefined) return this.#nextBundled();
    if (this.#ended) return { type: RecordType.end, payload: new Uint8Array(0) };
    const header = await this.#input.readExact(RECORD_HEADER_BYTES);
    if (header === null) {
      throw new ConnectionLostError("Connection closed by the peer without an orderly end");
    }
    const type = header[0]!;
    const length = readLength(header, 1);
    if (
      type !== RecordType.control && type !== RecordType.data && type !== RecordType.end &&
      (type !== RecordType.bundle || !this.#bundlesAccepted)
    ) {
      throw new ProtocolError(`Unknown record type ${type}`);
    }
    if (length < RECORD_TAG_BYTES || length > MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES) {
      throw new ProtocolError(
        `Record length ${length} is outside 16..${MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES}`,
      );
    }
    const aad = header.slice();
    const body = await this.#input.readExact(length);
    if (body === null) throw new ConnectionLostError("Connection closed in the middle of a record");
    const plaintextLength = length - RECORD_TAG_BYTES;
    noteRecord();
    const decipher = createDecipheriv(
      "chacha20-poly1305",
      this.#key,
      nonceFor(this.#iv, this.#sequence),
      { authTagLength: RECORD_TAG_BYTES },
    );
    decipher.setAAD(aad, { plaintextLength });
    decipher.setAuthTag(body.subarray(plaintextLength));
    let payload: Uint8Array;
    try {
      // Nothing from update() is used unless final() accepts the tag.
      payload = decipher.update(body.subarray(0, plaintextLength));
      decipher.final();
    } catch {
      throw new ProtocolError("Record failed authentication (modified, replayed or reordered)");
    }
    this.#sequence++;
    if (type === RecordType.bundle) {
      checkBundle(payload);
      this.#bundle = payload;
      this.#bundleOffset = 0;
      return this.#nextBundled();
    }
    if (type === RecordType.end) {
      if (plaintextLength !== 0) throw new ProtocolError("End record must be empty");
      this.#ended = true;
    }
    return { type: type as RecordType, payload };
  }

  /** The next record of the current bundle (checked whole by {@link checkBundle}). */
  #nextBundled(): ReceivedRecord {
    noteRecord();
    const bundle = this.#bundle!;
    const start = this.#bundleOffset;
    const type = bundle[start]! as RecordType;
    const length = readLength(bundle, start + 1);
    const end = start + BUNDLED_HEADER_BYTES + length;
    this.#bundleOffset = end;
    if (end === bundle.length) this.#bundle = undefined;
    return { type, payload: bundle.subarray(start + BUNDLED_HEADER_BYTES, end) };
  }
}

/**
 * Writes a 5-byte header, `type || u32be(length)`, into `bytes` at `offset`: a record's (with the
 * length of its ciphertext and tag) or, inside a bundle, a gathered record's (of its payload).
 */
function writeHeader(bytes: Uint8Array, offset: number, type: RecordType, length: number): void {
  bytes[offset] = type;
  bytes[offset + 1] = length >>> 24;
  bytes[offset + 2] = (length >>> 16) & 0xff;
  bytes[offset + 3] = (length >>> 8) & 0xff;
  bytes[offset + 4] = length & 0xff;
}

/** The big-endian 32-bit length at `offset` (of a header {@link writeHeader} wrote). */
function readLength(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

/**
 * Throws {@link ProtocolError} unless the plaintext of a bundle is one or more control or data
 * records laid end to end, each length within what is left: checked whole before its first record
 * is handed out, so that a malformed bundle delivers nothing.
 */
function checkBundle(bundle: Uint8Array): void {
  if (bundle.length === 0) throw new ProtocolError("Empty record bundle");
  let offset = 0;
  while (offset < bundle.length) {
    if (bundle.length - offset < BUNDLED_HEADER_BYTES) {
      throw new ProtocolError("Record bundle ends inside a record header");
    }
    const type = bundle[offset];
    if (type !== RecordType.control && type !== RecordType.data) {
      throw new ProtocolError(`Record type ${type} inside a bundle`);
    }
    const length = readLength(bundle, offset + 1);
    if (length > bundle.length - offset - BUNDLED_HEADER_BYTES) {
      throw new ProtocolError("Record bundle ends inside a record");
    }
    offset += BUNDLED_HEADER_BYTES + length;
  }
}

/** How {@link RecordWriter.write} may send a record. */
export interface WriteOptions {
  /**
   * The record may travel sealed in one bundle with the records gathered around it (once the peer
   * has agreed to bundles, and if its payload is at most {@link BUNDLED_PAYLOAD_MAX_BYTES}).
   */
  gather?: boolean;
}

/** Encrypts records for one direction, gathering them into large socket writes. */
export class RecordWriter {
  #sink: ByteSink;
  #key: Uint8Array;
  #iv: Uint8Array;
  #sequence = 0;
  /** The buffer records are sealed into, and the one that may be on the wire. */
  #batch: Uint8Array | undefined;
  #spare: Uint8Array | undefined;
  #used = 0;
  #ended = false;
  #inFlight: Promise<void> | undefined;
  #error: unknown;
  #bundling = false;
  /** Plaintext of the bundle being gathered: records not sealed yet, in the order written. */
  #gathered: Uint8Array | undefined;
  #gatheredBytes = 0;
  #gatheredRecords = 0;
  #unsent = 0;
  #flushSoon: ReturnType<typeof setImmediate> | undefined;

  /** Writes to `sink` with this direction's key and IV. */
  constructor(sink: ByteSink, key: Uint8Array, iv: Uint8Array) {
    checkKeyMaterial(key, iv);
    this.#sink = sink;
    this.#key = key;
    this.#iv = iv;
  }

  /** Records written since the last batch went to the socket (sealed or gathered). */
  get unsent(): number {
    return this.#unsent;
  }

  /**
   * Seals the small records written with `gather` one after another as one
   * {@link RecordType.bundle} from now on: called once the peer has agreed to read them. Records
   * still go out in the order written.
   */
  useBundles(): void {
    this.#bundling = true;
  }

  /**
   * Seals `payload` into one record and queues it; the queue goes out when it passes 1 MiB or on
   * {@link flush}. The payload is copied, so the caller may reuse its buffer at once. A small
   * control or data record written with `gather` (the traffic of many small files), once bundles
   * are on, is only gathered here, and sealed with the records gathered around it when the queue
   * goes out, the bundle is full, or a record that is not gathered comes: every other record keeps
   * its own, as on a connection without bundles.
   */
  async write(type: RecordType, payload: Uint8Array, options: WriteOptions = {}): Promise<void> {
    if (this.#ended) throw new ProtocolError("Cannot write after the end record");
    if (this.#error !== undefined) throw this.#error;
    if (type === RecordType.bundle) throw new TypeError("Bundles are made by the writer itself");
    if (payload.length > MAX_RECORD_PLAINTEXT) {
      throw new RangeError(`Record payload of ${payload.length} bytes exceeds the maximum`);
    }
    this.#unsent++;
    noteRecord();
    if (
      options.gather && this.#bundling && type !== RecordType.end &&
      payload.length <= BUNDLED_PAYLOAD_MAX_BYTES
    ) {
      await this.#gather(type, payload);
      return;
    }
    const length = payload.length + RECORD_TAG_BYTES;
    // Writers that do not wait for each other (a keepalive beside a transfer, answers finished
    // side by side) may fill the batch before it goes out, or gather records meanwhile. Records
    // gathered before this one are sealed first; the checks and the sealing below have no await
    // between them.
    while (true) {
      if (this.#gatheredRecords > 0 && this.#gatheredFit()) this.#sealGathered();
      if (
        this.#gatheredRecords === 0 &&
        this.#used + RECORD_HEADER_BYTES + length <= BATCH_BUFFER_BYTES
      ) break;
      await this.#startBatch();
    }
    if (this.#ended) throw new ProtocolError("Cannot write after the end record");
    this.#seal(type, payload);
    if (type === RecordType.end) this.#ended = true;
    if (this.#used >= WRITE_BATCH_BYTES) await this.#startBatch();
  }

  /** Adds a record to the bundle being gathered, sealing the bundle first when it is full. */
  async #gather(type: RecordType, payload: Uint8Array): Promise<void> {
    const entry = BUNDLED_HEADER_BYTES + payload.length;
    while (this.#gatheredBytes + entry > MAX_RECORD_PLAINTEXT) {
      if (this.#gatheredFit()) this.#sealGathered();
      else await this.#startBatch();
    }
    if (this.#ended) throw new ProtocolError("Cannot write after the end record");
    const gathered = this.#gathered ??= new Uint8Array(MAX_RECORD_PLAINTEXT);
    const at = this.#gatheredBytes;
    writeHeader(gathered, at, type, payload.length);
    gathered.set(payload, at + BUNDLED_HEADER_BYTES);
    this.#gatheredBytes += entry;
    this.#gatheredRecords++;
    if (this.#used + this.#gatheredSealedBytes() >= WRITE_BATCH_BYTES) await this.#startBatch();
  }

  /** Bytes the gathered records take on the wire once sealed (one record alone is not bundled). */
  #gatheredSealedBytes(): number {
    if (this.#gatheredRecords === 0) return 0;
    const plaintext = this.#gatheredRecords === 1
      ? this.#gatheredBytes - BUNDLED_HEADER_BYTES
      : this.#gatheredBytes;
    return RECORD_HEADER_BYTES + plaintext + RECORD_TAG_BYTES;
  }

  /** Whether the gathered records, sealed, fit in the batch buffer now. */
  #gatheredFit(): boolean {
    return this.#used + this.#gatheredSealedBytes() <= BATCH_BUFFER_BYTES;
  }

  /** Seals the gathered records into the batch (the caller checked they fit): one alone as itself. */
  #sealGathered(): void {
    const gathered = this.#gathered!.subarray(0, this.#gatheredBytes);
    if (this.#gatheredRecords === 1) {
      this.#seal(gathered[0]! as RecordType, gathered.subarray(BUNDLED_HEADER_BYTES));
    } else {
      this.#seal(RecordType.bundle, gathered);
    }
    this.#gatheredBytes = 0;
    this.#gatheredRecords = 0;
  }

  /** Seals one record into the batch buffer, which the caller made sure has room for it. */
  #seal(type: RecordType, payload: Uint8Array): void {
    const length = payload.length + RECORD_TAG_BYTES;
    const batch = this.#batch ??= new Uint8Array(BATCH_BUFFER_BYTES);
    writeHeader(batch, this.#used, type, length);
    const header = batch.subarray(this.#used, this.#used + RECORD_HEADER_BYTES);
    const cipher = createCipheriv(
      "chacha20-poly1305",
      this.#key,
      nonceFor(this.#iv, this.#sequence),
      { authTagLength: RECORD_TAG_BYTES },
    );
    cipher.setAAD(header, { plaintextLength: payload.length });
    const ciphertext = cipher.update(payload);
    cipher.final();
    const tag = cipher.getAuthTag();
    this.#sequence++;
    batch.set(ciphertext, this.#used + RECORD_HEADER_BYTES);
    batch.set(tag, this.#used + RECORD_HEADER_BYTES + payload.length);
    this.#used += RECORD_HEADER_BYTES + length;
    releaseBuffer(ciphertext); // copied into the batch
  }

  /**
   * Starts sending the filled batch buffer once the previous one has gone out, and switches to
   * the other buffer. Two buffers alternate, allocated once: one on the wire while the next
   * records are sealed into the other, which overlaps encryption with the socket write and keeps
   * fresh memory (and its page faults) off the hot path. Safe when several callers start batches
   * without waiting for each other: each waits until no batch is on the wire, and records sealed
   * meanwhile go out with the batch they were sealed into, in order.
   */
  async #startBatch(): Promise<void> {
    // The spare buffer is free once nothing is on the wire. No await between this check and the
    // start below: another caller cannot start a batch in between.
    while (this.#inFlight) await this.#awaitInFlight();
    if (this.#error !== undefined) throw this.#error;
    // Gathered records go out with this batch if they fit in it, else with the next one.
    if (this.#gatheredRecords > 0 && this.#gatheredFit()) this.#sealGathered();
    if (this.#used === 0) return;
    const filled = this.#batch!.subarray(0, this.#used);
    // The rejection is kept and rethrown by the next write or flush, never left unhandled.
    this.#inFlight = writeAll(this.#sink, filled).catch((error) => {
      this.#error ??= error;
    });
    [this.#batch, this.#spare] = [this.#spare, this.#batch];
    this.#used = 0;
    this.#unsent = this.#gatheredRecords; // those that did not fit wait for the next batch
  }

  async #awaitInFlight(): Promise<void> {
    while (this.#inFlight) {
      const inFlight = this.#inFlight;
      await inFlight;
      // Another caller may have started the next batch while this one waited.
      if (this.#inFlight === inFlight) this.#inFlight = undefined;
    }
    if (this.#error !== undefined) throw this.#error;
  }

  /** Sends everything queued and waits until the socket has taken it. */
  async flush(): Promise<void> {
    if (this.#flushSoon !== undefined) {
      clearImmediate(this.#flushSoon); // this flush sends what it was set for
      this.#flushSoon = undefined;
    }
    if (this.#error !== undefined) throw this.#error;
    if (this.#used === 0 && this.#gatheredRecords === 0 && !this.#inFlight) return;
    do await this.#startBatch(); while (this.#gatheredRecords > 0);
    await this.#awaitInFlight();
  }

  /**
   * Sends everything queued once the work under way has paused (`setImmediate`: after the I/O
   * this turn of the event loop brought in has been handled) rather than now: answers finished one
   * after another share one bundle and one socket write. About 40 µs later, where a timer of 0 ms
   * would wait 1 to 2 ms. A failure is thrown by the next write or flush.
   */
  flushSoon(): void {
    if (this.#flushSoon !== undefined) return;
    this.#flushSoon = setImmediate(() => {
      this.#flushSoon = undefined;
      this.flush().catch(() => {}); // kept, and thrown by the next write or flush
    });
  }

  /** Writes one record and sends it (with anything queued) at once. */
  async send(type: RecordType, payload: Uint8Array): Promise<void> {
    await this.write(type, payload);
    await this.flush();
  }

  /** Writes the end record and flushes. */
  async end(): Promise<void> {
    if (this.#ended) return;
    await this.write(RecordType.end, new Uint8Array(0));
    await this.flush();
  }
}
