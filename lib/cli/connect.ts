/**
 * `ferry connect`: an interactive shell on one session (or a script read from a pipe).
 *
 * The shell's commands call the same functions as the one-shot commands, so `get` in the shell and
 * `ferry get` behave the same. On a terminal it prompts, with line editing and history from
 * `node:readline`; from a pipe it reads line by line with no prompt and stops at the first failing
 * command (like `sftp -b -`).
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { basename, dirname } from "node:path";
import { ConnectionError, describeError, RemoteError, UsageError } from "../errors.ts";
import type { FerryClient } from "../client/client.ts";
import { checkDownloadTargets, getPaths } from "../client/get_paths.ts";
import { planUpload, putPaths } from "../client/put_paths.ts";
import { formatAddress } from "../net/address.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { WireError } from "../protocol/wire_errors.ts";
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import { parseHostPort } from "./common.ts";
import { printListing, reportUnlisted } from "./ls.ts";
import { CODE_ENV, CODE_FILE, HOST_ARG, QUIET } from "./options.ts";
import { printError, printLine, TransferReporter } from "./output.ts";
import { checkRemoteArgument, openClient } from "./remote.ts";

/** What `ferry connect` accepts (the shell's own commands are in {@link SHELL_HELP}). */
export const connectSpec = {
  name: "connect",
  summary: "Open an interactive shell on a server",
  usage: "connect HOST[:PORT] [--code-file PATH]",
  description:
    "Opens a shell with the commands ls, get, put, help and quit. When standard input is not a terminal, reads commands line by line without a prompt, so it can be scripted (like sftp -b -).",
  args: [HOST_ARG],
  options: [CODE_FILE, QUIET],
  minArgs: 1,
  maxArgs: 1,
  examples: [
    ["ferry connect 192.168.1.20", "an interactive session"],
    ["printf 'ls\\nget a.txt\\n' | ferry connect 192.168.1.20", "a scripted session"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;

/** The shell's own help text. */
export const SHELL_HELP = [
  "Commands:",
  "  ls [path]                    list a folder on the server",
  "  get [-f] <remote> [local]    download a file or folder (into a folder, or as a file name)",
  "  put [-f] <local> [remote-dir] upload a file or folder (it lands as <prefix><name>)",
  "  help                         show this help",
  "  quit                         end the session (also: exit, Ctrl-D)",
].join("\n");

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

/** Splits a shell line into words, honouring single and double quotes and backslash escapes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (quote) {
      if (char === quote) quote = undefined;
      else if (char === "\\" && quote === '"' && index + 1 < line.length) current += line[++index];
      else current += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === "\\" && index + 1 < line.length) {
      current += line[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quote) throw new UsageError("Unclosed quote");
  if (inWord) words.push(current);
  return words;
}

function takeForce(words: string[]): boolean {
  const index = words.findIndex((word) => word === "-f" || word === "--force");
  if (index < 0) return false;
  words.splice(index, 1);
  return true;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Runs one shell line against `client`. Returns false when the session should end. */
export async function runShellLine(
  client: FerryClient,
  line: string,
  quiet: boolean,
): Promise<boolean> {
  const words = splitWords(line.trim());
  const command = words.shift();
  if (command === undefined || command.startsWith("#")) return true;
  const reporter = await TransferReporter.create({
    json: false,
    quiet,
    progress: !quiet && Deno.stderr.isTerminal(),
  });
  switch (command) {
    case "quit":
    case "exit":
    case "bye":
      return false;
    case "help":
    case "?":
      printLine(SHELL_HELP);
      printLine(rightsNote(client.welcome.mode));
      return true;
    case "ls": {
      if (words.length > 1) throw new UsageError("Usage: ls [path]");
      await printListing(client.listBatches(words[0] ?? "", { onSkipped: reportUnlisted }));
      return true;
    }
    case "get": {
      const force = takeForce(words);
      if (words.length < 1 || words.length > 2) {
        throw new UsageError("Usage: get [-f] <remote> [local]");
      }
      const remote = words[0]!;
      const local = words[1] ?? ".";
      if (local === "") throw new UsageError("Usage: get [-f] <remote> [local]: local is empty");
      checkRemoteArgument(remote);
      try {
        if (await isDirectory(local)) {
          await checkDownloadTargets([remote], local, force);
          await getPaths(client, [remote], {
            outputDir: local,
            force,
            onEvent: reporter.onEvent,
            onListed: (files, bytes) => reporter.expect(files, bytes),
          });
          reporter.summary();
        } else {
          // A file name: download the remote file under that name, into a folder that exists.
          if (!await isDirectory(dirname(local))) {
            throw new UsageError(`Folder ${dirname(local)} does not exist`);
          }
          const result = await client.download(remote, dirname(local), basename(local), {
            force,
            onStart: (info) =>
              reporter.onEvent({
                event: "start",
                direction: "get",
                name: sanitizeForDisplay(remote),
                ...info,
              }),
            onProgress: (progress) =>
              reporter.onEvent({
                event: "progress",
                direction: "get",
                name: sanitizeForDisplay(remote),
                ...progress,
              }),
          });
          reporter.onEvent({ event: "done", direction: "get", ...result, name: result.name });
        }
      } catch (error) {
        if (error instanceof RemoteError && error.code === WireError.isDir) {
          throw new UsageError(
            `${sanitizeForDisplay(remote)} is a folder: name a local folder to download it into`,
          );
        }
        throw error;
      } finally {
        reporter.abort();
      }
      return true;
    }
    case "put": {
      const force = takeForce(words);
      if (words.length < 1 || words.length > 2) {
        throw new UsageError("Usage: put [-f] <local> [remote-dir]");
      }
      if (words[0] === "") {
        throw new UsageError("Usage: put [-f] <local> [remote-dir]: local is empty");
      }
      const plan = await planUpload([words[0]!]);
      try {
        const files = plan.items.filter((item) => item.kind === "file");
        reporter.expect(files.length, files.reduce((sum, item) => sum + item.size, 0));
        await putPaths(client, plan, {
          remoteDir: words[1] ?? "",
          force,
          onEvent: reporter.onEvent,
        });
        reporter.summary();
      } finally {
        reporter.abort();
      }
      return true;
    }
    default:
      throw new UsageError(
        `Unknown command "${sanitizeForDisplay(command)}": type help for the list`,
      );
  }
}

/** Runs `ferry connect`. Permissions: net to the server; read on the code file; read/write where you get or put. */
export async function runConnect(
  { positionals, flags }: ParsedCommand<typeof connectSpec>,
): Promise<void> {
  const address = parseHostPort(positionals[0]!);
  const quiet = flags.quiet;
  await using client = await openClient(address, flags["code-file"]);
  const interactive = Deno.stdin.isTerminal();
  if (interactive) {
    printError(
      `Connected to ${
        formatAddress(address.hostname, address.port)
      } (${client.welcome.mode}). Type help for commands.`,
    );
  }
  const lines = createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
    historySize: 500,
  });
  if (interactive) {
    lines.setPrompt("ferry> ");
    lines.prompt();
  }
  try {
    for await (const line of lines) {
      try {
        if (!await runShellLine(client, line, quiet)) break;
      } catch (error) {
        if (!interactive) throw error;
        printError(`error: ${describeError(error)}`);
        if (error instanceof ConnectionError) throw error;
      }
      if (interactive) lines.prompt();
    }
  } finally {
    lines.close();
  }
}

/** `ferry connect`: its spec and its runner. */
export const connectCommand: Command<typeof connectSpec> = { spec: connectSpec, run: runConnect };
