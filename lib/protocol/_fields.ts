/**
 * The checks every control message's fields pass before any other code sees them: one JSON object
 * of bounded size, then each field of the expected type and range. Each check throws
 * {@link ProtocolError} naming the field; the message decoders in `messages.ts` are built from them.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { MAX_CONTROL_BYTES } from "./constants.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** The fields of one decoded control message, not yet checked. */
export type Fields = Record<string, unknown>;

/**
 * Parses `bytes` as one UTF-8 JSON object; refuses more than {@link MAX_CONTROL_BYTES} before
 * parsing, invalid UTF-8, and any other JSON value.
 */
export function parseObject(bytes: Uint8Array): Fields {
  if (bytes.length > MAX_CONTROL_BYTES) {
    throw new ProtocolError(`Control message of ${bytes.length} bytes exceeds the maximum`);
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new ProtocolError("Control message is not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Control message is not a JSON object");
  }
  return value as Fields;
}

/** The string `fields[key]`, at most `maxLength` UTF-16 units long. */
export function str(fields: Fields, key: string, maxLength = 8192): string {
  const value = fields[key];
  if (typeof value !== "string" || value.length > maxLength) {
    throw new ProtocolError(`Message field "${key}" must be a string`);
  }
  return value;
}

/** The safe integer `fields[key]`, from `min` to `max`. */
export function int(fields: Fields, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const value = fields[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ProtocolError(`Message field "${key}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** The boolean `fields[key]`. */
export function bool(fields: Fields, key: string): boolean {
  const value = fields[key];
  if (typeof value !== "boolean") {
    throw new ProtocolError(`Message field "${key}" must be a boolean`);
  }
  return value;
}

/** The SHA-256 `fields[key]` in lowercase hex (or "" when `allowEmpty`). */
export function sha256Hex(fields: Fields, key: string, allowEmpty = false): string {
  const value = str(fields, key, 64);
  if ((allowEmpty && value === "") || /^[0-9a-f]{64}$/.test(value)) return value;
  throw new ProtocolError(`Message field "${key}" must be a SHA-256 in lowercase hex`);
}

/** The `mtime` field: milliseconds since the epoch, from 0 to the largest `Date`. */
export function mtime(fields: Fields): number {
  return int(fields, "mtime", 0, 8.64e15);
}

/** The `mode` field: permission bits, from 0 to 0o777. */
export function mode(fields: Fields): number {
  return int(fields, "mode", 0, 0o777);
}
