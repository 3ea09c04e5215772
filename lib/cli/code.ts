/**
 * `ferry code`: create a connection code file and print the code, or, with `--save`, store a code
 * someone gave you (typed without echo, or piped on standard input), never printing it; and
 * `ferry code add|list|revoke`: the server's named codes, each with its own rights, folder and
 * expiry, kept in the store beside the code file (lib/code_store.ts).
 *
 * @module
 */
import {
  codeIdentifier,
  formatCode,
  generateCode,
  generateIdentifier,
  generateNamedCode,
  normaliseCode,
  normaliseCodeFrom,
} from "../code.ts";
import { codeFileWarning, DEFAULT_CODE_FILE, readCodeFile, writeCodeFile } from "../code_file.ts";
import {
  codeStorePath,
  DEFAULT_CODE_NAME,
  lastUsePath,
  type NamedCode,
  normaliseScope,
  readCodeStore,
  readLastUse,
  updateCodeStore,
  validateCodeName,
} from "../code_store.ts";
import { ExistsError, NotFoundError, UsageError } from "../errors.ts";
import type { ServeMode } from "../protocol/messages.ts";
import { lstatOrNull } from "../_fs.ts";
import { type ParsedCommand, suggest } from "./args.ts";
import type { codeSpec } from "./specs/code.ts";
import { promptHiddenCode, readFirstLine, withFirstReadTimeout } from "./code_input.ts";
import { printError, printLine } from "./output.ts";

/**
 * How long plain `ferry code` waits for piped input before taking standard input to be silent
 * (`ssh host ferry code` keeps it open and never writes), in milliseconds.
 */
const PIPED_INPUT_WAIT_MS = 300;

/** The subcommands of `ferry code`, after the word `code`. */
const SUBCOMMANDS = ["add", "list", "revoke"] as const;

type CodeFlags = ParsedCommand<typeof codeSpec>["flags"];

/** Runs `ferry code`. Permission: read and write on the code file's folder. */
export async function runCode(
  { positionals, flags }: ParsedCommand<typeof codeSpec>,
): Promise<void> {
  const path = flags.file ?? DEFAULT_CODE_FILE;
  const [subcommand, name] = positionals;
  if (subcommand !== undefined) return await runSubcommand(subcommand, name, path, flags);
  refuseFlags(flags, ["read-only", "upload-only", "scope", "expires", "json"], "add or list");
  if (flags.save) return await saveCode(path, flags.force);
  await refusePipedCode();
  const code = generateCode();
  await writeCodeFile(path, code, { force: flags.force });
  printError(`Wrote a new connection code to ${path} (readable by you only).`);
  printLine(code);
}

/**
 * `ferry code --save`: takes the code from the terminal (no echo) or piped stdin, checks it, and
 * writes it to `path` with mode 0600. An existing file holding the same code is rewritten (which
 * also makes it 0600); one holding another code, or none, is replaced only with `force`.
 */
async function saveCode(path: string, force: boolean): Promise<void> {
  const typed = Deno.stdin.isTerminal();
  const input = typed ? await promptHiddenCode() : await readFirstLine(Deno.stdin);
  if (input === "") {
    throw new UsageError(
      typed
        ? "No connection code entered"
        : "No connection code on standard input: pipe it in (`ferry code --save < file`) or run `ferry code --save` on a terminal to type it",
    );
  }
  const code = normaliseCodeFrom(input, typed ? "" : " on standard input");
  const existing = await lstatOrNull(path);
  if (existing !== null && !existing.isDirectory && !force) {
    const held = await readCodeFile(path).catch(() => undefined);
    if (held !== code) {
      throw new ExistsError(
        `Code file ${path} already exists and holds another code: pass --force to replace it`,
      );
    }
  }
  // Past the check above, an existing file is to be replaced (or holds this very code).
  await writeCodeFile(path, formatCode(code), { force: existing !== null });
  printError(`Saved the code in ${path} (mode 0600)`);
}

/**
 * Refuses `echo CODE | ferry code`: plain `ferry code` makes a new code, and silently doing so
 * while the user meant to store the one they piped in would leave them with the wrong code.
 * Standard input that is a terminal, empty (`/dev/null`), or silent for a moment is no input.
 */
async function refusePipedCode(): Promise<void> {
  if (Deno.stdin.isTerminal()) return;
  const input = await readFirstLine(withFirstReadTimeout(Deno.stdin, PIPED_INPUT_WAIT_MS))
    .catch(() => "(unreadable)");
  if (input === "") return;
  throw new UsageError(
    "`ferry code` makes a new code and reads nothing from standard input: to store a code you were given, run `ferry code --save` (it reads the code from standard input, or asks for it without showing it)",
  );
}

/** Runs `ferry code add|list|revoke` on the store that goes with the code file `path`. */
async function runSubcommand(
  subcommand: string,
  name: string | undefined,
  path: string,
  flags: CodeFlags,
): Promise<void> {
  const store = codeStorePath(path);
  refuseFlags(flags, ["save", "force"], "");
  switch (subcommand) {
    case "add":
      if (name === undefined) throw new UsageError("Missing NAME: ferry code add NAME");
      refuseFlags(flags, ["json"], "list");
      return await addCode(path, store, name, flags);
    case "list":
      if (name !== undefined) {
        throw new UsageError(`ferry code list takes no NAME: it shows every code`);
      }
      refuseFlags(flags, ["read-only", "upload-only", "scope", "expires"], "add");
      return await listCodes(path, store, flags.json);
    case "revoke":
      if (name === undefined) throw new UsageError("Missing NAME: ferry code revoke NAME");
      refuseFlags(flags, ["read-only", "upload-only", "scope", "expires", "json"], "add or list");
      return await revokeCode(store, name);
    default: {
      const guess = suggest(subcommand, SUBCOMMANDS);
      throw new UsageError(
        `Unknown subcommand ${
          JSON.stringify(subcommand.slice(0, 40))
        }: ferry code takes add, list or revoke` +
          (guess ? ` (did you mean ${guess}?)` : ""),
      );
    }
  }
}

/** Refuses any of `names` given in `flags`: they belong to another use of `ferry code`. */
function refuseFlags(flags: CodeFlags, names: readonly (keyof CodeFlags)[], where: string): void {
  const given = names.find((flag) => flags[flag] !== undefined && flags[flag] !== false);
  if (given === undefined) return;
  throw new UsageError(
    where === ""
      ? `Option --${String(given)} is for plain \`ferry code\`, not for its subcommands`
      : `Option --${String(given)} is for \`ferry code ${where}\``,
  );
}

/** `ferry code add NAME`: a new named code in the store, printed once on stdout. */
async function addCode(
  codeFile: string,
  store: string,
  name: string,
  flags: CodeFlags,
): Promise<void> {
  validateCodeName(name);
  const rights: ServeMode = flags["read-only"]
    ? "read-only"
    : flags["upload-only"]
    ? "upload-only"
    : "read-write";
  const scope = normaliseScope(flags.scope ?? "");
  const now = Date.now();
  const expires = flags.expires === undefined ? undefined : now + flags.expires;
  const used = await readLastUse(lastUsePath(store));
  // A default code written with an identifier (a named code saved as the code file) keeps it.
  const fallback = await readCodeFile(codeFile).catch(() => undefined);
  const reserved = fallback === undefined ? [] : [codeIdentifier(fallback)];
  let code = "";
  await updateCodeStore(store, (codes) => {
    const taken = codes.find((other) => other.name.toLowerCase() === name.toLowerCase());
    if (taken !== undefined) {
      throw new ExistsError(
        `A code named "${taken.name}" exists already in ${store}: revoke it first, or choose another name`,
      );
    }
    // Not an identifier of a code revoked lately either: its last use would show for this one.
    const identifier = generateIdentifier(
      new Set([...codes.map((other) => other.identifier), ...used.keys(), ...reserved]),
    );
    code = generateNamedCode(identifier);
    const added: NamedCode = {
      name,
      identifier,
      secret: normaliseCode(code).slice(identifier.length),
      rights,
      scope,
      ...(expires === undefined ? {} : { expires }),
      created: now,
    };
    return [...codes, added];
  });
  const what = [
    rights,
    scope === "" ? "the whole folder" : `folder ${JSON.stringify(scope)} only`,
    expires === undefined ? "no expiry" : `expires ${formatTime(expires)}`,
  ].join(", ");
  printError(
    `Added code "${name}" (${what}) to ${store} (readable by you only). Give it to whoever may use it; a running ferry serve takes it at once.`,
  );
  printLine(code);
}

/** `ferry code revoke NAME`: the code leaves the store; a running server refuses it at once. */
async function revokeCode(store: string, name: string): Promise<void> {
  if (name.toLowerCase() === DEFAULT_CODE_NAME) {
    throw new UsageError(
      "The default code is the code file itself: replace it with `ferry code --force` (a running server refuses the old one at once)",
    );
  }
  if (lstatOrNull(store) === null) {
    throw new NotFoundError(`No code named "${name}": ${store} does not exist`);
  }
  let revoked: NamedCode | undefined;
  await updateCodeStore(store, (codes) => {
    revoked = codes.find((code) => code.name.toLowerCase() === name.toLowerCase());
    if (revoked === undefined) {
      throw new NotFoundError(
        `No code named ${JSON.stringify(name)} in ${store}: \`ferry code list\` shows the names`,
      );
    }
    return codes.filter((code) => code !== revoked);
  });
  printError(
    `Revoked code "${revoked!.name}" (${
      revoked!.identifier
    }): a running ferry serve refuses it now and closes its sessions.`,
  );
}

/** One row of `ferry code list`. */
interface CodeRow {
  name: string;
  /** `null` for a default code, which has none. */
  identifier: string | null;
  /** A named code's rights; for the default code, `server` (whatever the server allows). */
  rights: ServeMode | "server";
  /** `""`: the whole served folder. */
  scope: string;
  expires: number | null;
  lastUse: number | null;
  created: number | null;
}

/** `ferry code list`: the default code (if its file is there) and every named code. */
async function listCodes(codeFile: string, store: string, json: boolean): Promise<void> {
  const codes = await readCodeStore(store);
  const warning = lstatOrNull(store) === null ? undefined : await codeFileWarning(store);
  if (warning !== undefined) printError(warning);
  const used = await readLastUse(lastUsePath(store));
  const rows: CodeRow[] = [];
  const fallback = await defaultCode(codeFile);
  if (fallback !== undefined) {
    const identifier = codeIdentifier(fallback);
    rows.push({
      name: DEFAULT_CODE_NAME,
      identifier: identifier === "0000" ? null : identifier,
      rights: "server",
      scope: "",
      expires: null,
      lastUse: used.get(identifier) ?? null,
      created: null,
    });
  }
  for (const code of codes) {
    rows.push({
      name: code.name,
      identifier: code.identifier,
      rights: code.rights,
      scope: code.scope,
      expires: code.expires ?? null,
      lastUse: used.get(code.identifier) ?? null,
      created: code.created,
    });
  }
  if (json) {
    printLine(JSON.stringify(rows.map((row) => ({
      ...row,
      expires: isoOrNull(row.expires),
      lastUse: isoOrNull(row.lastUse),
      created: isoOrNull(row.created),
      expired: row.expires !== null && row.expires <= Date.now(),
    }))));
    return;
  }
  if (rows.length === 0) {
    printError(
      `No codes: ${codeFile} does not exist and ${store} holds none (ferry code, or ferry code add NAME)`,
    );
    return;
  }
  const table = [
    ["NAME", "IDENTIFIER", "RIGHTS", "SCOPE", "EXPIRES", "LAST USE"],
    ...rows.map((row) => [
      row.name,
      row.identifier ?? "-",
      row.rights === "server" ? "(server's mode)" : row.rights,
      row.scope === "" ? "/" : row.scope,
      row.expires === null
        ? "never"
        : `${formatTime(row.expires)}${row.expires <= Date.now() ? " (expired)" : ""}`,
      row.lastUse === null ? "never" : formatTime(row.lastUse),
    ]),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  for (const row of table) {
    printLine(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
  }
}

/** The code in the code file at `path`, if it holds one (it is the server's default code). */
async function defaultCode(path: string): Promise<string | undefined> {
  if (lstatOrNull(path) === null) return undefined;
  try {
    return await readCodeFile(path);
  } catch (error) {
    printError(`ferry: warning: ${(error as Error).message}`);
    return undefined;
  }
}

/** `2025-05-01 10:00` (UTC), as `ferry ls` writes times. */
function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 16);
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** `ferry code`: its spec and its runner. */
