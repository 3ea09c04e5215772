/**
 * Where connection codes are kept: the code file (`.connection_code`, mode 0600, written
 * atomically), `FERRY_CODE`, and the order a client looks in; and {@link CodeFileWatch}, which
 * keeps a running server in step with its code file.
 *
 * Every error message names the file and never contains the code.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { lstatOrNull, writeAll } from "./_fs.ts";
import { codeSecret, formatCode, normaliseCodeFrom } from "./code.ts";
import { ExistsError, FerryError, NotFoundError, UsageError } from "./errors.ts";
import { PARTIAL_PREFIX } from "./protocol/remote_path.ts";

/** Name of the code file in the current folder, used when no other source is given. */
export const DEFAULT_CODE_FILE = ".connection_code";

const ENV_VARIABLE = "FERRY_CODE";
/** A code file holds about 20 bytes; anything far larger is the wrong file. */
const MAX_CODE_FILE_BYTES = 1024;

/**
 * Reads a code file and returns its code, normalised. The file may also be a pipe (for example
 * `/dev/stdin`); only its first kilobyte is read. A file readable by group or others is accepted
 * (the commands warn of it: see {@link codeFileWarning}). Needs `--allow-read` for `path`.
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
  return normaliseCodeFrom(text, ` in ${path}`);
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
  const existing = await lstatOrNull(path);
  if (existing?.isDirectory) {
    throw new UsageError(`Cannot write code file ${path}: it is a folder`);
  }
  // The new file is renamed over the old name: never over a device, pipe or socket (/dev/null).
  if (existing !== null && !existing.isFile && !existing.isSymlink) {
    throw new UsageError(`Cannot write code file ${path}: it is not a regular file`);
  }
  if (existing !== null && !options.force) {
    throw new ExistsError(`Code file ${path} already exists: pass --force to replace it`);
  }

  await replacePrivateFile(path, data, "code file");
}

/**
 * Writes `data` to `path` atomically with mode 0600: into a fresh temporary file in the same
 * folder (named by {@link codeFileTemporaryPath}, so no ferry server ever serves it), flushed,
 * then renamed over `path`. Messages name the file as `what` (`code file`) and `path`. Needs
 * `--allow-read` and `--allow-write` for the folder of `path`.
 *
 * @throws {NotFoundError} If the folder of `path` does not exist.
 * @throws {FerryError} If the temporary file cannot be created (a read-only file system, say).
 */
export async function replacePrivateFile(
  path: string,
  data: Uint8Array,
  what: string,
): Promise<void> {
  const folder = dirname(path);
  const temporary = codeFileTemporaryPath(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new NotFoundError(`Cannot write ${what} ${path}: folder ${folder} does not exist`);
    }
    if (error instanceof Error && / \(os error \d+\)/.test(error.message)) {
      // "Read-only file system (os error 30): open '..connection_code.<uuid>.tmp'"
      const reason = error.message.split(" (os error", 1)[0]!.toLowerCase();
      throw new FerryError(`Cannot write ${what} ${path}: ${reason}`);
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
 * 4. `options.ask`, if given: the person at the terminal types it (nothing is saved).
 *
 * Without `options.env`, `FERRY_CODE` is read only when env permission for it is already granted
 * (checked with `Deno.permissions.querySync`, never prompting); otherwise it is skipped. Needs
 * `--allow-read` for the code file; optionally `--allow-env=FERRY_CODE`.
 *
 * @param options.env Reads an environment variable; replaces the permission check and `Deno.env`.
 * @param options.ask Asks for the code when no other source has one.
 * @returns The normalised code; a description of where it came from: `--code-file <path>`,
 *   `FERRY_CODE`, `./.connection_code` or `the prompt`; and `path`, the code file it was read
 *   from, if any.
 * @throws {UsageError} If the chosen source holds an invalid code, the `--code-file` does not
 *   exist, or there is no source at all. The message never contains the code.
 */
export async function resolveCode(
  options: {
    codeFile?: string;
    env?: (name: string) => string | undefined;
    ask?: () => Promise<string>;
  } = {},
): Promise<{ code: string; source: string; path?: string }> {
  if (options.codeFile !== undefined) {
    return {
      code: await readCodeFile(options.codeFile),
      source: `--code-file ${options.codeFile}`,
      path: options.codeFile,
    };
  }

  const fromEnv = (options.env ?? readPermittedEnv)(ENV_VARIABLE);
  if (fromEnv !== undefined && fromEnv !== "") {
    return { code: normaliseCodeFrom(fromEnv, ` in ${ENV_VARIABLE}`), source: ENV_VARIABLE };
  }

  const defaultPath = `./${DEFAULT_CODE_FILE}`;
  const text = await readCodeText(defaultPath);
  if (text === undefined) {
    if (options.ask !== undefined) {
      return { code: normaliseCodeFrom(await options.ask(), ""), source: "the prompt" };
    }
    throw new UsageError(
      `No connection code: ${defaultPath} does not exist; store the code you were given with \`ferry code --save\` (it asks for it without showing it), or set ${ENV_VARIABLE}`,
    );
  }
  return {
    code: normaliseCodeFrom(text, ` in ${defaultPath}`),
    source: defaultPath,
    path: defaultPath,
  };
}

/**
 * The warning to give when the code file at `path` can be read by users other than its owner
 * (`mode & 0o077`): `ferry: warning: PATH can be read by other users: chmod 600 PATH`. None on
 * Windows (no such modes), or when `path` cannot be examined. Needs `--allow-read` for `path`.
 */
export async function codeFileWarning(path: string): Promise<string | undefined> {
  if (Deno.build.os === "windows") return undefined;
  let mode: number | null;
  try {
    mode = (await Deno.stat(path)).mode;
  } catch {
    return undefined;
  }
  if (mode === null || (mode & 0o077) === 0) return undefined;
  return `ferry: warning: ${path} can be read by other users: chmod 600 ${path}`;
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

/** `Deno.env.get(name)` if env permission for `name` is already granted; never prompts. */
function readPermittedEnv(name: string): string | undefined {
  const status = Deno.permissions.querySync({ name: "env", variable: name });
  return status.state === "granted" ? Deno.env.get(name) : undefined;
}
