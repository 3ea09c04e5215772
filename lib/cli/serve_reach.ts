/**
 * How clients find a `ferry serve` without its address: it announces the public identifiers of
 * its codes on the local network (unless `--no-announce`), and with `--relay HOST[:PORT]` it also
 * takes clients through that relay, where it registers the identifiers of its named codes. The
 * identifiers follow the codes: one added or revoked while the server runs is announced,
 * registered or released within about a second. No secret is ever announced or registered.
 *
 * Kept apart from serve.ts, which only calls {@link prepareReach} before starting the server and
 * the {@link ServeReach} it returns after.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { DEFAULT_IDENTIFIER } from "../code.ts";
import { FerryError, UsageError } from "../errors.ts";
import { formatAddress } from "../net/address.ts";
import { ANNOUNCE_NET_HOSTS, type Announcer, startAnnouncer } from "../net/announce.ts";
import { mergeListeners } from "../net/merged_listener.ts";
import { listenViaRelay } from "../net/relay_listener.ts";
import { type Listen, listenTcp } from "../net/socket.ts";
import { readTokenFile, tokenFileWarning } from "../relay/token.ts";
import {
  DEFAULT_RELAY_PORT,
  DEFAULT_TOKEN_FILE,
  MAX_IDENTIFIERS_PER_CONTROL,
} from "../relay/wire.ts";
import type { FerryServer } from "../server/server.ts";
import { type HostPort, parseHostPort } from "./common.ts";
import { printError } from "./output.ts";
import { requirePermissions } from "./permissions.ts";

/** The flags of `SERVE_REACH_OPTIONS` (specs/serve.ts), as the parser hands them out. */
export interface ServeReachFlags {
  readonly "no-announce": boolean;
  readonly relay: string | undefined;
  readonly "relay-token-file": string | undefined;
}

/** How long start-up waits for the relay's first answer (a wrong token stops the server). */
const RELAY_FIRST_ANSWER_MS = 5000;

/**
 * Checks the options, the permissions they need and the relay's token file, before the server
 * starts: a bad `--relay`, a missing permission or a token file that is missing or not a token
 * is an error here (a {@link UsageError} or `PermissionError`), with nothing started. Whether the
 * server may announce is decided here too: without the permission it is said once on stderr, and
 * the server serves without announcing. Permissions: net to the relay and read on its token file
 * (with `--relay`); queried only, for announcing.
 */
export async function prepareReach(flags: ServeReachFlags, hostname: string): Promise<ServeReach> {
  let relay: { address: HostPort; token: Uint8Array; tokenFile: string } | undefined;
  if (flags.relay !== undefined) {
    if (flags.relay === "") {
      throw new UsageError("Option --relay needs the relay's address (HOST[:PORT])");
    }
    const address = parseHostPort(flags.relay, DEFAULT_RELAY_PORT, "relay address");
    const tokenFile = flags["relay-token-file"] ?? DEFAULT_TOKEN_FILE;
    if (tokenFile === "") throw new UsageError("Option --relay-token-file needs a path (PATH)");
    requirePermissions([
      {
        descriptor: { name: "net", host: formatAddress(address.hostname, address.port) },
        flag: `--allow-net=${formatAddress(address.hostname, address.port)}`,
        why: "to reach the relay",
      },
      {
        descriptor: { name: "read", path: tokenFile },
        flag: `--allow-read=${tokenFile}`,
        why: "to read the relay's token file",
      },
    ]);
    const token = await readTokenFile(tokenFile);
    const warning = await tokenFileWarning(tokenFile);
    if (warning !== undefined) printError(warning);
    relay = { address, token, tokenFile };
  } else if (flags["relay-token-file"] !== undefined) {
    throw new UsageError("--relay-token-file goes with --relay HOST[:PORT]");
  }
  return new ServeReach(announcing(flags["no-announce"], hostname), relay);
}

/**
 * Whether to announce for a server listening on `hostname`, and on which interfaces: everywhere
 * for a wildcard address, only there for one IPv4 address, nowhere for loopback (no one else
 * could connect) or `--no-announce`. Says once on stderr why a server that would be worth
 * announcing is not (no permission, an IPv6 address). Permissions: none (queried).
 */
function announcing(off: boolean, hostname: string): { interfaces?: string[] } | undefined {
  if (off || isLoopback(hostname)) return undefined;
  const host = hostname.toLowerCase();
  const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
  if (!worthAnnouncing(hostname)) {
    printError(
      `ferry: note: not announcing on the local network: announcements are IPv4, and this server listens on [${hostname}] only`,
    );
    return undefined;
  }
  const granted = ANNOUNCE_NET_HOSTS.every((host) =>
    Deno.permissions.querySync({ name: "net", host }).state === "granted"
  );
  if (!granted) {
    printError(
      `ferry: note: not announcing on the local network, so clients cannot find this server with @: that needs --allow-net=${
        ANNOUNCE_NET_HOSTS.join(",")
      } (and --allow-sys=networkInterfaces for every network interface); --no-announce says it is meant`,
    );
    return undefined;
  }
  return ipv4 && host !== "0.0.0.0" ? { interfaces: [host] } : {};
}

/**
 * Whether a server listening on `hostname` can be announced: a wildcard address, an IPv4
 * address or a name, but not loopback (no one else could connect) nor one IPv6 address
 * (announcements are IPv4, and clients connect to the address they come from). Needs no
 * permissions.
 */
export function worthAnnouncing(hostname: string): boolean {
  return !isLoopback(hostname) && (!hostname.includes(":") || hostname === "::");
}

function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** What {@link prepareReach} set up, for the server it goes with. */
export class ServeReach {
  #announce: { interfaces?: string[] } | undefined;
  #relay: { address: HostPort; token: Uint8Array; tokenFile: string } | undefined;
  #server: FerryServer | undefined;
  #announcer: Announcer | undefined;
  /** Lines of the relay listener held back until its first answer (see {@link start}). */
  #heldLines: string[] | undefined = [];
  #firstAnswer = Promise.withResolvers<void>();
  /** The relay's refusal of the token, when that was its first answer. */
  #refusal: FerryError | undefined;
  #tooMany = false;

  /** Use {@link prepareReach}. */
  constructor(
    announce: { interfaces?: string[] } | undefined,
    relay: { address: HostPort; token: Uint8Array; tokenFile: string } | undefined,
  ) {
    this.#announce = announce;
    this.#relay = relay;
  }

  /** Files the server must never serve: the relay's token file. */
  get exclude(): string[] {
    const tokenFile = this.#relay?.tokenFile;
    return tokenFile === undefined ? [] : [isAbsolute(tokenFile) ? tokenFile : resolve(tokenFile)];
  }

  /**
   * What the server listens with: TCP, and with `--relay` the relay's clients too (one accept
   * loop for both). The relay is contacted at once.
   */
  readonly listen: Listen = (hostname, port) => {
    const tcp = listenTcp(hostname, port);
    const relay = this.#relay;
    if (relay === undefined) return tcp;
    const listener = listenViaRelay({
      relay: relay.address,
      token: relay.token,
      identifiers: () => this.#relayIdentifiers(),
      log: (line) => this.#heldLines ? this.#heldLines.push(line) : printError(line),
      onEvent: (event) => {
        const first = this.#heldLines !== undefined;
        if (first && event.kind === "disconnected" && event.unauthorized) {
          this.#refusal = new FerryError(
            `The relay at ${
              formatAddress(relay.address.hostname, relay.address.port)
            } refused the token in ${relay.tokenFile}: it is not this relay's token file (copy it again from the relay's machine)`,
          );
        }
        this.#firstAnswer.resolve();
      },
    });
    return mergeListeners([tcp, listener]);
  };

  /**
   * Starts announcing `server`'s identifiers (when it may), after waiting up to 5 s for the
   * relay's first answer: when that is a refusal of the token (a wrong token file), throws that
   * error, one line, for the server to stop with. A relay that cannot be reached, or answers
   * later, is tried again quietly, its refusals logged as they come. Returns how else the server
   * can be found, for the line that says it serves ("announced on the local network").
   */
  async start(server: FerryServer): Promise<string[]> {
    const ways: string[] = [];
    this.#server = server;
    if (this.#relay !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#firstAnswer.promise,
        new Promise<void>((done) => timer = setTimeout(done, RELAY_FIRST_ANSWER_MS)),
      ]);
      clearTimeout(timer);
      const held = this.#heldLines ?? [];
      this.#heldLines = undefined;
      if (this.#refusal !== undefined) throw this.#refusal; // the listener's line says the same
      for (const line of held) printError(line);
      ways.push(
        `through the relay at ${
          formatAddress(this.#relay.address.hostname, this.#relay.address.port)
        }`,
      );
      if (this.#relayIdentifiers().length === 0) {
        printError(
          "ferry: note: a relay carries named codes only, and this server has none yet: ferry code add NAME makes one, registered at the relay within seconds",
        );
      }
    }
    if (this.#announce !== undefined) {
      try {
        this.#announcer = await startAnnouncer({
          port: server.port,
          identifiers: () => this.#server?.identifiers ?? [],
          ...(this.#announce.interfaces ? { interfaces: () => this.#announce!.interfaces! } : {}),
          log: (line) => printError(`ferry: announcing on the local network: ${line}`),
        });
        ways.unshift("announced on the local network (ferry ls @ finds it)");
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        printError(`ferry: note: not announcing on the local network: ${reason}`);
      }
    }
    return ways;
  }

  /** Stops announcing (the relay listener closes with the server's listener). */
  async close(): Promise<void> {
    const announcer = this.#announcer;
    this.#announcer = undefined;
    await announcer?.close();
  }

  /**
   * The identifiers to register at the relay: the named codes' (a default code has none a relay
   * could tell apart), at most as many as one registration holds; saying once when some are left
   * out.
   */
  #relayIdentifiers(): string[] {
    const named = (this.#server?.identifiers ?? []).filter((id) => id !== DEFAULT_IDENTIFIER);
    if (named.length > MAX_IDENTIFIERS_PER_CONTROL && !this.#tooMany) {
      this.#tooMany = true;
      printError(
        `ferry: note: a relay takes ${MAX_IDENTIFIERS_PER_CONTROL} codes per server: the named codes after the first ${MAX_IDENTIFIERS_PER_CONTROL} are not registered there`,
      );
    }
    return named.slice(0, MAX_IDENTIFIERS_PER_CONTROL);
  }
}
