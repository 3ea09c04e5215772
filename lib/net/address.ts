/**
 * Writing a network address for people: an IPv6 address goes in brackets, so that its port
 * cannot be read as one more group of the address (`[::1]:7878`, never `::1:7878`).
 *
 * @module
 */

/**
 * `hostname:port` as it is typed on the command line: `127.0.0.1:7878`, `[::1]:7878`.
 * Needs no permissions.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./address.ts";
 * if (formatAddress("::1", 9003) !== "[::1]:9003") throw new Error("formatAddress");
 * ```
 */
export function formatAddress(hostname: string, port: number): string {
  return `${formatHost(hostname)}:${port}`;
}

/** `hostname` alone, in brackets if it is an IPv6 address (`[::1]`). */
export function formatHost(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}
