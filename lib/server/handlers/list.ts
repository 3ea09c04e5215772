/**
 * `list`: a folder's children, or with `recursive` everything below it, in `listing` batches.
 *
 * @module
 */
import { ListingWriter } from "../../protocol/listing.ts";
import type { ListEntry, ListRequest, SkippedEntry } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { EntryInfo } from "../../store/local.ts";
import type { RequestContext } from "../context.ts";

/** Answers `list` with batches of at most 256 entries (or about 32 KiB), the last one `done`. */
export async function list(request: ListRequest, context: RequestContext): Promise<void> {
  context.rights.requireReading();
  const { store, send } = context;
  const listing = new ListingWriter(send);
  // Entries that cannot be listed (their names) are named in the listing, never left out silently.
  const skipped: SkippedEntry[] = [];
  const options = { onSkipped: (entry: SkippedEntry) => skipped.push(entry) };
  const add = async (entry: ListEntry) => {
    for (const entry of skipped.splice(0)) await listing.skip(entry);
    await listing.add(entry);
  };
  if (request.recursive) {
    const info = await store.resolve(request.path);
    if (info.type !== "dir") {
      await add(toEntry(info, ""));
    } else {
      for await (const entry of store.walk(request.path, options)) {
        await add(toEntry(entry, entry.path));
      }
    }
  } else {
    for await (const entry of store.entries(request.path, options)) {
      await add(toEntry(entry, entry.name));
    }
  }
  for (const entry of skipped.splice(0)) await listing.skip(entry);
  await listing.end();
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
