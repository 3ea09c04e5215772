/**
 * What `deno task ferry` and `deno task serve` run: ferry's command line, in the folder the person
 * ran the task from, with Deno permissions scoped to what that one command line needs.
 *
 * `deno task` runs a task in the checkout (the folder of `deno.json`) and tells it in `INIT_CWD`
 * where the person stood. A task's flags are fixed in `deno.json`, but what ferry needs depends
 * on its arguments (`serve ~/Public --port 9000` needs `~/Public` and port 9000; `get HOST f -o
 * ~/Downloads` needs `~/Downloads`). So this launcher parses the command line with ferry's own
 * parser, works out the permissions (the README's "Permissions" table), and runs `main.ts` in a
 * child Deno in the person's folder, where relative paths and `./.connection_code` mean what
 * they say. The launcher itself touches no network and no shared file.
 *
 * It needs: run access to the Deno it runs on, to start the child (the tasks name that binary's
 * path, printed by `deno eval`: `--allow-run=deno` would allow the `deno` found on PATH, a link or
 * another Deno, never the same path as `Deno.execPath()`, or nothing at all when only `npx` has
 * one); read access, to see whether a code file exists yet; and `--allow-env=INIT_CWD`. Ctrl-C reaches the child from the terminal; SIGTERM is passed on; the
 * launcher exits with the child's status.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { lstatOrNull } from "../lib/_fs.ts";
import { DEFAULT_CODE_FILE } from "../lib/code_file.ts";
import { parseCommand, type ParsedCommand } from "../lib/cli/args.ts";
import { findCommand } from "../lib/cli/commands.ts";
import { parseHostPort } from "../lib/cli/common.ts";
import { printError } from "../lib/cli/output.ts";
import { worthAnnouncing } from "../lib/cli/serve_reach.ts";
import { parseServerTarget, ServerSearch } from "../lib/cli/target.ts";
import { ANNOUNCE_NET_HOSTS } from "../lib/net/announce.ts";
import { ExitCode } from "../lib/errors.ts";
import { formatAddress } from "../lib/net/address.ts";
import { DEFAULT_PORT } from "../lib/protocol/constants.ts";
import { DEFAULT_TOKEN_FILE } from "../lib/relay/wire.ts";
import { DEFAULT_RELAY_PORT } from "../lib/relay/wire.ts";
import { sanitizeForDisplay } from "../lib/protocol/remote_path.ts";
import { CHECKOUT, runFlags } from "./_run_flags.ts";

/** What {@link planTaskRun} decided: the child's permission flags, or why it will not run. */
export type TaskPlan = { permissions: string[] } | { refusal: string };

/** Where a task runs, for {@link planTaskRun}. */
export interface TaskContext {
  /** The folder the person ran `deno task` from (absolute). */
  here: string;
  /** The checkout holding `deno.json` (absolute). */
  checkout: string;
  /** Whether something is at `path` (a code file that `serve` would otherwise create). */
  exists(path: string): boolean;
}

/** Collects the paths and addresses a command line needs, then writes them as Deno flags. */
class Grants {
  readonly read = new Set<string>();
  readonly write = new Set<string>();
  readonly net = new Set<string>();
  /** The whole network: addresses learnt on the way (a server found on the LAN). */
  anyNet = false;
  readonly sys = new Set<string>();

  flags(): string[] {
    const flags: string[] = [];
    if (this.anyNet) flags.push("--allow-net");
    else if (this.net.size > 0) flags.push(`--allow-net=${[...this.net].join(",")}`);
    if (this.read.size > 0) flags.push(`--allow-read=${[...this.read].join(",")}`);
    if (this.write.size > 0) flags.push(`--allow-write=${[...this.write].join(",")}`);
    if (this.sys.size > 0) flags.push(`--allow-sys=${[...this.sys].join(",")}`);
    return flags;
  }

  /** The first path Deno could not be given: its permission flags split paths at commas. */
  unexpressible(): string | undefined {
    return [...this.read, ...this.write].find((path) => path.includes(","));
  }
}

/**
 * Works out the Deno permissions the command line `args` (as given to ferry) needs when run in
 * `context.here`: the network address it listens on or connects to (for `serve`, also the
 * announcements' UDP port and group and the list of network interfaces, unless `--no-announce`,
 * and the relay with its token file; for a client given `@`, the whole network, since the
 * server's address is learnt from its announcement), the folders and files it reads and writes
 * (relative paths taken from `here`), and `./.connection_code` there unless `--code-file` names
 * another. A command line ferry will refuse (a typo, a missing argument) gets
 * no permissions: ferry then prints its usual message.
 *
 * `serve` with no folder, run in the checkout itself, is refused: it would share ferry's own
 * source and `.git` history, never what anyone means by "share this folder". Naming the folder
 * (`deno task serve .` there, or any other) is accepted. Needs no permissions beyond what
 * `context.exists` uses.
 */
export function planTaskRun(args: readonly string[], context: TaskContext): TaskPlan {
  const [name, ...rest] = args;
  const command = name === undefined ? undefined : findCommand(name);
  if (command === undefined) return { permissions: [] };
  let parsed: ParsedCommand;
  try {
    parsed = parseCommand(command.spec, rest);
  } catch {
    return { permissions: [] };
  }
  if (parsed.flags.help) return { permissions: [] };
  const { positionals, flags } = parsed;
  const at = (path: string) => resolve(context.here, path);
  const text = (flag: string) => typeof flags[flag] === "string" ? flags[flag] : undefined;
  const codeFile = at(text("code-file") ?? DEFAULT_CODE_FILE);
  const grants = new Grants();

  switch (command.spec.name) {
    case "serve": {
      if (positionals[0] === undefined && resolve(context.here) === resolve(context.checkout)) {
        const config = resolve(context.checkout, "deno.json");
        return {
          refusal: "Not sharing ferry's own checkout (its source and .git history): run the " +
            `task from the folder to share (cd ~/Public && deno task --config ${config} serve), ` +
            "or name it (deno task serve ~/Public; deno task serve . to share the checkout anyway)",
        };
      }
      const root = at(positionals[0] ?? ".");
      const port = typeof flags.port === "number" ? flags.port : DEFAULT_PORT;
      const host = text("host") ?? "0.0.0.0";
      grants.net.add(formatAddress(host, port));
      if (!flags["no-announce"] && worthAnnouncing(host)) {
        // Announcements: a UDP port and a multicast group, on every network interface.
        for (const udp of ANNOUNCE_NET_HOSTS) grants.net.add(udp);
        grants.sys.add("networkInterfaces");
      }
      // The code file's folder also holds the named codes (`.connection_codes`), which ferry
      // code add may create while the server runs, and their last-use record, which the server
      // writes there (not with --read-only: then last use is simply not recorded).
      grants.read.add(root).add(codeFile).add(dirname(codeFile));
      if (!flags["read-only"]) grants.write.add(root).add(dirname(codeFile));
      if (!context.exists(codeFile)) {
        // ferry serve creates it: a temporary file beside it, renamed into place.
        grants.write.add(dirname(codeFile));
      }
      const relay = text("relay");
      if (relay !== undefined) {
        try {
          const { hostname, port } = parseHostPort(relay, DEFAULT_RELAY_PORT);
          grants.net.add(formatAddress(hostname, port));
        } catch {
          return { permissions: [] }; // ferry names what is wrong with the address
        }
        grants.read.add(at(text("relay-token-file") ?? DEFAULT_TOKEN_FILE));
      }
      break;
    }
    case "ls":
    case "get":
    case "put":
    case "connect": {
      try {
        const target = parseServerTarget(positionals[0] ?? "", text("relay"));
        if (target instanceof ServerSearch) {
          // `@`: the server's address comes from its announcement on the LAN, unknown until then.
          grants.anyNet = true;
          grants.sys.add("networkInterfaces");
        } else {
          grants.net.add(formatAddress(target.hostname, target.port));
        }
      } catch {
        return { permissions: [] }; // ferry names what is wrong with the address
      }
      grants.read.add(codeFile);
      if (command.spec.name === "get") {
        const as = text("as");
        const target = as !== undefined ? dirname(at(as)) : at(text("output") ?? ".");
        grants.read.add(target);
        grants.write.add(target);
      } else if (command.spec.name === "put") {
        for (const local of positionals.slice(1)) grants.read.add(at(local));
      } else if (command.spec.name === "connect") {
        // The shell's get and put work with files of the folder it was started in.
        grants.read.add(resolve(context.here));
        grants.write.add(resolve(context.here));
      }
      break;
    }
    case "relay": {
      const port = typeof flags.port === "number" ? flags.port : DEFAULT_RELAY_PORT;
      grants.net.add(formatAddress(text("host") ?? "0.0.0.0", port));
      const tokenFile = at(text("token-file") ?? DEFAULT_TOKEN_FILE);
      grants.read.add(tokenFile);
      if (!context.exists(tokenFile)) {
        // ferry relay creates it beside where it will live.
        grants.read.add(dirname(tokenFile));
        grants.write.add(dirname(tokenFile));
      }
      break;
    }
    case "code": {
      // Written atomically: a temporary file in the same folder, renamed over the code file.
      const folder = dirname(at(text("file") ?? DEFAULT_CODE_FILE));
      grants.read.add(folder);
      grants.write.add(folder);
      break;
    }
  }
  const comma = grants.unexpressible();
  if (comma !== undefined) {
    return {
      refusal: `Cannot give ferry access to ${sanitizeForDisplay(comma)} through deno task: ` +
        "Deno's permission flags split paths at commas. Rename it, or use the installed ferry",
    };
  }
  return { permissions: grants.flags() };
}

/**
 * Runs ferry with `args` in `here` as {@link planTaskRun} plans, and returns its exit status.
 * Permissions: run on `Deno.execPath()`, read.
 */
export async function runTask(args: readonly string[], here: string): Promise<number> {
  const plan = planTaskRun(args, {
    here,
    checkout: CHECKOUT,
    exists: (path) => {
      try {
        return lstatOrNull(path) !== null;
      } catch {
        return true; // unreadable: it is there, and ferry will say what is wrong with it
      }
    },
  });
  if ("refusal" in plan) {
    printError(`ferry: ${plan.refusal}`);
    return ExitCode.usage;
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...runFlags(),
        ...plan.permissions,
        resolve(CHECKOUT, "main.ts"),
        ...args,
      ],
      cwd: here,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    printError(`ferry: Cannot run ferry in ${here}: ${reason}`);
    return ExitCode.failure;
  }
  // Ctrl-C goes from the terminal to every process of the task, ferry included: ferry decides
  // what it means (a server stops gracefully), and the launcher waits for it. SIGTERM (from
  // `deno task`, which passes it on, or from `kill`) reaches only the launcher: pass it on too.
  const ignore = () => {};
  const forward = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
  };
  const unix = Deno.build.os !== "windows";
  if (unix) {
    Deno.addSignalListener("SIGINT", ignore);
    Deno.addSignalListener("SIGTERM", forward);
  }
  try {
    return (await child.status).code; // 128 + N when signal N ended it
  } finally {
    if (unix) {
      Deno.removeSignalListener("SIGINT", ignore);
      Deno.removeSignalListener("SIGTERM", forward);
    }
  }
}

if (import.meta.main) {
  const here = resolve(Deno.env.get("INIT_CWD") || Deno.cwd());
  Deno.exit(await runTask(Deno.args, here));
}
