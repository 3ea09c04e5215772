import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret } from "../lib/code.ts";
import { MAX_LISTING_BATCH } from "../lib/protocol/constants.ts";
import { runFerry, startServe, tempDir } from "./_helpers.ts";

/**
 * Listings of folders bigger than one `listing` batch: the server streams them in batches and
 * `ferry ls` prints each batch as it comes, so the order and the output are those of a small
 * folder, and neither side holds the whole listing.
 */
const FILES = 3 * MAX_LISTING_BATCH + 17;

function fileName(index: number): string {
  return `file-${String(index).padStart(5, "0")}.txt`;
}

Deno.test(`listing a folder of ${FILES} entries, several batches long`, async (t) => {
  await using dir = await tempDir("ferry-listing-");
  const root = join(dir.path, "served");
  await Deno.mkdir(join(root, "many"), { recursive: true });
  await Deno.mkdir(join(root, "empty"));
  for (let index = 0; index < FILES; index++) {
    Deno.writeTextFileSync(join(root, "many", fileName(index)), "x");
  }
  await using serve = await startServe(root);
  const withCode = ["--code-file", serve.codeFile];
  const expected = Array.from({ length: FILES }, (_, index) => fileName(index));

  await t.step("`ferry ls` prints every entry once, in name order", async () => {
    const result = await runFerry(["ls", serve.address, "many", ...withCode]);
    strictEqual(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    deepStrictEqual(lines.map((line) => line.split("  ").at(-1)), expected);
    ok(lines.every((line) => /^file\s+1 B\s/.test(line)), lines[0]);
  });

  await t.step("`ferry ls --json` prints them as one JSON array on one line", async () => {
    const result = await runFerry(["ls", serve.address, "many", "--json", ...withCode]);
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stdout.split("\n").length, 2, "one line and its newline");
    const entries = JSON.parse(result.stdout) as { name: string; size: number }[];
    deepStrictEqual(entries.map((entry) => entry.name), expected);
    ok(entries.every((entry) => entry.size === 1));
  });

  await t.step("`ferry ls --json` of an empty folder prints []", async () => {
    const result = await runFerry(["ls", serve.address, "empty", "--json", ...withCode]);
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stdout, "[]\n");
  });

  await t.step("`ferry ls --recursive` walks the batches in the same order", async () => {
    const result = await runFerry(["ls", serve.address, "--recursive", "--json", ...withCode]);
    strictEqual(result.code, 0, result.stderr);
    const names = (JSON.parse(result.stdout) as { name: string }[]).map((entry) => entry.name);
    deepStrictEqual(names, ["empty", "many", ...expected.map((name) => `many/${name}`)]);
  });

  await t.step(
    "`FerryClient.listBatches()` stopped after one batch leaves the connection usable",
    async () => {
      await using client = await FerryClient.connect({
        hostname: "127.0.0.1",
        port: serve.port,
        secret: codeSecret(serve.code),
      });
      let batches = 0;
      for await (const batch of client.listBatches("many")) {
        ok(batch.length > 0 && batch.length <= MAX_LISTING_BATCH);
        if (++batches === 1) break;
      }
      // The rest of that listing was read and dropped: this answer is the next request's own.
      deepStrictEqual((await client.list("")).map((entry) => entry.name), ["empty", "many"]);
      strictEqual((await client.list("many")).length, FILES);
    },
  );
});

Deno.test("`ferry ls` shows invisible characters in names escaped: look-alike names never look alike", async () => {
  await using dir = await tempDir("ferry-listing-");
  const names = ["report.pdf", "report\u200b.pdf", "report\u{e0020}.pdf"];
  for (const name of names) await Deno.writeTextFile(join(dir.path, name), name);
  await using serve = await startServe(dir.path);
  const result = await runFerry(["ls", serve.address, "--code-file", serve.codeFile]);
  strictEqual(result.code, 0, result.stderr);
  const shown = result.stdout.trimEnd().split("\n").map((line) => line.split("  ").at(-1));
  deepStrictEqual(shown.toSorted(), ["report.pdf", "report\\u200b.pdf", "report\\u{e0020}.pdf"]);
});
