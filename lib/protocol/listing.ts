/**
 * A listing on the wire, both ends: {@link ListingWriter} (or {@link sendListing}) cuts entries into
 * `listing` batches for the server, and {@link readListing} reads them back for the client,
 * checking what an untrusted server sent.
 *
 * A batch holds at most {@link MAX_LISTING_BATCH} entries, and is sent early once its estimated
 * encoded size reaches {@link LISTING_BATCH_BYTES}; the last batch (possibly empty) has `done`. So
 * neither side holds more than one batch of a huge listing. The reader refuses a listing of more
 * than {@link MAX_LISTING_ENTRIES} entries and any name that is not a valid remote path, and when
 * its caller stops early it reads and drops the rest of the listing, so that the next request on
 * the connection gets its own answer.
 *
 * @example A listing sent and read back in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import { readListing, sendListing } from "./listing.ts";
 * import type { ListEntry, Listing } from "./messages.ts";
 *
 * async function* entries(): AsyncGenerator<ListEntry> {
 *   yield { name: "a.txt", type: "file", size: 1, mtime: 0, mode: 0o644 };
 *   yield { name: "docs", type: "dir", size: 0, mtime: 0, mode: 0o755 };
 * }
 * const wire: Listing[] = [];
 * await sendListing(entries(), async (batch) => void wire.push(batch));
 * assert.deepEqual(wire.map((batch) => [batch.entries.length, batch.done]), [[2, true]]);
 *
 * const names: string[] = [];
 * for await (const batch of readListing(async () => wire.shift()!)) {
 *   names.push(...batch.map((entry) => entry.name));
 * }
 * assert.deepEqual(names, ["a.txt", "docs"]);
 * ```
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import {
  LISTING_BATCH_BYTES,
  MAX_LISTING_BATCH,
  MAX_LISTING_ENTRIES,
  MAX_LISTING_NAME_UNITS,
} from "./constants.ts";
import type { ListEntry, Listing, SkippedEntry } from "./messages.ts";
import { parseRemotePath } from "./remote_path.ts";

/** Entries a listing names as skipped; past that they are only counted. */
const MAX_SKIPPED_NAMED = 10_000;

/**
 * An upper estimate of the encoded size of `entry` in a batch: each UTF-16 unit of the name may
 * take up to 6 bytes of JSON (`\u001f`), plus the fixed fields.
 */
function estimatedBytes(entry: ListEntry): number {
  return entry.name.length * 6 + 100;
}

/**
 * Cuts entries into `listing` batches as they come: {@link ListingWriter.add} sends a batch once it
 * holds {@link MAX_LISTING_BATCH} entries or about {@link LISTING_BATCH_BYTES}, and
 * {@link ListingWriter.end} sends the rest as the last batch, with `done` (empty if the entries
 * ended exactly at a batch's end, or there were none). A listing that fails half way is not ended:
 * its owner answers with an `error` message instead, after the full batches already sent.
 */
export class ListingWriter {
  #send: (message: Listing) => Promise<void>;
  #batch: ListEntry[] = [];
  #skipped: SkippedEntry[] = [];
  #skippedInAll = 0;
  #batchBytes = 0;

  /** A writer that hands each batch to `send`. */
  constructor(send: (message: Listing) => Promise<void>) {
    this.#send = send;
  }

  /** Adds `entry`, sending the batch if it is now full. */
  async add(entry: ListEntry): Promise<void> {
    this.#batch.push(entry);
    this.#batchBytes += estimatedBytes(entry);
    if (this.#batch.length >= MAX_LISTING_BATCH || this.#batchBytes >= LISTING_BATCH_BYTES) {
      await this.#flush(false);
    }
  }

  /**
   * Adds an entry that cannot be listed (see `Listing.skipped`), sent with the current batch. A
   * batch holds at most {@link MAX_LISTING_BATCH} of them; the rest of a listing's are counted
   * into one last item ("N more"), so a folder of a million bad names cannot grow the listing.
   */
  async skip(entry: SkippedEntry): Promise<void> {
    this.#skippedInAll++;
    if (this.#skippedInAll > MAX_SKIPPED_NAMED) return;
    this.#skipped.push(entry);
    this.#batchBytes += entry.name.length * 6 + entry.reason.length + 40;
    if (this.#skipped.length >= MAX_LISTING_BATCH || this.#batchBytes >= LISTING_BATCH_BYTES) {
      await this.#flush(false);
    }
  }

  /** Sends the last batch, marked `done`. */
  end(): Promise<void> {
    const unnamed = this.#skippedInAll - MAX_SKIPPED_NAMED;
    if (unnamed > 0) {
      this.#skipped.push({
        name: `(${unnamed} more)`,
        reason: "not named, to keep the listing short",
      });
    }
    return this.#flush(true);
  }

  async #flush(done: boolean): Promise<void> {
    const entries = this.#batch;
    const skipped = this.#skipped;
    this.#batch = [];
    this.#skipped = [];
    this.#batchBytes = 0;
    await this.#send({ t: "listing", entries, done, ...(skipped.length > 0 ? { skipped } : {}) });
  }
}

/** Sends all of `entries` through `send` as one listing (see {@link ListingWriter}). */
export async function sendListing(
  entries: AsyncIterable<ListEntry> | Iterable<ListEntry>,
  send: (message: Listing) => Promise<void>,
): Promise<void> {
  const writer = new ListingWriter(send);
  for await (const entry of entries) await writer.add(entry);
  await writer.end();
}

/** Options of {@link readListing}. */
export interface ReadListingOptions {
  /** The most entries accepted in all (default {@link MAX_LISTING_ENTRIES}). */
  maxEntries?: number;
  /** The most UTF-16 code units of names accepted in all (default {@link MAX_LISTING_NAME_UNITS}). */
  maxNameUnits?: number;
  /** Receives the entries the server found but cannot list (`Listing.skipped`), as they come. */
  onSkipped?: (entry: SkippedEntry) => void;
}

/**
 * The entries of one listing, batch by batch as the server sent them; `next` returns the next
 * `listing` message (and throws on anything else, such as an `error` reply). Throws
 * {@link ProtocolError} once the listing exceeds `maxEntries` (a batch that is not the last and
 * holds no entry counts as one, so endless empty batches end too) or its names exceed
 * `maxNameUnits` in all, and `PathError` for an entry name
 * that is not a valid remote path (`""`, the listed file itself, is allowed). The size of each
 * batch is the message decoder's to check.
 *
 * A caller that stops early (`break`, `return`, or an exception in its loop body) makes the
 * generator read and drop the remaining batches, so the connection stays usable; an error while
 * dropping them is left for the next request to meet. After an error of the listing itself
 * nothing is read.
 */
export async function* readListing(
  next: () => Promise<Listing>,
  options: ReadListingOptions = {},
): AsyncGenerator<ListEntry[]> {
  const maxEntries = options.maxEntries ?? MAX_LISTING_ENTRIES;
  const maxNameUnits = options.maxNameUnits ?? MAX_LISTING_NAME_UNITS;
  let count = 0;
  let nameUnits = 0;
  let done = false;
  const nextBatch = async (): Promise<ListEntry[]> => {
    const batch = await next();
    count += batch.entries.length === 0 && !batch.done ? 1 : batch.entries.length;
    if (count > maxEntries) {
      throw new ProtocolError(`The server listed more than ${maxEntries} entries`);
    }
    for (const entry of batch.entries) nameUnits += entry.name.length;
    for (const skipped of batch.skipped ?? []) {
      nameUnits += skipped.name.length;
      options.onSkipped?.(skipped);
    }
    if (nameUnits > maxNameUnits) {
      throw new ProtocolError(
        `The server's listing holds more than ${maxNameUnits} characters of names`,
      );
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
    // Stopped at a yield: the caller is done, the listing is not. Read the rest so the next
    // request gets its own answer.
    try {
      while (atYield && !done) await nextBatch();
    } catch {
      // left for the next request to meet
    }
  }
}
