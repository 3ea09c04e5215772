/**
 * Small I/O helpers shared by every layer: a missing entry as `null`, and writing a whole buffer
 * to a file or socket that may take fewer bytes per call.
 *
 * @module
 */

/**
 * The entry at `path` itself (a symbolic link is not followed), or `null` when nothing is there.
 * Permission: read on `path`.
 */
export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
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

/** Writes every byte of `bytes` to `writer`, looping over short writes. */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await writer.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}
