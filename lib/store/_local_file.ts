/**
 * A file of the served folder opened for reading: the {@link StoredFile} that `LocalStore` hands
 * out, opened only after the path was confined and checked again, once open, to be the very
 * entry that was checked (same device and inode). Private to lib/store.
 *
 * @module
 */
import { settle } from "../_fs.ts";
import { entryInfo, fileId } from "./_local_paths.ts";
import type { EntryInfo, StoredFile } from "./store.ts";

/**
 * A read into a buffer of at most this many bytes is made in place (`readSync`), a bigger one in
 * Deno's thread pool. Handing a read to the pool costs about 40 µs of this thread's time against
 * 2 µs for the read itself from the page cache, which for a folder of small files was a tenth of
 * the server's time; a read this small waits at worst for one disk access.
 */
const READ_IN_PLACE_BYTES = 64 * 1024;

/** A `Deno.FsFile` behind the {@link StoredFile} interface. */
export class LocalStoredFile implements StoredFile {
  /** What the file was when opened. */
  readonly info: EntryInfo;
  #file: Deno.FsFile;
  #realPath: string;
  #id: string;

  private constructor(file: Deno.FsFile, info: EntryInfo, realPath: string, id: string) {
    this.#file = file;
    this.info = info;
    this.#realPath = realPath;
    this.#id = id;
  }

  /**
   * Opens `realPath` for reading and checks that it is a regular file whose device and inode are
   * `expectedId` (see {@link fileId}); `null` (and closed) when it is not, say because it was
   * replaced since it was checked. `name` is the name it is shown under. Permission: read.
   */
  static open(
    realPath: string,
    expectedId: string,
    name: string,
  ): LocalStoredFile | null {
    const file = Deno.openSync(realPath, { read: true });
    try {
      const opened = file.statSync();
      const info = entryInfo(name, opened);
      if (info?.type !== "file" || fileId(opened) !== expectedId) {
        file.close();
        return null;
      }
      return new LocalStoredFile(file, info, realPath, expectedId);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /**
   * Reads into `buffer` from the current position; `null` at the end. A small buffer is filled in
   * place (see {@link READ_IN_PLACE_BYTES}), a big one in Deno's thread pool.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    if (buffer.length > READ_IN_PLACE_BYTES) return this.#file.read(buffer);
    return settle(() => this.#file.readSync(buffer));
  }

  /** Moves the read position (in place: moving it never waits for the disk). */
  seek(offset: number, whence: Deno.SeekMode): Promise<number> {
    return settle(() => this.#file.seekSync(offset, whence));
  }

  /**
   * Whether the file changed since it was opened: its size or modification time, or what its name
   * leads to (device and inode). One lookup through the path: while the name leads to the very
   * file open here (an open file's inode cannot be reused), what it shows is that file's, and a stat
   * through the handle costs more than one through the path under scoped permissions (8-12 µs
   * against 4-6 µs, measured). Permission: read.
   */
  changed(): Promise<boolean> {
    return settle(() => {
      let now: Deno.FileInfo;
      try {
        now = Deno.statSync(this.#realPath);
      } catch {
        return true; // removed, or no longer reachable
      }
      if (fileId(now) !== this.#id) return true;
      const info = entryInfo(this.info.name, now);
      return info?.size !== this.info.size || info.mtime !== this.info.mtime;
    });
  }

  /** Releases the file; closing twice is harmless. */
  close(): void {
    try {
      this.#file.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /** Same as {@link close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
