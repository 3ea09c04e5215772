/**
 * The body of one file on the wire, for both sides: {@link sendBody} turns a source into data
 * records, {@link receiveBody} turns data records back into writes, with the exact-length checks
 * of PROTOCOL.md §4 in one place. The server's `get` and the client's `upload` send with the same
 * loop; the server's `put` and the client's `download` receive with the same loop.
 *
 * Both stream in constant memory: the sender reads ahead one block while it seals the current
 * one, the receiver writes behind while it opens the next record, and every opened record's
 * memory is handed back as soon as it is written.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { releaseBuffer } from "../_memory.ts";
import { ProtocolError } from "../errors.ts";
import { MAX_RECORD_PLAINTEXT, type ReceivedRecord, RecordType } from "../protocol/framing.ts";
import { type ByteReader, readAhead, WriteBehind } from "./streaming.ts";

/** Where records go: the writing half of a secure channel. */
export interface RecordWriter {
  /** Seals `payload` into one record of `type` and queues it. */
  write(type: RecordType, payload: Uint8Array): Promise<void>;
}

/** What {@link sendBody} needs. */
export interface SendBodyOptions {
  /** The file, already positioned at the first byte to send. */
  source: ByteReader;
  /** Bytes to send. */
  length: number;
  /** The channel's writer. */
  writer: RecordWriter;
  /** Updated with every byte sent, when the transfer is hashed. */
  hash?: Hash;
  /** Called after each record with the bytes sent so far (progress, stall deadlines). */
  onSent?: (sent: number) => void;
  /** Checked before each record; `true` stops sending (the peer answered mid-stream). */
  stopped?: () => boolean;
}

/**
 * Sends `length` bytes of `source` as data records of at most {@link MAX_RECORD_PLAINTEXT} bytes.
 * Returns the bytes sent: fewer than `length` when the source ended early (it shrank) or
 * `stopped` said so; the caller decides what that means.
 */
export async function sendBody(options: SendBodyOptions): Promise<number> {
  const { writer, hash, onSent, stopped } = options;
  let sent = 0;
  for await (const block of readAhead(options.source, options.length)) {
    for (let start = 0; start < block.length; start += MAX_RECORD_PLAINTEXT) {
      if (stopped?.()) return sent;
      const chunk = block.subarray(start, Math.min(block.length, start + MAX_RECORD_PLAINTEXT));
      hash?.update(chunk);
      await writer.write(RecordType.data, chunk);
      sent += chunk.length;
      onSent?.(sent);
    }
  }
  return sent;
}

/** A write of received bytes failed (disk full, I/O error): the cause says why. */
export class BodyWriteError extends Error {
  /** Wraps the write's own error as `cause`. */
  constructor(cause: unknown) {
    super("Writing the received bytes failed", { cause });
    this.name = "BodyWriteError";
  }
}

/** What {@link receiveBody} needs; `T` is what the closing record means to the caller. */
export interface ReceiveBodyOptions<T> {
  /** The next record from the channel. */
  next: () => Promise<ReceivedRecord>;
  /** Bytes already present before the body (a resumed transfer's kept prefix). */
  from: number;
  /** The whole file's announced size. */
  size: number;
  /** Stores one chunk; it owns the chunk afterwards (its memory is released once written). */
  write: (chunk: Uint8Array) => Promise<void>;
  /** Updated with every byte received, when the transfer is hashed. */
  hash?: Hash;
  /** Called after each record with the bytes present so far (kept prefix included). */
  onReceived?: (present: number) => void;
  /**
   * Reads the record that closes the body (the first one that is not data) and returns what it
   * says, or throws when it is not the expected closing message: checked before the length, so a
   * request in the middle of a body is reported as such.
   */
  end: (record: ReceivedRecord) => T;
  /** Who sends, for error messages: `"Upload"`, `"The server"`. */
  sender: string;
}

/**
 * Receives data records up to the first other record, reads it with `end` and returns what that
 * gives, once every write has landed. Checks that exactly `size - from` bytes came: more ends the
 * transfer as soon as it happens, fewer when the closing record arrives ({@link ProtocolError}
 * either way). A failed write is thrown as {@link BodyWriteError}, so the caller can tell its disk
 * from its peer.
 */
export async function receiveBody<T>(options: ReceiveBodyOptions<T>): Promise<T> {
  const { size, hash, onReceived, sender } = options;
  const sink = new WriteBehind((chunk) => options.write(chunk).then(() => releaseBuffer(chunk)));
  const pushed = (chunk: Uint8Array) =>
    sink.push(chunk).catch((error) => {
      throw new BodyWriteError(error);
    });
  let present = options.from;
  try {
    while (true) {
      const record = await options.next();
      if (record.type !== RecordType.data) {
        const closing = options.end(record);
        if (present !== size) {
          throw new ProtocolError(`${sender} sent ${present} of ${size} bytes`);
        }
        await sink.drain().catch((error) => {
          throw new BodyWriteError(error);
        });
        return closing;
      }
      present += record.payload.length;
      if (present > size) {
        throw new ProtocolError(`${sender} sent more than the ${size} bytes announced`);
      }
      hash?.update(record.payload);
      await pushed(record.payload);
      onReceived?.(present);
    }
  } finally {
    // Bytes received before a failure land before the caller keeps or discards the file.
    await sink.drain().catch(() => {});
  }
}
