/**
 * `ferry ls`, `ferry get` and `ferry put`: the one-shot client commands.
 *
 * @module
 */
import { FerryClient } from "../client.ts";
import type { ListEntry } from "../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay } from "../remote_path.ts";
import { checkDownloadTargets, getPaths, planUpload, putPaths } from "../transfers.ts";
import type { ParsedCommand } from "./args.ts";
import { clientSecret, type HostPort, parseHostPort } from "./common.ts";
import { formatBytes, type OutputOptions, printLine, TransferReporter } from "./output.ts";

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

/** Entries as `ferry ls --json` prints them. */
export function entriesAsJson(entries: readonly ListEntry[]): string {
  return JSON.stringify(entries.map((entry) => ({
    name: entry.name,
    type: entry.type,
    size: entry.size,
    mtime: new Date(entry.mtime).toISOString(),
  })));
}

/** Runs `ferry ls`. Permissions: net to the server; read on the code file. */
export async function runLs({ positionals, flags }: ParsedCommand): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const path = positionals[1] ?? "";
  parseRemotePath(path); // refuse a bad path before connecting
  await using client = await openClient(address, flags["code-file"] as string | undefined);
  const entries = await client.list(path, { recursive: Boolean(flags.recursive) });
  if (flags.json) printLine(entriesAsJson(entries));
  else for (const entry of entries) printLine(formatEntry(entry));
}

/** Runs `ferry get`. Permissions: net to the server; read on the code file; read and write on the output folder. */
export async function runGet({ positionals, flags }: ParsedCommand): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const remotePaths = positionals.slice(1);
  const outputDir = (flags.output as string | undefined) ?? ".";
  const force = Boolean(flags.force);
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
  parseRemotePath(remoteDir); // refuse a bad --to before reading or sending anything
  const plan = await planUpload(positionals.slice(1));
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
