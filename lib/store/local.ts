/**
 * The served folder, on the server side: untrusted remote path -> confined real path.
 *
 * Every request goes through {@link Store.resolve} (or a method built on it), which validates
 * the string with {@link parseRemotePath} before joining it to anything, resolves the result with
 * `Deno.realPath`, and checks that the real path is the folder or lies inside it. Symbolic links
 * are followed only while they stay inside the folder; walks never descend into linked folders.
 *
 * Needs `--allow-read` for the served folder (and `--allow-write` for {@link Store.resolveDir}
 * with `create`).
 *
 * Limitation: Deno offers no `openat`/`O_NOFOLLOW`, so a local user who can rename things inside
 * the folder while a request is served could swap in a link between the check and the use. The
 * window is narrowed (files are checked again by device and inode once opened, folders are
 * re-resolved before use) but not closed; remote peers themselves cannot create links.
 *
 * @module
 */
import { basename, dirname, join, resolve as resolvePath } from "node:path/posix";
import { FerryError, NotFoundError, PathError } from "../errors.ts";
import {
  MAX_PATH_BYTES,
  parseRemotePath,
  PARTIAL_PREFIX,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";

/** One file or folder as shown to the other side. */
export interface EntryInfo {
  /** The name in its folder (for the served folder itself, `""`). */
  name: string;
  /** A symbolic link that stays inside the folder is reported as its target's type. */
  type: "file" | "dir";
  /** Size in bytes; 0 for folders. */
  size: number;
  /** Last modification, in milliseconds since the epoch (0 when unknown). */
  mtime: number;
  /** Permission bits (`mode & 0o777`; 0 when unknown). */
  mode: number;
}

/** What {@link Store} knows about a confined entry. */
interface Resolved {
  realPath: string;
  info: EntryInfo;
  /** Device and inode (see {@link fileId}): a listing holds one per entry, the whole stat is big. */
  id: string;
  /** The entry itself is a symbolic link (only set for children found while listing). */
  symlink: boolean;
}

/** Tries to create a missing folder at most this many times when others race to create it too. */
const MAX_CREATE_ATTEMPTS = 3;

/** Entries of a folder looked up at once while it is listed. */
const LOOKUP_WINDOW = 32;

/**
 * The served folder. Create with {@link Store.open}.
 *
 * Permissions: every method needs read access to the folder (`--allow-read=<folder>`);
 * {@link Store.resolveDir} with `create` also needs write access (`--allow-write=<folder>`).
 */
export class Store {
  /** Real path of the served folder (no symbolic links, no trailing slash). */
  readonly root: string;
  /** Real paths never listed nor served (each also hides what lies below it). */
  readonly #excluded: readonly string[];

  private constructor(root: string, excluded: readonly string[]) {
    this.root = root;
    this.#excluded = excluded;
  }

  /**
   * Opens the folder at `root`, which must exist ({@link NotFoundError}) and be a folder
   * ({@link PathError}). `exclude` lists local paths, absolute or relative to the working
   * directory, that are never listed nor served (the code file when it lies inside the folder);
   * they need not exist yet.
   */
  static async open(root: string, options: { exclude?: string[] } = {}): Promise<Store> {
    let realRoot: string;
    try {
      realRoot = await Deno.realPath(root);
    } catch (error) {
      if (isMissing(error)) {
        throw new NotFoundError(`Cannot serve ${quote(root)}: no such folder`, { cause: error });
      }
      throw error;
    }
    if (!(await Deno.stat(realRoot)).isDirectory) {
      throw new PathError(`Cannot serve ${quote(root)}: it is not a folder`);
    }
    const excluded = await Promise.all((options.exclude ?? []).map(realPathOfLocal));
    return new Store(realRoot, excluded);
  }

  /**
   * Resolves the untrusted remote `path` to a real path inside the folder and describes it.
   * Throws {@link PathError} when the string is refused, when it leads outside the folder (through
   * a symbolic link), to an excluded path, through a link loop, or to something other than a
   * regular file or folder; {@link NotFoundError} when it names nothing.
   */
  async resolve(path: string): Promise<{ realPath: string; info: EntryInfo }> {
    const { realPath, info } = await this.#resolve(path);
    return { realPath, info };
  }

  /**
   * The direct children of the folder at `path`, sorted by name (by UTF-16 code units), or
   * `[the entry]` when `path` is a file. Hidden: partial files, excluded paths, names that
   * {@link parseRemotePath} refuses, symbolic links that leave the folder or lead nowhere, and
   * anything that is not a regular file or folder. Holds the whole listing: the server streams
   * with {@link entries} instead.
   */
  async list(path: string): Promise<EntryInfo[]> {
    return await Array.fromAsync(this.entries(path));
  }

  /**
   * The entries of {@link list}, one at a time. Only the folder's names are held (and sorted);
   * each entry is looked up when it is reached, so a folder of 100,000 files costs a few
   * megabytes per listing instead of over a hundred. An entry that vanishes meanwhile is skipped.
   */
  async *entries(path: string): AsyncIterable<EntryInfo> {
    const resolved = await this.#resolve(path);
    if (resolved.info.type === "file") {
      yield resolved.info;
      return;
    }
    for await (const child of this.#children(resolved.realPath)) yield child.info;
  }

  /**
   * Every file and folder below the folder at `path`, depth first in name order, each with its
   * POSIX path relative to `path`. Folders are reported (so empty ones survive a copy); linked
   * folders are skipped entirely (no loops, no escapes); hiding rules are those of
   * {@link list}, and entries whose full remote path would exceed {@link MAX_PATH_BYTES} are
   * skipped too. Throws {@link PathError} when `path` is a file.
   */
  async *walk(path: string): AsyncIterable<EntryInfo & { path: string }> {
    const start = await this.#resolve(path);
    if (start.info.type !== "dir") {
      throw new PathError(`Cannot walk ${quote(path)}: it is not a folder`);
    }
    const components = parseRemotePath(path);
    const baseBytes = components.length === 0 ? 0 : utf8Length(components.join("/")) + 1;
    yield* this.#walkFolder(start.realPath, "", baseBytes, new Set([start.id]));
  }

  /**
   * Opens the regular file at `path` for reading; {@link PathError} when it is a folder or when
   * it was replaced between the check and the open. The caller closes the file.
   */
  async openRead(path: string): Promise<{ file: Deno.FsFile; info: EntryInfo; realPath: string }> {
    const resolved = await this.#resolve(path);
    if (resolved.info.type !== "file") {
      throw new PathError(`Cannot read ${quote(path)}: it is a folder`);
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(resolved.realPath, { read: true });
    } catch (error) {
      throw isMissing(error) ? notFound(path, error) : error;
    }
    try {
      const opened = await file.stat();
      const info = entryInfo(resolved.info.name, opened);
      if (info?.type !== "file" || fileId(opened) !== resolved.id) {
        throw new PathError(`Refused path ${quote(path)}: it changed while being opened`);
      }
      return { file, info, realPath: resolved.realPath };
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /**
   * Resolves the folder at `path` for writing into it and returns its real path. It must be a
   * folder inside the served one ({@link PathError} otherwise). With `create`, missing folders
   * are created one at a time, each only after its parent is checked again to be inside the
   * served folder; dangling links are refused rather than created through.
   */
  async resolveDir(path: string, options: { create?: boolean } = {}): Promise<string> {
    const components = parseRemotePath(path);
    if (!options.create) {
      const resolved = await this.#resolve(path);
      if (resolved.info.type !== "dir") {
        throw new PathError(`Cannot write into ${quote(path)}: it is not a folder`);
      }
      return resolved.realPath;
    }
    let current = this.root;
    const progress = { created: false };
    for (const component of components) {
      current = await this.#enterOrCreate(current, component, path, progress);
    }
    // The whole chain once more, in case a folder on it was swapped for a link meanwhile.
    if (progress.created && (await Deno.realPath(current)) !== current) {
      throw new PathError(`Refused path ${quote(path)}: it changed while being created`);
    }
    return current;
  }

  /**
   * Refuses (with {@link PathError}) a write to `realPath`, the real path an upload or a new
   * folder would take, when it is or lies inside an excluded path: the code file can never be
   * replaced, whatever the upload prefix or `--force`.
   */
  assertWritable(realPath: string, path: string): void {
    if (this.#isExcluded(realPath)) {
      throw new PathError(`Refused path ${quote(path)}: it is excluded from the served folder`);
    }
  }

  async #resolve(path: string): Promise<Resolved> {
    const components = parseRemotePath(path);
    const lexical = join(this.root, ...components);
    let realPath: string;
    let stat: Deno.FileInfo;
    try {
      realPath = await Deno.realPath(lexical);
      this.#confine(realPath, path);
      stat = await Deno.stat(realPath);
    } catch (error) {
      if (isMissing(error)) throw notFound(path, error);
      if (error instanceof Deno.errors.FilesystemLoop) {
        throw new PathError(`Refused path ${quote(path)}: it is a symbolic link loop`, {
          cause: error,
        });
      }
      throw error;
    }
    const info = entryInfo(components.at(-1) ?? "", stat);
    if (info === undefined) {
      throw new PathError(`Refused path ${quote(path)}: it is not a regular file or folder`);
    }
    return { realPath, info, id: fileId(stat), symlink: false };
  }

  /** Throws {@link PathError} unless `realPath` may be served. */
  #confine(realPath: string, shown: string): void {
    const problem = this.#problemWith(realPath);
    if (problem !== undefined) throw new PathError(`Refused path ${quote(shown)}: ${problem}`);
  }

  #problemWith(realPath: string): string | undefined {
    if (!isInside(this.root, realPath)) return "it leads outside the served folder";
    if (this.#isExcluded(realPath)) return "it is excluded from the served folder";
    const relative = realPath.slice(this.root.length);
    if (relative.split("/").some((part) => part.toLowerCase().startsWith(PARTIAL_PREFIX))) {
      return "it leads to a partial transfer file";
    }
    return undefined;
  }

  #isExcluded(realPath: string): boolean {
    return this.#excluded.some((excluded) => isInside(excluded, realPath));
  }

  /**
   * The visible children of the real folder `folder` in name order. The names are read and sorted
   * first; each child is looked up only when it is reached, so the listing holds names, not
   * entries.
   */
  async *#children(folder: string): AsyncIterable<Resolved> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(folder)) names.push(entry.name);
    names.sort(compareNames);
    // Looked up a window at a time, concurrently: one awaited lstat after another spends most of
    // its time handing work to Deno's thread pool (100,000 entries: 5.8 s, against 1.6 s this way).
    for (let start = 0; start < names.length; start += LOOKUP_WINDOW) {
      const window = names.slice(start, start + LOOKUP_WINDOW);
      for (const child of await Promise.all(window.map((name) => this.#child(folder, name)))) {
        if (child !== undefined) yield child;
      }
    }
  }

  /** The child `name` of the real folder `folder`, or undefined when it is hidden. */
  async #child(folder: string, name: string): Promise<Resolved | undefined> {
    if (!isValidName(name)) return undefined;
    const lexical = join(folder, name);
    if (this.#isExcluded(lexical)) return undefined;
    try {
      const linkStat = await Deno.lstat(lexical);
      const symlink = linkStat.isSymlink;
      const realPath = symlink ? await Deno.realPath(lexical) : lexical;
      if (this.#problemWith(realPath) !== undefined) return undefined;
      const stat = symlink ? await Deno.stat(realPath) : linkStat;
      const info = entryInfo(name, stat);
      return info === undefined ? undefined : { realPath, info, id: fileId(stat), symlink };
    } catch (error) {
      if (isUnreachable(error)) return undefined;
      throw error;
    }
  }

  async *#walkFolder(
    folder: string,
    relative: string,
    baseBytes: number,
    ancestors: Set<string>,
  ): AsyncIterable<EntryInfo & { path: string }> {
    for await (const child of this.#children(folder)) {
      if (child.symlink && child.info.type === "dir") continue;
      const path = relative === "" ? child.info.name : `${relative}/${child.info.name}`;
      if (baseBytes + utf8Length(path) > MAX_PATH_BYTES) continue;
      yield { path, ...child.info };
      if (child.info.type !== "dir") continue;
      const id = child.id;
      if (ancestors.has(id)) continue; // a bind mount of an ancestor
      // The folder may have been replaced by a link since it was listed: look again.
      if (!(await this.#isStillRealFolder(child.realPath))) continue;
      ancestors.add(id);
      yield* this.#walkFolder(child.realPath, path, baseBytes, ancestors);
      ancestors.delete(id);
    }
  }

  async #isStillRealFolder(realPath: string): Promise<boolean> {
    try {
      // Its parent is being walked, so only this last step can have become a link (lstat sees
      // it). A realPath here would cost one syscall per ancestor: depth³ for a deep tree.
      return this.#problemWith(realPath) === undefined && (await Deno.lstat(realPath)).isDirectory;
    } catch (error) {
      if (isUnreachable(error)) return false;
      throw error;
    }
  }

  /**
   * Returns the real path of `parent/component`, creating it as a folder when missing. `parent`
   * is a real path; `progress.created` records that a folder was made. The whole chain is looked
   * at (`realPath`, one syscall per component) only before the first folder is made; otherwise
   * the last step is (`lstat`), so that a 2,000-deep path costs depth², not depth³, syscalls.
   */
  async #enterOrCreate(
    parent: string,
    component: string,
    shown: string,
    progress: { created: boolean },
  ): Promise<string> {
    const lexical = join(parent, component);
    for (let attempt = 1; attempt <= MAX_CREATE_ATTEMPTS; attempt++) {
      let realPath: string | undefined;
      try {
        // Below a real parent, anything but a link is its own real path.
        realPath = (await Deno.lstat(lexical)).isSymlink ? await Deno.realPath(lexical) : lexical;
      } catch (error) {
        if (error instanceof Deno.errors.FilesystemLoop) {
          throw new PathError(`Refused path ${quote(shown)}: it is a symbolic link loop`, {
            cause: error,
          });
        }
        if (!isMissing(error)) throw error;
      }
      if (realPath !== undefined) {
        this.#confine(realPath, shown);
        if (!(await Deno.stat(realPath)).isDirectory) {
          throw new PathError(
            `Cannot write into ${quote(shown)}: "${sanitizeForDisplay(component)}" is not a folder`,
          );
        }
        return realPath;
      }
      if (await lexists(lexical)) {
        throw new PathError(`Refused path ${quote(shown)}: it goes through a dangling link`);
      }
      const parentIsReal = progress.created
        ? (await Deno.lstat(parent)).isDirectory
        : (await Deno.realPath(parent)) === parent;
      if (!parentIsReal) {
        throw new PathError(`Refused path ${quote(shown)}: it changed while being created`);
      }
      this.#confine(parent, shown);
      try {
        await Deno.mkdir(lexical);
        progress.created = true;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
    }
    throw new FerryError(`Cannot create folder ${quote(shown)}: it keeps changing`);
  }
}

/** The real path of a local path that may not exist yet (then its folder's real path is used). */
async function realPathOfLocal(path: string): Promise<string> {
  const absolute = resolvePath(path);
  try {
    return await Deno.realPath(absolute);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  try {
    return join(await Deno.realPath(dirname(absolute)), basename(absolute));
  } catch (error) {
    if (!isMissing(error)) throw error;
    return absolute;
  }
}

/** Describes a regular file or folder; undefined for other kinds (sockets, fifos, devices). */
function entryInfo(name: string, stat: Deno.FileInfo): EntryInfo | undefined {
  if (!stat.isFile && !stat.isDirectory) return undefined;
  return {
    name,
    type: stat.isFile ? "file" : "dir",
    size: stat.isFile ? stat.size : 0,
    mtime: stat.mtime?.getTime() ?? 0,
    mode: (stat.mode ?? 0) & 0o777,
  };
}

/** `inner` is `outer` or lies below it, compared component by component. */
function isInside(outer: string, inner: string): boolean {
  if (outer === "/") return inner.startsWith("/");
  return inner === outer || inner.startsWith(`${outer}/`);
}

function isValidName(name: string): boolean {
  try {
    validateName(name);
    return true;
  } catch (error) {
    if (error instanceof PathError) return false;
    throw error;
  }
}

async function lexists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

function fileId(stat: Deno.FileInfo): string {
  return `${stat.dev}:${stat.ino}`;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isMissing(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory;
}

/** Errors that make one entry of a listing invisible rather than failing the whole listing. */
function isUnreachable(error: unknown): boolean {
  return isMissing(error) || error instanceof Deno.errors.FilesystemLoop ||
    error instanceof Deno.errors.PermissionDenied;
}

function notFound(path: string, cause: unknown): NotFoundError {
  return new NotFoundError(`Cannot find ${quote(path)}: no such file or folder`, { cause });
}

function quote(text: string): string {
  return `"${sanitizeForDisplay(text)}"`;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
