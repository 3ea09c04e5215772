/**
 * One client connection: the handshake under its deadline, the penalties for failing it, the
 * idle deadline, and the request loop that hands each request to its handler (handlers/mod.ts).
 *
 * A session is in one {@link SessionState} at a time:
 *
 * ```
 * handshake --welcome sent--> idle --request--> busy --answered--> idle
 *     |                        |                 |
 *     |                        |                 +--stopWhenIdle--> stopping --answered--> closed
 *     +------------------------+-----------------+--abort, deadline, end, error-----------> closed
 * ```
 *
 * @module
 */
import {
  AuthenticationError,
  ConnectionError,
  NotFoundError,
  ProtocolError,
  RefusedError,
} from "../errors.ts";
import { BUNDLE_FEATURE } from "../protocol/constants.ts";
import { RecordType } from "../protocol/framing.ts";
import {
  type CodeChoice,
  RefusalStatus,
  type SecureChannel,
  sendRefusal,
  serverHandshake,
  throwawaySecret,
} from "../protocol/handshake.ts";
import { decodeClientMessage, encodeMessage, type ServerMessage } from "../protocol/messages.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { Peer, Socket } from "../net/socket.ts";
import { Watchdog } from "../net/watchdog.ts";
import { CommitGroup } from "../store/commit_group.ts";
import type { FileStore } from "../store/store.ts";
import { VERSION } from "../version.ts";
import type { Request, RequestContext, ServerContext } from "./context.ts";
import { handlerFor } from "./handlers/mod.ts";
import type { ActiveCode } from "./code_refresh.ts";
import { describe, replyFor, RequestError } from "./replies.ts";
import type { Rights } from "./rights.ts";
import { WireError } from "../protocol/wire_errors.ts";

/**
 * Where a session is: `handshake` until `welcome` is sent, `idle` while it waits for a request,
 * `busy` while it answers one, `stopping` while it finishes one before a shutdown, `closed` with
 * the reason it was closed for (none when it ended in order).
 */
export type SessionState =
  | { name: "handshake" }
  | { name: "idle" }
  | { name: "busy" }
  | { name: "stopping" }
  | { name: "closed"; reason: string | undefined };

/**
 * Requests of one session that may finish side by side (commits of streamed uploads, prepared
 * `get`s).
 */
export const DEFERRED_AT_ONCE = 32;
/**
 * A commit group flushes once this many uploads wait (see `CommitGroup`): half of
 * {@link DEFERRED_AT_ONCE}, so that the next group's files are read and written while the group
 * before it is flushed, instead of every request in flight waiting for one flush. A tree put of
 * 5,000 files of 1 KiB, median of alternated runs: 2.09 s against 2.27 s with groups of 32 (into
 * tmpfs, 5 runs), 2.33 s against 2.43 s (ext4, 4 runs). Groups of 8 were no faster; 64 requests
 * in flight with groups of 32 were as fast, but raised the server's peak RSS by 3 to 10 MB.
 */
export const COMMIT_GROUP_FILES = 16;
/**
 * Uploads finished within this many milliseconds of each other are flushed to disk together
 * (see `CommitGroup`); a group also flushes once {@link COMMIT_GROUP_FILES} files wait.
 */
const FLUSH_QUIET_MS = 2;

/** One client connection. Create it, then {@link run} or {@link refuse} it. */
export class Session {
  /** Settles when the connection is closed and its request, if any, has ended. */
  readonly finished: Promise<void>;
  #socket: Socket;
  #peer: Peer;
  #context: ServerContext;
  #state: SessionState = { name: "handshake" };
  #watchdog = new Watchdog((reason) => this.abort(reason));
  #resolveFinished!: () => void;
  /** The code this session authenticated with, once it has. */
  #code: ActiveCode | undefined;
  /** What this session may do, once its code is known. */
  #rights: Rights | undefined;
  /** Settles once every request that finishes later (a commit) has sent its answer. */
  #finishing: Promise<void> = Promise.resolve();
  /** Requests finishing later now, oldest first: each settles once it and those before it end. */
  #deferred: Promise<void>[] = [];
  #commitGroup = new CommitGroup({ maxFiles: COMMIT_GROUP_FILES, quietMs: FLUSH_QUIET_MS });

  /** A session for `socket`, accepted from `peer`, on the server described by `context`. */
  constructor(socket: Socket, peer: Peer, context: ServerContext) {
    this.#socket = socket;
    this.#peer = peer;
    this.#context = context;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
  }

  /** Turns the connection away with a refusal hello (`status` and `reason`), then closes it. */
  async refuse(
    status: typeof RefusalStatus[keyof typeof RefusalStatus],
    reason: string,
  ): Promise<void> {
    this.#logRepeatable("refused", `refused: ${reason}`, true);
    this.#arm(1000, "refusal not read");
    try {
      await sendRefusal(this.#socket, status, reason);
    } catch {
      // the client left already
    }
    this.#close(undefined);
    this.#resolveFinished();
  }

  /** Closes the connection at once if it is not answering a request, else after it. */
  stopWhenIdle(): void {
    if (this.#state.name === "busy") this.#state = { name: "stopping" };
    else this.abort("server shutting down");
  }

  /** The code this session authenticated with, once it has. */
  get code(): ActiveCode | undefined {
    return this.#code;
  }

  /** Closes the connection now, for `reason` (logged when the session ends). */
  abort(reason: string): void {
    this.#close(reason);
  }

  /** Serves the connection until it closes: handshake, `welcome`, then requests. */
  async run(): Promise<void> {
    const { penalties, admission } = this.#context;
    const address = this.#peer.address;
    const slot = { address, evict: (reason: string) => this.abort(reason) };
    let inSession = false;
    try {
      const wait = penalties.admit(address);
      if (wait > 0) {
        await this.refuse(
          RefusalStatus.slowDown,
          `too many failed attempts from your address, wait ${Math.ceil(wait / 1000)} s`,
        );
        return;
      }
      const noSlot = admission.startHandshake(slot);
      if (noSlot !== undefined) {
        await this.refuse(RefusalStatus.busy, noSlot);
        return;
      }
      let channel: SecureChannel;
      const { codes, identifiers } = this.#context;
      /** The identifier the client named, once its share came, and the code it stands for. */
      let named: { identifier: string; known: boolean; code: ActiveCode | undefined } | undefined;
      const choose = (identifier: string): CodeChoice => {
        admission.progressed(slot); // its share came: a client, not a socket held open
        const known = codes.has(identifier);
        const code = codes.find(identifier);
        named = { identifier, known, code };
        const wait = identifiers.admit(identifier, known);
        if (wait > 0) {
          const reason = `too many failed attempts with this code lately, wait ${
            Math.ceil(wait / 1000)
          } s`;
          return { refusal: { status: RefusalStatus.slowDown, reason } };
        }
        // An identifier no code has (or an expired code's) runs with a throwaway secret: it
        // fails as a wrong secret does, after the same work.
        return { secret: code?.secret ?? throwawaySecret() };
      };
      this.#arm(this.#context.handshakeTimeoutMs, "handshake deadline passed");
      try {
        this.#socket.setNoDelay?.(true);
        await codes.refresh();
        channel = await serverHandshake(this.#socket, choose);
      } catch (error) {
        if (error instanceof RefusedError) {
          // Not a guess: refused before any curve operation, as an address told to slow down.
          this.#logRepeatable("refused", `refused: ${error.reason} (${whose(named)})`, true);
          return;
        }
        penalties.fail(address);
        this.#logRepeatable(
          "handshake failed",
          error instanceof AuthenticationError
            ? `authentication failed: wrong code (${whose(named)})`
            : `handshake failed: ${this.#closeReason() ?? describe(error)}`,
          true,
        );
        return;
      } finally {
        admission.endHandshake(slot);
      }
      penalties.succeed(address);
      const code = named?.code;
      if (code === undefined) return; // cannot be: only a code's secret gets this far
      identifiers.succeed(code.identifier, true);
      // Replaced or revoked while the handshake ran: the periodic check would close it anyway.
      const ended = codes.endOf(code);
      if (ended !== undefined) {
        this.#log(`closed: ${ended}`);
        return;
      }
      this.#code = code;
      this.#rights = this.#context.rights.forCode(code.rights);
      codes.noteUse(code);
      const noSession = admission.startSession();
      if (noSession !== undefined) {
        // Raced: the sessions filled up during the handshake. `busy` tells the client to retry.
        this.#logRepeatable("refused", `refused: ${noSession}`, true);
        await channel.writer.send(
          RecordType.control,
          encodeMessage({ t: "error", code: WireError.busy, message: noSession }),
        ).catch(() => {});
        return;
      }
      inSession = true;
      // Logged once the handshake is through: a stranger's attempts are only its (limited)
      // failure lines, so they cannot flood the log.
      this.#log("connected");
      this.#log("authenticated");
      await this.#serve(channel);
    } catch (error) {
      this.#log(`closed: ${this.#closeReason() ?? describe(error)}`);
    } finally {
      await this.#finishing; // requests that finish later (commits) end before the session does
      if (inSession) admission.endSession();
      this.#close(undefined);
      this.#resolveFinished();
    }
  }

  async #serve(channel: SecureChannel): Promise<void> {
    const { reader, writer } = channel;
    const sendNow = (message: ServerMessage) =>
      writer.send(RecordType.control, encodeMessage(message));
    // The answers of requests finished side by side (small files read or stored many at a time)
    // are gathered into bundles and go out when the work under way pauses, so that a run of them
    // shares one cipher call and one write. A refusal goes out at once: the session may end right
    // after it (a failed upload).
    const sendDeferred = async (message: ServerMessage) => {
      await writer.write(RecordType.control, encodeMessage(message), { gather: true });
      if (message.t === "error") await writer.flush();
      else writer.flushSoon();
    };
    // Every answer goes out after the answers of requests that finish later (see `defer`).
    const send = async (message: ServerMessage) => {
      await this.#finishing;
      await sendNow(message);
    };
    const rights = this.#rights!;
    // Sent for the record; today's client does not read `maxUpload`.
    await send({
      t: "welcome",
      server: `ferry/${VERSION}`,
      mode: rights.mode,
      maxUpload: rights.maxUpload ?? -1,
      idleTimeoutMs: this.#context.idleTimeoutMs,
      features: [BUNDLE_FEATURE],
    });
    let firstRequest = true;
    while (true) {
      if (this.#state.name === "stopping") {
        await this.#finishing;
        await writer.end().catch(() => {});
        this.#log("closed: server shutting down");
        return;
      }
      this.#enter("idle");
      this.#arm(this.#context.idleTimeoutMs, "idle deadline passed");
      const record = await reader.next();
      this.#enter("busy");
      if (record.type === RecordType.end) {
        await this.#finishing;
        await writer.end().catch(() => {});
        this.#log("closed by client");
        return;
      }
      if (record.type !== RecordType.control) {
        throw new ProtocolError("Data record outside an upload");
      }
      const request = decodeClientMessage(record.payload);
      if (request.t === "keepalive") continue; // the client works locally; the deadline restarts
      // The client takes up offered features with its first request only.
      if (firstRequest && "features" in request && request.features?.includes(BUNDLE_FEATURE)) {
        reader.acceptBundles();
        writer.useBundles();
      }
      firstRequest = false;
      const handle = handlerFor(request);
      if (handle === undefined) {
        throw new ProtocolError(`Message "${request.t}" outside its place in the conversation`);
      }
      try {
        const store = await this.#store(request as Request);
        await handle(this.#requestContext(channel, send, sendDeferred, store));
      } catch (error) {
        if (error instanceof ConnectionError || error instanceof ProtocolError) throw error;
        this.#log(`${request.t} refused: ${describe(error)}`);
        await send(replyFor(error));
      }
    }
  }

  /**
   * The store this session sees: the served folder, or for a code limited to a folder, that
   * folder as a store of its own, looked up again for each request (it may have gone since).
   * When it cannot be had, a store that refuses everything, so that the request is refused the
   * way its handler refuses (a streamed upload's bytes read past first).
   */
  async #store(request: Request): Promise<FileStore> {
    const store = this.#context.store;
    const scope = this.#code!.scope;
    if (scope === "") return store;
    if (store.scope === undefined) {
      return refusingStore(
        new RequestError(
          "permission",
          "This code is limited to a folder, which this server cannot do: ask its owner",
        ),
      );
    }
    try {
      return await store.scope(scope);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      this.#log(`${request.t}: the folder ${sanitizeForDisplay(scope)} of the code is gone`);
      return refusingStore(
        new RequestError(
          "not-found",
          "The folder this code gives access to no longer exists on the server: ask its owner",
        ),
      );
    }
  }

  /** What a request's handler is given: this session, and the store it sees (see `#store`). */
  #requestContext(
    channel: SecureChannel,
    send: (message: ServerMessage) => Promise<void>,
    sendDeferred: (message: ServerMessage) => Promise<void>,
    store: FileStore,
  ): RequestContext {
    const server = this.#context;
    return {
      store,
      channel,
      send,
      defer: (finish) => this.#defer(finish, sendDeferred),
      flushed: (file) => this.#commitGroup.flushed(file),
      rights: this.#rights!,
      uploadPrefix: server.uploadPrefix,
      uploadsInProgress: server.uploadsInProgress,
      get shuttingDown() {
        return server.shuttingDown;
      },
      deadline: {
        pause: () => this.#watchdog.pause(),
        stall: (extraMs = 0) => this.#arm(server.idleTimeoutMs + extraMs, "transfer stalled"),
      },
      log: (message) => this.#log(message),
      endSession: (reason) => this.abort(reason),
    };
  }

  /**
   * Lets a request finish side by side with the next ones (see `RequestContext.defer`): `finish`
   * starts now, and its messages go out once every earlier answer has. At most
   * {@link DEFERRED_AT_ONCE} run at once; past that, the request waits until the oldest has ended
   * (not all of them: the next commit group is read while the one before it is flushed).
   */
  async #defer(
    finish: (send: (message: ServerMessage) => Promise<void>) => Promise<void>,
    sendDeferred: (message: ServerMessage) => Promise<void>,
  ): Promise<void> {
    const earlier = this.#finishing;
    const inOrder = async (message: ServerMessage) => {
      await earlier;
      await sendDeferred(message);
    };
    const done = finish(inOrder)
      .catch((error) => {
        // `finish` answers its own refusals: what escapes is a connection that no longer works.
        this.#log(`closed: ${describe(error)}`);
        this.abort(describe(error));
      })
      .then(() => earlier)
      .finally(() => {
        // They end in order (each waits for the one before), so the one ending is the oldest.
        // (Not returned: `finally` would wait for the promise it removes, that is, itself.)
        this.#deferred.shift();
      });
    this.#deferred.push(done);
    this.#finishing = done;
    if (this.#deferred.length >= DEFERRED_AT_ONCE) {
      this.#commitGroup.flushNow(); // no more files join before the oldest is done
      await this.#deferred[0];
    }
  }

  /** Moves to `name`, unless the session is closed already or a stop is pending. */
  #enter(name: "idle" | "busy"): void {
    if (this.#state.name === "closed" || this.#state.name === "stopping") return;
    this.#state = { name };
  }

  /** Why the session was closed before it ended by itself, if it was. */
  #closeReason(): string | undefined {
    return this.#state.name === "closed" ? this.#state.reason : undefined;
  }

  /** (Re)starts the deadline: the connection is closed unless it is armed again in time. */
  #arm(ms: number, reason: string): void {
    if (this.#state.name !== "closed") this.#watchdog.arm(ms, reason);
  }

  #close(reason: string | undefined): void {
    if (this.#state.name === "closed") return;
    this.#state = { name: "closed", reason };
    this.#watchdog.disarm();
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }

  /**
   * Logs an event a stranger can cause at will, through the server's repeated-event limit (one
   * line per address and kind per window once it repeats; see `repeated_log.ts`).
   */
  #logRepeatable(kind: string, message: string, failure = false): void {
    this.#context.repeatedLog.event(
      this.#peer.address,
      kind,
      `${new Date().toISOString()} ${this.#peer.label} ${message}`,
      failure,
    );
  }

  /** Logs one line about this connection, naming its code once it has authenticated. */
  #log(message: string): void {
    const naming = this.#code === undefined ? "" : ` code=${this.#code.name}`;
    this.#context.log(`${new Date().toISOString()} ${this.#peer.label}${naming} ${message}`);
  }
}

/** A store whose every method fails with `error`. */
function refusingStore(error: RequestError): FileStore {
  const refuse = () => Promise.reject(error);
  return {
    resolve: refuse,
    entries: async function* () {
      yield* [];
      throw error;
    },
    walk: async function* () {
      yield* [];
      throw error;
    },
    openRead: refuse,
    openExisting: refuse,
    targetKind: refuse,
    makeFolder: refuse,
    beginUpload: refuse,
  };
}

/**
 * Which code a failed or refused handshake tried, for the server's log: `identifier K7QD, code
 * client`, or `identifier K7QD, no such code`. The identifier is public; it travels in the clear.
 */
function whose(
  named: { identifier: string; known: boolean; code: ActiveCode | undefined } | undefined,
): string {
  if (named === undefined) return "no identifier came";
  const identifier = named.identifier === ""
    ? "not an identifier"
    : `identifier ${named.identifier}`;
  const which = named.code !== undefined
    ? `code ${named.code.name}`
    : named.known
    ? "an expired code"
    : "no such code";
  return `${identifier}, ${which}`;
}
