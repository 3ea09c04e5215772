/**
 * `CommitGroup`: files finished together are flushed together, once all of them are written, and
 * each waits for its own flush before it may take its name.
 */
import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import type { Hash } from "node:crypto";
import { CommitGroup } from "../lib/store/commit_group.ts";
import type { PendingFile } from "../lib/store/store.ts";

/** A pending file that records when it was flushed. */
function pendingFile(name: string, flushes: string[], failure?: Error): PendingFile {
  return {
    size: 0,
    hashPrefix: () => Promise.reject(new Error("not used")) as Promise<Hash>,
    truncate: () => Promise.resolve(),
    write: () => Promise.resolve(),
    flush: () => {
      flushes.push(name);
      return failure ? Promise.reject(failure) : Promise.resolve();
    },
    commit: () => Promise.resolve(),
    discard: () => Promise.resolve(),
    close: () => {},
  };
}

Deno.test("a commit group flushes nothing until it is full, then every file at once", async () => {
  const flushes: string[] = [];
  const group = new CommitGroup({ maxFiles: 3 });
  const first = group.flushed(pendingFile("a", flushes));
  const second = group.flushed(pendingFile("b", flushes));
  await Promise.resolve();
  deepStrictEqual(flushes, [], "two of three: still waiting");
  strictEqual(group.waiting, 2);
  const third = group.flushed(pendingFile("c", flushes));
  await Promise.all([first, second, third]);
  deepStrictEqual(flushes, ["a", "b", "c"]);
  strictEqual(group.waiting, 0);
});

Deno.test("flushNow flushes what waits; a quiet group flushes by itself", async () => {
  const flushes: string[] = [];
  const group = new CommitGroup({ maxFiles: 64 });
  const waiting = group.flushed(pendingFile("a", flushes));
  group.flushNow();
  await waiting;
  deepStrictEqual(flushes, ["a"]);

  const quiet = new CommitGroup({ maxFiles: 64, quietMs: 5 });
  await Promise.all([
    quiet.flushed(pendingFile("b", flushes)),
    quiet.flushed(pendingFile("c", flushes)),
  ]);
  deepStrictEqual(flushes, ["a", "b", "c"], "flushed once nothing more came");
});

Deno.test("a file whose flush fails gets its own error; the others of its group are durable", async () => {
  const flushes: string[] = [];
  const group = new CommitGroup({ maxFiles: 2 });
  const failing = group.flushed(pendingFile("bad", flushes, new Error("disk said no")));
  const fine = group.flushed(pendingFile("good", flushes));
  await rejects(failing, /disk said no/);
  await fine;
  deepStrictEqual(flushes, ["bad", "good"]);
});
