/**
 * The client's side of one authenticated conversation: send a request, wait for the answer under
 * a stall deadline, decode and check what the server says, and keep the session alive while the
 * client works locally. Listing, download and upload are written on top of it.
 *
 * @module
 */
import { ConnectionError, ConnectionLostError, ProtocolError, RemoteError } from "../errors.ts";
import { BUNDLE_FEATURE } from "../protocol/constants.ts";
import { type ReceivedRecord, RecordType } from "../protocol/framing.ts";
import type { SecureChannel } from "../protocol/handshake.ts";
import {
  type ClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ServerMessage,
  type TakesUpFeatures,
} from "../protocol/messages.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { Watchdog } from "../net/watchdog.ts";

/** The longest wait between two keep-alive messages while the client works locally. */
export const KEEPALIVE_MAX_INTERVAL_MS = 10_000;

/** The shortest wait between two keep-alive messages, whatever the server's deadline. */
export const KEEPALIVE_MIN_INTERVAL_MS = 20;

/**
 * Records queued while answers are already here go out once this many have gathered, and in any
 * case before the client waits. Sending each request as soon as the previous answer is read cost a
 * cipher call and a socket write per file of a folder download; waiting until no answer is left
 * let the server run out of work (5,000-file tree: 2.95 s median sending each, 3.3-3.8 s waiting,
 * 2.73 s with 8; 4 and 16 measured between).
 */
export const QUEUED_RECORDS_SENT_TOGETHER = 8;

/** Something that can be closed: the connection under the channel. */
export interface Closable {
  /** Closes it; closing twice is harmless. */
  close(): void;
}

/** One request at a time over a secure channel, as the client sees it. */
export class ClientConversation {
  /** The channel's writer, for data records. */
  readonly writer: SecureChannel["writer"];
  #channel: SecureChannel;
  #connection: Closable;
  #idleTimeoutMs: number;
  #serverIdleTimeoutMs: number | undefined;
  #watchdog: Watchdog;
  #stalled = false;
  /** When the server last made progress (`performance.now()`): a stall is measured from it. */
  #progressAt = performance.now();
  /** The next request takes up the server's bundles (see {@link useBundles}). */
  #takeUpBundles = false;
  /** {@link #progressAt} before the last record, for a message that turns out to be empty. */
  #progressBefore = this.#progressAt;

  /**
   * @param idleTimeoutMs The server is hung up on when a reply does not come this long.
   */
  constructor(connection: Closable, channel: SecureChannel, idleTimeoutMs: number) {
    this.#connection = connection;
    this.#channel = channel;
    this.writer = channel.writer;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#watchdog = new Watchdog(() => {
      this.#stalled = true;
      closeQuietly(this.#connection);
    }, { unref: true });
  }

  /** The server's own idle deadline, once its welcome said it (older servers do not). */
  set serverIdleTimeoutMs(ms: number | undefined) {
    this.#serverIdleTimeoutMs = ms;
  }

  /**
   * Takes up the server's offer of bundles (see `framing.ts`) with the next request: it carries
   * `features`, and from then on this side reads bundles and gathers queued records into them.
   */
  useBundles(): void {
    this.#takeUpBundles = true;
  }

  /** Sends one control message. */
  async send(message: ClientMessage): Promise<void> {
    await this.#write(message, false);
    await this.#channel.writer.flush();
    this.#waitFromNow();
  }

  /**
   * Queues one control message, which goes out with the next ones: at the latest when the client
   * next waits for the server ({@link next} sends what is queued first). For requests sent in a
   * row before their answers are read, so that they share one bundle and one write.
   */
  async queue(message: ClientMessage): Promise<void> {
    await this.#write(message, true);
    this.#waitFromNow();
  }

  /** Writes `message`; the first request after {@link useBundles} takes the bundles up. */
  async #write(message: ClientMessage, gather: boolean): Promise<void> {
    const { reader, writer } = this.#channel;
    if (this.#takeUpBundles && isRequest(message)) {
      this.#takeUpBundles = false;
      const takingUp: ClientMessage = { ...message, features: [BUNDLE_FEATURE] };
      await writer.write(RecordType.control, encodeMessage(takingUp)); // alone, before any bundle
      reader.acceptBundles();
      writer.useBundles();
      return;
    }
    await writer.write(RecordType.control, encodeMessage(message), { gather });
  }

  /** Restarts the stall deadline while data is being sent: a dead server is noticed. */
  touch(): void {
    this.#waitFromNow();
    this.#watchdog.arm(this.#idleTimeoutMs, "stalled");
  }

  /** A stalled connection's errors say so; other errors pass through. */
  explain(error: unknown): unknown {
    return this.#stalled
      ? new ConnectionError(
        `The server stopped responding for ${Math.round(this.#idleTimeoutMs / 1000)} s`,
      )
      : error;
  }

  /**
   * The next record; `extraMs` more are allowed when the server first hashes a kept prefix. The
   * end record means the server left: {@link ConnectionLostError}.
   */
  async next(extraMs = 0): Promise<ReceivedRecord> {
    // Measured from the last progress, not the last record: a server that sends empty records
    // (or empty listing batches) forever is a stalled server.
    const sinceProgress = performance.now() - this.#progressAt;
    this.#watchdog.arm(Math.max(0, this.#idleTimeoutMs + extraMs - sinceProgress), "stalled");
    let record: ReceivedRecord;
    try {
      // What is queued goes out before this side waits: the server is to answer it. While answers
      // are already here, requests queued meanwhile gather and go out together.
      const { reader, writer } = this.#channel;
      if (!reader.ready || writer.unsent >= QUEUED_RECORDS_SENT_TOGETHER) await writer.flush();
      record = await reader.next();
    } catch (error) {
      throw this.explain(error);
    } finally {
      // Only a pending reply is watched: an idle interactive session is not a stall.
      this.#watchdog.pause();
    }
    if (record.type === RecordType.end) {
      throw new ConnectionLostError("The server closed the connection");
    }
    this.#progressBefore = this.#progressAt;
    if (record.type !== RecordType.data || record.payload.length > 0) {
      this.#progressAt = performance.now();
    }
    return record;
  }

  /**
   * Marks the start of a wait for a reply: the stall deadline then runs from now. Called when a
   * request goes out (the server's silence before it is no stall).
   */
  #waitFromNow(): void {
    this.#progressAt = performance.now();
  }

  /**
   * The server message in a control record; an `error` message becomes a {@link RemoteError}
   * with its text escaped, data where a message belongs a {@link ProtocolError}.
   */
  decode(record: ReceivedRecord): ServerMessage {
    if (record.type !== RecordType.control) {
      throw new ProtocolError("Unexpected data from the server");
    }
    const message = decodeServerMessage(record.payload);
    if (message.t === "listing" && message.entries.length === 0 && !message.done) {
      this.#progressAt = this.#progressBefore; // an empty batch that is not the last moves nothing
    }
    if (message.t === "error") {
      throw new RemoteError(message.code, sanitizeForDisplay(message.message));
    }
    return message;
  }

  /** The next message, which must be one of `types`. */
  async expect<T extends ServerMessage["t"]>(
    types: T | readonly T[],
    extraMs = 0,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    const wanted: readonly string[] = typeof types === "string" ? [types] : types;
    const message = this.decode(await this.next(extraMs));
    if (!wanted.includes(message.t)) {
      throw new ProtocolError(
        `Expected "${wanted.join('" or "')}" from the server, got "${message.t}"`,
      );
    }
    return message as Extract<ServerMessage, { t: T }>;
  }

  /**
   * Runs `work` (local work between two messages, such as hashing a kept file) while telling the
   * server, every so often, that the client is still there: the server's idle deadline would
   * otherwise end a session whose client hashes gigabytes from a slow disk.
   */
  async whileWorking<T>(work: () => Promise<T>): Promise<T> {
    const interval = Math.max(
      KEEPALIVE_MIN_INTERVAL_MS,
      Math.min(KEEPALIVE_MAX_INTERVAL_MS, (this.#serverIdleTimeoutMs ?? Infinity) / 3),
    );
    // One at once: the server's deadline has been running since its last answer.
    let sending: Promise<void> = this.send({ t: "keepalive" }).catch(() => {});
    const timer = setInterval(() => {
      sending = sending.then(() => this.send({ t: "keepalive" })).catch(() => {});
    }, interval);
    try {
      return await work();
    } finally {
      clearInterval(timer);
      await sending;
    }
  }

  /**
   * Drops the connection at once, without the end record: whatever is under way (a read, a send,
   * a body being received) fails. For a user who stops a transfer; partial files are kept.
   */
  abort(): void {
    this.#watchdog.disarm();
    closeQuietly(this.#connection);
  }

  /** Ends the conversation politely (end record) and closes the connection. */
  async close(): Promise<void> {
    this.#watchdog.disarm();
    try {
      await this.#channel.writer.end();
    } catch {
      // the connection is gone already
    }
    closeQuietly(this.#connection);
  }
}

/** Whether `message` is a request (`list`, `get`, `put`, `mkdir`), which may take up features. */
function isRequest(
  message: ClientMessage,
): message is Extract<ClientMessage, TakesUpFeatures & { t: "list" | "get" | "put" | "mkdir" }> {
  return message.t === "list" || message.t === "get" || message.t === "put" ||
    message.t === "mkdir";
}

/** Closes `connection`, ignoring that it may be closed already. */
export function closeQuietly(connection: Closable): void {
  try {
    connection.close();
  } catch {
    // already closed
  }
}
