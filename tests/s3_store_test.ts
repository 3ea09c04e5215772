/**
 * What only the S3 store has, against the real gateway (see _s3.ts): multipart uploads kept as
 * parts and resumed without reading anything back, the per-name lease between servers (two
 * `S3Store`s on one bucket stand for two servers), abandoned uploads aborted, and how keys that
 * are not files of a folder tree are listed. The behaviours every store shares are in
 * store_contract_test.ts.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { BusyError, ExistsError, NotFoundError } from "../lib/errors.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import { PART_BYTES } from "../lib/store/_s3_upload.ts";
import type { StoredFile } from "../lib/store/store.ts";
import { peekHex } from "../lib/transfer/hashing.ts";
import { gatewaySettings, S3_SKIP, s3Place } from "./_s3.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: S3_SKIP !== undefined, fn });

/** `length` deterministic bytes, different for each `seed`. */
function bytesOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed * 2654435761 >>> 0 || 1;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function sha256Of(file: StoredFile): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(1024 * 1024);
  for (let count = await file.read(buffer); count !== null; count = await file.read(buffer)) {
    hash.update(buffer.subarray(0, count));
  }
  return hash.digest("hex");
}

/** Writes `bytes` in pieces of 64 KiB, as the server does with received records. */
async function writeInRecords(
  pending: { write(bytes: Uint8Array): Promise<void> },
  bytes: Uint8Array,
) {
  for (let start = 0; start < bytes.length; start += 64 * 1024) {
    await pending.write(bytes.subarray(start, start + 64 * 1024));
  }
}

test("`S3Store` keeps a cut upload as parts plus a tail, and resumes it without reading back: the kept prefix hashes as written", async () => {
  await using place = s3Place(gatewaySettings());
  const store = await place.open();
  const whole = bytesOf(2 * PART_BYTES + 300_000, 1);
  const cut = PART_BYTES + 123_456;
  const first = await store.beginUpload("big.bin");
  await writeInRecords(first, whole.subarray(0, cut));
  first.close(); // the connection was cut
  // In progress: a multipart upload and the lease, never an object under the name.
  const resumed = await store.beginUpload("big.bin");
  deepStrictEqual(await place.uploads(), ["big.bin"]);
  deepStrictEqual(await place.keys(), [`${PARTIAL_PREFIX}big.bin`]);
  strictEqual(resumed.size, cut);
  strictEqual(peekHex(await resumed.hashPrefix(cut)), sha256(whole.subarray(0, cut)));
  // The hash goes on from the restored state, as a verified upload continues it.
  const hash = await resumed.hashPrefix(cut);
  hash.update(whole.subarray(cut));
  strictEqual(hash.digest("hex"), sha256(whole));
  await writeInRecords(resumed, whole.subarray(cut));
  await resumed.commit({ force: false, mtime: Date.UTC(2022, 0, 1), mode: 0o640 });
  deepStrictEqual(await place.uploads(), []);
  deepStrictEqual(await place.keys(), ["big.bin"], "no lease left");
  using file = await store.openRead("big.bin");
  deepStrictEqual(file.info, {
    name: "big.bin",
    type: "file",
    size: whole.length,
    mtime: Date.UTC(2022, 0, 1),
    mode: 0o640,
  });
  strictEqual(await sha256Of(file), sha256(whole));
});

test("`S3Store` restarts a cut upload whose parts changed behind its lease: never stitched", async () => {
  await using place = s3Place(gatewaySettings());
  const store = await place.open();
  const first = await store.beginUpload("x.bin");
  await writeInRecords(first, bytesOf(PART_BYTES + 10, 2));
  first.close();
  const taken = await store.beginUpload("x.bin"); // waits for the close, then takes the lease
  strictEqual(taken.size, PART_BYTES + 10);
  // Another writer replaces part 1 of the upload behind the store's back.
  const [upload] = await Array.fromAsync(place.client.uploads(`${place.prefix}/`));
  await place.client.uploadPart(upload!.key, upload!.uploadId, 1, bytesOf(PART_BYTES, 3));
  taken.close();
  const again = await store.beginUpload("x.bin");
  strictEqual(again.size, 0, "the kept parts no longer match the lease: nothing is kept");
  await again.discard();
  deepStrictEqual(await place.uploads(), []);
  deepStrictEqual(await place.keys(), []);
});

test("two `S3Store`s on one bucket (two servers): one writer per name, a released upload is taken over with its bytes", async () => {
  await using place = s3Place(gatewaySettings());
  const one = await place.open();
  const two = await place.open();
  const pending = await one.beginUpload("shared.txt");
  await pending.write(new TextEncoder().encode("from one"));
  await rejects(two.beginUpload("shared.txt"), BusyError);
  pending.close();
  // The other server learns of the release through the bucket only.
  let taken;
  for (let attempt = 0; attempt < 50 && taken === undefined; attempt++) {
    taken = await two.beginUpload("shared.txt").catch((error) => {
      if (!(error instanceof BusyError)) throw error;
      return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20));
    });
  }
  ok(taken !== undefined);
  strictEqual(taken.size, 8);
  await taken.commit({ force: false });
  // Through the first server, the name is taken: no silent overwrite.
  const late = await one.beginUpload("shared.txt");
  await late.write(new TextEncoder().encode("late"));
  await rejects(late.commit({ force: false }), ExistsError);
  await (await one.beginUpload("shared.txt")).discard();
  using file = await one.openRead("shared.txt");
  strictEqual(await sha256Of(file), sha256(new TextEncoder().encode("from one")));
});

test("a lease left quiet for longer than `leaseMs` is taken over, and its old writer is refused at its next write", async () => {
  await using place = s3Place(gatewaySettings());
  const one = await place.open({ leaseMs: 1000 });
  const two = await place.open({ leaseMs: 1000 });
  const quiet = await one.beginUpload("q.bin");
  await quiet.write(new Uint8Array(10));
  await rejects(two.beginUpload("q.bin"), BusyError);
  let taken;
  for (let attempt = 0; attempt < 40 && taken === undefined; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    taken = await two.beginUpload("q.bin").catch((error) => {
      if (!(error instanceof BusyError)) throw error;
      return undefined;
    });
  }
  ok(taken !== undefined, "taken over once quiet");
  strictEqual(taken.size, 0, "the quiet writer's tail was never saved: nothing kept");
  // The old writer finds out when it next writes a part or commits.
  await rejects(quiet.commit({ force: false }), BusyError);
  await taken.write(new TextEncoder().encode("new"));
  await taken.commit({ force: false });
  deepStrictEqual(await place.keys(), ["q.bin"]);
});

test("`S3Store.abortAbandonedUploads()` aborts multipart uploads (and leases) quiet for the given age, and keeps the others", async () => {
  await using place = s3Place(gatewaySettings());
  const store = await place.open();
  const old = await store.beginUpload("old.bin");
  await writeInRecords(old, bytesOf(PART_BYTES + 1, 4));
  old.close();
  await (await store.beginUpload("old.bin")).close(); // let the close finish
  deepStrictEqual(await place.uploads(), ["old.bin"]);
  strictEqual(await store.abortAbandonedUploads(), 0, "a week has not passed");
  strictEqual(await store.abortAbandonedUploads(60_000, Date.now() + 120_000), 1);
  deepStrictEqual(await place.uploads(), []);
  deepStrictEqual(await place.keys(), [], "its lease went with it");
});

test("`S3Store.entries()` reports keys no folder tree has: refused names, and a folder hidden by a file of the same name", async () => {
  await using place = s3Place(gatewaySettings());
  const { client, prefix } = place;
  for (const key of ["a", "a/inside.txt", "ok.txt", "tab\there", "dir//x", `${PARTIAL_PREFIX}z`]) {
    await client.put(`${prefix}/${key}`, "x");
  }
  const store = await place.open();
  const skipped: { name: string; reason: string }[] = [];
  const listed = await Array.fromAsync(
    store.entries("", { onSkipped: (entry) => skipped.push(entry) }),
  );
  deepStrictEqual(listed.map((entry) => `${entry.name}:${entry.type}`), [
    "a:file",
    "dir:dir",
    "ok.txt:file",
  ]);
  deepStrictEqual(skipped.map((entry) => entry.name).sort(), ["a", "tab\\x09here"]);
  ok(skipped.some((entry) => /a file of the same name/.test(entry.reason)));
  const inside: string[] = [];
  deepStrictEqual(
    await Array.fromAsync(store.entries("dir", { onSkipped: (entry) => inside.push(entry.name) })),
    [],
  );
  deepStrictEqual(inside, [""]);
  await rejects(store.resolve(`${PARTIAL_PREFIX}z`), Error); // never addressable
});

test("`S3Store` listings count their names against `maxListedNames` and refuse as busy past it", async () => {
  await using place = s3Place(gatewaySettings());
  for (const name of ["1", "2", "3"]) await place.client.put(`${place.prefix}/${name}`, "x");
  const store = await place.open({ maxListedNames: 2 });
  await rejects(Array.fromAsync(store.entries("")), BusyError);
  strictEqual(store.listedNames, 0, "nothing held after the refusal");
  const roomy = await place.open({ maxListedNames: 3 });
  strictEqual((await Array.fromAsync(roomy.entries(""))).length, 3);
});

test("`S3Store.within()` is the store seen from a sub-folder: nothing outside it can be named", async () => {
  await using place = s3Place(gatewaySettings());
  await place.client.put(`${place.prefix}/top.txt`, "top");
  await place.client.put(`${place.prefix}/team/a.txt`, "a");
  const team = (await place.open({ exclude: ["team/secret"] })).within("team");
  deepStrictEqual((await Array.fromAsync(team.entries(""))).map((entry) => entry.name), ["a.txt"]);
  await rejects(team.resolve("../top.txt"), Error);
  await rejects(team.resolve("top.txt"), NotFoundError);
  await rejects(team.beginUpload("secret"), NotFoundError); // the exclusion follows the view
  const pending = await team.beginUpload("b.txt");
  await pending.write(new TextEncoder().encode("b"));
  await pending.commit({ force: false });
  deepStrictEqual((await place.keys()).sort(), ["team/a.txt", "team/b.txt", "top.txt"]);
});

test("`S3Store.scope()` serves a code limited to a folder: a folder only, never a file or a missing one", async () => {
  await using place = s3Place(gatewaySettings());
  await place.client.put(`${place.prefix}/top.txt`, "top");
  await place.client.put(`${place.prefix}/team/a.txt`, "a");
  const store = await place.open();
  const team = await store.scope("team");
  deepStrictEqual((await Array.fromAsync(team.entries(""))).map((entry) => entry.name), ["a.txt"]);
  await rejects(team.resolve("../top.txt"), Error);
  await rejects(store.scope("top.txt"), NotFoundError);
  await rejects(store.scope("nobody"), NotFoundError);
});
