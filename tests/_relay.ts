/**
 * A TCP relay on 127.0.0.1 port 0 in front of a server: the network between client and server,
 * which a test can slow down, stall or cut. Subclasses decide how bytes move in each direction.
 *
 * @module
 */

/** Which way bytes flow: `up` from client to server, `down` back. */
export type Direction = "up" | "down";

/** Accepts clients, connects each to the target, and hands both sockets to {@link relay}. */
export abstract class LoopbackRelay implements AsyncDisposable {
  /** The port clients connect to. */
  readonly port: number;
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #loop: Promise<void>;

  /** Relays to the server on 127.0.0.1:`targetPort`. */
  constructor(targetPort: number) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    // The first client is accepted only after the subclass's constructor has run.
    this.#loop = (async () => {
      for await (const client of listener) {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        this.#conns.add(client);
        this.#conns.add(server);
        this.relay(client, server);
      }
    })().catch(() => {});
  }

  /** `127.0.0.1:<port>`, to pass to a client. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts moving bytes between a new client and its server connection. */
  protected abstract relay(client: Deno.Conn, server: Deno.Conn): void;

  /** Closes one relayed socket (once). */
  protected closeConn(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // closed already
    }
  }

  /** Cuts every relayed connection and stops listening. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // closed already
    }
    for (const conn of [...this.#conns]) this.closeConn(conn);
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
