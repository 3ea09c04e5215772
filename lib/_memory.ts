/**
 * Keeps memory flat while records stream through.
 *
 * `node:crypto` returns every sealed or opened record in a new buffer, so a 1 GiB transfer
 * allocates 1 GiB of short-lived buffers. V8 reclaims such external memory lazily, only after
 * tens of megabytes have piled up, which more than doubled ferry's resident memory (about 130 MB
 * instead of 55 MB for one transfer, measured on Deno 2.9.6). Once a large buffer has been used
 * up, {@link releaseBuffer} hands its memory back at once by transferring it to a zero-length
 * `ArrayBuffer` (ES2024 `ArrayBuffer.prototype.transfer`), which detaches it: no garbage collection
 * is needed, and it measured slightly faster than leaving the buffers to the collector. (Forcing
 * collections instead cost about 7 ms each, which at one per 2 MiB cut throughput by a factor of 4.)
 *
 * @module
 */

/** Buffers smaller than this are left to the garbage collector. */
export const RELEASE_MIN_BYTES = 64 * 1024;

/**
 * Frees the memory behind `view` now. Only for a view that owns its whole `ArrayBuffer` (as the
 * buffers `node:crypto` returns do) and that nothing will read again: afterwards the view is
 * empty. Views into shared or pooled buffers, and small ones, are left alone.
 */
export function releaseBuffer(view: Uint8Array): void {
  const buffer = view.buffer;
  if (
    buffer instanceof ArrayBuffer && !buffer.detached && view.byteOffset === 0 &&
    view.byteLength === buffer.byteLength && buffer.byteLength >= RELEASE_MIN_BYTES
  ) {
    buffer.transfer(0);
  }
}

/**
 * Records sealed or opened between two full collections, when the runtime lets ferry ask for one
 * (see {@link noteRecord}).
 */
export const RECORDS_PER_COLLECTION = 4096;

let records = 0;

/**
 * Counts one record written or read (alone or in a bundle), and every
 * {@link RECORDS_PER_COLLECTION} asks V8 for a full garbage collection, if the process runs with
 * `--v8-flags=--expose-gc` (as every documented command does; without it this only counts). A
 * record sealed alone needs a fresh `node:crypto` cipher: a stream object with a native cipher
 * context behind it, whose memory V8 does not see, so thousands of them pile up before a
 * collection comes by itself; and each small file's records leave their share of garbage that V8
 * lets grow for a long while. Measured on a download of 5000 files of 1 KiB (about 20,000
 * records): peak RSS 70-71 MB, against 72-73 MB collecting every 8192 records and 75-79 MB never;
 * counting only cipher calls once small records travelled in bundles, 79.8 MB. Each collection
 * takes a few milliseconds, and a 1 GiB file's 4096 records need one.
 */
export function noteRecord(): void {
  if (++records % RECORDS_PER_COLLECTION !== 0) return;
  const collect = (globalThis as { gc?: () => void }).gc;
  if (typeof collect === "function") collect();
}
