/**
 * `ferry get`: download files or folders, after checking every argument before connecting.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { checkDownloadTargets, getPaths, listShortly } from "../client/get_paths.ts";
import { expandRemoteGlobs, isRemoteGlob } from "../client/remote_glob.ts";
import { IncompleteError, NotFoundError, PathError, UsageError } from "../errors.ts";
import { sanitizeForDisplay, validateLocalName } from "../protocol/remote_path.ts";
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import {
  CODE_ENV,
  CODE_FILE,
  FORCE_LOCAL,
  HOST_ARG,
  JSON_OPTION,
  QUIET,
  RELAY_CLIENT,
  VERIFY,
} from "./options.ts";
import { printError, TransferReporter } from "./output.ts";
import { checkRemoteArgument, openClient, outputOptions, transferring } from "./remote.ts";
import { parseServerTarget } from "./target.ts";

/** What `ferry get` accepts. */
export const getSpec = {
  name: "get",
  summary: "Download files or folders",
  usage:
    "get HOST[:PORT]|@ REMOTE_PATH... [-o DIR | --as LOCAL_PATH] [-N] [--force] [--verify] [--relay HOST[:PORT]] [--json] [--quiet]",
  description:
    "Downloads files, or folders with everything in them. Each file takes its name only once every byte came through the authenticated channel unchanged at its source (with --verify, also once its SHA-256 matches the server's); a cut download resumes where it stopped when you run the same command again. Existing files are kept unless --force. " +
    "A remote path whose last component has *, ? or [...] (quote it from your shell) downloads every file and folder of that server folder whose name matches, as a shell would (* does not match a leading dot); a pattern that matches nothing is named and the command fails once the other paths are downloaded. Wildcards are refused in the folders above the last component. There is no escape character: --no-glob takes every path literally, to reach a name that holds *, ? or [. " +
    "Every path after HOST is a remote path, never a local target as in scp: to save one file (or folder) under another local name, give --as LOCAL_PATH; to choose the folder, -o DIR.",
  args: [HOST_ARG, {
    name: "REMOTE_PATH...",
    description: "Files or folders on the server, or patterns ('photos/*.jpg')",
  }],
  options: [
    {
      name: "output",
      short: "o",
      type: "string",
      value: "DIR",
      description: "Folder to download into (made, with its parents, if missing)",
      default: ".",
    },
    {
      name: "as",
      type: "string",
      value: "LOCAL_PATH",
      description: "Save the one remote file or folder as LOCAL_PATH (not with -o)",
    },
    {
      name: "no-glob",
      short: "N",
      type: "boolean",
      description: "Take remote paths literally: *, ? and [ are ordinary characters",
    },
    FORCE_LOCAL,
    VERIFY,
    CODE_FILE,
    RELAY_CLIENT,
    { ...JSON_OPTION, description: "Print one JSON object per line for each event" },
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry get 192.168.1.20 report.pdf", "download one file into the current folder"],
    ["ferry get @ report.pdf", "from the server of this code, found on the local network"],
    [
      "ferry get @ report.pdf --relay relay.example.org",
      "the same, through a relay when the server is not on this network",
    ],
    ["ferry get 192.168.1.20 photos notes.txt -o ~/Downloads", "a folder and a file"],
    ["ferry get 192.168.1.20 'photos/*.jpg'", "every .jpg file in the server's photos folder"],
    ["ferry get 192.168.1.20 report.pdf --as old-report.pdf", "save under another name"],
    ["ferry get 192.168.1.20 --no-glob 'what?.txt'", "a file whose name holds a wildcard"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;

/** Runs `ferry get`. Permissions: net to the server; read on the code file; read and write on the output folder. */
export async function runGet(
  { positionals, flags }: ParsedCommand<typeof getSpec>,
): Promise<void> {
  const target = parseServerTarget(
    positionals[0]!,
    flags.relay,
    flags.quiet ? undefined : printError,
  );
  const remotePaths = positionals.slice(1);
  const { outputDir, localName } = localTarget(flags.output, flags.as, remotePaths);
  const force = flags.force;
  refuseLocalLookingTarget(remotePaths);
  // Patterns are known before connecting (a wildcard above the last component is refused here);
  // what they match is checked like the other paths once they are listed.
  const globs = flags["no-glob"] ? [] : remotePaths.filter((path) => {
    checkRemoteArgument(path);
    return isRemoteGlob(path);
  });
  if (localName !== undefined && globs.length > 0) {
    throw new UsageError(
      "--as names one file or folder: give a remote path without wildcards (or add --no-glob)",
    );
  }
  const literal = remotePaths.filter((path) => !globs.includes(path));
  checkLandingNames(literal);
  await checkDownloadTargets(literal, outputDir, force, localName);
  const reporter = await TransferReporter.create({
    ...outputOptions(flags),
    many: remotePaths.length > 1 || globs.length > 0,
  });
  await using client = await openClient(target, flags["code-file"]);
  let paths = remotePaths;
  let unmatched: { name: string; reason: string }[] = [];
  if (globs.length > 0) {
    ({ paths, unmatched } = await expandRemoteGlobs(client, remotePaths));
    checkLandingNames(paths);
    await checkDownloadTargets(paths, outputDir, force);
    for (const { name, reason } of unmatched) {
      reporter.onEvent({ event: "not-transferred", direction: "get", name, reason });
    }
  }
  const nothingMatched = unmatched.length > 0 &&
    new NotFoundError(
      `Nothing on the server matches ${listShortly(unmatched)}`.replace(
        / \(no such file or folder\)/g,
        "",
      ),
    );
  try {
    if (paths.length > 0) {
      await transferring(() =>
        getPaths(client, paths, {
          outputDir,
          force,
          verify: flags.verify,
          onEvent: reporter.onEvent,
          onListed: (files, bytes) => reporter.expect(files, bytes),
          localName,
        })
      );
    }
  } catch (error) {
    // Some files were not moved (each already named): the rest did, and the summary says so.
    if (error instanceof IncompleteError) reporter.summary();
    if (!nothingMatched || !(error instanceof IncompleteError)) throw error;
    throw new IncompleteError(`${nothingMatched.message}; ${error.message}`);
  } finally {
    reporter.abort();
  }
  reporter.summary();
  if (nothingMatched) throw nothingMatched;
}

/**
 * The local folder and, with `--as`, the local name of a download. `--as LOCAL_PATH` saves the
 * only remote path as LOCAL_PATH, its folder made if missing (checked like `-o`); it cannot
 * be given with `-o`, and it cannot name a folder to download into.
 */
function localTarget(
  output: string | undefined,
  as: string | undefined,
  remotePaths: readonly string[],
): { outputDir: string; localName?: string } {
  if (output === "") throw new UsageError("Option --output needs a folder (DIR)");
  if (as === undefined) return { outputDir: output ?? "." };
  if (output !== undefined) {
    throw new UsageError("Choose one of --output and --as (--as may name a folder: --as DIR/NAME)");
  }
  if (remotePaths.length !== 1) {
    throw new UsageError(
      `--as names the local copy of one remote path, not ${remotePaths.length}: ` +
        "use -o DIR to download several",
    );
  }
  const name = basename(as);
  if (as === "" || as.endsWith("/") || name === "." || name === "..") {
    throw new UsageError(
      `--as needs the local file's name, not a folder (${JSON.stringify(as)}): ` +
        "use -o DIR to download into a folder",
    );
  }
  try {
    validateLocalName(name);
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(`Invalid --as: ${error.message}`, { cause: error });
  }
  let isFolder = false;
  try {
    isFolder = Deno.statSync(as).isDirectory;
  } catch {
    // Missing (the usual case) or not readable: the download itself says what is wrong.
  }
  if (isFolder) {
    throw new UsageError(
      `--as ${as}: that is a folder; to download into it use -o ${as}`,
    );
  }
  return { outputDir: dirname(as), localName: name };
}

/**
 * Refuses, with a hint, the scp habit of naming a local target last (`get HOST a.txt ./b.txt`):
 * every path after HOST is remote, so a last one of several that starts with `./`, `../`, `/` or
 * `~` (or is `.` or `..`) is surely meant as a local place.
 */
function refuseLocalLookingTarget(remotePaths: readonly string[]): void {
  const last = remotePaths.at(-1);
  if (remotePaths.length < 2 || last === undefined) return;
  if (!/^(\.{1,2}(\/|$)|\/|~)/.test(last)) return;
  throw new UsageError(
    `${JSON.stringify(sanitizeForDisplay(last))} looks like a local path, but every path after ` +
      "HOST is one on the server: to save one file under another name use --as LOCAL_PATH, " +
      "to download into a folder use -o DIR",
  );
}

/**
 * Refuses two paths that land under one name (`a.txt a.txt`, `a.txt docs/a.txt`): they would
 * clash halfway through.
 */
function checkLandingNames(remotePaths: readonly string[]): void {
  const landing = new Map<string, string>();
  for (const remotePath of remotePaths) {
    const name = checkRemoteArgument(remotePath).at(-1);
    if (name === undefined) continue; // the served folder itself: refused by checkDownloadTargets
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
}

/** `ferry get`: its spec and its runner. */
export const getCommand: Command<typeof getSpec> = { spec: getSpec, run: runGet };
