/**
 * One {@link Listener} from several: a server that listens on TCP for clients on its network and
 * through a relay for the others accepts from both through one accept loop.
 *
 * @module
 */
import type { Accepted, Listener } from "./socket.ts";

/**
 * A listener that accepts from every one of `listeners`, whichever has a connection first. Its
 * `addr` is the first listener's. A listener that closes (its `accept` rejects with
 * `Deno.errors.BadResource`) is dropped; once all are, `accept` rejects the same way. Any other
 * failure of one listener's `accept` is passed on once (the server logs it) and that listener is
 * asked again next time. Closing closes them all. Needs no permissions of its own.
 */
export function mergeListeners(listeners: readonly Listener[]): Listener {
  if (listeners.length === 0) throw new RangeError("mergeListeners needs at least one listener");
  const pending = new Map<Listener, Promise<{ from: Listener; result: Settled }>>();
  const live = new Set(listeners);
  let closed = false;
  const ask = (listener: Listener) => {
    let promise = pending.get(listener);
    if (promise === undefined) {
      promise = listener.accept().then(
        (accepted): { from: Listener; result: Settled } => ({
          from: listener,
          result: { accepted },
        }),
        (error): { from: Listener; result: Settled } => ({ from: listener, result: { error } }),
      );
      pending.set(listener, promise);
    }
    return promise;
  };
  return {
    addr: listeners[0]!.addr,
    async accept(): Promise<Accepted> {
      while (true) {
        if (closed || live.size === 0) {
          throw new Deno.errors.BadResource("The listeners are closed");
        }
        const { from, result } = await Promise.race([...live].map(ask));
        pending.delete(from);
        if ("accepted" in result) {
          if (closed) {
            closeQuietly(result.accepted.socket);
            continue;
          }
          return result.accepted;
        }
        if (result.error instanceof Deno.errors.BadResource) {
          live.delete(from);
          continue;
        }
        throw result.error;
      }
    },
    close(): void {
      closed = true;
      for (const listener of listeners) {
        try {
          listener.close();
        } catch {
          // closed already
        }
      }
      // A connection accepted for a call that will never come is closed, not leaked.
      for (const promise of pending.values()) {
        void promise.then(({ result }) => {
          if ("accepted" in result) closeQuietly(result.accepted.socket);
        });
      }
      pending.clear();
    },
  };
}

type Settled = { accepted: Accepted } | { error: unknown };

function closeQuietly(socket: { close(): void }): void {
  try {
    socket.close();
  } catch {
    // closed already
  }
}
