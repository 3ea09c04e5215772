/**
 * The transfer engine on its own, over an in-memory record channel (tests/_pipes.ts): the body
 * loops both sides share (`sendBody`, `receiveBody`) and the resume rule (`offerKeptPrefix`,
 * `acceptKeptPrefix`, `hashFrom`). End-to-end behaviour is in transfers_test and resume_edge_test.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { ProtocolError } from "../lib/errors.ts";
import {
  ByteReader,
  MAX_RECORD_PLAINTEXT,
  RecordReader,
  RecordType,
  RecordWriter,
} from "../lib/protocol/framing.ts";
import { BodyWriteError, receiveBody, sendBody } from "../lib/transfer/body.ts";
import { newSha256, peekHex } from "../lib/transfer/hashing.ts";
import {
  acceptKeptPrefix,
  hashFrom,
  NOTHING_KEPT,
  offerKeptPrefix,
} from "../lib/transfer/resume.ts";
import { BytePipe, concat } from "./_pipes.ts";

const KEY = new Uint8Array(32).fill(7);
const IV = new Uint8Array(12).fill(9);

/** Deterministic bytes, different at every position of a block. */
function bytesOf(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = (index * 31 + seed * 7) & 0xff;
  return bytes;
}

/** A seekable in-memory file, as `sendBody` and `acceptKeptPrefix` read one. */
function memoryFile(content: Uint8Array) {
  let position = 0;
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      if (position >= content.length) return Promise.resolve(null);
      const count = Math.min(buffer.length, content.length - position);
      buffer.set(content.subarray(position, position + count));
      position += count;
      return Promise.resolve(count);
    },
    seek(offset: number): Promise<number> {
      position = offset;
      return Promise.resolve(position);
    },
  };
}

/** A record channel in one direction: a writer, and a reader of what it wrote. */
function channel(pipe = new BytePipe({ maxRead: 4096, maxWrite: 1000 })) {
  const writer = new RecordWriter(pipe, KEY, IV);
  const reader = new RecordReader(new ByteReader(pipe), KEY, IV);
  return { writer, reader, pipe };
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

for (const size of [0, 1, 1024, MAX_RECORD_PLAINTEXT, MAX_RECORD_PLAINTEXT + 1, 3_000_000]) {
  Deno.test(`\`sendBody()\` and \`receiveBody()\` move ${size} bytes exactly, hashed on both sides`, async () => {
    const content = bytesOf(size);
    const { writer, reader } = channel();
    const sendHash = newSha256();
    const progress: number[] = [];
    const sending = (async () => {
      const sent = await sendBody({
        source: memoryFile(content),
        length: size,
        writer,
        hash: sendHash,
      });
      await writer.write(RecordType.control, Uint8Array.of(1));
      await writer.flush();
      return sent;
    })();
    const received: Uint8Array[] = [];
    const receiveHash = newSha256();
    const end = await receiveBody({
      next: () => reader.next(),
      from: 0,
      size,
      write: (chunk) => {
        received.push(Uint8Array.from(chunk)); // a copy: the engine releases `chunk` once written
        return Promise.resolve();
      },
      hash: receiveHash,
      onReceived: (present) => progress.push(present),
      end: (record) => record,
      sender: "The sender",
    });
    strictEqual(await sending, size);
    strictEqual(end.type, RecordType.control);
    deepStrictEqual(concat(received), content);
    strictEqual(sendHash.digest("hex"), sha256(content));
    strictEqual(receiveHash.digest("hex"), sha256(content));
    ok(progress.every((value, index) => index === 0 || value > progress[index - 1]!));
    strictEqual(progress.at(-1) ?? 0, size);
    ok(received.every((chunk) => chunk.length <= MAX_RECORD_PLAINTEXT));
  });
}

Deno.test("`sendBody()` reports a source shorter than announced, and stops when told", async () => {
  const { writer } = channel();
  strictEqual(await sendBody({ source: memoryFile(bytesOf(100)), length: 500, writer }), 100);
  let records = 0;
  const sent = await sendBody({
    source: memoryFile(bytesOf(3 * MAX_RECORD_PLAINTEXT)),
    length: 3 * MAX_RECORD_PLAINTEXT,
    writer,
    onSent: () => records++,
    stopped: () => records >= 2,
  });
  strictEqual(sent, 2 * MAX_RECORD_PLAINTEXT);
});

Deno.test("`receiveBody()` reads the closing record before it counts the bytes", async () => {
  const { writer, reader } = channel();
  await writer.write(RecordType.data, bytesOf(10));
  await writer.write(RecordType.control, Uint8Array.of(42));
  await writer.flush();
  await rejects(
    receiveBody({
      next: () => reader.next(),
      from: 0,
      size: 100,
      write: () => Promise.resolve(),
      end: () => {
        throw new ProtocolError("Expected the end of the file, got another request");
      },
      sender: "The peer",
    }),
    /got another request/,
  );
});

Deno.test("`receiveBody()` refuses more bytes than announced at once, and fewer at the end", async () => {
  const over = channel();
  await over.writer.write(RecordType.data, bytesOf(10));
  await over.writer.write(RecordType.data, bytesOf(10));
  await over.writer.flush();
  await rejects(
    receiveBody({
      next: () => over.reader.next(),
      from: 0,
      size: 15,
      write: () => Promise.resolve(),
      end: (record) => record,
      sender: "The peer",
    }),
    (error) =>
      error instanceof ProtocolError && /The peer sent more than the 15 bytes/.test(error.message),
  );

  const short = channel();
  await short.writer.write(RecordType.data, bytesOf(5));
  await short.writer.write(RecordType.control, Uint8Array.of(1));
  await short.writer.flush();
  await rejects(
    receiveBody({
      next: () => short.reader.next(),
      from: 3,
      size: 10,
      write: () => Promise.resolve(),
      end: (record) => record,
      sender: "The peer",
    }),
    (error) => error instanceof ProtocolError && /The peer sent 8 of 10 bytes/.test(error.message),
  );
});

Deno.test("`receiveBody()` reports a failed write as BodyWriteError, after earlier writes landed", async () => {
  const { writer, reader } = channel();
  for (let index = 0; index < 4; index++) await writer.write(RecordType.data, bytesOf(100, index));
  await writer.write(RecordType.control, Uint8Array.of(1));
  await writer.flush();
  const landed: number[] = [];
  const diskFull = Object.assign(new Error("No space left on device"), { code: "ENOSPC" });
  await rejects(
    receiveBody({
      next: () => reader.next(),
      from: 0,
      size: 400,
      write: (chunk) => {
        if (landed.length === 2) return Promise.reject(diskFull);
        landed.push(chunk.length);
        return Promise.resolve();
      },
      end: (record) => record,
      sender: "The peer",
    }),
    (error) => error instanceof BodyWriteError && error.cause === diskFull,
  );
  deepStrictEqual(landed, [100, 100]);
});

Deno.test("the resume rule: a kept prefix is taken up only when its hash matches the source", async () => {
  const source = bytesOf(10_000, 3);
  const keptBytes = source.subarray(0, 4000);
  const hashKept = (length: number) =>
    Promise.resolve(newSha256().update(keptBytes.subarray(0, length)));

  const offer = await offerKeptPrefix(4000, hashKept, source.length);
  strictEqual(offer.offset, 4000);
  strictEqual(offer.sha256, sha256(keptBytes));
  const accepted = await acceptKeptPrefix(memoryFile(source), source.length, offer);
  strictEqual(accepted.offset, 4000);
  // Both sides continue one hash state from the agreed offset: the digests of the whole file agree.
  const receiving = hashFrom(offer, accepted.offset).update(source.subarray(4000));
  const sending = accepted.hash.update(source.subarray(4000));
  strictEqual(peekHex(receiving), sha256(source));
  strictEqual(peekHex(sending), sha256(source));

  // Different bytes, an offer past the end, an empty hash: start from 0 without an error.
  const other = bytesOf(10_000, 4);
  strictEqual((await acceptKeptPrefix(memoryFile(other), other.length, offer)).offset, 0);
  strictEqual((await acceptKeptPrefix(memoryFile(source), 3000, offer)).offset, 0);
  strictEqual(
    (await acceptKeptPrefix(memoryFile(source), source.length, { offset: 4000, sha256: "" }))
      .offset,
    0,
  );
  // Nothing kept, or more kept than the file being sent: nothing is offered.
  deepStrictEqual(await offerKeptPrefix(0, hashKept), NOTHING_KEPT);
  deepStrictEqual(await offerKeptPrefix(4000, hashKept, 3999), NOTHING_KEPT);
  // A refused offer restarts the receiver's hash from scratch.
  strictEqual(peekHex(hashFrom(offer, 0)), sha256(new Uint8Array(0)));
});
