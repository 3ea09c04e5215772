/**
 * Tab completion in the `ferry connect` shell: command names, then each command's arguments as
 * its table entry says: remote paths from the server's listing of the folder being typed (listed
 * once per folder and session, and never waited for long), local paths from the local folder.
 *
 * A completion is written so that the line still splits into the same words: a name with a space
 * gets a backslash, or stays inside the quote the user opened. A folder's completion ends in `/`
 * (Tab again lists it), a file's in a space (closing an open quote first).
 *
 * @module
 */
import { join } from "node:path";
import type { ListEntry } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import { type ArgumentKind, findShellCommand, SHELL_COMMANDS } from "./commands.ts";
import { resolveRemotePath, type ShellSession } from "./session.ts";
import { lastWord, type OpenQuote, quoteForWord } from "./words.ts";

/** How long Tab waits for a remote listing before it completes nothing (the listing goes on). */
export const COMPLETION_WAIT_MS = 3_000;

/** More matches than this are not listed (as if there were none): the screen would scroll away. */
export const MAX_COMPLETIONS = 1_000;

/** One name a completion may offer, with whether it is a folder. */
export interface Candidate {
  name: string;
  folder: boolean;
}

/** Where to find the names of a folder, remote or local; `undefined` when there are none. */
export interface CandidateSource {
  /** The entries of the remote folder `components`. */
  remote(components: readonly string[]): Promise<Candidate[] | undefined>;
  /** The entries of the local folder `path` (`""` is the current one). */
  local(path: string): Promise<Candidate[] | undefined>;
}

/**
 * Completes the end of `line` (the text before the cursor) as readline wants it: the
 * completions, and the end of the line they replace. Never throws: a folder that cannot be
 * listed completes nothing.
 */
export async function complete(
  line: string,
  cwd: readonly string[],
  source: CandidateSource,
): Promise<[string[], string]> {
  const word = lastWord(line);
  if (word.before.length === 0) {
    const names = SHELL_COMMANDS.map((command) => command.names[0]!);
    const hits = names.filter((name) => name.startsWith(word.text));
    return [hits.map((name) => name + " "), line.slice(word.starts[0] ?? line.length)];
  }
  const kind = argumentKind(word.before);
  if (kind === undefined || (word.text.startsWith("-") && !word.text.includes("/"))) {
    return [[], ""];
  }
  const slash = word.text.lastIndexOf("/");
  const folderText = word.text.slice(0, slash + 1);
  const typed = word.text.slice(slash + 1);
  const replaced = line.slice(word.starts[slash + 1] ?? line.length);
  let candidates: Candidate[] | undefined;
  try {
    candidates = kind.startsWith("remote")
      ? await source.remote(resolveRemotePath(cwd, folderText))
      : await source.local(folderText);
  } catch {
    candidates = undefined;
  }
  const foldersOnly = kind.endsWith("-folder");
  const matches = (candidates ?? []).filter((candidate) =>
    candidate.name.startsWith(typed) && (!foldersOnly || candidate.folder) &&
    (typed.startsWith(".") || !candidate.name.startsWith(".")) &&
    sanitizeForDisplay(candidate.name) === candidate.name // nothing invisible or controlling
  ).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  if (matches.length === 0 || matches.length > MAX_COMPLETIONS) return [[], replaced];
  const spell = (rest: string) => {
    if (!word.escaping) return replaced + quoteForWord(rest, word.quote);
    const [first = "", ...others] = rest; // the typed backslash escapes the first character
    return replaced + first + quoteForWord(others.join(""), word.quote);
  };
  if (matches.length === 1) {
    const only = matches[0]!;
    return [[spell(only.name.slice(typed.length)) + ending(only, word.quote)], replaced];
  }
  const shared = commonPrefix(matches.map((candidate) => candidate.name));
  if (shared.length > typed.length) return [[spell(shared.slice(typed.length))], replaced];
  return [
    matches.map((candidate) =>
      spell(candidate.name.slice(typed.length)) + (candidate.folder ? "/" : "")
    ),
    replaced,
  ];
}

/** What ends a completed name: `/` after a folder; after a file, the open quote and a space. */
function ending(candidate: Candidate, quote: OpenQuote): string {
  return candidate.folder ? "/" : `${quote ?? ""} `;
}

/** What the argument after `before` (the command, then its words) is, if it is a path. */
function argumentKind(before: readonly string[]): ArgumentKind | undefined {
  const [name, ...words] = before;
  const command = findShellCommand(name!);
  if (!command?.arguments) return undefined;
  const flags = new Set(command.flags?.flat());
  return command.arguments[words.filter((word) => !flags.has(word)).length];
}

/** The longest start that every one of `names` shares, never half a surrogate pair. */
function commonPrefix(names: readonly string[]): string {
  let prefix = names[0] ?? "";
  for (const name of names) {
    while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return /[\ud800-\udbff]$/.test(prefix) ? prefix.slice(0, -1) : prefix;
}

/**
 * The shell's sources of names: the server's listings through `session` (cached per folder,
 * waited for at most {@link COMPLETION_WAIT_MS}), and the local folders.
 */
export function sessionCandidates(session: ShellSession): CandidateSource {
  return {
    async remote(components) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), COMPLETION_WAIT_MS);
      });
      try {
        const entries = await Promise.race([session.folderEntries(components), late]);
        return entries?.map(fromEntry);
      } finally {
        clearTimeout(timer);
      }
    },
    async local(path) {
      const candidates: Candidate[] = [];
      for await (const entry of Deno.readDir(path === "" ? "." : path)) {
        let folder = entry.isDirectory;
        if (entry.isSymlink) {
          folder = await Deno.stat(join(path, entry.name)).then(
            (info) => info.isDirectory,
            () => false,
          );
        }
        candidates.push({ name: entry.name, folder });
      }
      return candidates;
    },
  };
}

function fromEntry(entry: ListEntry): Candidate {
  return { name: entry.name, folder: entry.type === "dir" };
}
