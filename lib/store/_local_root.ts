/**
 * Confinement of `LocalStore`: validated remote path components -> a real path inside the served
 * folder, for reading (follow links while they stay inside) and for writing (enter or create
 * folders one component at a time, never through a link that leaves). Private to lib/store.
 *
 * Limitation: Deno offers no `openat`/`O_NOFOLLOW`, so a local user who can rename things inside
 * the folder while a request is served could swap in a link between the check and the use. The
 * window is narrowed (files are checked again by device and inode once opened, folders are
 * re-resolved before use) but not closed; remote peers themselves cannot create links.
 *
 * @module
 */
import { join } from "node:path/posix";
import { BusyError, FerryError, PathError } from "../errors.ts";
import { isSecretFileName, PARTIAL_PREFIX, sanitizeForDisplay } from "../protocol/remote_path.ts";
import {
  compareNames,
  entryInfo,
  fileId,
  hiddenPath,
  isInside,
  isMissing,
  isUnreachable,
  lexists,
  linkLoop,
  notFound,
  quote,
} from "./_local_paths.ts";
import { type EntryInfo, listingRefusal } from "./store.ts";

/** What is known about a confined entry. */
export interface Resolved {
  /** Its real path (no link on it), inside the served folder. */
  realPath: string;
  /** How it is shown. */
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
 * Names that the listings in progress may hold at once, all together (about 70 bytes of heap
 * each: some 140 MB). A listing reads a folder's names whole before it sends the first entry and
 * keeps them until it ends, however slowly its client reads: without a bound, 64 slow listings of
 * a folder of 300,000 files took a server past 4 GB and a fatal out-of-memory.
 */
export const DEFAULT_MAX_LISTED_NAMES = 2_000_000;

/**
 * The served folder's real path and the real paths excluded from it. Every method takes remote
 * path components already validated by `parseRemotePath`, plus the remote path as the user wrote
 * it, for messages. Permission: read on the folder; write for {@link enterFolders} with `create`.
 */
export class LocalRoot {
  /** Real path of the served folder (no symbolic links, no trailing slash). */
  readonly path: string;
  /** Real paths never listed nor served (each also hides what lies below it). */
  readonly #excluded: readonly string[];

  /** Names held by listings now, shared by the root and its views ({@link scoped}). */
  #listing: { names: number; readonly max: number };

  /**
   * `path` and `excluded` must be real paths (see `realPathOfLocal`); `maxListedNames` bounds the
   * names all listings hold at once ({@link DEFAULT_MAX_LISTED_NAMES}).
   */
  constructor(
    path: string,
    excluded: readonly string[],
    maxListedNames = DEFAULT_MAX_LISTED_NAMES,
  ) {
    this.path = path;
    this.#excluded = excluded;
    this.#listing = { names: 0, max: maxListedNames };
  }

  /**
   * The folder at the real path `realPath` (inside this one, already confined by the caller) as a
   * root of its own: the same excluded paths, and the same budget of listed names.
   */
  scoped(realPath: string): LocalRoot {
    const view = new LocalRoot(realPath, this.#excluded, this.#listing.max);
    view.#listing = this.#listing;
    return view;
  }

  /** Names held by the listings in progress now. */
  get listedNames(): number {
    return this.#listing.names;
  }

  /**
   * Resolves `components` to a real path inside the folder and describes it. {@link PathError}
   * when it leads outside (through a link), to an excluded path or a partial file, through a
   * link loop, or to something other than a regular file or folder; `NotFoundError` when missing.
   */
  resolve(components: readonly string[], shown: string): Resolved {
    const lexical = join(this.path, ...components);
    let realPath: string;
    let stat: Deno.FileInfo;
    try {
      realPath = Deno.realPathSync(lexical);
      this.confine(realPath, shown);
      stat = Deno.statSync(realPath);
    } catch (error) {
      if (isMissing(error)) throw notFound(shown, error);
      if (error instanceof Deno.errors.FilesystemLoop) throw linkLoop(shown, error);
      throw error;
    }
    const info = entryInfo(components.at(-1) ?? "", stat);
    if (info === undefined) {
      throw hiddenPath(shown, "it is not a regular file or folder");
    }
    return { realPath, info, id: fileId(stat), symlink: false };
  }

  /**
   * Throws unless `realPath` may be served or written: the `NotFoundError` of a missing path (see
   * `hiddenPath`), so that a link leading outside tells nothing of what exists there.
   */
  confine(realPath: string, shown: string): void {
    const problem = this.#problemWith(realPath);
    if (problem !== undefined) throw hiddenPath(shown, problem);
  }

  /** Whether `realPath` is, or lies inside, an excluded path. */
  isExcluded(realPath: string): boolean {
    return this.#excluded.some((excluded) => isInside(excluded, realPath));
  }

  #problemWith(realPath: string): string | undefined {
    if (!isInside(this.path, realPath)) return "it leads outside the served folder";
    if (this.isExcluded(realPath)) return "it is excluded from the served folder";
    const relative = realPath.slice(this.path.length);
    const parts = relative.split("/");
    if (parts.some((part) => part.toLowerCase().startsWith(PARTIAL_PREFIX))) {
      return "it leads to a partial transfer file";
    }
    if (parts.some(isSecretFileName)) return "it leads to a file that holds a secret";
    return undefined;
  }

  /**
   * The visible children of the real folder `folder` in name order. The names are read and sorted
   * first; each child is looked up only when it is reached, so a listing holds names, not entries
   * (a folder of 100,000 files costs a few megabytes instead of over a hundred). An entry that
   * vanishes meanwhile is skipped.
   */
  async *children(
    folder: string,
    shown: string,
    onSkipped?: (name: string, reason: string) => void,
  ): AsyncIterable<Resolved> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(folder)) {
        // Counted against the budget of all listings as they are read: a folder too big for
        // what is left is refused (`busy`) before it is held whole.
        if (this.#listing.names >= this.#listing.max) throw this.#tooManyNames(shown);
        this.#listing.names++;
        names.push(entry.name);
      }
      names.sort(compareNames);
      // Looked up a window at a time, concurrently: one awaited lstat after another spends most
      // of its time handing work to Deno's thread pool (100,000 entries: 5.8 s, against 1.6 s).
      for (let start = 0; start < names.length; start += LOOKUP_WINDOW) {
        const window = names.slice(start, start + LOOKUP_WINDOW);
        const children = window.map((name) => this.#child(folder, name, onSkipped));
        for (const child of await Promise.all(children)) {
          if (child !== undefined) yield child;
        }
      }
    } finally {
      this.#listing.names -= names.length;
    }
  }

  #tooManyNames(shown: string): BusyError {
    return new BusyError(
      `Cannot list ${quote(shown)} now: the server holds as many names for listings as it ` +
        "may; try again when they end",
    );
  }

  /**
   * The child `name` of the real folder `folder`, or undefined when it is hidden. A name that
   * cannot be listed (the path rules refuse it, or it is not valid UTF-8) is told to `onSkipped`
   * with why, so that nothing is left out silently; partial files stay hidden.
   */
  #child(
    folder: string,
    name: string,
    onSkipped?: (name: string, reason: string) => void,
  ): Resolved | undefined {
    const refused = listingRefusal(name);
    if (refused !== undefined) {
      if (refused !== "hidden") onSkipped?.(name, refused.skipped);
      return undefined;
    }
    const lexical = join(folder, name);
    if (this.isExcluded(lexical)) return undefined;
    try {
      const linkStat = Deno.lstatSync(lexical);
      const symlink = linkStat.isSymlink;
      const realPath = symlink ? Deno.realPathSync(lexical) : lexical;
      if (this.#problemWith(realPath) !== undefined) return undefined;
      const stat = symlink ? Deno.statSync(realPath) : linkStat;
      const info = entryInfo(name, stat);
      return info === undefined ? undefined : { realPath, info, id: fileId(stat), symlink };
    } catch (error) {
      if (isUnreachable(error)) return undefined;
      throw error;
    }
  }

  /**
   * Whether the real folder `realPath`, found while walking its parent, is still a folder and not
   * a link. Only this last step can have changed (the parent is being walked), so `lstat` sees
   * it; a `realPath` here would cost one syscall per ancestor: depth³ for a deep tree.
   */
  isStillRealFolder(realPath: string): boolean {
    try {
      return this.#problemWith(realPath) === undefined && (Deno.lstatSync(realPath)).isDirectory;
    } catch (error) {
      if (isUnreachable(error)) return false;
      throw error;
    }
  }

  /**
   * The real path of the folder at `components`, to write into. It must be a folder inside the
   * served one ({@link PathError} otherwise). With `create`, missing folders are created one at a
   * time (default mode), each only after its parent is checked again to be inside the served
   * folder; dangling links are refused rather than created through.
   */
  async enterFolders(
    components: readonly string[],
    shown: string,
    options: { create?: boolean } = {},
  ): Promise<string> {
    if (!options.create) {
      const resolved = await this.resolve(components, shown);
      if (resolved.info.type !== "dir") {
        throw new PathError(`Cannot write into ${quote(shown)}: it is not a folder`);
      }
      return resolved.realPath;
    }
    let current = this.path;
    const progress = { created: false };
    for (const component of components) {
      current = await this.#enterOrCreate(current, component, shown, progress);
    }
    // The whole chain once more, in case a folder on it was swapped for a link meanwhile.
    if (progress.created) await this.assertStillReal(current, shown);
    return current;
  }

  /** {@link PathError} unless `realPath` is still its own real path (no link swapped in). */
  assertStillReal(realPath: string, shown: string): void {
    if ((Deno.realPathSync(realPath)) !== realPath) {
      throw new PathError(`Refused path ${quote(shown)}: it changed while being created`);
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
      let entry: Deno.FileInfo | undefined;
      try {
        // Below a real parent, anything but a link is its own real path, and its lstat says what
        // it is: only a link costs a realpath and a stat (a tree upload enters its folders for
        // every file).
        entry = Deno.lstatSync(lexical);
        realPath = entry.isSymlink ? Deno.realPathSync(lexical) : lexical;
      } catch (error) {
        if (error instanceof Deno.errors.FilesystemLoop) throw linkLoop(shown, error);
        if (!isMissing(error)) throw error;
      }
      if (realPath !== undefined) {
        this.confine(realPath, shown);
        const isFolder = entry!.isSymlink
          ? (Deno.statSync(realPath)).isDirectory
          : entry!.isDirectory;
        if (!isFolder) {
          throw new PathError(
            `Cannot write into ${quote(shown)}: "${sanitizeForDisplay(component)}" is not a folder`,
          );
        }
        return realPath;
      }
      if (await lexists(lexical)) {
        throw hiddenPath(shown, "it goes through a dangling link");
      }
      const parentIsReal = progress.created
        ? (Deno.lstatSync(parent)).isDirectory
        : (Deno.realPathSync(parent)) === parent;
      if (!parentIsReal) {
        throw new PathError(`Refused path ${quote(shown)}: it changed while being created`);
      }
      this.confine(parent, shown);
      this.confine(lexical, shown); // not a folder where an excluded file is yet to come
      try {
        Deno.mkdirSync(lexical);
        progress.created = true;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
    }
    throw new FerryError(`Cannot create folder ${quote(shown)}: it keeps changing`);
  }
}
