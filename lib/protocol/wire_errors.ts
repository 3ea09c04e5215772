/**
 * The reason codes a server puts in an `error` message: one list, its type, and the rule for a code
 * this side does not know.
 *
 * The list is the protocol's, in the order of `docs/PROTOCOL.md` §4.2 (a test keeps the two in
 * step). A client decodes any other code as {@link FALLBACK_WIRE_ERROR_CODE} (`error`, a generic
 * failure) rather than refusing the message: a newer server may add codes, and an unknown code
 * still ends only the request it answers, its text still shown (escaped) to the user. Mapping it
 * also keeps a hostile server from passing off a client-side code such as `auth` or `protocol`
 * (which decide nothing here, but appear in `--json` output) as its own.
 *
 * This module imports nothing, so any layer can name the codes without an import cycle.
 *
 * @example Compare a refusal with a code the compiler checks
 * ```ts
 * import assert from "node:assert/strict";
 * import { toWireErrorCode, WireError } from "./wire_errors.ts";
 *
 * assert.equal(toWireErrorCode("exists"), WireError.exists);
 * assert.equal(toWireErrorCode("quota-exceeded"), "error");
 * ```
 *
 * @module
 */

/** Every code a server sends in an `error` message, in the order of `docs/PROTOCOL.md` §4.2. */
export const WIRE_ERROR_CODES = [
  "not-found",
  "invalid-path",
  "exists",
  "is-dir",
  "read-only",
  "upload-only",
  "too-large",
  "busy",
  "integrity",
  "changed",
  "permission",
  "disk-full",
  "io",
  "error",
] as const;

/** One of {@link WIRE_ERROR_CODES}: the machine-readable reason of an `error` message. */
export type WireErrorCode = typeof WIRE_ERROR_CODES[number];

/**
 * Each wire error code under a name, for comparisons the compiler checks
 * (`error.code === WireError.exists`).
 */
export const WireError = {
  /** The path names nothing. */
  notFound: "not-found",
  /** The path or name is refused, leads outside the folder, or is not a folder where one is needed. */
  invalidPath: "invalid-path",
  /** The target exists and `force` was not given, or is a folder or a link. */
  exists: "exists",
  /** `get` of a folder. */
  isDir: "is-dir",
  /** `put` or `mkdir` on a read-only server. */
  readOnly: "read-only",
  /** `list`, `get`, or `put` with `force`, on an upload-only server. */
  uploadOnly: "upload-only",
  /** `put` of more than the server's maximum upload. */
  tooLarge: "too-large",
  /** Another connection (or process) is receiving the same target. */
  busy: "busy",
  /** The upload does not match its SHA-256; nothing was kept. */
  integrity: "integrity",
  /** The file shrank while it was being sent. */
  changed: "changed",
  /** The operating system (or Deno) denied the server access. */
  permission: "permission",
  /** The server's disk is full or its quota used up; nothing was kept. */
  diskFull: "disk-full",
  /** Any other failure of the server's file system. */
  io: "io",
  /** A generic failure, and what a code this side does not know becomes. */
  error: "error",
} as const satisfies Record<string, WireErrorCode>;

/** What an unknown code decodes as: a generic failure of the one request. */
export const FALLBACK_WIRE_ERROR_CODE: WireErrorCode = WireError.error;

const KNOWN: ReadonlySet<string> = new Set(WIRE_ERROR_CODES);

/** Whether `code` is one of {@link WIRE_ERROR_CODES}. */
export function isWireErrorCode(code: string): code is WireErrorCode {
  return KNOWN.has(code);
}

/** `code` itself when it is a wire error code, else {@link FALLBACK_WIRE_ERROR_CODE}. */
export function toWireErrorCode(code: string): WireErrorCode {
  return isWireErrorCode(code) ? code : FALLBACK_WIRE_ERROR_CODE;
}
