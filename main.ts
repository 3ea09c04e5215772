#!/usr/bin/env -S deno run -q --v8-flags=--max-semi-space-size=1,--expose-gc --allow-net --allow-read=. --allow-write=. --allow-env=FERRY_CODE --allow-sys=networkInterfaces
/**
 * ferry's command line: parse, dispatch, and turn errors into exit codes. The only module that
 * exits the process.
 *
 * @module
 */
import {
  type CommandSpec,
  CommandUsageError,
  formatHelp,
  formatUsage,
  GLOBAL_OPTIONS,
  parseCommand,
  refuseSecretArguments,
  suggest,
  suggestOption,
} from "./lib/cli/args.ts";
import { COMMANDS, findCommand } from "./lib/cli/commands.ts";
import { printError, printLine } from "./lib/cli/output.ts";
import {
  describeError,
  ExitCode,
  exitCodeFor,
  FerryError,
  ServerInterruptedError,
  UsageError,
} from "./lib/errors.ts";
import { sanitizeForDisplay } from "./lib/protocol/remote_path.ts";
import { VERSION } from "./lib/version.ts";

/** The top-level help. */
export function mainHelp(): string {
  const specs = COMMANDS.map((command) => command.spec);
  const width = Math.max(...specs.map((spec) => spec.name.length));
  return [
    `ferry ${VERSION}: move files between machines, end-to-end encrypted with a shared code.`,
    "",
    "Usage: ferry <command> [options]",
    "",
    "Commands:",
    ...specs.map((spec) => `  ${spec.name.padEnd(width)}  ${spec.summary}`),
    "",
    "Options:",
    "  -h, --help     Show help (also: ferry <command> --help)",
    "  -V, --version  Print the version",
    "",
    "Exit status: 0 success, 1 failure, 2 usage error, 3 wrong connection code, 130 interrupted.",
    "",
    "Examples:",
    "  ferry serve                       # share this folder (creates .connection_code)",
    "  ferry get 192.168.1.20 notes.txt  # on another machine, with the same code",
    "  ferry get @ notes.txt             # the same, found on the local network by the code alone",
  ].join("\n");
}

/** Runs the CLI with `args` and returns the exit status; never exits by itself. */
export async function main(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  let spec: CommandSpec | undefined;
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      const topic = name === "help" && rest[0] !== undefined && rest[0] !== "-h" &&
          rest[0] !== "--help"
        ? findCommand(rest[0]) ?? unknownCommand(rest[0])
        : undefined;
      printLine(topic ? formatHelp(topic.spec) : mainHelp());
      return ExitCode.ok;
    }
    if (name === "--version" || name === "-V" || name === "version") {
      printLine(`ferry ${VERSION}`);
      return ExitCode.ok;
    }
    const command = findCommand(name) ?? unknownCommand(name);
    spec = command.spec;
    const parsed = parseCommand(command.spec, rest);
    if (parsed.flags.help) {
      printLine(formatHelp(command.spec));
      return ExitCode.ok;
    }
    await command.run(parsed);
    return ExitCode.ok;
  } catch (error) {
    // The reader of our output went away (`ferry ls | head`): nothing more to say to anyone.
    // A transfer cut short by it fails instead (`OutputClosedError`, from the reporter).
    if (error instanceof Deno.errors.BrokenPipe) return ExitCode.ok;
    return reportError(error, spec, args.includes("--json"));
  }
}

/** Throws the usage error for a word that is not a command (an option before the command, a typo). */
function unknownCommand(word: string): never {
  refuseSecretArguments([word]);
  const name = sanitizeForDisplay(word);
  const option = name.startsWith("-") ? suggestOption(name, GLOBAL_OPTIONS) : undefined;
  if (option) {
    throw new UsageError(
      `Unknown option ${JSON.stringify(name)}: did you mean ${option}?` +
        "\nRun 'ferry --help' for the list of commands.",
    );
  }
  if (name.startsWith("-")) {
    throw new UsageError(
      `Unknown option ${
        JSON.stringify(name)
      }: options go after the command, as in ferry ls HOST ${name}` +
        "\nRun 'ferry --help' for the list of commands.",
    );
  }
  const guess = suggest(name, COMMANDS.map((command) => command.spec.name));
  throw new UsageError(
    `Unknown command "${name}"` + (guess ? `: did you mean "${guess}"?` : "") +
      "\nRun 'ferry --help' for the list of commands.",
  );
}

function reportError(error: unknown, spec: CommandSpec | undefined, json: boolean): number {
  if (error instanceof ServerInterruptedError) return exitCodeFor(error); // said already
  const message = describeError(error);
  if (json) {
    const code = error instanceof FerryError ? error.code : "error";
    try {
      printLine(JSON.stringify({ event: "error", code, message }));
    } catch (printing) {
      // Standard output is closed (the error may say so): stderr still gets the line below.
      if (!(printing instanceof Deno.errors.BrokenPipe)) throw printing;
    }
  }
  printError(`ferry: ${message.split("\n")[0]}`);
  if (error instanceof UsageError) {
    const hint = message.split("\n").slice(1).join("\n");
    if (hint) printError(hint);
    const usageSpec = error instanceof CommandUsageError ? error.spec : spec;
    if (usageSpec && error instanceof CommandUsageError) printError(formatUsage(usageSpec));
  }
  return exitCodeFor(error);
}

if (import.meta.main) {
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) return;
    interrupted = true;
    printError(
      "\nferry: interrupted; a partial transfer is kept and resumes when you run it again",
    );
    Deno.exit(ExitCode.interrupted);
  };
  // The long-running commands stop gracefully on Ctrl-C by themselves.
  if (Deno.args[0] !== "serve" && Deno.args[0] !== "relay") {
    Deno.addSignalListener("SIGINT", onInterrupt);
  }
  const status = await main(Deno.args);
  Deno.exit(status);
}
