/**
 * The ferry client: one authenticated session with a server, and the per-file operations on it.
 *
 * {@link FerryClient.connect} opens the TCP connection and runs the handshake; then
 * {@link FerryClient.list}, {@link FerryClient.download}, {@link FerryClient.upload} and
 * {@link FerryClient.mkdir} run one request at a time. The client trusts the server no more than
 * the server trusts it: every name it receives is validated before it touches the disk, every
 * message is checked, and every file is verified against its SHA-256 before it takes its name.
 *
 * Permissions: `--allow-net=<host:port>`; reading (uploads) or writing (downloads) the local paths.
 *
 * @module
 */
import { join } from "node:path";
import type { Hash } from "node:crypto";
import {
  ConnectionError,
  ExistsError,
  IntegrityError,
  ProtocolError,
  RemoteError,
} from "../errors.ts";
import { lstatOrNull } from "../_fs.ts";
import { PartialFile } from "../store/partial_file.ts";
import { hashAllowanceMs, hashFilePrefix, newSha256, peekHex } from "../transfer/hashing.ts";
import { MAX_RECORD_PLAINTEXT, type ReceivedRecord, RecordType } from "../protocol/framing.ts";
import { clientHandshake, type SecureChannel } from "../protocol/handshake.ts";
import {
  type ClientMessage,
  decodeServerMessage,
  encodeMessage,
  type FileStart,
  type ListEntry,
  type PutDone,
  type PutReady,
  type ServerMessage,
  type Welcome,
} from "../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay, validateName } from "../protocol/remote_path.ts";
import { readListing } from "../protocol/listing.ts";
import { WireError } from "../protocol/wire_errors.ts";
import { readAhead, WriteBehind } from "../transfer/streaming.ts";
import { Watchdog } from "../net/watchdog.ts";
import { releaseBuffer } from "../_memory.ts";

/** Where and how to connect. */
export interface ConnectOptions {
  /** Server host name or address. */
  hostname: string;
  /** Server port. */
  port: number;
  /** PAKE secret: the normalised code as bytes (`codeSecret()` in `code.ts`). */
  secret: Uint8Array;
  /** Deadline for connecting and the handshake (default 15 s). */
  timeoutMs?: number;
  /** The connection is closed when nothing moves in either direction this long (default 120 s). */
  idleTimeoutMs?: number;
}

/** Progress of one file, reported while it moves. */
export interface Progress {
  /** Bytes of the file now present on the receiving side (kept prefix included). */
  bytes: number;
  /** Total size of the file. */
  size: number;
}

/** What a finished file transfer reports. */
export interface TransferResult {
  /** Name of the file where it landed (local path for downloads, remote path for uploads). */
  name: string;
  size: number;
  /** Bytes the transfer started from (0 unless resumed). */
  resumedFrom: number;
  /** Bytes that actually crossed the wire. */
  transferred: number;
  /** Nothing was moved: the target already held exactly these bytes. */
  skipped?: true;
  /** SHA-256 of the whole file, lowercase hex, verified by the receiver. */
  sha256: string;
  seconds: number;
}

/** Options shared by {@link FerryClient.download} and {@link FerryClient.upload}. */
export interface TransferOptions {
  /** Replace an existing target atomically instead of refusing. */
  force?: boolean;
  /** Called with the number of bytes present so far (at most every chunk). */
  onProgress?: (progress: Progress) => void;
  /** Called once the size and starting offset are known. */
  onStart?: (info: { size: number; offset: number }) => void;
}

const DATA_CHUNK_BYTES = MAX_RECORD_PLAINTEXT;

/** One authenticated session with a ferry server. */
export class FerryClient {
  #conn: Deno.TcpConn;
  #channel: SecureChannel;
  #welcome: Welcome | undefined;
  #closed = false;
  #idleTimeoutMs: number;
  #watchdog: Watchdog;
  #stalled = false;

  private constructor(conn: Deno.TcpConn, channel: SecureChannel, idleTimeoutMs: number) {
    this.#conn = conn;
    this.#channel = channel;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#watchdog = new Watchdog(() => {
      this.#stalled = true;
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }, { unref: true });
  }

  /** What the server said about itself after the handshake (mode, upload limit). */
  get welcome(): Welcome {
    return this.#welcome!;
  }

  /**
   * Connects, runs the CPace handshake and reads the server's welcome.
   * Throws `AuthenticationError` for a wrong code, `ConnectionError` if the server cannot be
   * reached or refuses. Permission: `--allow-net=<hostname:port>`.
   */
  static async connect(options: ConnectOptions): Promise<FerryClient> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    let conn: Deno.TcpConn;
    const controller = new AbortController();
    const connectTimer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      conn = await Deno.connect({
        hostname: options.hostname,
        port: options.port,
        transport: "tcp",
        signal: controller.signal,
      });
    } catch (error) {
      if (
        error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ) {
        throw error;
      }
      const detail = controller.signal.aborted
        ? "timed out"
        : error instanceof Error
        ? error.message.split(" (os error")[0]!.split("\n")[0]
        : String(error);
      throw new ConnectionError(
        `Cannot connect to ${options.hostname}:${options.port}: ${detail}`,
      );
    } finally {
      clearTimeout(connectTimer);
    }
    let timedOut = false;
    const handshakeTimer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, timeoutMs);
    try {
      conn.setNoDelay(true);
      const channel = await clientHandshake(conn, options.secret);
      const client = new FerryClient(conn, channel, options.idleTimeoutMs ?? 120_000);
      client.#welcome = await client.#expect("welcome");
      clearTimeout(handshakeTimer);
      return client;
    } catch (error) {
      clearTimeout(handshakeTimer);
      try {
        conn.close();
      } catch {
        // already closed
      }
      if (timedOut) {
        throw new ConnectionError(
          `The server at ${options.hostname}:${options.port} did not complete the handshake in time`,
        );
      }
      throw error;
    }
  }

  async #send(message: ClientMessage): Promise<void> {
    await this.#channel.writer.send(RecordType.control, encodeMessage(message));
  }

  /**
   * Restarts the stall watchdog while a reply is awaited or data is being sent: a server that
   * stops responding is hung up on, not waited for forever.
   */
  #touch(): void {
    this.#watchdog.arm(this.#idleTimeoutMs, "stalled");
  }

  /** A stalled connection's errors say so. */
  #explain(error: unknown): unknown {
    return this.#stalled
      ? new ConnectionError(
        `The server stopped responding for ${Math.round(this.#idleTimeoutMs / 1000)} s`,
      )
      : error;
  }

  /** The next record; `extraMs` more are allowed when the server first hashes a kept prefix. */
  async #nextRecord(extraMs = 0): Promise<ReceivedRecord> {
    this.#watchdog.arm(this.#idleTimeoutMs + extraMs, "stalled");
    let record: ReceivedRecord;
    try {
      record = await this.#channel.reader.next();
    } catch (error) {
      throw this.#explain(error);
    } finally {
      // Only a pending reply is watched: an idle interactive session is not a stall.
      this.#watchdog.pause();
    }
    if (record.type === RecordType.end) {
      throw new ConnectionError("The server closed the connection");
    }
    return record;
  }

  #decode(record: ReceivedRecord): ServerMessage {
    if (record.type !== RecordType.control) {
      throw new ProtocolError("Unexpected data from the server");
    }
    const message = decodeServerMessage(record.payload);
    if (message.t === "error") {
      throw new RemoteError(message.code, sanitizeForDisplay(message.message));
    }
    return message;
  }

  async #expect<T extends ServerMessage["t"]>(
    type: T,
    extraMs = 0,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    const message = this.#decode(await this.#nextRecord(extraMs));
    if (message.t !== type) {
      throw new ProtocolError(`Expected "${type}" from the server, got "${message.t}"`);
    }
    return message as Extract<ServerMessage, { t: T }>;
  }

  async #expectOneOf<T extends ServerMessage["t"]>(
    types: readonly T[],
    extraMs = 0,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    const message = this.#decode(await this.#nextRecord(extraMs));
    if (!(types as readonly string[]).includes(message.t)) {
      throw new ProtocolError(
        `Expected "${types.join('" or "')}" from the server, got "${message.t}"`,
      );
    }
    return message as Extract<ServerMessage, { t: T }>;
  }

  /**
   * Lists a remote folder (or one file); with `recursive`, every file and folder below it, named
   * by their path relative to it. Every name is validated as a remote path. Holds the whole
   * listing (at most {@link MAX_LISTING_ENTRIES} entries); {@link listBatches} streams it. Needs no
   * permission beyond the open connection.
   */
  async list(path: string, options: { recursive?: boolean } = {}): Promise<ListEntry[]> {
    const entries: ListEntry[] = [];
    for await (const batch of this.listBatches(path, options)) entries.push(...batch);
    return entries;
  }

  /**
   * The entries of {@link list} in the batches the server sends them, so that a caller can print
   * a huge listing in constant memory. Stopping early reads and drops the rest of the listing, so
   * the connection stays usable. A server that lists more than {@link MAX_LISTING_ENTRIES} entries
   * is refused with {@link ProtocolError}.
   */
  async *listBatches(
    path: string,
    options: { recursive?: boolean } = {},
  ): AsyncGenerator<ListEntry[]> {
    parseRemotePath(path);
    await this.#send({ t: "list", path, recursive: options.recursive ?? false });
    yield* readListing(() => this.#expect("listing"));
  }

  /**
   * Downloads the remote file `remotePath` into the local folder `localDir` under `name` (a single
   * validated component). Resumes a kept partial file when its prefix still matches the source;
   * refuses an existing target unless `force`. Permission: read and write on `localDir`.
   */
  async download(
    remotePath: string,
    localDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    validateName(name);
    parseRemotePath(remotePath);
    const target = join(localDir, name);
    if (!options.force && await lstatOrNull(target) !== null) {
      throw new ExistsError(
        `${sanitizeForDisplay(target)} already exists: use --force to replace it`,
      );
    }
    const started = performance.now();
    const partial = await PartialFile.open(localDir, name);
    // A kept prefix stays unless the server restarts the file or the result fails its check.
    let keep = true;
    let sink: WriteBehind | undefined;
    try {
      let prefixHash: Hash | undefined;
      if (partial.size > 0) prefixHash = await partial.hashPrefix(partial.size);
      await this.#send({
        t: "get",
        path: remotePath,
        offset: partial.size,
        prefixSha256: prefixHash ? peekHex(prefixHash) : "",
      });
      const header = await this.#fileHeader(partial.size);
      const offset = header.offset;
      const hash = offset > 0 && prefixHash ? prefixHash : newSha256();
      await partial.truncate(offset);
      options.onStart?.({ size: header.size, offset });
      // Each opened record is written, then its memory handed back at once.
      const writes = new WriteBehind((chunk) =>
        partial.write(chunk).then(() => releaseBuffer(chunk))
      );
      sink = writes;
      const serverSha256 = await this.#fileBody(header, async (chunk, received) => {
        hash.update(chunk);
        await writes.push(chunk);
        options.onProgress?.({ bytes: received, size: header.size });
      });
      await writes.drain();
      const sha256 = hash.digest("hex");
      if (sha256 !== serverSha256) {
        keep = false;
        throw new IntegrityError(
          `Download of ${
            sanitizeForDisplay(remotePath)
          } does not match the server's SHA-256: nothing was kept`,
        );
      }
      await partial.commit({
        force: options.force ?? false,
        mode: header.mode,
        mtime: header.mtime,
      });
      return {
        name: target,
        size: header.size,
        resumedFrom: offset,
        transferred: header.size - offset,
        sha256,
        seconds: (performance.now() - started) / 1000,
      };
    } catch (error) {
      // Whatever was received is kept for a resume: let queued writes land first.
      await sink?.drain().catch(() => {});
      if (keep && partial.size > 0) partial.close();
      else await partial.discard();
      throw error;
    }
  }

  /**
   * Whether the remote file `remotePath` holds exactly the bytes of the local file `localPath`,
   * found without moving them: the local file is offered as the kept prefix of a download of its
   * whole length, which the server takes up only if its first bytes hash the same, and a file of
   * that very length then follows with no data at all. If it differs, what the server sends is
   * read and dropped (so call this only when the sizes are known to match). Returns the local
   * size and SHA-256. Permission: read on `localPath`.
   */
  async isIdentical(
    remotePath: string,
    localPath: string,
  ): Promise<{ identical: boolean; size: number; sha256: string }> {
    parseRemotePath(remotePath);
    let size: number;
    let sha256: string;
    {
      using file = await Deno.open(localPath, { read: true });
      size = (await file.stat()).size;
      sha256 = peekHex(await hashFilePrefix(file, size));
    }
    await this.#send({ t: "get", path: remotePath, offset: size, prefixSha256: sha256 });
    const header = await this.#fileHeader(size);
    const serverSha256 = await this.#fileBody(header, (chunk) => {
      releaseBuffer(chunk); // a differing file's bytes are only drained
      return Promise.resolve();
    });
    const identical = header.offset === size && header.size === size && serverSha256 === sha256;
    return { identical, size, sha256 };
  }

  /** The server's `file` answer to a `get` that offered `asked` kept bytes, checked. */
  async #fileHeader(asked: number): Promise<FileStart> {
    // The server may first hash the `asked` bytes it was offered.
    const header = await this.#expect("file", hashAllowanceMs(asked));
    if (header.offset !== 0 && header.offset !== asked) {
      throw new ProtocolError("The server offered an offset that was not asked for");
    }
    if (header.offset > header.size) throw new ProtocolError("The server's offset is past the end");
    return header;
  }

  /**
   * Reads the data records that follow `header` up to its `file-end`, handing each chunk to
   * `onChunk` with the bytes present so far; checks that exactly the announced bytes came, and
   * returns the server's SHA-256 of the whole file.
   */
  async #fileBody(
    header: FileStart,
    onChunk: (chunk: Uint8Array, received: number) => Promise<void>,
  ): Promise<string> {
    let received = header.offset;
    while (true) {
      const record = await this.#nextRecord();
      if (record.type === RecordType.data) {
        received += record.payload.length;
        if (received > header.size) {
          throw new ProtocolError("The server sent more than the file's size");
        }
        await onChunk(record.payload, received);
        continue;
      }
      const end = this.#decode(record);
      if (end.t !== "file-end") throw new ProtocolError(`Expected "file-end", got "${end.t}"`);
      if (received !== header.size) {
        throw new ProtocolError(`The server sent ${received} of ${header.size} bytes`);
      }
      return end.sha256;
    }
  }

  /**
   * Uploads the local file `localPath` as `<prefix>name` inside the remote folder `remoteDir`
   * (`name` may have several components for folder uploads; the server adds its prefix to the
   * first). Resumes the server's kept partial upload when its prefix matches this file.
   * Permission: read on `localPath`.
   */
  async upload(
    localPath: string,
    remoteDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    parseRemotePath(remoteDir);
    if (parseRemotePath(name).length === 0) throw new ProtocolError("Upload name is empty");
    const started = performance.now();
    using file = await Deno.open(localPath, { read: true });
    const info = await file.stat();
    if (!info.isFile) throw new ExistsError(`${localPath} is not a regular file`);
    const size = info.size;
    const request = (ifIdentical: string) =>
      this.#send({
        t: "put",
        dir: remoteDir,
        name,
        size,
        mode: (info.mode ?? 0o644) & 0o777,
        mtime: Math.max(0, Math.round(info.mtime?.getTime() ?? Date.now())),
        force: options.force ?? false,
        ifIdentical,
      });
    // The server may first hash a kept partial upload (or an existing file) of `size` bytes.
    const answer = () => this.#expectOneOf(["put-ready", "put-done"], hashAllowanceMs(size));
    await request("");
    let first: PutReady | PutDone;
    try {
      first = await answer();
    } catch (error) {
      // Already there? (A re-run after a cut.) Ask once more, offering this file's SHA-256: a
      // target holding exactly these bytes is then reported done with nothing sent.
      if (options.force || !(error instanceof RemoteError) || error.code !== WireError.exists) {
        throw error;
      }
      const sha256 = peekHex(await hashFilePrefix(file, size));
      await request(sha256);
      first = await answer();
    }
    if (first.t === "put-done") {
      if (!first.skipped || first.sha256 === "" || first.size !== size) {
        throw new ProtocolError("The server reported an upload done before it started");
      }
      return {
        name: first.name,
        size,
        resumedFrom: size,
        transferred: 0,
        sha256: first.sha256,
        seconds: (performance.now() - started) / 1000,
        skipped: true,
      };
    }
    const ready = first;
    let offset = 0;
    let hash: Hash = newSha256();
    if (ready.offset > 0 && ready.offset <= size) {
      const prefix = await hashFilePrefix(file, ready.offset);
      if (peekHex(prefix) === ready.prefixSha256) {
        offset = ready.offset;
        hash = prefix;
      }
    }
    await this.#send({ t: "put-start", offset });
    options.onStart?.({ size, offset });
    await file.seek(offset, Deno.SeekMode.Start);
    // The server may refuse mid-stream (disk full): watch for its reply while sending.
    const reply = this.#nextRecord();
    let replied = false;
    reply.then(() => replied = true, () => replied = true);
    const writer = this.#channel.writer;
    let position = offset;
    try {
      for await (const block of readAhead(file, size - offset)) {
        for (let start = 0; start < block.length && !replied; start += DATA_CHUNK_BYTES) {
          const chunk = block.subarray(start, Math.min(block.length, start + DATA_CHUNK_BYTES));
          hash.update(chunk);
          await writer.write(RecordType.data, chunk).catch((error) => {
            throw this.#explain(error);
          });
          this.#touch();
          position += chunk.length;
          options.onProgress?.({ bytes: position, size });
        }
        if (replied) break;
      }
      if (position < size && !replied) {
        throw new ConnectionError(`${localPath} shrank while it was being sent`);
      }
      if (!replied) {
        const sha256 = hash.digest("hex");
        await writer.write(RecordType.control, encodeMessage({ t: "put-end", sha256 }));
        await writer.flush();
      }
    } catch (error) {
      // A write that fails because the server hung up: its reply says why.
      const answer = await Promise.race([reply.then(this.#decode.bind(this)), delay(2000)])
        .catch((reason) => reason);
      if (answer instanceof Error) throw answer;
      throw error;
    }
    const done = this.#decode(await reply);
    if (done.t !== "put-done") throw new ProtocolError(`Expected "put-done", got "${done.t}"`);
    return {
      name: done.name,
      size,
      resumedFrom: offset,
      transferred: size - offset,
      sha256: done.sha256,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /**
   * Creates the folder `<prefix>name` inside `remoteDir` (or finds it there); returns its remote
   * path. Needs no permission beyond the open connection.
   */
  async mkdir(
    remoteDir: string,
    name: string,
    options: { mode?: number; mtime?: number } = {},
  ): Promise<string> {
    await this.#send({
      t: "mkdir",
      dir: remoteDir,
      name,
      mode: (options.mode ?? 0o755) & 0o777,
      mtime: Math.max(0, Math.round(options.mtime ?? Date.now())),
    });
    return (await this.#expect("mkdir-done")).name;
  }

  /** Ends the session politely and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchdog.disarm();
    try {
      await this.#channel.writer.end();
    } catch {
      // the connection is gone already
    }
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  /** Closes the session (`await using client = await FerryClient.connect(...)`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}
