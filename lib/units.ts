/**
 * Units for people: byte counts as `3.00 MiB`, shared by the CLI's output and the server's
 * messages and log, which cannot import the terminal layer.
 *
 * @module
 */

/**
 * A byte count as a person reads it, in binary multiples: `1536` → `1.50 KiB`, `512` → `512 B`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./units.ts";
 * if (formatBytes(3 * 1024 * 1024) !== "3.00 MiB") throw new Error("formatBytes");
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${Math.round(value)} B`
    : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/**
 * Two byte counts as a person reads them, with the exact counts added when the rounded forms
 * would look the same (`1.00 MiB (1048577 bytes)` against `1.00 MiB (1048576 bytes)`).
 */
export function formatBytesPair(a: number, b: number): [string, string] {
  const [left, right] = [formatBytes(a), formatBytes(b)];
  return left === right && a !== b
    ? [`${left} (${a} bytes)`, `${right} (${b} bytes)`]
    : [left, right];
}
