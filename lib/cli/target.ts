/**
 * Where a client command finds its server: the address typed as HOST, or `@` in its place, which
 * finds the server by its code alone: the server announcing the code's identifier on the local
 * network, else (with `--relay HOST[:PORT]`) the one registered under it at that relay.
 *
 * `@` cannot be a host name (no host name holds `@`, and ferry refuses one that does), so it
 * cannot be mistaken for one, and it needs no quoting in the usual shells.
 *
 * @module
 */
import { type Reached, reachServer, type Route } from "../client/reach.ts";
import { DEFAULT_IDENTIFIER } from "../code.ts";
import { UsageError } from "../errors.ts";
import { formatAddress } from "../net/address.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { DEFAULT_RELAY_PORT } from "../relay/wire.ts";
import type { FerryClient } from "../client/client.ts";
import { type ClientCode, type HostPort, parseHostPort } from "./common.ts";
import { requirePermissions } from "./permissions.ts";

/** The HOST argument that means "find the server by its code". */
export const FIND_BY_CODE = "@";

/** Where a client command connects: an address typed, or a {@link ServerSearch} for `@`. */
export type ServerTarget = HostPort | ServerSearch;

/**
 * The server of the `HOST[:PORT]` (or `@`) argument `host`, with the `--relay` option's value.
 * Throws a {@link UsageError} for a bad address, for `@` with anything after it, and for
 * `--relay` with an address (a relay is for finding a server by its code: with an address, ferry
 * connects to it directly). `say` receives the line telling where `@` found the server. Needs no
 * permissions.
 */
export function parseServerTarget(
  host: string,
  relay: string | undefined,
  say?: (line: string) => void,
): ServerTarget {
  if (relay === "") throw new UsageError("Option --relay needs the relay's address (HOST[:PORT])");
  if (host === FIND_BY_CODE) {
    const relayAddress = relay === undefined
      ? undefined
      : parseHostPort(relay, DEFAULT_RELAY_PORT, "relay address");
    return new ServerSearch(relayAddress, say);
  }
  if (host.startsWith(FIND_BY_CODE)) {
    throw new UsageError(
      `Invalid server address "${
        sanitizeForDisplay(host)
      }": write @ alone to find the server by its code (on the local network, or through --relay HOST)`,
    );
  }
  const address = parseHostPort(host);
  if (relay !== undefined) {
    throw new UsageError(
      `--relay goes with @ in place of the address: with an address (${
        sanitizeForDisplay(host)
      }) ferry connects to it directly; write @ to find the server by its code, on the local network or through the relay`,
    );
  }
  return address;
}

/**
 * `@`: finds the server by its code's identifier each time a session is opened, on the local
 * network (the servers announcing it, each tried in turn) and then through the relay when one was
 * named (`reachServer`). Once a route has worked, a new session (the `connect` shell connecting
 * again) tries that route first.
 */
export class ServerSearch {
  /** The relay to fall back on (`--relay`). */
  readonly relay: HostPort | undefined;
  #say: ((line: string) => void) | undefined;
  #route: Route | undefined;

  /** A search with `relay` as the fall-back; `say` gets one line naming the route found. */
  constructor(relay?: HostPort, say?: (line: string) => void) {
    this.relay = relay;
    this.#say = say;
  }

  /** The route of the last session opened, if any. */
  get route(): Route | undefined {
    return this.#route;
  }

  /**
   * Opens a session with the server holding `code`. A default code (no identifier) cannot be
   * used with a relay: a {@link UsageError} says to make a named one. Throws as `reachServer`
   * does when no route works. Permission: `--allow-net` (the server's address on the LAN is
   * learnt from its announcement), optionally `--allow-sys=networkInterfaces` to look on every
   * network interface rather than the default route's.
   */
  async connect(code: ClientCode): Promise<FerryClient> {
    if (this.relay !== undefined && code.identifier === DEFAULT_IDENTIFIER) {
      throw new UsageError(
        "A relay needs a named code, and this is a server's default code (16 symbols): on the server, ferry code add NAME makes one (20 symbols) that a relay can carry",
      );
    }
    requirePermissions([{
      descriptor: { name: "net" },
      flag: "--allow-net",
      why: "to find the server on the local network, whose address is not known in advance",
    }]);
    const reached: Reached = await reachServer({
      identifier: code.identifier,
      secret: code.secret,
      relay: this.relay,
      prefer: this.#route,
    });
    const before = this.#route;
    this.#route = reached.route;
    if (before === undefined || describeRoute(before) !== describeRoute(reached.route)) {
      this.#say?.(`ferry: ${describeRoute(reached.route)}`);
    }
    return reached.client;
  }
}

/** `found on the local network at 10.0.0.7:7878`, or `through the relay at relay.example:7879`. */
export function describeRoute(route: Route): string {
  const where = formatAddress(route.hostname, route.port);
  return route.kind === "lan"
    ? `found on the local network at ${where}`
    : `through the relay at ${where}`;
}
