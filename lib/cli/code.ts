/**
 * `ferry code`: create a connection code file and print the code.
 *
 * @module
 */
import { DEFAULT_CODE_FILE, generateCode, writeCodeFile } from "../code.ts";
import type { ParsedCommand } from "./args.ts";
import { printError, printLine } from "./output.ts";

/** Runs `ferry code`. Permission: write on the code file's folder. */
export async function runCode({ flags }: ParsedCommand): Promise<void> {
  const path = (flags.file as string | undefined) ?? DEFAULT_CODE_FILE;
  const code = generateCode();
  await writeCodeFile(path, code, { force: Boolean(flags.force) });
  printError(`Wrote a new connection code to ${path} (readable by you only).`);
  printLine(code);
}
