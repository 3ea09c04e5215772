/**
 * `list`: a folder's children, or with `recursive` everything below it, in `listing` batches.
 *
 * @module
 */
import { LISTING_BATCH_BYTES, MAX_LISTING_BATCH } from "../../protocol/constants.ts";
import type { ListEntry, ListRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { EntryInfo } from "../../store/local.ts";
import type { RequestContext } from "../context.ts";

/** Answers `list` with batches of at most 256 entries (or about 32 KiB), the last one `done`. */
export async function list(request: ListRequest, context: RequestContext): Promise<void> {
  context.rights.requireReading();
  const { store, send } = context;
  let batch: ListEntry[] = [];
  let batchBytes = 0;
  const flush = async (done: boolean) => {
    await send({ t: "listing", entries: batch, done });
    batch = [];
    batchBytes = 0;
  };
  const add = async (entry: ListEntry) => {
    batch.push(entry);
    batchBytes += entry.name.length * 6 + 100;
    if (batch.length >= MAX_LISTING_BATCH || batchBytes >= LISTING_BATCH_BYTES) {
      await flush(false);
    }
  };
  if (request.recursive) {
    const info = await store.resolve(request.path);
    if (info.type !== "dir") {
      await add(toEntry(info, ""));
    } else {
      for await (const entry of store.walk(request.path)) await add(toEntry(entry, entry.path));
    }
  } else {
    for await (const entry of store.entries(request.path)) await add(toEntry(entry, entry.name));
  }
  await flush(true);
  context.log(`list ${sanitizeForDisplay(request.path) || "."}`);
}

function toEntry(info: EntryInfo, name: string): ListEntry {
  return {
    name,
    type: info.type,
    size: info.type === "file" ? info.size : 0,
    mtime: Math.max(0, Math.round(info.mtime)),
    mode: info.mode & 0o777,
  };
}
