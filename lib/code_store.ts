/**
 * A server's named codes: one JSON file beside its code file (`.connection_codes` beside
 * `.connection_code`), mode 0600, never served. Each code has a name, a public identifier, a
 * secret, rights (read-write, read-only, upload-only), a scope (a folder of the served one; `""`
 * for all of it) and maybe an expiry. `ferry code add|list|revoke` change it; a running server
 * reads it again ({@link CodeStoreWatch}). When each code was last used is kept apart, in a file
 * only the server writes ({@link lastUsePath}), so the two never race.
 *
 * The store file:
 *
 * ```json
 * {"ferry":"connection codes","version":1,"codes":[
 * {"name":"client","identifier":"K7QD","secret":"7K3MQ9XD2HFRWB6T","rights":"read-only","scope":"","expires":null,"created":"2025-05-01T10:00:00.000Z"}
 * ]}
 * ```
 *
 * Every error message names the file and never contains a secret.
 *
 * @module
 */
import { lstatOrNull } from "./_fs.ts";
import { concatBytes } from "./deps.ts";
import { CODE_SYMBOLS, DEFAULT_IDENTIFIER, isIdentifier } from "./code.ts";
import { replacePrivateFile } from "./code_file.ts";
import { FerryError, PathError, UsageError } from "./errors.ts";
import type { ServeMode } from "./protocol/messages.ts";
import { joinRemotePath, parseRemotePath } from "./protocol/remote_path.ts";

/** One named code of a server. */
export interface NamedCode {
  /** A short name chosen by the owner (letters, digits, `-`, `_`, `.`), unique in the store. */
  readonly name: string;
  /** The public identifier: 4 symbols, never `0000`, unique in the store. */
  readonly identifier: string;
  /** The 16 secret symbols (canonical: uppercase, no dashes). */
  readonly secret: string;
  /** What its holders may do (within what the server allows). */
  readonly rights: ServeMode;
  /** The folder of the served one its holders see as the root, as a remote path; `""`: all. */
  readonly scope: string;
  /** When it stops working, in ms since the epoch; `undefined`: never. */
  readonly expires?: number;
  /** When it was added, in ms since the epoch. */
  readonly created: number;
}

/** The name a store may never give a code: the server's default code is listed under it. */
export const DEFAULT_CODE_NAME = "default";

/** The most codes one store holds. */
export const MAX_CODES = 1000;

/** A store file larger than this is the wrong file. */
const MAX_STORE_BYTES = 1024 * 1024;
const FORMAT = "connection codes";
const VERSION = 1;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const SECRET_PATTERN = new RegExp(`^[0-9A-HJKMNP-TV-Z]{${CODE_SYMBOLS}}$`);
const RIGHTS: readonly ServeMode[] = ["read-write", "read-only", "upload-only"];

/**
 * The store of named codes that goes with the code file at `codeFile`: the same path with an `s`
 * added (`./.connection_code` gives `./.connection_codes`). Needs no permissions.
 */
export function codeStorePath(codeFile: string): string {
  return `${codeFile}s`;
}

/**
 * The file where a server notes when each code of the store at `storePath` was last used:
 * `./.connection_codes.used`. Written by the server only. Needs no permissions.
 */
export function lastUsePath(storePath: string): string {
  return `${storePath}.used`;
}

/**
 * Checks a code's name: 1 to 32 letters, digits, `-`, `_` and `.`, starting with a letter or
 * digit, and not `default`. Needs no permissions.
 *
 * @throws {UsageError} Saying what is wrong (the name may be shown: it is no secret).
 */
export function validateCodeName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(
      `Invalid code name ${
        JSON.stringify(name.slice(0, 40))
      }: use 1 to 32 letters, digits, "-", "_" and ".", starting with a letter or digit`,
    );
  }
  if (name.toLowerCase() === DEFAULT_CODE_NAME) {
    throw new UsageError(
      `Invalid code name "${name}": "${DEFAULT_CODE_NAME}" is the server's own code (./.connection_code)`,
    );
  }
}

/**
 * Checks a scope and returns it in canonical form: a folder inside the served one, relative to it
 * (`photos/2024`, `./photos/` and `photos` alike); `""` and `.` mean all of it. Needs no
 * permissions.
 *
 * @throws {UsageError} For an absolute path, `..`, or any name the path rules refuse.
 */
export function normaliseScope(scope: string): string {
  try {
    return joinRemotePath(parseRemotePath(scope));
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(
      `Invalid scope: ${error.message}; name a folder of the served one, relative to it (photos/2024)`,
    );
  }
}

/**
 * Reads the store at `path`: its codes, or none when the file does not exist or is empty. Needs
 * `--allow-read` for `path`.
 *
 * @throws {UsageError} When the file is not a valid store (the message names the file and the
 *   entry, never a secret).
 */
export async function readCodeStore(path: string): Promise<NamedCode[]> {
  const text = await readSmallText(path, MAX_STORE_BYTES, "code store");
  if (text === undefined || text.trim() === "") return [];
  return parseCodeStore(text, path);
}

/** Parses the text of a store file (see the module's documentation). */
export function parseCodeStore(text: string, path: string): NamedCode[] {
  const invalid = (problem: string) => new UsageError(`Invalid code store ${path}: ${problem}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw invalid("it is not JSON");
  }
  if (!isRecord(data) || data.ferry !== FORMAT) throw invalid("it is not a ferry code store");
  if (data.version !== VERSION) {
    throw invalid(`it is version ${JSON.stringify(data.version)}; this ferry reads ${VERSION}`);
  }
  if (!Array.isArray(data.codes)) throw invalid('"codes" is not a list');
  if (data.codes.length > MAX_CODES) throw invalid(`it holds more than ${MAX_CODES} codes`);
  const codes = data.codes.map((entry: unknown, index: number) => {
    try {
      return parseEntry(entry);
    } catch (problem) {
      throw invalid(`code ${index + 1} ${(problem as Error).message}`);
    }
  });
  const names = new Set<string>();
  const identifiers = new Set<string>();
  for (const entry of codes) {
    if (names.has(entry.name.toLowerCase())) {
      throw invalid(`the name "${entry.name}" is there twice`);
    }
    if (identifiers.has(entry.identifier)) {
      throw invalid(`the identifier ${entry.identifier} is there twice`);
    }
    names.add(entry.name.toLowerCase());
    identifiers.add(entry.identifier);
  }
  return codes;
}

function parseEntry(entry: unknown): NamedCode {
  if (!isRecord(entry)) throw new Error("is not an object");
  const { name, identifier, secret, rights, scope, expires, created } = entry;
  if (
    typeof name !== "string" || !NAME_PATTERN.test(name) ||
    name.toLowerCase() === DEFAULT_CODE_NAME
  ) {
    throw new Error('has no valid "name"');
  }
  const field = (what: string) => new Error(`("${name}") has no valid "${what}"`);
  if (
    typeof identifier !== "string" || !isIdentifier(identifier) ||
    identifier === DEFAULT_IDENTIFIER
  ) {
    throw field("identifier");
  }
  if (typeof secret !== "string" || !SECRET_PATTERN.test(secret)) throw field("secret");
  if (!RIGHTS.includes(rights as ServeMode)) throw field("rights");
  let canonicalScope: string;
  try {
    if (typeof scope !== "string") throw new Error();
    canonicalScope = joinRemotePath(parseRemotePath(scope));
  } catch {
    throw field("scope");
  }
  const expiry = expires === null || expires === undefined ? undefined : parseTime(expires);
  if (expiry === null) throw field("expires");
  const createdAt = parseTime(created);
  if (createdAt === null) throw field("created");
  return {
    name,
    identifier,
    secret,
    rights: rights as ServeMode,
    scope: canonicalScope,
    ...(expiry === undefined ? {} : { expires: expiry }),
    created: createdAt,
  };
}

/** The store's text for `codes`: one code per line, so that a diff shows which changed. */
export function formatCodeStore(codes: readonly NamedCode[]): string {
  const lines = codes.map((code) =>
    JSON.stringify({
      name: code.name,
      identifier: code.identifier,
      secret: code.secret,
      rights: code.rights,
      scope: code.scope,
      expires: code.expires === undefined ? null : new Date(code.expires).toISOString(),
      created: new Date(code.created).toISOString(),
    })
  );
  return `{"ferry":"${FORMAT}","version":${VERSION},"codes":[\n${lines.join(",\n")}\n]}\n`;
}

/**
 * Changes the store at `path`: `change` gets its codes and returns the new list (or throws, and
 * nothing is written), which is written atomically with mode 0600 (temporary file, flush,
 * rename). Two changes at once, from any process, take turns: each holds an exclusive lock on the
 * store file while it reads and writes. A missing store starts empty. Needs `--allow-read` and
 * `--allow-write` for the folder of `path`.
 *
 * @returns What `change` returned.
 * @throws {UsageError} If the store is invalid (it is left as it is) or `path` is a folder.
 * @throws {NotFoundError} If the folder of `path` does not exist.
 */
export async function updateCodeStore(
  path: string,
  change: (codes: NamedCode[]) => NamedCode[] | Promise<NamedCode[]>,
): Promise<NamedCode[]> {
  if (lstatOrNull(path)?.isDirectory) {
    throw new UsageError(`Cannot write code store ${path}: it is a folder`);
  }
  const existed = lstatOrNull(path) !== null;
  await using _lock = await lockStore(path);
  try {
    const codes = await change(await readCodeStore(path));
    if (codes.length > MAX_CODES) {
      throw new UsageError(`Cannot add a code to ${path}: it holds ${MAX_CODES} codes already`);
    }
    const text = formatCodeStore(codes);
    await replacePrivateFile(path, new TextEncoder().encode(text), "code store");
    return codes;
  } catch (error) {
    // The lock made an empty store where there was none: nothing was changed, so none stays.
    if (!existed && lstatOrNull(path)?.size === 0) await Deno.remove(path).catch(() => {});
    throw error;
  }
}

/**
 * Locks the store file at `path` (creating it empty, mode 0600, when missing): an exclusive
 * advisory lock held until disposed. A writer renames a new file over the store, so a lock taken
 * on the file it replaced is taken again on the new one.
 */
async function lockStore(path: string): Promise<AsyncDisposable> {
  for (let attempt = 0; attempt < 20; attempt++) {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new FerryError(`Cannot write code store ${path}: its folder does not exist`);
      }
      throw error;
    }
    try {
      await file.lock(true);
    } catch {
      // A file system that cannot lock (some network mounts): go on unlocked.
    }
    const held = file.statSync();
    const current = lstatOrNull(path);
    if (current !== null && current.ino === held.ino && current.dev === held.dev) {
      return {
        [Symbol.asyncDispose]: () => {
          file.close();
          return Promise.resolve();
        },
      };
    }
    file.close(); // replaced while we waited: lock the new one
  }
  throw new FerryError(`Cannot lock code store ${path}: it keeps being replaced`);
}

/**
 * When each code was last used, by identifier (ms since the epoch), from the file at `path`
 * (see {@link lastUsePath}); empty when it is missing or unreadable: it is only a record. Needs
 * `--allow-read` for `path`.
 */
export async function readLastUse(path: string): Promise<Map<string, number>> {
  const uses = new Map<string, number>();
  let text: string | undefined;
  try {
    text = await readSmallText(path, MAX_STORE_BYTES, "last-use file");
  } catch {
    return uses;
  }
  if (text === undefined) return uses;
  try {
    const data = JSON.parse(text);
    if (!isRecord(data) || !isRecord(data.lastUse)) return uses;
    for (const [identifier, when] of Object.entries(data.lastUse)) {
      const time = parseTime(when);
      if (isIdentifier(identifier) && time !== null) uses.set(identifier, time);
    }
  } catch {
    // A damaged record is no record.
  }
  return uses;
}

/**
 * Writes `uses` to the last-use file at `path`, merged with what it holds (the later time of
 * each identifier wins, so two servers sharing a store do not undo each other), keeping only the
 * identifiers in `keep`. Atomic, mode 0600. Needs `--allow-read` and `--allow-write` for the
 * folder of `path`.
 */
export async function writeLastUse(
  path: string,
  uses: ReadonlyMap<string, number>,
  keep: ReadonlySet<string>,
): Promise<void> {
  const merged = await readLastUse(path);
  for (const [identifier, when] of uses) {
    merged.set(identifier, Math.max(when, merged.get(identifier) ?? 0));
  }
  const lastUse: Record<string, string> = {};
  for (const [identifier, when] of [...merged].sort(([a], [b]) => a < b ? -1 : 1)) {
    if (keep.has(identifier)) lastUse[identifier] = new Date(when).toISOString();
  }
  const record = { ferry: "last use of codes", lastUse };
  const text = `${JSON.stringify(record)}\n`;
  await replacePrivateFile(path, new TextEncoder().encode(text), "last-use file");
}

/**
 * The codes a server accepts from its store, kept in step with the file: {@link refresh} reads it
 * again, so `ferry code add` and `ferry code revoke` take effect on a running server.
 *
 * A store that goes missing holds no codes (deleting it revokes them all); one that turns
 * invalid or unreadable keeps the codes in force and says why in `refresh`'s result. Needs
 * `--allow-read` for the store.
 */
export class CodeStoreWatch {
  /** The store's path, as given. */
  readonly path: string;
  #codes: readonly NamedCode[] = [];
  /** The text in force; a missing file reads as "", no codes. */
  #text = "";
  /** Inode, modification time and size of the file last read, to skip reading it again. */
  #signature = "";
  #refreshing: Promise<CodeStoreRefresh> | undefined;

  /** Watches the store at `path`; nothing is read before the first {@link refresh}. */
  constructor(path: string) {
    this.path = path;
  }

  /** The codes in force. */
  get codes(): readonly NamedCode[] {
    return this.#codes;
  }

  /**
   * Reads the store again and puts its codes in force. Calls made while a read is under way
   * share it. Never throws: a problem keeps the codes in force and is described in `problem`.
   */
  refresh(): Promise<CodeStoreRefresh> {
    this.#refreshing ??= this.#read().finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  async #read(): Promise<CodeStoreRefresh> {
    let text: string;
    let codes: NamedCode[];
    try {
      // The same file as last read (every change renames a new one over it, and an edit in place
      // changes its time or size): nothing to read.
      const info = lstatOrNull(this.path);
      const signature = info === null ? "" : `${info.ino}:${info.mtime?.getTime()}:${info.size}`;
      if (signature !== "" && signature === this.#signature) return { changed: false };
      text = await readSmallText(this.path, MAX_STORE_BYTES, "code store") ?? "";
      if (text === this.#text) {
        this.#signature = signature;
        return { changed: false };
      }
      codes = text.trim() === "" ? [] : parseCodeStore(text, this.path);
      this.#signature = signature;
    } catch (error) {
      const problem = error instanceof Error ? error.message : String(error);
      return { changed: false, problem };
    }
    this.#text = text;
    const before = this.#codes;
    this.#codes = codes;
    return { changed: true, before };
  }
}

/** What {@link CodeStoreWatch.refresh} found. */
export interface CodeStoreRefresh {
  /** The file holds other codes now, in force; `before` are the ones it held. */
  changed: boolean;
  /** The codes in force before, when `changed`. */
  before?: readonly NamedCode[];
  /** Why the file could not be read (the codes in force stay). */
  problem?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An ISO 8601 time as ms since the epoch, or `null` when it is none. */
function parseTime(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const time = Date.parse(value);
  return Number.isFinite(time) ? time : null;
}

/**
 * The UTF-8 text of the small file at `path`, or `undefined` if it does not exist.
 *
 * @throws {UsageError} When it is a folder, larger than `maxBytes`, or not UTF-8.
 */
async function readSmallText(
  path: string,
  maxBytes: number,
  what: string,
): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`Cannot read ${what} ${path}: it is a folder`);
    }
    throw error;
  }
  try {
    if (file.statSync().isDirectory) {
      throw new UsageError(`Cannot read ${what} ${path}: it is a folder`);
    }
    // Read in blocks (a store is a few kilobytes; the server reads it before every handshake).
    const blocks: Uint8Array[] = [];
    let length = 0;
    while (length <= maxBytes) {
      const block = new Uint8Array(Math.min(64 * 1024, maxBytes + 1 - length));
      const read = await file.read(block);
      if (read === null) break;
      blocks.push(block.subarray(0, read));
      length += read;
    }
    if (length > maxBytes) {
      throw new UsageError(`Invalid ${what} ${path}: it is larger than ${maxBytes} bytes`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(concatBytes(...blocks));
    } catch {
      throw new UsageError(`Invalid ${what} ${path}: it is not UTF-8 text`);
    }
  } finally {
    file.close();
  }
}
