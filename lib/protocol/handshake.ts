/**
 * The CPace handshake that turns a TCP connection into a {@link SecureChannel}.
 *
 * ```
 * S -> C  hello   "FRY1" || version (1) || status (1) || nonce_s (16)
 *                 (status != 0: a refusal, followed by length (1) || ASCII reason, then close)
 * C -> S  share   nonce_c (16) || Ya (32)
 * S -> C  share   Yb (32) || Tb (64)
 * C -> S  confirm Ta (64)           requests may follow in the same flight
 * ```
 * sid = nonce_c || nonce_s; CI = lv_cat("ferry/1", "client", "server"); ADa = ADb = "" (the
 * version is bound through CI). The client checks Tb before it sends Ta; the server accepts no
 * record before Ta checks. Each side's states are named after what it knows, as in
 * magic-wormhole's `_key.py`.
 *
 * @module
 */
import { concatBytes } from "../deps.ts";
import { AuthenticationError, ConnectionError, ProtocolError, RefusedError } from "../errors.ts";
import {
  confirmationTags,
  constantTimeEqual,
  createShare,
  deriveTrafficKeys,
  FERRY_CI,
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
import { PROTOCOL_VERSION } from "./constants.ts";

/** The four bytes every ferry server sends first. */
export const MAGIC: Uint8Array = new TextEncoder().encode("FRY1");
const NONCE_BYTES = 16;
const POINT_BYTES = 32;
const TAG_BYTES = 64;
const EMPTY = new Uint8Array(0);

/** Why a server turns a connection away before the handshake (the hello's status byte). */
export const RefusalStatus = {
  /** Too many connections at once. */
  busy: 1,
  /** Too many failed handshakes from this address lately. */
  slowDown: 2,
  /** The server is shutting down. */
  shuttingDown: 3,
} as const;

/** A connection after the handshake: records in, records out, both keyed by the session. */
export interface SecureChannel {
  /** Records from the peer. */
  readonly reader: RecordReader;
  /** Records to the peer. */
  readonly writer: RecordWriter;
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

/** Sends a refusal hello (status and a short ASCII reason) instead of a handshake. */
export async function sendRefusal(
  socket: ByteSink,
  status: typeof RefusalStatus[keyof typeof RefusalStatus],
  reason: string,
): Promise<void> {
  const text = new TextEncoder().encode(reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 200));
  await writeAll(
    socket,
    concatBytes(MAGIC, Uint8Array.of(PROTOCOL_VERSION, status, text.length), text),
  );
}

/**
 * Runs the client (initiator) side. Throws {@link AuthenticationError} when the server's
 * confirmation tag does not match (a different code), {@link ProtocolError} when the peer is not a
 * ferry server or sends an invalid point, {@link ConnectionError} on a refusal or a lost socket.
 */
export async function clientHandshake(socket: Socket, prs: Uint8Array): Promise<SecureChannel> {
  const input = new ByteReader(socket);

  // S0: know the code only. Wait for the server's hello.
  const hello = await expect(input, MAGIC.length + 2, "server's greeting");
  if (!constantTimeEqual(hello.subarray(0, 4), MAGIC)) {
    throw new ProtocolError("The peer is not a ferry server (bad greeting)");
  }
  const version = hello[4]!;
  const status = hello[5]!;
  if (status !== 0) {
    const length = (await expect(input, 1, "refusal reason"))[0]!;
    const reason = new TextDecoder().decode(await expect(input, length, "refusal reason"));
    throw new RefusedError(status, reason.replace(/[^\x20-\x7e]/g, "?"));
  }
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `The server speaks protocol version ${version}; this ferry speaks ${PROTOCOL_VERSION}`,
    );
  }
  const nonceServer = await expect(input, NONCE_BYTES, "server's nonce");

  // S1: know the session id. Send our share.
  const nonceClient = randomBytes(NONCE_BYTES);
  const sid = concatBytes(nonceClient, nonceServer);
  const own = createShare(prs, FERRY_CI, sid);
  await writeAll(socket, concatBytes(nonceClient, own.point));

  // S2: await the server's share and confirmation tag.
  const reply = await expect(input, POINT_BYTES + TAG_BYTES, "server's key share");
  const serverPoint = reply.subarray(0, POINT_BYTES);
  const k = sharedSecret(own, serverPoint);
  const isk = intermediateSessionKey(sid, k, own.point, EMPTY, serverPoint, EMPTY);
  const tags = confirmationTags(sid, isk, own.point, EMPTY, serverPoint, EMPTY);
  if (!constantTimeEqual(tags.tb, reply.subarray(POINT_BYTES))) {
    throw new AuthenticationError(
      "Wrong connection code: the server holds a different code. Check it for typos, or ask whoever runs the server for the current one",
    );
  }

  // S3: know the key. Confirm it and open the record layer.
  await writeAll(socket, tags.ta);
  const keys = deriveTrafficKeys(isk, sid);
  return {
    reader: new RecordReader(input, keys.s2cKey, keys.s2cIv),
    writer: new RecordWriter(socket, keys.c2sKey, keys.c2sIv),
  };
}

/**
 * Runs the server (responder) side. Throws {@link AuthenticationError} when the client's tag does
 * not match (wrong code) or the client leaves after seeing ours, {@link ProtocolError} for an
 * invalid point, {@link ConnectionError} if the socket fails. The caller enforces the deadline.
 */
export async function serverHandshake(socket: Socket, prs: Uint8Array): Promise<SecureChannel> {
  const input = new ByteReader(socket);

  // S0: know the code only. Greet with a fresh nonce.
  const nonceServer = randomBytes(NONCE_BYTES);
  await writeAll(socket, concatBytes(MAGIC, Uint8Array.of(PROTOCOL_VERSION, 0), nonceServer));

  // S1: await the client's nonce and share.
  const first = await expect(input, NONCE_BYTES + POINT_BYTES, "client's key share");
  const sid = concatBytes(first.subarray(0, NONCE_BYTES), nonceServer);
  const clientPoint = first.subarray(NONCE_BYTES);
  const own = createShare(prs, FERRY_CI, sid);
  const k = sharedSecret(own, clientPoint);
  const isk = intermediateSessionKey(sid, k, clientPoint, EMPTY, own.point, EMPTY);
  const tags = confirmationTags(sid, isk, clientPoint, EMPTY, own.point, EMPTY);

  // S2: know a candidate key. Prove it and wait for the client's proof.
  await writeAll(socket, concatBytes(own.point, tags.tb));
  const ta = await input.readExact(TAG_BYTES);
  if (ta === null || !constantTimeEqual(tags.ta, ta)) {
    throw new AuthenticationError("Authentication failed: the client does not hold the same code");
  }

  // S3: know the key, confirmed by both sides.
  const keys = deriveTrafficKeys(isk, sid);
  return {
    reader: new RecordReader(input, keys.c2sKey, keys.c2sIv),
    writer: new RecordWriter(socket, keys.s2cKey, keys.s2cIv),
  };
}
