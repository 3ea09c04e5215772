/**
 * Small I/O helpers shared by every layer: a missing entry as `null`, and writing a whole buffer
 * to a file or socket that may take fewer bytes per call.
 *
 * Metadata calls (stat, open, link, chmod...) and small writes are made synchronously throughout
 * lib/: on a local disk each takes microseconds, while handing it to Deno's thread pool and back
 * costs several times that in CPU and wake-ups (measured: 5,000 small files created, written and
 * named took 0.58 s synchronously against 1.9 s awaited one by one). Flushes to disk and the
 * reads and writes of big blocks stay asynchronous, so they overlap with the rest.
 *
 * @module
 */

/**
 * The entry at `path` itself (a symbolic link is not followed), or `null` when nothing is there.
 * Permission: read on `path`.
 */
export function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Anything with Deno's `write(bytes)`, which may take fewer bytes than given: a file or socket. */
export interface ByteWriter {
  /** Writes some of `bytes`; resolves with how many were taken. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes every byte of `bytes` to `file` at once, looping over short writes. */
export function writeAllSync(
  file: { writeSync(bytes: Uint8Array): number },
  bytes: Uint8Array,
): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** Writes every byte of `bytes` to `writer`, looping over short writes. */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await writer.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}

/**
 * The result of `run` as a promise: a throw becomes a rejection, as from asynchronous I/O. For
 * work done synchronously behind an asynchronous interface (metadata calls, memory).
 */
export function settle<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
}
