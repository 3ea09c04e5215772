/**
 * The CPace handshake that turns a TCP connection into a {@link SecureChannel}.
 *
 * ```
 * S -> C  hello   "FRY1" || version (1) = 2 || status (1) || nonce_s (16)
 *                 (status != 0: a refusal, followed by length (1) || ASCII reason, then close)
 * C -> S  share   nonce_c (16) || identifier (4) || Ya (32)
 * S -> C  share   status (1) = 0 || Yb (32) || Tb (64)
 *                 (status != 0: a refusal, as in the hello, for the identifier named)
 * C -> S  confirm Ta (64)           requests may follow in the same flight
 * ```
 * sid = nonce_c || nonce_s; CI = lv_cat("ferry/2", "client", "server"); ADa = the identifier's 4
 * bytes, ADb = "". The identifier (4 ASCII symbols, `0000` for a server's default code) tells the
 * server which code's secret to use; it is public, and bound into the keys through ADa. The client
 * checks Tb before it sends Ta; the server accepts no record before Ta checks. Each side's states
 * are named after what it knows, as in magic-wormhole's `_key.py`.
 *
 * A client also speaks version 1 (no identifier, no status byte in the server's share, CI and
 * labels `ferry/1`, empty ADa) to an older server, when its code is a default code.
 *
 * @module
 */
import { concatBytes } from "../deps.ts";
import { DEFAULT_IDENTIFIER, IDENTIFIER_SYMBOLS, isIdentifier } from "../code.ts";
import { AuthenticationError, ConnectionError, ProtocolError, RefusedError } from "../errors.ts";
import {
  confirmationTags,
  constantTimeEqual,
  createShare,
  deriveTrafficKeys,
  ferryChannelIdentifier,
  ferryLabel,
  intermediateSessionKey,
  sharedSecret,
} from "./cpace.ts";
import {
  ByteReader,
  type ByteSink,
  type ByteSource,
  RecordReader,
  RecordWriter,
  writeAll,
} from "./framing.ts";
import { LEGACY_PROTOCOL_VERSION, PROTOCOL_VERSION } from "./constants.ts";

/** The four bytes every ferry server sends first. */
export const MAGIC: Uint8Array = new TextEncoder().encode("FRY1");
const NONCE_BYTES = 16;
const POINT_BYTES = 32;
const TAG_BYTES = 64;
/** Length of the identifier in the client's share: 4 ASCII symbols. */
export const IDENTIFIER_BYTES = IDENTIFIER_SYMBOLS;
const EMPTY = new Uint8Array(0);
const MAX_REASON_BYTES = 200;

/** Why a server turns a connection away (the status byte of the hello or of its share). */
export const RefusalStatus = {
  /** Too many connections at once. */
  busy: 1,
  /** Too many failed handshakes from this address, or with this code, lately. */
  slowDown: 2,
  /** The server is shutting down. */
  shuttingDown: 3,
} as const;

/** A refusal status other than 0. */
export type RefusalCode = typeof RefusalStatus[keyof typeof RefusalStatus];

/** A connection after the handshake: records in, records out, both keyed by the session. */
export interface SecureChannel {
  /** Records from the peer. */
  readonly reader: RecordReader;
  /** Records to the peer. */
  readonly writer: RecordWriter;
}

/** The server's side of a connection after the handshake: which code the client proved. */
export interface ServerChannel extends SecureChannel {
  /** The identifier the client named and proved it holds the secret of (`0000`: the default). */
  readonly identifier: string;
}

/**
 * What the server does for the identifier a client named in its share: run CPace with `secret`
 * (for an unknown identifier, a throwaway one, so that the answer and its timing are those of a
 * wrong code), or turn the connection away with `refusal`.
 */
export type CodeChoice =
  | { readonly secret: Uint8Array }
  | { readonly refusal: { readonly status: RefusalCode; readonly reason: string } };

/**
 * Picks the code for the identifier a client named: its canonical symbols, or `""` when the four
 * bytes are not an identifier at all (then no code matches).
 */
export type CodeLookup = (identifier: string) => CodeChoice;

/** For known-answer tests only: the randomness of one side of a handshake, fixed. */
export interface HandshakeRandomness {
  /** This side's 16-byte nonce. */
  readonly nonce: Uint8Array;
  /** This side's scalar y, 32 bytes little-endian (see `createShare`). */
  readonly scalar: Uint8Array;
}

/** A socket as the handshake needs it. */
export type Socket = ByteSource & ByteSink;

function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

async function expect(input: ByteReader, length: number, what: string): Promise<Uint8Array> {
  const bytes = await input.readExact(length);
  if (bytes === null) throw new ConnectionError(`Connection closed before the ${what}`);
  return bytes.slice();
}

/** A status byte and a short ASCII reason: the tail of a refusal. */
function refusalTail(status: RefusalCode, reason: string): Uint8Array {
  const text = new TextEncoder().encode(
    reason.replace(/[^\x20-\x7e]/g, "?").slice(0, MAX_REASON_BYTES),
  );
  return concatBytes(Uint8Array.of(status, text.length), text);
}

/** Reads a refusal's reason (after its non-zero status) and throws it as a {@link RefusedError}. */
async function throwRefusal(input: ByteReader, status: number): Promise<never> {
  const length = (await expect(input, 1, "refusal reason"))[0]!;
  const reason = new TextDecoder().decode(await expect(input, length, "refusal reason"));
  throw new RefusedError(status, reason.replace(/[^\x20-\x7e]/g, "?"));
}

/** Sends a refusal hello (status and a short ASCII reason) instead of a handshake. */
export async function sendRefusal(
  socket: ByteSink,
  status: RefusalCode,
  reason: string,
): Promise<void> {
  await writeAll(
    socket,
    concatBytes(MAGIC, Uint8Array.of(PROTOCOL_VERSION), refusalTail(status, reason)),
  );
}

/** The 4 ASCII bytes of an identifier on the wire. */
function identifierBytes(identifier: string): Uint8Array {
  if (!isIdentifier(identifier)) {
    throw new RangeError("Cannot run the handshake: the identifier is not 4 code symbols");
  }
  return new TextEncoder().encode(identifier);
}

/**
 * Runs the client (initiator) side with the code whose secret is `prs` (see `codeSecret`) and
 * whose identifier is `identifier` (see `codeIdentifier`; {@link DEFAULT_IDENTIFIER} for a default
 * code). Throws {@link AuthenticationError} when the server's confirmation tag does not match (it
 * holds no such code), {@link ProtocolError} when the peer is not a ferry server, speaks another
 * version or sends an invalid point, {@link RefusedError} (a `ConnectionError`) on a refusal, and
 * {@link ConnectionError} on a lost socket.
 *
 * @param fixed For known-answer tests only: the nonce and scalar, instead of fresh random ones.
 */
export async function clientHandshake(
  socket: Socket,
  prs: Uint8Array,
  identifier: string = DEFAULT_IDENTIFIER,
  fixed?: HandshakeRandomness,
): Promise<SecureChannel> {
  const ad = identifierBytes(identifier);
  const input = new ByteReader(socket);

  // S0: know the code only. Wait for the server's hello.
  const hello = await expect(input, MAGIC.length + 2, "server's greeting");
  if (!constantTimeEqual(hello.subarray(0, 4), MAGIC)) {
    throw new ProtocolError("The peer is not a ferry server (bad greeting)");
  }
  const version = hello[4]!;
  const status = hello[5]!;
  if (status !== 0) await throwRefusal(input, status);
  const legacy = version === LEGACY_PROTOCOL_VERSION;
  if (version !== PROTOCOL_VERSION && !legacy) {
    throw new ProtocolError(
      `The server speaks protocol version ${version}; this ferry speaks ${PROTOCOL_VERSION} (and ${LEGACY_PROTOCOL_VERSION})`,
    );
  }
  if (legacy && identifier !== DEFAULT_IDENTIFIER) {
    throw new ProtocolError(
      `The server speaks protocol version ${version}, which knows one code per server: a code with an identifier in front (IIII-XXXX-XXXX-XXXX-XXXX) needs a newer ferry on the server`,
    );
  }
  const nonceServer = await expect(input, NONCE_BYTES, "server's nonce");

  // S1: know the session id. Send our share (with the identifier, from version 2).
  const nonceClient = fixed?.nonce ?? randomBytes(NONCE_BYTES);
  const sid = concatBytes(nonceClient, nonceServer);
  const ada = legacy ? EMPTY : ad;
  const own = createShare(prs, ferryChannelIdentifier(version), sid, fixed?.scalar);
  await writeAll(socket, concatBytes(nonceClient, ada, own.point));

  // S2: await the server's share and confirmation tag (or, from version 2, its refusal).
  if (!legacy) {
    const replyStatus = (await expect(input, 1, "server's key share"))[0]!;
    if (replyStatus !== 0) await throwRefusal(input, replyStatus);
  }
  const reply = await expect(input, POINT_BYTES + TAG_BYTES, "server's key share");
  const serverPoint = reply.subarray(0, POINT_BYTES);
  const k = sharedSecret(own, serverPoint);
  const isk = intermediateSessionKey(sid, k, own.point, ada, serverPoint, EMPTY);
  const tags = confirmationTags(sid, isk, own.point, ada, serverPoint, EMPTY);
  if (!constantTimeEqual(tags.tb, reply.subarray(POINT_BYTES))) {
    throw new AuthenticationError(
      "Wrong connection code: the server holds a different code. Check it for typos, or ask whoever runs the server for the current one",
    );
  }

  // S3: know the key. Confirm it and open the record layer.
  await writeAll(socket, tags.ta);
  const keys = deriveTrafficKeys(isk, sid, ferryLabel(version));
  return {
    reader: new RecordReader(input, keys.s2cKey, keys.s2cIv),
    writer: new RecordWriter(socket, keys.c2sKey, keys.c2sIv),
  };
}

/** A code lookup that knows one code, the default, whose secret is `prs`. */
export function defaultCodeOnly(prs: Uint8Array): CodeLookup {
  return (identifier) =>
    identifier === DEFAULT_IDENTIFIER ? { secret: prs } : { secret: throwawaySecret() };
}

/**
 * A fresh random secret of a code's length (16 symbols), for an identifier no code has: CPace
 * runs with it exactly as with a real secret, and fails exactly as a wrong code does.
 */
export function throwawaySecret(): Uint8Array {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  return Uint8Array.from(randomBytes(16), (byte) => alphabet.charCodeAt(byte & 0b11111));
}

/**
 * Runs the server (responder) side. `codes` picks the secret for the identifier the client names
 * (a lone secret is the default code's). Throws {@link AuthenticationError} when the client's tag
 * does not match (wrong code, or an identifier no code has) or the client leaves after seeing
 * ours, {@link ProtocolError} for an invalid point, {@link RefusedError} after refusing the
 * identifier as `codes` said, {@link ConnectionError} if the socket fails. The caller enforces the
 * deadline.
 *
 * @param fixed For known-answer tests only: the nonce and scalar, instead of fresh random ones.
 */
export async function serverHandshake(
  socket: Socket,
  codes: Uint8Array | CodeLookup,
  fixed?: HandshakeRandomness,
): Promise<ServerChannel> {
  const lookup = codes instanceof Uint8Array ? defaultCodeOnly(codes) : codes;
  const input = new ByteReader(socket);

  // S0: know the codes only. Greet with a fresh nonce.
  const nonceServer = fixed?.nonce ?? randomBytes(NONCE_BYTES);
  await writeAll(socket, concatBytes(MAGIC, Uint8Array.of(PROTOCOL_VERSION, 0), nonceServer));

  // S1: await the client's nonce, identifier and share.
  const first = await expect(
    input,
    NONCE_BYTES + IDENTIFIER_BYTES + POINT_BYTES,
    "client's key share",
  );
  const sid = concatBytes(first.subarray(0, NONCE_BYTES), nonceServer);
  const ada = first.subarray(NONCE_BYTES, NONCE_BYTES + IDENTIFIER_BYTES);
  const clientPoint = first.subarray(NONCE_BYTES + IDENTIFIER_BYTES);
  const written = String.fromCharCode(...ada);
  const identifier = isIdentifier(written) ? written : "";
  const choice = lookup(identifier);
  if ("refusal" in choice) {
    await writeAll(socket, refusalTail(choice.refusal.status, choice.refusal.reason));
    throw new RefusedError(choice.refusal.status, choice.refusal.reason);
  }
  const own = createShare(
    choice.secret,
    ferryChannelIdentifier(PROTOCOL_VERSION),
    sid,
    fixed?.scalar,
  );
  const k = sharedSecret(own, clientPoint);
  const isk = intermediateSessionKey(sid, k, clientPoint, ada, own.point, EMPTY);
  const tags = confirmationTags(sid, isk, clientPoint, ada, own.point, EMPTY);

  // S2: know a candidate key. Prove it and wait for the client's proof.
  await writeAll(socket, concatBytes(Uint8Array.of(0), own.point, tags.tb));
  const ta = await input.readExact(TAG_BYTES);
  if (ta === null || !constantTimeEqual(tags.ta, ta)) {
    throw new AuthenticationError("Authentication failed: the client does not hold the same code");
  }

  // S3: know the key, confirmed by both sides.
  const keys = deriveTrafficKeys(isk, sid, ferryLabel(PROTOCOL_VERSION));
  return {
    identifier,
    reader: new RecordReader(input, keys.c2sKey, keys.c2sIv),
    writer: new RecordWriter(socket, keys.s2cKey, keys.s2cIv),
  };
}
