/**
 * `ferry ls`, `ferry get` and `ferry put`: the one-shot client commands.
 *
 * @module
 */
import { FerryClient } from "../client/client.ts";
import { PathError, UsageError } from "../errors.ts";
import type { ListEntry } from "../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay } from "../protocol/remote_path.ts";
import { checkDownloadTargets, getPaths, planUpload, putPaths } from "../client/transfers.ts";
import type { ParsedCommand } from "./args.ts";
import { clientSecret, type HostPort, parseHostPort } from "./common.ts";
import {
  formatBytes,
  type OutputOptions,
  printLine,
  printText,
  TransferReporter,
} from "./output.ts";

/** Connects to the server named by the first positional, with the code from the usual places. */
export async function openClient(
  address: HostPort,
  codeFile: string | undefined,
): Promise<FerryClient> {
  const secret = await clientSecret(codeFile);
  return await FerryClient.connect({ ...address, secret });
}

/** Output options from the common flags. */
export function outputOptions(flags: ParsedCommand["flags"]): OutputOptions {
  return {
    json: Boolean(flags.json),
    quiet: Boolean(flags.quiet),
    progress: Deno.stderr.isTerminal(),
  };
}

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
 * line per entry, or with `json` one JSON array on one line (`[]` when empty).
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
  for await (const batch of batches) {
    if (batch.length === 0) continue;
    printText((opened ? "," : "[") + batch.map(entryAsJson).join(","));
    opened = true;
  }
  printLine(opened ? "]" : "[]");
}

/**
 * A remote path typed on the command line, checked before connecting. A refused one (`../x`,
 * `/etc`) is a usage error (exit 2): the user's own argument is wrong, nothing was asked of the
 * server. The message names the option when `what` is one. Returns its components.
 */
export function checkRemoteArgument(path: string, what?: string): string[] {
  try {
    return parseRemotePath(path);
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(what === undefined ? error.message : `Invalid ${what}: ${error.message}`, {
      cause: error,
    });
  }
}

/** Runs `ferry ls`. Permissions: net to the server; read on the code file. */
export async function runLs({ positionals, flags }: ParsedCommand): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const path = positionals[1] ?? "";
  checkRemoteArgument(path); // refuse a bad path before connecting
  await using client = await openClient(address, flags["code-file"] as string | undefined);
  const batches = client.listBatches(path, { recursive: Boolean(flags.recursive) });
  await printListing(batches, { json: Boolean(flags.json) });
}

/** Runs `ferry get`. Permissions: net to the server; read on the code file; read and write on the output folder. */
export async function runGet({ positionals, flags }: ParsedCommand): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const remotePaths = positionals.slice(1);
  const outputDir = (flags.output as string | undefined) ?? ".";
  if (outputDir === "") throw new UsageError("Option --output needs a folder (DIR)");
  const force = Boolean(flags.force);
  // Two paths that land under one name (`a.txt a.txt`, `a.txt docs/a.txt`) would clash halfway.
  const landing = new Map<string, string>();
  for (const remotePath of remotePaths) {
    const name = checkRemoteArgument(remotePath).at(-1);
    if (name === undefined) continue; // the served folder itself: refused just below
    const earlier = landing.get(name);
    if (earlier === remotePath) {
      throw new UsageError(`${JSON.stringify(sanitizeForDisplay(name))} is named twice`);
    }
    if (earlier !== undefined) {
      throw new UsageError(
        `${JSON.stringify(sanitizeForDisplay(earlier))} and ${
          JSON.stringify(sanitizeForDisplay(remotePath))
        } would both be saved as ${sanitizeForDisplay(name)}: download them in separate commands`,
      );
    }
    landing.set(name, remotePath);
  }
  await checkDownloadTargets(remotePaths, outputDir, force);
  const reporter = await TransferReporter.create(outputOptions(flags));
  await using client = await openClient(address, flags["code-file"] as string | undefined);
  try {
    await getPaths(client, remotePaths, { outputDir, force, onEvent: reporter.onEvent });
  } finally {
    reporter.abort();
  }
  reporter.summary();
}

/** Runs `ferry put`. Permissions: net to the server; read on the code file and the local paths. */
export async function runPut({ positionals, flags }: ParsedCommand): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const remoteDir = (flags.to as string | undefined) ?? "";
  checkRemoteArgument(remoteDir, "--to"); // refuse a bad --to before reading or sending anything
  const localPaths = positionals.slice(1);
  if (localPaths.includes("")) {
    throw new UsageError("Name a local file or folder, not an empty one");
  }
  const plan = await planUpload(localPaths);
  // Two arguments with one name (`a.txt a.txt`, `a.txt ../b/a.txt`) would clash halfway.
  const sources = new Map<string, string>();
  for (const item of plan) {
    if (item.name.includes("/")) continue; // inside a folder: names are unique there
    const earlier = sources.get(item.name);
    if (earlier === item.localPath) throw new UsageError(`${earlier} is named twice`);
    if (earlier !== undefined) {
      throw new UsageError(
        `${earlier} and ${item.localPath} would both be uploaded as ${
          sanitizeForDisplay(item.name)
        }: upload them in separate commands`,
      );
    }
    sources.set(item.name, item.localPath);
  }
  const reporter = await TransferReporter.create(outputOptions(flags));
  await using client = await openClient(address, flags["code-file"] as string | undefined);
  try {
    await putPaths(client, plan, {
      remoteDir,
      force: Boolean(flags.force),
      onEvent: reporter.onEvent,
    });
  } finally {
    reporter.abort();
  }
  reporter.summary();
}
