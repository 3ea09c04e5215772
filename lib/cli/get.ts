/**
 * `ferry get`: download files or folders, after checking every argument before connecting.
 *
 * @module
 */
import { checkDownloadTargets, getPaths } from "../client/get_paths.ts";
import { IncompleteError, UsageError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import { parseHostPort } from "./common.ts";
import {
  CODE_ENV,
  CODE_FILE,
  FORCE_LOCAL,
  HOST_ARG,
  JSON_OPTION,
  QUIET,
  VERIFY,
} from "./options.ts";
import { TransferReporter } from "./output.ts";
import { checkRemoteArgument, openClient, outputOptions, transferring } from "./remote.ts";

/** What `ferry get` accepts. */
export const getSpec = {
  name: "get",
  summary: "Download files or folders",
  usage: "get HOST[:PORT] REMOTE_PATH... [-o DIR] [--force] [--verify] [--json] [--quiet]",
  description:
    "Downloads files, or folders with everything in them. Each file takes its name only once every byte came through the authenticated channel unchanged at its source (with --verify, also once its SHA-256 matches the server's); a cut download resumes where it stopped when you run the same command again. Existing files are kept unless --force.",
  args: [HOST_ARG, { name: "REMOTE_PATH...", description: "Files or folders on the server" }],
  options: [
    {
      name: "output",
      short: "o",
      type: "string",
      value: "DIR",
      description: "Folder to download into (made, with its parents, if missing)",
      default: ".",
    },
    FORCE_LOCAL,
    VERIFY,
    CODE_FILE,
    { ...JSON_OPTION, description: "Print one JSON object per line for each event" },
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry get 192.168.1.20 report.pdf", "download one file into the current folder"],
    ["ferry get 192.168.1.20 photos notes.txt -o ~/Downloads", "a folder and a file"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;

/** Runs `ferry get`. Permissions: net to the server; read on the code file; read and write on the output folder. */
export async function runGet(
  { positionals, flags }: ParsedCommand<typeof getSpec>,
): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const remotePaths = positionals.slice(1);
  const outputDir = flags.output ?? ".";
  if (outputDir === "") throw new UsageError("Option --output needs a folder (DIR)");
  const force = flags.force;
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
  const reporter = await TransferReporter.create({
    ...outputOptions(flags),
    many: remotePaths.length > 1,
  });
  await using client = await openClient(address, flags["code-file"]);
  try {
    await transferring(() =>
      getPaths(client, remotePaths, {
        outputDir,
        force,
        verify: flags.verify,
        onEvent: reporter.onEvent,
        onListed: (files, bytes) => reporter.expect(files, bytes),
      })
    );
  } catch (error) {
    // Some files were not moved (each already named): the rest did, and the summary says so.
    if (error instanceof IncompleteError) reporter.summary();
    throw error;
  } finally {
    reporter.abort();
  }
  reporter.summary();
}

/** `ferry get`: its spec and its runner. */
export const getCommand: Command<typeof getSpec> = { spec: getSpec, run: runGet };
