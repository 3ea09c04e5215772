/**
 * A bucket (or a prefix of one) of an S3-compatible object store: {@link S3Store}, the
 * {@link FileStore} of `ferry serve s3://BUCKET[/PREFIX]`. The protocol, codes and rights do not
 * change; only where the bytes live does.
 *
 * **Objects as files and folders.** The remote path `a/b.txt` is the key `PREFIX/a/b.txt`, built
 * only from components that `parseRemotePath` accepted, so no request can leave the prefix. A
 * folder is every key below `a/` (listed with the delimiter `/`), plus, for a folder made by
 * `mkdir` (empty or not), a zero-byte marker object `a/` that holds its time and mode. A file's
 * time and mode are user metadata (`x-amz-meta-ferry-mtime`, `-mode`), which `resolve` and
 * `openRead` read; a listing has no metadata, so there a file shows the time it was stored and
 * mode 644. When a key is both a file and the prefix of others, the file is shown and the folder
 * is reported as left out.
 *
 * **Hidden.** As on disk: names starting with `.ferry-partial.` (the upload leases), excluded
 * paths, and names the path rules refuse (reported through `onSkipped`, never served). A listing
 * holds its folder's names and counts them against a budget shared by all listings
 * (`maxListedNames`), as `LocalStore` does.
 *
 * **Uploads** are multipart uploads to the final key, invisible until completed, kept under a
 * lease for resume and for one writer per name across servers (see `_s3_upload.ts`). Multipart
 * uploads abandoned for {@link ABANDONED_UPLOAD_MS} (7 days) are aborted by
 * {@link S3Store.abortAbandonedUploads}, which `ferry serve` runs at start and every hour.
 *
 * **Reads** are ranged GETs streamed from the read position, each conditional on the entity tag
 * seen when the file was opened (see `_s3_file.ts`).
 *
 * Permissions: net to the endpoint's host and port; what {@link S3Settings} were read from (see
 * `s3_config.ts`) needs env and read permissions before.
 *
 * @module
 */
import { BusyError, ExistsError, IsFolderError, PathError } from "../errors.ts";
import {
  MAX_PATH_BYTES,
  nameProblem,
  parseRemotePath,
  partialNameFor,
  sanitizeForDisplay,
} from "../protocol/remote_path.ts";
import { type ListedObject, type ObjectHead, S3Client } from "./_s3_client.ts";
import { S3StoredFile } from "./_s3_file.ts";
import { metaOf, PartBuffers, S3PendingFile } from "./_s3_upload.ts";
import type { S3Settings, S3Target } from "./s3_config.ts";
import {
  type EntryInfo,
  type FileStore,
  hiddenPath,
  listingRefusal,
  notFound,
  type PendingFile,
  skippedTo,
  type StoredFile,
  type TargetKind,
  type WalkOptions,
} from "./store.ts";

/** Multipart uploads left this long (and their leases as long unwritten) are aborted: 7 days. */
export const ABANDONED_UPLOAD_MS = 7 * 24 * 60 * 60 * 1000;
/** A lease not rewritten for this long may be taken over by another upload (see `_s3_upload.ts`). */
export const DEFAULT_LEASE_MS = 30_000;
/** Names all listings in progress may hold at once (as `LocalStore`'s default). */
const DEFAULT_MAX_LISTED_NAMES = 2_000_000;
/** Folders of a listing whose marker is looked up at once. */
const LOOKUP_WINDOW = 32;
/** Mode shown for an object or folder without one recorded. */
const DEFAULT_FILE_MODE = 0o644;
const DEFAULT_FOLDER_MODE = 0o755;

/** Options of {@link S3Store.open}. */
export interface S3StoreOptions {
  /** Remote paths never listed, served nor written (each also hides what lies below it). */
  exclude?: string[];
  /** Names all listings in progress may hold at once (default 2,000,000). */
  maxListedNames?: number;
  /** A lease quiet this long may be taken over (default {@link DEFAULT_LEASE_MS}). */
  leaseMs?: number;
}

/** A child found while listing a folder: its name and what the listing said. */
type Child = { name: string; file: ListedObject } | { name: string; folder: string };

/** A bucket or prefix served as a folder (see the module's text). Create with {@link open}. */
export class S3Store implements FileStore {
  readonly #client: S3Client;
  readonly #target: S3Target;
  /** Key prefix of the served folder: `""` (the whole bucket) or `PREFIX/`. */
  readonly #root: string;
  readonly #excluded: string[][];
  readonly #maxListedNames: number;
  readonly #leaseMs: number;
  /** Listings' names held now, shared with the views made by {@link within}. */
  readonly #budget: { held: number };
  /** Leases being let go of (see `S3PendingFile.close`), by key. */
  readonly #closing: Map<string, Promise<void>>;
  /** Part buffers between uploads, shared with the views. */
  readonly #buffers: PartBuffers;

  private constructor(
    client: S3Client,
    target: S3Target,
    options: S3StoreOptions,
    shared?: {
      budget: { held: number };
      closing: Map<string, Promise<void>>;
      buffers: PartBuffers;
    },
  ) {
    this.#client = client;
    this.#target = target;
    this.#root = target.prefix.length === 0 ? "" : `${target.prefix.join("/")}/`;
    this.#excluded = (options.exclude ?? []).map((path) => parseRemotePath(path));
    this.#maxListedNames = options.maxListedNames ?? DEFAULT_MAX_LISTED_NAMES;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#budget = shared?.budget ?? { held: 0 };
    this.#closing = shared?.closing ?? new Map();
    this.#buffers = shared?.buffers ?? new PartBuffers();
  }

  /**
   * The bucket and prefix of `target` at the store `settings` describe, once a listing of the
   * bucket succeeded: `ObjectStoreError` when the store cannot be reached, refuses the
   * credentials, or has no such bucket. The prefix need not exist yet (an empty folder).
   * Permission: net to the endpoint.
   */
  static async open(
    target: S3Target,
    settings: S3Settings,
    options: S3StoreOptions = {},
  ): Promise<S3Store> {
    const client = new S3Client(settings, target.bucket);
    await client.checkBucket();
    return new S3Store(client, target, options);
  }

  /**
   * The same store seen from its sub-folder `path` (which need not exist): every path given to
   * the view is below it, so nothing outside can be named. For a code scoped to a folder. The
   * listing budget and the leases are shared with this store.
   */
  within(path: string): S3Store {
    const target = { ...this.#target, prefix: [...this.#target.prefix, ...parseRemotePath(path)] };
    const excluded = this.#excluded.flatMap((components) => {
      const inside = parseRemotePath(path);
      if (components.length <= inside.length) return [];
      return inside.every((part, index) => components[index] === part)
        ? [components.slice(inside.length).join("/")]
        : [];
    });
    return new S3Store(this.#client, target, {
      exclude: excluded,
      maxListedNames: this.#maxListedNames,
      leaseMs: this.#leaseMs,
    }, { budget: this.#budget, closing: this.#closing, buffers: this.#buffers });
  }

  /**
   * A view of the folder at `path` for a code limited to it (see `FileStore.scope`): its
   * {@link within} view, once `path` is known to name a folder. `NotFoundError` for a file, a
   * missing folder, or a hidden one.
   */
  async scope(path: string): Promise<S3Store> {
    const info = await this.resolve(path);
    if (info.type !== "dir") throw notFound(path);
    return this.within(path);
  }

  /** `s3://BUCKET[/PREFIX]`, for messages on the server side. */
  get description(): string {
    return `s3://${[this.#target.bucket, ...this.#target.prefix].join("/")}`;
  }

  /** `host:port` of the store's endpoint. */
  get host(): string {
    return this.#client.host;
  }

  /** Names held by the listings in progress now. */
  get listedNames(): number {
    return this.#budget.held;
  }

  /** Describes the file or folder at `path` (see `FileStore.resolve`). */
  async resolve(path: string): Promise<EntryInfo> {
    const components = this.#parse(path);
    if (components.length === 0) return await this.#rootInfo();
    const head = await this.#client.head(this.#key(components));
    if (head !== null) return fileInfo(components.at(-1)!, head);
    const folder = await this.#folderInfo(components);
    if (folder === undefined) throw notFound(path);
    return folder;
  }

  /**
   * The children of the folder at `path` in name order (UTF-16 code units), or the file itself.
   * Hidden: leases, excluded paths; left out and told to `onSkipped`: names the path rules refuse,
   * and a folder that a file of the same name hides.
   */
  async *entries(path: string, options: WalkOptions = {}): AsyncIterable<EntryInfo> {
    const components = this.#parse(path);
    if (components.length > 0) {
      const head = await this.#client.head(this.#key(components));
      if (head !== null) {
        yield fileInfo(components.at(-1)!, head);
        return;
      }
    }
    yield* this.#children(components, path, skippedTo(options, ""), true);
  }

  /** Every file and folder below the folder at `path`, depth first in name order. */
  async *walk(
    path: string,
    options: WalkOptions = {},
  ): AsyncIterable<EntryInfo & { path: string }> {
    const components = this.#parse(path);
    if (components.length > 0 && (await this.#client.head(this.#key(components))) !== null) {
      throw new PathError(`Cannot walk ${quote(path)}: it is not a folder`);
    }
    const baseBytes = components.length === 0 ? 0 : utf8Length(components.join("/")) + 1;
    yield* this.#walkFolder(components, "", baseBytes, path, options, true);
  }

  async *#walkFolder(
    components: string[],
    relative: string,
    baseBytes: number,
    shown: string,
    options: WalkOptions,
    mustExist: boolean,
  ): AsyncIterable<EntryInfo & { path: string }> {
    const children = this.#children(components, shown, skippedTo(options, relative), mustExist);
    for await (const child of children) {
      const path = relative === "" ? child.name : `${relative}/${child.name}`;
      if (baseBytes + utf8Length(path) > MAX_PATH_BYTES) continue;
      yield { path, ...child };
      if (child.type === "dir") {
        yield* this.#walkFolder(
          [...components, child.name],
          path,
          baseBytes,
          shown,
          options,
          false,
        );
      }
    }
  }

  /** Opens the object at `path` for reading; `IsFolderError` for a folder. */
  async openRead(path: string): Promise<StoredFile> {
    const components = this.#parse(path);
    if (components.length === 0) throw new IsFolderError(`${sanitizeForDisplay(path)} is a folder`);
    const key = this.#key(components);
    const head = await this.#client.head(key);
    if (head === null) {
      if ((await this.#folderInfo(components)) !== undefined) {
        throw new IsFolderError(`${sanitizeForDisplay(path)} is a folder`);
      }
      throw notFound(path);
    }
    return new S3StoredFile(this.#client, key, fileInfo(components.at(-1)!, head), head.etag);
  }

  /** The object at `path` itself, opened for reading, or `null` (see `FileStore.openExisting`). */
  async openExisting(path: string): Promise<StoredFile | null> {
    const components = this.#parse(path);
    if (components.length === 0) return null;
    const key = this.#key(components);
    const [, head] = await Promise.all([
      this.#refuseFileAbove(components, path),
      this.#client.head(key),
    ]);
    if (head === null) return null;
    return new S3StoredFile(this.#client, key, fileInfo(components.at(-1)!, head), head.etag);
  }

  /** What is at `path`: `file`, `dir` or `missing` (objects have no links). */
  async targetKind(path: string): Promise<TargetKind> {
    const components = this.#parse(path);
    if (components.length === 0) return "dir";
    const [, head] = await Promise.all([
      this.#refuseFileAbove(components, path),
      this.#client.head(this.#key(components)),
    ]);
    if (head !== null) return "file";
    return (await this.#folderInfo(components)) === undefined ? "missing" : "dir";
  }

  /**
   * Makes `path` a folder: writes its marker (the folders above it need none: a key below them
   * makes them exist). A new marker gets `(mode & 0o777) | 0o700`; `mtime` is recorded on the
   * marker, new or not. `ExistsError` when a file is at `path`; `PathError` when one stands above.
   */
  async makeFolder(path: string, options: { mode?: number; mtime?: number } = {}): Promise<void> {
    const components = this.#parse(path);
    if (components.length === 0) {
      if (options.mtime !== undefined && this.#root !== "") {
        await this.#writeMarker(this.#root, options.mtime, undefined);
      }
      return;
    }
    const [, head] = await Promise.all([
      this.#refuseFileAbove(components, path),
      this.#client.head(this.#key(components)),
    ]);
    if (head !== null) throw new ExistsError(`${quote(path)} exists and is not a folder`);
    const marker = `${this.#key(components)}/`;
    const existing = await this.#client.head(marker);
    if (existing !== null) {
      if (options.mtime !== undefined) {
        await this.#writeMarker(marker, options.mtime, recordedMode(existing));
      }
      return;
    }
    const mode = options.mode === undefined ? undefined : (options.mode & 0o777) | 0o700;
    await this.#writeMarker(marker, options.mtime, mode);
  }

  /**
   * Starts (or takes up again) receiving the file at `path` (see `_s3_upload.ts`): `BusyError`
   * while another upload of it, through any server, holds its lease; `PathError` for the served
   * folder itself or when a file stands above it.
   */
  async beginUpload(path: string): Promise<PendingFile> {
    const components = this.#parse(path);
    const name = components.at(-1);
    if (name === undefined) {
      throw new PathError(`Cannot receive ${quote(path)}: it is the served folder itself`);
    }
    await this.#refuseFileAbove(components, path);
    const leaseKey = this.#key([...components.slice(0, -1), partialNameFor(name)]);
    await this.#closing.get(leaseKey);
    return await S3PendingFile.begin({
      client: this.#client,
      key: this.#key(components),
      leaseKey,
      shown: path,
      leaseMs: this.#leaseMs,
      buffers: this.#buffers,
      onClose: (settled) => {
        this.#closing.set(leaseKey, settled);
        void settled.finally(() => {
          if (this.#closing.get(leaseKey) === settled) this.#closing.delete(leaseKey);
        });
      },
    });
  }

  /**
   * Aborts the multipart uploads below the served folder that started more than `maxAgeMs` ago
   * and whose lease (if any) was not written for as long, with their leases; returns how many.
   * Uploads started by other tools below the prefix count too: an upload abandoned for a week is
   * garbage to any of them.
   */
  async abortAbandonedUploads(maxAgeMs = ABANDONED_UPLOAD_MS, now = Date.now()): Promise<number> {
    let aborted = 0;
    for await (const upload of this.#client.uploads(this.#root)) {
      if (!(now - upload.initiated >= maxAgeMs)) continue;
      const leaseKey = leaseKeyOf(upload.key);
      const lease = leaseKey === undefined ? null : await this.#client.head(leaseKey);
      if (lease !== null && now - lease.lastModified < maxAgeMs) continue;
      await this.#client.abortUpload(upload.key, upload.uploadId);
      if (leaseKey !== undefined && lease !== null) await this.#client.delete(leaseKey);
      aborted++;
    }
    return aborted;
  }

  /** Validated components of `path`; the `NotFoundError` of a hidden path for an excluded one. */
  #parse(path: string): string[] {
    const components = parseRemotePath(path);
    if (this.#isExcluded(components)) {
      throw hiddenPath(path, "it is excluded from the served folder");
    }
    return components;
  }

  #key(components: readonly string[]): string {
    return this.#root + components.join("/");
  }

  /** Key prefix of the children of the folder at `components`. */
  #folderPrefix(components: readonly string[]): string {
    return components.length === 0 ? this.#root : `${this.#key(components)}/`;
  }

  /** `PathError` when an object stands where a folder above `components`' last should be. */
  async #refuseFileAbove(components: readonly string[], shown: string): Promise<void> {
    const above = components.slice(0, -1).map((_, index) => components.slice(0, index + 1));
    const heads = await Promise.all(above.map((folder) => this.#client.head(this.#key(folder))));
    const index = heads.findIndex((head) => head !== null);
    if (index >= 0) {
      throw new PathError(
        `Cannot write into ${quote(shown)}: "${
          sanitizeForDisplay(components[index]!)
        }" is not a folder`,
      );
    }
  }

  async #rootInfo(): Promise<EntryInfo> {
    const marker = this.#root === "" ? null : await this.#client.head(this.#root);
    return folderEntry("", marker, 0);
  }

  /** The folder at `components` (not the root), or undefined when no key lies below it. */
  async #folderInfo(components: readonly string[]): Promise<EntryInfo | undefined> {
    const prefix = this.#folderPrefix(components);
    const page = await this.#client.list(prefix, { maxKeys: 1 });
    const first = page.objects[0];
    if (first === undefined) return undefined;
    const marker = first.key === prefix ? await this.#client.head(prefix) : null;
    return folderEntry(components.at(-1)!, marker, first.lastModified);
  }

  /**
   * The visible children of the folder at `components`, in name order. Its names are listed
   * whole (page by page, counted against the listing budget) and sorted; folders' markers are
   * looked up a window at a time as they are reached. `NotFoundError` when `mustExist` and no
   * key lies below it (the root always exists).
   */
  async *#children(
    components: readonly string[],
    shown: string,
    onSkipped: ((name: string, reason: string) => void) | undefined,
    mustExist: boolean,
  ): AsyncIterable<EntryInfo> {
    const prefix = this.#folderPrefix(components);
    const files = new Map<string, ListedObject>();
    const folders = new Set<string>();
    let existed = components.length === 0;
    let held = 0;
    const hold = () => {
      if (this.#budget.held >= this.#maxListedNames) {
        throw new BusyError(
          `Cannot list ${quote(shown)} now: the server holds as many names for listings as it ` +
            "may; try again when they end",
        );
      }
      this.#budget.held++;
      held++;
    };
    try {
      let continuation: string | undefined;
      do {
        const page = await this.#client.list(prefix, { delimiter: "/", continuation });
        for (const object of page.objects) {
          existed = true;
          const name = object.key.slice(prefix.length);
          if (name === "" || !this.#visible(components, name, onSkipped)) continue;
          hold();
          files.set(name, object);
        }
        for (const folder of page.prefixes) {
          existed = true;
          const name = folder.slice(prefix.length, -1);
          if (!this.#visible(components, name, onSkipped)) continue;
          hold();
          folders.add(name);
        }
        continuation = page.next;
      } while (continuation !== undefined);
      if (!existed && mustExist) throw notFound(shown);
      const children: Child[] = [];
      for (const [name, file] of files) children.push({ name, file });
      for (const name of folders) {
        if (files.has(name)) onSkipped?.(name, "a file of the same name hides this folder");
        else children.push({ name, folder: `${prefix}${name}/` });
      }
      children.sort((a, b) => compareNames(a.name, b.name));
      for (let start = 0; start < children.length; start += LOOKUP_WINDOW) {
        const window = children.slice(start, start + LOOKUP_WINDOW);
        yield* await Promise.all(window.map((child) => this.#describeChild(child)));
      }
    } finally {
      this.#budget.held -= held;
    }
  }

  /** How a listed child is shown: a file as listed, a folder with its marker's time and mode. */
  async #describeChild(child: Child): Promise<EntryInfo> {
    if ("file" in child) {
      const { size, lastModified } = child.file;
      return { name: child.name, type: "file", size, mtime: lastModified, mode: DEFAULT_FILE_MODE };
    }
    const marker = await this.#client.head(child.folder);
    if (marker !== null) return folderEntry(child.name, marker, 0);
    const page = await this.#client.list(child.folder, { maxKeys: 1 });
    return folderEntry(child.name, null, page.objects[0]?.lastModified ?? 0);
  }

  /**
   * Whether the child `name` of the folder at `components` is shown. Leases, files holding a
   * secret and excluded paths are hidden; a name the path rules refuse is told to `onSkipped`
   * (see `listingRefusal`).
   */
  #visible(
    components: readonly string[],
    name: string,
    onSkipped: ((name: string, reason: string) => void) | undefined,
  ): boolean {
    const refused = listingRefusal(name);
    if (refused !== undefined) {
      if (refused !== "hidden") onSkipped?.(name, refused.skipped);
      return false;
    }
    return !this.#isExcluded([...components, name]);
  }

  async #writeMarker(marker: string, mtime: number | undefined, mode: number | undefined) {
    await this.#client.put(marker, new Uint8Array(0), { meta: metaOf({ mtime, mode }) });
  }

  /** Whether `components` is, or lies inside, an excluded path. */
  #isExcluded(components: readonly string[]): boolean {
    return this.#excluded.some((excluded) =>
      excluded.length <= components.length &&
      excluded.every((component, index) => components[index] === component)
    );
  }
}

/** How the object `head` is shown under `name`. */
function fileInfo(name: string, head: ObjectHead): EntryInfo {
  const mtime = Number(head.meta["ferry-mtime"]);
  return {
    name,
    type: "file",
    size: head.size,
    mtime: Number.isSafeInteger(mtime) && mtime >= 0 ? mtime : head.lastModified,
    mode: recordedMode(head) ?? DEFAULT_FILE_MODE,
  };
}

/** A folder shown under `name`: its marker's recorded time and mode, else `fallbackMtime`. */
function folderEntry(name: string, marker: ObjectHead | null, fallbackMtime: number): EntryInfo {
  const recorded = Number(marker?.meta["ferry-mtime"]);
  const mtime = Number.isSafeInteger(recorded) && recorded >= 0
    ? recorded
    : marker?.lastModified ?? fallbackMtime;
  const mode = marker === null ? DEFAULT_FOLDER_MODE : recordedMode(marker) ?? DEFAULT_FOLDER_MODE;
  return { name, type: "dir", size: 0, mtime, mode };
}

/** The mode recorded in an object's metadata, if it is one. */
function recordedMode(head: ObjectHead): number | undefined {
  const text = head.meta["ferry-mode"];
  if (text === undefined || !/^[0-7]{1,4}$/.test(text)) return undefined;
  return Number.parseInt(text, 8) & 0o777;
}

/** The lease key of an upload to `key`, or undefined when its name is not one ferry writes. */
function leaseKeyOf(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const name = key.slice(slash + 1);
  if (nameProblem(name) !== undefined) return undefined;
  return key.slice(0, slash + 1) + partialNameFor(name);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function quote(text: string): string {
  return `"${sanitizeForDisplay(text)}"`;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
