/**
 * `ferry code`: create a connection code file and print the code.
 *
 * @module
 */
import { generateCode } from "../code.ts";
import { DEFAULT_CODE_FILE, writeCodeFile } from "../code_file.ts";
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import { printError, printLine } from "./output.ts";

/** What `ferry code` accepts, for parsing, `--help` and completion. */
export const codeSpec = {
  name: "code",
  summary: "Create a new connection code file",
  usage: "code [--file PATH] [--force]",
  description:
    "Generates a connection code (80 random bits, written as 16 Crockford base32 characters), saves it to a file only you can read, and prints it. Give the code to the people who may connect; they type it into their own .connection_code file or FERRY_CODE.",
  args: [],
  options: [
    {
      name: "file",
      type: "string",
      value: "PATH",
      description: "Where to write the code",
      default: "./.connection_code",
    },
    { name: "force", short: "f", type: "boolean", description: "Replace an existing code file" },
  ],
  minArgs: 0,
  maxArgs: 0,
  examples: [
    ["ferry code", "create ./.connection_code and print the code"],
    [
      "ferry code --force",
      "replace the code: a running server refuses the old one at once and closes its sessions",
    ],
  ],
} as const satisfies CommandSpec;

/** Runs `ferry code`. Permission: write on the code file's folder. */
export async function runCode({ flags }: ParsedCommand<typeof codeSpec>): Promise<void> {
  const path = flags.file ?? DEFAULT_CODE_FILE;
  const code = generateCode();
  await writeCodeFile(path, code, { force: flags.force });
  printError(`Wrote a new connection code to ${path} (readable by you only).`);
  printLine(code);
}

/** `ferry code`: its spec and its runner. */
export const codeCommand: Command<typeof codeSpec> = { spec: codeSpec, run: runCode };
