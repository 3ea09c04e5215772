/**
 * Puts a `ferry` command on the PATH of someone who has Node.js and npm and no Deno. Run from the
 * checkout:
 *
 * ```sh
 * npx -y deno@2.9.6 run --allow-read --allow-write="$HOME/.local" --allow-env=HOME,PATH scripts/install.ts
 * ```
 *
 * `npx` runs a Deno kept in npm's cache, which is not on the PATH and may be cleaned away, so a
 * `deno install -g` shim (a script that runs `deno`) does not work there. This script copies the
 * Deno it runs on to `~/.local/share/ferry/deno` and writes `~/.local/bin/ferry` (or
 * `--bin DIR`), a small shell script that runs this checkout's `main.ts` with that Deno and
 * ferry's flags. It needs no root and no change to npm's settings. Running it again updates both
 * in place (a running ferry keeps its copy); `--uninstall` removes them. It says when the bin
 * folder is not on PATH, and what to add.
 *
 * Permissions: read (the Deno binary, the checkout, the folders on PATH), write on the bin and
 * data folders, env HOME and PATH.
 *
 * @module
 */
// Loads ferry's whole module graph, without running it: Deno fetches and caches ferry's npm
// libraries now, so the installed command starts without the network, and a checkout that does
// not load fails here, before anything is written.
import "../main.ts";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { lstatOrNull } from "../lib/_fs.ts";
import { printError, printLine } from "../lib/cli/output.ts";
import { requirePermissions } from "../lib/cli/permissions.ts";
import { describeError, ExistsError, exitCodeFor, FerryError, UsageError } from "../lib/errors.ts";
import { VERSION } from "../lib/version.ts";
import { CHECKOUT, runFlags } from "./_run_flags.ts";

/** The line that marks a launcher as written by this script (and so safe to replace or remove). */
export const LAUNCHER_MARK = "# ferry launcher written by scripts/install.ts";

/** What to install, and where. */
export interface InstallOptions {
  /** The home folder: the defaults are `HOME/.local/bin` and `HOME/.local/share/ferry`. */
  home: string;
  /** Folder for the `ferry` command (default `HOME/.local/bin`). */
  bin?: string;
  /** The PATH to check the bin folder against. */
  path: string;
  /** The Deno binary to copy (`Deno.execPath()`). */
  deno: string;
  /** The checkout whose `main.ts` the command runs. */
  checkout: string;
  /** Replace a `ferry` in the bin folder that this script did not write. */
  force: boolean;
}

/** The folders an install uses. */
export function installFolders(options: Pick<InstallOptions, "home" | "bin">): {
  bin: string;
  data: string;
} {
  return {
    bin: resolve(options.bin ?? join(options.home, ".local", "bin")),
    data: resolve(join(options.home, ".local", "share", "ferry")),
  };
}

/**
 * `text` as one word of a POSIX shell command: as it is when it holds only characters no shell
 * treats specially, else in single quotes, each `'` written as `'\''`.
 */
export function shellQuote(text: string): string {
  if (/^[\w@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `ferry` launcher: a POSIX shell script that runs `checkout/main.ts` with the Deno at `deno`,
 * ferry's flags ({@link runFlags}) and the permissions an installed command gets: the network,
 * reading and writing whatever the person names (as the `deno install` line the README used
 * to give), and the list of network interfaces (announcing and finding servers on each of them,
 * not only on the default route's). Deno's update check is off: this Deno is the one ferry was installed with.
 */
export function launcherScript(deno: string, checkout: string): string {
  const main = join(checkout, "main.ts");
  const flags = [
    ...runFlags(checkout),
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-sys=networkInterfaces",
  ];
  return [
    "#!/bin/sh",
    LAUNCHER_MARK,
    `# from ${checkout}: run it again to update, or with --uninstall to remove this command.`,
    `main=${shellQuote(main)}`,
    'if [ ! -f "$main" ]; then',
    `  echo "ferry: $main is gone (the checkout moved?): run scripts/install.ts again from ferry's checkout" >&2`,
    "  exit 1",
    "fi",
    `DENO_NO_UPDATE_CHECK=1 exec ${shellQuote(deno)} run ${
      flags.map(shellQuote).join(" ")
    } "$main" "$@"`,
    "",
  ].join("\n");
}

/**
 * What to tell the person about PATH: nothing when `bin` is on it and is the first folder there
 * with a `ferry`; how to add it when it is missing; which other `ferry` wins when one comes first.
 * `exists` says whether a file is at a path. Needs no permissions but what `exists` uses.
 */
export function pathAdvice(
  bin: string,
  path: string,
  home: string,
  exists: (path: string) => boolean,
): string[] {
  const folders = path.split(":").filter((folder) => folder !== "").map((folder) =>
    resolve(folder)
  );
  const index = folders.indexOf(resolve(bin));
  const shown = tilde(bin, home);
  if (index < 0) {
    const inHome = resolve(bin).startsWith(resolve(home) + "/");
    const exported = inHome ? `$HOME/${resolve(bin).slice(resolve(home).length + 1)}` : bin;
    return [
      `${shown} is not on your PATH, so the shell does not find ferry yet. Add it, then open a new terminal:`,
      `  echo 'export PATH="${exported}:$PATH"' >> ~/.bashrc   # bash; zsh: ~/.zshrc; or ~/.profile`,
      `  fish_add_path ${shown}                                 # fish`,
      `Until then, run ${join(shown, "ferry")}.`,
    ];
  }
  const earlier = folders.slice(0, index).map((folder) => join(folder, "ferry")).find(exists);
  if (earlier === undefined) return [];
  return [
    `Another ferry comes before it on your PATH: ${earlier}. Remove that one (deno uninstall -g ferry, if deno install made it), or put ${shown} first on PATH.`,
  ];
}

/** `path` with the home folder written `~`, for messages. */
function tilde(path: string, home: string): string {
  const base = resolve(home);
  return path === base ? "~" : path.startsWith(base + "/") ? `~${path.slice(base.length)}` : path;
}

/** Whether the file at `path` is a launcher this script wrote. */
async function isOurLauncher(path: string): Promise<boolean> {
  try {
    const text = await Deno.readTextFile(path);
    return text.split("\n", 3).includes(LAUNCHER_MARK);
  } catch {
    return false;
  }
}

/** Writes `data` (or copies `source`) to `path` through a temporary file renamed into place. */
async function replaceFile(
  path: string,
  content: { data: string } | { source: string },
  mode: number,
): Promise<void> {
  const temporary = join(resolve(path, ".."), `.${crypto.randomUUID()}.ferry-install.tmp`);
  try {
    if ("data" in content) {
      await Deno.writeTextFile(temporary, content.data, { createNew: true, mode });
    } else {
      await Deno.copyFile(content.source, temporary);
    }
    await Deno.chmod(temporary, mode);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

/**
 * Installs (or updates) the `ferry` command and returns what to print. Permissions: read on
 * `deno`, the checkout and the folders on PATH; write on the bin and data folders.
 *
 * @throws {ExistsError} If the bin folder holds a `ferry` this script did not write, without `force`.
 * @throws {PermissionError} If a folder cannot be written, naming the flag to add.
 */
export async function install(options: InstallOptions): Promise<string[]> {
  if (Deno.build.os === "windows") {
    throw new UsageError(
      "scripts/install.ts writes a POSIX shell launcher; on Windows, install with deno install (see README)",
    );
  }
  const { bin, data } = installFolders(options);
  requireWrite(bin, data);
  const checkout = await Deno.realPath(options.checkout);
  const main = join(checkout, "main.ts");
  if (lstatOrNull(main) === null) throw new FerryError(`Cannot install: ${main} is missing`);
  const launcher = join(bin, "ferry");
  const existing = lstatOrNull(launcher);
  const ours = existing !== null && await isOurLauncher(launcher);
  if (existing !== null && !ours && !options.force) {
    throw new ExistsError(
      `${launcher} exists and was not written by this script: remove it, or pass --force to replace it`,
    );
  }
  const previous = ours ? await Deno.readTextFile(launcher) : "";

  await Deno.mkdir(data, { recursive: true });
  await Deno.mkdir(bin, { recursive: true });
  const deno = join(data, "deno");
  // Re-run with the installed Deno itself: nothing to copy.
  if (await realPathOrNull(deno) !== await Deno.realPath(options.deno)) {
    await replaceFile(deno, { source: options.deno }, 0o755);
  }
  await replaceFile(launcher, { data: launcherScript(deno, checkout) }, 0o755);

  const home = options.home;
  const lines = [
    `${ours ? "Updated" : "Installed"} ${tilde(launcher, home)}: ferry ${VERSION} from ${
      tilde(checkout, home)
    }, run by Deno ${Deno.version.deno} (${tilde(deno, home)}).`,
  ];
  if (ours && !previous.includes(shellQuote(main))) {
    lines.push("It used to run another checkout; it now runs this one.");
  }
  lines.push(
    "Keep this checkout where it is: `git pull` here updates ferry. Run this script again after",
    "moving it or to update Deno; add --uninstall to remove the command.",
  );
  const advice = pathAdvice(bin, options.path, home, (path) => lstatOrNull(path) !== null);
  return advice.length > 0 ? [...lines, "", ...advice] : [...lines, "", "Try: ferry --help"];
}

/**
 * Removes the `ferry` command and the copied Deno, and returns what to print. A `ferry` this
 * script did not write is left alone. Permissions: read and write on the bin and data folders.
 */
export async function uninstall(options: InstallOptions): Promise<string[]> {
  const { bin, data } = installFolders(options);
  requireWrite(bin, data);
  const launcher = join(bin, "ferry");
  const lines: string[] = [];
  const home = options.home;
  if (await isOurLauncher(launcher)) {
    await Deno.remove(launcher);
    lines.push(`Removed ${tilde(launcher, home)}.`);
  } else if (lstatOrNull(launcher) !== null) {
    lines.push(`Left ${tilde(launcher, home)} alone: this script did not write it.`);
  }
  if (lstatOrNull(data) !== null) {
    await Deno.remove(data, { recursive: true });
    lines.push(`Removed ${tilde(data, home)} (the copy of Deno).`);
  }
  if (lines.length === 0) {
    lines.push(`Nothing to remove: no ferry installed in ${tilde(bin, home)}.`);
  }
  lines.push(
    "Deno's cache of the libraries ferry uses stays (~/.cache/deno on Linux; safe to delete).",
  );
  return lines;
}

function requireWrite(...folders: string[]): void {
  requirePermissions(folders.map((folder) => ({
    descriptor: { name: "write" as const, path: folder },
    flag: `--allow-write=${folder}`,
    why: `to write in ${folder}`,
  })));
}

const HELP =
  `Installs the ferry command: ~/.local/bin/ferry, which runs this checkout's main.ts with a copy
of the Deno that runs this script (in ~/.local/share/ferry).

Usage (from the checkout):
  npx -y deno@2.9.6 run --allow-read --allow-write="$HOME/.local" --allow-env=HOME,PATH scripts/install.ts [options]

Options:
  --bin DIR     Folder for the ferry command (default ~/.local/bin; add --allow-write=DIR)
  --force       Replace a ferry in that folder that this script did not write
  --uninstall   Remove the command and the copy of Deno
  -h, --help    Show this help

Run it again to update in place.`;

/** Runs the script with `args`; returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: [...args],
      options: {
        bin: { type: "string" },
        force: { type: "boolean", default: false },
        uninstall: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    const home = Deno.env.get("HOME");
    if (!home) throw new UsageError("HOME is not set: cannot tell where to install");
    const options: InstallOptions = {
      home,
      bin: values.bin,
      path: Deno.env.get("PATH") ?? "",
      deno: Deno.execPath(),
      checkout: CHECKOUT,
      force: values.force,
    };
    const lines = values.uninstall ? await uninstall(options) : await install(options);
    printLine(lines.join("\n"));
    return 0;
  } catch (error) {
    const message = error instanceof TypeError && "code" in error
      ? `${error.message} (see --help)` // parseArgs: an unknown option or a missing value
      : describeError(error);
    printError(`install: ${message.split("\n")[0]}`);
    return error instanceof TypeError ? 2 : exitCodeFor(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
