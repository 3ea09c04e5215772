/**
 * The ferry client: one authenticated session with a server, and the per-file operations on it.
 *
 * {@link FerryClient.connect} dials (TCP by default, or any {@link Dial}), runs the handshake and
 * reads the welcome; then {@link FerryClient.list}, {@link FerryClient.download},
 * {@link FerryClient.upload} and {@link FerryClient.mkdir} run one request at a time over a
 * {@link ClientConversation}. The client trusts the server no more than the server trusts it:
 * every name it receives is validated before it touches the disk, every message is checked, and
 * every file is verified against its SHA-256 before it takes its name. Listing, download and
 * upload live in their own modules beside this one.
 *
 * Permissions: `--allow-net=<host:port>`; reading (uploads) or writing (downloads) the local paths.
 *
 * @module
 */
import { ConnectionError, RefusedError, RemoteError, UsageError } from "../errors.ts";
import { type Dial, dialTcp } from "../net/dial.ts";
import { formatAddress } from "../net/address.ts";
import { BUNDLE_FEATURE } from "../protocol/constants.ts";
import { clientHandshake, RefusalStatus } from "../protocol/handshake.ts";
import { WireError } from "../protocol/wire_errors.ts";
import type { ListEntry, Welcome } from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { ClientConversation, closeQuietly } from "./conversation.ts";
import {
  download,
  isIdentical,
  receiveDownload,
  requestDownload,
  type RequestedDownload,
} from "./download.ts";
import { listBatches, type ListOptions } from "./listing.ts";
import type { TransferOptions, TransferResult } from "./types.ts";
import { upload } from "./upload.ts";
import { receiveStreamedUpload, sendStreamedUpload, type SentUpload } from "./upload_stream.ts";

export type { Progress, TransferOptions, TransferResult } from "./types.ts";
export type { RequestedDownload } from "./download.ts";
export type { SentUpload } from "./upload_stream.ts";
export type { ListOptions } from "./listing.ts";

/** Where and how to connect. */
export interface ConnectOptions {
  /** Server host name or address. */
  hostname: string;
  /** Server port. */
  port: number;
  /** PAKE secret: the normalised code's secret symbols as bytes (`codeSecret()` in `code.ts`). */
  secret: Uint8Array;
  /**
   * The code's public identifier (`codeIdentifier()` in `code.ts`): a named code's first 4
   * symbols; the default `0000` for a code of 16 symbols.
   */
  identifier?: string;
  /** Deadline for connecting and the handshake (default 15 s). */
  timeoutMs?: number;
  /** The connection is closed when a reply does not come this long (default 120 s). */
  idleTimeoutMs?: number;
  /** How to open the connection (default: TCP). */
  dial?: Dial;
}

/** One authenticated session with a ferry server. */
export class FerryClient {
  #conversation: ClientConversation;
  #welcome: Welcome;
  #closed = false;

  private constructor(conversation: ClientConversation, welcome: Welcome) {
    this.#conversation = conversation;
    this.#welcome = welcome;
  }

  /** What the server said about itself after the handshake (mode, upload limit). */
  get welcome(): Welcome {
    return this.#welcome;
  }

  /**
   * Connects, runs the CPace handshake and reads the server's welcome.
   * Throws `AuthenticationError` for a wrong code, `ConnectionError` if the server cannot be
   * reached or refuses. Permission: `--allow-net=<hostname:port>` (with the default dial).
   */
  static async connect(options: ConnectOptions): Promise<FerryClient> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const where = formatAddress(options.hostname, options.port); // [::1]:7878 for IPv6
    const controller = new AbortController();
    const connectTimer = setTimeout(() => controller.abort(), timeoutMs);
    let conn;
    try {
      conn = await (options.dial ?? dialTcp)(options, controller.signal);
    } catch (error) {
      if (
        error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ) {
        throw error;
      }
      // A dial that explains itself (a relay's refusal) is passed on as it said it.
      if (error instanceof ConnectionError && !controller.signal.aborted) throw error;
      const detail = controller.signal.aborted
        ? "timed out"
        : error instanceof Error
        ? error.message.split(" (os error")[0]!.split("\n")[0]
        : String(error);
      throw new ConnectionError(`Cannot connect to ${where}: ${detail}`);
    } finally {
      clearTimeout(connectTimer);
    }
    let timedOut = false;
    const handshakeTimer = setTimeout(() => {
      timedOut = true;
      closeQuietly(conn);
    }, timeoutMs);
    try {
      conn.setNoDelay?.(true);
      const channel = await clientHandshake(conn, options.secret, options.identifier);
      const conversation = new ClientConversation(conn, channel, options.idleTimeoutMs ?? 120_000);
      const welcome = await conversation.expect("welcome");
      conversation.serverIdleTimeoutMs = welcome.idleTimeoutMs;
      if (welcome.features?.includes(BUNDLE_FEATURE)) conversation.useBundles();
      return new FerryClient(conversation, welcome);
    } catch (error) {
      closeQuietly(conn);
      if (timedOut) {
        throw new ConnectionError(`The server at ${where} did not complete the handshake in time`);
      }
      if (error instanceof RemoteError && error.code === WireError.busy) {
        // Its sessions filled up during the handshake: the same as a busy refusal (retried).
        throw new RefusedError(RefusalStatus.busy, error.message);
      }
      throw error;
    } finally {
      clearTimeout(handshakeTimer);
    }
  }

  /**
   * Lists a remote folder (or one file); with `recursive`, every file and folder below it, named
   * by their path relative to it. Every name is validated as a remote path. Holds the whole
   * listing (at most `MAX_LISTING_ENTRIES` entries); {@link listBatches} streams it. Needs no
   * permission beyond the open connection.
   */
  async list(path: string, options: ListOptions = {}): Promise<ListEntry[]> {
    const entries: ListEntry[] = [];
    for await (const batch of this.listBatches(path, options)) entries.push(...batch);
    return entries;
  }

  /**
   * The entries of {@link list} in the batches the server sends them, so that a caller can print
   * a huge listing in constant memory. Stopping early reads and drops the rest of the listing, so
   * the connection stays usable. A server that lists more than `MAX_LISTING_ENTRIES` entries is
   * refused with `ProtocolError`.
   */
  listBatches(path: string, options: ListOptions = {}): AsyncGenerator<ListEntry[]> {
    return listBatches(this.#conversation, path, options);
  }

  /**
   * Downloads the remote file `remotePath` into the local folder `localDir` under `name` (a single
   * validated component). Resumes a kept partial file when its prefix still matches the source;
   * refuses an existing target unless `force`. Permission: read and write on `localDir`.
   */
  download(
    remotePath: string,
    localDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    return download(this.#conversation, remotePath, localDir, name, options);
  }

  /**
   * Sends the `get` of a {@link download} without waiting for its answer, so that several can be
   * in flight; read the answers in the same order with {@link receiveDownload}. Nothing else may be
   * asked of this session until every requested download is received.
   */
  requestDownload(
    remotePath: string,
    localDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<RequestedDownload> {
    return requestDownload(this.#conversation, remotePath, localDir, name, options);
  }

  /**
   * Reads the answer to a {@link requestDownload} into its partial file and checks it; `commit`
   * then gives the file its name (and may run while later answers are read).
   */
  receiveDownload(
    requested: RequestedDownload,
  ): Promise<{ commit: () => Promise<TransferResult> }> {
    return receiveDownload(this.#conversation, requested);
  }

  /**
   * Whether the remote file `remotePath` holds exactly the bytes of the local file `localPath`,
   * found without moving them (see `isIdentical` in lib/client/download.ts). Call it only when
   * the sizes are known to match. Permission: read on `localPath`.
   */
  isIdentical(
    remotePath: string,
    localPath: string,
  ): Promise<{ identical: boolean; size: number; sha256: string }> {
    return isIdentical(this.#conversation, remotePath, localPath);
  }

  /**
   * Uploads the local file `localPath` as `<prefix>name` inside the remote folder `remoteDir`
   * (`name` may have several components for folder uploads; the server adds its prefix to the
   * first). Resumes the server's kept partial upload when its prefix matches this file.
   * Permission: read on `localPath`.
   */
  upload(
    localPath: string,
    remoteDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    return upload(this.#conversation, localPath, remoteDir, name, options);
  }

  /**
   * Sends a small file as a streamed upload (no resume, no round trip before the data) without
   * waiting for the answer; read the answers in the same order with {@link receiveUpload}.
   * Nothing else may be asked of this session until every sent upload is received.
   * Permission: read on `localPath`.
   */
  sendUpload(
    localPath: string,
    remoteDir: string,
    name: string,
    options: TransferOptions = {},
  ): Promise<SentUpload> {
    return sendStreamedUpload(this.#conversation, localPath, remoteDir, name, options);
  }

  /** The answer to a {@link sendUpload}: the result, or the server's refusal as an error. */
  receiveUpload(sent: SentUpload): Promise<TransferResult> {
    return receiveStreamedUpload(this.#conversation, sent);
  }

  /**
   * Creates the folder `<prefix>name` inside `remoteDir` (or finds it there) and gives it
   * `mtime`; returns its remote path. Needs no permission beyond the open connection.
   */
  async mkdir(
    remoteDir: string,
    name: string,
    options: { mode?: number; mtime?: number } = {},
  ): Promise<string> {
    parseRemotePath(remoteDir);
    if (parseRemotePath(name).length === 0) {
      throw new UsageError("Cannot create a folder: the name is empty");
    }
    await this.#conversation.send({
      t: "mkdir",
      dir: remoteDir,
      name,
      mode: (options.mode ?? 0o755) & 0o777,
      mtime: Math.max(0, Math.round(options.mtime ?? Date.now())),
    });
    return (await this.#conversation.expect("mkdir-done")).name;
  }

  /**
   * Drops the connection at once, without ending the session politely: a request under way fails
   * (a download keeps its partial file, as after a lost connection, and a run of the same
   * download resumes it). The server sees the connection close. Closing afterwards does nothing.
   */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conversation.abort();
  }

  /** Ends the session politely and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#conversation.close();
  }

  /** Closes the session (`await using client = await FerryClient.connect(...)`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
