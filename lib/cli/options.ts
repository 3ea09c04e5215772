/**
 * The options, arguments and environment that several commands share, declared once so that
 * every command describes them alike in parsing, `--help` and shell completion.
 *
 * @module
 */
import type { OptionSpec } from "./args.ts";
import { parsePort } from "./common.ts";

/** `--code-file PATH`: where a client reads the connection code. */
export const CODE_FILE = {
  name: "code-file",
  type: "string",
  value: "PATH",
  description: "Read the connection code from PATH",
  default: "$FERRY_CODE, then ./.connection_code",
} as const satisfies OptionSpec;

/** `--json`: machine-readable output. */
export const JSON_OPTION = {
  name: "json",
  type: "boolean",
  description: "Print machine-readable JSON instead of text",
} as const satisfies OptionSpec;

/** `--json` of the transfer commands (`get`, `put`): an event stream rather than one document. */
export const JSON_EVENTS = {
  ...JSON_OPTION,
  description: "Print one JSON object per line for each event",
} as const satisfies OptionSpec;

/** `--quiet`: no progress bar. */
export const QUIET = {
  name: "quiet",
  short: "q",
  type: "boolean",
  description: "No progress bar; print only results and errors",
} as const satisfies OptionSpec;

/** `--force` of `get`: replace local files. */
export const FORCE_LOCAL = {
  name: "force",
  short: "f",
  type: "boolean",
  description: "Replace existing local files (atomically)",
} as const satisfies OptionSpec;

/** `--force` of `put`: replace files on the server. */
export const FORCE_REMOTE = {
  name: "force",
  short: "f",
  type: "boolean",
  description: "Replace existing files on the server (atomically)",
} as const satisfies OptionSpec;

/** `--verify` of `get` and `put`: SHA-256 of every file on both sides, compared. */
export const VERIFY = {
  name: "verify",
  type: "boolean",
  description:
    "Also hash every file on both sides and compare the SHA-256 (reported in --json); costs CPU",
} as const satisfies OptionSpec;

/** The `HOST[:PORT]` argument of the client commands, or `@`. */
export const HOST_ARG = {
  name: "HOST[:PORT] or @",
  description:
    "The server's address (port 7878 unless given), or @ to find the server by the code alone: the one announcing it on the local network (about 2 s), else through --relay",
} as const;

/** `--relay HOST[:PORT]` of the client commands: where `@` looks after the local network. */
export const RELAY_CLIENT = {
  name: "relay",
  type: "string",
  value: "HOST[:PORT]",
  description:
    "With @: when the server is not on the local network, reach it through this relay (port 7879 unless given; the code must be a named one, from ferry code add)",
} as const satisfies OptionSpec;

/** The environment a command that reads the connection code looks at. */
export const CODE_ENV = [[
  "FERRY_CODE",
  "The connection code, when no --code-file is given (read only if --allow-env grants it)",
]] as const;

/** `--host ADDR` of a command that listens (`serve`, `relay`). */
export const LISTEN_HOST = {
  name: "host",
  type: "string",
  value: "ADDR",
  description: "Address to listen on",
  default: "0.0.0.0",
} as const satisfies OptionSpec;

/** `--port N` of a command that listens on `defaultPort` unless told (0: any free port). */
export function listenPort(defaultPort: number) {
  return {
    name: "port",
    short: "p",
    type: "string",
    value: "N",
    description: "Port to listen on (0 = any free port)",
    default: String(defaultPort),
    parse: (text: string) => parsePort(text, true),
  } as const satisfies OptionSpec;
}
