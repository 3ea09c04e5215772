/**
 * The ferry server: {@link startServer}, the accept loop, shutdown, and
 * reading a served code file again.
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
import { DEFAULT_PORT, DEFAULT_UPLOAD_PREFIX } from "../protocol/constants.ts";
import { RefusalStatus } from "../protocol/handshake.ts";
import type { ServeMode } from "../protocol/messages.ts";
import { validateName } from "../protocol/remote_path.ts";
import { type Listen, type Listener, listenTcp } from "../net/socket.ts";
import { LocalStore } from "../store/local.ts";
import type { FileStore } from "../store/store.ts";
import { refreshCode } from "./code_refresh.ts";
import type { ServerContext } from "./context.ts";
import { Admission } from "./admission.ts";
import { PenaltyBox, type PenaltyOptions } from "./penalty.ts";
import { describe } from "./replies.ts";
import { RepeatedLog, type RepeatedLogOptions } from "./repeated_log.ts";
import { Rights } from "./rights.ts";
import { Session } from "./session.ts";
import { UploadClaims } from "./upload_claims.ts";

/** How a server is set up. `root` and one of `secret` and `codeFile` are required. */
export interface ServerOptions {
  /** The folder to serve (on disk, through a `LocalStore`), unless `store` is given. */
  root: string;
  /** Serve this store instead of the folder `root` (a `MemoryStore` in tests, say). */
  store?: FileStore;
  /**
   * PAKE secret: the normalised connection code as bytes (see `codeSecret()` in `code.ts`).
   * Give this or `codeFile`.
   */
  secret?: Uint8Array;
  /**
   * Serve the code in this file instead of a fixed `secret`. The file is read again before every
   * handshake and every {@link CODE_CHECK_INTERVAL_MS}: a new code (`ferry code --force`) is
   * required of new connections at once, and sessions opened with the old code are closed.
   */
  codeFile?: string;
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
  /** Tuning of the failed-handshake penalties. */
  penalty?: Partial<PenaltyOptions>;
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

/** How often a server with a code file reads it again, besides before every handshake. */
export const CODE_CHECK_INTERVAL_MS = 1000;

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
    if (context.code instanceof CodeFileWatch) {
      this.#codeTimer = setInterval(() => void this.#checkCode(), CODE_CHECK_INTERVAL_MS);
      Deno.unrefTimer(Number(this.#codeTimer));
    }
    this.finished = this.#acceptLoop().finally(() => {
      clearInterval(this.#codeTimer);
      context.repeatedLog.close();
    });
  }

  /**
   * Starts serving `options.root` (what {@link startServer} does). Resolves once the port is
   * bound. Permissions: net (host:port), read and write (the folder).
   */
  static async start(options: ServerOptions): Promise<FerryServer> {
    const uploadPrefix = options.uploadPrefix ?? DEFAULT_UPLOAD_PREFIX;
    if (uploadPrefix !== "") validateName(uploadPrefix);
    if ((options.secret === undefined) === (options.codeFile === undefined)) {
      throw new TypeError("Cannot start a server: give exactly one of secret and codeFile");
    }
    const code = options.codeFile === undefined
      ? options.secret!
      : await CodeFileWatch.open(options.codeFile);
    const store = options.store ?? await LocalStore.open(options.root, {
      exclude: [...(options.exclude ?? []), ...(options.codeFile ? [options.codeFile] : [])],
    });
    const log = options.log ?? logToStderr;
    const listen = options.listen ?? listenTcp;
    const listener = await listen(options.hostname ?? "0.0.0.0", options.port ?? DEFAULT_PORT);
    return new FerryServer(listener, {
      store,
      code,
      codeProblem: undefined,
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
      uploadsInProgress: new UploadClaims(options.uploadTakeoverMs),
      shuttingDown: false,
      log,
      repeatedLog: new RepeatedLog(log, options.repeatedLog),
    });
  }

  /**
   * Reads the code file again; when it holds a new code, closes the sessions that authenticated
   * with the old one. A file that cannot be read keeps the code in force, logged once per problem.
   */
  async #checkCode(): Promise<void> {
    const watch = this.#context.code;
    if (!(watch instanceof CodeFileWatch)) return;
    const secret = await refreshCode(watch, this.#context);
    for (const session of this.#sessions) {
      if (session.authenticatedWithOtherThan(secret)) {
        session.abort("the connection code was replaced");
      }
    }
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
