/**
 * The socket seam: what the server accepts and the handshake and record layer talk through.
 *
 * A {@link Listener} hands out a {@link Socket} and the {@link Peer} it came from. TCP
 * ({@link listenTcp}) is the default; a relay or a test can supply another listener, and the code
 * above it does not care which route a connection took (as croc's relay returns the same `Comm`
 * as a direct connection).
 *
 * @module
 */
import { formatAddress } from "./address.ts";

/** A connected byte stream, as the handshake and the record layer use it (a `Deno.Conn` is one). */
export interface Socket {
  /** Reads into `buffer`; resolves with the count, or `null` at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `buffer`; resolves with how many bytes were taken. */
  write(buffer: Uint8Array): Promise<number>;
  /** Closes the stream; pending reads and writes fail. */
  close(): void;
  /** Sends small writes at once (TCP_NODELAY), where that means something. */
  setNoDelay?(noDelay?: boolean): void;
}

/** Who is at the other end of a {@link Socket}. */
export interface Peer {
  /** The client's address (an IP address for TCP): what failed handshakes are counted against. */
  address: string;
  /** How logs name the connection, such as `127.0.0.1:5555`. */
  label: string;
}

/** One accepted connection. */
export interface Accepted {
  /** The connection itself. */
  socket: Socket;
  /** Where it comes from. */
  peer: Peer;
}

/** Where connections come from. */
export interface Listener {
  /** The next connection; rejects once the listener is closed. */
  accept(): Promise<Accepted>;
  /** Stops accepting; a pending {@link accept} rejects. */
  close(): void;
  /** The address actually bound (with port 0, the port picked). */
  readonly addr: { hostname: string; port: number };
}

/** Opens a {@link Listener} on `hostname:port` (the signature of {@link listenTcp}). */
export type Listen = (hostname: string, port: number) => Listener | Promise<Listener>;

/**
 * Listens for TCP connections on `hostname:port` (port 0 picks a free one).
 * Permission: `--allow-net=<hostname:port>`.
 */
export function listenTcp(hostname: string, port: number): Listener {
  const listener = Deno.listen({ hostname, port, transport: "tcp" });
  const { hostname: boundHost, port: boundPort } = listener.addr;
  return {
    addr: { hostname: boundHost, port: boundPort },
    async accept(): Promise<Accepted> {
      const conn = await listener.accept();
      const remote = conn.remoteAddr;
      return {
        socket: conn,
        peer: { address: remote.hostname, label: formatAddress(remote.hostname, remote.port) },
      };
    },
    close(): void {
      listener.close();
    },
  };
}
