/**
 * Taking a connection code from the person at the keyboard: typed at a prompt without echo, or
 * piped on standard input (`echo CODE | ferry code --save`). Never from the command line, where
 * other local users could read it (see `refuseSecretArguments` in ./args.ts).
 *
 * Nothing here prints the code: the prompt shows no character typed, and errors describe the
 * input without repeating it.
 *
 * @module
 */
import { InterruptedError, UsageError } from "../errors.ts";

/** The most a typed or piped code may hold; a code is about 20 characters. */
export const MAX_CODE_INPUT = 1024;

const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const CTRL_U = 0x15;
const ESCAPE = 0x1b;
const DELETE = 0x7f;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** Something bytes are read from, as `Deno.stdin` is. */
export interface ByteReader {
  /** Fills part of `buffer`; the number of bytes read, or `null` at the end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * Reads one line typed on a terminal in raw mode (the caller has turned echo off), as a person
 * edits it: Enter (CR or LF) ends it; Backspace or Delete removes the last character, Ctrl-U the
 * whole line; escape sequences (arrow keys) and other control characters are ignored. Needs no
 * permissions.
 *
 * @param reader Where the keys come from (`Deno.stdin` in raw mode; a fake in tests).
 * @returns The line, without its end.
 * @throws {InterruptedError} On Ctrl-C.
 * @throws {UsageError} On Ctrl-D, or the end of input, before Enter (nothing was entered), or a
 *   line longer than {@link MAX_CODE_INPUT} characters.
 */
export async function readHiddenLine(reader: ByteReader): Promise<string> {
  const decoder = new TextDecoder();
  const characters: string[] = [];
  const buffer = new Uint8Array(64);
  let inEscape = false;
  while (true) {
    const count = await reader.read(buffer);
    if (count === null) throw new UsageError("No connection code entered: the input ended");
    for (const byte of buffer.subarray(0, count)) {
      if (inEscape) {
        // ESC [ ... final letter or ~ (CSI), or ESC and one more character.
        if (byte === 0x5b || byte === 0x4f || (byte >= 0x30 && byte <= 0x3f)) continue;
        inEscape = false;
        continue;
      }
      if (byte === CTRL_C) throw new InterruptedError("Interrupted");
      if (byte === CTRL_D) throw new UsageError("No connection code entered");
      if (byte === CARRIAGE_RETURN || byte === LINE_FEED) {
        return characters.join("") + decoder.decode();
      }
      if (byte === BACKSPACE || byte === DELETE) {
        decoder.decode(); // drops an unfinished multi-byte character
        characters.pop();
        continue;
      }
      if (byte === CTRL_U) {
        decoder.decode();
        characters.length = 0;
        continue;
      }
      if (byte === ESCAPE) {
        inEscape = true;
        continue;
      }
      if (byte < 0x20) continue;
      characters.push(...decoder.decode(Uint8Array.of(byte), { stream: true }));
      if (characters.length > MAX_CODE_INPUT) {
        throw new UsageError(`No connection code entered: more than ${MAX_CODE_INPUT} characters`);
      }
    }
  }
}

/**
 * Asks for the connection code on the terminal without echo: writes `prompt` to stderr, reads a
 * line with {@link readHiddenLine} with stdin in raw mode, then restores the terminal and ends the
 * prompt's line. Call only when `Deno.stdin.isTerminal()`. Needs no permissions.
 *
 * @throws {InterruptedError} On Ctrl-C.
 * @throws {UsageError} On Ctrl-D or an overlong line.
 */
export async function promptHiddenCode(prompt = "Connection code (not shown): "): Promise<string> {
  const encoder = new TextEncoder();
  Deno.stderr.writeSync(encoder.encode(prompt));
  Deno.stdin.setRaw(true);
  try {
    return await readHiddenLine(Deno.stdin);
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(encoder.encode("\n"));
  }
}

/**
 * Reads piped input up to its first line end (or its end, or {@link MAX_CODE_INPUT} bytes) and
 * returns that first line, trimmed. Needs no permissions.
 *
 * @param reader Where the input comes from (`Deno.stdin` when it is not a terminal).
 * @throws {UsageError} If the first line is longer than {@link MAX_CODE_INPUT} bytes or is not
 *   UTF-8 text. The message never contains the input.
 */
export async function readFirstLine(reader: ByteReader): Promise<string> {
  const buffer = new Uint8Array(MAX_CODE_INPUT + 1);
  let length = 0;
  while (length < buffer.length) {
    const count = await reader.read(buffer.subarray(length));
    if (count === null) break;
    const end = buffer.subarray(length, length + count).indexOf(LINE_FEED);
    length += count;
    if (end >= 0) {
      length = length - count + end;
      break;
    }
  }
  if (length > MAX_CODE_INPUT) {
    throw new UsageError(
      `Invalid connection code on standard input: the first line is longer than ${MAX_CODE_INPUT} bytes`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length)).trim();
  } catch {
    throw new UsageError("Invalid connection code on standard input: it is not UTF-8 text");
  }
}

/**
 * `reader`, except that its first read gives up after `ms` milliseconds and reports the end of
 * input: for standard input that is not a terminal but may never be written or closed (`ssh host
 * ferry code` keeps it open), where waiting for the end would hang. Once bytes came, later reads
 * wait as `reader` does. Needs no permissions.
 */
export function withFirstReadTimeout(reader: ByteReader, ms: number): ByteReader {
  let first = true;
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      if (!first) return reader.read(buffer);
      first = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
      return Promise.race([reader.read(buffer), timeout]).finally(() => clearTimeout(timer));
    },
  };
}
