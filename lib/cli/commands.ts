/**
 * The table of ferry's commands, in the order help lists them. A new command is one module that
 * exports its spec with its runner, plus one entry here; parsing, `--help`, completion and
 * dispatch all read this table.
 *
 * @module
 */
import type { Command } from "./args.ts";
import { codeCommand } from "./code.ts";
import { completionsCommand } from "./completions.ts";
import { connectCommand } from "./connect.ts";
import { getCommand } from "./get.ts";
import { lsCommand } from "./ls.ts";
import { putCommand } from "./put.ts";
import { relayCommand } from "./relay.ts";
import { serveCommand } from "./serve.ts";

/** Every command of the CLI, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  codeCommand,
  serveCommand,
  lsCommand,
  getCommand,
  putCommand,
  connectCommand,
  relayCommand,
  completionsCommand(() => COMMANDS),
];

/** The command called `name`, if there is one. */
export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.spec.name === name);
}
