/**
 * Timers that do not keep the process alive.
 *
 * @module
 */

/**
 * Lets the process end while `timer` is still pending (a watchdog, a periodic flush). In Deno 2.9
 * `setTimeout` and `setInterval` return Node-style timer objects: `Deno.unrefTimer(Number(timer))`
 * then silently does nothing, while the object's own `unref()` works. A numeric id (older Deno)
 * goes through `Deno.unrefTimer`.
 */
export function unrefTimer(timer: ReturnType<typeof setTimeout> | undefined): void {
  if (timer === undefined) return;
  const unref = (timer as unknown as { unref?: () => unknown }).unref;
  if (typeof unref === "function") unref.call(timer);
  else Deno.unrefTimer(timer as unknown as number);
}
