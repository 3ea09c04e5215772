/**
 * An object of the S3 store opened for reading: {@link S3StoredFile}. Reads are ranged GETs from
 * the read position to the end, consumed as a stream (memory stays one network chunk, whatever the
 * object's size); a seek elsewhere ends that stream and the next read starts another. Every GET
 * carries `If-Match` with the entity tag the object had when opened, so all bytes read belong to
 * that one version: once the object is replaced, reads end early (`null`) and {@link changed} says
 * so. Private to lib/store.
 *
 * @module
 */
import { ObjectStoreError } from "../errors.ts";
import { REQUEST_TIMEOUT_MS, type S3Client } from "./_s3_client.ts";
import type { EntryInfo, StoredFile } from "./store.ts";

/** An object opened for reading (see the module's text). */
export class S3StoredFile implements StoredFile {
  /** What the object was when opened. */
  readonly info: EntryInfo;
  readonly #client: S3Client;
  readonly #key: string;
  readonly #etag: string;
  #position = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #leftover: Uint8Array | undefined;
  /** A read found the object replaced or removed. */
  #replaced = false;
  /** Bytes have been read (each under `If-Match`). */
  #read = false;
  #closed = false;

  /** The object `key`, described by `info`, whose entity tag is `etag`. */
  constructor(client: S3Client, key: string, info: EntryInfo, etag: string) {
    this.#client = client;
    this.#key = key;
    this.info = info;
    this.#etag = etag;
  }

  /** Reads into `buffer` from the current position; `null` at the end (or once replaced). */
  async read(buffer: Uint8Array): Promise<number | null> {
    this.#assertOpen();
    if (buffer.length === 0) return 0;
    if (this.#position >= this.info.size || this.#replaced) return null;
    let chunk = this.#leftover;
    this.#leftover = undefined;
    if (chunk === undefined) {
      if (this.#reader === undefined) {
        const stream = await this.#client.read(this.#key, this.#position, this.#etag);
        if (stream === null) {
          this.#replaced = true;
          return null;
        }
        this.#reader = stream.getReader();
      }
      const { value, done } = await readWithin(this.#reader, REQUEST_TIMEOUT_MS);
      if (done || value === undefined) {
        this.#dropReader();
        return null; // ended before the size it had: it cannot be the same object
      }
      chunk = value;
    }
    const count = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, count));
    if (count < chunk.length) this.#leftover = chunk.subarray(count);
    this.#position += count;
    this.#read = true;
    return count;
  }

  /** Moves the read position (past the end is allowed; before the start is not). */
  seek(offset: number, whence: Deno.SeekMode): Promise<number> {
    try {
      this.#assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const base = whence === Deno.SeekMode.Start
      ? 0
      : whence === Deno.SeekMode.Current
      ? this.#position
      : this.info.size;
    if (base + offset < 0) {
      return Promise.reject(new TypeError("Cannot seek before the start of the file"));
    }
    if (base + offset !== this.#position) {
      this.#dropReader();
      this.#leftover = undefined;
      this.#position = base + offset;
    }
    return Promise.resolve(this.#position);
  }

  /**
   * Whether the object changed since it was opened. Once bytes were read, every one of them came
   * from the opened version (`If-Match`), so only a read that found it replaced counts; before
   * any read, the store is asked.
   */
  async changed(): Promise<boolean> {
    if (this.#replaced) return true;
    if (this.#read) return false;
    const head = await this.#client.head(this.#key);
    return head === null || head.etag !== this.#etag;
  }

  /** Ends any read in progress; closing twice is harmless. */
  close(): void {
    this.#closed = true;
    this.#dropReader();
    this.#leftover = undefined;
  }

  /** Same as {@link close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #dropReader(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.cancel().catch(() => {});
  }

  #assertOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource("The file is closed");
  }
}

/** The next chunk of `reader`; an `ObjectStoreError` when the store sends nothing for `ms`. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reader.cancel().catch(() => {});
      reject(new ObjectStoreError(`The object store sent nothing for ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([reader.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
