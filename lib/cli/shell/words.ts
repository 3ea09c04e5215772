/**
 * The words of a `ferry connect` shell line: how a line splits (quotes and backslash escapes, as
 * in a POSIX shell but with nothing else special), and, for Tab completion, where the word under
 * the cursor starts and how to write more of it so that it still splits the same way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteForWord, splitWords } from "./words.ts";
 *
 * assert.deepEqual(splitWords(`get "my file.txt" 'a b'`), ["get", "my file.txt", "a b"]);
 * assert.equal(quoteForWord("my file.txt", undefined), "my\\ file.txt");
 * assert.deepEqual(splitWords(`get my\\ file.txt`), ["get", "my file.txt"]);
 * ```
 *
 * @module
 */
import { UsageError } from "../../errors.ts";

/** A quote left open: inside `'...'` or `"..."`. */
export type OpenQuote = "'" | '"' | undefined;

/** The word the line ends in, as Tab completion needs it. */
export interface LastWord {
  /** The words before it, unquoted (the command first). */
  before: string[];
  /** Its text so far, unquoted. */
  text: string;
  /**
   * For each UTF-16 unit of {@link text}, the index in the line where its spelling starts (at the
   * backslash of an escape), so that a part of the word can be found in the line.
   */
  starts: number[];
  /** The quote still open at the end of the line. */
  quote: OpenQuote;
  /** The line ends in a backslash that escapes whatever comes next. */
  escaping: boolean;
  /** A word has started (even one of only quotes, `""`), rather than the line ending in space. */
  started: boolean;
}

/** Reads `line` into words; the last one may be unfinished (an open quote, a final backslash). */
function scan(line: string): { words: string[]; last: LastWord } {
  const words: string[] = [];
  let text = "";
  let starts: number[] = [];
  let inWord = false;
  let quote: OpenQuote;
  let escaping = false;
  const keep = (char: string, index: number) => {
    text += char;
    starts.push(index);
  };
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (escaping) {
      text += char; // its start is the backslash's, kept already
      escaping = false;
    } else if (quote === "'") {
      if (char === "'") quote = undefined;
      else keep(char, index);
    } else if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === "\\") {
        escaping = true;
        starts.push(index);
      } else keep(char, index);
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === "\\") {
      escaping = true;
      inWord = true;
      starts.push(index);
    } else if (/\s/.test(char)) {
      if (inWord) words.push(text);
      text = "";
      starts = [];
      inWord = false;
    } else {
      keep(char, index);
      inWord = true;
    }
  }
  return { words, last: { before: words, text, starts, quote, escaping, started: inWord } };
}

/**
 * Splits a shell line into words, honouring single and double quotes and backslash escapes (a
 * backslash at the very end stands for itself). An unclosed quote is a {@link UsageError}.
 */
export function splitWords(line: string): string[] {
  const { words, last } = scan(line);
  if (last.quote) throw new UsageError("Unclosed quote");
  if (last.started) words.push(last.escaping ? last.text + "\\" : last.text);
  return words;
}

/** The word `line` ends in (empty after a space), with what completion needs to extend it. */
export function lastWord(line: string): LastWord {
  return scan(line).last;
}

/**
 * `text` written so that, typed after a word that is inside `quote` (or not quoted), it reads
 * back as `text`: outside quotes, white space, quotes and backslashes get a backslash; inside
 * double quotes, `"` and `\` do; inside single quotes, a `'` is written `'\''`.
 */
export function quoteForWord(text: string, quote: OpenQuote): string {
  if (quote === "'") return text.replaceAll("'", "'\\''");
  if (quote === '"') return text.replace(/["\\]/g, "\\$&");
  return text.replace(/[\s'"\\]/g, "\\$&");
}
