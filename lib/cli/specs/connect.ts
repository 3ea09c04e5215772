/**
 * What `ferry connect` accepts.
 *
 * @module
 */
import type { CommandSpec } from "../args.ts";
import { CODE_ENV, CODE_FILE, HOST_ARG, QUIET, RELAY_CLIENT } from "../options.ts";

/** What `ferry connect` accepts (the shell's own commands are in lib/cli/shell/commands.ts). */
export const connectSpec = {
  name: "connect",
  summary: "Open an interactive shell on a server",
  usage: "connect HOST[:PORT]|@ [--code-file PATH] [--relay HOST[:PORT]]",
  description:
    "Opens a shell with the commands ls, cd, pwd, get, put, lcd, lpwd, help and quit (type help in it for their arguments). Remote paths are relative to the current remote folder, which the prompt shows; get takes patterns ('*.jpg') as ferry get does. Tab completes commands and remote and local paths. Ctrl-C stops a transfer and returns to the prompt, keeping what came so that the same get resumes it; at the prompt it clears the line. Ctrl-D or quit leaves. When standard input is not a terminal, reads commands line by line without a prompt, so it can be scripted (like sftp -b -), and stops at the first command that fails.",
  args: [HOST_ARG],
  options: [CODE_FILE, RELAY_CLIENT, QUIET],
  minArgs: 1,
  maxArgs: 1,
  examples: [
    ["ferry connect 192.168.1.20", "an interactive session"],
    ["ferry connect @ --relay relay.example.org", "with the server of this code, wherever it is"],
    ["printf 'ls\\nget a.txt\\n' | ferry connect 192.168.1.20", "a scripted session"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;
