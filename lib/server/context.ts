/**
 * What the parts of the server share: the {@link ServerContext} of one running server, and the
 * small {@link RequestContext} each request handler receives.
 *
 * @module
 */
import type { SecureChannel } from "../protocol/handshake.ts";
import type {
  ClientMessage,
  KeepAlive,
  PutCancel,
  PutEnd,
  PutStart,
  ServerMessage,
} from "../protocol/messages.ts";
import type { FileStore, PendingFile } from "../store/store.ts";
import type { Admission } from "./admission.ts";
import type { ServerCodes } from "./code_refresh.ts";
import type { IdentifierThrottle, PenaltyBox } from "./penalty.ts";
import type { RepeatedLog } from "./repeated_log.ts";
import type { Rights } from "./rights.ts";
import type { UploadClaims } from "./upload_claims.ts";

/** The settings and shared state of one running server, built by `startServer`. */
export interface ServerContext {
  /** The served folder. */
  store: FileStore;
  /** The codes accepted now: the default code and the named ones, read again as they change. */
  codes: ServerCodes;
  /** Prepended to the first component of every upload's name. */
  uploadPrefix: string;
  /** What the server lets every session do (each code may allow less). */
  rights: Rights;
  /** Deadline for the handshake and `welcome`. */
  handshakeTimeoutMs: number;
  /** Deadline between requests and between the records of a transfer. */
  idleTimeoutMs: number;
  /** Slots for connections in their handshake and for authenticated sessions. */
  admission: Admission;
  /** Failed handshakes, by peer address. */
  penalties: PenaltyBox;
  /** Failed handshakes, by the identifier of the code they tried, from every address. */
  identifiers: IdentifierThrottle;
  /** The uploads being received now (a second one is `busy` unless the first went quiet). */
  uploadsInProgress: UploadClaims;
  /** Set once the server is shutting down: cut uploads leave no partial file behind. */
  shuttingDown: boolean;
  /** Receives one line per event. */
  log: (line: string) => void;
  /** The same log, for events a stranger can repeat at will. */
  repeatedLog: RepeatedLog;
}

/**
 * The requests a client may send between others that get an answer (not `put-start`/`put-end`,
 * parts of `put`, nor `keepalive`, which the session takes itself).
 */
export type Request = Exclude<ClientMessage, PutStart | PutEnd | PutCancel | KeepAlive>;

/** Controls the deadline of the connection while a request runs. */
export interface Deadline {
  /** Suspends the deadline: this side's own work (hashing) is not a stalled client. */
  pause(): void;
  /** (Re)starts the stall deadline: the idle timeout plus `extraMs`, from now. */
  stall(extraMs?: number): void;
}

/** What a request handler is given: one request's view of its session and server. */
export interface RequestContext {
  /** The served folder, as this session sees it (its code's folder, for a code limited to one). */
  readonly store: FileStore;
  /** The secure channel (for the records of a transfer). */
  readonly channel: SecureChannel;
  /** Sends one control message (after the answers of earlier requests, see {@link defer}). */
  send(message: ServerMessage): Promise<void>;
  /**
   * Lets this request finish side by side with the next ones: `finish` starts at once (a commit
   * that flushes to disk, say) and sends the request's answer with the `send` it is given, which
   * waits until every earlier answer is out; so answers keep the order of the requests, while
   * the disk shares the flushes of several files. `finish` answers however it ends.
   */
  defer(finish: (send: (message: ServerMessage) => Promise<void>) => Promise<void>): Promise<void>;
  /**
   * Resolves once the bytes of `file` (all written) are durable: flushed together with the other
   * uploads this session finishes about now (see `CommitGroup`), so that a folder of small files
   * does not cost the disk one journal commit each.
   */
  flushed(file: PendingFile): Promise<void>;
  /** What this session may do: the server's mode and its code's rights both applied. */
  readonly rights: Rights;
  /** Prepended to the first component of every upload's name. */
  readonly uploadPrefix: string;
  /** Real paths of the uploads being received now, by any session. */
  readonly uploadsInProgress: UploadClaims;
  /** Whether the server is shutting down (read when a request ends). */
  readonly shuttingDown: boolean;
  /** The session's deadline. */
  readonly deadline: Deadline;
  /** Logs one line about this connection. */
  log(message: string): void;
  /** Closes this connection now, for `reason` (an upload of it taken over, say). */
  endSession(reason: string): void;
}

/** Answers one kind of request; throws to refuse it (see `replies.ts`). */
export type Handler<R extends Request = Request> = (
  request: R,
  context: RequestContext,
) => Promise<void>;
