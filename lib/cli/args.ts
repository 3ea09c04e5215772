/**
 * Command specifications, the argument parser and the help generator.
 *
 * Each command is described once by a {@link CommandSpec}; the same description parses argv
 * (unknown flags are an error with a "did you mean" hint), prints `--help`, and feeds the shell
 * completion scripts. A spec declared `as const` gives {@link parseCommand} its flags' types, and an
 * option may convert its value (`parse`), so commands read typed values with no casts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { looksLikeCode } from "../code.ts";
import { UsageError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";

/** One flag of a command. */
export interface OptionSpec {
  /** Long name without dashes, e.g. `code-file`. */
  readonly name: string;
  /** One-letter alias without the dash. */
  readonly short?: string;
  /** `boolean` flags take no value. */
  readonly type: "boolean" | "string";
  /** Placeholder shown in help for the value (`PATH`, `N`). */
  readonly value?: string;
  /** One line of help. */
  readonly description: string;
  /** Default shown in help. */
  readonly default?: string;
  /**
   * Converts a string flag's value (`--port 9000` to `9000`); the command then gets what it
   * returns. Throws a `UsageError` for a bad value, reported as it is.
   */
  readonly parse?: (text: string, name: string) => unknown;
  /** A boolean flag this one cannot be given with ("Choose one of --a and --b"). */
  readonly conflicts?: string;
}

/** A command of the CLI. Declare one `as const satisfies CommandSpec` so its flags are typed. */
export interface CommandSpec {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Usage lines without the leading `ferry `. */
  readonly usage: string;
  /** A paragraph of help. */
  readonly description: string;
  /** Positional arguments, for help. */
  readonly args: readonly { readonly name: string; readonly description: string }[];
  readonly options: readonly OptionSpec[];
  /** Fewest and most positionals (`Infinity` for many). */
  readonly minArgs: number;
  readonly maxArgs: number;
  /** `[command, what it does]`. */
  readonly examples: readonly (readonly [string, string])[];
  /** Environment variables the command reads. */
  readonly environment?: readonly (readonly [string, string])[];
}

/** Options every command has. */
export const HELP_OPTION: OptionSpec = {
  name: "help",
  short: "h",
  type: "boolean",
  description: "Show this help and exit",
};

/** The value a command gets for `option`: a boolean, the converted value, or the string. */
type FlagValue<Option extends OptionSpec> = Option["type"] extends "boolean" ? boolean
  : Option extends { parse: (text: string, name: string) => infer Value } ? Value | undefined
  : string | undefined;

/**
 * The flags of a command whose options are `Options`, by long name: `{ port: number | undefined;
 * force: boolean; ... }`. For a spec whose options are not known (`CommandSpec` itself), any
 * record.
 */
export type FlagsOf<Options extends readonly OptionSpec[]> = string extends Options[number]["name"]
  ? Readonly<Record<string, unknown>>
  :
    & { readonly [Option in Options[number] as Option["name"]]: FlagValue<Option> }
    & { readonly help: boolean };

/** The result of {@link parseCommand}: positionals, and flags typed from the spec's options. */
export interface ParsedCommand<Spec extends CommandSpec = CommandSpec> {
  positionals: string[];
  flags: FlagsOf<Spec["options"]>;
}

/** A command: its spec, and what runs it with the flags that spec declares. */
export interface Command<Spec extends CommandSpec = CommandSpec> {
  readonly spec: Spec;
  /** Runs the command; throws a `FerryError` (or `UsageError`) for the caller to report. */
  run(parsed: ParsedCommand<Spec>): Promise<void>;
}

/** Edit distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0]!;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j]!;
      previous[j] = Math.min(
        previous[j]! + 1,
        previous[j - 1]! + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return previous[b.length]!;
}

/** The candidate closest to `input`, if any is close enough to be a likely typo. */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(input, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.max(2, Math.floor(input.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** The options ferry takes before any command: `--help` and `--version`. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  HELP_OPTION,
  { name: "version", short: "V", type: "boolean", description: "Print the version" },
];

/**
 * The option a mistyped `flag` most likely meant, as `--name`: for a long flag, the option whose
 * name is within edit distance 2 (`--versoin` → `--version`); for a one-letter flag, the option
 * whose letter differs only in case (`-v` → `--version`, whose letter is `-V`). `undefined` when
 * nothing is close. Needs no permissions.
 *
 * @example
 * ```ts
 * import { GLOBAL_OPTIONS, suggestOption } from "./args.ts";
 * if (suggestOption("-v", GLOBAL_OPTIONS) !== "--version") throw new Error("suggestOption");
 * ```
 */
export function suggestOption(
  flag: string,
  options: readonly Pick<OptionSpec, "name" | "short">[],
): string | undefined {
  const short = /^-([^-=])(?:=|$)/.exec(flag)?.[1];
  if (short !== undefined) {
    const other = short === short.toLowerCase() ? short.toUpperCase() : short.toLowerCase();
    const option = options.find((candidate) => candidate.short === other);
    return option && `--${option.name}`;
  }
  const bare = flag.replace(/^-+/, "").split("=", 1)[0]!.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const { name } of options) {
    const distance = editDistance(bare, name);
    // "x" is two edits from "to", but no typo of it.
    if (distance < bestDistance && distance < bare.length) [best, bestDistance] = [name, distance];
  }
  return best && `--${best}`;
}

/** A usage error that remembers which command's usage to print with it. */
export class CommandUsageError extends UsageError {
  /** The command whose usage applies. */
  readonly spec: CommandSpec;
  constructor(spec: CommandSpec, message: string) {
    super(message);
    this.spec = spec;
  }
}

/**
 * Parses `argv` (the words after the command name) against `spec`.
 * Throws {@link CommandUsageError} for an unknown flag (with a suggestion), a missing value, or
 * the wrong number of positional arguments; a `UsageError` for conflicting flags or a value an
 * option's `parse` refuses. With `--help` nothing but the flags' syntax is checked.
 */
export function parseCommand<Spec extends CommandSpec>(
  spec: Spec,
  argv: readonly string[],
): ParsedCommand<Spec> {
  refuseSecretArguments(argv, spec);
  const all = [...spec.options, HELP_OPTION];
  const options: Record<string, { type: "boolean" | "string"; short?: string }> = {};
  for (const option of all) {
    options[option.name] = option.short
      ? { type: option.type, short: option.short }
      : { type: option.type };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CommandUsageError(spec, explainParseError(spec, error, argv));
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  // Values an option converts are set once converted, below; with --help they stay undefined.
  const flags: Record<string, unknown> = {};
  for (const option of all) {
    const value = values[option.name];
    flags[option.name] = option.type === "boolean"
      ? value === true
      : option.parse
      ? undefined
      : value;
  }
  const result = { positionals: parsed.positionals, flags: flags as FlagsOf<Spec["options"]> };
  if (flags.help) return result;
  const count = parsed.positionals.length;
  if (count < spec.minArgs) {
    const missing = spec.args[count]?.name ?? "an argument";
    throw new CommandUsageError(spec, `Missing ${missing}`);
  }
  if (count > spec.maxArgs) {
    throw new CommandUsageError(
      spec,
      `Too many arguments: ${JSON.stringify(parsed.positionals[spec.maxArgs])} is one too many`,
    );
  }
  for (const option of spec.options) {
    if (option.conflicts !== undefined && flags[option.name] && flags[option.conflicts]) {
      throw new UsageError(`Choose one of --${option.name} and --${option.conflicts}`);
    }
  }
  for (const option of spec.options) {
    const text = values[option.name];
    if (option.parse && typeof text === "string") {
      flags[option.name] = option.parse(text, option.name);
    }
  }
  return result;
}

/**
 * The ways to give ferry a connection code, as the hint after a code found on the command line:
 * a file or the environment, which other local users cannot read the way they read a process's
 * arguments.
 */
export const CODE_HINT = [
  "Give the code to ferry in a file or the environment, never on the command line (other users of",
  "this machine can read command lines): store it with `ferry code --save`, which asks for it",
  "without showing it (or reads it from standard input: `ferry code --save < FILE`) and writes",
  "./.connection_code readable by you only; or pass --code-file PATH, or set FERRY_CODE.",
].join("\n");

/**
 * Refuses a command line that holds a connection code, before anything else looks at it: an
 * option `--code` or `--code=X` (there is none: codes are never taken on the command line), and
 * any word that {@link looksLikeCode}, whether a positional argument, an option's value or an
 * unknown option. The error never contains the word; it says where it is and how to give the code
 * instead. A file or host whose name looks like a code can still be named, as `./NAME` or
 * `NAME:PORT`. Needs no permissions.
 *
 * @param argv The words to check.
 * @param spec The command they are for; with it the error is a {@link CommandUsageError}.
 * @throws {UsageError} If a word is or may be a connection code.
 */
export function refuseSecretArguments(argv: readonly string[], spec?: CommandSpec): void {
  const refuse = (message: string): never => {
    throw spec ? new CommandUsageError(spec, message) : new UsageError(message);
  };
  const where = (index: number) =>
    spec ? `Argument ${index + 1} after "ferry ${spec.name}"` : "A word on the command line";
  argv.forEach((word, index) => {
    if (/^--?code(?:=|$)/i.test(word)) {
      refuse(
        `There is no option --code: ferry never takes the connection code on the command line\n${CODE_HINT}`,
      );
    }
    const candidates = [word];
    if (word.startsWith("-")) {
      const bare = word.replace(/^-+/, "");
      const equals = bare.indexOf("=");
      candidates.push(
        bare,
        ...(equals >= 0 ? [bare.slice(0, equals), bare.slice(equals + 1)] : []),
      );
    }
    if (candidates.some(looksLikeCode)) {
      refuse(
        `${where(index)} looks like a connection code, so it is not shown or used\n` +
          `${CODE_HINT}\nIf it is a name and not a code, write it as ./NAME (a path) or NAME:PORT (a host).`,
      );
    }
  });
}

function explainParseError(spec: CommandSpec, error: unknown, argv: readonly string[]): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    // Shown as typed: refuseSecretArguments has already refused any word like a code.
    const match = /Unknown option '([^']+)'/.exec(message);
    const flag = sanitizeForDisplay(match?.[1] ?? argv.find((word) => word.startsWith("-")) ?? "");
    const guess = suggestOption(flag, [...spec.options, HELP_OPTION]);
    if (guess) return `Unknown option ${flag}: did you mean ${guess}?`;
    const global = suggestOption(flag, GLOBAL_OPTIONS);
    return `Unknown option ${flag}` +
      (global ? `: did you mean ${global}? It goes before the command: ferry ${global}` : "");
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    // "Option '--port' argument is ambiguous", "Option '-o' argument is ambiguous",
    // "Option '-o, --output <value>' argument missing", "Option '--json' does not take an argument".
    const match = /Option '(?:-\w, )?(--?[\w-]+)/.exec(message);
    const written = match?.[1] ?? "";
    const option = spec.options.find((candidate) =>
      `--${candidate.name}` === written || `-${candidate.short}` === written
    );
    const flag = option ? `--${option.name}` : written || "an option";
    if (option?.type === "boolean") return `Option ${flag} takes no value`;
    const needs = `Option ${flag} needs a value${option?.value ? ` (${option.value})` : ""}`;
    // The next word starts with a dash (`--grace -1`, `-o -q`): say how to pass such a value.
    const index = argv.indexOf(written);
    const next = index >= 0 ? argv[index + 1] : undefined;
    return /ambiguous/.test(message) && next !== undefined
      ? `${needs}: ${
        JSON.stringify(next)
      } looks like an option; write ${flag}=${next} if it is the value`
      : needs;
  }
  return message.split("\n", 1)[0]!;
}

function optionLabel(option: OptionSpec): string {
  const names = (option.short ? `-${option.short}, ` : "    ") + `--${option.name}`;
  return option.type === "string" ? `${names} ${option.value ?? "VALUE"}` : names;
}

function table(rows: readonly (readonly [string, string])[], indent = "  "): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}  ${right}`);
}

/** The command's full help text (Usage, Description, Arguments, Options, Environment, Examples). */
export function formatHelp(spec: CommandSpec): string {
  const lines = [`Usage: ferry ${spec.usage}`, "", spec.description];
  if (spec.args.length > 0) {
    lines.push("", "Arguments:", ...table(spec.args.map((arg) => [arg.name, arg.description])));
  }
  const options = [...spec.options, HELP_OPTION];
  lines.push(
    "",
    "Options:",
    ...table(options.map((option) => [
      optionLabel(option),
      option.description + (option.default !== undefined ? ` (default: ${option.default})` : ""),
    ])),
  );
  if (spec.environment?.length) lines.push("", "Environment:", ...table(spec.environment));
  if (spec.examples.length > 0) {
    lines.push("", "Examples:");
    for (const [command, what] of spec.examples) lines.push(`  # ${what}`, `  ${command}`);
  }
  return lines.join("\n");
}

/** The short usage shown after a usage error. */
export function formatUsage(spec: CommandSpec): string {
  return `Usage: ferry ${spec.usage}\nRun 'ferry ${spec.name} --help' for more.`;
}
