/**
 * Parsing shared by the commands: `HOST[:PORT]`, sizes, numbers, and the code lookup.
 *
 * @module
 */
import { codeSecret, resolveCode } from "../code.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_PORT } from "../server.ts";

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

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port`. */
export function parseHostPort(text: string): HostPort {
  let hostname = text;
  let port = DEFAULT_PORT;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    hostname = bracketed[1]!;
    if (bracketed[2] !== undefined) port = parsePort(bracketed[2]);
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const index = text.indexOf(":");
    hostname = text.slice(0, index);
    port = parsePort(text.slice(index + 1));
  }
  if (hostname === "" || /[\s/\\@]/.test(hostname)) {
    throw new UsageError(`Invalid server address "${text}": expected HOST or HOST:PORT`);
  }
  return { hostname, port };
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

/** Parses seconds (fractions allowed) into milliseconds for option `name`. */
export function parseSeconds(text: string, name: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new UsageError(`Invalid --${name} "${text}": expected a number of seconds above 0`);
  }
  return Math.round(Number(text) * 1000);
}

/**
 * The PAKE secret for a client command: from `--code-file`, else `FERRY_CODE` (if the env
 * permission is granted), else `./.connection_code`. Permission: read on the code file.
 */
export async function clientSecret(codeFile: string | undefined): Promise<Uint8Array> {
  const { code } = await resolveCode({ codeFile });
  return codeSecret(code);
}
