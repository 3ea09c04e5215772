/**
 * The connection code: the shared secret people read aloud, type, or copy between machines.
 *
 * A code's secret is 16 symbols of Crockford base32 (5 bits each, 80 bits in all) drawn from
 * `crypto.getRandomValues`, written uppercase in dash-separated groups of four. The default code
 * of a server (`ferry code`) is the secret alone, `XXXX-XXXX-XXXX-XXXX`; a named code (`ferry code
 * add`) has a public identifier of 4 more symbols in front, `IIII-XXXX-XXXX-XXXX-XXXX`, which tells
 * the server which secret to use (it travels in the clear and holds no bit of the secret). The
 * default code's identifier is {@link DEFAULT_IDENTIFIER}. Input is forgiving: case, spaces, dashes
 * and underscores do not matter, and the look-alike letters I and L read as 1, O as 0. U is never
 * part of a code.
 *
 * Every error message here describes the problem (length, position of a bad character) and never
 * contains the code itself. Reading and writing code files is lib/code_file.ts.
 *
 * @example Normalising what a person typed
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeIdentifier, codeSecret, formatCode, normaliseCode } from "./code.ts";
 *
 * assert.equal(normaliseCode("7k3m q9xd 2hfr wb6t"), "7K3MQ9XD2HFRWB6T");
 * assert.equal(formatCode("7K3MQ9XD2HFRWB6T"), "7K3M-Q9XD-2HFR-WB6T");
 * assert.equal(formatCode("oilo-Q9XD-2HFR-WB6T"), "0110-Q9XD-2HFR-WB6T");
 * assert.deepEqual(codeSecret("7k3m-q9xd-2hfr-wb6t"), new TextEncoder().encode("7K3MQ9XD2HFRWB6T"));
 *
 * // A named code: its identifier in front of its secret.
 * assert.equal(formatCode("k7qd7k3mq9xd2hfrwb6t"), "K7QD-7K3M-Q9XD-2HFR-WB6T");
 * assert.equal(codeIdentifier("K7QD-7K3M-Q9XD-2HFR-WB6T"), "K7QD");
 * assert.deepEqual(codeSecret("K7QD-7K3M-Q9XD-2HFR-WB6T"), codeSecret("7K3M-Q9XD-2HFR-WB6T"));
 * // The default code has the identifier 0000, written or not.
 * assert.equal(codeIdentifier("7K3M-Q9XD-2HFR-WB6T"), "0000");
 * assert.equal(normaliseCode("0000-7K3M-Q9XD-2HFR-WB6T"), "7K3MQ9XD2HFRWB6T");
 * ```
 *
 * @example Generating a code
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateCode } from "./code.ts";
 *
 * assert.match(generateCode(), /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
 * assert.equal(generateCode((bytes) => bytes.fill(0)), "0000-0000-0000-0000");
 * ```
 *
 * @module
 */
import { UsageError } from "./errors.ts";

/** Number of base32 symbols in a connection code's secret (5 bits each: 80 bits). */
export const CODE_SYMBOLS = 16;

/** Number of base32 symbols in a code's public identifier (20 bits), in front of its secret. */
export const IDENTIFIER_SYMBOLS = 4;

/**
 * The identifier of the default code, which is written without one (16 symbols): never given to
 * a named code, so `0000-XXXX-XXXX-XXXX-XXXX` and `XXXX-XXXX-XXXX-XXXX` are the same code.
 */
export const DEFAULT_IDENTIFIER = "0000";

/** Crockford base32: digits and uppercase letters without I, L, O and U. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BITS_PER_SYMBOL = 5;
const CODE_BYTES = (CODE_SYMBOLS * BITS_PER_SYMBOL) / 8;
const GROUP_SIZE = 4;
/** Shown in messages to describe the shape of a code; deliberately not a random-looking code. */
const EXAMPLE_CODE = "ABCD-EFGH-JKMN-PQRS";

/**
 * Four or five groups of three to five letters or digits, separated like a code (with or without
 * an identifier): a near miss of one.
 */
const CODE_SHAPE = /^[0-9a-z]{3,5}(?:[\s_-][0-9a-z]{3,5}){3,4}$/i;

/** Separators people type or paste between groups; any whitespace counts. */
const SEPARATOR = /^[\s_-]$/u;
const ASCII_DIGIT = /^[0-9]$/;

/** What each accepted input character means: the symbol itself, lowercase, and look-alikes. */
const SYMBOL_FOR: ReadonlyMap<string, string> = (() => {
  const table = new Map<string, string>();
  for (const symbol of ALPHABET) {
    table.set(symbol, symbol);
    table.set(symbol.toLowerCase(), symbol);
  }
  for (const [lookAlike, symbol] of [["I", "1"], ["L", "1"], ["O", "0"]] as const) {
    table.set(lookAlike, symbol);
    table.set(lookAlike.toLowerCase(), symbol);
  }
  return table;
})();

/**
 * Makes a new connection code of 80 random bits, formatted `XXXX-XXXX-XXXX-XXXX`.
 *
 * Each symbol takes exactly 5 bits of the 10 random bytes, so every symbol is uniform (no modulo
 * bias). Needs no permissions.
 *
 * @param random Fills the given 10-byte array with random bytes and returns it. Defaults to
 *   `crypto.getRandomValues`; tests inject a deterministic source.
 * @returns The formatted code.
 * @throws {RangeError} If `random` returns other than 10 bytes.
 */
export function generateCode(
  random: (bytes: Uint8Array) => Uint8Array = (bytes) => crypto.getRandomValues(bytes),
): string {
  const bytes = random(new Uint8Array(CODE_BYTES));
  if (bytes.length !== CODE_BYTES) {
    throw new RangeError(
      `Cannot generate a connection code: random source returned ${bytes.length} bytes, expected ${CODE_BYTES}`,
    );
  }
  return group(toSymbols(bytes));
}

/**
 * Makes a fresh identifier for a named code: 4 symbols (20 bits from `random`, which fills 3
 * bytes; the last 4 bits are dropped), never {@link DEFAULT_IDENTIFIER} nor one in `taken`.
 * Needs no permissions.
 *
 * @param taken Identifiers already in use (canonical form).
 * @param random As for {@link generateCode}; defaults to `crypto.getRandomValues`.
 * @throws {RangeError} If `random` returns other than 3 bytes, or keeps giving taken identifiers.
 */
export function generateIdentifier(
  taken: ReadonlySet<string> = new Set(),
  random: (bytes: Uint8Array) => Uint8Array = (bytes) => crypto.getRandomValues(bytes),
): string {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const bytes = random(new Uint8Array(3));
    if (bytes.length !== 3) {
      throw new RangeError(
        `Cannot generate an identifier: random source returned ${bytes.length} bytes, expected 3`,
      );
    }
    const identifier = toSymbols(bytes).slice(0, IDENTIFIER_SYMBOLS);
    if (identifier !== DEFAULT_IDENTIFIER && !taken.has(identifier)) return identifier;
  }
  throw new RangeError("Cannot generate an identifier: every one tried is taken");
}

/**
 * A new named code: `identifier` in front of a fresh 80-bit secret, formatted
 * `IIII-XXXX-XXXX-XXXX-XXXX`. Needs no permissions.
 *
 * @param identifier 4 canonical symbols, not {@link DEFAULT_IDENTIFIER} (see
 *   {@link generateIdentifier}).
 * @param random As for {@link generateCode}.
 * @throws {RangeError} If `identifier` is not 4 canonical symbols, or is the default one.
 */
export function generateNamedCode(
  identifier: string,
  random?: (bytes: Uint8Array) => Uint8Array,
): string {
  if (!isIdentifier(identifier) || identifier === DEFAULT_IDENTIFIER) {
    throw new RangeError("Cannot generate a named code: the identifier is not 4 code symbols");
  }
  return `${identifier}-${generateCode(random)}`;
}

/** Whether `text` is an identifier in canonical form: 4 uppercase Crockford base32 symbols. */
export function isIdentifier(text: string): boolean {
  return text.length === IDENTIFIER_SYMBOLS &&
    [...text].every((symbol) => ALPHABET.includes(symbol));
}

/** Crockford base32 of `bytes`, 5 bits a symbol from the most significant; leftover bits dropped. */
function toSymbols(bytes: Uint8Array): string {
  let symbols = "";
  let buffer = 0;
  let bufferedBits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bufferedBits += 8;
    while (bufferedBits >= BITS_PER_SYMBOL) {
      bufferedBits -= BITS_PER_SYMBOL;
      symbols += ALPHABET.charAt((buffer >> bufferedBits) & 0b11111);
    }
    buffer &= (1 << bufferedBits) - 1;
  }
  return symbols;
}

/**
 * Reduces what a person typed to its canonical symbols: uppercase, no separators, I and L read as
 * 1, O as 0. A code with the default identifier in front (`0000-...`) is the default code and
 * comes back without it. Needs no permissions.
 *
 * @returns 16 uppercase Crockford base32 symbols (a default code) or 20 (a named code: its
 *   identifier, then its secret), without dashes.
 * @throws {UsageError} If the input holds a character outside the code alphabet (U included) or
 *   does not come to exactly 16 or 20 symbols. The message never contains the input.
 */
export function normaliseCode(input: string): string {
  return normaliseCodeFrom(input, "");
}

/**
 * Normalises a code (see {@link normaliseCode}) and writes it in groups of four:
 * `XXXX-XXXX-XXXX-XXXX`, or `IIII-XXXX-XXXX-XXXX-XXXX` for a named code. Needs no permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function formatCode(input: string): string {
  return group(normaliseCode(input));
}

/**
 * The bytes both peers feed to the PAKE as the shared secret (its PRS): the UTF-8 encoding of the
 * normalised code's 16 secret symbols (without the identifier of a named code), so that any
 * spelling of the same code gives the same secret. Needs no permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function codeSecret(input: string): Uint8Array {
  return new TextEncoder().encode(normaliseCode(input).slice(-CODE_SYMBOLS));
}

/**
 * The public identifier of a code: its first 4 symbols if it has one (a named code), else
 * {@link DEFAULT_IDENTIFIER}. Needs no permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function codeIdentifier(input: string): string {
  const symbols = normaliseCode(input);
  return symbols.length === CODE_SYMBOLS
    ? DEFAULT_IDENTIFIER
    : symbols.slice(0, IDENTIFIER_SYMBOLS);
}

/**
 * {@link normaliseCode}, with `where` (such as ` in ./.connection_code`) added to messages: for
 * code read from a file or the environment. Needs no permissions.
 *
 * @throws {UsageError} As {@link normaliseCode}.
 */
export function normaliseCodeFrom(input: string, where: string): string {
  let symbols = "";
  let digitsOnly = true;
  let position = 0;
  for (const character of input) {
    position++;
    if (SEPARATOR.test(character)) continue;
    const symbol = SYMBOL_FOR.get(character);
    if (symbol === undefined) {
      const problem = character === "U" || character === "u"
        ? "is a U, which connection codes never use"
        : "is not a letter or digit of a connection code";
      throw new UsageError(`Invalid connection code${where}: character ${position} ${problem}`);
    }
    digitsOnly &&= ASCII_DIGIT.test(character);
    symbols += symbol;
  }
  if (symbols.length === CODE_SYMBOLS + IDENTIFIER_SYMBOLS) {
    return symbols.startsWith(DEFAULT_IDENTIFIER) ? symbols.slice(IDENTIFIER_SYMBOLS) : symbols;
  }
  if (symbols.length !== CODE_SYMBOLS) {
    const legacy = digitsOnly && symbols.length > 0
      ? "; this looks like a numeric code from the old Python ferry: run `ferry code --force` on the server to make a new one"
      : "";
    throw new UsageError(
      `Invalid connection code${where}: expected ${CODE_SYMBOLS} characters like ${EXAMPLE_CODE}, or ${
        CODE_SYMBOLS + IDENTIFIER_SYMBOLS
      } with an identifier in front, got ${symbols.length}${legacy}`,
    );
  }
  return symbols;
}

/**
 * Whether `text` may be a connection code typed where something else was expected (a host, a
 * path, an option): it is a valid code in any spelling {@link normaliseCode} accepts (with or
 * without an identifier), or it has a code's shape, four or five dash- or space-separated groups
 * of three to five letters and digits (a code with a typo in it is still a secret). Used to refuse such words without printing them. Needs no
 * permissions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { looksLikeCode } from "./code.ts";
 *
 * assert.equal(looksLikeCode("7k3m-q9xd-2hfr-wb6t"), true);
 * assert.equal(looksLikeCode("7K3M-Q9XD-2HFR-WB6"), true); // one character short: still a code
 * assert.equal(looksLikeCode("K7QD-7K3M-Q9XD-2HFR-WB6T"), true); // a named code
 * assert.equal(looksLikeCode("k7qd7k3mq9xd2hfrwb6t"), true);
 * assert.equal(looksLikeCode("192.168.1.20"), false);
 * assert.equal(looksLikeCode("./7K3MQ9XD2HFRWB6T"), false); // a path, written as one
 * ```
 */
export function looksLikeCode(text: string): boolean {
  if (CODE_SHAPE.test(text)) return true;
  try {
    normaliseCode(text);
    return true;
  } catch {
    return false;
  }
}

/** Splits canonical symbols into dash-separated groups of four. */
function group(symbols: string): string {
  const groups: string[] = [];
  for (let start = 0; start < symbols.length; start += GROUP_SIZE) {
    groups.push(symbols.slice(start, start + GROUP_SIZE));
  }
  return groups.join("-");
}
