/**
 * Every command of the CLI, described once: parsing, `--help` and shell completion read these.
 *
 * @module
 */
import type { CommandSpec, OptionSpec } from "./args.ts";

const CODE_FILE: OptionSpec = {
  name: "code-file",
  type: "string",
  value: "PATH",
  description: "Read the connection code from PATH",
  default: "$FERRY_CODE, then ./.connection_code",
};
const JSON_OPTION: OptionSpec = {
  name: "json",
  type: "boolean",
  description: "Print machine-readable JSON instead of text",
};
const QUIET: OptionSpec = {
  name: "quiet",
  short: "q",
  type: "boolean",
  description: "No progress bar; print only results and errors",
};
const FORCE_LOCAL: OptionSpec = {
  name: "force",
  short: "f",
  type: "boolean",
  description: "Replace existing local files (atomically)",
};
const FORCE_REMOTE: OptionSpec = {
  name: "force",
  short: "f",
  type: "boolean",
  description: "Replace existing files on the server (atomically)",
};
const HOST_ARG = {
  name: "HOST[:PORT]",
  description: "The server's address; the port defaults to 7878",
};
const CODE_ENV: [string, string][] = [[
  "FERRY_CODE",
  "The connection code, when no --code-file is given (read only if --allow-env grants it)",
]];

/** `ferry code`. */
export const codeSpec: CommandSpec = {
  name: "code",
  summary: "Create a new connection code file",
  usage: "code [--file PATH] [--force]",
  description:
    "Generates a connection code (80 random bits, written as 16 Crockford base32 characters), saves it to a file only you can read, and prints it. Give the code to the people who may connect; they type it into their own .connection_code file or FERRY_CODE.",
  args: [],
  options: [
    {
      name: "file",
      type: "string",
      value: "PATH",
      description: "Where to write the code",
      default: "./.connection_code",
    },
    { name: "force", short: "f", type: "boolean", description: "Replace an existing code file" },
  ],
  minArgs: 0,
  maxArgs: 0,
  examples: [
    ["ferry code", "create ./.connection_code and print the code"],
    [
      "ferry code --force",
      "replace the code: a running server refuses the old one at once and closes its sessions",
    ],
  ],
};

/** `ferry serve`. */
export const serveSpec: CommandSpec = {
  name: "serve",
  summary: "Share a folder with everyone who holds the code",
  usage: "serve [DIR] [--host ADDR] [--port N] [--code-file PATH] [--upload-prefix S] [options]",
  description:
    "Serves DIR to clients that hold the connection code. Creates a code file first if there is none, and prints the new code. Uploads land as <prefix><name> so they never replace the folder's own files. Stop with Ctrl-C: transfers in progress get a grace period to finish.",
  args: [{ name: "DIR", description: "The folder to share (default: the current folder)" }],
  options: [
    {
      name: "host",
      type: "string",
      value: "ADDR",
      description: "Address to listen on",
      default: "0.0.0.0",
    },
    {
      name: "port",
      short: "p",
      type: "string",
      value: "N",
      description: "Port to listen on (0 = any free port)",
      default: "7878",
    },
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
    { name: "read-only", type: "boolean", description: "Refuse uploads" },
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
    },
    {
      name: "max-connections",
      type: "string",
      value: "N",
      description: "Connections served at once",
      default: "64",
    },
    {
      name: "handshake-timeout",
      type: "string",
      value: "SECONDS",
      description: "Close connections that have not authenticated by then",
      default: "10",
    },
    {
      name: "idle-timeout",
      type: "string",
      value: "SECONDS",
      description: "Close authenticated connections idle this long",
      default: "300",
    },
    {
      name: "grace",
      type: "string",
      value: "SECONDS",
      description: "On Ctrl-C or SIGTERM, time given to transfers in progress",
      default: "10",
    },
  ],
  minArgs: 0,
  maxArgs: 1,
  examples: [
    ["ferry serve", "share the current folder on port 7878"],
    ["ferry serve ~/Public --port 9000 --read-only", "share a folder for download only"],
    ["ferry serve inbox --upload-only --max-upload 2G", "a drop box that takes files up to 2 GiB"],
  ],
  environment: CODE_ENV,
};

/** `ferry ls`. */
export const lsSpec: CommandSpec = {
  name: "ls",
  summary: "List a folder on the server",
  usage: "ls HOST[:PORT] [REMOTE_PATH] [--json]",
  description: "Lists the names, types, sizes and modification times in a folder on the server.",
  args: [HOST_ARG, {
    name: "REMOTE_PATH",
    description: "Folder or file to list (default: the top)",
  }],
  options: [
    CODE_FILE,
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
  ],
  environment: CODE_ENV,
};

/** `ferry get`. */
export const getSpec: CommandSpec = {
  name: "get",
  summary: "Download files or folders",
  usage: "get HOST[:PORT] REMOTE_PATH... [-o DIR] [--force] [--json] [--quiet]",
  description:
    "Downloads files, or folders with everything in them. Each file is verified against the server's SHA-256 before it takes its name; a cut download resumes where it stopped when you run the same command again. Existing files are kept unless --force.",
  args: [HOST_ARG, { name: "REMOTE_PATH...", description: "Files or folders on the server" }],
  options: [
    {
      name: "output",
      short: "o",
      type: "string",
      value: "DIR",
      description: "Folder to download into",
      default: ".",
    },
    FORCE_LOCAL,
    CODE_FILE,
    { ...JSON_OPTION, description: "Print one JSON object per line for each event" },
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry get 192.168.1.20 report.pdf", "download one file into the current folder"],
    ["ferry get 192.168.1.20 photos notes.txt -o ~/Downloads", "a folder and a file"],
  ],
  environment: CODE_ENV,
};

/** `ferry put`. */
export const putSpec: CommandSpec = {
  name: "put",
  summary: "Upload files or folders",
  usage: "put HOST[:PORT] LOCAL_PATH... [--to REMOTE_DIR] [--force] [--json] [--quiet]",
  description:
    "Uploads files, or folders with everything in them. They land on the server as <prefix><name> (uploaded_<name> by default). A cut upload resumes when you run the same command again. Existing files on the server are kept unless --force.",
  args: [HOST_ARG, { name: "LOCAL_PATH...", description: "Files or folders to send" }],
  options: [
    {
      name: "to",
      type: "string",
      value: "REMOTE_DIR",
      description: "Folder on the server to upload into",
      default: "the top",
    },
    FORCE_REMOTE,
    CODE_FILE,
    { ...JSON_OPTION, description: "Print one JSON object per line for each event" },
    QUIET,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  examples: [
    ["ferry put 192.168.1.20 notes.txt", "upload a file (it lands as uploaded_notes.txt)"],
    ["ferry put 192.168.1.20 build/ --to releases", "upload a folder into releases/"],
  ],
  environment: CODE_ENV,
};

/** `ferry connect`. */
export const connectSpec: CommandSpec = {
  name: "connect",
  summary: "Open an interactive shell on a server",
  usage: "connect HOST[:PORT] [--code-file PATH]",
  description:
    "Opens a shell with the commands ls, get, put, help and quit. When standard input is not a terminal, reads commands line by line without a prompt, so it can be scripted (like sftp -b -).",
  args: [HOST_ARG],
  options: [CODE_FILE, QUIET],
  minArgs: 1,
  maxArgs: 1,
  examples: [
    ["ferry connect 192.168.1.20", "an interactive session"],
    ["printf 'ls\\nget a.txt\\n' | ferry connect 192.168.1.20", "a scripted session"],
  ],
  environment: CODE_ENV,
};

/** `ferry completions`. */
export const completionsSpec: CommandSpec = {
  name: "completions",
  summary: "Print a shell completion script",
  usage: "completions bash|zsh|fish",
  description:
    "Prints a completion script for your shell. For bash: source <(ferry completions bash).",
  args: [{ name: "SHELL", description: "bash, zsh or fish" }],
  options: [],
  minArgs: 1,
  maxArgs: 1,
  examples: [["source <(ferry completions bash)", "complete ferry's commands and flags in bash"]],
};

/** All commands, in the order help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  codeSpec,
  serveSpec,
  lsSpec,
  getSpec,
  putSpec,
  connectSpec,
  completionsSpec,
];
