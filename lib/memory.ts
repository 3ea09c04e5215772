/**
 * Keeps memory flat while records stream through.
 *
 * `node:crypto` returns every sealed or opened record in a new buffer, so a 1 GiB transfer
 * allocates 1 GiB of short-lived buffers. V8 reclaims such external memory lazily, only after
 * tens of megabytes have piled up, which doubled ferry's resident memory (about 120 MB instead
 * of 50 MB, measured on Deno 2.9.6). A minor collection (a scavenge of the young generation, where
 * these buffers die) every couple of megabytes releases them at once for a cost too small to
 * measure. `gc` is reached through the documented `node:v8` / `node:vm` route; where that is not
 * available this module does nothing.
 *
 * @module
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Bytes of record buffers allocated between two minor collections. */
export const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

type Collector = (options: { type: "minor" | "major" }) => void;

function findCollector(): Collector | undefined {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc");
    return typeof gc === "function" ? gc as Collector : undefined;
  } catch {
    return undefined;
  }
}

const collect = findCollector();
let allocated = 0;

/** Notes that `bytes` of short-lived buffer were allocated; collects them now and then. */
export function noteTransientBytes(bytes: number): void {
  if (!collect) return;
  allocated += bytes;
  if (allocated >= COLLECT_EVERY_BYTES) {
    allocated = 0;
    collect({ type: "minor" });
  }
}
