/**
 * `get`: sends one file from the offset the client may resume at (the resume rule of
 * docs/PROTOCOL.md §4.1), then `file-end`, with the SHA-256 of the whole file when the client asked
 * to verify; a file that changed while it was sent ends with `changed` instead.
 *
 * Clients ask for the files of a folder many at a time (answers keep the order of the requests),
 * so each `get` is prepared as soon as it arrives, side by side with the ones before it: the file
 * is found and opened, and a small one read whole and checked, while earlier answers are still
 * going out. Only the sending waits for its turn.
 *
 * @module
 */
import { IsFolderError } from "../../errors.ts";
import type { GetRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import { MAX_RECORD_PLAINTEXT, RecordType } from "../../protocol/framing.ts";
import type { StoredFile } from "../../store/store.ts";
import { sendBody } from "../../transfer/body.ts";
import { acceptKeptPrefix } from "../../transfer/resume.ts";
import type { RequestContext } from "../context.ts";
import { describe, replyFor, RequestError } from "../replies.ts";

/**
 * A file whose bytes to send fit in this many is read whole while it waits for its turn (so at
 * most this many bytes wait per answer in flight); a bigger one is streamed in its turn.
 */
const READ_WHOLE_BYTES = 64 * 1024;

/** Answers `get`: `file`, the data records, `file-end`; `is-dir` for a folder. */
export async function get(request: GetRequest, context: RequestContext): Promise<void> {
  context.rights.requireReading();
  await context.defer(async (send) => {
    try {
      await answer(request, context, send);
    } catch (error) {
      // `is-dir` is how a client learns to list a folder it downloads: normal, not a refusal.
      if (!(error instanceof IsFolderError)) context.log(`get refused: ${describe(error)}`);
      await send(replyFor(error));
    }
  });
}

/** Prepares the file asked for, then sends it with `send` (which waits for this answer's turn). */
async function answer(
  request: GetRequest,
  context: RequestContext,
  send: RequestContext["send"],
): Promise<void> {
  const { store, deadline } = context;
  const { writer } = context.channel;
  // A folder: `is-dir`, and the client lists it.
  using file = await store.openRead(request.path);
  const { size, mtime, mode } = file.info;
  deadline.pause(); // hashing a kept prefix is this side's own work, not a stalled client
  const { offset, hash } = await acceptKeptPrefix(file, size, {
    offset: request.offset,
    sha256: request.prefixSha256,
  });
  deadline.stall();
  await file.seek(offset, Deno.SeekMode.Start);
  const whole = size - offset <= READ_WHOLE_BYTES ? await readWhole(file, size - offset) : null;
  if (whole !== null && (whole.length < size - offset || await file.changed())) {
    throw changedWhileSent(request);
  }
  // Waits for the earlier answers to go out.
  await send({
    t: "file",
    size,
    mtime: Math.max(0, Math.round(mtime)),
    mode: mode & 0o777,
    offset,
  });
  let sent: number;
  if (whole !== null) {
    for (let start = 0; start < whole.length; start += MAX_RECORD_PLAINTEXT) {
      const chunk = whole.subarray(start, start + MAX_RECORD_PLAINTEXT);
      if (request.verify) hash.update(chunk);
      await writer.write(RecordType.data, chunk, { gather: true }); // with its messages
      deadline.stall();
    }
    sent = whole.length;
  } else {
    sent = await sendBody({
      source: file,
      length: size - offset,
      writer,
      hash: request.verify ? hash : undefined,
      onSent: () => deadline.stall(),
    });
    // The records prove the client got these bytes as read; that they were one version of the
    // file is this side's to check: a file written meanwhile is refused, never committed there.
    if (offset + sent < size || await file.changed()) throw changedWhileSent(request);
  }
  await send({ t: "file-end", sha256: request.verify ? hash.digest("hex") : "" });
  context.log(
    `get ${sanitizeForDisplay(request.path)}: ${sent} bytes sent` +
      (offset ? ` (resumed at ${offset})` : ""),
  );
}

/** Reads up to `length` bytes of `file` from its position (fewer if it ends first). */
async function readWhole(file: StoredFile, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await file.read(bytes.subarray(filled));
    if (count === null) break;
    filled += count;
  }
  return bytes.subarray(0, filled);
}

function changedWhileSent(request: GetRequest): RequestError {
  return new RequestError(
    "changed",
    `${sanitizeForDisplay(request.path)} changed while it was being sent: nothing was kept`,
  );
}
