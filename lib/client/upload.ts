/**
 * Uploading one file: the `put` request from the client's side. A re-run that meets its own
 * complete file is answered as done with nothing sent (`ifIdentical`); a kept partial upload on
 * the server is taken up when its prefix matches (lib/transfer/resume.ts); the body goes out with
 * the shared engine (lib/transfer/body.ts) while the client watches for an early reply.
 *
 * @module
 */
import { ChangedError, PathError, ProtocolError, RemoteError, UsageError } from "../errors.ts";
import { RecordType } from "../protocol/framing.ts";
import {
  encodeMessage,
  type PutDone,
  type PutReady,
  type PutRequest,
} from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { WireError } from "../protocol/wire_errors.ts";
import { type RecordWriter, sendBody } from "../transfer/body.ts";
import { hashAllowanceMs, hashFilePrefix, peekHex } from "../transfer/hashing.ts";
import { acceptKeptPrefix } from "../transfer/resume.ts";
import type { ClientConversation } from "./conversation.ts";
import type { TransferOptions, TransferResult } from "./types.ts";

/** How long a failed send waits for the server's reply that says why. */
const REPLY_AFTER_FAILURE_MS = 2000;

/**
 * Uploads the local file `localPath` as `<prefix>name` inside the remote folder `remoteDir`
 * (`name` may have several components for folder uploads; the server adds its prefix to the
 * first). Resumes the server's kept partial upload when its prefix matches this file.
 * Permission: read on `localPath`.
 */
export async function upload(
  conversation: ClientConversation,
  localPath: string,
  remoteDir: string,
  name: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const started = performance.now();
  const source = openUploadSource(localPath, remoteDir, name);
  using file = source.file;
  const { info } = source;
  const size = info.size;
  const request = (ifIdentical: string) =>
    conversation.send(putRequest(info, remoteDir, name, options, { ifIdentical }));
  // The server may first hash a kept partial upload (or an existing file) of `size` bytes.
  const answer = () => conversation.expect(["put-ready", "put-done"], hashAllowanceMs(size));
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
    options.onChecking?.({ bytes: size });
    const sha256 = await conversation.whileWorking(async () =>
      peekHex(await hashFilePrefix(file, size))
    );
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
  // The server waits for put-start while this side hashes the prefix it offered.
  if (first.offset > 0) options.onChecking?.({ bytes: first.offset });
  const accepted = await acceptKeptPrefix(file, size, {
    offset: first.offset,
    sha256: first.prefixSha256,
  });
  const offset = accepted.offset;
  const hash = options.verify ? accepted.hash : undefined;
  await conversation.send({ t: "put-start", offset });
  options.onStart?.({ size, offset });
  await file.seek(offset, Deno.SeekMode.Start);
  // The server may refuse mid-stream (disk full): watch for its reply while sending.
  const reply = conversation.next();
  let replied = false;
  reply.then(() => replied = true, () => replied = true);
  const writer: RecordWriter = {
    write: (type, payload) =>
      conversation.writer.write(type, payload).catch((error) => {
        throw conversation.explain(error);
      }),
  };
  let withdrawn = false;
  try {
    const sent = await sendBody({
      source: file,
      length: size - offset,
      writer,
      hash,
      onSent: (sent) => {
        conversation.touch();
        options.onProgress?.({ bytes: offset + sent, size });
      },
      stopped: () => replied,
    });
    if (!replied) {
      // The records prove the server got these bytes as read; that they were one version of the
      // file is this side's to check, and a file written meanwhile is withdrawn, never committed.
      const changed = offset + sent < size || sourceChanged(localPath, info);
      const end = changed
        ? { t: "put-cancel" as const }
        : { t: "put-end" as const, sha256: hash?.digest("hex") ?? "" };
      await writer.write(RecordType.control, encodeMessage(end));
      await conversation.writer.flush();
      withdrawn = changed;
    }
  } catch (error) {
    // A write that fails because the server hung up: its reply says why.
    const why = await replyWithin(reply.then((record) => conversation.decode(record)));
    if (why instanceof Error) throw why;
    throw error;
  }
  if (withdrawn) {
    await reply; // the server's `changed` refusal, read so the next request gets its own answer
    throw new ChangedError(
      `${localPath} changed while it was being sent: nothing was kept; run the command again`,
    );
  }
  const done = conversation.decode(await reply);
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
 * Checks an upload's remote folder and name, and opens its local source, which must be a regular
 * file (`PathError` otherwise; `UsageError` for an empty name). Permission: read on `localPath`.
 */
export function openUploadSource(
  localPath: string,
  remoteDir: string,
  name: string,
): { file: Deno.FsFile; info: Deno.FileInfo } {
  parseRemotePath(remoteDir);
  if (parseRemotePath(name).length === 0) throw new UsageError("Cannot upload: the name is empty");
  // Synchronous calls: see lib/_fs.ts.
  const file = Deno.openSync(localPath, { read: true });
  try {
    const info = file.statSync();
    if (!info.isFile) throw new PathError(`Cannot upload ${localPath}: it is not a regular file`);
    return { file, info };
  } catch (error) {
    file.close();
    throw error;
  }
}

/** The `put` announcing the local file described by `info` as `<prefix>name` in `remoteDir`. */
export function putRequest(
  info: Deno.FileInfo,
  remoteDir: string,
  name: string,
  options: TransferOptions,
  extra: { ifIdentical?: string; stream?: boolean } = {},
): PutRequest {
  return {
    t: "put",
    dir: remoteDir,
    name,
    size: info.size,
    mode: (info.mode ?? 0o644) & 0o777,
    mtime: Math.max(0, Math.round(info.mtime?.getTime() ?? Date.now())),
    force: options.force ?? false,
    ifIdentical: extra.ifIdentical ?? "",
    verify: options.verify ?? false,
    ...(extra.stream ? { stream: true } : {}),
  };
}

/**
 * Whether the local file opened at `path` changed since `before` was taken (through its handle):
 * its size or modification time, or what its path leads to (device and inode).
 */
export function sourceChanged(
  path: string,
  before: Deno.FileInfo,
): boolean {
  // Through the path alone: while the name leads to the very file that is open (same device and
  // inode, which an open file keeps), its size and time are that file's (one lookup, not two).
  let now: Deno.FileInfo;
  try {
    now = Deno.statSync(path);
  } catch {
    return true; // removed or renamed away
  }
  if (now.ino !== before.ino || now.dev !== before.dev) return true;
  return now.size !== before.size || now.mtime?.getTime() !== before.mtime?.getTime();
}

/** What `reply` settles to within {@link REPLY_AFTER_FAILURE_MS} (its error, if it fails). */
async function replyWithin(reply: Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise((resolve) => timer = setTimeout(resolve, REPLY_AFTER_FAILURE_MS));
  try {
    return await Promise.race([reply, timeout]).catch((reason) => reason);
  } finally {
    clearTimeout(timer);
  }
}
