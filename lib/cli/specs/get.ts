/**
 * What `ferry get` accepts.
 *
 * @module
 */
import type { CommandSpec } from "../args.ts";
import {
  CODE_ENV,
  CODE_FILE,
  FORCE_LOCAL,
  HOST_ARG,
  JSON_EVENTS,
  QUIET,
  RELAY_CLIENT,
  VERIFY,
} from "../options.ts";

/** What `ferry get` accepts. */
export const getSpec = {
  name: "get",
  summary: "Download files or folders",
  usage:
    "get HOST[:PORT]|@ REMOTE_PATH... [-o DIR | --as LOCAL_PATH] [-N] [--force] [--verify] [--relay HOST[:PORT]] [--json] [--quiet]",
  description:
    "Downloads files, or folders with everything in them. Each file takes its name only once every byte came through the authenticated channel unchanged at its source (with --verify, also once its SHA-256 matches the server's); a cut download resumes where it stopped when you run the same command again. Existing files are kept unless --force. " +
    "A remote path whose last component has *, ? or [...] (quote it from your shell) downloads every file and folder of that server folder whose name matches, as a shell would (* does not match a leading dot); a pattern that matches nothing is named and the command fails once the other paths are downloaded. Wildcards are refused in the folders above the last component. There is no escape character: --no-glob takes every path literally, to reach a name that holds *, ? or [. " +
    "Every path after HOST is a remote path, never a local target as in scp: to save one file (or folder) under another local name, give --as LOCAL_PATH; to choose the folder, -o DIR.",
  args: [HOST_ARG, {
    name: "REMOTE_PATH...",
    description: "Files or folders on the server, or patterns ('photos/*.jpg')",
  }],
  options: [
    {
      name: "output",
      short: "o",
      type: "string",
      value: "DIR",
      description: "Folder to download into (made, with its parents, if missing)",
      default: ".",
    },
    {
      name: "as",
      type: "string",
      value: "LOCAL_PATH",
      description: "Save the one remote file or folder as LOCAL_PATH (not with -o)",
    },
    {
      name: "no-glob",
      short: "N",
      type: "boolean",
      description: "Take remote paths literally: *, ? and [ are ordinary characters",
    },
    FORCE_LOCAL,
    VERIFY,
    CODE_FILE,
    RELAY_CLIENT,
    JSON_EVENTS,
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry get 192.168.1.20 report.pdf", "download one file into the current folder"],
    ["ferry get @ report.pdf", "from the server of this code, found on the local network"],
    [
      "ferry get @ report.pdf --relay relay.example.org",
      "the same, through a relay when the server is not on this network",
    ],
    ["ferry get 192.168.1.20 photos notes.txt -o ~/Downloads", "a folder and a file"],
    ["ferry get 192.168.1.20 'photos/*.jpg'", "every .jpg file in the server's photos folder"],
    ["ferry get 192.168.1.20 report.pdf --as old-report.pdf", "save under another name"],
    ["ferry get 192.168.1.20 --no-glob 'what?.txt'", "a file whose name holds a wildcard"],
  ],
  environment: CODE_ENV,
} as const satisfies CommandSpec;
