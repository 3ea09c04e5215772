/**
 * The commands of the `ferry connect` shell, one table entry each: what they take, how Tab
 * completes their arguments, and what they run. `get` and `put` call the same functions as
 * `ferry get` and `ferry put` (remote globs included), with remote paths taken from the shell's
 * current remote folder and local ones from the current local folder (`lcd`).
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { checkDownloadTargets, getPaths } from "../../client/get_paths.ts";
import { planUpload, putPaths } from "../../client/put_paths.ts";
import { hasWildcard, matchRemoteGlob } from "../../client/remote_glob.ts";
import type { TransferEvent } from "../../client/events.ts";
import {
  IncompleteError,
  NotFoundError,
  PathError,
  RemoteError,
  UsageError,
} from "../../errors.ts";
import { sanitizeForDisplay, validateLocalName } from "../../protocol/remote_path.ts";
import { WireError } from "../../protocol/wire_errors.ts";
import { suggest } from "../args.ts";
import { printListing, reportUnlisted } from "../ls.ts";
import { printLine, TransferReporter } from "../output.ts";
import { transferring } from "../remote.ts";
import { displayRemoteFolder, resolveRemotePath, type ShellSession } from "./session.ts";
import { splitWords } from "./words.ts";

/** What Tab completes for an argument: a path on the server or a local one, any or folders only. */
export type ArgumentKind = "remote" | "remote-folder" | "local" | "local-folder";

/** What one shell command needs to run. */
export interface ShellContext {
  session: ShellSession;
  /** `--quiet`: print errors only. */
  quiet: boolean;
  /** Aborted when the user presses Ctrl-C: a transfer stops at its next event. */
  signal?: AbortSignal;
}

/** One command of the shell. */
export interface ShellCommand {
  /** Its name, then other names that run it. */
  names: readonly string[];
  /** Its arguments, as the help shows them. */
  usage: string;
  /** What it does, in a few words. */
  summary: string;
  /** Its flags, each with the names it goes by. */
  flags?: readonly (readonly string[])[];
  /** What each argument (flags aside) is, for Tab completion. */
  arguments?: readonly ArgumentKind[];
  /** Whether it moves files (Ctrl-C during it keeps a partial file). */
  transfers?: boolean;
  /** Runs it with its words (the command's name taken off); false ends the session. */
  run(context: ShellContext, words: string[]): Promise<boolean | void>;
}

const FORCE = ["-f", "--force"] as const;
const NO_GLOB = ["-N", "--no-glob"] as const;

/** Every command of the shell, in the order the help lists them. */
export const SHELL_COMMANDS: readonly ShellCommand[] = [
  {
    names: ["ls"],
    usage: "ls [path]",
    summary: "list a remote folder (default: this one)",
    arguments: ["remote"],
    async run({ session, signal }, words) {
      const [path] = expectArguments(this, words, 0, 1);
      const remote = session.remotePath(path ?? "");
      await session.use((client) =>
        printListing(
          untilAborted(client.listBatches(remote, { onSkipped: reportUnlisted }), signal),
        )
      );
    },
  },
  {
    names: ["cd"],
    usage: "cd [folder]",
    summary: "go to a remote folder (default: the top, /)",
    arguments: ["remote-folder"],
    async run({ session }, words) {
      const [folder] = expectArguments(this, words, 0, 1);
      try {
        await session.changeFolder(folder ?? "/");
      } catch (error) {
        if (!(error instanceof RemoteError && error.code === WireError.notFound)) throw error;
        const target = displayRemoteFolder(resolveRemotePath(session.cwd, folder ?? "/"));
        throw new NotFoundError(`No folder ${target} on the server`, { cause: error });
      }
    },
  },
  {
    names: ["pwd"],
    usage: "pwd",
    summary: "show the current remote folder",
    run({ session }, words) {
      expectArguments(this, words, 0, 0);
      printLine(displayRemoteFolder(session.cwd));
      return Promise.resolve();
    },
  },
  {
    names: ["get"],
    usage: "get [-f] [-N] <remote> [local]",
    summary: "download a file, folder or pattern ('*.jpg')",
    flags: [FORCE, NO_GLOB],
    arguments: ["remote", "local"],
    transfers: true,
    run: runGet,
  },
  {
    names: ["put"],
    usage: "put [-f] <local> [remote-dir]",
    summary: "upload a file or folder (as <prefix><name>)",
    flags: [FORCE],
    arguments: ["local", "remote-folder"],
    transfers: true,
    run: runPut,
  },
  {
    names: ["lcd"],
    usage: "lcd <folder>",
    summary: "change the local folder of get and put",
    arguments: ["local-folder"],
    async run(_context, words) {
      const [folder] = expectArguments(this, words, 1, 1) as [string];
      await changeLocalFolder(folder);
    },
  },
  {
    names: ["lpwd"],
    usage: "lpwd",
    summary: "show the local folder",
    run(_context, words) {
      expectArguments(this, words, 0, 0);
      printLine(Deno.cwd());
      return Promise.resolve();
    },
  },
  {
    names: ["help", "?"],
    usage: "help",
    summary: "show this help",
    run({ session }) {
      printLine(SHELL_HELP);
      printLine(rightsNote(session.mode));
      return Promise.resolve();
    },
  },
  {
    names: ["quit", "exit", "bye"],
    usage: "quit",
    summary: "end the session (also: exit, Ctrl-D)",
    run: () => Promise.resolve(false),
  },
];

/** The command named `name` (by any of its names), if there is one. */
export function findShellCommand(name: string): ShellCommand | undefined {
  return SHELL_COMMANDS.find((command) => command.names.includes(name));
}

/** What the server said this session may do (its mode and the code's rights), for `help`. */
export function rightsNote(mode: string): string {
  switch (mode) {
    case "read-write":
      return "Here you may list, download and upload.";
    case "read-only":
      return "Here you may list and download; uploads (put) are refused (read-only).";
    case "upload-only":
      return "Here you may upload only (a drop box); ls and get are refused (upload-only).";
    case "none":
      return "Here you may neither list, download nor upload: ask the server's owner.";
    default:
      return `The server says this session is ${sanitizeForDisplay(mode)}.`;
  }
}

/** The shell's own help text: its commands in aligned columns, then how paths and keys work. */
export const SHELL_HELP: string = (() => {
  const width = Math.max(...SHELL_COMMANDS.map((command) => command.usage.length));
  return [
    "Commands:",
    ...SHELL_COMMANDS.map((command) => `  ${command.usage.padEnd(width)}  ${command.summary}`),
    "",
    "Remote paths are relative to the current remote folder (/ is the top of the",
    "served folder); local ones to the local folder. get saves into [local] if it is",
    'a folder, else under that name. Write a name with spaces "my file.txt" or',
    "my\\ file.txt. Tab completes commands and paths. Ctrl-C stops a transfer (the",
    "same get resumes it) and, at the prompt, clears the line.",
  ].join("\n");
})();

/**
 * Runs one shell line. Returns false when the session should end (`quit`). Errors are thrown:
 * the caller prints them, or stops a script.
 */
export async function runShellLine(context: ShellContext, line: string): Promise<boolean> {
  const words = splitWords(line.trim());
  const name = words.shift();
  if (name === undefined || name.startsWith("#")) return true;
  const command = findShellCommand(name);
  if (!command) {
    const guess = suggest(name, SHELL_COMMANDS.flatMap((each) => each.names));
    throw new UsageError(
      `Unknown command "${sanitizeForDisplay(name)}"` +
        (guess ? `: did you mean "${guess}"?` : "") + ": type help for the list",
    );
  }
  return await command.run(context, words) !== false;
}

/**
 * The arguments of `command` in `words`, once its flags are taken out (see {@link takeFlags}):
 * between `min` and `max` of them, else a usage error with its usage.
 */
function expectArguments(
  command: ShellCommand,
  words: readonly string[],
  min: number,
  max: number,
): (string | undefined)[] {
  const unknown = words.find((word) => word.startsWith("-") && word !== "-");
  if (unknown !== undefined) {
    throw new UsageError(
      `Unknown option ${JSON.stringify(sanitizeForDisplay(unknown))} for ${command.names[0]}` +
        `: usage: ${command.usage} (a name that starts with - is written ./${
          sanitizeForDisplay(unknown)
        })`,
    );
  }
  if (words.length < min || words.length > max) {
    throw new UsageError(`Usage: ${command.usage}`);
  }
  return [...words];
}

/** Takes `flags` (each by any of its names) out of `words`; says which were there. */
function takeFlags(words: string[], ...flags: readonly (readonly string[])[]): boolean[] {
  return flags.map((names) => {
    let found = false;
    for (let index = words.findIndex((word) => names.includes(word)); index >= 0;) {
      words.splice(index, 1);
      found = true;
      index = words.findIndex((word) => names.includes(word));
    }
    return found;
  });
}

/**
 * A transfer reporter for one command, which stops the transfer (by throwing the signal's
 * reason from its next event) once `signal` is aborted, and clears its bar at once. A file that
 * landed all the same (Ctrl-C as its last bytes came) is still said to be done.
 */
async function reporterFor(
  { quiet, signal }: ShellContext,
  many: boolean,
): Promise<{ reporter: TransferReporter; onEvent: (event: TransferEvent) => void }> {
  const reporter = await TransferReporter.create({
    json: false,
    quiet,
    progress: !quiet && Deno.stderr.isTerminal(),
    many,
  });
  signal?.addEventListener("abort", () => reporter.abort(), { once: true });
  return {
    reporter,
    onEvent: (event) => {
      if (event.event !== "done") signal?.throwIfAborted();
      reporter.onEvent(event);
    },
  };
}

/** `get [-f] [-N] <remote> [local]`. */
async function runGet(this: ShellCommand, context: ShellContext, words: string[]): Promise<void> {
  const [force, literal] = takeFlags(words, FORCE, NO_GLOB) as [boolean, boolean];
  const [typed, local = "."] = expectArguments(this, words, 1, 2) as [string, string?];
  if (typed === "") throw new UsageError(`Usage: ${this.usage}: remote is empty`);
  if (local === "") throw new UsageError(`Usage: ${this.usage}: local is empty`);
  const { session } = context;
  const slash = typed.lastIndexOf("/");
  const pattern = literal || !hasWildcard(typed.slice(slash + 1))
    ? undefined
    : typed.slice(slash + 1);
  if (!literal && typed.slice(0, slash + 1).split("/").some(hasWildcard)) {
    throw new UsageError(
      `Only the last component of a remote path may have wildcards (*, ?, [...]): ${
        JSON.stringify(sanitizeForDisplay(typed))
      }; use get -N to take it literally`,
    );
  }
  // The pattern's folder, or the remote path itself; both checked before anything is asked.
  const folder = resolveRemotePath(session.cwd, pattern ? typed.slice(0, slash + 1) : typed);
  if (pattern) resolveRemotePath([], pattern);
  const target = await localTarget(local, pattern !== undefined);
  const { reporter, onEvent } = await reporterFor(context, pattern !== undefined);
  try {
    await session.use(async (client) => {
      let paths = [folder.join("/")];
      if (pattern) {
        const found = await matchRemoteGlob(client, folder, pattern);
        if ("reason" in found) {
          const shown = sanitizeForDisplay(typed);
          throw new NotFoundError(
            found.reason === "no such file or folder"
              ? `Nothing on the server matches ${shown}`
              : `Nothing on the server matches ${shown}: ${found.reason}`,
          );
        }
        paths = found.paths;
      }
      await checkDownloadTargets(paths, target.outputDir, force, target.localName);
      await transferring(() =>
        getPaths(client, paths, {
          ...target,
          force,
          onEvent,
          onListed: (files, bytes) => reporter.expect(files, bytes),
        })
      );
    });
  } catch (error) {
    if (error instanceof IncompleteError) reporter.summary(); // the rest landed: say so
    throw error;
  } finally {
    reporter.abort();
  }
  reporter.summary();
}

/**
 * Where `get` saves: into `local` when it is a folder; else as the file (or folder) `local`,
 * whose folder must exist. A pattern needs a folder.
 */
async function localTarget(
  local: string,
  pattern: boolean,
): Promise<{ outputDir: string; localName?: string }> {
  if (await isDirectory(local)) return { outputDir: local };
  if (pattern) {
    throw new UsageError(`A pattern downloads into a folder: ${local} is not a local folder`);
  }
  if (local.endsWith("/")) throw new UsageError(`Local folder ${local} does not exist`);
  const folder = dirname(local);
  if (!await isDirectory(folder)) throw new UsageError(`Folder ${folder} does not exist`);
  const name = basename(local);
  try {
    validateLocalName(name);
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(`Invalid local name: ${error.message}`, { cause: error });
  }
  return { outputDir: folder, localName: name };
}

/** `put [-f] <local> [remote-dir]`. */
async function runPut(this: ShellCommand, context: ShellContext, words: string[]): Promise<void> {
  const [force] = takeFlags(words, FORCE) as [boolean];
  const [local, remote] = expectArguments(this, words, 1, 2) as [string, string?];
  if (local === "") throw new UsageError(`Usage: ${this.usage}: local is empty`);
  const { session } = context;
  const remoteDir = session.remotePath(remote ?? "");
  const plan = await planUpload([local]);
  const { reporter, onEvent } = await reporterFor(context, false);
  try {
    const files = plan.items.filter((item) => item.kind === "file");
    reporter.expect(files.length, files.reduce((sum, item) => sum + item.size, 0));
    await session.use((client) =>
      transferring(() => putPaths(client, plan, { remoteDir, force, onEvent }))
    );
  } catch (error) {
    if (error instanceof IncompleteError) reporter.summary();
    throw error;
  } finally {
    reporter.abort();
    session.forgetListings(); // what the server holds has changed
  }
  reporter.summary();
}

/** `lcd`: makes `folder` the process's current folder, with a clear message when it is none. */
async function changeLocalFolder(folder: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(folder);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const hint = folder.startsWith("~") ? " (~ is not expanded here: give the whole path)" : "";
    throw new UsageError(`No local folder ${folder}${hint}`);
  }
  if (!info.isDirectory) throw new UsageError(`${folder} is not a local folder`);
  Deno.chdir(folder);
}

/** Yields what `items` yields until `signal` is aborted, then throws its reason. */
async function* untilAborted<T>(items: AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
  for await (const item of items) {
    signal?.throwIfAborted();
    yield item;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
