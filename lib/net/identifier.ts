/**
 * A server's public identifier: the short name in front of a connection code's secret (issue 14
 * calls it the nameplate), four Crockford base32 symbols such as `K7QD`. It carries no bit of the
 * secret, so it may travel in the clear: LAN announcements and the relay carry nothing else.
 *
 * This module treats an identifier as an opaque string and only checks its shape, so that the
 * network code does not depend on how codes are parsed; the code module decides how an identifier
 * is written by people (case, look-alike letters) and hands it here in canonical form.
 *
 * @module
 */

/** The canonical form: four uppercase Crockford base32 symbols (no I, L, O or U). */
export const IDENTIFIER_PATTERN: RegExp = /^[0-9A-HJKMNP-TV-Z]{4}$/;

/** Bytes an identifier takes on the wire: its four ASCII symbols. */
export const IDENTIFIER_BYTES = 4;

/** Whether `text` is an identifier in canonical form. Needs no permissions. */
export function isIdentifier(text: string): boolean {
  return IDENTIFIER_PATTERN.test(text);
}

/**
 * `identifier` as its four ASCII bytes. Throws a `TypeError` for anything else (a caller's bug:
 * identifiers are checked where they enter).
 *
 * @example
 * ```ts
 * import { encodeIdentifier } from "./identifier.ts";
 * if (encodeIdentifier("K7QD").join() !== "75,55,81,68") throw new Error("encodeIdentifier");
 * ```
 */
export function encodeIdentifier(identifier: string): Uint8Array {
  if (!isIdentifier(identifier)) {
    throw new TypeError(`Not a server identifier: ${JSON.stringify(identifier.slice(0, 16))}`);
  }
  return new TextEncoder().encode(identifier);
}

/**
 * The identifier in four bytes received from the network, or `undefined` when they are not one
 * (lowercase, a look-alike letter, a control byte: the sender is refused, nothing is guessed).
 */
export function decodeIdentifier(bytes: Uint8Array): string | undefined {
  if (bytes.length !== IDENTIFIER_BYTES) return undefined;
  const text = String.fromCharCode(...bytes);
  return isIdentifier(text) ? text : undefined;
}
