/**
 * Up-front permission checks, so a command that lacks a flag says which one before it starts
 * (rather than failing halfway). Only queries: never prompts, never requests.
 *
 * @module
 */
import { PermissionError } from "../errors.ts";

/** A permission a command needs, with the reason shown when it is missing. */
export interface Needed {
  descriptor: Deno.PermissionDescriptor;
  /** The flag that grants it, e.g. `--allow-write=/srv/share`. */
  flag: string;
  /** What it is for, e.g. "to store uploads". */
  why: string;
}

/** Throws a {@link PermissionError} naming every missing flag. */
export function requirePermissions(needed: readonly Needed[]): void {
  const missing = needed.filter(({ descriptor }) =>
    Deno.permissions.querySync(descriptor).state !== "granted"
  );
  if (missing.length === 0) return;
  const flags = missing.map((need) => need.flag).join(" ");
  const reasons = missing.map((need) => need.why).join(", ");
  throw new PermissionError(`Permission denied: run deno with ${flags} (${reasons})`);
}
