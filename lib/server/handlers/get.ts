/**
 * `get`: sends one file from the offset the client may resume at (the resume rule of
 * docs/PROTOCOL.md §4.1), then `file-end` with the SHA-256 of the whole file.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { MAX_RECORD_PLAINTEXT, RecordType } from "../../protocol/framing.ts";
import type { GetRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import { hashFilePrefix, newSha256, peekHex } from "../../transfer/hashing.ts";
import { readAhead } from "../../transfer/streaming.ts";
import type { RequestContext } from "../context.ts";
import { RequestError } from "../replies.ts";

/** Answers `get`: `file`, the data records, `file-end`; `is-dir` for a folder. */
export async function get(request: GetRequest, context: RequestContext): Promise<void> {
  context.rights.requireReading();
  const { store, send, deadline } = context;
  const { writer } = context.channel;
  const { info } = await store.resolve(request.path);
  if (info.type === "dir") {
    throw new RequestError("is-dir", `${sanitizeForDisplay(request.path)} is a folder`);
  }
  const { file } = await store.openRead(request.path);
  try {
    const size = info.size;
    let offset = 0;
    let hash: Hash = newSha256();
    if (request.offset > 0 && request.offset <= size && request.prefixSha256 !== "") {
      deadline.pause(); // hashing is this side's own work, not a stalled client
      const prefix = await hashFilePrefix(file, request.offset);
      deadline.stall();
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
      deadline.stall();
    }
    if (position < size) {
      throw new RequestError("changed", "The file shrank while it was being sent");
    }
    const sha256 = hash.digest("hex");
    await send({ t: "file-end", sha256 });
    context.log(
      `get ${sanitizeForDisplay(request.path)}: ${size - offset} bytes sent` +
        (offset ? ` (resumed at ${offset})` : ""),
    );
  } finally {
    file.close();
  }
}
