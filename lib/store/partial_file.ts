/**
 * Atomic, resumable file writes, shared by the server (uploads) and the client (downloads).
 *
 * Bytes go to a hidden partial file beside the target (`.ferry-partial.<name>`); only when all of
 * them have arrived and passed their checks is the partial file flushed to disk and linked (or
 * renamed) into place. A cut transfer leaves the partial file, which the next attempt
 * resumes after checking that its prefix still matches the source.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { join } from "node:path";
import { lstatOrNull, settle, writeAll, writeAllSync } from "../_fs.ts";
import { hashFilePrefix } from "../transfer/hashing.ts";
import { BusyError, ExistsError, PathError } from "../errors.ts";
import { partialNameFor, sanitizeForDisplay, validateLocalName } from "../protocol/remote_path.ts";
import type { CommitOptions, PendingFile } from "./store.ts";

export type { CommitOptions } from "./store.ts";

/** Writes up to this size are made synchronously (see lib/_fs.ts); bigger ones overlap. */
const SYNC_WRITE_MAX_BYTES = 64 * 1024;

/**
 * After this many bytes written since the last flush, a flush starts in the background while the
 * writing goes on. Linux keeps written data in memory until about a tenth of its RAM is dirty
 * (2.4 GB on the 24 GB machine this was measured on), so without it the flush before the commit
 * wrote a whole 1 GiB file at the end, with the transfer stopped (0.75 s there); with it, the
 * disk writes while the network delivers, and the last flush waits for the tail only.
 *
 * The background flush goes through a second handle on the same file: Deno queues the operations
 * of one handle behind each other, so a flush through the writing handle held every write up
 * until it ended (measured: 1 GiB written and flushed in 2.3-2.7 s that way, 1.2 s through a
 * second handle, 2.6-3.3 s with one flush at the end).
 */
export const FLUSH_AHEAD_BYTES: number = 32 * 1024 * 1024;

/** The hidden partial file of one transfer into `dir/name`: the {@link PendingFile} on disk. */
export class PartialFile implements PendingFile {
  /** Real path of the partial file. */
  readonly path: string;
  /** Real path the file takes when committed. */
  readonly targetPath: string;
  /** How the target is named in messages. */
  readonly #shown: string;
  #file: Deno.FsFile;
  #size: number;
  /** Whether every byte written so far is durable (see {@link flush}). */
  #flushed = false;
  /** Bytes written since the last flush began. */
  #unflushedBytes = 0;
  /** The flush started by {@link write} and still running; it never rejects. */
  #flushAhead: Promise<void> | undefined;
  /** The second handle background flushes go through; `false` when it could not be had. */
  #flushHandle: Deno.FsFile | false | undefined;
  /** What the last background flush failed with, for {@link flush} to throw. */
  #flushAheadError: unknown;

  private constructor(
    path: string,
    targetPath: string,
    shown: string,
    file: Deno.FsFile,
    size: number,
  ) {
    this.path = path;
    this.targetPath = targetPath;
    this.#shown = shown;
    this.#file = file;
    this.#size = size;
  }

  /**
   * Opens (or creates, mode 0600) the partial file for `name` in the folder `dir`, which the caller
   * has already confined. A partial name that is not a regular file (say, a planted symlink) is
   * removed first, and so is one with other hard links: a commit cut between its link and unlink
   * leaves the partial name on the committed file, which must never be written through.
   * Messages name the target `shown` (default: its path on disk; the server gives the remote
   * path, so that no reply tells a client where the served folder lies). Needs read and write
   * permission on `dir`.
   */
  static async open(dir: string, name: string, shown = join(dir, name)): Promise<PartialFile> {
    validateLocalName(name); // a name this platform can store (see remote_path.ts)
    const path = join(dir, partialNameFor(name));
    // Most transfers start afresh: a partial file this call creates is new, a regular file with
    // one link, and nobody else's; only the lock is still to take. Two system calls instead of five.
    const created = await createNew(path);
    if (created !== null) {
      await lockOrBusy(created, name);
      return new PartialFile(path, join(dir, name), shown, created, 0);
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await lstatOrNull(path);
      if (existing !== null && (!existing.isFile || (existing.nlink ?? 1) > 1)) {
        await removeIfPresent(path);
      }
      const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
      await lockOrBusy(file, name);
      const opened = file.statSync();
      const current = await lstatOrNull(path);
      if (current !== null && current.ino === opened.ino && current.dev === opened.dev) {
        return new PartialFile(path, join(dir, name), shown, file, opened.size);
      }
      file.close(); // the name moved on meanwhile (another transfer committed it): start afresh
    }
    throw new BusyError(`${sanitizeForDisplay(name)} keeps changing under another transfer`);
  }

  /** Bytes currently kept. */
  get size(): number {
    return this.#size;
  }

  /** SHA-256 state of the first `length` bytes kept (`length` at most {@link size}). */
  hashPrefix(length: number): Promise<Hash> {
    return hashFilePrefix(this.#file, length);
  }

  /** Keeps only the first `length` bytes and positions writes after them. */
  truncate(length: number): Promise<void> {
    return settle(() => {
      if (length === 0 && this.#size === 0) return; // a new file: nothing kept, nothing read yet
      this.#flushed = false;
      this.#file.truncateSync(length);
      this.#file.seekSync(length, Deno.SeekMode.Start);
      this.#size = length;
    });
  }

  /**
   * Appends `bytes`. Every {@link FLUSH_AHEAD_BYTES}, starts flushing what is written so far in
   * the background (one such flush at a time), so that the disk keeps up with a big file.
   */
  async write(bytes: Uint8Array): Promise<void> {
    this.#flushed = false;
    if (bytes.length <= SYNC_WRITE_MAX_BYTES) writeAllSync(this.#file, bytes);
    else await writeAll(this.#file, bytes);
    this.#size += bytes.length;
    this.#unflushedBytes += bytes.length;
    if (this.#unflushedBytes < FLUSH_AHEAD_BYTES || this.#flushAhead !== undefined) return;
    if (this.#flushHandle === undefined) this.#flushHandle = this.#openFlushHandle() ?? false;
    if (this.#flushHandle) {
      this.#unflushedBytes = 0;
      this.#flushAhead = this.#flushHandle.syncData().then(
        () => {
          this.#flushAhead = undefined;
        },
        (error) => {
          this.#flushAhead = undefined;
          this.#flushAheadError ??= error; // thrown by flush(); a discarded file never asks
        },
      );
    }
  }

  /**
   * A second handle on this same file, for flushing in the background; `null` when the partial
   * name no longer leads to it (then only the final flush runs). The name is opened only if it is
   * still this very file, not a link (Deno cannot open without following one), and for reading
   * and writing, so that even a FIFO swapped in at that instant cannot block the open; the handle
   * is checked again once open, and never written through.
   */
  #openFlushHandle(): Deno.FsFile | null {
    let handle: Deno.FsFile | undefined;
    try {
      const mine = this.#file.statSync();
      const named = Deno.lstatSync(this.path);
      if (!named.isFile || named.ino !== mine.ino || named.dev !== mine.dev) return null;
      handle = Deno.openSync(this.path, { read: true, write: true });
      const opened = handle.statSync();
      if (opened.ino === mine.ino && opened.dev === mine.dev) return handle;
    } catch {
      // moved or removed meanwhile: the final flush alone makes the file durable
    }
    handle?.close();
    return null;
  }

  /** Closes the background flush's handle, once its flush has ended. */
  async #closeFlushHandle(): Promise<void> {
    await this.#flushAhead;
    this.#dropFlushHandle();
  }

  /** Closes the background flush's handle now (a flush still running on it just fails quietly). */
  #dropFlushHandle(): void {
    if (this.#flushHandle) this.#flushHandle.close();
    this.#flushHandle = false;
  }

  /** Makes the bytes written so far durable (see `PendingFile.flush`). */
  async flush(): Promise<void> {
    if (this.#flushed) return;
    await this.#flushAhead;
    if (this.#flushAheadError !== undefined) throw this.#flushAheadError;
    this.#unflushedBytes = 0;
    await this.#file.syncData();
    this.#flushed = true;
  }

  /**
   * Flushes the data to disk, applies mode and mtime, and moves the file to its target name: with
   * `force` by an atomic rename over whatever is there, otherwise by a hard link that fails if the
   * target exists (no window in which an existing file could be replaced), then removal of the
   * partial name. `ExistsError` when a file took the name (without `force`; the partial file is
   * kept), `PathError` when a folder did.
   */
  async commit(options: CommitOptions): Promise<void> {
    await this.flush();
    await this.#closeFlushHandle();
    if (options.mode !== undefined) Deno.chmodSync(this.path, options.mode & 0o777);
    if (options.mtime !== undefined) {
      const time = new Date(options.mtime);
      this.#file.utimeSync(time, time);
    }
    this.#file.close();
    if (options.force) {
      if ((await lstatOrNull(this.targetPath))?.isDirectory) {
        throw this.#isAFolder();
      }
      Deno.renameSync(this.path, this.targetPath);
      return;
    }
    try {
      Deno.linkSync(this.path, this.targetPath);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      if ((await lstatOrNull(this.targetPath))?.isDirectory) throw this.#isAFolder();
      throw new ExistsError(
        `${sanitizeForDisplay(this.#shown)} already exists: use --force to replace it`,
      );
    }
    await removeIfPresent(this.path);
  }

  #isAFolder(): PathError {
    return new PathError(`Cannot replace ${sanitizeForDisplay(this.#shown)}: it is a folder`);
  }

  /** Closes the file and keeps the partial data for a later resume. */
  close(): void {
    this.#dropFlushHandle();
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }

  /** Closes the file and deletes the partial data (it cannot be trusted or is not wanted). */
  async discard(): Promise<void> {
    await this.#closeFlushHandle(); // a flush of data about to go: let it end first
    // Unlinked while still locked, so no other transfer can take the name in between.
    try {
      await removeIfPresent(this.path);
    } finally {
      this.close();
    }
  }
}

/** Removes `path`; nothing there is fine (another transfer may have removed it first). */
function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Creates `path` (mode 0600) for reading and writing; `null` when something has that name. */
function createNew(path: string): Deno.FsFile | null {
  try {
    return Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return null;
    throw error;
  }
}

/**
 * Locks the partial file `file` of `name`: one writer per partial file, across processes too (two
 * `get`s of one file into one folder would otherwise truncate each other's bytes). Closes it and
 * throws `BusyError` when another transfer holds it.
 */
async function lockOrBusy(file: Deno.FsFile, name: string): Promise<void> {
  if (await tryLockExclusive(file)) return;
  file.close();
  throw new BusyError(
    `${sanitizeForDisplay(name)} is being received by another transfer: try again when it ends`,
  );
}

/**
 * Takes an exclusive advisory lock without waiting: false when another holder has it. A file
 * system that cannot lock at all (some network mounts) does not stop the transfer.
 */
function tryLockExclusive(file: Deno.FsFile): boolean {
  try {
    return file.tryLockSync(true);
  } catch {
    return true;
  }
}
