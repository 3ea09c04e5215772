/**
 * What the server needs of the place it serves: the {@link FileStore} interface.
 *
 * Every path given to a store is an untrusted remote path (POSIX, relative to the served root),
 * which the store validates with `parseRemotePath` and confines before it touches anything. The
 * server never reaches the disk itself: it decides policy (rights, the upload prefix, `--force`)
 * and asks the store. `LocalStore` (lib/store/local.ts) serves a folder on disk; `S3Store`
 * (lib/store/s3.ts) a bucket of an S3-compatible object store; `MemoryStore` (lib/store/memory.ts)
 * keeps everything in memory for tests.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { NotFoundError, PathError } from "../errors.ts";
import type { SkippedEntry } from "../protocol/messages.ts";
import {
  isSecretFileName,
  nameProblem,
  notUtf8Problem,
  PARTIAL_PREFIX,
  sanitizeForDisplay,
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

/**
 * A file opened for reading. An upload that replaces the file meanwhile never mixes into what it
 * reads: on disk and in memory the old bytes stay readable; in an object store that keeps one
 * version (`S3Store`), reads end early and {@link changed} says so. Close it (or `using` it) when
 * done; closing twice is harmless.
 */
export interface StoredFile extends Disposable {
  /** What the file was when opened (size, mtime, mode). */
  readonly info: EntryInfo;
  /** Reads into `buffer` from the current position; `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Moves the read position. */
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
  /**
   * Whether the file changed since it was opened: written in place (size or modification time),
   * or replaced or removed under its name. A sender asks after sending it, so that a file read
   * while it changed is never committed on the other side.
   */
  changed(): Promise<boolean>;
  /** Releases the file. */
  close(): void;
}

/** How an upload or a download takes its final name. */
export interface CommitOptions {
  /** Replace an existing target (atomically) instead of refusing. */
  force: boolean;
  /** Permission bits to give the file, if known. */
  mode?: number;
  /** Modification time (ms since the epoch) to give the file, if known. */
  mtime?: number;
}

/**
 * The bytes of one file on their way in: kept under a hidden name until {@link commit}, so a cut
 * transfer leaves them for a resume and never under the final name. One writer at a time.
 */
export interface PendingFile {
  /** Bytes kept so far (from an earlier, cut transfer, or written since). */
  readonly size: number;
  /** SHA-256 state of the first `length` kept bytes (to check a resume against the source). */
  hashPrefix(length: number): Promise<Hash>;
  /** Drops the kept bytes past `length`; writing continues from there. */
  truncate(length: number): Promise<void>;
  /** Appends `bytes`. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Makes the bytes written so far durable, without naming them: {@link commit} then skips that
   * step unless more were written since. Flushing many pending files one after another, once all
   * of them are written, costs the disk far less than flushing each as it is finished (see
   * `CommitGroup`).
   */
  flush(): Promise<void>;
  /**
   * Makes the bytes durable (unless {@link flush} already did) and gives them their final name. Throws `ExistsError` when a file took
   * the name meanwhile (without `force`; the bytes stay kept), `PathError` when a folder did
   * (with or without `force`). Either way the pending file is closed: {@link discard} still
   * removes the kept bytes.
   */
  commit(options: CommitOptions): Promise<void>;
  /** Closes and deletes the kept bytes. */
  discard(): Promise<void>;
  /** Closes and keeps the bytes for a later resume. */
  close(): void;
}

/** What is at a path itself, a symbolic link not followed (see {@link FileStore.targetKind}). */
export type TargetKind = "missing" | "file" | "dir" | "link" | "other";

/**
 * The served place. Read methods throw `PathError` for a refused or confined-away path and
 * `NotFoundError` for a missing one; write methods never write outside the root, nor onto an
 * excluded path (the code file), nor through a symbolic link.
 */
export interface FileStore {
  /** Describes the entry at `path` (a file or a folder). */
  resolve(path: string): Promise<EntryInfo>;
  /**
   * The direct children of the folder at `path` in name order (UTF-16 code units), or the entry
   * itself when `path` is a file. Hidden: partial files, excluded paths, refused names, links
   * that leave the root or lead nowhere, anything but regular files and folders.
   */
  entries(path: string, options?: WalkOptions): AsyncIterable<EntryInfo>;
  /**
   * Every file and folder below the folder at `path`, depth first in name order, each with its
   * POSIX path relative to `path`; linked folders are not entered. `PathError` for a file.
   */
  walk(path: string, options?: WalkOptions): AsyncIterable<EntryInfo & { path: string }>;
  /** Opens the regular file at `path` for reading; `IsFolderError` (a `PathError`) for a folder. */
  openRead(path: string): Promise<StoredFile>;
  /**
   * The regular file at `path` itself, opened for reading, if there is one: a link is not
   * followed, a folder, anything else or nothing (its folder missing too) gives `null`. For the
   * skip-identical check of uploads, so `PathError` for an excluded path (it must not become an
   * oracle for the code file) and, as for {@link targetKind}, when a file stands where the folder
   * of `path` should be.
   */
  openExisting(path: string): Promise<StoredFile | null>;
  /**
   * What is at `path` itself, a link not followed: where an upload is about to land. `missing`
   * also when the folder of `path` is missing; `PathError` for an excluded path and when a file
   * stands where the folder of `path` should be (an upload could not land there either).
   */
  targetKind(path: string): Promise<TargetKind>;
  /**
   * Creates the folder at `path`, and any missing folder above it, one component at a time; an
   * existing folder is fine. A new folder at `path` gets `mode` (always owner-accessible: `(mode &
   * 0o777) | 0o700`; folders created above it get the default); `mtime` (ms since the epoch) is
   * applied to the folder at `path` whether new or not. `ExistsError` when something other than
   * a folder (a link too) is at `path`; `PathError` when a file stands above it, or for an
   * excluded path.
   */
  makeFolder(path: string, options?: { mode?: number; mtime?: number }): Promise<void>;
  /**
   * Starts (or takes up again) receiving the file at `path`: missing folders above it are created
   * as by {@link makeFolder}; the kept bytes of a cut transfer are there to resume. `BusyError`
   * when another transfer is writing the same file; `PathError` for an excluded path, for the
   * served folder itself (`""`), or when a file stands above it. What is at `path` itself is
   * only looked at by {@link PendingFile.commit}.
   */
  beginUpload(path: string): Promise<PendingFile>;
  /**
   * A view of the folder at `path` as a store of its own, for a code limited to that folder: its
   * root is that folder, and the same confinement applies to it (no `..`, no absolute path, no
   * link that leaves it), so no path, listing or error of the view says anything of what lies
   * above it. `NotFoundError` when `path` names no folder (missing, hidden, or a file). Optional:
   * a store without it cannot serve codes limited to a folder.
   */
  scope?(path: string): Promise<FileStore>;
}

/** Options of `FileStore.entries` and `FileStore.walk`. */
export interface WalkOptions {
  /**
   * Told of each entry that exists but cannot be listed because of its name (the path rules
   * refuse it, or it is not valid UTF-8): its path relative to the listed folder, escaped for
   * display, and why. Partial files, excluded paths and links that leave the folder stay hidden.
   */
  onSkipped?: (entry: SkippedEntry) => void;
}

/** The answer of every store for a remote `path` that does not exist. */
export function notFound(path: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`Cannot find "${sanitizeForDisplay(path)}": no such file or folder`, {
    cause,
  });
}

/**
 * The answer of every store for a remote `path` that may not be served or written for `reason`
 * (it leads outside the served folder, is excluded, a partial file, a link loop, a dangling link, a
 * device...): the very {@link NotFoundError} a missing path gets, so that no answer tells what
 * exists on the server's disk. The reason stays in `cause`, for the server's log.
 */
export function hiddenPath(path: string, reason: string, cause?: unknown): NotFoundError {
  return notFound(
    path,
    new PathError(`Refused path "${sanitizeForDisplay(path)}": ${reason}`, { cause }),
  );
}

/**
 * `options.onSkipped` for the children of the folder at `relative` (a remote path, `""` for the
 * top), taking their bare names: each store reports the names it leaves out of a listing with it,
 * so the other side sees the same path shapes whatever the store.
 */
export function skippedTo(
  options: WalkOptions,
  relative: string,
): ((name: string, reason: string) => void) | undefined {
  const onSkipped = options.onSkipped;
  if (onSkipped === undefined) return undefined;
  return (name, reason) =>
    onSkipped({
      name: sanitizeForDisplay(relative === "" ? name : `${relative}/${name}`),
      reason,
    });
}

/**
 * How a listing treats a name found in a store: `undefined` to show it; `"hidden"` to leave it
 * out without a word (a partial transfer file, a file holding a secret); otherwise the reason to
 * leave it out and report it as skipped (a name the path rules refuse, or one that is not valid
 * UTF-8), so that nothing is left out silently. Every store lists through it.
 */
export function listingRefusal(name: string): "hidden" | { skipped: string } | undefined {
  if (name.toLowerCase().startsWith(PARTIAL_PREFIX) || isSecretFileName(name)) return "hidden";
  const notUtf8 = notUtf8Problem(name);
  if (notUtf8 !== undefined) return { skipped: notUtf8 };
  const problem = nameProblem(name);
  return problem === undefined ? undefined : { skipped: `its name is refused: ${problem}` };
}
