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
import type { ParsedCommand } from "./args.ts";
import type { getSpec } from "./specs/get.ts";
import { printError, TransferReporter } from "./output.ts";
import { checkRemoteArgument, openClient, outputOptions, transferring } from "./remote.ts";
import { parseServerTarget } from "./target.ts";

/**
 * Runs `ferry get`. Permissions: net to the server; read on the code file; read and write on the
 * output folder.
 */
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
