/**
 * `get`: sends one file from the offset the client may resume at (the resume rule of
 * docs/PROTOCOL.md §4.1), then `file-end`, with the SHA-256 of the whole file when the client asked
 * to verify; a file that changed while it was sent ends with `changed` instead.
 *
 * @module
 */
import type { GetRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import { sendBody } from "../../transfer/body.ts";
import { acceptKeptPrefix } from "../../transfer/resume.ts";
import type { RequestContext } from "../context.ts";
import { RequestError } from "../replies.ts";

/** Answers `get`: `file`, the data records, `file-end`; `is-dir` for a folder. */
export async function get(request: GetRequest, context: RequestContext): Promise<void> {
  context.rights.requireReading();
  const { store, send, deadline } = context;
  const { writer } = context.channel;
  const file = await store.openRead(request.path); // a folder: `is-dir`, and the client lists it
  const info = file.info;
  try {
    const size = file.info.size;
    deadline.pause(); // hashing a kept prefix is this side's own work, not a stalled client
    const { offset, hash } = await acceptKeptPrefix(file, size, {
      offset: request.offset,
      sha256: request.prefixSha256,
    });
    deadline.stall();
    await file.seek(offset, Deno.SeekMode.Start);
    await send({
      t: "file",
      size,
      mtime: Math.max(0, Math.round(info.mtime)),
      mode: info.mode & 0o777,
      offset,
    });
    const sent = await sendBody({
      source: file,
      length: size - offset,
      writer,
      hash: request.verify ? hash : undefined,
      onSent: () => deadline.stall(),
    });
    // The records prove the client got these bytes as read; that they were one version of the
    // file is this side's to check: a file written meanwhile is refused, never committed there.
    if (offset + sent < size || await file.changed()) {
      throw new RequestError(
        "changed",
        `${sanitizeForDisplay(request.path)} changed while it was being sent: nothing was kept`,
      );
    }
    await send({ t: "file-end", sha256: request.verify ? hash.digest("hex") : "" });
    context.log(
      `get ${sanitizeForDisplay(request.path)}: ${size - offset} bytes sent` +
        (offset ? ` (resumed at ${offset})` : ""),
    );
  } finally {
    file.close();
  }
}
