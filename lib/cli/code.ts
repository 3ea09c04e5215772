/**
 * `ferry code`: create a connection code file and print the code, or, with `--save`, store a code
 * someone gave you (typed without echo, or piped on standard input), never printing it.
 *
 * @module
 */
import { formatCode, generateCode, normaliseCodeFrom } from "../code.ts";
import { DEFAULT_CODE_FILE, readCodeFile, writeCodeFile } from "../code_file.ts";
import { ExistsError, UsageError } from "../errors.ts";
import { lstatOrNull } from "../_fs.ts";
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import { promptHiddenCode, readFirstLine, withFirstReadTimeout } from "./code_input.ts";
import { printError, printLine } from "./output.ts";

/**
 * How long plain `ferry code` waits for piped input before taking standard input to be silent
 * (`ssh host ferry code` keeps it open and never writes), in milliseconds.
 */
const PIPED_INPUT_WAIT_MS = 300;

/** What `ferry code` accepts, for parsing, `--help` and completion. */
export const codeSpec = {
  name: "code",
  summary: "Create a new connection code file, or save a code you were given",
  usage: "code [--save] [--file PATH] [--force]",
  description:
    "Generates a connection code (80 random bits, written as 16 Crockford base32 characters), saves it to a file only you can read, and prints it. Give the code to the people who may connect; they store it with `ferry code --save`, which asks for it without showing it (or reads its first line from standard input when that is not a terminal), and writes it to their own .connection_code (mode 0600) without printing it. A code is never taken from the command line.",
  args: [],
  options: [
    {
      name: "file",
      type: "string",
      value: "PATH",
      description: "Where to write the code",
      default: "./.connection_code",
    },
    {
      name: "save",
      short: "s",
      type: "boolean",
      description: "Store a code you were given (asked for without echo, or read from stdin)",
    },
    {
      name: "force",
      short: "f",
      type: "boolean",
      description: "Replace an existing code file (holding a different code)",
    },
  ],
  minArgs: 0,
  maxArgs: 0,
  examples: [
    ["ferry code", "create ./.connection_code and print the code"],
    [
      "ferry code --force",
      "replace the code: a running server refuses the old one at once and closes its sessions",
    ],
    ["ferry code --save", "type the code you were given (not shown) into ./.connection_code"],
    ["pass show ferry | ferry code --save", "store a code piped from a password manager"],
  ],
} as const satisfies CommandSpec;

/** Runs `ferry code`. Permission: read and write on the code file's folder. */
export async function runCode({ flags }: ParsedCommand<typeof codeSpec>): Promise<void> {
  const path = flags.file ?? DEFAULT_CODE_FILE;
  if (flags.save) return await saveCode(path, flags.force);
  await refusePipedCode();
  const code = generateCode();
  await writeCodeFile(path, code, { force: flags.force });
  printError(`Wrote a new connection code to ${path} (readable by you only).`);
  printLine(code);
}

/**
 * `ferry code --save`: takes the code from the terminal (no echo) or piped stdin, checks it, and
 * writes it to `path` with mode 0600. An existing file holding the same code is rewritten (which
 * also makes it 0600); one holding another code, or none, is replaced only with `force`.
 */
async function saveCode(path: string, force: boolean): Promise<void> {
  const typed = Deno.stdin.isTerminal();
  const input = typed ? await promptHiddenCode() : await readFirstLine(Deno.stdin);
  if (input === "") {
    throw new UsageError(
      typed
        ? "No connection code entered"
        : "No connection code on standard input: pipe it in (`ferry code --save < file`) or run `ferry code --save` on a terminal to type it",
    );
  }
  const code = normaliseCodeFrom(input, typed ? "" : " on standard input");
  const existing = await lstatOrNull(path);
  if (existing !== null && !existing.isDirectory && !force) {
    const held = await readCodeFile(path).catch(() => undefined);
    if (held !== code) {
      throw new ExistsError(
        `Code file ${path} already exists and holds another code: pass --force to replace it`,
      );
    }
  }
  // Past the check above, an existing file is to be replaced (or holds this very code).
  await writeCodeFile(path, formatCode(code), { force: existing !== null });
  printError(`Saved the code in ${path} (mode 0600)`);
}

/**
 * Refuses `echo CODE | ferry code`: plain `ferry code` makes a new code, and silently doing so
 * while the user meant to store the one they piped in would leave them with the wrong code.
 * Standard input that is a terminal, empty (`/dev/null`), or silent for a moment is no input.
 */
async function refusePipedCode(): Promise<void> {
  if (Deno.stdin.isTerminal()) return;
  const input = await readFirstLine(withFirstReadTimeout(Deno.stdin, PIPED_INPUT_WAIT_MS))
    .catch(() => "(unreadable)");
  if (input === "") return;
  throw new UsageError(
    "`ferry code` makes a new code and reads nothing from standard input: to store a code you were given, run `ferry code --save` (it reads the code from standard input, or asks for it without showing it)",
  );
}

/** `ferry code`: its spec and its runner. */
export const codeCommand: Command<typeof codeSpec> = { spec: codeSpec, run: runCode };
