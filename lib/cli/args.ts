/**
 * Command specifications, the argument parser and the help generator.
 *
 * Each command is described once by a {@link CommandSpec}; the same description parses argv
 * (unknown flags are an error with a "did you mean" hint), prints `--help`, and feeds the shell
 * completion scripts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";

/** One flag of a command. */
export interface OptionSpec {
  /** Long name without dashes, e.g. `code-file`. */
  name: string;
  /** One-letter alias without the dash. */
  short?: string;
  /** `boolean` flags take no value. */
  type: "boolean" | "string";
  /** Placeholder shown in help for the value (`PATH`, `N`). */
  value?: string;
  /** One line of help. */
  description: string;
  /** Default shown in help. */
  default?: string;
}

/** A command of the CLI. */
export interface CommandSpec {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage lines without the leading `ferry `. */
  usage: string;
  /** A paragraph of help. */
  description: string;
  /** Positional arguments, for help. */
  args: { name: string; description: string }[];
  options: OptionSpec[];
  /** Fewest and most positionals (`Infinity` for many). */
  minArgs: number;
  maxArgs: number;
  /** `[command, what it does]`. */
  examples: [string, string][];
  /** Environment variables the command reads. */
  environment?: [string, string][];
}

/** Options every command has. */
export const HELP_OPTION: OptionSpec = {
  name: "help",
  short: "h",
  type: "boolean",
  description: "Show this help and exit",
};

/** The result of {@link parseCommand}. */
export interface ParsedCommand {
  positionals: string[];
  flags: Record<string, string | boolean | undefined>;
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
 * the wrong number of positional arguments.
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): ParsedCommand {
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
  const flags = parsed.values as Record<string, string | boolean | undefined>;
  if (flags.help) return { positionals: parsed.positionals, flags };
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
  return { positionals: parsed.positionals, flags };
}

function explainParseError(spec: CommandSpec, error: unknown, argv: readonly string[]): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const match = /Unknown option '([^']+)'/.exec(message);
    const flag = match?.[1] ?? argv.find((word) => word.startsWith("-")) ?? "";
    const bare = flag.replace(/^-+/, "").split("=")[0]!;
    const names = [...spec.options, HELP_OPTION].map((option) => option.name);
    const guess = suggest(bare, names);
    return `Unknown option ${flag}` + (guess ? `: did you mean --${guess}?` : "");
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

function table(rows: [string, string][], indent = "  "): string[] {
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
