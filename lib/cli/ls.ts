/**
 * `ferry ls`: list a folder on the server, and the listing printer the `connect` shell's `ls`
 * uses too.
 *
 * @module
 */
import type { ListEntry, SkippedEntry } from "../protocol/messages.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { ParsedCommand } from "./args.ts";
import type { lsSpec } from "./specs/ls.ts";
import { formatBytes, printError, printLine, printText } from "./output.ts";
import { checkRemoteArgument, openClient } from "./remote.ts";
import { parseServerTarget } from "./target.ts";

/** One listing line: type, size, modification time, name (folders end in `/`). */
export function formatEntry(entry: ListEntry): string {
  const when = new Date(entry.mtime).toISOString().replace("T", " ").slice(0, 16);
  const size = entry.type === "dir" ? "-" : formatBytes(entry.size);
  const name = sanitizeForDisplay(entry.name) + (entry.type === "dir" ? "/" : "");
  return `${entry.type === "dir" ? "dir " : "file"}  ${size.padStart(10)}  ${when}  ${name}`;
}

/** One entry as `ferry ls --json` prints it. */
function entryAsJson(entry: ListEntry): string {
  return JSON.stringify({
    name: entry.name,
    type: entry.type,
    size: entry.size,
    mtime: new Date(entry.mtime).toISOString(),
  });
}

/**
 * Prints a listing batch by batch as it arrives, so a huge folder lists in constant memory: one
 * line per entry, or with `json` one JSON array on one line (`[]` when empty). A JSON listing cut
 * short by an error is closed as the array of the entries that came, so that stdout stays JSON
 * lines: the caller prints the `error` event on the next line.
 */
export async function printListing(
  batches: AsyncIterable<ListEntry[]>,
  options: { json?: boolean } = {},
): Promise<void> {
  if (!options.json) {
    for await (const batch of batches) {
      if (batch.length > 0) printLine(batch.map(formatEntry).join("\n"));
    }
    return;
  }
  let opened = false;
  try {
    for await (const batch of batches) {
      if (batch.length === 0) continue;
      printText((opened ? "," : "[") + batch.map(entryAsJson).join(","));
      opened = true;
    }
  } catch (error) {
    if (opened) printLine("]");
    throw error;
  }
  printLine(opened ? "]" : "[]");
}

/**
 * Runs `ferry ls`. Permissions: net to the server (all of it with `@`); read on the code file.
 */
export async function runLs(
  { positionals, flags }: ParsedCommand<typeof lsSpec>,
): Promise<void> {
  const target = parseServerTarget(positionals[0]!, flags.relay, printError);
  const path = positionals[1] ?? "";
  checkRemoteArgument(path); // refuse a bad path before connecting
  await using client = await openClient(target, flags["code-file"]);
  const batches = client.listBatches(path, {
    recursive: flags.recursive,
    onSkipped: reportUnlisted,
  });
  await printListing(batches, { json: flags.json });
}

/**
 * Says on stderr that the server holds an entry it cannot list (its name is refused, or not valid
 * UTF-8), so that nothing is left out silently; the listing goes on.
 */
export function reportUnlisted(entry: SkippedEntry): void {
  printError(`ferry: not listed: ${entry.name} (${entry.reason})`);
}

/** `ferry ls`: its spec and its runner. */
