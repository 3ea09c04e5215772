/**
 * The relay's wire format: every byte a relay, a sharing server and a client exchange before the
 * relay starts splicing, in one module (docs/PROTOCOL.md section 7 describes the same bytes).
 *
 * Every connection to a relay opens with a 6-byte header, `"FRLY" || version || role`, and the
 * relay answers every request with the same 6-byte shape, `"FRLY" || version || status`, whether
 * it accepts or refuses. Every field has a fixed size, or a count bounded before anything is
 * allocated; nothing here is ever longer than {@link MAX_CONTROL_MESSAGE_BYTES}.
 *
 * ```
 * client   -> relay   header(role 3) || identifier (4)                     10 bytes
 * relay    -> client  answer (found | not-found | busy | bad-version)       6 bytes, then splice
 *
 * server   -> relay   header(role 1)                                        6 bytes   control
 * relay    -> server  answer(ok | busy | bad-version) || nonce (32)         38 bytes
 * server   -> relay   server id (16) || HMAC-SHA256(token, ...) (32)       48 bytes
 * relay    -> server  answer(ok | unauthorized)                             6 bytes, then messages
 *
 * server   -> relay   header(role 2) || pairing (16)                       22 bytes   data
 * relay    -> server  answer(ok | not-found) || client address (16) || port (2)   24 bytes, splice
 * ```
 *
 * @module
 */
import { decodeIdentifier, encodeIdentifier, IDENTIFIER_BYTES } from "../net/identifier.ts";

/** Name of the token file in the current folder when none is given (here, with the
 * other fixed names and numbers, so that the light command table can show it). */
export const DEFAULT_TOKEN_FILE = ".relay_token";

/** `"FRLY"`: the first four bytes of every header and answer. */
export const RELAY_MAGIC: Uint8Array = Uint8Array.of(0x46, 0x52, 0x4c, 0x59);

/** The relay protocol version this ferry speaks. */
export const RELAY_VERSION = 1;

/** Port of `ferry relay` when none is given. */
export const DEFAULT_RELAY_PORT = 7879;

/** What a connection to the relay is for: the byte after the version in its header. */
export const RelayRole = {
  /** A sharing server's control connection: proves the token, registers identifiers. */
  control: 1,
  /** A sharing server's data connection, answering one pairing. */
  data: 2,
  /** A client asking for the server that registered an identifier. */
  client: 3,
} as const;

/** A role byte. */
export type RelayRoleValue = typeof RelayRole[keyof typeof RelayRole];

/** The byte after the version in every answer of the relay. */
export const RelayStatus = {
  /** Accepted: found (client), paired (data), challenge follows or token proved (control). */
  ok: 0,
  /** No server holds that identifier (client), or that pairing is gone (data). */
  notFound: 1,
  /** A limit of the relay (per address, in all, the server's pending pairings): try later. */
  busy: 2,
  /** The registration's proof of the token is wrong (control). */
  unauthorized: 3,
  /** The relay speaks another version, which its answer's version byte names. */
  badVersion: 4,
} as const;

/** A status byte. */
export type RelayStatusValue = typeof RelayStatus[keyof typeof RelayStatus];

/** Bytes of a header and of an answer. */
export const HEADER_BYTES = 6;
/** Bytes of an answer: the same shape as a header. */
export const ANSWER_BYTES = 6;
/** Bytes of the relay's challenge to a registering server. */
export const NONCE_BYTES = 32;
/** Bytes of a server instance's random identity (one per running relay listener). */
export const SERVER_ID_BYTES = 16;
/** Bytes of the HMAC-SHA256 proof of the token. */
export const PROOF_BYTES = 32;
/** Bytes of a pairing: the random name under which a client waits for the server's data. */
export const PAIRING_BYTES = 16;
/** Bytes of a client's address as the relay reports it: IPv6 (IPv4 mapped) and port. */
export const PEER_BYTES = 18;

/** Most identifiers one control connection may register. */
export const MAX_IDENTIFIERS_PER_CONTROL = 16;

/** Message types a server sends on its control connection. */
export const ServerMessageType = {
  /** The whole list of identifiers it wants now: count (1) then 4 bytes each. */
  set: 1,
  /** Keeps the connection alive; no body. */
  ping: 2,
} as const;

/** Message types the relay sends on a control connection. */
export const RelayMessageType = {
  /** The answer to `set`: count (1) then one {@link RegistrationStatus} per identifier. */
  registered: 1,
  /** Keeps the connection alive; no body. */
  ping: 2,
  /** A client is waiting: open a data connection with this pairing (16 bytes). */
  pair: 3,
} as const;

/** What became of one identifier of a `set`. */
export const RegistrationStatus = {
  /** Registered to this control connection. */
  registered: 0,
  /** Another server holds it; it stays theirs while their control connection lives. */
  taken: 1,
  /** The address already holds as many identifiers as the relay allows. */
  limit: 2,
} as const;

/** A registration status byte. */
export type RegistrationStatusValue = typeof RegistrationStatus[keyof typeof RegistrationStatus];

/** Longest message on a control connection: a `set` of the most identifiers. */
export const MAX_CONTROL_MESSAGE_BYTES = 2 + IDENTIFIER_BYTES * MAX_IDENTIFIERS_PER_CONTROL;

/** The label HMAC'd with the relay's nonce and the server id (ASCII). */
export const PROOF_LABEL = "ferry-relay/1 register";

function magicAnd(second: number, third: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  bytes.set(RELAY_MAGIC);
  bytes[4] = second;
  bytes[5] = third;
  return bytes;
}

function hasMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && RELAY_MAGIC.every((byte, index) => bytes[index] === byte);
}

/** The header opening a connection for `role`, followed by `body`. */
export function encodeHeader(
  role: RelayRoleValue,
  body: Uint8Array = new Uint8Array(),
): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  bytes.set(magicAnd(RELAY_VERSION, role));
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

/** A client's whole request: header and identifier (10 bytes). */
export function encodeClientRequest(identifier: string): Uint8Array {
  return encodeHeader(RelayRole.client, encodeIdentifier(identifier));
}

/** What a 6-byte header says. */
export type DecodedHeader =
  | { kind: "request"; role: RelayRoleValue }
  | { kind: "other-version"; version: number }
  | { kind: "garbage" };

/** Reads a header: a known role, another version (answered, so it can say so), or garbage. */
export function decodeHeader(bytes: Uint8Array): DecodedHeader {
  if (bytes.length !== HEADER_BYTES || !hasMagic(bytes)) return { kind: "garbage" };
  if (bytes[4] !== RELAY_VERSION) return { kind: "other-version", version: bytes[4]! };
  const role = bytes[5]!;
  if (role === RelayRole.control || role === RelayRole.data || role === RelayRole.client) {
    return { kind: "request", role };
  }
  return { kind: "garbage" };
}

/** The relay's 6-byte answer with `status`. */
export function encodeAnswer(status: RelayStatusValue): Uint8Array {
  return magicAnd(RELAY_VERSION, status);
}

/** What a 6-byte answer says. */
export type DecodedAnswer =
  | { kind: "answer"; status: number }
  | { kind: "other-version"; version: number }
  | { kind: "garbage" };

/** Reads an answer; a status this version does not know is returned as it is, for the caller. */
export function decodeAnswer(bytes: Uint8Array): DecodedAnswer {
  if (bytes.length !== ANSWER_BYTES || !hasMagic(bytes)) return { kind: "garbage" };
  if (bytes[4] !== RELAY_VERSION) return { kind: "other-version", version: bytes[4]! };
  return { kind: "answer", status: bytes[5]! };
}

/** The identifier named by a client's request body (4 bytes), if it is one. */
export function decodeClientBody(body: Uint8Array): string | undefined {
  return decodeIdentifier(body);
}

/** A `set` message: every identifier the server wants registered now. */
export function encodeSet(identifiers: readonly string[]): Uint8Array {
  if (identifiers.length > MAX_IDENTIFIERS_PER_CONTROL) {
    throw new RangeError(
      `Cannot register ${identifiers.length} identifiers: at most ${MAX_IDENTIFIERS_PER_CONTROL}`,
    );
  }
  const bytes = new Uint8Array(2 + IDENTIFIER_BYTES * identifiers.length);
  bytes[0] = ServerMessageType.set;
  bytes[1] = identifiers.length;
  identifiers.forEach((identifier, index) => {
    bytes.set(encodeIdentifier(identifier), 2 + IDENTIFIER_BYTES * index);
  });
  return bytes;
}

/** The `registered` answer: one status per identifier of the `set`, in its order. */
export function encodeRegistered(statuses: readonly RegistrationStatusValue[]): Uint8Array {
  return Uint8Array.of(RelayMessageType.registered, statuses.length, ...statuses);
}

/** A `pair` message naming `pairing`. */
export function encodePair(pairing: Uint8Array): Uint8Array {
  if (pairing.length !== PAIRING_BYTES) throw new RangeError("A pairing is 16 bytes");
  return Uint8Array.of(RelayMessageType.pair, ...pairing);
}

/** A ping, either way (the types have the same value on both sides). */
export const PING: Uint8Array = Uint8Array.of(ServerMessageType.ping);

/**
 * A client's address in 18 bytes: 16 of IPv6 (an IPv4 address as `::ffff:a.b.c.d`) and the port,
 * big-endian. An address that does not parse (a Unix socket path, say) becomes `::`, port 0.
 */
export function encodePeer(hostname: string, port: number): Uint8Array {
  const bytes = new Uint8Array(PEER_BYTES);
  bytes.set(parseIp(hostname) ?? new Uint8Array(16));
  new DataView(bytes.buffer).setUint16(16, port & 0xffff);
  return bytes;
}

/** The address in 18 bytes from the relay: any 18 bytes are some address, so nothing fails. */
export function decodePeer(bytes: Uint8Array): { hostname: string; port: number } {
  if (bytes.length !== PEER_BYTES) throw new RangeError("A peer address is 18 bytes");
  return {
    hostname: formatIp(bytes.subarray(0, 16)),
    port: new DataView(bytes.buffer, bytes.byteOffset).getUint16(16),
  };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Sixteen bytes of an IPv4 or IPv6 address in text (a `%zone` is dropped), or `undefined`. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = ipv4Bytes(text);
  if (v4) return Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4);
  const address = text.split("%", 1)[0]!;
  if (!/^[0-9a-fA-F:.]+$/.test(address)) return undefined;
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups: number[] = [];
    const pieces = part.split(":");
    for (const [index, piece] of pieces.entries()) {
      if (index === pieces.length - 1 && piece.includes(".")) {
        const tail = ipv4Bytes(piece);
        if (!tail) return undefined;
        groups.push((tail[0]! << 8) | tail[1]!, (tail[2]! << 8) | tail[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    bytes[2 * index] = group >> 8;
    bytes[2 * index + 1] = group & 0xff;
  });
  return bytes;
}

function ipv4Bytes(text: string): number[] | undefined {
  const match = IPV4.exec(text);
  if (!match) return undefined;
  const parts = match.slice(1).map(Number);
  return parts.every((part) => part <= 255) ? parts : undefined;
}

/**
 * Sixteen address bytes as text: an IPv4-mapped address as IPv4 (`203.0.113.9`), any other in
 * the canonical IPv6 form of RFC 5952 (lowercase, the longest run of zero groups as `::`).
 */
export function formatIp(bytes: Uint8Array): string {
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  if (mapped) return [...bytes.subarray(12)].join(".");
  const groups = Array.from(
    { length: 8 },
    (_, index) => (bytes[2 * index]! << 8) | bytes[2 * index + 1]!,
  );
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}
