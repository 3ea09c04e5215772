/**
 * One upload into the S3 store: {@link S3PendingFile}, the `PendingFile` of an object store, and the
 * lease that makes it the only writer of its name across every ferry server on the bucket.
 *
 * **Bytes.** They are gathered into parts (8 MiB; larger past the 1,000th part, see
 * {@link partBytes}) and sent as the parts of a multipart upload to the final key, one part in
 * flight while the next fills: memory is two parts per upload, whatever the object's size. A
 * multipart upload in progress is never visible as an object; completing it makes the whole object
 * appear at once. An upload that ends smaller than one part is sent as one PUT instead.
 *
 * **The lease** is a small hidden object beside the target, named like the local partial file
 * (`.ferry-partial.<name>`): a JSON record, then the tail bytes that did not fill a part. It is
 * created with `If-None-Match: *` (so two servers cannot both create it) and every later write is
 * conditional on its last entity tag (`If-Match`), so a server that lost it finds out at its next
 * write and stops. It says who holds the name (`holder`, `null` once let go), which multipart
 * upload holds the kept parts, how many, a SHA-256 of their entity tags, and the SHA-256 state
 * after them. While bytes arrive, the holder rewrites it at least every third of `leaseMs`; a lease
 * not rewritten for `leaseMs` (by the store's own clock: its `Date` against the lease's
 * `Last-Modified`) may be taken over, as a quiet upload is on one server (upload_claims.ts).
 *
 * **Resume.** A new upload of the name takes a released or stale lease over and checks its record
 * against the store (`ListParts`: the same parts, sizes and entity tags); the kept bytes are those
 * parts plus the tail, and the SHA-256 state after them is restored from the record
 * (`_s3_sha256.ts`), so nothing is read back: parts of an upload in progress cannot be read at all.
 *
 * **No silent overwrite.** Without `force`, a one-PUT upload is written with `If-None-Match: *`,
 * which the store checks atomically. A multipart upload is completed only after a HEAD finds no
 * object at the name, and with `If-None-Match: *` too (stores that honour it there, such as AWS S3
 * since 2024, close the gap; Ceph 16 ignores it). Every ferry upload of the name holds the lease
 * from its first byte to its commit, so no two ferry servers can race there; a writer that does
 * not take the lease (another tool) can still land an object between that HEAD and the completion,
 * which then replaces it: docs/THREAT_MODEL.md describes this residual risk.
 *
 * Private to lib/store.
 *
 * @module
 */
import type { Hash } from "node:crypto";
import { createHash } from "node:crypto";
import { BusyError, ExistsError, ObjectStoreError, PathError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { S3Client, UploadedPart } from "./_s3_client.ts";
import { ResumableSha256, type Sha256State } from "./_s3_sha256.ts";
import type { CommitOptions, PendingFile } from "./store.ts";
import { unrefTimer } from "../_timers.ts";

/** Size of the first 1,000 parts; later ones are multiples of it (see {@link partBytes}). */
export const PART_BYTES = 8 * 1024 * 1024;
/**
 * Parts sent at once while the next fills: two kept a single upload to the RADOS Gateway of this
 * project's VM busy (37 MB/s with one, more with two; see the README's S3 benchmark). Each costs
 * a part of memory.
 */
const PARTS_IN_FLIGHT = 2;
/** The most parts one upload may have (S3's limit). */
const MAX_PARTS = 10_000;
/** The lease record format written by this version. */
const LEASE_VERSION = 1;

/**
 * Size of part `number` (1-based): 8 MiB for parts 1-1,000, 16 MiB for 1,001-2,000, and so on up
 * to 64 MiB from the 7,001st, so that 10,000 parts hold about 406 GiB while the first 8 GiB of any
 * upload cost 16 MiB of memory. Every size is a multiple of 64 bytes, where a SHA-256 state can
 * be saved.
 */
export function partBytes(number: number): number {
  return PART_BYTES * Math.min(8, Math.ceil(number / 1000));
}

/**
 * Part buffers free for the next upload, shared by the uploads of one store: a server that takes
 * one large upload after another reuses the same few buffers instead of leaving each upload's to
 * the garbage collector (which let the memory of a server climb by a part's worth per upload).
 */
export class PartBuffers {
  readonly #free: Uint8Array[] = [];
  readonly #keep: number;

  /** Keeps at most `keep` free buffers. */
  constructor(keep = PARTS_IN_FLIGHT + 1) {
    this.#keep = keep;
  }

  /** A buffer of exactly `size` bytes (its content is whatever was there). */
  take(size: number): Uint8Array {
    const index = this.#free.findIndex((buffer) => buffer.length === size);
    return index < 0 ? new Uint8Array(size) : this.#free.splice(index, 1)[0]!;
  }

  /** Returns buffers no longer used (kept only if whole parts, up to the limit). */
  give(...buffers: Uint8Array[]): void {
    for (const buffer of buffers) {
      if (buffer.length >= PART_BYTES && this.#free.length < this.#keep) this.#free.push(buffer);
    }
  }
}

/** What a lease says about the kept parts. */
interface KeptUpload {
  /** The multipart upload's id. */
  id: string;
  /** Parts 1 to `parts` are kept. */
  parts: number;
  /** Their total size. */
  bytes: number;
  /** SHA-256 (hex) of their entity tags, each followed by a newline. */
  etags: string;
  /** The SHA-256 state after their bytes. */
  state: Sha256State;
}

/** The JSON record at the start of a lease object. */
interface LeaseRecord {
  /** Format version. */
  v: number;
  /** The upload that holds the name, or `null` once let go. */
  holder: string | null;
  /** The kept parts, if a multipart upload was started. */
  upload?: KeptUpload;
  /** Bytes after the record (and its newline): the tail that did not fill a part. */
  tail: number;
}

/** How an {@link S3PendingFile} is set up by the store. */
export interface UploadPlace {
  /** The client of the bucket. */
  client: S3Client;
  /** The object's final key. */
  key: string;
  /** The lease's key (hidden, beside it). */
  leaseKey: string;
  /** How the target is named in messages. */
  shown: string;
  /** A lease not rewritten for this long may be taken over. */
  leaseMs: number;
  /** Told of the work that closing leaves running (the store waits for it). */
  onClose: (settled: Promise<void>) => void;
  /** Where part buffers come from and go back to. */
  buffers: PartBuffers;
}

/** The kept bytes found for a resume. */
interface Kept {
  uploadId?: string;
  parts: UploadedPart[];
  state?: Sha256State;
  tail: Uint8Array;
}

/** No kept bytes (a new object each time: a pending file's parts array grows). */
function nothingKept(): Kept {
  return { parts: [], tail: new Uint8Array(0) };
}

/** One upload into the S3 store (see the module's text). */
export class S3PendingFile implements PendingFile {
  readonly #place: UploadPlace;
  readonly #holder: string;
  #leaseEtag: string;
  /** Lease writes, one after another (each is conditional on the one before). */
  #leaseWrites: Promise<void> = Promise.resolve();

  #uploadId: string | undefined;
  /** Parts the store acknowledged. */
  #parts: UploadedPart[];
  /** The SHA-256 state after the acknowledged parts. */
  #partsState: Sha256State | undefined;
  /** Parts sent or being sent, and their bytes. */
  #partCount: number;
  #sentBytes: number;
  /** The SHA-256 state after the parts sent. */
  #sentState: Sha256State | undefined;

  /** The bytes after the parts sent; only the first `#tailLength` count. */
  #tail: Uint8Array;
  #tailLength: number;
  /** Part buffers free for reuse. */
  #spares: Uint8Array[] = [];
  /** SHA-256 of every byte kept so far. */
  #hash: ResumableSha256;

  /** Uploads of parts under way (at most {@link PARTS_IN_FLIGHT}). */
  #inFlight = new Set<Promise<void>>();
  /** Parts acknowledged after one still under way, and the state after each, by number. */
  #early = new Map<number, { part: UploadedPart; state: Sha256State }>();
  #failure: unknown;
  /** Another upload took the lease over: nothing more may be written. */
  #lost = false;
  #open = true;
  #committed = false;
  /** Bytes arrived since the last lease write. */
  #active = false;
  #heartbeat: ReturnType<typeof setInterval>;
  /** When the lease was last written (this process's clock, after the store answered). */
  #leaseWrittenAt = performance.now();
  /** The lease write that {@link close} left running. */
  #settledClose: Promise<void> = Promise.resolve();

  private constructor(place: UploadPlace, holder: string, leaseEtag: string, kept: Kept) {
    this.#place = place;
    this.#holder = holder;
    this.#leaseEtag = leaseEtag;
    this.#uploadId = kept.uploadId;
    this.#parts = [...kept.parts];
    this.#partCount = kept.parts.length;
    this.#sentBytes = kept.parts.reduce((sum, part) => sum + part.size, 0);
    this.#partsState = kept.state;
    this.#sentState = kept.state;
    this.#tail = kept.tail;
    this.#tailLength = kept.tail.length;
    this.#hash = hashAfter(kept.state, kept.tail);
    this.#heartbeat = setInterval(() => this.#beat(), Math.max(10, place.leaseMs / 3));
    unrefTimer(this.#heartbeat);
  }

  /**
   * Takes the lease of `place.key` (creating it, or taking over a released or stale one) with the
   * kept bytes it records, once checked against the store. {@link BusyError} while another upload
   * holds it.
   */
  static async begin(place: UploadPlace): Promise<S3PendingFile> {
    const { client, leaseKey } = place;
    const holder = crypto.randomUUID();
    for (let attempt = 0; attempt < 4; attempt++) {
      const created = await client.put(
        leaseKey,
        encodeLease({ v: LEASE_VERSION, holder, tail: 0 }, new Uint8Array(0)),
        { ifNoneMatch: true },
      );
      if (created !== "precondition-failed") {
        return new S3PendingFile(place, holder, created.etag, nothingKept());
      }
      const existing = await client.readSmall(leaseKey);
      if (existing === null) continue; // let go of meanwhile
      const lease = decodeLease(existing.bytes);
      // Both times come from the store's clock in whole seconds: the lease has been quiet for at
      // least `quietMs - 1000`, which must reach the lease time.
      const quietMs = existing.date - existing.lastModified;
      if (lease !== undefined && lease.record.holder !== null && quietMs - 1000 < place.leaseMs) {
        throw busy(place.shown);
      }
      // Released, stale, or not a lease this version can read: taken over, with what it keeps.
      const record: LeaseRecord = {
        v: LEASE_VERSION,
        holder,
        upload: lease?.record.upload,
        tail: lease?.tail.length ?? 0,
      };
      const taken = await client.put(
        leaseKey,
        encodeLease(record, lease?.tail ?? new Uint8Array(0)),
        { ifMatch: existing.etag },
      );
      if (taken === "precondition-failed") continue; // another upload took it first
      const kept = lease === undefined
        ? nothingKept()
        : await checkedKept(place, lease.record, lease.tail);
      return new S3PendingFile(place, holder, taken.etag, kept);
    }
    throw busy(place.shown);
  }

  /** Bytes kept so far (sent as parts, or waiting to fill one). */
  get size(): number {
    return this.#sentBytes + this.#tailLength;
  }

  /**
   * SHA-256 state of the first `length` kept bytes: the whole, or at least the parts sent (their
   * state is saved; the bytes after them are in memory). A `RangeError` for a shorter prefix.
   */
  hashPrefix(length: number): Promise<Hash> {
    if (length === this.size) return Promise.resolve(this.#hash.asHash());
    if (length < this.#sentBytes || length > this.size) {
      return Promise.reject(this.#cannotCut(length));
    }
    const tail = this.#tail.subarray(0, length - this.#sentBytes);
    return Promise.resolve(hashAfter(this.#sentState, tail).asHash());
  }

  /**
   * Keeps the first `length` bytes: all, none, or any number not below the parts sent (a sent
   * part cannot be cut: a `RangeError`, which the server never meets, since it keeps all or none).
   */
  async truncate(length: number): Promise<void> {
    this.#assertWritable();
    if (length === this.size) return;
    if (length >= this.#sentBytes && length < this.size) {
      this.#tailLength = length - this.#sentBytes;
      this.#hash = hashAfter(this.#sentState, this.#tail.subarray(0, this.#tailLength));
      return;
    }
    if (length !== 0) throw this.#cannotCut(length);
    await this.#allSent();
    const uploadId = this.#uploadId;
    this.#uploadId = undefined;
    this.#parts = [];
    this.#partCount = 0;
    this.#sentBytes = 0;
    this.#partsState = undefined;
    this.#early.clear();
    this.#sentState = undefined;
    this.#tailLength = 0;
    this.#hash = new ResumableSha256();
    this.#failure = undefined;
    if (uploadId !== undefined) {
      await this.#place.client.abortUpload(this.#place.key, uploadId).catch(() => {});
    }
    await this.#saveLease(this.#holder);
  }

  /** Appends `bytes`; a part that fills is sent while the next one fills. */
  async write(bytes: Uint8Array): Promise<void> {
    this.#assertWritable();
    this.#active = true;
    let offset = 0;
    while (offset < bytes.length) {
      const size = partBytes(this.#partCount + 1);
      const take = Math.min(size - this.#tailLength, bytes.length - offset);
      const piece = bytes.subarray(offset, offset + take);
      this.#reserve(this.#tailLength + take, size);
      this.#tail.set(piece, this.#tailLength);
      this.#tailLength += take;
      this.#hash.update(piece);
      offset += take;
      if (this.#tailLength === size) await this.#sendPart();
    }
  }

  /**
   * Waits for the part in flight; durability itself comes with the commit (the store answers a
   * PUT or a completion once the object is stored).
   */
  async flush(): Promise<void> {
    await this.#allSent();
    this.#throwFailure();
  }

  /**
   * Gives the kept bytes their name (see the module's text on overwrites): {@link ExistsError}
   * when an object has it (without `force`; the bytes stay kept for a `--force` re-run),
   * `PathError` when a folder does. Closes either way.
   */
  async commit(options: CommitOptions): Promise<void> {
    this.#assertWritable();
    this.#active = true;
    const { client, key } = this.#place;
    try {
      await this.#allSent();
      this.#throwFailure();
      await this.#confirmLease();
      if (await folderAt(client, key)) {
        throw new PathError(
          `Cannot replace ${sanitizeForDisplay(this.#place.shown)}: it is a folder`,
        );
      }
      const meta = metaOf(options);
      if (this.#uploadId === undefined) {
        const body = this.#tail.subarray(0, this.#tailLength);
        const outcome = await client.put(key, body, { meta, ifNoneMatch: !options.force });
        if (outcome === "precondition-failed") throw this.#exists();
      } else {
        await this.#complete(options.force, meta);
      }
      this.#committed = true;
      this.#stop();
      this.#releaseBuffers();
      await this.#leaseWrites;
      if (!this.#lost) await client.delete(this.#place.leaseKey);
    } catch (error) {
      if (!this.#committed) this.close();
      throw error;
    } finally {
      this.#stop();
    }
  }

  /** Frees everything kept: the parts and the lease. */
  async discard(): Promise<void> {
    if (this.#committed) return;
    this.#stop();
    await this.#allSent();
    await this.#settledClose;
    const { client, key, leaseKey } = this.#place;
    this.#releaseBuffers();
    if (this.#uploadId !== undefined) await client.abortUpload(key, this.#uploadId);
    await this.#leaseWrites;
    if (!this.#lost) await client.delete(leaseKey);
  }

  /**
   * Lets go of the name and keeps the bytes for a resume: once the part in flight is in, the lease
   * is rewritten with the parts, the SHA-256 state after them and the tail, `holder` `null`.
   * Returns at once; the store waits for that work before the name is taken again.
   */
  close(): void {
    if (!this.#open) return;
    this.#stop();
    this.#settledClose = (async () => {
      await this.#allSent();
      // A failed part: its bytes are gone, so nothing after the acknowledged parts is kept.
      const tail = this.#failure === undefined
        ? this.#tail.subarray(0, this.#tailLength)
        : new Uint8Array(0);
      await this.#saveLease(null, tail).catch(() => {});
      this.#releaseBuffers();
    })();
    this.#place.onClose(this.#settledClose);
  }

  /**
   * Sends the full part in the tail while the next one fills, once fewer than
   * {@link PARTS_IN_FLIGHT} are under way. Parts are acknowledged in any order; the lease records
   * the acknowledged ones from part 1 on, without a gap, and the SHA-256 state after the last.
   */
  async #sendPart(): Promise<void> {
    while (this.#inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.#inFlight);
    this.#throwFailure();
    const number = this.#partCount + 1;
    if (number > MAX_PARTS) {
      throw new ObjectStoreError("The upload is larger than the object store's 10,000 parts hold");
    }
    const buffer = this.#tail;
    const body = buffer.subarray(0, this.#tailLength);
    const state = this.#hash.save();
    const { client, key } = this.#place;
    this.#uploadId ??= await this.#startUpload();
    const uploadId = this.#uploadId;
    this.#partCount = number;
    this.#sentBytes += body.length;
    this.#sentState = state;
    // Past the first part the upload is a large one: whole part buffers at once, not grown.
    this.#tail = this.#spares.pop() ?? this.#place.buffers.take(partBytes(number + 1));
    this.#tailLength = 0;
    const sending: Promise<void> = (async () => {
      const etag = await client.uploadPart(key, uploadId, number, body);
      this.#spares.push(buffer);
      this.#early.set(number, { part: { number, etag, size: body.length }, state });
      let next = this.#early.get(this.#parts.length + 1);
      if (next === undefined) return;
      while (next !== undefined) {
        this.#early.delete(next.part.number);
        this.#parts.push(next.part);
        this.#partsState = next.state;
        next = this.#early.get(this.#parts.length + 1);
      }
      await this.#saveLease(this.#holder);
    })().catch((error) => {
      this.#failure ??= error;
    }).finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }

  /** Waits until no part is under way. */
  async #allSent(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Starts the multipart upload and records it in the lease before any part is sent. */
  async #startUpload(): Promise<string> {
    const uploadId = await this.#place.client.createUpload(this.#place.key);
    this.#uploadId = uploadId;
    await this.#saveLease(this.#holder);
    return uploadId;
  }

  /** Sends the tail as the last part and completes the upload (see the module's text). */
  async #complete(force: boolean, meta: Record<string, string>): Promise<void> {
    const { client, key } = this.#place;
    const uploadId = this.#uploadId!;
    if (!force && (await client.head(key)) !== null) throw this.#exists();
    const parts = [...this.#parts];
    if (this.#tailLength > 0) {
      const number = this.#partCount + 1;
      const body = this.#tail.subarray(0, this.#tailLength);
      const etag = await client.uploadPart(key, uploadId, number, body);
      parts.push({ number, etag, size: body.length });
    }
    const outcome = await client.completeUpload(key, uploadId, parts, { ifNoneMatch: !force });
    if (outcome === "precondition-failed") throw this.#exists();
    if (outcome === "gone") {
      this.#uploadId = undefined;
      throw new BusyError(
        `${sanitizeForDisplay(this.#place.shown)} was taken over by another upload`,
      );
    }
    if (Object.keys(meta).length > 0) {
      // The metadata of a multipart upload is set when it starts, before the time and mode are
      // known: a copy onto itself sets them (cheap in Ceph, which shares the data; best effort).
      const head = await client.head(key);
      if (head !== null) await client.replaceMeta(key, head.etag, meta).catch(() => false);
    }
  }

  /** Rewrites the lease (`If-Match` its last entity tag); a refusal means it was taken over. */
  #saveLease(holder: string | null, tail: Uint8Array = new Uint8Array(0)): Promise<void> {
    const write = this.#leaseWrites.then(async () => {
      if (this.#lost) return;
      const record: LeaseRecord = { v: LEASE_VERSION, holder, tail: tail.length };
      if (this.#uploadId !== undefined && this.#partsState !== undefined) {
        record.upload = {
          id: this.#uploadId,
          parts: this.#parts.length,
          bytes: this.#parts.reduce((sum, part) => sum + part.size, 0),
          etags: etagsDigest(this.#parts),
          state: this.#partsState,
        };
      } else if (this.#uploadId !== undefined) {
        record.upload = {
          id: this.#uploadId,
          parts: 0,
          bytes: 0,
          etags: etagsDigest([]),
          state: new ResumableSha256().save(),
        };
      }
      const outcome = await this.#place.client.put(
        this.#place.leaseKey,
        encodeLease(record, tail),
        {
          ifMatch: this.#leaseEtag,
        },
      );
      if (outcome === "precondition-failed") {
        this.#lost = true;
      } else {
        this.#leaseEtag = outcome.etag;
        this.#leaseWrittenAt = performance.now();
      }
    });
    this.#leaseWrites = write.catch(() => {});
    return write;
  }

  /**
   * Makes sure the lease is still this upload's before it names anything: a lease written less
   * than half the lease time ago cannot have been taken over (that takes a whole lease time of
   * quiet by the store's clock); an older one is written again, which fails if it was.
   */
  async #confirmLease(): Promise<void> {
    if (performance.now() - this.#leaseWrittenAt > this.#place.leaseMs / 2) {
      await this.#saveLease(this.#holder);
    }
    if (this.#lost) {
      throw new BusyError(
        `${sanitizeForDisplay(this.#place.shown)} was taken over by another upload`,
      );
    }
  }

  /** Refreshes the lease while bytes arrive, so that another server sees the upload is alive. */
  #beat(): void {
    if (!this.#active || !this.#open) return;
    this.#active = false;
    this.#saveLease(this.#holder).catch(() => {});
  }

  #stop(): void {
    this.#open = false;
    clearInterval(this.#heartbeat);
  }

  #assertWritable(): void {
    if (this.#lost) {
      throw new BusyError(
        `${sanitizeForDisplay(this.#place.shown)} was taken over by another upload`,
      );
    }
    if (!this.#open) throw new Deno.errors.BadResource("The pending file is closed");
    this.#throwFailure();
  }

  #throwFailure(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #exists(): ExistsError {
    return new ExistsError(
      `${sanitizeForDisplay(this.#place.shown)} already exists: use --force to replace it`,
    );
  }

  #cannotCut(length: number): RangeError {
    return new RangeError(
      `Cannot keep ${length} of ${this.size} bytes: the first ${this.#sentBytes} are sent as parts`,
    );
  }

  /** Room for `length` bytes in the tail, growing by doubling up to one part of `limit` bytes. */
  #reserve(length: number, limit: number): void {
    if (length <= this.#tail.length) return;
    // Doubling while small (most uploads are), then a whole part at once.
    const doubled = Math.max(length, this.#tail.length * 2, 64 * 1024);
    const grown = doubled > 1024 * 1024 ? this.#place.buffers.take(limit) : new Uint8Array(doubled);
    grown.set(this.#tail.subarray(0, this.#tailLength));
    this.#tail = grown;
  }

  /** Gives the part buffers back once nothing uses them (after every send and lease write). */
  #releaseBuffers(): void {
    this.#place.buffers.give(this.#tail, ...this.#spares);
    this.#tail = new Uint8Array(0);
    this.#tailLength = 0;
    this.#spares = [];
  }
}

/**
 * The kept bytes a lease records, if the store still holds them as recorded: the same parts in
 * the same order, sizes and entity tags. Anything else is dropped (an upload whose parts differ is
 * aborted): the next bytes start from 0.
 */
async function checkedKept(
  place: UploadPlace,
  record: LeaseRecord,
  tail: Uint8Array,
): Promise<Kept> {
  const upload = record.upload;
  if (upload === undefined) return { parts: [], tail };
  const parts = await place.client.listParts(place.key, upload.id);
  if (parts !== null) {
    const kept = parts.slice(0, upload.parts);
    const matches = kept.length === upload.parts &&
      kept.every((part, index) =>
        part.number === index + 1 && part.size === partBytes(index + 1)
      ) &&
      etagsDigest(kept) === upload.etags &&
      kept.reduce((sum, part) => sum + part.size, 0) === upload.bytes;
    let state: Sha256State | undefined;
    try {
      state = ResumableSha256.restore(upload.state).save();
    } catch {
      state = undefined;
    }
    if (matches && state !== undefined && state.length === upload.bytes) {
      return {
        uploadId: upload.id,
        parts: kept,
        state: upload.parts > 0 ? state : undefined,
        tail,
      };
    }
    await place.client.abortUpload(place.key, upload.id).catch(() => {});
  }
  return nothingKept();
}

/** A SHA-256 to go on from `state` (a fresh one without), with `tail` hashed. */
function hashAfter(state: Sha256State | undefined, tail: Uint8Array): ResumableSha256 {
  const hash = state === undefined ? new ResumableSha256() : ResumableSha256.restore(state);
  hash.update(tail);
  return hash;
}

/** Whether a folder (any key below `objectKey/`) is at `objectKey`. */
async function folderAt(client: S3Client, objectKey: string): Promise<boolean> {
  const page = await client.list(`${objectKey}/`, { maxKeys: 1 });
  return page.objects.length > 0 || page.prefixes.length > 0;
}

/** The user metadata that records `options`' time and mode. */
export function metaOf(options: { mtime?: number; mode?: number }): Record<string, string> {
  const meta: Record<string, string> = {};
  if (options.mtime !== undefined) meta["ferry-mtime"] = String(Math.round(options.mtime));
  if (options.mode !== undefined) meta["ferry-mode"] = (options.mode & 0o777).toString(8);
  return meta;
}

function etagsDigest(parts: readonly UploadedPart[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(`${part.etag}\n`);
  return hash.digest("hex");
}

function encodeLease(record: LeaseRecord, tail: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${JSON.stringify(record)}\n`);
  const bytes = new Uint8Array(head.length + tail.length);
  bytes.set(head);
  bytes.set(tail, head.length);
  return bytes;
}

/** A lease's record and tail, or undefined when the bytes are not a lease this version reads. */
function decodeLease(bytes: Uint8Array): { record: LeaseRecord; tail: Uint8Array } | undefined {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) return undefined;
  try {
    const record = JSON.parse(new TextDecoder().decode(bytes.subarray(0, newline))) as LeaseRecord;
    const tail = bytes.subarray(newline + 1);
    if (record.v !== LEASE_VERSION || record.tail !== tail.length) return undefined;
    if (record.holder !== null && typeof record.holder !== "string") return undefined;
    return { record, tail };
  } catch {
    return undefined;
  }
}

function busy(shown: string): BusyError {
  return new BusyError(
    `${sanitizeForDisplay(shown)} is being received by another transfer: try again when it ends`,
  );
}
