/**
 * What `ferry code` accepts.
 *
 * @module
 */
import type { CommandSpec } from "../args.ts";
import { parseDuration } from "../common.ts";

/** What `ferry code` accepts, for parsing, `--help` and completion. */
export const codeSpec = {
  name: "code",
  summary: "Create a connection code, or add, list and revoke codes with their own rights",
  usage: [
    "code [--save] [--file PATH] [--force]",
    "       ferry code add NAME [--read-only | --upload-only] [--scope DIR] [--expires DURATION]",
    "       ferry code list [--json]",
    "       ferry code revoke NAME",
  ].join("\n"),
  description:
    "Generates a connection code (80 random bits, written as 16 Crockford base32 characters), saves it to a file only you can read, and prints it: the server's default code, which may do everything the server allows. Give the code to the people who may connect; they store it with `ferry code --save`, which asks for it without showing it (or reads its first line from standard input when that is not a terminal), and writes it to their own .connection_code (mode 0600) without printing it. A code is never taken from the command line.\n\n`ferry code add NAME` makes one more code for the same server, with an identifier in front (IIII-XXXX-XXXX-XXXX-XXXX), its own rights (--read-only, --upload-only), its own folder (--scope: its holders see that folder as the whole share) and an expiry (--expires); it is kept in the code store beside the code file (./.connection_codes, mode 0600, never served). `ferry code list` shows every code's name, identifier, rights, folder, expiry and last use, never its secret; `ferry code revoke NAME` removes one. A running `ferry serve` takes each change at once: a revoked or expired code is refused, and its sessions are closed, while the others keep working.",
  args: [
    { name: "add NAME", description: "Make a new code named NAME and print it" },
    { name: "list", description: "Show the codes (never their secrets)" },
    { name: "revoke NAME", description: "Remove the code named NAME" },
  ],
  options: [
    {
      name: "file",
      type: "string",
      value: "PATH",
      description: "Where the code is (the store of named codes is PATH with an s added)",
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
    {
      name: "read-only",
      type: "boolean",
      description: "add: the code may list and download, not upload",
      conflicts: "upload-only",
    },
    {
      name: "upload-only",
      type: "boolean",
      description: "add: the code may upload only (a drop box), not list nor download",
    },
    {
      name: "scope",
      type: "string",
      value: "DIR",
      description: "add: the code sees only DIR, a folder of the served one, as its root",
    },
    {
      name: "expires",
      type: "string",
      value: "DURATION",
      description: "add: the code stops working after DURATION (30m, 12h, 7d)",
      parse: (text: string) => parseDuration(text),
    },
    { name: "json", type: "boolean", description: "list: print a JSON array" },
  ],
  minArgs: 0,
  maxArgs: 2,
  examples: [
    ["ferry code", "create ./.connection_code and print the code"],
    [
      "ferry code --force",
      "replace the code: a running server refuses the old one at once and closes its sessions",
    ],
    ["ferry code --save", "type the code you were given (not shown) into ./.connection_code"],
    ["pass show ferry | ferry code --save", "store a code piped from a password manager"],
    ["ferry code add client --read-only", "a code that may only list and download"],
    ["ferry code add class --upload-only --expires 7d", "a drop box code for a week"],
    ["ferry code add alice --scope projects/alice", "a code that sees one folder only"],
    ["ferry code list", "every code with its rights, folder, expiry and last use"],
    ["ferry code revoke class", "the class's code stops working, the others go on"],
  ],
} as const satisfies CommandSpec;
