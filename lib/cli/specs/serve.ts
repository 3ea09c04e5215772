/**
 * What `ferry serve` accepts.
 *
 * @module
 */
import { DEFAULT_TOKEN_FILE } from "../../relay/wire.ts";
import { DEFAULT_PORT } from "../../protocol/constants.ts";
import type { CommandSpec, OptionSpec } from "../args.ts";
import { parseCount, parseSeconds, parseSize } from "../common.ts";
import { CODE_ENV, CODE_FILE, LISTEN_HOST, listenPort } from "../options.ts";

/** `ferry serve`'s options about being found: announcements and the relay. */
export const SERVE_REACH_OPTIONS = [
  {
    name: "no-announce",
    type: "boolean",
    description:
      "Do not announce this server on the local network (clients then need its address, or a relay)",
  },
  {
    name: "relay",
    type: "string",
    value: "HOST[:PORT]",
    description:
      "Also take clients through this relay (port 7879 unless given): for clients that cannot reach this machine; it carries named codes only",
  },
  {
    name: "relay-token-file",
    type: "string",
    value: "PATH",
    description: "The relay's token file, copied from the relay's machine (never served)",
    default: `./${DEFAULT_TOKEN_FILE}`,
  },
] as const satisfies readonly OptionSpec[];

/** What `ferry serve` accepts; numbers, sizes and durations arrive converted. */
export const serveSpec = {
  name: "serve",
  summary: "Share a folder with everyone who holds a code",
  usage:
    "serve [DIR | s3://BUCKET[/PREFIX]] [--host ADDR] [--port N] [--code-file PATH] [--relay HOST[:PORT]] [--no-announce] [options]",
  description:
    "Serves DIR to clients that hold the connection code, or one of the named codes of the code store beside the code file (`ferry code add`: each with its own rights, folder and expiry, within what the server allows). Creates a code file first if there is none (and no named code either), and prints the new code. Codes added, revoked or expiring take effect at once, without a restart. Uploads land as <prefix><name> so they never replace the folder's own files. Announces the public identifiers of its codes (never a secret) on the local network, so that clients find it with @ in place of its address; with --relay, also takes clients through that relay (named codes only). Stop with Ctrl-C: transfers in progress get a grace period to finish. With s3://BUCKET[/PREFIX], serves that bucket (or prefix) of an S3-compatible object store the same way; its endpoint, region and credentials come from the AWS variables below or the AWS files (~/.aws/credentials, ~/.aws/config), never from the command line.",
  args: [{
    name: "DIR",
    description: "The folder to share (default: the current folder), or s3://BUCKET[/PREFIX]",
  }],
  options: [
    LISTEN_HOST,
    listenPort(DEFAULT_PORT),
    {
      ...CODE_FILE,
      description: "Connection code file (created if missing)",
      default: "./.connection_code",
    },
    {
      name: "upload-prefix",
      type: "string",
      value: "S",
      description: "Prefix of uploaded names",
      default: "uploaded_",
    },
    {
      name: "read-only",
      type: "boolean",
      description: "Refuse uploads",
      conflicts: "upload-only",
    },
    {
      name: "upload-only",
      type: "boolean",
      description: "Refuse listing and downloads (a drop box)",
    },
    {
      name: "max-upload",
      type: "string",
      value: "SIZE",
      description: "Refuse uploads larger than SIZE (e.g. 500M, 2G)",
      parse: parseSize,
    },
    {
      name: "max-connections",
      type: "string",
      value: "N",
      description: "Clients with the code served at once (handshakes have their own budget)",
      default: "64",
      parse: parseCount,
    },
    {
      name: "handshake-timeout",
      type: "string",
      value: "SECONDS",
      description: "Close connections that have not authenticated by then",
      default: "10",
      parse: parseSeconds,
    },
    {
      name: "idle-timeout",
      type: "string",
      value: "SECONDS",
      description: "Close authenticated connections idle this long",
      default: "300",
      parse: parseSeconds,
    },
    {
      name: "grace",
      type: "string",
      value: "SECONDS",
      description: "On Ctrl-C or SIGTERM, time given to transfers in progress",
      default: "10",
      parse: parseSeconds,
    },
    ...SERVE_REACH_OPTIONS,
  ],
  minArgs: 0,
  maxArgs: 1,
  examples: [
    ["ferry serve", "share the current folder on port 7878"],
    ["ferry serve ~/Public --port 9000 --read-only", "share a folder for download only"],
    ["ferry serve inbox --upload-only --max-upload 2G", "a drop box that takes files up to 2 GiB"],
    [
      "ferry serve --relay relay.example.org",
      "also reachable through a relay (token in ./.relay_token; ferry code add NAME for a code)",
    ],
    ["ferry serve s3://team-files/shared", "share a prefix of a bucket (see Environment)"],
  ],
  environment: [
    ...CODE_ENV,
    ["AWS_ENDPOINT_URL", "S3 endpoint of s3:// (default: AWS itself); path-style addressing"],
    ["AWS_REGION", "Region of s3:// (default: the profile's, else us-east-1)"],
    ["AWS_ACCESS_KEY_ID", "Access key of s3://, with AWS_SECRET_ACCESS_KEY (else the profile's)"],
    ["AWS_PROFILE", "Profile of ~/.aws/credentials and ~/.aws/config (default: default)"],
  ],
} as const satisfies CommandSpec;
