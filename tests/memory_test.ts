/**
 * Keeping memory flat while records stream through (lib/_memory.ts): used-up buffers handed back
 * at once, and a full collection asked for now and then when the runtime allows it.
 */
import { strictEqual } from "node:assert/strict";
import {
  noteRecord,
  RECORDS_PER_COLLECTION,
  RELEASE_MIN_BYTES,
  releaseBuffer,
} from "../lib/_memory.ts";

Deno.test("releaseBuffer() frees a large buffer it owns whole, and leaves small or shared ones alone", () => {
  const large = new Uint8Array(RELEASE_MIN_BYTES);
  releaseBuffer(large);
  strictEqual(large.buffer.detached, true);
  strictEqual(large.length, 0);

  const small = new Uint8Array(RELEASE_MIN_BYTES - 1);
  releaseBuffer(small);
  strictEqual(small.buffer.detached, false);

  const shared = new Uint8Array(2 * RELEASE_MIN_BYTES);
  const half = shared.subarray(RELEASE_MIN_BYTES);
  releaseBuffer(half);
  strictEqual(shared.buffer.detached, false, "a view into a larger buffer is not the owner");
});

Deno.test("noteRecord() asks for one full collection per RECORDS_PER_COLLECTION records when gc() is exposed", () => {
  const global = globalThis as { gc?: () => void };
  const exposed = global.gc;
  let collections = 0;
  global.gc = () => collections++;
  try {
    for (let record = 0; record < 3 * RECORDS_PER_COLLECTION; record++) noteRecord();
    strictEqual(collections, 3);
  } finally {
    if (exposed === undefined) delete global.gc;
    else global.gc = exposed;
  }
});
