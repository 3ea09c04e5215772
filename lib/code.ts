/**
 * The connection code: the shared secret people read aloud, type, or copy between machines.
 *
 * A code is 16 symbols of Crockford base32 (5 bits each, 80 bits in all) drawn from
 * `crypto.getRandomValues`, written uppercase in four dash-separated groups:
 * `XXXX-XXXX-XXXX-XXXX`. Input is forgiving: case, spaces, dashes and underscores do not matter,
 * and the look-alike letters I and L read as 1, O as 0. U is never part of a code.
 *
 * Every error message here describes the problem (length, position of a bad character, which file)
 * and never contains the code itself.
 *
 * @example Normalising what a person typed
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeSecret, formatCode, normaliseCode } from "./code.ts";
 *
 * assert.equal(normaliseCode("7k3m q9xd 2hfr wb6t"), "7K3MQ9XD2HFRWB6T");
 * assert.equal(formatCode("7K3MQ9XD2HFRWB6T"), "7K3M-Q9XD-2HFR-WB6T");
 * assert.equal(formatCode("oilo-Q9XD-2HFR-WB6T"), "0110-Q9XD-2HFR-WB6T");
 * assert.deepEqual(codeSecret("7k3m-q9xd-2hfr-wb6t"), new TextEncoder().encode("7K3MQ9XD2HFRWB6T"));
 * ```
 *
 * @example Generating a code
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateCode } from "./code.ts";
 *
 * assert.match(generateCode(), /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
 * assert.equal(generateCode((bytes) => bytes.fill(0)), "0000-0000-0000-0000");
 * ```
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { writeAll } from "./_fs.ts";
import { ExistsError, FerryError, NotFoundError, UsageError } from "./errors.ts";
import { PARTIAL_PREFIX } from "./protocol/remote_path.ts";

/** Number of base32 symbols in a connection code (5 bits each: 80 bits). */
export const CODE_SYMBOLS = 16;

/** Name of the code file in the current folder, used when no other source is given. */
export const DEFAULT_CODE_FILE = ".connection_code";

/** Crockford base32: digits and uppercase letters without I, L, O and U. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BITS_PER_SYMBOL = 5;
const CODE_BYTES = (CODE_SYMBOLS * BITS_PER_SYMBOL) / 8;
const GROUP_SIZE = 4;
/** Shown in messages to describe the shape of a code; deliberately not a random-looking code. */
const EXAMPLE_CODE = "ABCD-EFGH-JKMN-PQRS";
const ENV_VARIABLE = "FERRY_CODE";
/** A code file holds about 20 bytes; anything far larger is the wrong file. */
const MAX_CODE_FILE_BYTES = 1024;

/** Separators people type or paste between groups; any whitespace counts. */
const SEPARATOR = /^[\s_-]$/u;
const ASCII_DIGIT = /^[0-9]$/;

/** What each accepted input character means: the symbol itself, lowercase, and look-alikes. */
const SYMBOL_FOR: ReadonlyMap<string, string> = (() => {
  const table = new Map<string, string>();
  for (const symbol of ALPHABET) {
    table.set(symbol, symbol);
    table.set(symbol.toLowerCase(), symbol);
  }
  for (const [lookAlike, symbol] of [["I", "1"], ["L", "1"], ["O", "0"]] as const) {
    table.set(lookAlike, symbol);
    table.set(lookAlike.toLowerCase(), symbol);
  }
  return table;
})();

/**
 * Makes a new connection code of 80 random bits, formatted `XXXX-XXXX-XXXX-XXXX`.
 *
 * Each symbol takes exactly 5 bits of the 10 random bytes, so every symbol is uniform (no modulo
 * bias). Needs no permissions.
 *
 * @param random Fills the given 10-byte array with random bytes and returns it. Defaults to
 *   `crypto.getRandomValues`; tests inject a deterministic source.
 * @returns The formatted code.
 * @throws {RangeError} If `random` returns other than 10 bytes.
 */
export function generateCode(
  random: (bytes: Uint8Array) => Uint8Array = (bytes) => crypto.getRandomValues(bytes),
): string {
  const bytes = random(new Uint8Array(CODE_BYTES));
  if (bytes.length !== CODE_BYTES) {
    throw new RangeError(
      `Cannot generate a connection code: random source returned ${bytes.length} bytes, expected ${CODE_BYTES}`,
    );
  }
  let symbols = "";
  let buffer = 0;
  let bufferedBits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bufferedBits += 8;
    while (bufferedBits >= BITS_PER_SYMBOL) {
      bufferedBits -= BITS_PER_SYMBOL;
      symbols += ALPHABET.charAt((buffer >> bufferedBits) & 0b11111);
    }
    buffer &= (1 << bufferedBits) - 1;
  }
  return group(symbols);
}

/**
 * Reduces what a person typed to the 16 canonical symbols: uppercase, no separators, I and L read
 * as 1, O as 0. Needs no permissions.
 *
 * @returns 16 uppercase Crockford base32 symbols, without dashes.
 * @throws {UsageError} If the input holds a character outside the code alphabet (U included) or
 *   does not come to exactly 16 symbols. The message never contains the input.
 */
export function normaliseCode(input: string): string {
  return normalise(input, "");
}

/**
 * Normalises a code (see {@link normaliseCode}) and writes it in groups: `XXXX-XXXX-XXXX-XXXX`.
 * Needs no permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function formatCode(input: string): string {
  return group(normaliseCode(input));
}

/**
 * The bytes both peers feed to the PAKE as the shared secret (its PRS): the UTF-8 encoding of the
 * normalised code, so that any spelling of the same code gives the same secret. Needs no
 * permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function codeSecret(input: string): Uint8Array {
  return new TextEncoder().encode(normaliseCode(input));
}

/**
 * Reads a code file and returns its code, normalised. The file may also be a pipe (for example
 * `/dev/stdin`); only its first kilobyte is read. A file readable by group or others is accepted
 * as it is. Needs `--allow-read` for `path`.
 *
 * @throws {UsageError} If the file does not exist, is a folder, is not UTF-8 text, is too large, or
 *   holds an invalid code. The message names `path` and never contains the file's contents.
 */
export async function readCodeFile(path: string): Promise<string> {
  if (path === "") throw new UsageError("Cannot read code file: the path is empty");
  const text = await readCodeText(path);
  if (text === undefined) {
    throw new UsageError(`Cannot read code file ${path}: it does not exist`);
  }
  return normalise(text, ` in ${path}`);
}

/**
 * Writes `code` to `path` as the formatted code alone on one line, with mode 0600 (owner only).
 *
 * The write is atomic: the code goes to a new temporary file (mode 0600) in the same folder, is
 * flushed to disk, then renamed over `path`, so a reader sees the old file or the new one, never
 * a partial one. The temporary file is named like a partial transfer file (see
 * {@link codeFileTemporaryPath}), which no ferry server ever lists or serves: a client holding the
 * old code cannot read the new one while it is written into a served folder. Needs `--allow-read`
 * and `--allow-write` for the folder of `path`.
 *
 * @param options.force Replace an existing file; without it an existing file is kept.
 * @throws {UsageError} If `code` is invalid (nothing is written) or `path` is a folder.
 * @throws {ExistsError} If `path` exists and `force` is not set.
 * @throws {NotFoundError} If the folder of `path` does not exist.
 */
export async function writeCodeFile(
  path: string,
  code: string,
  options: { force?: boolean } = {},
): Promise<void> {
  const data = new TextEncoder().encode(`${formatCode(code)}\n`);
  if (path === "") throw new UsageError("Cannot write code file: the path is empty");
  const existing = await lstatIfExists(path);
  if (existing?.isDirectory) {
    throw new UsageError(`Cannot write code file ${path}: it is a folder`);
  }
  // The new file is renamed over the old name: never over a device, pipe or socket (/dev/null).
  if (existing !== undefined && !existing.isFile && !existing.isSymlink) {
    throw new UsageError(`Cannot write code file ${path}: it is not a regular file`);
  }
  if (existing !== undefined && !options.force) {
    throw new ExistsError(`Code file ${path} already exists: pass --force to replace it`);
  }

  const folder = dirname(path);
  const temporary = codeFileTemporaryPath(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new NotFoundError(`Cannot write code file ${path}: folder ${folder} does not exist`);
    }
    if (error instanceof Error && / \(os error \d+\)/.test(error.message)) {
      // "Read-only file system (os error 30): open '..connection_code.<uuid>.tmp'"
      const reason = error.message.split(" (os error", 1)[0]!.toLowerCase();
      throw new FerryError(`Cannot write code file ${path}: ${reason}`);
    }
    throw error;
  }
  try {
    try {
      await writeAll(file, data);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * A fresh name for the temporary file that {@link writeCodeFile} fills before renaming it over
 * `path`: in the same folder, starting with the partial-file prefix (`.ferry-partial.`) that every
 * ferry server hides from listings and refuses to serve, followed by the code file's name and a
 * random UUID. Needs no permissions.
 */
export function codeFileTemporaryPath(path: string): string {
  return join(dirname(path), `${PARTIAL_PREFIX}${basename(path)}.${crypto.randomUUID()}.tmp`);
}

/**
 * The code a server accepts, kept in step with its code file: {@link refresh} reads the file
 * again, so `ferry code --force` takes effect on a running server without a restart.
 *
 * When the file goes missing or stops holding a valid code, the last valid code stays in force
 * (refusing everyone would be a surprise outage; the problem is reported by `refresh`). Needs
 * `--allow-read` for the code file.
 */
export class CodeFileWatch {
  /** The code file's path, as given. */
  readonly path: string;
  #code: string;
  #refreshing: Promise<CodeRefresh> | undefined;

  private constructor(path: string, code: string) {
    this.path = path;
    this.#code = code;
  }

  /**
   * Reads the code file at `path` once.
   *
   * @throws {UsageError} As {@link readCodeFile}.
   */
  static async open(path: string): Promise<CodeFileWatch> {
    return new CodeFileWatch(path, await readCodeFile(path));
  }

  /** The code in force: normalised, as {@link normaliseCode} returns it. */
  get code(): string {
    return this.#code;
  }

  /** The PAKE secret of the code in force (see {@link codeSecret}). */
  get secret(): Uint8Array {
    return codeSecret(this.#code);
  }

  /**
   * Reads the file again and puts its code in force. Calls made while a read is under way share
   * it. Never throws: a missing or invalid file keeps the code in force and is described in the
   * result's `problem` (which never contains a code).
   */
  refresh(): Promise<CodeRefresh> {
    this.#refreshing ??= this.#read().finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  async #read(): Promise<CodeRefresh> {
    let code: string;
    try {
      code = await readCodeFile(this.path);
    } catch (error) {
      const problem = error instanceof Error ? error.message : String(error);
      return { changed: false, problem };
    }
    const changed = code !== this.#code;
    this.#code = code;
    return { changed };
  }
}

/** What {@link CodeFileWatch.refresh} found. */
export interface CodeRefresh {
  /** The file holds a new valid code, now in force. */
  changed: boolean;
  /** Why the file could not be read (the previous code stays in force). */
  problem?: string;
}

/**
 * Finds the connection code, from the first of these that is present:
 *
 * 1. `options.codeFile` (the `--code-file` flag): must exist, no fallback.
 * 2. The `FERRY_CODE` environment variable, if set and not empty.
 * 3. `./.connection_code` in the current folder.
 *
 * Without `options.env`, `FERRY_CODE` is read only when env permission for it is already granted
 * (checked with `Deno.permissions.querySync`, never prompting); otherwise it is skipped. Needs
 * `--allow-read` for the code file; optionally `--allow-env=FERRY_CODE`.
 *
 * @param options.env Reads an environment variable; replaces the permission check and `Deno.env`.
 * @returns The normalised code and a description of where it came from: `--code-file <path>`,
 *   `FERRY_CODE` or `./.connection_code`.
 * @throws {UsageError} If the chosen source holds an invalid code, the `--code-file` does not
 *   exist, or there is no source at all. The message never contains the code.
 */
export async function resolveCode(
  options: { codeFile?: string; env?: (name: string) => string | undefined } = {},
): Promise<{ code: string; source: string }> {
  if (options.codeFile !== undefined) {
    return {
      code: await readCodeFile(options.codeFile),
      source: `--code-file ${options.codeFile}`,
    };
  }

  const fromEnv = (options.env ?? readPermittedEnv)(ENV_VARIABLE);
  if (fromEnv !== undefined && fromEnv !== "") {
    return { code: normalise(fromEnv, ` in ${ENV_VARIABLE}`), source: ENV_VARIABLE };
  }

  const defaultPath = `./${DEFAULT_CODE_FILE}`;
  const text = await readCodeText(defaultPath);
  if (text === undefined) {
    throw new UsageError(
      `No connection code: ${defaultPath} does not exist; run \`ferry code\` on the server and copy the code, or set ${ENV_VARIABLE}`,
    );
  }
  return { code: normalise(text, ` in ${defaultPath}`), source: defaultPath };
}

/** {@link normaliseCode}, with `where` (such as ` in ./.connection_code`) added to messages. */
function normalise(input: string, where: string): string {
  let symbols = "";
  let digitsOnly = true;
  let position = 0;
  for (const character of input) {
    position++;
    if (SEPARATOR.test(character)) continue;
    const symbol = SYMBOL_FOR.get(character);
    if (symbol === undefined) {
      const problem = character === "U" || character === "u"
        ? "is a U, which connection codes never use"
        : "is not a letter or digit of a connection code";
      throw new UsageError(`Invalid connection code${where}: character ${position} ${problem}`);
    }
    digitsOnly &&= ASCII_DIGIT.test(character);
    symbols += symbol;
  }
  if (symbols.length !== CODE_SYMBOLS) {
    const legacy = digitsOnly && symbols.length > 0
      ? "; this looks like a numeric code from the old Python ferry: run `ferry code --force` on the server to make a new one"
      : "";
    throw new UsageError(
      `Invalid connection code${where}: expected ${CODE_SYMBOLS} characters like ${EXAMPLE_CODE}, got ${symbols.length}${legacy}`,
    );
  }
  return symbols;
}

/** Splits canonical symbols into dash-separated groups of four. */
function group(symbols: string): string {
  const groups: string[] = [];
  for (let start = 0; start < symbols.length; start += GROUP_SIZE) {
    groups.push(symbols.slice(start, start + GROUP_SIZE));
  }
  return groups.join("-");
}

/** The text of a small code file, or `undefined` if it does not exist. */
async function readCodeText(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.IsADirectory) throw folderError(path);
    throw error;
  }
  const buffer = new Uint8Array(MAX_CODE_FILE_BYTES + 1);
  let length = 0;
  try {
    while (length < buffer.length) {
      const read = await file.read(buffer.subarray(length));
      if (read === null) break;
      length += read;
    }
  } catch (error) {
    if (error instanceof Deno.errors.IsADirectory) throw folderError(path);
    throw error;
  } finally {
    file.close();
  }
  if (length > MAX_CODE_FILE_BYTES) {
    throw new UsageError(
      `Invalid connection code in ${path}: the file is larger than ${MAX_CODE_FILE_BYTES} bytes`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
  } catch {
    throw new UsageError(`Invalid connection code in ${path}: the file is not UTF-8 text`);
  }
}

function folderError(path: string): UsageError {
  return new UsageError(`Cannot read code file ${path}: it is a folder`);
}

async function lstatIfExists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** `Deno.env.get(name)` if env permission for `name` is already granted; never prompts. */
function readPermittedEnv(name: string): string | undefined {
  const status = Deno.permissions.querySync({ name: "env", variable: name });
  return status.state === "granted" ? Deno.env.get(name) : undefined;
}
