/** `Watchdog`: a stall deadline that can be pushed back record after record without new timers. */
import assert from "node:assert/strict";
import { Watchdog } from "../lib/net/watchdog.ts";

function expiry(): { watchdog: Watchdog; expired: Promise<string> } {
  const { promise, resolve } = Promise.withResolvers<string>();
  return { watchdog: new Watchdog(resolve), expired: promise };
}

Deno.test("`Watchdog` expires with the reason given to arm()", async () => {
  const { watchdog, expired } = expiry();
  watchdog.arm(20, "transfer stalled");
  assert.equal(await expired, "transfer stalled");
});

Deno.test("`Watchdog.touch()` pushes the deadline back: activity keeps it from expiring", async () => {
  const { watchdog, expired } = expiry();
  let fired = false;
  expired.then(() => fired = true);
  const started = performance.now();
  watchdog.arm(60, "idle");
  let lastTouch = started;
  while (performance.now() - started < 200) {
    watchdog.touch();
    lastTouch = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(fired, false, "kept alive for 200 ms by touches every 10 ms");
  await expired;
  // Never early (a timer may only be late): a full period after the last touch, give or take 2 ms.
  assert.ok(performance.now() - lastTouch >= 58, "expires a full period after the last touch");
});

Deno.test("`Watchdog.arm()` with a shorter deadline than the pending one takes effect", async () => {
  const { watchdog, expired } = expiry();
  const started = performance.now();
  watchdog.arm(60_000, "idle");
  watchdog.arm(20, "handshake");
  assert.equal(await expired, "handshake");
  assert.ok(performance.now() - started < 5_000);
});

Deno.test("`Watchdog.pause()` and `disarm()` stop it from expiring", async () => {
  const paused = expiry();
  paused.watchdog.arm(20, "paused");
  paused.watchdog.pause();
  const disarmed = expiry();
  disarmed.watchdog.arm(20, "disarmed");
  disarmed.watchdog.disarm();
  const result = await Promise.race([
    paused.expired,
    disarmed.expired,
    new Promise((resolve) => setTimeout(() => resolve("neither"), 100)),
  ]);
  assert.equal(result, "neither");
  paused.watchdog.disarm();
});
