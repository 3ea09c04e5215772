/**
 * What `ferry put` accepts.
 *
 * @module
 */
import type { CommandSpec } from "../args.ts";
import {
  CODE_ENV,
  CODE_FILE,
  FORCE_REMOTE,
  HOST_ARG,
  JSON_EVENTS,
  QUIET,
  RELAY_CLIENT,
  VERIFY,
} from "../options.ts";

/** What `ferry put` accepts. */
export const putSpec = {
  name: "put",
  summary: "Upload files or folders",
  usage:
    "put HOST[:PORT]|@ LOCAL_PATH... [--to REMOTE_DIR] [--force] [--verify] [--relay HOST[:PORT]] [--json] [--quiet]",
  description:
    "Uploads files, or folders with everything in them. They land on the server as <prefix><name> (uploaded_<name> by default). A cut upload resumes when you run the same command again. Existing files on the server are kept unless --force.",
  args: [HOST_ARG, { name: "LOCAL_PATH...", description: "Files or folders to send" }],
  options: [
    {
      name: "to",
      type: "string",
      value: "REMOTE_DIR",
      description: "Folder on the server to upload into (it must exist there)",
      default: "the top",
    },
    FORCE_REMOTE,
    VERIFY,
    CODE_FILE,
    RELAY_CLIENT,
    JSON_EVENTS,
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry put 192.168.1.20 notes.txt", "upload a file (it lands as uploaded_notes.txt)"],
    ["ferry put @ notes.txt", "to the server of this code, found on the local network"],
    [
      "ferry put @ notes.txt --relay relay.example.org",
      "the same, through a relay when the server is not on this network",
    ],
    ["ferry put 192.168.1.20 build/ --to releases", "upload a folder into releases/"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;
