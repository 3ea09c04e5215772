/**
 * Listing a remote folder: the `list` request and its batches, with the client's checks (every
 * name a valid remote path, at most {@link MAX_LISTING_ENTRIES} entries) and the drain that keeps
 * the connection usable when the caller stops early.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { MAX_LISTING_ENTRIES } from "../protocol/constants.ts";
import type { ListEntry } from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import type { ClientConversation } from "./conversation.ts";

/**
 * Lists `path` (recursively with `recursive`) and yields the entries in the batches the server
 * sends. Stopping early reads and drops the rest of the listing.
 */
export async function* listBatches(
  conversation: ClientConversation,
  path: string,
  options: { recursive?: boolean } = {},
): AsyncGenerator<ListEntry[]> {
  parseRemotePath(path);
  await conversation.send({ t: "list", path, recursive: options.recursive ?? false });
  let count = 0;
  let done = false;
  const nextBatch = async (): Promise<ListEntry[]> => {
    const batch = await conversation.expect("listing");
    count += batch.entries.length;
    if (count > MAX_LISTING_ENTRIES) {
      throw new ProtocolError(`The server listed more than ${MAX_LISTING_ENTRIES} entries`);
    }
    done = batch.done;
    return batch.entries;
  };
  let atYield = false;
  try {
    while (!done) {
      const entries = await nextBatch();
      for (const entry of entries) {
        if (entry.name !== "") parseRemotePath(entry.name);
      }
      atYield = true;
      yield entries;
      atYield = false;
    }
  } finally {
    // The caller stopped early: read the rest so the next request gets its own answer. (After
    // an error of the listing itself there is nothing sensible left to read, and an error while
    // dropping is left for the next request to meet.)
    try {
      while (atYield && !done) await nextBatch();
    } catch {
      // see above
    }
  }
}
