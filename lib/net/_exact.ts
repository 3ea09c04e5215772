/**
 * Reading a fixed number of bytes from a socket and not one more: a relay header is followed by
 * bytes that belong to someone else (the spliced ferry stream), so a header reader must never
 * take them into its own buffer.
 *
 * @module
 */

/** Something bytes are read from: a `Deno.Conn` is one. */
export interface ByteReader {
  /** Reads into `buffer`; resolves with the count, or `null` at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** The stream ended before the bytes asked for came (`received` of them did). */
export class ShortReadError extends Error {
  /** How many bytes came before the end. */
  readonly received: number;
  /** An end after `received` of `wanted` bytes. */
  constructor(received: number, wanted: number) {
    super(`The connection ended after ${received} of ${wanted} bytes`);
    this.name = "ShortReadError";
    this.received = received;
  }
}

/**
 * Reads exactly `length` bytes, asking the socket for no more than are still missing. Throws a
 * {@link ShortReadError} when the stream ends first. Needs no permissions beyond the open socket.
 */
export async function readExact(reader: ByteReader, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await reader.read(bytes.subarray(filled));
    if (count === null) throw new ShortReadError(filled, length);
    filled += count;
  }
  return bytes;
}
