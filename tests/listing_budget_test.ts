/**
 * The memory that listings hold is bounded in total, whatever clients do (issue 12, item 5): a
 * listing holds its folder's names until it ends, however slowly its client reads, so the names
 * of all listings in progress share one budget, and a listing that would pass it is refused as
 * `busy` instead of growing the server without end.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { BusyError, RemoteError } from "../lib/errors.ts";
import { LocalStore } from "../lib/store/local.ts";
import { tempDir } from "./_helpers.ts";
import { startTestServer } from "./_hostile.ts";

const FILES = 600;
const BUDGET = 1000;

/** A served folder holding `big/` with {@link FILES} empty files. */
async function bigFolder(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await tempDir();
  await Deno.mkdir(join(dir.path, "big", "inner"), { recursive: true });
  for (let index = 0; index < FILES; index++) {
    Deno.writeFileSync(
      join(dir.path, "big", `f${String(index).padStart(4, "0")}`),
      new Uint8Array(),
    );
  }
  return dir;
}

Deno.test("listings share one budget of names: one that would pass it is refused as busy, and the names come back when a listing ends", async () => {
  await using dir = await bigFolder();
  const store = await LocalStore.open(dir.path, { maxListedNames: BUDGET });
  // A listing whose reader stopped after the first entry holds the folder's names.
  const slow = store.entries("big")[Symbol.asyncIterator]();
  assert.equal((await slow.next()).done, false);
  assert.equal(store.listedNames, FILES + 1);
  const second = store.entries("big")[Symbol.asyncIterator]();
  await assert.rejects(second.next(), (error) => {
    assert.ok(error instanceof BusyError);
    assert.match(error.message, /Cannot list "big" now/);
    return true;
  });
  assert.equal(store.listedNames, FILES + 1, "the refused listing holds nothing");
  await assert.rejects(Array.fromAsync(store.walk("")), BusyError); // a walk counts the same
  await slow.return?.();
  assert.equal(store.listedNames, 0);
  assert.equal((await Array.fromAsync(store.entries("big"))).length, FILES + 1);
  assert.equal((await Array.fromAsync(store.walk(""))).length, FILES + 2); // big, big/inner
  assert.equal(store.listedNames, 0);
});

Deno.test("hostile client: a listing refused for the server's name budget answers busy, and the session goes on", async () => {
  await using dir = await bigFolder();
  const store = await LocalStore.open(dir.path, { maxListedNames: BUDGET });
  await using server = await startTestServer(dir.path, { store });
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  const slow = store.entries("big")[Symbol.asyncIterator]();
  await slow.next();
  await assert.rejects(
    client.list("big"),
    (error) => error instanceof RemoteError && error.code === "busy",
  );
  await slow.return?.();
  assert.equal((await client.list("big")).length, FILES + 1);
});
