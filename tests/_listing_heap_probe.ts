/**
 * Run by `store_memory_test.ts` as `deno run --v8-flags=--expose-gc`: lists the folder given as
 * the first argument through `LocalStore.entries()` (the `walk()` of it with `--walk`) and prints, as
 * JSON, how many entries came and how much the live heap had grown when half of them had been
 * handed out (after a full garbage collection, so only what the listing holds counts).
 */
import { LocalStore } from "../lib/store/local.ts";

const [folder, mode] = Deno.args;
const collect = (globalThis as unknown as { gc: () => void }).gc;
const store = await LocalStore.open(folder!);
let total = 0;
for (const _entry of Deno.readDirSync(folder!)) total++;
const settle = () => {
  for (let round = 0; round < 3; round++) collect();
};
settle();
const before = Deno.memoryUsage().heapUsed;
let count = 0;
let grownBytes = 0;
const listing = mode === "--walk" ? store.walk("") : store.entries("");
for await (const _entry of listing) {
  if (++count === Math.floor(total / 2)) {
    settle();
    grownBytes = Deno.memoryUsage().heapUsed - before;
  }
}
console.log(JSON.stringify({ count, grownBytes }));
