/**
 * Downloading one file: the `get` request from the client's side. The kept bytes of a cut
 * download are offered for a resume (lib/transfer/resume.ts), the body is received with the
 * shared engine (lib/transfer/body.ts) into a partial file, and the file takes its name once all
 * its bytes came and the server vouched that its source did not change meanwhile (and, with
 * `verify`, once its SHA-256 matches the server's).
 *
 * @module
 */
import { join } from "node:path";
import { lstatOrNull } from "../_fs.ts";
import { ExistsError, IntegrityError, ProtocolError, RemoteError } from "../errors.ts";
import type { ReceivedRecord } from "../protocol/framing.ts";
import type { FileStart } from "../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay, validateLocalName } from "../protocol/remote_path.ts";
import { WireError } from "../protocol/wire_errors.ts";
import { PartialFile } from "../store/partial_file.ts";
import type { PendingFile } from "../store/store.ts";
import { BodyWriteError, receiveBody } from "../transfer/body.ts";
import { hashAllowanceMs, hashFilePrefix, peekHex } from "../transfer/hashing.ts";
import { hashFrom, type KeptPrefix, NOTHING_KEPT, offerKeptPrefix } from "../transfer/resume.ts";
import type { ClientConversation } from "./conversation.ts";
import type { TransferOptions, TransferResult } from "./types.ts";

/** Who sends a download's bytes, in error messages. */
const SENDER = "The server";

/**
 * Downloads the remote file `remotePath` into the local folder `localDir` under `name` (one
 * validated component). Resumes a kept partial file when its prefix still matches the source;
 * refuses an existing target unless `force`. Permission: read and write on `localDir`.
 */
export async function download(
  conversation: ClientConversation,
  remotePath: string,
  localDir: string,
  name: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const requested = await requestDownload(conversation, remotePath, localDir, name, options);
  const received = await receiveDownload(conversation, requested);
  return await received.commit();
}

/** A `get` sent (see {@link requestDownload}), whose answer is still to be read. */
export interface RequestedDownload {
  /** The remote file asked for. */
  readonly remotePath: string;
  /** Where it lands locally. */
  readonly target: string;
  /** The options it was asked with. */
  readonly options: TransferOptions;
  /** Its partial file, open and locked. */
  readonly partial: PendingFile;
  /** The kept bytes offered for a resume. */
  readonly kept: KeptPrefix;
  /** When the request started (`performance.now()`). */
  readonly started: number;
}

/**
 * The first half of {@link download}: checks the target, opens (and locks) the partial file,
 * offers its kept bytes and sends `get`, without waiting for the answer; answers come back in the
 * order the requests went out, so several downloads can be asked for before the first is read
 * ({@link receiveDownload}). Permission: read and write on `localDir`.
 */
export async function requestDownload(
  conversation: ClientConversation,
  remotePath: string,
  localDir: string,
  name: string,
  options: TransferOptions = {},
): Promise<RequestedDownload> {
  validateLocalName(name);
  parseRemotePath(remotePath);
  const target = join(localDir, name);
  if (!options.force && !options.targetAbsent && await lstatOrNull(target) !== null) {
    throw new ExistsError(
      `${sanitizeForDisplay(target)} already exists: use --force to replace it`,
    );
  }
  const started = performance.now();
  const partial = await PartialFile.open(localDir, name);
  try {
    if (partial.size > 0) options.onChecking?.({ bytes: partial.size });
    const kept = partial.size === 0
      ? NOTHING_KEPT
      : await conversation.whileWorking(() =>
        offerKeptPrefix(partial.size, (length) => partial.hashPrefix(length))
      );
    await conversation.queue({
      t: "get",
      path: remotePath,
      offset: kept.offset,
      prefixSha256: kept.sha256,
      verify: options.verify ?? false,
    });
    return { remotePath, target, options, partial, kept, started };
  } catch (error) {
    partial.close();
    throw error;
  }
}

/**
 * The second half of {@link download}: reads the answer to `requested` into its partial file and
 * checks it. The returned `commit` gives the file its name (made durable first); it can run while
 * the next answers are read, and commits run side by side share the disk's flushes.
 */
export async function receiveDownload(
  conversation: ClientConversation,
  requested: RequestedDownload,
): Promise<{ commit: () => Promise<TransferResult> }> {
  const { remotePath, target, options, partial, kept } = requested;
  // A kept prefix stays unless the server restarts the file or the result fails its check.
  let keep = true;
  try {
    const header = await fileHeader(conversation, kept.offset);
    const offset = header.offset;
    const hash = options.verify ? hashFrom(kept, offset) : undefined;
    await partial.truncate(offset);
    options.onStart?.({ size: header.size, offset });
    const serverSha256 = await receiveBody({
      next: () => conversation.next(),
      from: offset,
      size: header.size,
      write: (chunk) => partial.write(chunk),
      hash,
      onReceived: (bytes) => options.onProgress?.({ bytes, size: header.size }),
      end: (record) => fileEnd(conversation, record),
      sender: SENDER,
    }).catch((error) => {
      throw error instanceof BodyWriteError ? error.cause : error;
    });
    const sha256 = hash?.digest("hex") ?? "";
    if (sha256 !== serverSha256) {
      keep = false;
      throw new IntegrityError(
        `Download of ${
          sanitizeForDisplay(remotePath)
        } does not match the server's SHA-256: nothing was kept`,
      );
    }
    const commit = async (): Promise<TransferResult> => {
      try {
        await partial.commit({
          force: options.force ?? false,
          mode: header.mode,
          mtime: header.mtime,
        });
      } catch (error) {
        partial.close(); // the verified bytes stay for a re-run
        throw error;
      }
      return {
        name: target,
        size: header.size,
        resumedFrom: offset,
        transferred: header.size - offset,
        sha256,
        seconds: (performance.now() - requested.started) / 1000,
      };
    };
    return { commit };
  } catch (error) {
    // Whatever was received is kept for a resume, unless the source changed while it was sent.
    if (error instanceof RemoteError && error.code === WireError.changed) keep = false;
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
export async function isIdentical(
  conversation: ClientConversation,
  remotePath: string,
  localPath: string,
): Promise<{ identical: boolean; size: number; sha256: string }> {
  parseRemotePath(remotePath);
  const { size, sha256 } = await conversation.whileWorking(async () => {
    using file = await Deno.open(localPath, { read: true });
    const size = (await file.stat()).size;
    return { size, sha256: peekHex(await hashFilePrefix(file, size)) };
  });
  await conversation.send({
    t: "get",
    path: remotePath,
    offset: size,
    prefixSha256: sha256,
    verify: true,
  });
  const header = await fileHeader(conversation, size);
  const serverSha256 = await receiveBody({
    next: () => conversation.next(),
    from: header.offset,
    size: header.size,
    write: () => Promise.resolve(), // a differing file's bytes are only drained
    end: (record) => fileEnd(conversation, record),
    sender: SENDER,
  });
  const identical = header.offset === size && header.size === size && serverSha256 === sha256;
  return { identical, size, sha256 };
}

/** The server's `file` answer to a `get` that offered `asked` kept bytes, checked. */
async function fileHeader(conversation: ClientConversation, asked: number): Promise<FileStart> {
  // The server may first hash the `asked` bytes it was offered.
  const header = await conversation.expect("file", hashAllowanceMs(asked));
  if (header.offset !== 0 && header.offset !== asked) {
    throw new ProtocolError("The server offered an offset that was not asked for");
  }
  if (header.offset > header.size) throw new ProtocolError("The server's offset is past the end");
  return header;
}

/** The server's SHA-256 from the `file-end` record that closes a body. */
function fileEnd(conversation: ClientConversation, record: ReceivedRecord): string {
  const end = conversation.decode(record);
  if (end.t !== "file-end") throw new ProtocolError(`Expected "file-end", got "${end.t}"`);
  return end.sha256;
}
