/**
 * `put`: receives one upload into a partial file, resumes a kept one when the client's first
 * bytes match, verifies the SHA-256 and commits (docs/PROTOCOL.md §4.1 and §5). A re-run of an
 * upload already complete is answered without a transfer (`ifIdentical`).
 *
 * @module
 */
import { ConnectionError, ExistsError, PathError, ProtocolError } from "../../errors.ts";
import { type ReceivedRecord, RecordType } from "../../protocol/framing.ts";
import { decodeClientMessage, type PutEnd, type PutRequest } from "../../protocol/messages.ts";
import type { Hash } from "node:crypto";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { CommitOptions, FileStore, PendingFile } from "../../store/store.ts";
import { BodyWriteError, receiveBody } from "../../transfer/body.ts";
import { hashAllowanceMs, hashFilePrefix, peekHex } from "../../transfer/hashing.ts";
import { hashFrom, type KeptPrefix, NOTHING_KEPT, offerKeptPrefix } from "../../transfer/resume.ts";
import type { RequestContext } from "../context.ts";
import { describe, replyFor, RequestError } from "../replies.ts";
import type { UploadClaim } from "../upload_claims.ts";
import { uploadTarget } from "../upload_target.ts";
import { WireError } from "../../protocol/wire_errors.ts";

/**
 * A streamed upload of at most this many bytes is read into memory first and then stored side by
 * side with the next requests (see {@link putBuffered}); a bigger one is written as it comes.
 */
export const BUFFERED_UPLOAD_MAX_BYTES = 64 * 1024;

/**
 * Answers `put`: `put-ready`, then (after `put-start`, the data and `put-end`) `put-done`; or
 * `put-done` with `skipped` at once when the target already holds these bytes.
 */
export async function put(request: PutRequest, context: RequestContext): Promise<void> {
  if (request.stream && request.size <= BUFFERED_UPLOAD_MAX_BYTES) {
    return await putBuffered(request, context);
  }
  let relative: string;
  let claim: UploadClaim | undefined;
  try {
    relative = await admit(request, context, context.send);
    if (relative !== ALREADY_THERE) claim = await claimTarget(relative, context);
  } catch (error) {
    // A streamed upload's bytes are already on their way: read past them, then refuse.
    if (request.stream) await skipStreamedBody(request, context);
    throw error;
  }
  if (claim === undefined) { // already there
    if (request.stream) await skipStreamedBody(request, context);
    return;
  }
  // Once the bytes are verified, the commit (a flush to disk) and the answer are handed to
  // `defer`, so the next streamed uploads are read while it runs; it then cleans up itself.
  let handedOver = false;
  try {
    const upload = new Upload(
      await context.store.beginUpload(relative).catch(async (error) => {
        if (request.stream) await skipStreamedBody(request, context);
        throw error;
      }),
    );
    try {
      const { sha256, offset } = await receive(request, upload, claim, context);
      handedOver = true;
      await context.defer(async (send) => {
        try {
          await store(upload, request, relative, context);
          await send({ t: "put-done", name: relative, size: request.size, sha256 });
          logReceived(request, relative, offset, context);
        } catch (error) {
          context.log(`put refused: ${describe(error)}`);
          await send(replyFor(error));
        } finally {
          await upload.end(context.shuttingDown);
          claim.release();
        }
      });
    } finally {
      if (!handedOver) await upload.end(context.shuttingDown);
    }
  } finally {
    // Released only now: the next upload of this name must not meet a file being removed.
    if (!handedOver) claim.release();
  }
}

/**
 * A small streamed upload: its bytes are read (and checked) into memory at once, and everything
 * else (the checks of its target, the partial file, the flush, shared with the uploads around it,
 * and the commit) is handed to `defer`, so a folder of small files is stored many files at a
 * time, while the answers keep the order of the requests.
 */
async function putBuffered(request: PutRequest, context: RequestContext): Promise<void> {
  let bytes: Uint8Array;
  let sha256: string;
  try {
    ({ bytes, sha256 } = await readBuffered(request, context));
  } catch (error) {
    if (!(error instanceof RequestError)) throw error;
    // Answered in its turn (the source changed, the SHA-256 does not match).
    return await context.defer((send) => send(replyFor(error)));
  }
  await context.defer(async (send) => {
    try {
      // Without `force`, a target already there is found by the commit itself (a link that
      // fails if the name is taken): looking first would cost every new file a lookup.
      const relative = await admit(request, context, send, request.force);
      if (relative === ALREADY_THERE) return;
      const claim = await claimTarget(relative, context);
      try {
        const upload = new Upload(await context.store.beginUpload(relative));
        try {
          await upload.partial.write(bytes);
          await store(upload, request, relative, context);
        } finally {
          await upload.discard(); // unless committed: a streamed upload is never resumed
        }
      } finally {
        claim.release();
      }
      await send({ t: "put-done", name: relative, size: request.size, sha256 });
      logReceived(request, relative, 0, context);
    } catch (error) {
      context.log(`put refused: ${describe(error)}`);
      await send(replyFor(error));
    }
  });
}

/**
 * The bytes of a small streamed upload, up to its `put-end`, checked like any upload's (exact
 * length; the SHA-256 when it was sent with `verify`). `RequestError` for a `put-cancel` or a
 * mismatch: the conversation is still in step.
 */
async function readBuffered(
  request: PutRequest,
  context: RequestContext,
): Promise<{ bytes: Uint8Array; sha256: string }> {
  const bytes = new Uint8Array(request.size);
  let filled = 0;
  const hash = request.verify ? hashFrom(NOTHING_KEPT, 0) : undefined;
  const end = await receiveBody({
    next: () => nextRecord(context),
    from: 0,
    size: request.size,
    write: (chunk) => {
      bytes.set(chunk, filled);
      filled += chunk.length;
      return Promise.resolve();
    },
    hash,
    end: putEnd,
    sender: "Upload",
  });
  const sha256 = checkedSha256(request, hash, end);
  return { bytes, sha256 };
}

/**
 * The next record of an upload's data, which restarts the stall deadline (and shows the upload
 * is not quiet, when it holds a claim).
 */
async function nextRecord(context: RequestContext, claim?: UploadClaim): Promise<ReceivedRecord> {
  const record = await context.channel.reader.next();
  context.deadline.stall();
  claim?.heard();
  return record;
}

/**
 * The SHA-256 of a received upload: "" unless it was sent with `verify`, and then the one its
 * `put-end` announced (`integrity` otherwise).
 */
function checkedSha256(request: PutRequest, hash: Hash | undefined, end: PutEnd): string {
  const sha256 = hash?.digest("hex") ?? "";
  if (sha256 === end.sha256) return sha256;
  throw request.verify
    ? new RequestError("integrity", "Upload does not match its SHA-256: nothing was kept")
    : new ProtocolError("A SHA-256 in put-end that was not announced with verify");
}

/**
 * Marks `relative` as being uploaded, for every session; `busy` when it already is, unless that
 * upload's sender has gone quiet (see upload_claims.ts). Check and mark are one step, so two
 * uploads of one name side by side cannot both pass.
 */
function claimTarget(relative: string, context: RequestContext): Promise<UploadClaim> {
  return context.uploadsInProgress.claim(relative, (reason) => context.endSession(reason));
}

/** Flushes a received upload (with the others finished about now), then gives it its name. */
async function store(
  upload: Upload,
  request: PutRequest,
  relative: string,
  context: RequestContext,
): Promise<void> {
  await context.flushed(upload.partial);
  await commit(upload, request, relative);
}

function logReceived(
  request: PutRequest,
  relative: string,
  offset: number,
  context: RequestContext,
): void {
  context.log(
    `put ${sanitizeForDisplay(relative)}: ${request.size - offset} bytes received` +
      (offset ? ` (resumed at ${offset})` : ""),
  );
}

/** What {@link admit} answers for an upload that found its bytes already in place. */
const ALREADY_THERE = "";

/**
 * The checks before an upload takes its target: rights, size, the target's place and (unless
 * `checkTarget` is false) what is there. Returns the target's remote path, or
 * {@link ALREADY_THERE} once a re-run was answered as done (with `send`) with nothing moved; a
 * streamed upload's data is then still to be read past.
 */
async function admit(
  request: PutRequest,
  context: RequestContext,
  send: RequestContext["send"],
  checkTarget = true,
): Promise<string> {
  const { rights } = context;
  rights.requireWriting();
  rights.requireReplacing(request.force);
  rights.requireUploadSize(request.size);
  rights.requireUploadFolder(request.dir, context.uploadPrefix);
  const relative = await uploadTarget(
    context.store,
    context.uploadPrefix,
    request.dir,
    request.name,
  );
  if (await alreadyThere(request, relative, context, send)) return ALREADY_THERE;
  if (checkTarget) await refuseTaken(context.store, relative, request.force);
  return relative;
}

/**
 * Reads and drops the data of a streamed upload that will not be kept, up to its `put-end` or
 * `put-cancel`: the conversation then goes on with the next request. More data than announced,
 * or anything else, is a protocol violation.
 */
async function skipStreamedBody(request: PutRequest, context: RequestContext): Promise<void> {
  let received = 0;
  while (true) {
    const record = await context.channel.reader.next();
    context.deadline.stall();
    if (record.type === RecordType.data) {
      received += record.payload.length;
      if (received > request.size) {
        throw new ProtocolError(`Upload sent more than the ${request.size} bytes announced`);
      }
      continue;
    }
    if (record.type !== RecordType.control) throw new ProtocolError("Upload ended early");
    const end = decodeClientMessage(record.payload);
    if (end.t === "put-end" || end.t === "put-cancel") return;
    throw new ProtocolError("Expected put-end");
  }
}

/**
 * The partial file of one upload and what became of it, settled exactly once: committed,
 * discarded, or, when the request ends otherwise, kept for a resume by {@link end}.
 */
class Upload {
  readonly partial: PendingFile;
  /**
   * `verified`: the commit was refused because a file took the name meanwhile; the verified
   * bytes stay under the partial name, so a `--force` re-run moves no byte again.
   */
  #state: "receiving" | "committed" | "verified" | "discarded" = "receiving";

  constructor(partial: PendingFile) {
    this.partial = partial;
  }

  /** Records the outcome of a commit: in place, or kept verified after `exists`. */
  settle(state: "committed" | "verified"): void {
    this.#state = state;
  }

  /** Deletes the kept bytes (they cannot be trusted or are not wanted). */
  async discard(): Promise<void> {
    if (this.#state === "discarded" || this.#state === "committed") return;
    this.#state = "discarded";
    await this.partial.discard();
  }

  /**
   * Settles the partial file when the request ends, however it ends. Bytes that are neither
   * committed nor discarded are kept for a resume, except on shutdown (no temporary file may stay
   * behind) or when a cut upload holds no byte to resume from.
   */
  async end(shuttingDown: boolean): Promise<void> {
    const empty = this.#state === "receiving" && this.partial.size === 0;
    if (this.#state === "receiving" || this.#state === "verified") {
      if (shuttingDown || empty) await this.discard().catch(() => {});
      else this.partial.close();
    }
  }
}

/**
 * Receives an upload's bytes into its partial file and checks them; returns what the answer
 * needs. The commit is the caller's.
 */
async function receive(
  request: PutRequest,
  upload: Upload,
  claim: UploadClaim,
  context: RequestContext,
): Promise<{ sha256: string; offset: number }> {
  const { send } = context;
  const relative = claim.target;
  const partial = upload.partial;
  const kept = request.stream ? NOTHING_KEPT : await offerResume(request, partial, claim, context);
  const offset = request.stream ? 0 : await startOffset(kept, context);
  const hash = request.verify ? hashFrom(kept, offset) : undefined;
  await partial.truncate(offset);
  let end: PutEnd;
  try {
    end = await receiveBody({
      next: () => nextRecord(context, claim),
      from: offset,
      size: request.size,
      write: (chunk) => partial.write(chunk),
      hash,
      end: putEnd,
      sender: "Upload",
    });
  } catch (error) {
    if (error instanceof RequestError && error.code === WireError.changed) {
      await upload.discard(); // bytes of a source that changed midway are no prefix to resume
    }
    if (!(error instanceof BodyWriteError)) throw error;
    await upload.discard();
    context.log(`put ${sanitizeForDisplay(relative)} failed: ${describe(error.cause)}`);
    // Tell the client at once and end the connection: it may still be sending.
    await send(replyFor(error.cause)).catch(() => {});
    throw new ConnectionError("Upload aborted after a write error");
  }
  try {
    return { sha256: checkedSha256(request, hash, end), offset };
  } catch (error) {
    await upload.discard();
    throw error;
  }
}

/** Offers the kept bytes of a cut upload (`put-ready`) for a resume. */
async function offerResume(
  request: PutRequest,
  partial: PendingFile,
  claim: UploadClaim,
  context: RequestContext,
): Promise<KeptPrefix> {
  context.deadline.pause(); // hashing a kept prefix is this side's own work, not a stalled client
  claim.heard(Infinity);
  const kept = await offerKeptPrefix(
    partial.size,
    (length) => partial.hashPrefix(length),
    request.size,
  );
  await context.send({ t: "put-ready", offset: kept.offset, prefixSha256: kept.sha256 });
  // The client hashes as many bytes of its file before it answers.
  context.deadline.stall(hashAllowanceMs(kept.offset));
  claim.heard(hashAllowanceMs(kept.offset));
  return kept;
}

/** The client's `put-start`: 0, or the offset offered in `kept`. */
async function startOffset(kept: KeptPrefix, context: RequestContext): Promise<number> {
  const start = await context.channel.reader.next();
  if (start.type !== RecordType.control) throw new ProtocolError("Expected put-start");
  const message = decodeClientMessage(start.payload);
  if (message.t !== "put-start" || (message.offset !== 0 && message.offset !== kept.offset)) {
    throw new ProtocolError("Expected put-start at 0 or at the offered offset");
  }
  return message.offset;
}

/**
 * The `put-end` that must close an upload's data; a `put-cancel` there (the client's source
 * changed while it was sent) is refused as `changed`, before the bytes are counted.
 */
function putEnd(record: ReceivedRecord): PutEnd {
  if (record.type !== RecordType.control) throw new ProtocolError("Upload ended early");
  const end = decodeClientMessage(record.payload);
  if (end.t === "put-cancel") {
    throw new RequestError(
      WireError.changed,
      "The uploaded file changed on the client while it was sent: nothing was kept",
    );
  }
  if (end.t !== "put-end") throw new ProtocolError("Expected put-end");
  return end;
}

/** Gives the verified bytes their name; replies name the target relative to the served folder. */
async function commit(upload: Upload, request: PutRequest, relative: string): Promise<void> {
  // At least owner-readable and writable: an upload sent with mode 000 must not leave the server
  // unable to read its own file (and every folder download of it failing).
  const options: CommitOptions = {
    force: request.force,
    mode: (request.mode & 0o777) | 0o600,
    mtime: request.mtime,
  };
  try {
    await upload.partial.commit(options);
    upload.settle("committed");
  } catch (error) {
    // A file that took the name meanwhile: the verified upload is kept, so a `--force` re-run
    // moves no byte again.
    if (error instanceof ExistsError) {
      upload.settle("verified");
      throw new RequestError(
        "exists",
        `${sanitizeForDisplay(relative)} already exists on the server: use --force to replace it`,
      );
    }
    await upload.discard();
    if (error instanceof PathError) {
      throw new RequestError("exists", `${sanitizeForDisplay(relative)} exists and is a folder`);
    }
    throw error;
  }
}

/**
 * A re-run after a cut: the target already holds exactly the bytes the client is about to send
 * (`ifIdentical`, same size and SHA-256), so the upload is answered as done with nothing moved.
 * Never where the rights forbid it (a drop box).
 */
async function alreadyThere(
  request: PutRequest,
  relative: string,
  context: RequestContext,
  send: RequestContext["send"],
): Promise<boolean> {
  if (request.force || !request.ifIdentical || !context.rights.mayConfirmIdentical) return false;
  using file = await context.store.openExisting(relative);
  if (file === null || file.info.size !== request.size) return false;
  context.deadline.pause(); // hashing is this side's own work, not a stalled client
  const sha256 = peekHex(await hashFilePrefix(file, request.size));
  context.deadline.stall();
  if (sha256 !== request.ifIdentical) return false;
  await send({ t: "put-done", name: relative, size: request.size, sha256, skipped: true });
  context.log(`put ${sanitizeForDisplay(relative)}: already complete, nothing moved`);
  return true;
}

/** Refuses (`exists`) a target that is a folder or a link, or a file without `force`. */
async function refuseTaken(store: FileStore, relative: string, force: boolean): Promise<void> {
  const kind = await store.targetKind(relative);
  if (kind === "missing") return;
  if (kind === "dir") {
    throw new RequestError("exists", `${sanitizeForDisplay(relative)} exists and is a folder`);
  }
  if (kind === "link") {
    throw new RequestError(
      "exists",
      `${
        sanitizeForDisplay(relative)
      } is a symbolic link on the server: uploads never replace links`,
    );
  }
  if (kind === "other" || !force) {
    throw new RequestError(
      "exists",
      `${sanitizeForDisplay(relative)} already exists on the server: use --force to replace it`,
    );
  }
}
