/**
 * What `ferry ls` accepts.
 *
 * @module
 */
import type { CommandSpec } from "../args.ts";
import { CODE_ENV, CODE_FILE, HOST_ARG, JSON_OPTION, RELAY_CLIENT } from "../options.ts";

/** What `ferry ls` accepts. */
export const lsSpec = {
  name: "ls",
  summary: "List a folder on the server",
  usage: "ls HOST[:PORT]|@ [REMOTE_PATH] [--relay HOST[:PORT]] [--json]",
  description: "Lists the names, types, sizes and modification times in a folder on the server.",
  args: [HOST_ARG, {
    name: "REMOTE_PATH",
    description: "Folder or file to list (default: the top)",
  }],
  options: [
    CODE_FILE,
    RELAY_CLIENT,
    { ...JSON_OPTION, description: "Print a JSON array of {name, type, size, mtime}" },
    {
      name: "recursive",
      short: "R",
      type: "boolean",
      description: "List everything below the folder",
    },
  ],
  minArgs: 1,
  maxArgs: 2,
  examples: [
    ["ferry ls 192.168.1.20", "list the shared folder"],
    ["ferry ls 192.168.1.20:9000 photos --json", "list a subfolder as JSON"],
    ["ferry ls @", "find the server of this code on the local network, and list it"],
    ["ferry ls @ --relay relay.example.org", "the same, through a relay when it is not here"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;
