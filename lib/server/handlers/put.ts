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
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { CommitOptions, FileStore, PendingFile } from "../../store/store.ts";
import { BodyWriteError, receiveBody } from "../../transfer/body.ts";
import { hashAllowanceMs, hashFilePrefix, peekHex } from "../../transfer/hashing.ts";
import { hashFrom, type KeptPrefix, NOTHING_KEPT, offerKeptPrefix } from "../../transfer/resume.ts";
import type { RequestContext } from "../context.ts";
import { describe, replyFor, RequestError } from "../replies.ts";
import { uploadTarget } from "../upload_target.ts";
import { WireError } from "../../protocol/wire_errors.ts";

/**
 * Answers `put`: `put-ready`, then (after `put-start`, the data and `put-end`) `put-done`; or
 * `put-done` with `skipped` at once when the target already holds these bytes.
 */
export async function put(request: PutRequest, context: RequestContext): Promise<void> {
  let relative: string;
  try {
    relative = await admit(request, context);
  } catch (error) {
    // A streamed upload's bytes are already on their way: read past them, then refuse.
    if (request.stream) await skipStreamedBody(request, context);
    throw error;
  }
  if (relative === ALREADY_THERE) return;
  const uploads = context.uploadsInProgress;
  uploads.add(relative);
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
      const { sha256, offset } = await receive(request, upload, relative, context);
      handedOver = true;
      await context.defer(async (send) => {
        try {
          await commit(upload, request, relative);
          await send({ t: "put-done", name: relative, size: request.size, sha256 });
          context.log(
            `put ${sanitizeForDisplay(relative)}: ${request.size - offset} bytes received` +
              (offset ? ` (resumed at ${offset})` : ""),
          );
        } catch (error) {
          context.log(`put refused: ${describe(error)}`);
          await send(replyFor(error));
        } finally {
          await upload.end(context.shuttingDown);
          uploads.delete(relative);
        }
      });
    } finally {
      if (!handedOver) await upload.end(context.shuttingDown);
    }
  } finally {
    // Released only now: the next upload of this name must not meet a file being removed.
    if (!handedOver) uploads.delete(relative);
  }
}

/** What {@link admit} answers for an upload that found its bytes already in place. */
const ALREADY_THERE = "";

/**
 * The checks before an upload takes its target: rights, size, the target's place and what is
 * there. Returns the target's remote path, or {@link ALREADY_THERE} once a re-run was answered as
 * done with nothing moved.
 */
async function admit(request: PutRequest, context: RequestContext): Promise<string> {
  const { rights } = context;
  rights.requireWriting();
  rights.requireReplacing(request.force);
  rights.requireUploadSize(request.size);
  const relative = await uploadTarget(
    context.store,
    context.uploadPrefix,
    request.dir,
    request.name,
  );
  if (await alreadyThere(request, relative, context)) return ALREADY_THERE;
  await checkTarget(context.store, relative, request.force);
  if (context.uploadsInProgress.has(relative)) {
    throw new RequestError(
      "busy",
      `${sanitizeForDisplay(relative)} is being uploaded by another client`,
    );
  }
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
  relative: string,
  context: RequestContext,
): Promise<{ sha256: string; offset: number }> {
  const { send, deadline } = context;
  const { reader } = context.channel;
  const partial = upload.partial;
  const kept = request.stream ? NOTHING_KEPT : await offerResume(request, partial, context);
  const offset = request.stream ? 0 : await startOffset(kept, context);
  const hash = request.verify ? hashFrom(kept, offset) : undefined;
  await partial.truncate(offset);
  let end: PutEnd;
  try {
    end = await receiveBody({
      next: async () => {
        const record = await reader.next();
        deadline.stall();
        return record;
      },
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
  const sha256 = hash?.digest("hex") ?? "";
  if (sha256 !== end.sha256) {
    await upload.discard();
    throw request.verify
      ? new RequestError("integrity", "Upload does not match its SHA-256: nothing was kept")
      : new ProtocolError("A SHA-256 in put-end that was not announced with verify");
  }
  return { sha256, offset };
}

/** Offers the kept bytes of a cut upload (`put-ready`) for a resume. */
async function offerResume(
  request: PutRequest,
  partial: PendingFile,
  context: RequestContext,
): Promise<KeptPrefix> {
  context.deadline.pause(); // hashing a kept prefix is this side's own work, not a stalled client
  const kept = await offerKeptPrefix(
    partial.size,
    (length) => partial.hashPrefix(length),
    request.size,
  );
  await context.send({ t: "put-ready", offset: kept.offset, prefixSha256: kept.sha256 });
  // The client hashes as many bytes of its file before it answers.
  context.deadline.stall(hashAllowanceMs(kept.offset));
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
): Promise<boolean> {
  if (request.force || !request.ifIdentical || !context.rights.mayConfirmIdentical) return false;
  using file = await context.store.openExisting(relative);
  if (file === null || file.info.size !== request.size) return false;
  context.deadline.pause(); // hashing is this side's own work, not a stalled client
  const sha256 = peekHex(await hashFilePrefix(file, request.size));
  context.deadline.stall();
  if (sha256 !== request.ifIdentical) return false;
  if (request.stream) await skipStreamedBody(request, context);
  await context.send({ t: "put-done", name: relative, size: request.size, sha256, skipped: true });
  context.log(`put ${sanitizeForDisplay(relative)}: already complete, nothing moved`);
  return true;
}

/** Refuses (`exists`) a target that is a folder or a link, or a file without `force`. */
async function checkTarget(store: FileStore, relative: string, force: boolean): Promise<void> {
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
