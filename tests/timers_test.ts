/**
 * `unrefTimer()`: a pending timer it was given does not keep the process alive (Deno 2.9's timers
 * are objects, on which `Deno.unrefTimer(Number(timer))` silently did nothing).
 *
 * @module
 */
import assert from "node:assert/strict";
import { DENO } from "./_helpers.ts";

Deno.test("a process whose only pending timers went through unrefTimer() ends at once", async () => {
  const script = `
    import { unrefTimer } from ${
    JSON.stringify(new URL("../lib/_timers.ts", import.meta.url).href)
  };
    unrefTimer(setTimeout(() => console.log("timeout fired"), 5000));
    unrefTimer(setInterval(() => console.log("interval fired"), 5000));
    console.log("done");
  `;
  const started = performance.now();
  const output = await new Deno.Command(DENO, {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.equal(stdout, "done\n", "neither timer fired: the process did not wait for them");
  assert.ok(performance.now() - started < 4500, "ended before the timers were due");
});
