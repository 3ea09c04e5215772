/**
 * Untrusted remote paths: validation, canonical form, safe display.
 *
 * A remote path is a POSIX-style string relative to the served folder ("" or "." is the folder
 * itself). Both sides receive them from a peer they do not trust, so every path is checked here,
 * as a string, before it is joined to anything on disk. The rules are strict on purpose: a name
 * that is refused here cannot be listed, fetched or written by ferry, which is the price of never
 * letting a peer escape the folder on any platform. Pure: no I/O, no permissions needed.
 *
 * @example
 * ```ts
 * import { parseRemotePath } from "./remote_path.ts";
 * import { PathError } from "../errors.ts";
 *
 * parseRemotePath("photos/2024/"); // ["photos", "2024"]
 * parseRemotePath("."); // []
 * try {
 *   parseRemotePath("../etc/passwd");
 * } catch (error) {
 *   if (!(error instanceof PathError)) throw error;
 * }
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { PathError } from "../errors.ts";

/** Prefix of the hidden partial files of transfers in progress; never listed nor addressable. */
export const PARTIAL_PREFIX = ".ferry-partial.";
/**
 * Names of the files that hold secrets: a connection code (`.connection_code`), a server's named
 * codes and their last use (`.connection_codes`, `.connection_codes.used`) and a relay's token
 * (`.relay_token`). Compared in lower case. Such a file never travels: no remote path may name
 * one, a server never lists nor serves one (wherever it lies in its folder), a client never sends
 * one, and a download never writes one (a hostile server could otherwise plant a code it knows
 * where `ferry serve` would later pick it up).
 */
export const SECRET_FILE_NAMES: ReadonlySet<string> = new Set([
  ".connection_code",
  ".connection_codes",
  ".connection_codes.used",
  ".relay_token",
]);

/** Whether `name` is one of {@link SECRET_FILE_NAMES}, in any case. */
export function isSecretFileName(name: string): boolean {
  return SECRET_FILE_NAMES.has(name.toLowerCase());
}

/** Longest accepted remote path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;
/** Longest accepted name (one path component), in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

/** Longest text quoted in an error message, in UTF-16 code units, before it is cut short. */
const MAX_QUOTED_LENGTH = 120;

/** C0 controls, DEL, C1 controls. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
/** Characters that reorder or break the line on a terminal: bidi marks, embeddings, overrides, isolates, line/paragraph separators. */
const BIDI_OR_LINE = /[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
/** Look-alikes of "/" and "\" that Unicode normalisation (NFKC) does not map to them. */
const SLASH_LOOKALIKE = /[\u2044\u2215\u2216\u29f5\u29f8\u29f9]/u;
/** Everything {@link sanitizeForDisplay} escapes: controls, bidi and line controls, lone surrogates. */
const UNSAFE_FOR_DISPLAY =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/gu;
/**
 * Characters that show nothing (Unicode's default-ignorable code points: zero-width space and
 * joiners, soft hyphen, word joiner, BOM, Hangul fillers, tag characters, variation selectors, ...),
 * so that `report\u200b.pdf` would look like `report.pdf`. Two of them are kept where they do their
 * visible job in emoji: the zero-width joiner between two pictographs (👩‍💻) and a variation
 * selector right after a pictograph or emoji character (❤️).
 */
const INVISIBLE =
  /(?<![\p{Extended_Pictographic}\p{Emoji_Modifier}]\ufe0f?)\u200d|\u200d(?!\p{Extended_Pictographic})|(?<!\p{Emoji})[\ufe00-\ufe0f]|(?![\u200d\ufe00-\ufe0f])\p{Default_Ignorable_Code_Point}/gu;
/** "C:", "c:foo", "C:\x": a Windows drive (or a drive-relative path). */
const WINDOWS_DRIVE = /^[a-z]:/i;
/** Characters Windows does not allow in names. */
const WINDOWS_RESERVED = /[<>:"|?*]/;
/** Windows device names, reserved in every folder and with any extension ("con.txt", "COM¹"). */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)$/i;

const encoder = new TextEncoder();

/**
 * Validates an untrusted POSIX-style path relative to the served folder and returns its
 * components (`[]` is the folder itself).
 *
 * Accepted spellings of a path are the canonical `a/b`, plus `""`, `"."`, one leading `"./"` and
 * one trailing `"/"`. Refused, with a {@link PathError} naming the reason: absolute paths, any
 * backslash, empty, `.` or `..` components (after the leading `./`), and every name that
 * {@link validateName} refuses, and paths longer than {@link MAX_PATH_BYTES}.
 *
 * @example
 * ```ts
 * import { parseRemotePath } from "./remote_path.ts";
 * parseRemotePath("./a/b/"); // ["a", "b"]
 * ```
 */
export function parseRemotePath(path: string): string[] {
  const problem = pathProblem(path);
  if (problem !== undefined) throw new PathError(`Refused path ${quote(path)}: ${problem}`);
  return splitValidPath(path);
}

/**
 * Validates one name (a single path component). Throws {@link PathError} when it is empty,
 * `.` or `..`, longer than {@link MAX_NAME_BYTES}, not valid Unicode, or contains a slash, a
 * backslash, a control character, a bidirectional control or a slash look-alike, or starts with
 * {@link PARTIAL_PREFIX} (in any case), or is one of {@link SECRET_FILE_NAMES}. The same checks are applied to the name's NFKC form, which
 * catches full-width and compatibility look-alikes ("／", "․․"). Names that only Windows cannot
 * store (`aux.c`, `trailing.`) are valid here: a receiver on Windows refuses them itself
 * ({@link validateLocalName}).
 */
export function validateName(name: string): void {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new PathError(`Refused name ${quote(name)}: ${problem}`);
}

/**
 * Why a name read from a local disk cannot be named exactly, or undefined: a name that is not
 * valid UTF-8 reaches Deno with U+FFFD in place of its bad bytes, where it could pass for another
 * file's name, so any name holding U+FFFD is refused. (What else {@link validateName} refuses is
 * {@link nameProblem}'s.)
 */
export function notUtf8Problem(name: string): string | undefined {
  return name.includes("\uFFFD") ? "its name is not valid UTF-8 (or holds U+FFFD)" : undefined;
}

/** Why {@link validateName} refuses `name`, or undefined when it accepts it. */
export function nameProblem(name: string): string | undefined {
  return typeof name === "string" ? componentProblem(name) : "it is not a string";
}

/**
 * Joins components back into the canonical POSIX relative form (`""` for the folder itself).
 * Each component is validated, so the result always parses back to the same components.
 */
export function joinRemotePath(components: readonly string[]): string {
  for (const component of components) validateName(component);
  return components.join("/");
}

/**
 * Makes text from the other side safe to print on a terminal: control characters (C0, DEL, C1),
 * bidirectional and line-breaking controls, lone surrogates and invisible characters (zero-width
 * spaces, tag characters, ...; see {@link INVISIBLE}) are replaced by escapes such as `\x1b`,
 * `\u202e`, `\u200b` or `\u{e0041}`. Everything else is kept as is.
 */
export function sanitizeForDisplay(text: string): string {
  return text.replace(UNSAFE_FOR_DISPLAY, escapeCharacter).replace(INVISIBLE, escapeCharacter);
}

/** `\xNN` below U+0100, `\uNNNN` in the BMP, `\u{NNNNN}` above it. */
function escapeCharacter(char: string): string {
  const point = char.codePointAt(0) ?? 0;
  const hex = point.toString(16);
  if (point > 0xffff) return `\\u{${hex}}`;
  return point < 0x100 ? `\\x${hex.padStart(2, "0")}` : `\\u${hex.padStart(4, "0")}`;
}

/**
 * Name of the hidden partial file that receives `name` in the same folder: {@link PARTIAL_PREFIX}
 * followed by the name when that fits in {@link MAX_NAME_BYTES}, otherwise (and for a name of
 * exactly 32 hex digits, which could otherwise copy a hash) followed by the first 32 hex digits of
 * the name's SHA-256. Throws {@link PathError} when `name` itself is invalid.
 */
export function partialNameFor(name: string): string {
  validateName(name);
  const candidate = PARTIAL_PREFIX + name;
  // A name spelled like a hash (32 hex digits, any case) is hashed too: otherwise it could share
  // its partial file with a long name whose hash it copies.
  if (utf8Length(candidate) <= MAX_NAME_BYTES && !/^[0-9a-f]{32}$/i.test(name)) return candidate;
  return PARTIAL_PREFIX + createHash("sha256").update(name, "utf8").digest("hex").slice(0, 32);
}

/** Why `path` is refused, or undefined when it is acceptable. */
function pathProblem(path: unknown): string | undefined {
  if (typeof path !== "string") return "it is not a string";
  // Cheap guard first: every UTF-16 code unit takes at least one UTF-8 byte.
  if (path.length > MAX_PATH_BYTES || utf8Length(path) > MAX_PATH_BYTES) {
    return `it is longer than ${MAX_PATH_BYTES} bytes`;
  }
  if (!path.isWellFormed()) return "it is not valid Unicode (lone surrogate)";
  if (path.includes("\\")) return "it contains a backslash";
  if (path.startsWith("/")) return "it is absolute";
  for (const component of splitValidPath(path)) {
    const problem = componentProblem(component);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** Splits a path already known to be relative, into components that still need validating. */
function splitValidPath(path: string): string[] {
  if (path === "" || path === "." || path === "./") return [];
  let rest = path.startsWith("./") ? path.slice(2) : path;
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  return rest.split("/");
}

/** Why `name` is refused as a path component, or undefined when it is acceptable. */
function componentProblem(name: string): string | undefined {
  if (name === "") return "it contains an empty component";
  if (name === ".") return 'it contains a "." component';
  if (name === "..") return 'it contains a parent component ".."';
  if (utf8Length(name) > MAX_NAME_BYTES) return `a name is longer than ${MAX_NAME_BYTES} bytes`;
  if (!name.isWellFormed()) return "it is not valid Unicode (lone surrogate)";
  const bidi = BIDI_OR_LINE.exec(name);
  if (bidi !== null) return `it contains a bidirectional or line control (${codePoint(bidi[0])})`;
  const lookalike = SLASH_LOOKALIKE.exec(name);
  if (lookalike !== null) return `it contains a look-alike of a slash (${codePoint(lookalike[0])})`;
  const problem = structuralProblem(name);
  if (problem !== undefined) return problem;
  const normalised = PRINTABLE_ASCII.test(name) ? name : name.normalize("NFKC");
  if (normalised !== name) {
    const lookalikeProblem = structuralProblem(normalised);
    if (lookalikeProblem !== undefined) {
      return `it contains a look-alike character: its compatibility form ${
        quote(normalised)
      } is refused (${lookalikeProblem})`;
    }
  }
  return undefined;
}

/** The checks that also apply to the NFKC form of a name. */
function structuralProblem(name: string): string | undefined {
  if (name === ".") return 'it contains a "." component';
  if (name === "..") return 'it contains a parent component ".."';
  if (name.includes("/")) return "it contains a slash";
  if (name.includes("\\")) return "it contains a backslash";
  const control = CONTROL.exec(name);
  if (control !== null) return `it contains a control character (${codePoint(control[0])})`;
  if (name.toLowerCase().startsWith(PARTIAL_PREFIX)) return "it names a partial transfer file";
  if (isSecretFileName(name)) return "it names a file that holds a connection code or relay token";
  return undefined;
}

/**
 * Why Windows cannot store `name` safely, or undefined: a drive prefix (`C:x`, which Windows reads
 * as a path on drive C), any of `<>:"|?*` (`a:b` names an alternate data stream), a device name
 * with or without an extension (`aux.c`, `NUL.txt`, `COM1`), or a name ending with a dot or a
 * space (Windows drops them, so two names would land as one). These are ordinary names on Linux
 * and macOS, so they travel, and only a receiver on Windows refuses them
 * ({@link validateLocalName}).
 */
export function windowsNameProblem(name: string): string | undefined {
  if (WINDOWS_DRIVE.test(name)) return "it starts with a Windows drive name";
  const reserved = WINDOWS_RESERVED.exec(name);
  if (reserved !== null) return `it contains "${reserved[0]}", which Windows reserves`;
  const base = (name.split(".", 1)[0] ?? "").replace(/ +$/, "");
  if (WINDOWS_DEVICE.test(base)) return `it is a Windows device name ("${base}")`;
  if (/[. ]$/.test(name) && !/^\.{3,}$/.test(name)) return "it ends with a dot or a space";
  return undefined;
}

/**
 * Validates a name that is about to be written on this machine: {@link validateName}, and on
 * Windows also {@link windowsNameProblem} (`os` is for tests). Throws {@link PathError} saying
 * that the name cannot be stored here, so that the file is reported by name and skipped.
 */
export function validateLocalName(name: string, os: string = Deno.build.os): void {
  validateName(name);
  if (os !== "windows") return;
  const problem = windowsNameProblem(name);
  if (problem !== undefined) {
    throw new PathError(`Cannot store ${quote(name)} on Windows: ${problem}`);
  }
}

/** `text` sanitised, cut short when long, in double quotes: for error messages. */
function quote(text: unknown): string {
  const shown = typeof text === "string" ? text : String(text);
  const cut = shown.length > MAX_QUOTED_LENGTH ? `${shown.slice(0, MAX_QUOTED_LENGTH)}…` : shown;
  return `"${sanitizeForDisplay(cut)}"`;
}

function codePoint(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Only printable ASCII: one UTF-8 byte per code unit, and its own NFKC form. */
const PRINTABLE_ASCII = /^[ -~]*$/;

function utf8Length(text: string): number {
  return PRINTABLE_ASCII.test(text) ? text.length : encoder.encode(text).length;
}
