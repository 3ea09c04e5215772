/**
 * `lib/protocol/listing.ts` as a specification, both ends over an in-memory secure channel (the
 * real handshake and records over `_pipes.ts`): how the writer cuts batches, and what the reader
 * accepts, refuses, and drops when its caller stops early. `listing_test.ts` checks the same
 * listings end to end through `ferry ls`.
 */
import assert from "node:assert/strict";
import { PathError, ProtocolError, RemoteError } from "../lib/errors.ts";
import { codeSecret } from "../lib/code.ts";
import {
  LISTING_BATCH_BYTES,
  MAX_CONTROL_BYTES,
  MAX_LISTING_BATCH,
  MAX_LISTING_ENTRIES,
} from "../lib/protocol/constants.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { clientHandshake, type SecureChannel, serverHandshake } from "../lib/protocol/handshake.ts";
import { ListingWriter, readListing, sendListing } from "../lib/protocol/listing.ts";
import {
  decodeServerMessage,
  encodeMessage,
  type ListEntry,
  type Listing,
  type ServerMessage,
} from "../lib/protocol/messages.ts";
import { duplexPair } from "./_pipes.ts";

function file(name: string): ListEntry {
  return { name, type: "file", size: 1, mtime: 0, mode: 0o644 };
}

function files(count: number, prefix = "f"): ListEntry[] {
  return Array.from({ length: count }, (_, index) => file(`${prefix}${index}`));
}

/** Two ends of an authenticated channel in memory; `send` writes a server message. */
async function channelPair() {
  const { a, b } = duplexPair();
  const secret = codeSecret("ABCD-EFGH-JKMN-PQRS");
  const [client, server] = await Promise.all([
    clientHandshake(a, secret),
    serverHandshake(b, secret),
  ]);
  const send = (message: ServerMessage) =>
    server.writer.send(RecordType.control, encodeMessage(message));
  return { client, server, send };
}

/** The next server message on `channel`. */
async function nextMessage(channel: SecureChannel): Promise<ServerMessage> {
  const record = await channel.reader.next();
  assert.equal(record.type, RecordType.control);
  return decodeServerMessage(record.payload);
}

/** A `next` for {@link readListing} that reads `channel` and counts its calls. */
function listingReader(channel: SecureChannel) {
  const reader = {
    calls: 0,
    next: async (): Promise<Listing> => {
      reader.calls++;
      const message = await nextMessage(channel);
      if (message.t === "error") throw new RemoteError(message.code, message.message);
      if (message.t !== "listing") throw new ProtocolError(`Expected listing, got ${message.t}`);
      return message;
    },
  };
  return reader;
}

/** What `sendListing(entries)` sends, as [batch length, done] pairs. */
async function batchShape(entries: Iterable<ListEntry>): Promise<[number, boolean][]> {
  const sent: Listing[] = [];
  await sendListing(entries, (message) => {
    sent.push(message);
    return Promise.resolve();
  });
  return sent.map((message) => [message.entries.length, message.done]);
}

// The writer

Deno.test("`sendListing()` of no entries sends one empty batch with `done`", async () => {
  assert.deepEqual(await batchShape([]), [[0, true]]);
});

Deno.test("`sendListing()` cuts batches of MAX_LISTING_BATCH entries; only the last has `done`", async () => {
  const n = MAX_LISTING_BATCH;
  assert.deepEqual(await batchShape(files(1)), [[1, true]]);
  assert.deepEqual(await batchShape(files(n - 1)), [[n - 1, true]]);
  assert.deepEqual(await batchShape(files(n)), [[n, false], [0, true]]);
  assert.deepEqual(await batchShape(files(2 * n + 1)), [[n, false], [n, false], [1, true]]);
});

Deno.test("`sendListing()` sends a batch early once it nears LISTING_BATCH_BYTES", async () => {
  const long = (index: number) => file(`${index}`.padEnd(1000, "x"));
  const perBatch = Math.ceil(LISTING_BATCH_BYTES / (1000 * 6 + 100));
  assert.ok(perBatch < MAX_LISTING_BATCH);
  const shape = await batchShape(Array.from({ length: 2 * perBatch + 1 }, (_, i) => long(i)));
  assert.deepEqual(shape, [[perBatch, false], [perBatch, false], [1, true]]);
});

Deno.test("`sendListing()` batches of the longest names still fit in a control message", async () => {
  const sent: Listing[] = [];
  const entries = Array.from({ length: 40 }, (_, i) => file(`${i}/${"日".repeat(4000)}`));
  await sendListing(entries, (message) => {
    sent.push(message);
    return Promise.resolve();
  });
  for (const message of sent) assert.ok(encodeMessage(message).length <= MAX_CONTROL_BYTES);
  assert.equal(sent.flatMap((message) => message.entries).length, entries.length);
});

Deno.test("`sendListing()` passes on an error of its entries after the full batches, without `done`", async () => {
  const sent: Listing[] = [];
  async function* failing(): AsyncGenerator<ListEntry> {
    yield* files(MAX_LISTING_BATCH + 3);
    throw new Deno.errors.PermissionDenied("no");
  }
  await assert.rejects(
    () =>
      sendListing(failing(), (message) => {
        sent.push(message);
        return Promise.resolve();
      }),
    Deno.errors.PermissionDenied,
  );
  assert.deepEqual(sent.map((message) => [message.entries.length, message.done]), [
    [MAX_LISTING_BATCH, false],
  ]);
});

Deno.test("`ListingWriter` sends nothing before a batch is full, and the rest on `end()`", async () => {
  const sent: Listing[] = [];
  const writer = new ListingWriter((message) => {
    sent.push(message);
    return Promise.resolve();
  });
  for (const entry of files(MAX_LISTING_BATCH - 1)) await writer.add(entry);
  assert.equal(sent.length, 0);
  await writer.add(file("last"));
  assert.equal(sent.length, 1);
  await writer.end();
  assert.deepEqual(sent.map((message) => [message.entries.length, message.done]), [
    [MAX_LISTING_BATCH, false],
    [0, true],
  ]);
});

// Both ends over a secure channel

Deno.test("`readListing()` yields what `sendListing()` sent, batch by batch, in order", async () => {
  const { client, send } = await channelPair();
  const entries = [file(""), ...files(2 * MAX_LISTING_BATCH + 5, "")];
  const sending = sendListing(entries, send);
  const batches: ListEntry[][] = [];
  for await (const batch of readListing(listingReader(client).next)) batches.push(batch);
  await sending;
  assert.deepEqual(batches.map((batch) => batch.length), [
    MAX_LISTING_BATCH,
    MAX_LISTING_BATCH,
    6,
  ]);
  assert.deepEqual(batches.flat(), entries);
});

Deno.test("`readListing()` of an empty listing yields one empty batch", async () => {
  const { client, send } = await channelPair();
  await sendListing([], send);
  const batches: ListEntry[][] = [];
  for await (const batch of readListing(listingReader(client).next)) batches.push(batch);
  assert.deepEqual(batches, [[]]);
});

Deno.test("hostile server: `readListing()` refuses a listing longer than `maxEntries`", async () => {
  const { client, send } = await channelPair();
  for (let i = 0; i < 3; i++) await send({ t: "listing", entries: files(4), done: false });
  const seen: number[] = [];
  await assert.rejects(
    async () => {
      const reader = readListing(listingReader(client).next, { maxEntries: 10 });
      for await (const batch of reader) seen.push(batch.length);
    },
    (error) => error instanceof ProtocolError && /more than 10 entries/.test(error.message),
  );
  assert.deepEqual(seen, [4, 4]);
});

Deno.test("hostile server: `readListing()` caps a listing at MAX_LISTING_ENTRIES by default", async () => {
  // Names of "" (the listed file itself) pass validation at once: the cap alone is under test.
  const entries = Array.from({ length: MAX_LISTING_BATCH }, () => file(""));
  const full: Listing = { t: "listing", entries, done: false };
  let batches = 0;
  await assert.rejects(
    async () => {
      for await (const _ of readListing(() => Promise.resolve(full))) batches++;
    },
    (error) =>
      error instanceof ProtocolError && error.message.includes(String(MAX_LISTING_ENTRIES)),
  );
  assert.equal(batches, Math.floor(MAX_LISTING_ENTRIES / MAX_LISTING_BATCH));
});

for (const name of ["../escape", "/etc/passwd", "a/../../b", "a//b", "bad\u0007name"]) {
  Deno.test(`hostile server: \`readListing()\` refuses the entry name ${JSON.stringify(name)}`, async () => {
    const { client, send } = await channelPair();
    await send({ t: "listing", entries: [file("fine"), file(name)], done: true });
    const reader = listingReader(client);
    await assert.rejects(async () => {
      for await (const _ of readListing(reader.next)) assert.fail("no batch is yielded");
    }, PathError);
    assert.equal(reader.calls, 1);
  });
}

Deno.test("`readListing()` stopped after one batch reads and drops the rest of the listing", async () => {
  const { client, send } = await channelPair();
  await sendListing(files(3 * MAX_LISTING_BATCH), send);
  await send({ t: "mkdir-done", name: "next answer" });
  const reader = listingReader(client);
  for await (const batch of readListing(reader.next)) {
    assert.equal(batch.length, MAX_LISTING_BATCH);
    break;
  }
  assert.equal(reader.calls, 4, "three full batches and the empty `done` one");
  assert.deepEqual(await nextMessage(client), { t: "mkdir-done", name: "next answer" });
});

Deno.test("`readListing()` drops the rest too when its caller's loop throws", async () => {
  const { client, send } = await channelPair();
  await sendListing(files(MAX_LISTING_BATCH + 1), send);
  await send({ t: "mkdir-done", name: "next answer" });
  await assert.rejects(async () => {
    for await (const _ of readListing(listingReader(client).next)) throw new Error("caller");
  }, /caller/);
  assert.deepEqual(await nextMessage(client), { t: "mkdir-done", name: "next answer" });
});

Deno.test("`readListing()` reads nothing more after an error reply ends the listing", async () => {
  const { client, send } = await channelPair();
  await send({ t: "listing", entries: files(2), done: false });
  await send({ t: "error", code: "io", message: "disk gone" });
  await send({ t: "mkdir-done", name: "next answer" });
  const reader = listingReader(client);
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const batch of readListing(reader.next)) seen.push(batch.length);
  }, (error) => error instanceof RemoteError && error.code === "io");
  assert.deepEqual(seen, [2]);
  assert.equal(reader.calls, 2);
  assert.deepEqual(await nextMessage(client), { t: "mkdir-done", name: "next answer" });
});

Deno.test("`readListing()` stopped early leaves an error met while dropping for the next request", async () => {
  const { client, send } = await channelPair();
  await send({ t: "listing", entries: files(1), done: false });
  await send({ t: "error", code: "io", message: "disk gone" });
  const reader = listingReader(client);
  for await (const _ of readListing(reader.next)) break;
  assert.equal(reader.calls, 2);
});

Deno.test("hostile server: `readListing()` caps a listing by the bytes of its names, not only entries", async () => {
  const longName = `${"d".repeat(200)}/`.repeat(19); // a valid path of about 3.8 KB
  let sent = 0;
  const next = () => {
    sent++;
    const entries = Array.from({ length: 16 }, (_, index) => file(`${longName}${sent}-${index}`));
    return Promise.resolve({ t: "listing" as const, entries, done: false });
  };
  await assert.rejects(
    async () => {
      for await (const _ of readListing(next, { maxNameUnits: 1_000_000 })) {
        // read on
      }
    },
    (error) => error instanceof ProtocolError && /characters of names/.test(error.message),
  );
  assert.ok(sent < 20, `stopped after ${sent} batches of 64 KB, not at a million entries`);
});

Deno.test("hostile server: endless empty listing batches count toward the cap", async () => {
  let sent = 0;
  const next = () => {
    sent++;
    return Promise.resolve({ t: "listing" as const, entries: [], done: false });
  };
  await assert.rejects(
    async () => {
      for await (const _ of readListing(next, { maxEntries: 1000 })) {
        // read on
      }
    },
    (error) => error instanceof ProtocolError && /more than 1000 entries/.test(error.message),
  );
  assert.equal(sent, 1001);
});

// --- entries that cannot be listed ---------------------------------------------------------------

Deno.test("`ListingWriter.skip()` sends names it cannot list with the batches, named up to 10,000, then counted", async () => {
  const sent: Listing[] = [];
  const writer = new ListingWriter((message) => Promise.resolve(void sent.push(message)));
  await writer.add(file("a"));
  for (let index = 0; index < 10_005; index++) {
    await writer.skip({ name: `bad\\x09${index}`, reason: "its name is refused" });
  }
  await writer.add(file("b"));
  await writer.end();
  const skipped = sent.flatMap((message) => message.skipped ?? []);
  assert.ok(sent.every((message) => (message.skipped?.length ?? 0) <= MAX_LISTING_BATCH));
  assert.equal(skipped.length, 10_001);
  assert.equal(skipped.at(-1)?.name, "(5 more)");
  assert.deepEqual(sent.flatMap((message) => message.entries.map((entry) => entry.name)), [
    "a",
    "b",
  ]);
  assert.equal(sent.at(-1)?.done, true);
});

Deno.test("`readListing()` hands the skipped entries to `onSkipped`; the decoder escapes their text", async () => {
  const batches: Listing[] = [
    { t: "listing", entries: [file("a")], done: false, skipped: [{ name: "x", reason: "why" }] },
    { t: "listing", entries: [], done: true, skipped: [{ name: "\u001b[2J", reason: "\u202e" }] },
  ];
  const decoded = batches.map((batch) => decodeServerMessage(encodeMessage(batch)) as Listing);
  const told: { name: string; reason: string }[] = [];
  let index = 0;
  const entries: ListEntry[] = [];
  for await (
    const batch of readListing(() => Promise.resolve(decoded[index++]!), {
      onSkipped: (entry) => told.push(entry),
    })
  ) entries.push(...batch);
  assert.deepEqual(entries.map((entry) => entry.name), ["a"]);
  assert.deepEqual(told, [{ name: "x", reason: "why" }, { name: "\\x1b[2J", reason: "\\u202e" }]);
});

Deno.test("hostile server: a `skipped` field that is not a bounded array of names is refused", () => {
  const bad = [
    { t: "listing", entries: [], done: true, skipped: "x" },
    { t: "listing", entries: [], done: true, skipped: [{ name: 1, reason: "r" }] },
    {
      t: "listing",
      entries: [],
      done: true,
      skipped: Array.from({ length: MAX_LISTING_BATCH + 1 }, () => ({ name: "n", reason: "r" })),
    },
  ];
  for (const message of bad) {
    assert.throws(
      () => decodeServerMessage(new TextEncoder().encode(JSON.stringify(message))),
      ProtocolError,
    );
  }
});
