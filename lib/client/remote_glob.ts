/**
 * Remote globs for `ferry get HOST 'photos/*.jpg'`: the client lists the pattern's folder on the
 * server (one level, not recursively) and keeps the names the last component matches, as a shell
 * would. Only the last component may hold wildcards; the folders above it are taken literally.
 *
 * Wildcards, as in POSIX shells: `*` any run of characters, `?` one character, `[abc]`, `[a-z]`
 * and `[!a-z]` (or `[^a-z]`) one character of (or not of) a set. A name starting with a dot is
 * matched only by a pattern that starts with a dot. A `[` without its `]` is an ordinary
 * character. There is no escape character (a backslash is refused in remote paths): a name that
 * holds `*`, `?` or `[` itself is reached with `--no-glob`, which takes every path literally.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { globMatcher } from "./remote_glob.ts";
 *
 * const jpg = globMatcher("*.jpg");
 * assert.ok(jpg("a.jpg"));
 * assert.ok(!jpg(".hidden.jpg"));
 * assert.ok(globMatcher("img_[0-9]?.png")("img_42.png"));
 * ```
 *
 * @module
 */
import { RemoteError, UsageError } from "../errors.ts";
import type { ListEntry } from "../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { FerryClient } from "./client.ts";

/** Whether `name` (one path component) holds a wildcard: `*`, `?` or `[`. */
export function hasWildcard(name: string): boolean {
  return /[*?[]/.test(name);
}

/**
 * Whether the remote path `path` is a pattern to expand: its last component has a wildcard.
 * A wildcard in an earlier component (`a/*\/b`) is a {@link UsageError}; so is a pattern that
 * `parseRemotePath` refuses (its `PathError` passes through).
 */
export function isRemoteGlob(path: string): boolean {
  const components = parseRemotePath(path);
  if (components.slice(0, -1).some(hasWildcard)) {
    throw new UsageError(
      `Only the last component of a remote path may have wildcards (*, ?, [...]): ${
        JSON.stringify(sanitizeForDisplay(path))
      }; use --no-glob to take it literally`,
    );
  }
  return hasWildcard(components.at(-1) ?? "");
}

/** Characters that mean something in a regular expression outside a class (with the `u` flag). */
const REGEXP_SPECIAL = /[\\^$.*+?()[\]{}|/]/g;
/** Characters that mean something inside a class (with the `u` flag). */
const CLASS_SPECIAL = /[\\\]\[^-]/g;

/**
 * A test of names (single components) against the shell pattern `pattern` (see the module
 * documentation). Pure; `pattern` is never interpreted as a regular expression.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const chars = [...pattern];
  let source = "";
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === "*") {
      source += "[^/]*";
    } else if (char === "?") {
      source += "[^/]";
    } else if (char === "[") {
      const set = bracket(chars, i);
      if (set === undefined) {
        source += "\\[";
      } else {
        source += set.source;
        i = set.end;
      }
    } else {
      source += char.replace(REGEXP_SPECIAL, "\\$&");
    }
  }
  const regexp = new RegExp(`^${source}$`, "su");
  const dotOk = pattern.startsWith(".");
  return (name) => (dotOk || !name.startsWith(".")) && regexp.test(name);
}

/**
 * The bracket expression that opens at `chars[start]` (`[`), as a regular-expression class and
 * the index of its closing `]`, or `undefined` when it is not closed. A `]` right after `[`, `[!`
 * or `[^` belongs to the set; `-` between two characters is a range, elsewhere a `-`.
 */
function bracket(
  chars: readonly string[],
  start: number,
): { source: string; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (chars[i] === "!" || chars[i] === "^") {
    negate = true;
    i++;
  }
  const members: string[] = [];
  for (let first = true; i < chars.length; i++, first = false) {
    const char = chars[i]!;
    if (char === "]" && !first) {
      // Only reversed ranges: a set of nothing (or, negated, of anything).
      if (members.length === 0) return { source: negate ? "[\\s\\S]" : "[^\\s\\S]", end: i };
      return { source: `[${negate ? "^" : ""}${members.join("")}]`, end: i };
    }
    const escaped = char.replace(CLASS_SPECIAL, "\\$&");
    const next = chars[i + 1];
    const to = chars[i + 2];
    if (next === "-" && to !== undefined && to !== "]") {
      // A reversed range (`[z-a]`) holds nothing, as in shells.
      if (to.codePointAt(0)! >= char.codePointAt(0)!) {
        members.push(`${escaped}-${to.replace(CLASS_SPECIAL, "\\$&")}`);
      }
      i += 2;
    } else {
      members.push(escaped);
    }
  }
  return undefined;
}

/**
 * The children of the remote folder `components`, or `undefined` when it is a file. A file is
 * listed as itself, under its own name, which a folder holding only a file of its own name
 * (`a/a`) looks like too: that one case is told apart by a recursive listing, which names a
 * file `""` and is one entry long for such a folder. A missing path is the server's
 * `RemoteError` (`not-found`). Needs no permission beyond the open connection.
 */
export async function listRemoteFolder(
  client: FerryClient,
  components: readonly string[],
): Promise<ListEntry[] | undefined> {
  const folder = components.join("/");
  const entries = await client.list(folder);
  const only = entries.length === 1 ? entries[0]! : undefined;
  if (only?.type !== "file" || only.name !== components.at(-1)) return entries;
  const deep = await client.list(folder, { recursive: true });
  return deep.length === 1 && deep[0]!.name === "" ? undefined : entries;
}

/** What {@link expandRemoteGlobs} found. */
export interface GlobExpansion {
  /** The paths to download: literal ones as given, each pattern replaced by its matches. */
  paths: string[];
  /** Patterns that matched nothing, each with why. */
  unmatched: { name: string; reason: string }[];
}

/**
 * Replaces each pattern among `paths` (see {@link isRemoteGlob}) with the remote files and
 * folders it matches, sorted by name; other paths are kept as given, in order, and a path named
 * twice is kept once. A pattern whose folder is missing, or that matches nothing, is named in
 * `unmatched`. Needs no permission beyond the open connection.
 */
export async function expandRemoteGlobs(
  client: FerryClient,
  paths: readonly string[],
): Promise<GlobExpansion> {
  const expanded = new Set<string>();
  const unmatched: { name: string; reason: string }[] = [];
  for (const path of paths) {
    if (!isRemoteGlob(path)) {
      expanded.add(path);
      continue;
    }
    const components = parseRemotePath(path);
    const pattern = components.pop()!;
    const found = await matchRemoteGlob(client, components, pattern);
    if ("reason" in found) unmatched.push({ name: sanitizeForDisplay(path), reason: found.reason });
    else for (const match of found.paths) expanded.add(match);
  }
  return { paths: [...expanded], unmatched };
}

/**
 * The remote paths of the files and folders in the remote folder `folder` (its components, taken
 * literally) whose names `pattern` matches (see {@link globMatcher}), sorted by name; or, when
 * there are none, why: the folder is missing or is a file (the server's reason), or nothing
 * matches ("no such file or folder"). Needs no permission beyond the open connection.
 */
export async function matchRemoteGlob(
  client: FerryClient,
  folder: readonly string[],
  pattern: string,
): Promise<{ paths: string[] } | { reason: string }> {
  const matches = globMatcher(pattern);
  let names: string[];
  try {
    const entries = await listRemoteFolder(client, folder);
    if (entries === undefined) return { reason: "not a folder on the server" };
    names = entries.map((entry) => entry.name).filter(matches);
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    return { reason: error.message };
  }
  if (names.length === 0) return { reason: "no such file or folder" };
  return { paths: names.sort().map((name) => [...folder, name].join("/")) };
}
