/**
 * How this checkout's ferry is run by the two launchers in this folder (`task.ts` for
 * `deno task`, and the `ferry` command that `install.ts` writes): the checkout's location and
 * the Deno flags every run gets, whatever its permissions.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout these scripts belong to (the folder of `deno.json` and `main.ts`). */
export const CHECKOUT: string = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * The Deno flags every run of ferry gets, before its permissions: quiet, no prompts (a missing
 * permission is ferry's one-line error, never a question), V8's young generation kept small and
 * `gc()` exposed for `lib/_memory.ts` (the README's memory measurements use both), and the checkout's `deno.json` and lock file
 * whatever folder ferry runs in (a `deno.json` found there belongs to someone else's project).
 * `FERRY_CODE` may always be read. Needs no permissions.
 */
export function runFlags(checkout: string = CHECKOUT): string[] {
  return [
    "-q",
    "--no-prompt",
    "--v8-flags=--max-semi-space-size=1,--expose-gc",
    `--config=${join(checkout, "deno.json")}`,
    "--allow-env=FERRY_CODE",
  ];
}
