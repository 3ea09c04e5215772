/**
 * The client's way through a relay: a {@link Dial} that connects to the relay, names the server's
 * identifier, and once the relay answers `found` returns the socket, which from then on carries
 * the ferry stream of the server end to end (the handshake runs over it as over a direct
 * connection, so the relay learns neither the code nor anything sent).
 *
 * @module
 */
import { writeAll } from "../_fs.ts";
import { ConnectionError, RelayRefusedError } from "../errors.ts";
import { decodeAnswer, encodeClientRequest, RELAY_VERSION, RelayStatus } from "../relay/wire.ts";
import { readExact, ShortReadError } from "./_exact.ts";
import { formatAddress } from "./address.ts";
import { type ClientSocket, type Dial, dialTcp } from "./dial.ts";
import { isIdentifier } from "./identifier.ts";

/**
 * A {@link Dial} that reaches the server holding `identifier` through the relay at the address it
 * is given (`FerryClient.connect({ hostname: relayHost, port: relayPort, dial: relayDial(id) })`).
 * `dial` opens the connection to the relay itself (default TCP).
 *
 * The returned dial throws a {@link RelayRefusedError} when the relay has no server for the
 * identifier (`not-found`) or is at its limits (`busy`), and a `ConnectionError` when the peer is
 * not a relay of this version. Permission: `--allow-net=<relay host:port>`.
 */
export function relayDial(identifier: string, dial: Dial = dialTcp): Dial {
  if (!isIdentifier(identifier)) {
    throw new TypeError(`Not a server identifier: ${JSON.stringify(identifier.slice(0, 16))}`);
  }
  return async (address, signal) => {
    const where = formatAddress(address.hostname, address.port);
    const conn = await dial(address, signal);
    const onAbort = () => closeQuietly(conn);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await writeAll(conn, encodeClientRequest(identifier));
      const answer = decodeAnswer(await readExact(conn, 6));
      if (answer.kind === "garbage") {
        throw new ConnectionError(`The peer at ${where} is not a ferry relay (bad answer)`);
      }
      if (answer.kind === "other-version") {
        throw new ConnectionError(
          `The relay at ${where} speaks relay protocol version ${answer.version}; this ferry speaks ${RELAY_VERSION}`,
        );
      }
      switch (answer.status) {
        case RelayStatus.ok:
          return conn;
        case RelayStatus.notFound:
          throw new RelayRefusedError(
            answer.status,
            `No server with identifier ${identifier} is registered at the relay ${where}: check the code, and that its server runs with this relay`,
          );
        case RelayStatus.busy:
          throw new RelayRefusedError(
            answer.status,
            `The relay at ${where} is busy (its limits, or the server's): try again later`,
          );
        default:
          throw new RelayRefusedError(
            answer.status,
            `The relay at ${where} refused the connection (status ${answer.status})`,
          );
      }
    } catch (error) {
      closeQuietly(conn);
      if (signal.aborted || error instanceof ConnectionError) throw error;
      // The relay closed or reset the connection before answering.
      if (error instanceof ShortReadError) {
        throw new ConnectionError(
          `The relay at ${where} closed the connection before answering (stopping, or not a ferry relay): try again later`,
        );
      }
      const detail = error instanceof Error ? error.message.split(" (os error", 1)[0] : error;
      throw new ConnectionError(`The relay at ${where} closed the connection: ${detail}`);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  };
}

function closeQuietly(conn: ClientSocket): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
