/**
 * The resume rule of PROTOCOL.md §4.1, written once for both directions.
 *
 * The side that receives a file holds the kept bytes of an earlier, cut transfer and **offers**
 * them ({@link offerKeptPrefix}: their length and SHA-256). The side that sends **accepts** the
 * offer only if the same first bytes of its own source hash the same ({@link acceptKeptPrefix});
 * otherwise it starts at 0, without an error. Either way, both sides then continue one hash state
 * from the agreed offset ({@link hashFrom}), so the final SHA-256 covers the kept bytes too.
 *
 * In a `get` the client offers and the server accepts; in a `put` the server offers and the
 * client accepts.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { hashFilePrefix, newSha256, peekHex, type SeekableReader } from "./hashing.ts";

/** The kept bytes a receiver offers to resume from. */
export interface KeptPrefix {
  /** How many bytes are kept (0: nothing to offer). */
  offset: number;
  /** SHA-256 of those bytes, lowercase hex (`""` when nothing is offered). */
  sha256: string;
  /** The hash state after those bytes, to continue from (absent when nothing is offered). */
  hash?: Hash;
}

/** No kept bytes: start from 0. */
export const NOTHING_KEPT: KeptPrefix = { offset: 0, sha256: "" };

/**
 * What a receiver offers: the `kept` bytes of its pending file, when there are some and they do
 * not exceed `limit` (the size of the file being sent, when known).
 *
 * @param hashPrefix Hashes the first `length` kept bytes (a pending file's `hashPrefix`).
 */
export async function offerKeptPrefix(
  kept: number,
  hashPrefix: (length: number) => Promise<Hash>,
  limit = Infinity,
): Promise<KeptPrefix> {
  if (kept <= 0 || kept > limit) return NOTHING_KEPT;
  const hash = await hashPrefix(kept);
  return { offset: kept, sha256: peekHex(hash), hash };
}

/**
 * What a sender makes of an offer: the offset it starts from (the offered one if the first
 * `offer.offset` bytes of `source`, whose size is `size`, hash to `offer.sha256`; else 0) and the
 * hash state after the bytes it skips. Reads `source` from its start; the caller seeks after.
 */
export async function acceptKeptPrefix(
  source: SeekableReader,
  size: number,
  offer: { offset: number; sha256: string },
): Promise<{ offset: number; hash: Hash }> {
  if (offer.offset > 0 && offer.offset <= size && offer.sha256 !== "") {
    const prefix = await hashFilePrefix(source, offer.offset);
    if (peekHex(prefix) === offer.sha256) return { offset: offer.offset, hash: prefix };
  }
  return { offset: 0, hash: newSha256() };
}

/**
 * The receiver's hash state once the sender has chosen `offset`: the kept prefix's state when the
 * offer was taken, a fresh one when the transfer starts from 0.
 */
export function hashFrom(kept: KeptPrefix, offset: number): Hash {
  return offset > 0 && offset === kept.offset && kept.hash ? kept.hash : newSha256();
}
