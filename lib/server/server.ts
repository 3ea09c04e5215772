/**
 * The ferry server: accept loop, per-connection limits and deadlines, request dispatch.
 *
 * Every connection runs the CPace handshake under a deadline, then answers one request at a time.
 * Paths go through {@link Store} (confinement) and uploads through {@link PartialFile} (atomic,
 * verified, resumable). A misbehaving connection ends with a logged reason and never affects the
 * others; nothing a client sends can make the process throw.
 *
 * Permissions: `--allow-net=<host:port>`, `--allow-read=<folder>` and `--allow-write=<folder>`.
 *
 * @module
 */
import { join } from "node:path";
import { timingSafeEqual } from "node:crypto";
import { lstatOrNull } from "../_fs.ts";
import { CodeFileWatch } from "../code.ts";
import type { Hash } from "node:crypto";
import {
  AuthenticationError,
  ConnectionError,
  ExistsError,
  FerryError,
  PathError,
  ProtocolError,
} from "../errors.ts";
import { type CommitOptions, PartialFile } from "../store/partial_file.ts";
import { hashAllowanceMs, hashFilePrefix, newSha256, peekHex } from "../transfer/hashing.ts";
import { PenaltyBox, type PenaltyOptions } from "./penalty.ts";
import { readAhead, WriteBehind } from "../transfer/streaming.ts";
import { Watchdog } from "../net/watchdog.ts";
import { releaseBuffer } from "../_memory.ts";
import { DEFAULT_PORT, DEFAULT_UPLOAD_PREFIX } from "../protocol/constants.ts";
import { MAX_RECORD_PLAINTEXT, RecordType } from "../protocol/framing.ts";
import {
  RefusalStatus,
  type SecureChannel,
  sendRefusal,
  serverHandshake,
} from "../protocol/handshake.ts";
import {
  type ClientMessage,
  decodeClientMessage,
  encodeMessage,
  type ErrorReply,
  type GetRequest,
  type ListEntry,
  type ListRequest,
  type MkdirRequest,
  type PutRequest,
  type ServeMode,
  type ServerMessage,
} from "../protocol/messages.ts";
import { ListingWriter } from "../protocol/listing.ts";
import { toWireErrorCode, type WireErrorCode } from "../protocol/wire_errors.ts";
import {
  joinRemotePath,
  parseRemotePath,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";
import { type EntryInfo, Store } from "../store/local.ts";
import { VERSION } from "../version.ts";

/** How a server is set up. Only `root` and `code` are required. */
export interface ServerOptions {
  /** The folder to serve. */
  root: string;
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
  /** Connections served at once; more are refused with a reason (default 64). */
  maxConnections?: number;
  /** Tuning of the failed-handshake penalties. */
  penalty?: Partial<PenaltyOptions>;
  /** Receives one line per event; never given the code or key material. Default: stderr. */
  log?: (line: string) => void;
}

/** How often a server with a code file reads it again, besides before every handshake. */
export const CODE_CHECK_INTERVAL_MS = 1000;

/** A running server. */
export class FerryServer {
  /** The address actually bound (useful with port 0). */
  readonly hostname: string;
  /** The port actually bound. */
  readonly port: number;
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  #listener: Deno.Listener;
  #context: ServerContext;
  #sessions = new Set<Session>();
  #stopping = false;
  #codeTimer: ReturnType<typeof setInterval> | undefined;

  /** @internal Use {@link startServer}. */
  constructor(listener: Deno.Listener, context: ServerContext) {
    this.#listener = listener;
    const address = listener.addr as Deno.NetAddr;
    this.hostname = address.hostname;
    this.port = address.port;
    this.#context = context;
    if (context.code instanceof CodeFileWatch) {
      this.#codeTimer = setInterval(() => void this.#checkCode(), CODE_CHECK_INTERVAL_MS);
      Deno.unrefTimer(Number(this.#codeTimer));
    }
    this.finished = this.#acceptLoop(context).finally(() => clearInterval(this.#codeTimer));
  }

  /**
   * Reads the code file again; when it holds a new code, closes the sessions that authenticated
   * with the old one. A file that cannot be read keeps the code in force, logged once per problem.
   */
  async #checkCode(): Promise<void> {
    const watch = this.#context.code;
    if (!(watch instanceof CodeFileWatch)) return;
    await refreshCode(watch, this.#context);
    const secret = watch.secret;
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
    if (!this.#stopping) {
      this.#stopping = true;
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

  async #acceptLoop(context: ServerContext): Promise<void> {
    const running: Promise<void>[] = [];
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept() as Deno.TcpConn;
      } catch (error) {
        if (this.#stopping || error instanceof Deno.errors.BadResource) break;
        context.log(`accept failed: ${describe(error)}`);
        continue;
      }
      const session = new Session(conn, context);
      if (this.#stopping) {
        void session.refuse(RefusalStatus.shuttingDown, "server is shutting down");
        continue;
      }
      if (this.#sessions.size >= context.maxConnections) {
        void session.refuse(RefusalStatus.busy, "too many connections, try again later");
        continue;
      }
      this.#sessions.add(session);
      const done = session.run().finally(() => this.#sessions.delete(session));
      running.push(done);
      if (running.length > 1024) running.splice(0, running.length - 1024);
    }
    await Promise.allSettled([...this.#sessions].map((session) => session.finished));
  }
}

interface ServerContext {
  store: Store;
  /** A fixed secret, or the code file that is read again (see {@link ServerOptions.codeFile}). */
  code: Uint8Array | CodeFileWatch;
  /** The last problem reading the code file, logged once. */
  codeProblem: string | undefined;
  uploadPrefix: string;
  mode: ServeMode;
  maxUpload: number | undefined;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  penalties: PenaltyBox;
  uploadsInProgress: Set<string>;
  log: (line: string) => void;
}

/**
 * Starts serving `options.root`. Resolves once the port is bound.
 * Permissions: net (host:port), read and write (the folder).
 */
export async function startServer(options: ServerOptions): Promise<FerryServer> {
  const uploadPrefix = options.uploadPrefix ?? DEFAULT_UPLOAD_PREFIX;
  if (uploadPrefix !== "") validateName(uploadPrefix);
  if ((options.secret === undefined) === (options.codeFile === undefined)) {
    throw new TypeError("Cannot start a server: give exactly one of secret and codeFile");
  }
  const code = options.codeFile === undefined
    ? options.secret!
    : await CodeFileWatch.open(options.codeFile);
  const store = await Store.open(options.root, {
    exclude: [...(options.exclude ?? []), ...(options.codeFile ? [options.codeFile] : [])],
  });
  const log = options.log ?? ((line: string) => console.error(line));
  const listener = Deno.listen({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? DEFAULT_PORT,
    transport: "tcp",
  });
  return new FerryServer(listener, {
    store,
    code,
    codeProblem: undefined,
    uploadPrefix,
    mode: options.mode ?? "read-write",
    maxUpload: options.maxUpload,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 5 * 60_000,
    maxConnections: options.maxConnections ?? 64,
    penalties: new PenaltyBox(options.penalty),
    uploadsInProgress: new Set(),
    log,
  });
}

/**
 * Reads the code file behind `context` again, logging a new code and (once each) a problem
 * reading it; returns the secret now in force.
 */
async function refreshCode(watch: CodeFileWatch, context: ServerContext): Promise<Uint8Array> {
  const { changed, problem } = await watch.refresh();
  if (changed) {
    context.log(`${new Date().toISOString()} connection code replaced: the old code is refused`);
  }
  if (problem !== context.codeProblem) {
    context.codeProblem = problem;
    if (problem !== undefined) {
      context.log(`${new Date().toISOString()} ${problem}; the code in force is kept`);
    }
  }
  return watch.secret;
}

function describe(error: unknown): string {
  if (error instanceof FerryError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n", 1)[0]}`;
  return String(error);
}

/** An error that is reported to the client and ends only the current request. */
class RequestError extends FerryError {
  override readonly code: WireErrorCode;
  constructor(code: WireErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function replyFor(error: unknown): ErrorReply {
  if (error instanceof FerryError) {
    return { t: "error", code: toWireErrorCode(error.code), message: error.message };
  }
  if (error instanceof Deno.errors.NotFound) {
    return { t: "error", code: "not-found", message: "Not found" };
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return { t: "error", code: "permission", message: "The server has no permission for that" };
  }
  const errno = (error as { code?: unknown } | null)?.code;
  if (errno === "ENOSPC" || errno === "EDQUOT") {
    return {
      t: "error",
      code: "disk-full",
      message: "The server's disk is full (or its quota is used up): nothing was kept",
    };
  }
  const name = error instanceof Error ? error.name : "Error";
  return { t: "error", code: "io", message: `The server could not complete the request (${name})` };
}

/** One client connection. */
class Session {
  readonly finished: Promise<void>;
  #conn: Deno.TcpConn;
  #context: ServerContext;
  #peer: string;
  #address: string;
  #watchdog = new Watchdog((reason) => {
    this.#timeoutReason = reason;
    this.#close();
  });
  #timeoutReason = "";
  #busy = false;
  #stopRequested = false;
  #closed = false;
  #resolveFinished!: () => void;
  #partials = new Set<PartialFile>();
  /** The secret this session authenticated with, once it has. */
  #secret: Uint8Array | undefined;

  constructor(conn: Deno.TcpConn, context: ServerContext) {
    this.#conn = conn;
    this.#context = context;
    const remote = conn.remoteAddr as Deno.NetAddr;
    this.#address = remote.hostname;
    this.#peer = `${remote.hostname}:${remote.port}`;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
  }

  #log(message: string): void {
    this.#context.log(`${new Date().toISOString()} ${this.#peer} ${message}`);
  }

  async refuse(status: typeof RefusalStatus[keyof typeof RefusalStatus], reason: string) {
    this.#log(`refused: ${reason}`);
    this.#arm(1000, "refusal not read");
    try {
      await sendRefusal(this.#conn, status, reason);
    } catch {
      // the client left already
    }
    this.#close();
    this.#resolveFinished();
  }

  /** Closes the connection at once if it is waiting for a request, else after the transfer. */
  stopWhenIdle(): void {
    this.#stopRequested = true;
    if (!this.#busy) this.abort("server shutting down");
  }

  /** Whether this session authenticated with a code other than the one whose secret is given. */
  authenticatedWithOtherThan(secret: Uint8Array): boolean {
    const own = this.#secret;
    if (own === undefined) return false;
    return own.length !== secret.length || !timingSafeEqual(own, secret);
  }

  /** Closes the connection now. */
  abort(reason: string): void {
    if (this.#closed) return;
    this.#timeoutReason = reason;
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchdog.disarm();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  /** (Re)starts the deadline: the connection is closed unless {@link #arm} is called again in time. */
  #arm(ms: number, reason: string): void {
    this.#watchdog.arm(ms, reason);
  }

  async run(): Promise<void> {
    try {
      const wait = this.#context.penalties.admit(this.#address);
      if (wait > 0) {
        await this.refuse(
          RefusalStatus.slowDown,
          `too many failed attempts from your address, wait ${Math.ceil(wait / 1000)} s`,
        );
        return;
      }
      this.#log("connected");
      let channel: SecureChannel;
      this.#arm(this.#context.handshakeTimeoutMs, "handshake deadline passed");
      try {
        this.#conn.setNoDelay(true);
        const code = this.#context.code;
        const secret = code instanceof CodeFileWatch
          ? await refreshCode(code, this.#context)
          : code;
        channel = await serverHandshake(this.#conn, secret);
        this.#secret = secret;
      } catch (error) {
        this.#context.penalties.fail(this.#address);
        const reason = this.#timeoutReason || describe(error);
        this.#log(
          error instanceof AuthenticationError
            ? "authentication failed: wrong code"
            : `handshake failed: ${reason}`,
        );
        return;
      }
      this.#context.penalties.succeed(this.#address);
      this.#log("authenticated");
      await this.#serve(channel);
    } catch (error) {
      this.#log(`closed: ${this.#timeoutReason || describe(error)}`);
    } finally {
      for (const partial of this.#partials) {
        if (this.#stopRequested) await partial.discard().catch(() => {});
        else partial.close();
      }
      this.#close();
      this.#resolveFinished();
    }
  }

  async #serve(channel: SecureChannel): Promise<void> {
    const { reader, writer } = channel;
    const send = (message: ServerMessage) =>
      writer.send(RecordType.control, encodeMessage(message));
    await send({
      t: "welcome",
      server: `ferry/${VERSION}`,
      mode: this.#context.mode,
      maxUpload: this.#context.maxUpload ?? -1,
    });
    while (true) {
      if (this.#stopRequested) {
        await writer.end().catch(() => {});
        this.#log("closed: server shutting down");
        return;
      }
      this.#busy = false;
      this.#arm(this.#context.idleTimeoutMs, "idle deadline passed");
      const record = await reader.next();
      this.#busy = true;
      if (record.type === RecordType.end) {
        await writer.end().catch(() => {});
        this.#log("closed by client");
        return;
      }
      if (record.type !== RecordType.control) {
        throw new ProtocolError("Data record outside an upload");
      }
      const request = decodeClientMessage(record.payload);
      try {
        await this.#dispatch(request, channel, send);
      } catch (error) {
        if (error instanceof ConnectionError || error instanceof ProtocolError) throw error;
        this.#log(`${request.t} refused: ${describe(error)}`);
        await send(replyFor(error));
      }
    }
  }

  #dispatch(
    request: ClientMessage,
    channel: SecureChannel,
    send: (message: ServerMessage) => Promise<void>,
  ): Promise<void> {
    switch (request.t) {
      case "list":
        return this.#list(request, send);
      case "get":
        return this.#get(request, channel, send);
      case "put":
        return this.#put(request, channel, send);
      case "mkdir":
        return this.#mkdir(request, send);
      default:
        throw new ProtocolError(`Message "${request.t}" outside its place in the conversation`);
    }
  }

  #requireReading(): void {
    if (this.#context.mode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "The server is in upload-only mode (a drop box): listing and downloading are refused",
      );
    }
  }

  #requireWriting(): void {
    if (this.#context.mode === "read-only") {
      throw new RequestError("read-only", "The server is in read-only mode: uploads are refused");
    }
  }

  async #list(request: ListRequest, send: (message: ServerMessage) => Promise<void>) {
    this.#requireReading();
    const store = this.#context.store;
    const listing = new ListingWriter(send);
    const add = (entry: ListEntry) => listing.add(entry);
    const toEntry = (info: EntryInfo, name: string): ListEntry => ({
      name,
      type: info.type,
      size: info.type === "file" ? info.size : 0,
      mtime: Math.max(0, Math.round(info.mtime)),
      mode: info.mode & 0o777,
    });
    if (request.recursive) {
      const { info } = await store.resolve(request.path);
      if (info.type !== "dir") {
        await add(toEntry(info, ""));
      } else {
        for await (const entry of store.walk(request.path)) await add(toEntry(entry, entry.path));
      }
    } else {
      for await (const entry of store.entries(request.path)) await add(toEntry(entry, entry.name));
    }
    await listing.end();
    this.#log(`list ${sanitizeForDisplay(request.path) || "."}`);
  }

  async #get(
    request: GetRequest,
    { writer }: SecureChannel,
    send: (message: ServerMessage) => Promise<void>,
  ) {
    this.#requireReading();
    const { info } = await this.#context.store.resolve(request.path);
    if (info.type === "dir") {
      throw new RequestError("is-dir", `${sanitizeForDisplay(request.path)} is a folder`);
    }
    const { file } = await this.#context.store.openRead(request.path);
    try {
      const size = info.size;
      let offset = 0;
      let hash: Hash = newSha256();
      if (request.offset > 0 && request.offset <= size && request.prefixSha256 !== "") {
        this.#watchdog.pause(); // hashing is this side's own work, not a stalled client
        const prefix = await hashFilePrefix(file, request.offset);
        this.#arm(this.#context.idleTimeoutMs, "transfer stalled");
        if (peekHex(prefix) === request.prefixSha256) {
          offset = request.offset;
          hash = prefix;
        }
      }
      await file.seek(offset, Deno.SeekMode.Start);
      await send({
        t: "file",
        size,
        mtime: Math.max(0, Math.round(info.mtime)),
        mode: info.mode & 0o777,
        offset,
      });
      let position = offset;
      for await (const block of readAhead(file, size - offset)) {
        for (let start = 0; start < block.length; start += MAX_RECORD_PLAINTEXT) {
          const chunk = block.subarray(start, Math.min(block.length, start + MAX_RECORD_PLAINTEXT));
          hash.update(chunk);
          await writer.write(RecordType.data, chunk);
        }
        position += block.length;
        this.#arm(this.#context.idleTimeoutMs, "transfer stalled");
      }
      if (position < size) {
        throw new RequestError("changed", "The file shrank while it was being sent");
      }
      const sha256 = hash.digest("hex");
      await send({ t: "file-end", sha256 });
      this.#log(
        `get ${sanitizeForDisplay(request.path)}: ${size - offset} bytes sent` +
          (offset ? ` (resumed at ${offset})` : ""),
      );
    } finally {
      file.close();
    }
  }

  /** Resolves an upload's folder and final name: `<dir>/<prefix><first>/.../<last>`. */
  async #uploadTarget(dir: string, name: string, create: boolean) {
    const store = this.#context.store;
    await store.resolveDir(dir);
    const components = parseRemotePath(name);
    if (components.length === 0) throw new PathError("Refused upload: the name is empty");
    components[0] = this.#context.uploadPrefix + components[0];
    validateName(components[0]!);
    const finalName = components.pop()!;
    const folder = joinRemotePath([...parseRemotePath(dir), ...components]);
    const realDir = await store.resolveDir(folder, { create });
    const relative = joinRemotePath([...parseRemotePath(dir), ...components, finalName]);
    store.assertWritable(join(realDir, finalName), relative);
    return { realDir, finalName, relative };
  }

  async #mkdir(request: MkdirRequest, send: (message: ServerMessage) => Promise<void>) {
    this.#requireWriting();
    const { realDir, finalName, relative } = await this.#uploadTarget(
      request.dir,
      request.name,
      true,
    );
    const path = join(realDir, finalName);
    try {
      await Deno.mkdir(path, { mode: (request.mode & 0o777) | 0o700 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const info = await Deno.lstat(path);
    if (!info.isDirectory) {
      throw new RequestError(
        "exists",
        `${sanitizeForDisplay(relative)} exists and is not a folder`,
      );
    }
    await this.#context.store.resolveDir(relative);
    await send({ t: "mkdir-done", name: relative });
    this.#log(`mkdir ${sanitizeForDisplay(relative)}`);
  }

  /**
   * A re-run after a cut: the target already holds exactly the bytes the client is about to send
   * (`ifIdentical`, same size and SHA-256), so the upload is answered as done with nothing moved.
   * Never on a drop box, where it would let an uploader test guesses about others' files.
   */
  async #alreadyThere(
    request: PutRequest,
    targetPath: string,
    relative: string,
    send: (message: ServerMessage) => Promise<void>,
  ): Promise<boolean> {
    if (request.force || !request.ifIdentical || this.#context.mode === "upload-only") return false;
    const existing = await lstatOrNull(targetPath);
    if (!existing?.isFile || existing.size !== request.size) return false;
    using file = await Deno.open(targetPath, { read: true });
    const opened = await file.stat();
    if (opened.ino !== existing.ino || opened.dev !== existing.dev) return false;
    this.#watchdog.pause(); // hashing is this side's own work, not a stalled client
    const sha256 = peekHex(await hashFilePrefix(file, request.size));
    this.#arm(this.#context.idleTimeoutMs, "transfer stalled");
    if (sha256 !== request.ifIdentical) return false;
    await send({ t: "put-done", name: relative, size: request.size, sha256, skipped: true });
    this.#log(`put ${sanitizeForDisplay(relative)}: already complete, nothing moved`);
    return true;
  }

  async #put(
    request: PutRequest,
    { reader }: SecureChannel,
    send: (message: ServerMessage) => Promise<void>,
  ) {
    this.#requireWriting();
    if (request.force && this.#context.mode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "The server is a drop box (upload-only): uploads cannot replace existing files",
      );
    }
    const maxUpload = this.#context.maxUpload;
    if (maxUpload !== undefined && request.size > maxUpload) {
      throw new RequestError(
        "too-large",
        `Upload of ${request.size} bytes refused: the server accepts at most ${maxUpload} bytes`,
      );
    }
    const { realDir, finalName, relative } = await this.#uploadTarget(
      request.dir,
      request.name,
      true,
    );
    const targetPath = join(realDir, finalName);
    if (await this.#alreadyThere(request, targetPath, relative, send)) return;
    await checkTarget(targetPath, relative, request.force);
    const uploads = this.#context.uploadsInProgress;
    if (uploads.has(targetPath)) {
      throw new RequestError(
        "busy",
        `${sanitizeForDisplay(relative)} is being uploaded by another client`,
      );
    }
    uploads.add(targetPath);
    let partial: PartialFile | undefined;
    let sink: WriteBehind | undefined;
    let committed = false;
    try {
      partial = await PartialFile.open(realDir, finalName);
      this.#partials.add(partial);
      let offer = 0;
      let prefixSha256 = "";
      let prefixHash: Hash | undefined;
      if (partial.size > 0 && partial.size <= request.size) {
        this.#watchdog.pause(); // hashing is this side's own work, not a stalled client
        prefixHash = await partial.hashPrefix(partial.size);
        offer = partial.size;
        prefixSha256 = peekHex(prefixHash);
      }
      await send({ t: "put-ready", offset: offer, prefixSha256 });
      // The client hashes as many bytes of its file before it answers.
      this.#arm(this.#context.idleTimeoutMs + hashAllowanceMs(offer), "transfer stalled");
      const start = await reader.next();
      if (start.type !== RecordType.control) throw new ProtocolError("Expected put-start");
      const message = decodeClientMessage(start.payload);
      if (message.t !== "put-start" || (message.offset !== 0 && message.offset !== offer)) {
        throw new ProtocolError("Expected put-start at 0 or at the offered offset");
      }
      const offset = message.offset;
      const hash = offset > 0 && prefixHash ? prefixHash : newSha256();
      await partial.truncate(offset);
      let received = offset;
      // Each opened record is written, then its memory handed back at once.
      sink = new WriteBehind((chunk) => partial!.write(chunk).then(() => releaseBuffer(chunk)));
      const failWrite = async (error: unknown): Promise<never> => {
        await partial!.discard();
        this.#log(`put ${sanitizeForDisplay(relative)} failed: ${describe(error)}`);
        // Tell the client at once and end the connection: it may still be sending.
        await send(replyFor(error)).catch(() => {});
        throw new ConnectionError("Upload aborted after a write error");
      };
      while (true) {
        const record = await reader.next();
        this.#arm(this.#context.idleTimeoutMs, "transfer stalled");
        if (record.type === RecordType.data) {
          received += record.payload.length;
          if (received > request.size) {
            throw new ProtocolError("Upload sent more bytes than it announced");
          }
          hash.update(record.payload);
          await sink.push(record.payload).catch(failWrite);
          continue;
        }
        if (record.type !== RecordType.control) throw new ProtocolError("Upload ended early");
        const end = decodeClientMessage(record.payload);
        if (end.t !== "put-end") throw new ProtocolError("Expected put-end");
        if (received !== request.size) {
          throw new ProtocolError(`Upload sent ${received} of ${request.size} bytes`);
        }
        await sink.drain().catch(failWrite);
        const sha256 = hash.digest("hex");
        if (sha256 !== end.sha256) {
          await partial.discard();
          throw new RequestError(
            "integrity",
            "Upload does not match its SHA-256: nothing was kept",
          );
        }
        const commit: CommitOptions = {
          force: request.force,
          mode: request.mode,
          mtime: request.mtime,
        };
        try {
          await partial.commit(commit);
        } catch (error) {
          // A file that took the name meanwhile: the verified upload is kept, so a `--force`
          // re-run moves no byte again. Replies name the target relative to the served folder.
          if (error instanceof ExistsError) {
            throw new RequestError(
              "exists",
              `${
                sanitizeForDisplay(relative)
              } already exists on the server: use --force to replace it`,
            );
          }
          await partial.discard();
          if (error instanceof PathError) {
            throw new RequestError(
              "exists",
              `${sanitizeForDisplay(relative)} exists and is a folder`,
            );
          }
          throw error;
        }
        committed = true;
        await send({ t: "put-done", name: relative, size: request.size, sha256 });
        this.#log(
          `put ${sanitizeForDisplay(relative)}: ${request.size - offset} bytes received` +
            (offset ? ` (resumed at ${offset})` : ""),
        );
        return;
      }
    } finally {
      // Bytes received before a cut are kept, and none lands after the target is released.
      await sink?.drain().catch(() => {});
      if (partial) {
        this.#partials.delete(partial);
        // Kept for a resume, except on shutdown (no temporary file may stay behind) or when it
        // holds no byte to resume from.
        if (!committed && (this.#stopRequested || partial.size === 0)) {
          await partial.discard().catch(() => {});
        } else if (!committed) partial.close();
      }
      // Released only now: the next upload of this name must not meet a file being removed.
      uploads.delete(targetPath);
    }
  }
}

async function checkTarget(path: string, relative: string, force: boolean): Promise<void> {
  const info = await lstatOrNull(path);
  if (info === null) return;
  if (info.isDirectory) {
    throw new RequestError("exists", `${sanitizeForDisplay(relative)} exists and is a folder`);
  }
  if (info.isSymlink) {
    throw new RequestError(
      "exists",
      `${
        sanitizeForDisplay(relative)
      } is a symbolic link on the server: uploads never replace links`,
    );
  }
  if (!force) {
    throw new RequestError(
      "exists",
      `${sanitizeForDisplay(relative)} already exists on the server: use --force to replace it`,
    );
  }
}
