/**
 * Streamed uploads: for small files, `put` with `stream` sends the data right behind the request,
 * with no `put-ready`/`put-start` round trip and no resume (there is little to resume), so that a
 * folder upload keeps several files on the wire at once. {@link sendStreamedUpload} sends one
 * whole file; {@link receiveStreamedUpload} reads its answer, in the order the files were sent.
 *
 * @module
 */
import { ChangedError, ProtocolError } from "../errors.ts";
import { RecordType } from "../protocol/framing.ts";
import { encodeMessage } from "../protocol/messages.ts";
import { newSha256 } from "../transfer/hashing.ts";
import type { ClientConversation } from "./conversation.ts";
import type { TransferOptions, TransferResult } from "./types.ts";
import { openUploadSource, putRequest, sourceChanged } from "./upload.ts";

/**
 * Files up to this size are streamed in a folder upload; larger ones take the resumable path (a
 * cut one resumes from its kept bytes; a streamed one is simply sent again).
 */
export const STREAMED_UPLOAD_MAX_BYTES = 64 * 1024;

/** A streamed upload's records travel in bundles with the others around them (see `framing.ts`). */
const GATHERED = { gather: true } as const;

/** A streamed upload sent (see {@link sendStreamedUpload}), whose answer is still to be read. */
export interface SentUpload {
  /** The local file. */
  readonly localPath: string;
  /** Its size when sent. */
  readonly size: number;
  /** The file changed while it was sent: it was withdrawn with `put-cancel`. */
  readonly withdrawn: boolean;
  /** When sending started (`performance.now()`). */
  readonly started: number;
}

/**
 * Sends `put` with `stream`, the whole file and `put-end` (or `put-cancel` when the file changed
 * meanwhile) without waiting for an answer. Permission: read on `localPath`.
 */
export async function sendStreamedUpload(
  conversation: ClientConversation,
  localPath: string,
  remoteDir: string,
  name: string,
  options: TransferOptions = {},
): Promise<SentUpload> {
  const started = performance.now();
  const source = openUploadSource(localPath, remoteDir, name);
  using file = source.file;
  const { info } = source;
  const size = info.size;
  if (size > STREAMED_UPLOAD_MAX_BYTES) {
    // It was small when the folder was read: it is being written to.
    throw new ChangedError(
      `${localPath} changed while the upload was under way: nothing was sent; run the command again`,
    );
  }
  // Read whole, synchronously (see lib/_fs.ts): the file is small, and fewer reads than one.
  const bytes = readUpTo(file, size);
  await conversation.queue(putRequest(info, remoteDir, name, options, { stream: true }));
  options.onStart?.({ size, offset: 0 });
  const hash = options.verify ? newSha256().update(bytes) : undefined;
  if (bytes.length > 0) {
    await conversation.writer.write(RecordType.data, bytes, GATHERED).catch((error) => {
      throw conversation.explain(error);
    });
  }
  conversation.touch();
  options.onProgress?.({ bytes: bytes.length, size });
  // The server waits for exactly `size` bytes: a file that shrank is made up with nothing but a
  // cancel, which the server reads as the end of this upload.
  const withdrawn = bytes.length < size || sourceChanged(localPath, info);
  const end = withdrawn
    ? { t: "put-cancel" as const }
    : { t: "put-end" as const, sha256: hash?.digest("hex") ?? "" };
  await conversation.writer.write(RecordType.control, encodeMessage(end), GATHERED).catch(
    (error) => {
      throw conversation.explain(error);
    },
  );
  return { localPath, size, withdrawn, started };
}

/**
 * Reads the answer to a {@link sendStreamedUpload}: the result, or the server's refusal as a
 * `RemoteError` (`exists` for a target already there, say); a withdrawn file is a
 * `ChangedError`.
 */
export async function receiveStreamedUpload(
  conversation: ClientConversation,
  sent: SentUpload,
): Promise<TransferResult> {
  await conversation.writer.flush();
  const record = await conversation.next();
  if (sent.withdrawn) {
    // The record read above is the server's `changed` refusal of the cancel: read, not shown.
    throw new ChangedError(
      `${sent.localPath} changed while it was being sent: nothing was kept; run the command again`,
    );
  }
  const done = conversation.decode(record);
  if (done.t !== "put-done") throw new ProtocolError(`Expected "put-done", got "${done.t}"`);
  return {
    name: done.name,
    size: sent.size,
    resumedFrom: done.skipped ? sent.size : 0,
    transferred: done.skipped ? 0 : sent.size,
    sha256: done.sha256,
    seconds: (performance.now() - sent.started) / 1000,
    ...(done.skipped ? { skipped: true as const } : {}),
  };
}

/** Reads up to `length` bytes of `file` from its position at once (fewer if it ends first). */
function readUpTo(file: Deno.FsFile, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = file.readSync(bytes.subarray(filled));
    if (count === null || count === 0) break;
    filled += count;
  }
  return bytes.subarray(0, filled);
}
