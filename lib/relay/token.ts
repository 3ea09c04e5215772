/**
 * The relay's token: the secret a sharing server must prove it holds before the relay takes its
 * registrations, so that strangers cannot use someone's relay for free (croc #1104, #1115).
 *
 * The token is 32 random bytes, kept as 64 hex digits on one line in a file of mode 0600 that
 * `ferry relay` creates when it is missing; the server's operator copies that file. The token
 * itself never crosses the network: the relay sends a fresh 32-byte nonce, and the server answers
 * with HMAC-SHA256(token, "ferry-relay/1 register" || nonce || server id), which a tap can neither
 * replay (the next nonce differs) nor test guesses against (256 random bits).
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { lstatOrNull, writeAll } from "../_fs.ts";
import { hmac, sha256 } from "../deps.ts";
import { NotFoundError, UsageError } from "../errors.ts";
import { NONCE_BYTES, PROOF_BYTES, PROOF_LABEL, SERVER_ID_BYTES } from "./wire.ts";

/** Bytes of a token. */
export const TOKEN_BYTES = 32;

/** A token file holds 65 bytes; anything far larger is the wrong file. */
const MAX_TOKEN_FILE_BYTES = 1024;

/** A fresh token, as the 64 hex digits a token file holds. Needs no permissions. */
export function generateToken(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));
}

/**
 * The token's bytes from a token file's text (64 hex digits, surrounding white space allowed).
 * Throws a `UsageError` naming `where` that never quotes the text.
 */
export function parseToken(text: string, where = ""): Uint8Array {
  const trimmed = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    throw new UsageError(`Not a relay token${where}: expected 64 hex digits on one line`);
  }
  return Uint8Array.from(trimmed.match(/../g)!, (pair) => parseInt(pair, 16));
}

/**
 * Reads the token in the file at `path`. Needs `--allow-read` for `path`.
 *
 * @throws {UsageError} If the file is missing, not a regular file, too large or not a token; the
 *   message names `path` and never contains the file's contents.
 */
export async function readTokenFile(path: string): Promise<Uint8Array> {
  const info = await statOrNull(path); // a link to the token file is fine
  if (info === null) {
    throw new UsageError(
      `Cannot read relay token file ${path}: it does not exist (copy it from the relay's machine, where 'ferry relay' created it)`,
    );
  }
  if (!info.isFile) throw new UsageError(`Cannot read relay token file ${path}: not a file`);
  if (info.size > MAX_TOKEN_FILE_BYTES) {
    throw new UsageError(`Cannot read relay token file ${path}: too large to be a token`);
  }
  const bytes = await Deno.readFile(path);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`Not a relay token in ${path}: expected 64 hex digits on one line`);
  }
  return parseToken(text, ` in ${path}`);
}

/**
 * Writes a new token to `path` with mode 0600 unless a file is already there, atomically: the
 * token is written and flushed under a temporary name, then linked to `path`, which fails if
 * `path` appeared meanwhile. Returns whether it created the file. Needs `--allow-read` and
 * `--allow-write` for the folder of `path`.
 *
 * @throws {NotFoundError} If the folder of `path` does not exist.
 */
export async function createTokenFile(path: string): Promise<boolean> {
  if (await lstatOrNull(path) !== null) return false;
  const temporary = join(dirname(path), `.${basename(path)}.${crypto.randomUUID()}.tmp`);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new NotFoundError(
        `Cannot create relay token file ${path}: folder ${dirname(path)} does not exist`,
      );
    }
    throw error;
  }
  try {
    try {
      await writeAll(file, new TextEncoder().encode(`${generateToken()}\n`));
      await file.sync();
    } finally {
      file.close();
    }
    try {
      await Deno.link(temporary, path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false; // another relay made one
      throw error;
    }
    return true;
  } finally {
    await Deno.remove(temporary).catch(() => {});
  }
}

/**
 * A warning when the token file at `path` can be read by other users of the machine, else
 * `undefined`. Needs `--allow-read` for `path`.
 */
export async function tokenFileWarning(path: string): Promise<string | undefined> {
  const info = await statOrNull(path);
  if (info?.mode === null || info?.mode === undefined || (info.mode & 0o077) === 0) {
    return undefined;
  }
  return `ferry: warning: relay token file ${path} can be read by other users: chmod 600 ${path}`;
}

/**
 * The server's proof that it holds `token`, for the relay's challenge `nonce` and its own
 * `serverId`: HMAC-SHA256(token, "ferry-relay/1 register" || nonce || serverId). Needs no
 * permissions.
 */
export function registrationProof(
  token: Uint8Array,
  nonce: Uint8Array,
  serverId: Uint8Array,
): Uint8Array {
  if (nonce.length !== NONCE_BYTES || serverId.length !== SERVER_ID_BYTES) {
    throw new RangeError("A registration proof needs a 32-byte nonce and a 16-byte server id");
  }
  const message = new Uint8Array(PROOF_LABEL.length + NONCE_BYTES + SERVER_ID_BYTES);
  message.set(new TextEncoder().encode(PROOF_LABEL));
  message.set(nonce, PROOF_LABEL.length);
  message.set(serverId, PROOF_LABEL.length + NONCE_BYTES);
  return hmac(sha256, token, message);
}

/** Whether `proof` is the right one for `token`, `nonce` and `serverId`, compared in constant time. */
export function proofMatches(
  token: Uint8Array,
  nonce: Uint8Array,
  serverId: Uint8Array,
  proof: Uint8Array,
): boolean {
  const expected = registrationProof(token, nonce, serverId);
  return proof.length === PROOF_BYTES && timingSafeEqual(expected, proof);
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
