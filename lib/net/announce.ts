/**
 * Finding a server on the local network by its identifier, with no address typed.
 *
 * A sharing server runs an {@link startAnnouncer announcer}: every second (and at once when it
 * starts, and when a client asks) it sends one small UDP datagram to the multicast group
 * {@link ANNOUNCE_GROUP}, port {@link ANNOUNCE_PORT}, naming its TCP port and the identifiers it
 * serves; never a secret. A client runs a {@link findServers finder}: it joins the group, asks
 * once (a query naming its identifier, which servers answer at once instead of at their next
 * second), and yields the address of every server that announces that identifier, until its
 * deadline.
 *
 * Every datagram is at most {@link MAX_DATAGRAM_BYTES}; anything else (longer, shorter, another
 * magic or version, a port of 0, an identifier not in canonical form) is ignored whole. The
 * address a client tries is the datagram's source address, never an address written inside it,
 * so a fake announcement cannot point clients at a third machine. What a fake announcer can do is
 * make a client try one connection to it, and that connection's handshake fails without teaching
 * it anything about the code but whether its one guess was right (see docs/THREAT_MODEL.md).
 *
 * IPv4 only, time to live 1 (the datagrams do not leave the local network). With permission to
 * list the network interfaces (`--allow-sys=networkInterfaces`), both sides join and send on
 * every IPv4 interface, so a machine with several networks (or none with a default route) is
 * found on each; without it, on the interface of the default route.
 *
 * Permissions: `--allow-net=0.0.0.0:7878,239.255.78.78:7878`, optionally
 * `--allow-sys=networkInterfaces`.
 *
 * @module
 */
import dgram from "node:dgram";
import {
  decodeIdentifier,
  encodeIdentifier,
  IDENTIFIER_BYTES,
  isIdentifier,
} from "./identifier.ts";

/** The multicast group announcements go to (organisation-local scope, RFC 2365). */
export const ANNOUNCE_GROUP = "239.255.78.78";
/** The UDP port announcements go to (the same number as ferry's TCP port). */
export const ANNOUNCE_PORT = 7878;
/**
 * What `--allow-net` must name to announce or to look: the UDP port on every address (to bind it
 * and hear datagrams) and the group (to send to it).
 */
export const ANNOUNCE_NET_HOSTS: readonly string[] = [
  `0.0.0.0:${ANNOUNCE_PORT}`,
  `${ANNOUNCE_GROUP}:${ANNOUNCE_PORT}`,
];
/** How often a server announces itself. */
export const ANNOUNCE_INTERVAL_MS = 1000;
/** `"FRYA"`: the first four bytes of every datagram. */
export const ANNOUNCE_MAGIC: Uint8Array = Uint8Array.of(0x46, 0x52, 0x59, 0x41);
/** The announcement format's version. */
export const ANNOUNCE_VERSION = 1;
/** Most identifiers in one announcement (a server with more sends several). */
export const MAX_ANNOUNCED_IDENTIFIERS = 16;
/** The longest datagram read; anything longer is ignored. */
export const MAX_DATAGRAM_BYTES = 9 + IDENTIFIER_BYTES * MAX_ANNOUNCED_IDENTIFIERS;
/** Most distinct servers a finder yields for one identifier. */
export const MAX_CANDIDATES = 16;

/** Datagram types: the byte after the version. */
export const DatagramType = {
  /** A server: port (2) || count (1) || identifiers (4 each). */
  announce: 1,
  /** A client: the identifier (4) it looks for. */
  query: 2,
} as const;

/** What a datagram says, once checked. */
export type Datagram =
  | { type: "announce"; port: number; identifiers: string[] }
  | { type: "query"; identifier: string };

/** A server found on the local network. */
export interface Candidate {
  /** The announcement's source address. */
  hostname: string;
  /** The TCP port it announced. */
  port: number;
}

/**
 * The announcement of a server on TCP `port` serving `identifiers` (1 to 16 of them): magic (4),
 * version (1), type 1 (1), port (2, big-endian), count (1), identifiers (4 each).
 */
export function encodeAnnouncement(port: number, identifiers: readonly string[]): Uint8Array {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`Bad port ${port}`);
  if (identifiers.length < 1 || identifiers.length > MAX_ANNOUNCED_IDENTIFIERS) {
    throw new RangeError(`An announcement names 1 to ${MAX_ANNOUNCED_IDENTIFIERS} identifiers`);
  }
  const bytes = new Uint8Array(9 + IDENTIFIER_BYTES * identifiers.length);
  bytes.set(ANNOUNCE_MAGIC);
  bytes[4] = ANNOUNCE_VERSION;
  bytes[5] = DatagramType.announce;
  bytes[6] = port >> 8;
  bytes[7] = port & 0xff;
  bytes[8] = identifiers.length;
  identifiers.forEach((identifier, index) => {
    bytes.set(encodeIdentifier(identifier), 9 + IDENTIFIER_BYTES * index);
  });
  return bytes;
}

/** A client's query for `identifier`: magic (4), version (1), type 2 (1), identifier (4). */
export function encodeQuery(identifier: string): Uint8Array {
  const bytes = new Uint8Array(6 + IDENTIFIER_BYTES);
  bytes.set(ANNOUNCE_MAGIC);
  bytes[4] = ANNOUNCE_VERSION;
  bytes[5] = DatagramType.query;
  bytes.set(encodeIdentifier(identifier), 6);
  return bytes;
}

/**
 * What a received datagram says, or `undefined` when it is not a well-formed datagram of this
 * version (any flaw discards all of it). Needs no permissions.
 *
 * @example
 * ```ts
 * import { decodeDatagram, encodeAnnouncement } from "./announce.ts";
 * const datagram = decodeDatagram(encodeAnnouncement(7878, ["K7QD"]));
 * if (datagram?.type !== "announce" || datagram.port !== 7878) throw new Error("decodeDatagram");
 * ```
 */
export function decodeDatagram(bytes: Uint8Array): Datagram | undefined {
  if (bytes.length < 10 || bytes.length > MAX_DATAGRAM_BYTES) return undefined;
  if (!ANNOUNCE_MAGIC.every((byte, index) => bytes[index] === byte)) return undefined;
  if (bytes[4] !== ANNOUNCE_VERSION) return undefined;
  if (bytes[5] === DatagramType.query) {
    if (bytes.length !== 6 + IDENTIFIER_BYTES) return undefined;
    const identifier = decodeIdentifier(bytes.subarray(6));
    return identifier === undefined ? undefined : { type: "query", identifier };
  }
  if (bytes[5] !== DatagramType.announce) return undefined;
  const port = (bytes[6]! << 8) | bytes[7]!;
  const count = bytes[8]!;
  if (port === 0 || count < 1 || count > MAX_ANNOUNCED_IDENTIFIERS) return undefined;
  if (bytes.length !== 9 + IDENTIFIER_BYTES * count) return undefined;
  const identifiers: string[] = [];
  for (let index = 0; index < count; index++) {
    const start = 9 + IDENTIFIER_BYTES * index;
    const identifier = decodeIdentifier(bytes.subarray(start, start + IDENTIFIER_BYTES));
    if (identifier === undefined) return undefined;
    identifiers.push(identifier);
  }
  return { type: "announce", port, identifiers };
}

/** Where datagrams go, and on which interfaces (for tests and unusual networks). */
export interface MulticastOptions {
  /** The group (default {@link ANNOUNCE_GROUP}). */
  group?: string;
  /** The UDP port (default {@link ANNOUNCE_PORT}). */
  udpPort?: number;
  /**
   * The IPv4 addresses of the interfaces to join and send on. Default: every IPv4 interface
   * `Deno.networkInterfaces()` lists but loopback, or the default route's when that is not
   * permitted or there is none.
   */
  interfaces?: () => readonly string[];
}

/** How a server announces itself. */
export interface AnnouncerOptions extends MulticastOptions {
  /** The TCP port clients connect to. */
  port: number;
  /** The identifiers to announce now (at most 64), asked again before every announcement. */
  identifiers: () => readonly string[];
  /** Time between announcements (default {@link ANNOUNCE_INTERVAL_MS}). */
  intervalMs?: number;
  /** Receives a line when something goes wrong (an interface that cannot be joined). */
  log?: (line: string) => void;
}

/** A running announcer. */
export interface Announcer {
  /** Stops announcing and closes the socket. */
  close(): Promise<void>;
}

/** Answers to queries are sent at most this often (the rest are folded into the next one). */
const QUERY_ANSWER_GAP_MS = 100;

/**
 * Starts announcing: at once, then every `intervalMs`, and soon after a query for one of the
 * identifiers (at most one extra announcement per 100 ms, however many queries come). Nothing is
 * sent while `identifiers` returns none. Permissions: see the module.
 */
export async function startAnnouncer(options: AnnouncerOptions): Promise<Announcer> {
  const socket = await openMulticastSocket(options);
  let closed = false;
  let answerTimer: ReturnType<typeof setTimeout> | undefined;
  let lastSent = -Infinity;
  const current = () => {
    try {
      return [...new Set(options.identifiers())].filter(isIdentifier);
    } catch {
      return [];
    }
  };
  const announce = async () => {
    if (closed) return;
    lastSent = performance.now();
    const identifiers = current().slice(0, MAX_ANNOUNCED_IDENTIFIERS * 4);
    const datagrams: Uint8Array[] = [];
    for (let start = 0; start < identifiers.length; start += MAX_ANNOUNCED_IDENTIFIERS) {
      const chunk = identifiers.slice(start, start + MAX_ANNOUNCED_IDENTIFIERS);
      datagrams.push(encodeAnnouncement(options.port, chunk));
    }
    await socket.sendAll(datagrams, options.log);
  };
  socket.onDatagram((datagram) => {
    if (datagram.type !== "query" || closed || answerTimer !== undefined) return;
    if (!current().includes(datagram.identifier)) return;
    const wait = Math.max(0, lastSent + QUERY_ANSWER_GAP_MS - performance.now());
    answerTimer = setTimeout(() => {
      answerTimer = undefined;
      void announce();
    }, wait);
  });
  const ticker = setInterval(() => void announce(), options.intervalMs ?? ANNOUNCE_INTERVAL_MS);
  await announce();
  return {
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(ticker);
      clearTimeout(answerTimer);
      await socket.close();
    },
  };
}

/** How a client looks for a server. */
export interface FindOptions extends MulticastOptions {
  /** How long to listen (default 2 s). */
  timeoutMs?: number;
  /** Stops listening early. */
  signal?: AbortSignal;
  /** Whether to ask servers to answer at once (default true); without, only listens. */
  query?: boolean;
}

/**
 * Yields each distinct server (address and port) that announces `identifier`, as announcements
 * arrive, until `timeoutMs` passes (at most {@link MAX_CANDIDATES}). Sends a query at the start
 * and again after 300 ms, so servers answer without waiting for their next second. Breaking out
 * of the loop stops listening. Permissions: see the module.
 */
export async function* findServers(
  identifier: string,
  options: FindOptions = {},
): AsyncGenerator<Candidate> {
  if (!isIdentifier(identifier)) throw new TypeError("Not a server identifier");
  const socket = await openMulticastSocket(options);
  const found: Candidate[] = [];
  const seen = new Set<string>();
  let wake: (() => void) | undefined;
  let done = false;
  const finish = () => {
    done = true;
    wake?.();
  };
  socket.onDatagram((datagram, source) => {
    if (datagram.type !== "announce" || !datagram.identifiers.includes(identifier)) return;
    const key = `${source}:${datagram.port}`;
    if (seen.has(key) || seen.size >= MAX_CANDIDATES) return;
    seen.add(key);
    found.push({ hostname: source, port: datagram.port });
    wake?.();
  });
  const deadline = setTimeout(finish, options.timeoutMs ?? 2000);
  options.signal?.addEventListener("abort", finish, { once: true });
  if (options.signal?.aborted) finish();
  const query = options.query === false ? undefined : encodeQuery(identifier);
  const requery = query && setTimeout(() => void socket.sendAll([query]), 300);
  try {
    if (query) await socket.sendAll([query]);
    while (true) {
      const next = found.shift();
      if (next) {
        yield next;
        continue;
      }
      if (done) return;
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
  } finally {
    clearTimeout(deadline);
    clearTimeout(requery);
    options.signal?.removeEventListener("abort", finish);
    await socket.close();
  }
}

/** A UDP socket joined to the group on each interface, sending on each. */
interface MulticastSocket {
  onDatagram(handler: (datagram: Datagram, source: string) => void): void;
  /** Sends each datagram on every interface (one after another); failures are logged. */
  sendAll(datagrams: readonly Uint8Array[], log?: (line: string) => void): Promise<void>;
  close(): Promise<void>;
}

async function openMulticastSocket(options: MulticastOptions): Promise<MulticastSocket> {
  const group = options.group ?? ANNOUNCE_GROUP;
  const udpPort = options.udpPort ?? ANNOUNCE_PORT;
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  const handlers: ((datagram: Datagram, source: string) => void)[] = [];
  socket.on("error", () => {}); // a failed send is reported by its callback
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(udpPort, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  socket.setMulticastTTL(1);
  socket.setMulticastLoopback(true);
  const joined = new Set<string>();
  const interfaces = (): readonly (string | undefined)[] => {
    const listed = (options.interfaces ?? ipv4Interfaces)();
    const fresh = listed.length > 0 ? [...new Set(listed)].slice(0, 16) : [undefined];
    for (const address of fresh) {
      const key = address ?? "";
      if (joined.has(key)) continue;
      try {
        socket.addMembership(group, address);
        joined.add(key);
      } catch {
        // not a multicast interface, or down: sending on it will say so
      }
    }
    return fresh;
  };
  interfaces();
  socket.on("message", (message: Uint8Array, remote: { address: string }) => {
    if (message.length > MAX_DATAGRAM_BYTES) return;
    const datagram = decodeDatagram(new Uint8Array(message));
    if (datagram === undefined) return;
    for (const handler of handlers) handler(datagram, remote.address);
  });
  let closed = false;
  const reported = new Set<string>();
  return {
    onDatagram(handler) {
      handlers.push(handler);
    },
    async sendAll(datagrams, log) {
      for (const address of interfaces()) {
        if (closed) return;
        try {
          if (address !== undefined) socket.setMulticastInterface(address);
        } catch {
          continue;
        }
        for (const datagram of datagrams) {
          const error = await new Promise<Error | null>((resolve) =>
            socket.send(datagram, udpPort, group, (error) => resolve(error ?? null))
          );
          const problem = error &&
            `sending on ${address ?? "the default interface"} failed: ${error.message}`;
          if (problem && !reported.has(problem)) {
            reported.add(problem); // once per interface and reason, not every second
            log?.(problem);
          }
        }
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/**
 * The IPv4 addresses of this machine's interfaces, or none when listing them is not permitted
 * (then the default route's interface is used). Permission: `--allow-sys=networkInterfaces`.
 */
function ipv4Interfaces(): string[] {
  try {
    return Deno.networkInterfaces()
      .filter(({ family, address }) => family === "IPv4" && !address.startsWith("127."))
      .map((networkInterface) => networkInterface.address);
  } catch {
    return [];
  }
}
