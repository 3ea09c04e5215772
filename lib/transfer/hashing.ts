/**
 * SHA-256 as transfers use it: a streaming state that can be read without ending it, the hash of
 * a file's first bytes (a kept prefix before a resume, or a whole file for skip-identical), and
 * the time the other side is given while it hashes.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** Size of the blocks read when hashing a kept prefix. */
const HASH_BLOCK_BYTES = 1024 * 1024;

/** The slowest hashing of a kept prefix that is waited for (a slow disk): 16 MiB/s. */
const SLOWEST_HASH_BYTES_PER_SECOND = 16 * 1024 * 1024;

/**
 * Time to give the other side, on top of the idle deadline, while it hashes `bytes` of a kept
 * prefix before it answers: resuming a large file from a slow disk is not a stalled peer.
 */
export function hashAllowanceMs(bytes: number): number {
  return Math.ceil((bytes / SLOWEST_HASH_BYTES_PER_SECOND) * 1000);
}

/** A fresh SHA-256 state. */
export function newSha256(): Hash {
  return createHash("sha256");
}

/** Hex digest of a hash state without ending it (the state can keep growing). */
export function peekHex(hash: Hash): string {
  return hash.copy().digest("hex");
}

/** A file opened for reading, as {@link hashFilePrefix} needs it. */
export interface SeekableReader {
  /** Reads into `buffer`; resolves with the count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Moves the read position. */
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
}

/**
 * Hashes the first `length` bytes of an open file, reading from its start.
 * Needs no permission beyond the open handle.
 *
 * @throws {Error} If the file ends before `length` bytes.
 */
export async function hashFilePrefix(file: SeekableReader, length: number): Promise<Hash> {
  const hash = newSha256();
  const block = new Uint8Array(Math.min(HASH_BLOCK_BYTES, Math.max(length, 1)));
  await file.seek(0, Deno.SeekMode.Start);
  let remaining = length;
  while (remaining > 0) {
    const count = await file.read(block.subarray(0, Math.min(block.length, remaining)));
    if (count === null) throw new Error("File ended before the expected length");
    hash.update(block.subarray(0, count));
    remaining -= count;
  }
  return hash;
}
