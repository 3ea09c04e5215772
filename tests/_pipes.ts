/**
 * In-memory byte streams for testing the secure channel without sockets.
 *
 * A {@link BytePipe} is one direction: what is written to it can be read from it, in order. It
 * records every write as it was sent ({@link BytePipe.sent}, an eavesdropper's view) and can pass
 * each write through a {@link Tamper} function that modifies, drops or holds back bytes before the
 * reader sees them; {@link BytePipe.inject} delivers bytes nobody wrote (reordering, replay) and
 * {@link BytePipe.close} ends the stream (truncation). {@link duplexPair} joins two pipes into a
 * connection whose two ends look like a `Deno.Conn` to the record layer and the handshake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BytePipe } from "./_pipes.ts";
 *
 * const pipe = new BytePipe({ tamper: (chunk) => chunk.map((byte) => byte ^ 1) });
 * await pipe.write(Uint8Array.of(1, 2));
 * const buffer = new Uint8Array(8);
 * assert.equal(await pipe.read(buffer), 2);
 * assert.deepEqual(buffer.subarray(0, 2), Uint8Array.of(0, 3));
 * assert.deepEqual(pipe.sent, Uint8Array.of(1, 2));
 * ```
 *
 * @module
 */
import { concatBytes } from "../lib/deps.ts";
import type { ByteSink, ByteSource } from "../lib/protocol/framing.ts";

/**
 * Sees each write on its way: `chunk` (a copy the function may change), `offset` = where it starts
 * in the stream as sent. Returns the bytes to deliver instead (empty to drop them).
 */
export type Tamper = (chunk: Uint8Array, offset: number) => Uint8Array;

/** Options of a {@link BytePipe}. */
export interface PipeOptions {
  /** Changes bytes in flight (see {@link Tamper}). */
  tamper?: Tamper;
  /** Hand at most this many bytes to each `read()` (default: as many as fit). */
  maxRead?: number;
  /** Accept at most this many bytes per `write()`, like a socket's partial write (default: all). */
  maxWrite?: number;
}

/** One direction of an in-memory stream, with a record of what was sent. */
export class BytePipe implements ByteSource, ByteSink {
  /** Every accepted `write()` as the writer sent it, one entry per call. */
  readonly writes: Uint8Array[] = [];
  /** How many times `read()` was called. */
  readCalls = 0;
  #options: PipeOptions;
  #queue: Uint8Array[] = [];
  #sentBytes = 0;
  #delivered: Uint8Array[] = [];
  #closed = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(options: PipeOptions = {}) {
    this.#options = options;
  }

  /** Everything written so far, as sent (before tampering): the eavesdropper's transcript. */
  get sent(): Uint8Array {
    return concat(this.writes);
  }

  /** Everything handed to the reader's side so far (after tampering and injections). */
  get delivered(): Uint8Array {
    return concat(this.#delivered);
  }

  /** Bytes waiting to be read. */
  get pending(): number {
    return this.#queue.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** `true` once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Copies `buffer` (or its first `maxWrite` bytes) into the pipe. Rejects once closed. */
  write(buffer: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BrokenPipe("Pipe is closed"));
    const count = Math.min(buffer.length, this.#options.maxWrite ?? Infinity);
    const chunk = buffer.slice(0, count);
    this.writes.push(chunk.slice());
    const offset = this.#sentBytes;
    this.#sentBytes += count;
    this.#deliver(this.#options.tamper === undefined ? chunk : this.#options.tamper(chunk, offset));
    return Promise.resolve(count);
  }

  /** Delivers `bytes` to the reader as if they had been written, but without recording them as sent. */
  inject(bytes: Uint8Array): void {
    this.#deliver(bytes.slice());
  }

  /** Waits for bytes; `null` once the pipe is closed and drained. */
  async read(buffer: Uint8Array): Promise<number | null> {
    this.readCalls++;
    while (this.#queue.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#closed) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const head = this.#queue[0]!;
    const count = Math.min(head.length, buffer.length, this.#options.maxRead ?? Infinity);
    buffer.set(head.subarray(0, count));
    if (count === head.length) this.#queue.shift();
    else this.#queue[0] = head.subarray(count);
    return count;
  }

  /** Ends the stream: the reader gets what is queued, then `null`; writes are refused. */
  close(): void {
    this.#closed = true;
    this.#wakeReader();
  }

  /** Makes the reader's next `read()` (once the queue is drained) reject with `error`. */
  fail(error: Error): void {
    this.#error = error;
    this.#wakeReader();
  }

  #deliver(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#queue.push(bytes);
    this.#delivered.push(bytes);
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** One end of a {@link duplexPair}: reads what the other end writes, and the reverse. */
export interface PipeEnd extends ByteSource, ByteSink {
  /** Closes both directions, like closing a socket. */
  close(): void;
}

/** A connection made of two pipes. */
export interface DuplexPair {
  /** One end (in the handshake tests: the client). */
  a: PipeEnd;
  /** The other end (the server). */
  b: PipeEnd;
  /** Bytes written by `a`, read by `b`. */
  aToB: BytePipe;
  /** Bytes written by `b`, read by `a`. */
  bToA: BytePipe;
}

/** An in-memory connection; `options` apply to each direction. */
export function duplexPair(
  options: { aToB?: PipeOptions; bToA?: PipeOptions } = {},
): DuplexPair {
  const aToB = new BytePipe(options.aToB);
  const bToA = new BytePipe(options.bToA);
  const end = (incoming: BytePipe, outgoing: BytePipe): PipeEnd => ({
    read: (buffer) => incoming.read(buffer),
    write: (buffer) => outgoing.write(buffer),
    close() {
      incoming.close();
      outgoing.close();
    },
  });
  return { a: end(bToA, aToB), b: end(aToB, bToA), aToB, bToA };
}

/** A closed pipe holding `bytes`: reads hand them out (in `maxRead` pieces), then `null`. */
export function sourceOf(bytes: Uint8Array, options: PipeOptions = {}): BytePipe {
  const pipe = new BytePipe(options);
  pipe.inject(bytes);
  pipe.close();
  return pipe;
}

/** Concatenates byte arrays (noble's `concatBytes`, taking a list). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...parts);
}

/** `true` when `needle` (non-empty) occurs anywhere in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) throw new RangeError("Cannot search for an empty byte string");
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}
