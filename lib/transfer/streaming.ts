/**
 * Overlapping disk I/O with the CPU work of a transfer.
 *
 * File reads and writes run on Deno's thread pool; awaiting each one before encrypting or
 * decrypting the next record leaves both cores idle half the time. {@link readAhead} keeps the
 * next block's read in flight while the current block is hashed and sealed, and
 * {@link WriteBehind} lets received records be decrypted and hashed while earlier ones are still
 * being written, with a bound on the bytes in flight so memory stays flat.
 *
 * @module
 */
import type { SeekableReader } from "./hashing.ts";

/** Bytes read from disk per block by {@link readAhead}. */
export const READ_BLOCK_BYTES = 1024 * 1024;

/**
 * Yields the bytes of `file` from its current position up to `length` bytes, in blocks of
 * `blockBytes`, with the next block's read already started while the caller handles the current
 * one. Two buffers alternate, so a yielded block stays valid only until the next one is
 * requested. Ends early (short) if the file ends before `length` bytes.
 */
export async function* readAhead(
  file: Pick<SeekableReader, "read">,
  length: number,
  blockBytes = READ_BLOCK_BYTES,
): AsyncGenerator<Uint8Array> {
  const size = Math.max(1, Math.min(blockBytes, length));
  const buffers = [new Uint8Array(size), new Uint8Array(size)];
  let which = 0;
  let remaining = length;
  const readInto = async (buffer: Uint8Array, want: number): Promise<Uint8Array | null> => {
    let filled = 0;
    while (filled < want) {
      const count = await file.read(buffer.subarray(filled, want));
      if (count === null) break;
      filled += count;
    }
    return filled === 0 ? null : buffer.subarray(0, filled);
  };
  let pending: Promise<Uint8Array | null> | undefined = remaining > 0
    ? readInto(buffers[which]!, Math.min(blockBytes, remaining))
    : undefined;
  try {
    while (pending) {
      const block = await pending;
      if (block === null) return;
      remaining -= block.length;
      which ^= 1;
      pending = remaining > 0 && block.length > 0
        ? readInto(buffers[which]!, Math.min(blockBytes, remaining))
        : undefined;
      yield block;
    }
  } finally {
    // The caller stopped early (say, the peer hung up): let the read in flight settle before the
    // caller closes the file, so its rejection is neither unhandled nor fatal to the process.
    await pending?.catch(() => {});
  }
}

/**
 * Writes chunks to a sink in order without making the caller wait for each write, up to
 * `maxInFlightBytes`. The first write error is thrown by the next {@link push} or by
 * {@link drain}. Chunks must not be modified after they are pushed.
 */
export class WriteBehind {
  #write: (chunk: Uint8Array) => Promise<void>;
  #maxInFlight: number;
  #queue: { done: Promise<void>; bytes: number }[] = [];
  #inFlight = 0;
  #error: unknown;
  #failed = false;

  /** Writes through `write`, holding at most `maxInFlightBytes` unwritten. */
  constructor(write: (chunk: Uint8Array) => Promise<void>, maxInFlightBytes = 2 * 1024 * 1024) {
    this.#write = write;
    this.#maxInFlight = maxInFlightBytes;
  }

  /** Queues `chunk`; waits only while too many bytes are still unwritten. */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.#failed) throw this.#error;
    const previous = this.#queue.at(-1)?.done ?? Promise.resolve();
    const done = previous.then(async () => {
      if (this.#failed) return;
      try {
        await this.#write(chunk);
      } catch (error) {
        this.#failed = true;
        this.#error = error;
      }
    });
    this.#queue.push({ done, bytes: chunk.length });
    this.#inFlight += chunk.length;
    while (this.#inFlight > this.#maxInFlight) {
      const oldest = this.#queue.shift()!;
      await oldest.done;
      this.#inFlight -= oldest.bytes;
    }
    if (this.#failed) throw this.#error;
  }

  /** Waits until everything queued is written; throws the first write error. */
  async drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const oldest = this.#queue.shift()!;
      await oldest.done;
      this.#inFlight -= oldest.bytes;
    }
    if (this.#failed) throw this.#error;
  }
}
