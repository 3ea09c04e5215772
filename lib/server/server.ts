/**
 * The ferry server: {@link startServer}, the accept loop, shutdown, and
 * reading the served code file and code store again.
 *
 * Each accepted connection becomes a `Session` (session.ts), which runs the CPace handshake under
 * a deadline and then answers one request at a time through the handler table (handlers/). Paths
 * go through the store (confinement) and uploads through partial files (atomic, verified,
 * resumable). A misbehaving connection ends with a logged reason and never affects the others;
 * nothing a client sends can make the process throw.
 *
 * Permissions: `--allow-net=<host:port>`, `--allow-read=<folder>` and `--allow-write=<folder>`.
 *
 * @module
 */
import { writeAllSync } from "../_fs.ts";
import { CodeFileWatch } from "../code_file.ts";
import { CodeStoreWatch, lastUsePath } from "../code_store.ts";
import { DEFAULT_PORT, DEFAULT_UPLOAD_PREFIX } from "../protocol/constants.ts";
import { RefusalStatus } from "../protocol/handshake.ts";
import type { ServeMode } from "../protocol/messages.ts";
import { validateName } from "../protocol/remote_path.ts";
import { type Listen, type Listener, listenTcp } from "../net/socket.ts";
import { LocalStore } from "../store/local.ts";
import type { FileStore } from "../store/store.ts";
import { ServerCodes } from "./code_refresh.ts";
import type { ServerContext } from "./context.ts";
import { Admission } from "./admission.ts";
import {
  IdentifierThrottle,
  type IdentifierThrottleOptions,
  PenaltyBox,
  type PenaltyOptions,
} from "./penalty.ts";
import { describe } from "./replies.ts";
import { RepeatedLog, type RepeatedLogOptions } from "./repeated_log.ts";
import { Rights } from "./rights.ts";
import { Session } from "./session.ts";
import { UploadClaims } from "./upload_claims.ts";
import { unrefTimer } from "../_timers.ts";

/**
 * How a server is set up. `root` is required, and at least one code: `secret` or `codeFile` (the
 * default code), and/or `codeStore` (named codes).
 */
export interface ServerOptions {
  /** The folder to serve (on disk, through a `LocalStore`), unless `store` is given. */
  root: string;
  /** Serve this store instead of the folder `root` (a `MemoryStore` in tests, say). */
  store?: FileStore;
  /**
   * PAKE secret of the default code: the normalised connection code as bytes (see `codeSecret()`
   * in `code.ts`). Not with `codeFile`.
   */
  secret?: Uint8Array;
  /**
   * Serve the code in this file as the default code instead of a fixed `secret`. The file is read
   * again before every handshake and every {@link CODE_CHECK_INTERVAL_MS}: a new code (`ferry
   * code --force`) is required of new connections at once, and sessions opened with the old code
   * are closed.
   */
  codeFile?: string;
  /**
   * Serve the named codes of this code store too (see `code_store.ts`; `ferry serve` uses the one
   * beside its code file), each with its own rights, folder and expiry. It need not exist yet; it
   * is read again as the code file is, so codes added, revoked or expired take effect for new
   * connections at once, and the sessions of a code revoked or expired are closed. It is never
   * listed nor served, and neither is the file where the server notes when each code was last
   * used (`lastUsePath`, written at most every {@link LAST_USE_SAVE_INTERVAL_MS} and on
   * shutdown).
   */
  codeStore?: string;
  /** Note when each code was last used beside `codeStore` (default: true). */
  recordLastUse?: boolean;
  /** The clock that decides when codes expire, in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /** Address to listen on (default `0.0.0.0`). */
  hostname?: string;
  /** Port to listen on (default 7878; 0 picks a free one). */
  port?: number;
  /** Prepended to the first component of every upload's name (default `uploaded_`). */
  uploadPrefix?: string;
  /** What clients may do (default `read-write`). */
  mode?: ServeMode;
  /** Largest upload in bytes (default: no limit). */
  maxUpload?: number;
  /** Paths inside the folder that are never listed nor served (the code file). */
  exclude?: string[];
  /** Deadline for the handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /** An authenticated connection with no traffic this long is closed (default 5 min). */
  idleTimeoutMs?: number;
  /** Authenticated sessions served at once; more are refused as busy (default 64). */
  maxConnections?: number;
  /** Connections in their handshake at once, from all addresses (default 64; see admission.ts). */
  maxHandshakes?: number;
  /** Connections in their handshake at once from one address (default 16). */
  maxHandshakesPerAddress?: number;
  /**
   * An upload whose sender sent nothing for this long may be taken over by a new upload of the
   * same file, which resumes from it (default 15 s; see upload_claims.ts).
   */
  uploadTakeoverMs?: number;
  /** Tuning of the failed-handshake penalties per address. */
  penalty?: Partial<PenaltyOptions>;
  /** Tuning of the failed-handshake limit per code identifier, from all addresses. */
  identifierThrottle?: Partial<IdentifierThrottleOptions>;
  /** Receives one line per event; never given the code or key material. Default: stderr. */
  log?: (line: string) => void;
  /**
   * How events a stranger can repeat (connections, refusals, failed handshakes) are limited in
   * the log: per address and kind, `perWindow` lines per `windowMs`, then one line with the count.
   */
  repeatedLog?: Partial<RepeatedLogOptions>;
  /**
   * Opens the listener connections come from (default {@link listenTcp}), given `hostname` and
   * `port`: a relay or a test can hand the server sockets from elsewhere.
   */
  listen?: Listen;
}

/**
 * How often a server with a code file or a code store reads them again (besides before every
 * handshake) and closes the sessions of codes replaced, revoked or expired.
 */
export const CODE_CHECK_INTERVAL_MS = 1000;

export { LAST_USE_SAVE_INTERVAL_MS } from "./code_refresh.ts";

/** A running server. Start one with {@link startServer}. */
export class FerryServer {
  /** The address actually bound (useful with port 0). */
  readonly hostname: string;
  /** The port actually bound. */
  readonly port: number;
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  #listener: Listener;
  #context: ServerContext;
  #sessions = new Set<Session>();
  #codeTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(listener: Listener, context: ServerContext) {
    this.#listener = listener;
    this.hostname = listener.addr.hostname;
    this.port = listener.addr.port;
    this.#context = context;
    if (context.codes.watched) {
      this.#codeTimer = setInterval(() => void this.#checkCodes(), CODE_CHECK_INTERVAL_MS);
      unrefTimer(this.#codeTimer);
    }
    this.finished = this.#acceptLoop().finally(async () => {
      clearInterval(this.#codeTimer);
      context.repeatedLog.close();
      await context.codes.saveLastUse(true);
    });
  }

  /**
   * Starts serving `options.root` (what {@link startServer} does). Resolves once the port is
   * bound. Permissions: net (host:port), read and write (the folder).
   */
  static async start(options: ServerOptions): Promise<FerryServer> {
    const uploadPrefix = options.uploadPrefix ?? DEFAULT_UPLOAD_PREFIX;
    if (uploadPrefix !== "") validateName(uploadPrefix);
    if (options.secret !== undefined && options.codeFile !== undefined) {
      throw new TypeError("Cannot start a server: give one of secret and codeFile, not both");
    }
    if (
      options.secret === undefined && options.codeFile === undefined &&
      options.codeStore === undefined
    ) {
      throw new TypeError("Cannot start a server: give a secret, a codeFile or a codeStore");
    }
    const log = options.log ?? logToStderr;
    const lastUse = options.codeStore === undefined ? undefined : lastUsePath(options.codeStore);
    const codes = await ServerCodes.open({
      fallback: options.codeFile === undefined
        ? options.secret
        : await CodeFileWatch.open(options.codeFile),
      store: options.codeStore === undefined ? undefined : new CodeStoreWatch(options.codeStore),
      lastUseFile: options.recordLastUse === false ? undefined : lastUse,
      now: options.now,
      log,
    });
    const codeFiles = [options.codeFile, options.codeStore, lastUse].filter((path) =>
      path !== undefined
    );
    const store = options.store ?? await LocalStore.open(options.root, {
      exclude: [...(options.exclude ?? []), ...codeFiles],
    });
    const listen = options.listen ?? listenTcp;
    const listener = await listen(options.hostname ?? "0.0.0.0", options.port ?? DEFAULT_PORT);
    return new FerryServer(listener, {
      store,
      codes,
      uploadPrefix,
      rights: new Rights(options.mode ?? "read-write", options.maxUpload),
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 5 * 60_000,
      admission: new Admission(definedOnly({
        maxSessions: options.maxConnections,
        maxHandshakes: options.maxHandshakes,
        maxHandshakesPerAddress: options.maxHandshakesPerAddress,
      })),
      penalties: new PenaltyBox(options.penalty),
      identifiers: new IdentifierThrottle(options.identifierThrottle),
      uploadsInProgress: new UploadClaims(options.uploadTakeoverMs),
      shuttingDown: false,
      log,
      repeatedLog: new RepeatedLog(log, options.repeatedLog),
    });
  }

  /**
   * Reads the code file and the store again; closes the sessions whose code was replaced,
   * revoked, changed or has expired; writes down when codes were last used (now and then). A
   * file that cannot be read keeps its codes in force, logged once per problem.
   */
  async #checkCodes(): Promise<void> {
    const codes = this.#context.codes;
    await codes.refresh();
    for (const session of this.#sessions) {
      const code = session.code;
      const end = code === undefined ? undefined : codes.endOf(code);
      if (end !== undefined) session.abort(end);
    }
    await codes.saveLastUse();
  }

  /**
   * The public identifiers of the codes that work now (`0000` for a default code of 16 symbols),
   * as the server last read its code file and store (before every handshake, and every second).
   * What `ferry serve` announces on the LAN and registers at a relay; never a secret.
   */
  get identifiers(): string[] {
    return this.#context.codes.identifiers;
  }

  /** Connections being served now. */
  get connections(): number {
    return this.#sessions.size;
  }

  /**
   * Stops accepting, closes idle connections, lets transfers in progress finish for up to
   * `graceMs`, then closes what is left (removing its temporary files) and resolves.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    if (!this.#context.shuttingDown) {
      this.#context.shuttingDown = true;
      try {
        this.#listener.close();
      } catch {
        // already closed
      }
      for (const session of this.#sessions) session.stopWhenIdle();
      const deadline = setTimeout(() => {
        for (const session of this.#sessions) session.abort("shutdown grace period over");
      }, graceMs);
      try {
        await this.finished;
      } finally {
        clearTimeout(deadline);
      }
    }
    await this.finished;
  }

  async #acceptLoop(): Promise<void> {
    const context = this.#context;
    while (true) {
      let accepted;
      try {
        accepted = await this.#listener.accept();
      } catch (error) {
        if (context.shuttingDown || error instanceof Deno.errors.BadResource) break;
        context.log(`accept failed: ${describe(error)}`);
        continue;
      }
      const session = new Session(accepted.socket, accepted.peer, context);
      if (context.shuttingDown) {
        void session.refuse(RefusalStatus.shuttingDown, "server is shutting down");
        continue;
      }
      this.#sessions.add(session);
      void session.run().finally(() => this.#sessions.delete(session));
    }
    await Promise.allSettled([...this.#sessions].map((session) => session.finished));
  }
}

/**
 * Starts serving `options.root`. Resolves once the port is bound.
 * Permissions: net (host:port), read and write (the folder).
 */
export function startServer(options: ServerOptions): Promise<FerryServer> {
  return FerryServer.start(options);
}

/** `options` without its undefined fields, so that defaults apply to them. */
function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

const encoder = new TextEncoder();

/**
 * Writes one log line to standard error (directly: a folder of small files logs a line each). A
 * line that cannot be written (the reader went away) is dropped: serving goes on.
 */
function logToStderr(line: string): void {
  try {
    writeAllSync(Deno.stderr, encoder.encode(`${line}\n`));
  } catch {
    // nowhere to log to
  }
}
