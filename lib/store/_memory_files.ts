/**
 * The tree of `MemoryStore` (folders, files as byte arrays, the hidden bytes of uploads in
 * progress) and its files opened for reading ({@link MemoryStoredFile}) or being received
 * ({@link MemoryPendingFile}). Private to lib/store.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { settle } from "../_fs.ts";
import { BusyError, ExistsError, PathError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { newSha256 } from "../transfer/hashing.ts";
import type { CommitOptions, EntryInfo, PendingFile, StoredFile } from "./store.ts";

/** A file: its bytes are never changed in place (a commit puts new ones), so readers keep theirs. */
export interface MemoryFile {
  /** Discriminant. */
  kind: "file";
  /** The content. */
  bytes: Uint8Array;
  /** Last modification, ms since the epoch. */
  mtime: number;
  /** Permission bits. */
  mode: number;
}

/** A folder: its visible children, and the kept bytes of uploads into it, by target name. */
export interface MemoryFolder {
  /** Discriminant. */
  kind: "dir";
  /** Visible children by name. */
  children: Map<string, MemoryNode>;
  /** Uploads in progress or cut, by the name they will take: never listed. */
  partials: Map<string, MemoryPartial>;
  /** Last modification, ms since the epoch: set whenever a child or partial comes or goes. */
  mtime: number;
  /** Permission bits. */
  mode: number;
}

/** Anything in the tree. */
export type MemoryNode = MemoryFile | MemoryFolder;

/** The kept bytes of one upload (the memory twin of a `.ferry-partial.` file). */
export interface MemoryPartial {
  /** Storage; only the first `size` bytes count. */
  bytes: Uint8Array;
  /** Bytes kept. */
  size: number;
  /** A {@link MemoryPendingFile} holds it open (the twin of the partial file's lock). */
  held: boolean;
}

/** Mode of a file committed without one (a partial file is created 0600). */
export const NEW_FILE_MODE = 0o600;
/** Mode of a folder created without one (0777 less the usual umask 022). */
export const NEW_FOLDER_MODE = 0o755;

/** A new, empty folder. */
export function newFolder(mode = NEW_FOLDER_MODE): MemoryFolder {
  return { kind: "dir", children: new Map(), partials: new Map(), mtime: Date.now(), mode };
}

/** How `node` is shown under `name`. */
export function describe(name: string, node: MemoryNode): EntryInfo {
  return {
    name,
    type: node.kind,
    size: node.kind === "file" ? node.bytes.length : 0,
    mtime: node.mtime,
    mode: node.mode & 0o777,
  };
}

/** A file of a `MemoryStore` opened for reading: the bytes it had when opened. */
export class MemoryStoredFile implements StoredFile {
  /** What the file was when opened. */
  readonly info: EntryInfo;
  #bytes: Uint8Array;
  #position = 0;
  #closed = false;
  #file: MemoryFile;
  #current: () => MemoryNode | undefined;

  /**
   * Opens `file`, shown as `name`; `current` finds what its name leads to now (a committed
   * upload replaces the node, it never changes bytes in place).
   */
  constructor(name: string, file: MemoryFile, current: () => MemoryNode | undefined = () => file) {
    this.info = describe(name, file);
    this.#bytes = file.bytes;
    this.#file = file;
    this.#current = current;
  }

  /** Whether the name now leads to another file (replaced or removed since it was opened). */
  changed(): Promise<boolean> {
    return Promise.resolve(this.#current() !== this.#file);
  }

  /** Reads into `buffer` from the current position; `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null> {
    return settle(() => {
      this.#assertOpen();
      if (buffer.length === 0) return 0;
      if (this.#position >= this.#bytes.length) return null;
      const chunk = this.#bytes.subarray(this.#position, this.#position + buffer.length);
      buffer.set(chunk);
      this.#position += chunk.length;
      return chunk.length;
    });
  }

  /** Moves the read position (past the end is allowed; before the start is not). */
  seek(offset: number, whence: Deno.SeekMode): Promise<number> {
    return settle(() => {
      this.#assertOpen();
      const base = whence === Deno.SeekMode.Start
        ? 0
        : whence === Deno.SeekMode.Current
        ? this.#position
        : this.#bytes.length;
      if (base + offset < 0) throw new TypeError("Cannot seek before the start of the file");
      this.#position = base + offset;
      return this.#position;
    });
  }

  /** Releases the file; closing twice is harmless. */
  close(): void {
    this.#closed = true;
  }

  /** Same as {@link close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource("The file is closed");
  }
}

/** One upload into a `MemoryStore`: the {@link PendingFile} in memory. */
export class MemoryPendingFile implements PendingFile {
  #folder: MemoryFolder;
  #name: string;
  #shown: string;
  #partial: MemoryPartial;
  #open = true;

  /**
   * Takes up the upload of `name` into `folder` (shown as `shown`), creating its kept bytes when
   * there are none. {@link BusyError} when another pending file holds them.
   */
  constructor(folder: MemoryFolder, name: string, shown: string) {
    let partial = folder.partials.get(name);
    if (partial?.held) {
      throw new BusyError(
        `${sanitizeForDisplay(name)} is being received by another transfer: try again when it ends`,
      );
    }
    if (partial === undefined) {
      partial = { bytes: new Uint8Array(0), size: 0, held: false };
      folder.partials.set(name, partial);
      folder.mtime = Date.now();
    }
    partial.held = true;
    this.#folder = folder;
    this.#name = name;
    this.#shown = shown;
    this.#partial = partial;
  }

  /** Bytes kept so far. */
  get size(): number {
    return this.#partial.size;
  }

  /** SHA-256 state of the first `length` kept bytes. */
  hashPrefix(length: number): Promise<Hash> {
    return settle(() => {
      this.#assertOpen();
      if (length > this.#partial.size) throw new Error("File ended before the expected length");
      return newSha256().update(this.#partial.bytes.subarray(0, length));
    });
  }

  /** Keeps only the first `length` bytes (zeros when it grows, as `ftruncate`). */
  truncate(length: number): Promise<void> {
    return settle(() => {
      this.#assertOpen();
      this.#reserve(length);
      this.#partial.bytes.fill(0, Math.min(length, this.#partial.size), length);
      this.#partial.size = length;
    });
  }

  /** Appends a copy of `bytes`. */
  write(bytes: Uint8Array): Promise<void> {
    return settle(() => {
      this.#assertOpen();
      const partial = this.#partial;
      this.#reserve(partial.size + bytes.length);
      partial.bytes.set(bytes, partial.size);
      partial.size += bytes.length;
    });
  }

  /** Nothing to do: memory is as durable as this store gets. */
  flush(): Promise<void> {
    return settle(() => this.#assertOpen());
  }

  /** Gives the kept bytes their final name (see `PendingFile.commit`); closes either way. */
  commit(options: CommitOptions): Promise<void> {
    return settle(() => {
      this.#assertOpen();
      this.close();
      const existing = this.#folder.children.get(this.#name);
      if (existing?.kind === "dir") {
        throw new PathError(`Cannot replace ${sanitizeForDisplay(this.#shown)}: it is a folder`);
      }
      if (existing !== undefined && !options.force) {
        throw new ExistsError(
          `${sanitizeForDisplay(this.#shown)} already exists: use --force to replace it`,
        );
      }
      const partial = this.#partial;
      this.#folder.children.set(this.#name, {
        kind: "file",
        bytes: partial.bytes.slice(0, partial.size),
        mtime: options.mtime ?? Date.now(),
        mode: options.mode === undefined ? NEW_FILE_MODE : options.mode & 0o777,
      });
      this.#forget();
    });
  }

  /** Closes and deletes the kept bytes. */
  discard(): Promise<void> {
    return settle(() => {
      this.close();
      this.#forget();
    });
  }

  /** Closes and keeps the bytes for a later resume; closing twice is harmless. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#partial.held = false;
  }

  /** Removes this upload's kept bytes (not those of a later upload of the same name). */
  #forget(): void {
    if (this.#folder.partials.get(this.#name) !== this.#partial) return;
    this.#folder.partials.delete(this.#name);
    this.#folder.mtime = Date.now();
  }

  /** Room for `length` bytes, doubling so that appends cost amortised constant time. */
  #reserve(length: number): void {
    const partial = this.#partial;
    if (length <= partial.bytes.length) return;
    const grown = new Uint8Array(Math.max(length, partial.bytes.length * 2, 1024));
    grown.set(partial.bytes.subarray(0, partial.size));
    partial.bytes = grown;
  }

  #assertOpen(): void {
    if (!this.#open) throw new Deno.errors.BadResource("The pending file is closed");
  }
}
