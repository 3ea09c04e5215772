/**
 * What `ferry relay` accepts.
 *
 * @module
 */
import { DEFAULT_RELAY_PORT, DEFAULT_TOKEN_FILE } from "../../relay/wire.ts";
import type { CommandSpec } from "../args.ts";
import { parseCount, parseSeconds, parseSize } from "../common.ts";
import { LISTEN_HOST, listenPort } from "../options.ts";

/** What `ferry relay` accepts; numbers, sizes and durations arrive converted. */
export const relaySpec = {
  name: "relay",
  summary: "Relay between servers behind NATs and their clients",
  usage: "relay [--host ADDR] [--port N] [--token-file PATH] [options]",
  description:
    "Runs a relay: servers that cannot be reached directly connect out to it and register the public identifiers of their codes, and clients that name the relay reach them through it. The relay splices the two encrypted streams; it never learns a code, a file name or a byte of content. Registering needs the relay's token, kept in the token file (created with mode 0600 if missing; copy it to each server); connecting as a client needs only the code. Stop with Ctrl-C: transfers through the relay are cut, and resume when run again.",
  args: [],
  options: [
    LISTEN_HOST,
    listenPort(DEFAULT_RELAY_PORT),
    {
      name: "token-file",
      type: "string",
      value: "PATH",
      description: "The relay's token (created if missing; the token is never printed)",
      default: `./${DEFAULT_TOKEN_FILE}`,
    },
    {
      name: "max-clients-per-address",
      type: "string",
      value: "N",
      description: "Client connections one address may hold",
      default: "32",
      parse: parseCount,
    },
    {
      name: "rate-per-address",
      type: "string",
      value: "SIZE",
      description: "Bytes per second one client address may move (e.g. 10M; default: no limit)",
      parse: parseSize,
    },
    {
      name: "idle-timeout",
      type: "string",
      value: "SECONDS",
      description: "Close a relayed connection with no traffic either way for this long",
      default: "600",
      parse: parseSeconds,
    },
  ],
  minArgs: 0,
  maxArgs: 0,
  examples: [
    ["ferry relay", "relay on port 7879, token in ./.relay_token"],
    ["ferry relay --port 443 --token-file /etc/ferry/relay_token", "another port and token file"],
    ["ferry relay --rate-per-address 20M", "at most 20 MiB/s for each client address"],
  ],
} as const satisfies CommandSpec;
