/**
 * The served folder on disk: {@link LocalStore}, the {@link FileStore} of `ferry serve`.
 *
 * Every request goes through one confinement (lib/store/_local_root.ts): the untrusted remote path
 * is validated with {@link parseRemotePath} before it is joined to anything, resolved with
 * `Deno.realPath`, and the real path must be the folder or lie inside it. Symbolic links are
 * followed only while they stay inside the folder; walks never descend into linked folders;
 * writes never go through a link, nor onto an excluded path (the code file).
 *
 * Needs `--allow-read` for the served folder, and `--allow-write` for it to take uploads.
 *
 * @module
 */
import { join } from "node:path/posix";
import { lstatOrNull } from "../_fs.ts";
import { ExistsError, IsFolderError, NotFoundError, PathError } from "../errors.ts";
import {
  MAX_PATH_BYTES,
  parseRemotePath,
  sanitizeForDisplay,
  validateLocalName,
} from "../protocol/remote_path.ts";
import { LocalStoredFile } from "./_local_file.ts";
import {
  fileId,
  hiddenPath,
  isMissing,
  notFound,
  quote,
  realPathOfLocal,
  utf8Length,
} from "./_local_paths.ts";
import { LocalRoot } from "./_local_root.ts";
import { PartialFile } from "./partial_file.ts";
import {
  type EntryInfo,
  type FileStore,
  type PendingFile,
  skippedTo,
  type StoredFile,
  type TargetKind,
  type WalkOptions,
} from "./store.ts";

export type { EntryInfo } from "./store.ts";

/**
 * The served folder. Create with {@link LocalStore.open}.
 *
 * Permissions: every method needs read access to the folder (`--allow-read=<folder>`); the
 * write methods ({@link makeFolder}, {@link beginUpload}) need write access too.
 */
export class LocalStore implements FileStore {
  #root: LocalRoot;

  private constructor(root: LocalRoot) {
    this.#root = root;
  }

  /**
   * Opens the folder at `root`, which must exist ({@link NotFoundError}) and be a folder
   * ({@link PathError}). `exclude` lists local paths, absolute or relative to the working
   * directory, that are never listed, served nor written (the code file when it lies inside the
   * folder); they need not exist yet. `maxListedNames` bounds the names that all listings in
   * progress hold at once (default `DEFAULT_MAX_LISTED_NAMES`, 2,000,000); a listing that would
   * pass it is refused with `BusyError`.
   */
  static async open(
    root: string,
    options: { exclude?: string[]; maxListedNames?: number } = {},
  ): Promise<LocalStore> {
    let realRoot: string;
    try {
      realRoot = Deno.realPathSync(root);
    } catch (error) {
      if (isMissing(error)) {
        throw new NotFoundError(`Cannot serve ${quote(root)}: no such folder`, { cause: error });
      }
      throw error;
    }
    if (!(Deno.statSync(realRoot)).isDirectory) {
      throw new PathError(`Cannot serve ${quote(root)}: it is not a folder`);
    }
    const excluded = await Promise.all((options.exclude ?? []).map(realPathOfLocal));
    return new LocalStore(new LocalRoot(realRoot, excluded, options.maxListedNames));
  }

  /** Real path of the served folder (no symbolic links, no trailing slash). */
  get root(): string {
    return this.#root.path;
  }

  /**
   * Describes the entry at the untrusted remote `path`. Throws {@link PathError} when the string
   * is refused, when it leads outside the folder (through a symbolic link), to an excluded path,
   * through a link loop, or to something other than a regular file or folder;
   * {@link NotFoundError} when it names nothing.
   */
  async resolve(path: string): Promise<EntryInfo> {
    return (await this.#root.resolve(parseLocalPath(path), path)).info;
  }

  /** Names held by the listings in progress now (see `maxListedNames` in {@link open}). */
  get listedNames(): number {
    return this.#root.listedNames;
  }

  /**
   * The direct children of the folder at `path`, sorted by name (by UTF-16 code units), or the
   * entry itself when `path` is a file. Hidden: partial files, excluded paths, names that
   * {@link parseRemotePath} refuses, symbolic links that leave the folder or lead nowhere, and
   * anything that is not a regular file or folder. Only the folder's names are held (and sorted);
   * each entry is looked up when it is reached. An entry that vanishes meanwhile is skipped.
   */
  async *entries(path: string, options: WalkOptions = {}): AsyncIterable<EntryInfo> {
    const resolved = await this.#root.resolve(parseLocalPath(path), path);
    if (resolved.info.type === "file") {
      yield resolved.info;
      return;
    }
    const skipped = skippedTo(options, "");
    for await (const child of this.#root.children(resolved.realPath, path, skipped)) {
      yield child.info;
    }
  }

  /**
   * Every file and folder below the folder at `path`, depth first in name order, each with its
   * POSIX path relative to `path`. Folders are reported (so empty ones survive a copy); linked
   * folders are skipped entirely (no loops, no escapes); hiding rules are those of
   * {@link entries}, and entries whose full remote path would exceed {@link MAX_PATH_BYTES} are
   * skipped too. Throws {@link PathError} when `path` is a file.
   */
  async *walk(
    path: string,
    options: WalkOptions = {},
  ): AsyncIterable<EntryInfo & { path: string }> {
    const components = parseLocalPath(path);
    const start = await this.#root.resolve(components, path);
    if (start.info.type !== "dir") {
      throw new PathError(`Cannot walk ${quote(path)}: it is not a folder`);
    }
    const baseBytes = components.length === 0 ? 0 : utf8Length(components.join("/")) + 1;
    yield* this.#walkFolder(start.realPath, "", baseBytes, new Set([start.id]), path, options);
  }

  async *#walkFolder(
    folder: string,
    relative: string,
    baseBytes: number,
    ancestors: Set<string>,
    shown: string,
    options: WalkOptions,
  ): AsyncIterable<EntryInfo & { path: string }> {
    const skipped = skippedTo(options, relative);
    for await (const child of this.#root.children(folder, shown, skipped)) {
      if (child.symlink && child.info.type === "dir") continue;
      const path = relative === "" ? child.info.name : `${relative}/${child.info.name}`;
      if (baseBytes + utf8Length(path) > MAX_PATH_BYTES) continue;
      yield { path, ...child.info };
      if (child.info.type !== "dir") continue;
      const id = child.id;
      if (ancestors.has(id)) continue; // a bind mount of an ancestor
      // The folder may have been replaced by a link since it was listed: look again.
      if (!(await this.#root.isStillRealFolder(child.realPath))) continue;
      ancestors.add(id);
      yield* this.#walkFolder(child.realPath, path, baseBytes, ancestors, shown, options);
      ancestors.delete(id);
    }
  }

  /**
   * Opens the regular file at `path` for reading; {@link PathError} when it is a folder or when
   * it was replaced between the check and the open. The caller closes the file.
   */
  async openRead(path: string): Promise<StoredFile> {
    const resolved = await this.#root.resolve(parseLocalPath(path), path);
    if (resolved.info.type !== "file") {
      throw new IsFolderError(`${sanitizeForDisplay(path)} is a folder`);
    }
    let file: LocalStoredFile | null;
    try {
      file = await LocalStoredFile.open(resolved.realPath, resolved.id, resolved.info.name);
    } catch (error) {
      throw isMissing(error) ? notFound(path, error) : error;
    }
    if (file === null) {
      throw new PathError(`Refused path ${quote(path)}: it changed while being opened`);
    }
    return file;
  }

  /**
   * The regular file at `path` itself, if there is one (a link is not followed; a folder,
   * anything else, nothing, or a file replaced while it was opened give `null`), opened for
   * reading. {@link PathError} for an excluded path, or when a file stands where its folder
   * should be.
   */
  async openExisting(path: string): Promise<StoredFile | null> {
    const target = await this.#target(path);
    if (target === null) return null;
    const existing = await lstatOrNull(target.lexical);
    if (!existing?.isFile) return null;
    try {
      return await LocalStoredFile.open(target.lexical, fileId(existing), target.name);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  /**
   * What is at `path` itself, a link not followed, once its folder is confined: `missing` also
   * when the folder is. {@link PathError} for an excluded path, or when a file stands where its
   * folder should be.
   */
  async targetKind(path: string): Promise<TargetKind> {
    const target = await this.#target(path);
    if (target === null) return "missing";
    const info = await lstatOrNull(target.lexical);
    if (info === null) return "missing";
    if (info.isSymlink) return "link";
    return info.isFile ? "file" : info.isDirectory ? "dir" : "other";
  }

  /**
   * Where `path` would land: its confined folder's real path joined with its name, or `null` when
   * that folder does not exist. The served folder itself is its own target.
   */
  async #target(path: string): Promise<{ lexical: string; name: string } | null> {
    const components = parseLocalPath(path);
    const name = components.pop();
    if (name === undefined) return { lexical: this.#root.path, name: "" };
    let folder: string;
    try {
      folder = await this.#root.enterFolders(components, path);
    } catch (error) {
      if (error instanceof NotFoundError) return null;
      throw error;
    }
    const lexical = join(folder, name);
    this.#assertWritable(lexical, path);
    return { lexical, name };
  }

  /**
   * Creates the folder at `path`, and any missing folder above it, one component at a time and
   * never through a link; an existing folder is fine. A new folder at `path` gets
   * `(mode & 0o777) | 0o700` (less the umask; without `mode`, as any new folder); `mtime` is applied to the folder at `path`, new or
   * not. {@link ExistsError} when something else than a folder (a link too) is at `path`;
   * {@link PathError} when a file stands above it, or for an excluded path.
   */
  async makeFolder(path: string, options: { mode?: number; mtime?: number } = {}): Promise<void> {
    const components = parseLocalPath(path);
    const name = components.pop();
    let folder = this.#root.path;
    if (name !== undefined) {
      const parent = await this.#root.enterFolders(components, path, { create: true });
      folder = join(parent, name);
      this.#assertWritable(folder, path);
      try {
        const mode = options.mode === undefined ? 0o777 : (options.mode & 0o777) | 0o700;
        Deno.mkdirSync(folder, { mode });
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      if (!(Deno.lstatSync(folder)).isDirectory) {
        throw new ExistsError(`${quote(path)} exists and is not a folder`);
      }
      await this.#root.assertStillReal(folder, path);
    }
    if (options.mtime !== undefined) {
      const time = new Date(options.mtime);
      Deno.utimeSync(folder, time, time);
    }
  }

  /**
   * Starts (or takes up again) receiving the file at `path` into a hidden partial file beside it:
   * missing folders above it are created as by {@link makeFolder}. `BusyError` when another
   * transfer holds the same partial file; {@link PathError} for an excluded path or the served
   * folder itself.
   */
  async beginUpload(path: string): Promise<PendingFile> {
    const components = parseLocalPath(path);
    const name = components.pop();
    if (name === undefined) {
      throw new PathError(`Cannot receive ${quote(path)}: it is the served folder itself`);
    }
    const folder = await this.#root.enterFolders(components, path, { create: true });
    this.#assertWritable(join(folder, name), path);
    return await PartialFile.open(folder, name, path);
  }

  /**
   * The folder at the untrusted remote `path` as a store of its own (see `FileStore.scope`): a
   * `LocalStore` whose root is that folder's real path, with the same excluded paths and the same
   * budget of listed names. {@link NotFoundError} when `path` names no folder that may be served
   * (missing, leading outside, excluded, or a file).
   */
  async scope(path: string): Promise<LocalStore> {
    const resolved = await this.#root.resolve(parseLocalPath(path), path);
    if (resolved.info.type !== "dir") throw notFound(path);
    return new LocalStore(this.#root.scoped(resolved.realPath));
  }

  #assertWritable(realPath: string, path: string): void {
    if (this.#root.isExcluded(realPath)) {
      throw hiddenPath(path, "it is excluded from the served folder");
    }
  }
}

/**
 * The components of a remote path, each also a name this platform can store: on Windows, no
 * `aux.c`, no `trailing.`, no `C:x` (see `validateLocalName`), for reads as for writes, so that
 * no name can mean something else to the file system than it says.
 */
function parseLocalPath(path: string): string[] {
  const components = parseRemotePath(path);
  if (Deno.build.os === "windows") {
    for (const component of components) validateLocalName(component);
  }
  return components;
}
