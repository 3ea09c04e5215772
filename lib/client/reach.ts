/**
 * Reaching a server by its identifier alone: on the local network first, through a relay when it
 * is not there.
 *
 * {@link reachServer} looks for servers announcing the identifier on the LAN (`findServers` in
 * lib/net/announce.ts) and tries each one it hears, in the order they answer. A candidate that
 * fails (cannot be reached, or fails the handshake: a fake announcer, or a server that announces
 * the same identifier for another code) only costs that one attempt: the next candidate is tried,
 * then the relay. Only when every route failed does the caller get an error: the handshake's
 * `AuthenticationError` if any server answered with another code (most likely the code was
 * mistyped), else the reason the last route failed.
 *
 * A direct connection always wins over the relay: the relay is asked only once the LAN search has
 * given up (`lanTimeoutMs`, short when a relay is named, since servers answer a query at once).
 *
 * Permissions: those of `findServers` and of connecting to each candidate and to the relay.
 *
 * @module
 */
import { AuthenticationError, ConnectionError, ProtocolError, RefusedError } from "../errors.ts";
import { type Candidate, type FindOptions, findServers } from "../net/announce.ts";
import { isIdentifier } from "../net/identifier.ts";
import { relayDial } from "../net/relay_dial.ts";
import { type ConnectOptions, FerryClient } from "./client.ts";

/** How a server was reached. */
export type Route =
  | { kind: "lan"; hostname: string; port: number }
  | { kind: "relay"; hostname: string; port: number };

/** What {@link reachServer} needs. */
export interface ReachOptions {
  /** The server's identifier (canonical form, see lib/net/identifier.ts). */
  identifier: string;
  /** PAKE secret, as for `FerryClient.connect`. */
  secret: Uint8Array;
  /** A relay to fall back on. */
  relay?: { hostname: string; port: number };
  /**
   * A route to try first, before looking (the one that worked last time, when a shell connects
   * again): if it fails, the search goes on as if it had not been given.
   */
  prefer?: Route;
  /** Whether to look on the local network first (default true). */
  lan?: boolean;
  /**
   * How long to look on the local network: default 1 s when a relay is named (servers answer a
   * query at once), 2 s otherwise (an announcement also comes every second).
   */
  lanTimeoutMs?: number;
  /** Deadline of each connection and its handshake (default 5 s for a LAN candidate, 15 s else). */
  timeoutMs?: number;
  /** As `ConnectOptions.idleTimeoutMs`. */
  idleTimeoutMs?: number;
  /** The finder (default {@link findServers}); tests pass one with their own group or port. */
  find?: (identifier: string, options: FindOptions) => AsyncIterable<Candidate>;
  /** Opens a session (default `FerryClient.connect`). */
  connect?: (options: ConnectOptions) => Promise<FerryClient>;
  /** Told of each route before it is tried (for a line such as "found on the LAN at ..."). */
  onAttempt?: (route: Route) => void;
}

/** A session and how it was reached. */
export interface Reached {
  client: FerryClient;
  route: Route;
}

/**
 * Connects to the server announcing `options.identifier` on the LAN, else through the relay.
 * Throws `AuthenticationError` when only servers with another code answered, a `RefusedError`
 * when the one server found was busy, else a `ConnectionError` saying where it looked.
 */
export async function reachServer(options: ReachOptions): Promise<Reached> {
  const { identifier, secret } = options;
  if (!isIdentifier(identifier)) throw new TypeError("Not a server identifier");
  const connect = options.connect ?? ((connectOptions) => FerryClient.connect(connectOptions));
  const failures: unknown[] = [];
  const lanTimeoutMs = options.lanTimeoutMs ?? (options.relay ? 1000 : 2000);
  /** Tries one route; the session, or undefined when only this route failed. */
  const attempt = async (route: Route): Promise<FerryClient | undefined> => {
    options.onAttempt?.(route);
    try {
      return await connect({
        hostname: route.hostname,
        port: route.port,
        secret,
        identifier,
        ...(route.kind === "relay" ? { dial: relayDial(identifier) } : {}),
        timeoutMs: options.timeoutMs ?? (route.kind === "lan" ? 5000 : 15_000),
        idleTimeoutMs: options.idleTimeoutMs,
      });
    } catch (error) {
      if (!isRouteFailure(error)) throw error;
      failures.push(error);
      return undefined;
    }
  };
  const tried = new Set<string>();
  const key = (route: Route) => `${route.kind} ${route.hostname} ${route.port}`;
  if (options.prefer) {
    tried.add(key(options.prefer));
    const client = await attempt(options.prefer);
    if (client) return { client, route: options.prefer };
  }
  let heard = 0;
  if (options.lan ?? true) {
    const find = options.find ?? findServers;
    for await (const candidate of find(identifier, { timeoutMs: lanTimeoutMs })) {
      heard++;
      const route: Route = { kind: "lan", ...candidate };
      if (tried.has(key(route))) continue;
      tried.add(key(route));
      const client = await attempt(route);
      if (client) return { client, route };
    }
  }
  if (options.relay) {
    const route: Route = { kind: "relay", ...options.relay };
    if (!tried.has(key(route))) {
      const client = await attempt(route);
      if (client) return { client, route };
    }
  }
  const wrongCode = failures.find((error) => error instanceof AuthenticationError);
  if (wrongCode) throw wrongCode;
  const refused = failures.find((error) => error instanceof RefusedError);
  if (refused) throw refused;
  if (failures.length > 0) throw failures.at(-1);
  const seconds = (lanTimeoutMs / 1000).toFixed(lanTimeoutMs % 1000 === 0 ? 0 : 1);
  throw new ConnectionError(
    heard === 0
      ? `No server announced this code (identifier ${identifier}) on the local network within ${seconds} s: is its ferry serve running, with announcements on, on this network? Otherwise give its address, or a relay with --relay HOST`
      : `No server announcing ${identifier} could be reached`,
  );
}

/**
 * Whether `error` ends only one route (the next may work), not the whole attempt: it could not be
 * reached, is not a ferry server (a fake announcer's port), or failed the handshake.
 */
function isRouteFailure(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof AuthenticationError ||
    error instanceof ProtocolError;
}
