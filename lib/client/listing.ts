/**
 * Listing a remote folder from the client: the `list` request, then the batches read with the
 * protocol's listing reader (lib/protocol/listing.ts: name checks, the entry cap, and the drain
 * that keeps the connection usable when the caller stops early).
 *
 * @module
 */
import { readListing } from "../protocol/listing.ts";
import type { ListEntry, SkippedEntry } from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import type { ClientConversation } from "./conversation.ts";

/** Lists `path` (recursively with `recursive`) and yields the entries batch by batch. */
export async function* listBatches(
  conversation: ClientConversation,
  path: string,
  options: ListOptions = {},
): AsyncGenerator<ListEntry[]> {
  parseRemotePath(path);
  await conversation.send({ t: "list", path, recursive: options.recursive ?? false });
  yield* readListing(() => conversation.expect("listing"), { onSkipped: options.onSkipped });
}

/** Options of a listing. */
export interface ListOptions {
  /** Everything below the folder, not only its children. */
  recursive?: boolean;
  /**
   * Told of each entry the server found but cannot list (its name, escaped, and why); a server
   * that does not say lists nothing more.
   */
  onSkipped?: (entry: SkippedEntry) => void;
}
