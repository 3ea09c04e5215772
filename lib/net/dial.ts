/**
 * The client's socket seam: how a connection to a server is opened. {@link dialTcp} is the
 * default; a relay or a discovered address plugs in as another {@link Dial} without touching
 * protocol code.
 *
 * @module
 */
/** A connected socket as the client uses it (a `Deno.TcpConn` is one). */
export interface ClientSocket {
  /** Reads into `buffer`; resolves with the count, `null` at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `buffer` (done with it once settled); resolves with how many bytes. */
  write(buffer: Uint8Array): Promise<number>;
  /** Closes the connection; closing twice is harmless to callers (they ignore the error). */
  close(): void;
  /** Turns Nagle's algorithm off (the handshake is a few small round trips), where supported. */
  setNoDelay?(noDelay: boolean): void;
}

/** Opens a connection to `hostname:port`, giving up when `signal` aborts. */
export type Dial = (
  address: { hostname: string; port: number },
  signal: AbortSignal,
) => Promise<ClientSocket>;

/** Dials over TCP. Permission: `--allow-net=<hostname:port>`. */
export const dialTcp: Dial = async ({ hostname, port }, signal) =>
  await Deno.connect({ hostname, port, transport: "tcp", signal });
