/**
 * Parsing shared by the commands: `HOST[:PORT]`, sizes, numbers, and the code lookup.
 *
 * @module
 */
import { codeIdentifier, codeSecret } from "../code.ts";
import { codeFileWarning, resolveCode } from "../code_file.ts";
import { UsageError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { DEFAULT_PORT } from "../protocol/constants.ts";
import { promptHiddenCode } from "./code_input.ts";
import { printError } from "./output.ts";

/** A server address from the command line. */
export interface HostPort {
  hostname: string;
  port: number;
}

/** Parses a port number (1-65535, or 0 where `allowZero`). */
export function parsePort(text: string, allowZero = false): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`Invalid port "${text}": expected a number`);
  const port = Number(text);
  if (port > 65535 || (port === 0 && !allowZero)) {
    throw new UsageError(`Invalid port ${port}: expected 1 to 65535`);
  }
  return port;
}

/**
 * Parses `host`, `host:port`, `[v6]` or `[v6]:port`; an address without a port, a bare IPv6
 * address (`::1`) too, takes `defaultPort` (ferry's 7878 unless given). A bare IPv6 address whose
 * last group could be a port (`::1:9003`) is refused with a hint to write `[::1]:9003` (or
 * `[::1:9003]` for the address itself). A name in another script (`bücher.example`) becomes its
 * ASCII (punycode) form. `what` names the address in errors ("server address").
 */
export function parseHostPort(
  text: string,
  defaultPort: number = DEFAULT_PORT,
  what = "server address",
): HostPort {
  const invalid = (why: string) =>
    new UsageError(`Invalid ${what} "${sanitizeForDisplay(text)}": ${why}`);
  let hostname = text;
  let port = defaultPort;
  if (text.includes("://")) throw invalid("expected HOST or HOST:PORT, not a URL");
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  const colons = (text.match(/:/g) ?? []).length;
  if (bracketed) {
    hostname = bracketed[1]!;
    if (!isIPv6(hostname)) throw invalid("expected an IPv6 address between [ and ]");
    if (bracketed[2] === "") throw invalid('the port after ":" is missing');
    if (bracketed[2] !== undefined) port = parsePort(bracketed[2]);
    return { hostname, port };
  }
  if (/[[\]]/.test(text)) throw invalid("expected HOST, HOST:PORT or [IPv6]:PORT");
  if (colons > 1) {
    // `::1:9003` is most likely ::1 with port 9003, though it is also an address of its own.
    const last = text.lastIndexOf(":");
    const address = text.slice(0, last);
    const tail = text.slice(last + 1);
    const portLike = /^\d{1,5}$/.test(tail) && Number(tail) >= 1 && Number(tail) <= 65535 &&
      isIPv6(address);
    if (portLike) {
      throw invalid(
        `write [${address}]:${tail} for port ${tail}` +
          (isIPv6(text)
            ? `, or [${text}] for that whole address with the default port ${defaultPort}`
            : ""),
      );
    }
    if (!isIPv6(text)) throw invalid("write an IPv6 address with a port as [ADDRESS]:PORT");
    return { hostname: text, port };
  }
  if (colons === 1) {
    const index = text.indexOf(":");
    hostname = text.slice(0, index);
    if (hostname === "") throw invalid('the host before ":" is missing');
    if (index === text.length - 1) throw invalid('the port after ":" is missing');
    port = parsePort(text.slice(index + 1));
  }
  if (hostname === "") throw invalid("expected HOST or HOST:PORT");
  if (/[\s/\\@?#%]/.test(hostname)) throw invalid("expected HOST or HOST:PORT");
  try {
    // Lowercases, turns international names into punycode, refuses characters no host name has.
    hostname = new URL(`http://${hostname}/`).hostname;
  } catch {
    throw invalid("not a valid host name");
  }
  return { hostname, port };
}

/** Whether `text` is an IPv6 address (an optional `%zone` is allowed). */
function isIPv6(text: string): boolean {
  const [address, zone] = text.split("%", 2) as [string, string | undefined];
  if (zone !== undefined && !/^[\w.-]+$/.test(zone)) return false;
  try {
    return new URL(`http://[${address}]/`).hostname !== "";
  } catch {
    return false;
  }
}

/** Parses `500`, `10K`, `500M`, `2G`, `1T` (binary multiples; `B`/`iB` suffixes allowed). */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!match) throw new UsageError(`Invalid size "${text}": expected a number like 500M or 2G`);
  const power = ["", "k", "m", "g", "t"].indexOf(match[2]!.toLowerCase());
  const bytes = Math.floor(Number(match[1]) * 1024 ** power);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`Invalid size "${text}": too large`);
  return bytes;
}

/** Parses a positive whole number for option `name`. */
export function parseCount(text: string, name: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`Invalid --${name} "${text}": expected a whole number above 0`);
  }
  return Number(text);
}

/** Longest duration a timer can wait (2^31 - 1 ms, about 24.8 days), in whole seconds. */
export const MAX_SECONDS = 2_147_483;

/**
 * Parses seconds (fractions allowed, down to a millisecond) into milliseconds for option `name`.
 * Longer than {@link MAX_SECONDS} is refused: a timer that long would fire at once.
 */
export function parseSeconds(text: string, name: string): number {
  const ms = Math.round(Number(text) * 1000);
  if (!/^\d+(\.\d+)?$/.test(text) || ms < 1 || ms > MAX_SECONDS * 1000) {
    throw new UsageError(
      `Invalid --${name} "${text}": expected a number of seconds from 0.001 to ${MAX_SECONDS}`,
    );
  }
  return ms;
}

/** The longest `--expires`: ten years. */
const MAX_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;
const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/**
 * Parses a duration such as `30m`, `12h`, `7d` (also `s` and `w`) into milliseconds, from one
 * second to ten years. Needs no permissions.
 *
 * @throws {UsageError} Saying what is expected.
 */
export function parseDuration(text: string, name = "expires"): number {
  const match = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2]!]! : NaN;
  if (!(ms >= 1000 && ms <= MAX_EXPIRY_MS)) {
    throw new UsageError(
      `Invalid --${name} ${
        JSON.stringify(text.slice(0, 40))
      }: expected a number and a unit (s, m, h, d, w) such as 30m, 12h or 7d, at most ten years`,
    );
  }
  return ms;
}

/** A code as a client uses it: its secret, and the public identifier it names the code by. */
export interface ClientCode {
  /** The secret part, as the handshake takes it. */
  secret: Uint8Array;
  /** The code's public identifier (`0000` for a default code without one). */
  identifier: string;
}

/**
 * The PAKE secret and identifier of the code for a client command: from `--code-file`, else
 * `FERRY_CODE` (if the env permission is granted), else `./.connection_code`, else, when stdin is
 * a terminal, typed at a prompt that does not echo it (and not saved). A code file others can read
 * is used with a warning on stderr. Permission: read on the code file.
 */
export async function clientCode(codeFile: string | undefined): Promise<ClientCode> {
  const ask = Deno.stdin.isTerminal() ? () => promptHiddenCode() : undefined;
  const { code, path } = await resolveCode({ codeFile, ask });
  await warnOfReadableCodeFile(path);
  return { secret: codeSecret(code), identifier: codeIdentifier(code) };
}

/**
 * Prints {@link codeFileWarning}'s warning for the code file at `path`, if it has one. Needs
 * `--allow-read` for `path`.
 */
export async function warnOfReadableCodeFile(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const warning = await codeFileWarning(path);
  if (warning !== undefined) printError(warning);
}
