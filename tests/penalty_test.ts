import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { DEFAULT_PENALTY_OPTIONS, PenaltyBox, type PenaltyOptions } from "../lib/server/penalty.ts";

/** A PenaltyBox on a clock the test moves by hand. */
function boxWithClock(options: Partial<PenaltyOptions> = {}) {
  const clock = { now: 1_000_000 };
  const box = new PenaltyBox(options, () => clock.now);
  return { box, clock };
}

/** Records `count` failures from `address` at the current time. */
function failTimes(box: PenaltyBox, address: string, count: number): void {
  for (let index = 0; index < count; index++) box.fail(address);
}

Deno.test("`PenaltyBox` never delays an address with no failures", () => {
  const { box } = boxWithClock();
  strictEqual(box.waitFor("192.0.2.1"), 0);
  strictEqual(box.admit("192.0.2.1"), 0);
  strictEqual(box.size, 0);
});

Deno.test("`PenaltyBox` lets the first three failures go without delay", () => {
  const { box } = boxWithClock();
  for (let failure = 1; failure <= DEFAULT_PENALTY_OPTIONS.freeFailures; failure++) {
    box.fail("192.0.2.1");
    strictEqual(box.waitFor("192.0.2.1"), 0, `after failure ${failure}`);
  }
});

Deno.test("`PenaltyBox` delays each failure past the free ones longer: 250 ms, 500 ms, 1 s", () => {
  const { box } = boxWithClock();
  failTimes(box, "192.0.2.1", 3);
  const delays: number[] = [];
  for (let index = 0; index < 5; index++) {
    box.fail("192.0.2.1");
    delays.push(box.waitFor("192.0.2.1"));
  }
  deepStrictEqual(delays, [250, 500, 1000, 1000, 1000]);
});

Deno.test("`PenaltyBox` gives a persistent guesser about one attempt a second", () => {
  const { box, clock } = boxWithClock();
  const address = "192.0.2.1";
  let attempts = 0;
  const end = clock.now + 60_000;
  // The attacker retries every 10 ms; an attempt counts only when it is admitted.
  for (; clock.now < end; clock.now += 10) {
    if (box.admit(address) > 0) continue;
    attempts++;
    box.fail(address);
  }
  // Three free failures, 250 ms and 500 ms delays, then one a second: about 62 in a minute.
  ok(attempts >= 55 && attempts <= 66, `${attempts} attempts in 60 s`);
});

Deno.test("`PenaltyBox.admit()` reserves the slot so parallel attempts cannot multiply guesses", () => {
  const { box, clock } = boxWithClock();
  const address = "192.0.2.1";
  failTimes(box, address, 10);
  clock.now += 1000;
  // Ten connections arrive at the same instant, before any of them has failed.
  const admitted = Array.from({ length: 10 }, () => box.admit(address)).filter((wait) =>
    wait === 0
  );
  strictEqual(admitted.length, 1);
  ok(box.waitFor(address) > 0 && box.waitFor(address) <= 1000);
});

Deno.test("`PenaltyBox.admit()` does not limit parallel attempts of an address within its free failures", () => {
  const { box } = boxWithClock();
  for (let index = 0; index < 10; index++) strictEqual(box.admit("192.0.2.1"), 0);
  failTimes(box, "192.0.2.2", 2);
  for (let index = 0; index < 10; index++) strictEqual(box.admit("192.0.2.2"), 0);
});

Deno.test("`PenaltyBox.waitFor()` counts down as time passes", () => {
  const { box, clock } = boxWithClock();
  failTimes(box, "192.0.2.1", 6);
  strictEqual(box.waitFor("192.0.2.1"), 1000);
  clock.now += 400;
  strictEqual(box.waitFor("192.0.2.1"), 600);
  clock.now += 600;
  strictEqual(box.waitFor("192.0.2.1"), 0);
});

Deno.test("`PenaltyBox` forgets an address after the window without failures", () => {
  const { box, clock } = boxWithClock({ forgetAfterMs: 60_000 });
  failTimes(box, "192.0.2.1", 8);
  clock.now += 60_000;
  // Still remembered at exactly the window: the next failure is penalised at once.
  box.fail("192.0.2.1");
  strictEqual(box.waitFor("192.0.2.1"), 1000);
  clock.now += 60_001;
  strictEqual(box.waitFor("192.0.2.1"), 0);
  strictEqual(box.size, 0);
  // Its count starts again from zero: the next failures are free.
  failTimes(box, "192.0.2.1", 3);
  strictEqual(box.waitFor("192.0.2.1"), 0);
});

Deno.test("`PenaltyBox` keeps at most `maxSources` addresses, dropping the stalest", () => {
  const { box, clock } = boxWithClock({ maxSources: 100 });
  for (let index = 0; index < 10_000; index++) {
    box.fail(`10.0.${index >> 8}.${index & 0xff}`);
    clock.now += 1;
  }
  strictEqual(box.size, 100);
  // The most recent failures are kept, the oldest are gone.
  failTimes(box, "10.0.39.15", 3); // index 9999: now 4 failures
  strictEqual(box.waitFor("10.0.39.15"), 250);
  failTimes(box, "10.0.0.0", 3); // index 0 was dropped: 3 failures are free again
  strictEqual(box.waitFor("10.0.0.0"), 0);
});

Deno.test("`PenaltyBox` keeps memory bounded under a flood of one-off addresses", () => {
  const { box } = boxWithClock();
  for (let index = 0; index < 20_000; index++) {
    box.fail(`2001:db8::${index.toString(16)}`);
  }
  strictEqual(box.size, DEFAULT_PENALTY_OPTIONS.maxSources);
});

Deno.test("`PenaltyBox` does not slow other addresses down", () => {
  const { box } = boxWithClock();
  failTimes(box, "192.0.2.1", 20);
  ok(box.waitFor("192.0.2.1") > 0);
  strictEqual(box.waitFor("192.0.2.2"), 0);
  strictEqual(box.admit("192.0.2.2"), 0);
  strictEqual(box.waitFor("192.0.2.1"), 1000);
});

Deno.test("`PenaltyBox.succeed()` clears the address's failures", () => {
  const { box } = boxWithClock();
  failTimes(box, "192.0.2.1", 20);
  box.succeed("192.0.2.1");
  strictEqual(box.waitFor("192.0.2.1"), 0);
  strictEqual(box.size, 0);
  failTimes(box, "192.0.2.1", 3);
  strictEqual(box.waitFor("192.0.2.1"), 0);
});

Deno.test("`PenaltyBox` honours its options", () => {
  const { box } = boxWithClock({ freeFailures: 0, baseDelayMs: 10, maxDelayMs: 35 });
  const delays: number[] = [];
  for (let index = 0; index < 5; index++) {
    box.fail("192.0.2.1");
    delays.push(box.waitFor("192.0.2.1"));
  }
  deepStrictEqual(delays, [10, 20, 35, 35, 35]);
});
