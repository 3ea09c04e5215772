/**
 * The table of ferry's commands, in the order help lists them. A command is its spec (in
 * `specs/`, what it accepts: parsing, `--help`, completion and the task launcher read it) and its
 * runner module, which is imported only when that command runs: `ferry get` never loads the
 * server, the relay or the object store, and so starts faster and in less memory. A new command
 * is a spec module, a runner module and one entry here.
 *
 * @module
 */
import type { Command, CommandSpec, ParsedCommand } from "./args.ts";
import { completionsCommand } from "./completions.ts";
import { codeSpec } from "./specs/code.ts";
import { connectSpec } from "./specs/connect.ts";
import { getSpec } from "./specs/get.ts";
import { lsSpec } from "./specs/ls.ts";
import { putSpec } from "./specs/put.ts";
import { relaySpec } from "./specs/relay.ts";
import { serveSpec } from "./specs/serve.ts";

/** A command whose runner is imported by `load` when it first runs. */
function lazyCommand<Spec extends CommandSpec>(
  spec: Spec,
  load: () => Promise<(parsed: ParsedCommand<Spec>) => Promise<void>>,
): Command<Spec> {
  return { spec, run: async (parsed) => (await load())(parsed) };
}

/** Every command of the CLI, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  lazyCommand(codeSpec, async () => (await import("./code.ts")).runCode),
  lazyCommand(serveSpec, async () => (await import("./serve.ts")).runServe),
  lazyCommand(lsSpec, async () => (await import("./ls.ts")).runLs),
  lazyCommand(getSpec, async () => (await import("./get.ts")).runGet),
  lazyCommand(putSpec, async () => (await import("./put.ts")).runPut),
  lazyCommand(connectSpec, async () => (await import("./connect.ts")).runConnect),
  lazyCommand(relaySpec, async () => (await import("./relay.ts")).runRelay),
  completionsCommand(() => COMMANDS),
];

/** The command called `name`, if there is one. */
export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.spec.name === name);
}
