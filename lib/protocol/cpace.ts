/**
 * CPace primitives for ferry's handshake: the only place in ferry that does curve or key math.
 *
 * Implements the suite CPACE-RISTR255-SHA512 of draft-irtf-cfrg-cpace-21
 * (https://datatracker.ietf.org/doc/draft-irtf-cfrg-cpace/), with the client as initiator (A)
 * and the server as responder (B):
 *
 * 1. Both parties derive a secret generator from the password-related string PRS, the channel
 *    identifier CI and the session id sid:
 *    `g = derive_to_curve(SHA-512(lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid)))`, where
 *    `derive_to_curve` is the RFC 9496 one-way map and the zero padding puts PRS in the first
 *    SHA-512 block (`s_in_bytes` = 128).
 * 2. Each party picks a random scalar y and sends `Y = y·g` ({@link createShare}).
 * 3. Each computes `K = y·Y_peer`, aborting if the peer's point does not decode or K is the
 *    identity ({@link sharedSecret}).
 * 4. `ISK = SHA-512(lv_cat(DSI || "_ISK", sid, K) || transcript_ir(Ya, ADa, Yb, ADb))`
 *    ({@link intermediateSessionKey}).
 * 5. Explicit key confirmation with HMAC-SHA512 tags ({@link confirmationTags}), then traffic
 *    keys by HKDF-SHA512 ({@link deriveTrafficKeys}).
 *
 * The primitives themselves (SHA-512, HMAC, HKDF, ristretto255) come from `lib/deps.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   confirmationTags,
 *   constantTimeEqual,
 *   createShare,
 *   FERRY_CI,
 *   intermediateSessionKey,
 *   sharedSecret,
 * } from "./cpace.ts";
 *
 * const prs = new TextEncoder().encode("7-purple-sausages");
 * const sid = crypto.getRandomValues(new Uint8Array(32));
 * const ad = new Uint8Array(0);
 * const a = createShare(prs, FERRY_CI, sid);
 * const b = createShare(prs, FERRY_CI, sid);
 * const iskA = intermediateSessionKey(sid, sharedSecret(a, b.point), a.point, ad, b.point, ad);
 * const iskB = intermediateSessionKey(sid, sharedSecret(b, a.point), a.point, ad, b.point, ad);
 * assert.ok(constantTimeEqual(iskA, iskB));
 * const tagsA = confirmationTags(sid, iskA, a.point, ad, b.point, ad);
 * const tagsB = confirmationTags(sid, iskB, a.point, ad, b.point, ad);
 * assert.ok(constantTimeEqual(tagsA.tb, tagsB.tb));
 * ```
 *
 * @module
 */

import { concatBytes, hkdf, hmac, ristretto255, ristretto255_hasher, sha512 } from "../deps.ts";
import { ProtocolError } from "../errors.ts";

const encoder = new TextEncoder();
const Point = ristretto255.Point;
const Fn = Point.Fn;

/** Input block size of SHA-512 in bytes (`s_in_bytes` in the draft). */
const SHA512_BLOCK_BYTES = 128;
/** Length of an encoded ristretto255 element and of an encoded scalar. */
const ELEMENT_BYTES = 32;

/** Domain separation identifier of the suite CPACE-RISTR255-SHA512: `"CPaceRistretto255"`. */
export const CPACE_DSI: Uint8Array = encoder.encode("CPaceRistretto255");

/** `DSI || "_ISK"`, the label of the intermediate session key hash. */
const DSI_ISK = concatBytes(CPACE_DSI, encoder.encode("_ISK"));
/** Prefix of the MAC key hash in explicit key confirmation. */
const MAC_LABEL = encoder.encode("CPaceMac");
/** Prefix of `o_cat` outputs. */
const OC_PREFIX = encoder.encode("oc");

/**
 * Prefixes `data` with its length as an unsigned LEB128 integer (`prepend_len` in the draft):
 * seven bits per byte, least significant group first, high bit set on every byte but the last.
 */
export function prependLen(data: Uint8Array): Uint8Array {
  const prefix: number[] = [];
  let length = data.length;
  do {
    let byte = length & 0x7f;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    prefix.push(byte);
  } while (length > 0);
  return concatBytes(Uint8Array.from(prefix), data);
}

/** Concatenates the length-prefixed parts (`lv_cat` in the draft): `prependLen(p1) || prependLen(p2) || …`. */
export function lvCat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(...parts.map(prependLen));
}

/** `true` when `a` is greater than `b` in lexicographic byte order (a proper prefix is smaller). */
function lexicographicallyLarger(a: Uint8Array, b: Uint8Array): boolean {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x > y;
  }
  return a.length > b.length;
}

/**
 * Ordered concatenation (`o_cat` in the draft): `"oc" || larger || smaller`, so that both
 * parties get the same string whichever order they pass the two inputs in.
 */
export function oCat(a: Uint8Array, b: Uint8Array): Uint8Array {
  return lexicographicallyLarger(a, b)
    ? concatBytes(OC_PREFIX, a, b)
    : concatBytes(OC_PREFIX, b, a);
}

/**
 * Transcript for the initiator-responder setting (`transcript_ir`):
 * `lv_cat(Ya, ADa) || lv_cat(Yb, ADb)`. Ferry uses this one.
 */
export function transcriptIr(
  ya: Uint8Array,
  ada: Uint8Array,
  yb: Uint8Array,
  adb: Uint8Array,
): Uint8Array {
  return concatBytes(lvCat(ya, ada), lvCat(yb, adb));
}

/**
 * Transcript for the symmetric setting (`transcript_oc`): `o_cat(lv_cat(Ya, ADa), lv_cat(Yb, ADb))`.
 * Provided for completeness and the draft's vectors; ferry's handshake uses {@link transcriptIr}.
 */
export function transcriptOc(
  ya: Uint8Array,
  ada: Uint8Array,
  yb: Uint8Array,
  adb: Uint8Array,
): Uint8Array {
  return oCat(lvCat(ya, ada), lvCat(yb, adb));
}

/**
 * The string hashed into the generator (`generator_string` with `s_in_bytes` = 128 for SHA-512):
 * `lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid)` where
 * `len_zpad = max(0, 128 - len(prepend_len(PRS)) - len(prepend_len(DSI)) - 1)`.
 */
export function generatorString(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  const zpadLength = Math.max(
    0,
    SHA512_BLOCK_BYTES - prependLen(prs).length - prependLen(CPACE_DSI).length - 1,
  );
  return lvCat(CPACE_DSI, prs, new Uint8Array(zpadLength), ci, sid);
}

/** The secret generator as a point: the RFC 9496 one-way map of SHA-512(generator string). */
function generatorPoint(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array) {
  // Optional in noble's shared hasher type; always present for ristretto255 (RFC 9496 §4.3.4).
  if (ristretto255_hasher.deriveToCurve === undefined) {
    throw new Error("Cannot derive generator: ristretto255 one-way map is missing");
  }
  return ristretto255_hasher.deriveToCurve(sha512(generatorString(prs, ci, sid)));
}

/** The secret generator g (`calculate_generator`), encoded in 32 bytes. */
export function calculateGenerator(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  return generatorPoint(prs, ci, sid).toBytes();
}

/**
 * One party's ephemeral share. `scalar` injectable for known-answer tests (32-byte
 * little-endian), random otherwise (the hasher's `hashToScalar` over 64 random bytes from
 * `crypto.getRandomValues`). Keep `scalar` secret and discard the share after the handshake.
 */
export interface CpaceShare {
  /** The secret scalar y, in [1, group order). */
  readonly scalar: bigint;
  /** The public share Y = y·g, 32 bytes, sent to the peer. */
  readonly point: Uint8Array;
}

/** Decodes an injected 32-byte little-endian scalar, which must be canonical and non-zero. */
function decodeScalar(bytes: Uint8Array): bigint {
  if (bytes.length !== ELEMENT_BYTES) {
    throw new RangeError(`Cannot use scalar: expected ${ELEMENT_BYTES} bytes, got ${bytes.length}`);
  }
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  if (value === 0n || value >= Fn.ORDER) {
    throw new RangeError("Cannot use scalar: not in [1, group order)");
  }
  return value;
}

/** A uniformly random non-zero scalar. */
function randomScalar(): bigint {
  for (;;) {
    const scalar = ristretto255_hasher.hashToScalar(crypto.getRandomValues(new Uint8Array(64)));
    if (scalar !== 0n) return scalar;
  }
}

/**
 * Creates one party's share `Y = y·g` for the generator of `prs`, `ci` and `sid`.
 *
 * @param scalar For known-answer tests only: y as 32 bytes little-endian. Random when omitted.
 * @throws {RangeError} If `scalar` is given but is not 32 bytes or not in [1, group order).
 */
export function createShare(
  prs: Uint8Array,
  ci: Uint8Array,
  sid: Uint8Array,
  scalar?: Uint8Array,
): CpaceShare {
  const y = scalar === undefined ? randomScalar() : decodeScalar(scalar);
  return { scalar: y, point: generatorPoint(prs, ci, sid).multiply(y).toBytes() };
}

/**
 * `scalar_mult_vfy`: decodes the peer's point, multiplies it by our scalar and returns
 * K encoded (32 bytes).
 *
 * @throws {ProtocolError} If the peer's point does not decode, or K is the identity (which
 * includes a peer point of 32 zero bytes: noble decodes that to the identity without throwing).
 */
export function sharedSecret(own: CpaceShare, peerPoint: Uint8Array): Uint8Array {
  let peer;
  try {
    if (peerPoint.length !== ELEMENT_BYTES) throw new RangeError("wrong length");
    peer = Point.fromBytes(peerPoint);
  } catch (cause) {
    throw new ProtocolError("Cannot complete handshake: peer's share is not a valid point", {
      cause,
    });
  }
  const k = peer.multiply(own.scalar);
  if (k.is0()) {
    throw new ProtocolError("Cannot complete handshake: peer's share gives the identity");
  }
  return k.toBytes();
}

/**
 * ISK for initiator-responder ordering:
 * `SHA-512(lv_cat(DSI || "_ISK", sid, K) || transcript_ir(Ya, ADa, Yb, ADb))`.
 */
export function intermediateSessionKey(
  sid: Uint8Array,
  k: Uint8Array,
  ya: Uint8Array,
  ada: Uint8Array,
  yb: Uint8Array,
  adb: Uint8Array,
): Uint8Array {
  return sha512(concatBytes(lvCat(DSI_ISK, sid, k), transcriptIr(ya, ada, yb, adb)));
}

/**
 * Explicit key confirmation: `mac_key = SHA-512("CPaceMac" || sid || ISK)`;
 * `Ta = HMAC-SHA512(mac_key, lv_cat(Ya, ADa))`; `Tb = HMAC-SHA512(mac_key, lv_cat(Yb, ADb))`.
 * Compare a received tag with {@link constantTimeEqual}; on mismatch the caller raises
 * `AuthenticationError`.
 */
export function confirmationTags(
  sid: Uint8Array,
  isk: Uint8Array,
  ya: Uint8Array,
  ada: Uint8Array,
  yb: Uint8Array,
  adb: Uint8Array,
): { ta: Uint8Array; tb: Uint8Array } {
  const macKey = sha512(concatBytes(MAC_LABEL, sid, isk));
  return {
    ta: hmac(sha512, macKey, lvCat(ya, ada)),
    tb: hmac(sha512, macKey, lvCat(yb, adb)),
  };
}

/** Keys and IVs of the two record directions (c2s = client to server, s2c = server to client). */
export interface TrafficKeys {
  /** ChaCha20-Poly1305 key for records the client sends, 32 bytes. */
  c2sKey: Uint8Array;
  /** IV (nonce base) for records the client sends, 12 bytes. */
  c2sIv: Uint8Array;
  /** ChaCha20-Poly1305 key for records the server sends, 32 bytes. */
  s2cKey: Uint8Array;
  /** IV (nonce base) for records the server sends, 12 bytes. */
  s2cIv: Uint8Array;
}

/**
 * Traffic keys: HKDF-SHA512(IKM = ISK, salt = sid), infos `"ferry/2 c2s key"` (32 bytes),
 * `"ferry/2 c2s iv"` (12), `"ferry/2 s2c key"` (32), `"ferry/2 s2c iv"` (12), where `ferry/2`
 * names the protocol version (`ferry/1` for a version 1 server: see {@link ferryLabel}).
 */
export function deriveTrafficKeys(
  isk: Uint8Array,
  sid: Uint8Array,
  label: string = ferryLabel(2),
): TrafficKeys {
  const expand = (info: string, length: number) =>
    hkdf(sha512, isk, sid, encoder.encode(`${label} ${info}`), length);
  return {
    c2sKey: expand("c2s key", 32),
    c2sIv: expand("c2s iv", 12),
    s2cKey: expand("s2c key", 32),
    s2cIv: expand("s2c iv", 12),
  };
}

/**
 * Compares two byte strings in time that depends only on their lengths, not their contents.
 * Strings of different lengths are unequal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** The label of protocol `version` in the channel identifier and the HKDF infos: `ferry/2`. */
export function ferryLabel(version: number): string {
  return `ferry/${version}`;
}

/** Ferry's channel identifier for protocol `version`: `lv_cat("ferry/2", "client", "server")`. */
export function ferryChannelIdentifier(version: number): Uint8Array {
  return lvCat(
    encoder.encode(ferryLabel(version)),
    encoder.encode("client"),
    encoder.encode("server"),
  );
}

/** Ferry's channel identifier CI (protocol version 2): `lv_cat("ferry/2", "client", "server")`. */
export const FERRY_CI: Uint8Array = ferryChannelIdentifier(2);
