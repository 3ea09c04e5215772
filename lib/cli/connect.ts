/**
 * `ferry connect`: an interactive shell on one session (or a script read from a pipe).
 *
 * The shell's commands (lib/cli/shell/commands.ts) call the same functions as the one-shot
 * commands, so `get` in the shell and `ferry get` behave the same. On a terminal it prompts with
 * the remote folder, with line editing, history and Tab completion (lib/cli/shell/lines.ts,
 * completion.ts); Ctrl-C stops a running command and returns to the prompt, the connection made
 * again for the next command (lib/cli/shell/session.ts). From a pipe it reads line by line with no
 * prompt and stops at the first failing command (like `sftp -b -`).
 *
 * @module
 */
import {
  AuthenticationError,
  ConnectionError,
  describeError,
  InterruptedError,
} from "../errors.ts";
import { formatAddress } from "../net/address.ts";
import type { ParsedCommand } from "./args.ts";
import type { connectSpec } from "./specs/connect.ts";
import { clientCode } from "./common.ts";
import { printError } from "./output.ts";
import { connectClient } from "./remote.ts";
import { describeRoute, parseServerTarget, ServerSearch } from "./target.ts";
import { findShellCommand, runShellLine } from "./shell/commands.ts";
import { complete, sessionCandidates } from "./shell/completion.ts";
import { pipedLines, type ShellLines, terminalLines } from "./shell/lines.ts";
import { displayRemoteFolder, ShellSession } from "./shell/session.ts";
import { splitWords } from "./shell/words.ts";

/** How long a command interrupted by Ctrl-C gets to stop before the prompt comes back anyway. */
const INTERRUPT_GRACE_MS = 1_000;

/**
 * Runs `ferry connect`: a prompt on a terminal, else a script read line by line that stops at
 * its first failing command. Permissions: net to the server; read on the code file; read/write
 * where you get or put (and read on the folders `lcd` goes to).
 */
export async function runConnect(
  { positionals, flags }: ParsedCommand<typeof connectSpec>,
): Promise<void> {
  // Where `@` found the server is said in the line below, on a terminal (and again if it moves).
  let terminal = false;
  const target = parseServerTarget(
    positionals[0]!,
    flags.relay,
    (line) => terminal && !flags.quiet && printError(line),
  );
  const code = await clientCode(flags["code-file"]);
  const client = await connectClient(target, code);
  terminal = Deno.stdin.isTerminal();
  const session = new ShellSession(client, target, code);
  try {
    if (terminal) {
      const where = target instanceof ServerSearch
        ? `, ${describeRoute(target.route!)}`
        : ` to ${formatAddress(target.hostname, target.port)}`;
      printError(`Connected${where} (${client.welcome.mode}). Type help for commands.`);
      await runPrompt(session, flags.quiet);
    } else {
      await runScript(session, flags.quiet);
    }
  } finally {
    await session.close();
  }
}

/** A script from a pipe: every line runs in turn, and the first error ends it (`sftp -b -`). */
async function runScript(session: ShellSession, quiet: boolean): Promise<void> {
  const lines = pipedLines();
  try {
    for (let line = await lines.next(); line !== undefined; line = await lines.next()) {
      if (!await runShellLine({ session, quiet }, line)) break;
    }
  } finally {
    lines.close();
  }
}

/** The interactive shell: until quit or Ctrl-D; an error is printed and the prompt comes back. */
async function runPrompt(session: ShellSession, quiet: boolean): Promise<void> {
  const lines = terminalLines(
    () => `ferry:${displayRemoteFolder(session.cwd)}> `,
    (line) => complete(line, session.cwd, sessionCandidates(session)),
  );
  try {
    for (let line = await lines.next(); line !== undefined; line = await lines.next()) {
      if (!await runTyped(session, lines, line, quiet)) break;
    }
  } finally {
    lines.close();
  }
}

/**
 * Runs one typed line; false ends the session. Ctrl-C while it runs drops the connection (the
 * protocol cannot stop a body half-way otherwise), which stops the transfer with its partial file
 * kept; the next command connects again. Errors are printed, except a wrong code, which ends the
 * shell (the server changed its code: nothing more will work).
 */
async function runTyped(
  session: ShellSession,
  lines: ShellLines,
  line: string,
  quiet: boolean,
): Promise<boolean> {
  const controller = new AbortController();
  const interrupted = Promise.withResolvers<"interrupted">();
  lines.onInterrupt = () => {
    if (controller.signal.aborted) return;
    controller.abort(new InterruptedError("Interrupted"));
    session.drop();
    interrupted.resolve("interrupted");
  };
  const running = runShellLine({ session, quiet, signal: controller.signal }, line);
  const finished = running.then(() => true, () => false);
  try {
    const outcome = await Promise.race([running, interrupted.promise]);
    if (outcome !== "interrupted") return outcome;
    // Its connection is gone, so it stops at its next read or write; local work (hashing a big
    // partial file) may take longer, and is left to finish unseen: its output is muted.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const landed = await Promise.race([
      finished,
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), INTERRUPT_GRACE_MS)),
    ]);
    clearTimeout(timer);
    if (!landed) printError(interruptedMessage(line)); // else it finished as Ctrl-C came
  } catch (error) {
    if (controller.signal.aborted) {
      printError(interruptedMessage(line));
    } else {
      if (error instanceof AuthenticationError) throw error;
      printError(`error: ${describeError(error)}`);
      if (error instanceof ConnectionError) session.drop(); // the next command connects again
    }
  } finally {
    lines.onInterrupt = undefined;
  }
  return true;
}

/** What the shell says after Ctrl-C stopped `line`. */
function interruptedMessage(line: string): string {
  let transfers = false;
  try {
    transfers = findShellCommand(splitWords(line)[0] ?? "")?.transfers ?? false;
  } catch {
    // an unclosed quote never ran
  }
  return transfers
    ? "Interrupted: the partial file is kept, and the same command resumes it"
    : "Interrupted";
}

/** `ferry connect`: its spec and its runner. */
