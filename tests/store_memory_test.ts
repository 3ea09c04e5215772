import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { DENO, tempDir } from "./_helpers.ts";

/**
 * A listing is streamed: the server holds a folder's names while it lists it, not an entry object
 * per child. Holding the entries took about 350 bytes of live heap each, and with the garbage made
 * on the way the server's RSS grew by about 130 MB per listing of a folder of 100,000 files.
 */
const ENTRIES = 20_000;
/** What a listing may hold per entry: a name takes about 70 bytes, an entry object about 350. */
const BUDGET_PER_ENTRY = 150;

async function heapGrowthWhileListing(folder: string, mode: string) {
  const probe = new URL("./_listing_heap_probe.ts", import.meta.url).pathname;
  const output = await new Deno.Command(DENO, {
    args: ["run", "--v8-flags=--expose-gc", `--allow-read=${folder}`, probe, folder, mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  ok(output.success, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout)) as {
    count: number;
    grownBytes: number;
  };
}

Deno.test(`listing a folder of ${ENTRIES} files holds its names, not an object per entry`, async (t) => {
  await using dir = await tempDir("ferry-listing-");
  const folder = join(dir.path, "many");
  await Deno.mkdir(folder);
  const empty = new Uint8Array(0);
  for (let index = 0; index < ENTRIES; index++) {
    Deno.writeFileSync(join(folder, `photo-from-a-long-holiday-${index}.jpg`), empty);
  }
  for (const mode of ["--list", "--walk"]) {
    await t.step(
      `${mode.slice(2)}: under ${BUDGET_PER_ENTRY} bytes of live heap per entry`,
      async () => {
        const { count, grownBytes } = await heapGrowthWhileListing(folder, mode);
        strictEqual(count, ENTRIES);
        ok(
          grownBytes < ENTRIES * BUDGET_PER_ENTRY,
          `the live heap grew by ${grownBytes} bytes halfway through (${
            (grownBytes / ENTRIES).toFixed(0)
          } per entry)`,
        );
      },
    );
  }
});
