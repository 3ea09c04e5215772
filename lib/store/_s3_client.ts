/**
 * The S3 requests the S3 store makes, over `fetch`, each signed by aws4fetch (AWS Signature V4,
 * `UNSIGNED-PAYLOAD`, so a part is never hashed just to be signed). Bodies go out as the bytes they
 * are; downloads come back as streams, so no request holds more than one part in memory. A store
 * that answers 5xx or 429 is asked again a few times, with growing pauses. Private to lib/store.
 *
 * Errors: the store's refusals become {@link ObjectStoreError}s whose message names the S3 error
 * code and HTTP status but neither the endpoint nor the bucket (the message may reach a client);
 * answers the callers expect (404, 412) are returned, not thrown.
 *
 * @module
 */
import { AwsClient, AwsV4Signer } from "../deps.ts";
import { ObjectStoreError } from "../errors.ts";
import { sendWithBody } from "./_s3_http.ts";
import { childText, elements } from "./_s3_xml.ts";
import type { S3Settings } from "./s3_config.ts";

/** What HEAD tells of an object. */
export interface ObjectHead {
  /** Size in bytes. */
  size: number;
  /** The entity tag, with its quotes. */
  etag: string;
  /** Last-Modified, ms since the epoch (whole seconds). */
  lastModified: number;
  /** User metadata (`x-amz-meta-*`), by lower-case name without the prefix. */
  meta: Record<string, string>;
}

/** One object of a listing. */
export interface ListedObject {
  /** Its full key. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification, ms since the epoch (whole seconds, as HEAD gives it). */
  lastModified: number;
}

/** One page of a listing. */
export interface ListPage {
  /** Objects, in key order. */
  objects: ListedObject[];
  /** Common prefixes (folders), each ending with the delimiter. */
  prefixes: string[];
  /** Token for the next page, if the listing goes on. */
  next?: string;
}

/** One uploaded part of a multipart upload. */
export interface UploadedPart {
  /** 1 to 10,000. */
  number: number;
  /** Its entity tag, with quotes. */
  etag: string;
  /** Its size in bytes. */
  size: number;
}

/** A multipart upload in progress. */
export interface UploadInProgress {
  /** The key it will create. */
  key: string;
  /** Its id. */
  uploadId: string;
  /** When it was started, ms since the epoch. */
  initiated: number;
}

/** Outcome of a conditional write. */
export type WriteOutcome = { etag: string } | "precondition-failed";

/** Attempts of one request when the store answers 5xx or 429 (or the connection fails). */
const ATTEMPTS = 4;
/** First pause before a second attempt; doubled each time. */
const FIRST_RETRY_MS = 100;
/**
 * A request whose answer has not begun by then fails (and is not tried again): a store that
 * hangs (a full Ceph cluster blocks writes rather than refusing them) becomes an error the client
 * is told, before the client's own 120 s deadline gives up on the server.
 */
export const REQUEST_TIMEOUT_MS = 60_000;
/** Bodies this large (parts) are written from their buffer rather than through `fetch`. */
const DIRECT_BODY_BYTES = 1024 * 1024;

/** Options of one request. */
interface RequestOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Statuses returned to the caller; any other is thrown as an `ObjectStoreError`. */
  expect: number[];
}

/** Requests on one bucket of an S3 store. */
export class S3Client {
  readonly #signer: AwsClient;
  readonly #settings: S3Settings;
  readonly #bucket: string;

  /** A client of `bucket` at the store that `settings` describe. */
  constructor(settings: S3Settings, bucket: string) {
    this.#settings = settings;
    this.#bucket = bucket;
    this.#signer = new AwsClient({
      ...settings.credentials,
      service: "s3",
      region: settings.region,
      retries: 0,
    });
  }

  /** `host:port` of the requests (for `--allow-net` and messages on the server side). */
  get host(): string {
    const url = this.#url("");
    return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
  }

  /** Whether the bucket exists and may be read with these credentials; throws why not. */
  async checkBucket(): Promise<void> {
    const response = await this.#request("GET", "", {
      query: { "list-type": "2", "max-keys": "1" },
      expect: [200],
    });
    await response.body?.cancel();
  }

  /** HEAD of `key`, or `null` when there is no such object. */
  async head(key: string): Promise<ObjectHead | null> {
    const response = await this.#request("HEAD", key, { expect: [200, 404] });
    await response.body?.cancel();
    if (response.status === 404) return null;
    return headOf(response);
  }

  /**
   * The bytes of `key` from `start` to its end, as a stream, only while its entity tag is
   * `ifMatch` (when given): `null` when it changed or is gone. `start` at or past the end gives
   * an empty stream.
   */
  async read(
    key: string,
    start: number,
    ifMatch?: string,
  ): Promise<ReadableStream<Uint8Array> | null> {
    const headers: Record<string, string> = { range: `bytes=${start}-` };
    if (ifMatch !== undefined) headers["if-match"] = ifMatch;
    const response = await this.#request("GET", key, {
      headers,
      expect: [200, 206, 404, 412, 416],
    });
    if (response.status === 416) {
      await response.body?.cancel();
      return new ReadableStream({ start: (controller) => controller.close() });
    }
    if (response.status === 404 || response.status === 412) {
      await response.body?.cancel();
      return null;
    }
    if (response.status === 200 && start > 0) {
      // A store that ignored the range: never read the wrong bytes.
      await response.body?.cancel();
      throw new ObjectStoreError("The object store ignored a ranged read");
    }
    return response.body ?? new ReadableStream({ start: (controller) => controller.close() });
  }

  /** The whole (small) object `key` with its entity tag, or `null` when it does not exist. */
  async readSmall(
    key: string,
  ): Promise<{ bytes: Uint8Array; etag: string; lastModified: number; date: number } | null> {
    const response = await this.#request("GET", key, { expect: [200, 404] });
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    const { etag, lastModified } = headOf(response);
    return { bytes, etag, lastModified, date: dateOf(response) };
  }

  /**
   * Puts `body` at `key` with user metadata `meta`: only when no object has the name
   * (`ifNoneMatch`), or only while it has the entity tag `ifMatch`.
   */
  async put(
    key: string,
    body: Uint8Array | string,
    options: { meta?: Record<string, string>; ifNoneMatch?: boolean; ifMatch?: string } = {},
  ): Promise<WriteOutcome> {
    const headers = metaHeaders(options.meta);
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    const ifMatch = options.ifMatch;
    if (ifMatch !== undefined) {
      headers["if-match"] = this.#bareIfMatch ? ifMatch.replaceAll('"', "") : ifMatch;
    }
    const response = await this.#request("PUT", key, { body, headers, expect: [200, 412] });
    await response.body?.cancel();
    if (response.status === 412) {
      // Ceph 16 compares If-Match on PUT with the entity tag without its quotes, and refuses the
      // quoted form that HTTP (and AWS) use. A refusal of the tag the object still has shows which
      // kind of store this is; the client then sends the bare form.
      if (ifMatch !== undefined && !this.#bareIfMatch && (await this.head(key))?.etag === ifMatch) {
        this.#bareIfMatch = true;
        return await this.put(key, body, options);
      }
      return "precondition-failed";
    }
    return { etag: response.headers.get("etag") ?? "" };
  }

  /** The store wants `If-Match` on PUT without quotes (see {@link put}). */
  #bareIfMatch = false;

  /** Deletes `key` (nothing there is fine). */
  async delete(key: string): Promise<void> {
    const response = await this.#request("DELETE", key, { expect: [200, 204, 404] });
    await response.body?.cancel();
  }

  /**
   * Replaces the user metadata of `objectKey` by copying it onto itself, only while its entity
   * tag is `etag`; false when the copy was refused (it changed, or the store cannot copy it).
   */
  async replaceMeta(
    objectKey: string,
    etag: string,
    meta: Record<string, string>,
  ): Promise<boolean> {
    const headers = metaHeaders(meta);
    headers["x-amz-copy-source"] = `/${this.#bucket}/${encodeKey(objectKey)}`;
    headers["x-amz-copy-source-if-match"] = etag;
    headers["x-amz-metadata-directive"] = "REPLACE";
    const response = await this.#request("PUT", objectKey, {
      headers,
      expect: [200, 400, 412],
    });
    const text = await response.text();
    return response.status === 200 && elements(text, "Error").length === 0;
  }

  /** One page of the keys that start with `prefix`, grouped at `delimiter` when given. */
  async list(
    prefix: string,
    options: { delimiter?: string; continuation?: string; maxKeys?: number } = {},
  ): Promise<ListPage> {
    const query: Record<string, string> = { "list-type": "2", prefix };
    if (options.delimiter !== undefined) query.delimiter = options.delimiter;
    if (options.continuation !== undefined) query["continuation-token"] = options.continuation;
    if (options.maxKeys !== undefined) query["max-keys"] = String(options.maxKeys);
    const response = await this.#request("GET", "", { query, expect: [200] });
    const xml = await response.text();
    const objects = elements(xml, "Contents").map((inner) => ({
      key: childText(inner, "Key") ?? "",
      size: Number(childText(inner, "Size") ?? 0),
      lastModified: wholeSeconds(Date.parse(childText(inner, "LastModified") ?? "")),
    }));
    const prefixes = elements(xml, "CommonPrefixes").map((inner) =>
      childText(inner, "Prefix") ?? ""
    );
    const truncated = childText(xml, "IsTruncated") === "true";
    const next = childText(xml, "NextContinuationToken");
    return truncated && next ? { objects, prefixes, next } : { objects, prefixes };
  }

  /** Starts a multipart upload to `key`; returns its id. */
  async createUpload(key: string): Promise<string> {
    const response = await this.#request("POST", key, { query: { uploads: "" }, expect: [200] });
    const uploadId = childText(await response.text(), "UploadId");
    if (!uploadId) throw new ObjectStoreError("The object store did not start a multipart upload");
    return uploadId;
  }

  /** Uploads part `number` of the upload `uploadId` to `key`; returns its entity tag. */
  async uploadPart(
    key: string,
    uploadId: string,
    number: number,
    body: Uint8Array,
  ): Promise<string> {
    const response = await this.#request("PUT", key, {
      query: { partNumber: String(number), uploadId },
      body,
      expect: [200],
    });
    await response.body?.cancel();
    const etag = response.headers.get("etag");
    if (!etag) throw new ObjectStoreError("The object store did not acknowledge a part");
    return etag;
  }

  /** The parts of the upload `uploadId` to `key` in part order, or `null` when it is gone. */
  async listParts(key: string, uploadId: string): Promise<UploadedPart[] | null> {
    const parts: UploadedPart[] = [];
    let marker = "0";
    while (true) {
      const response = await this.#request("GET", key, {
        query: { uploadId, "part-number-marker": marker },
        expect: [200, 404],
      });
      const xml = await response.text();
      if (response.status === 404) return null;
      for (const inner of elements(xml, "Part")) {
        parts.push({
          number: Number(childText(inner, "PartNumber")),
          etag: childText(inner, "ETag") ?? "",
          size: Number(childText(inner, "Size")),
        });
      }
      const next = childText(xml, "NextPartNumberMarker");
      if (childText(xml, "IsTruncated") !== "true" || !next || next === marker) break;
      marker = next;
    }
    return parts.sort((a, b) => a.number - b.number);
  }

  /**
   * Completes the upload `uploadId` to `key` from `parts`. With `ifNoneMatch`, asks the store not
   * to replace an existing object (stores that know `If-None-Match` here answer 412; others ignore
   * it: the caller checks first). Returns `"precondition-failed"` or `"gone"` (no such upload).
   */
  async completeUpload(
    key: string,
    uploadId: string,
    parts: readonly UploadedPart[],
    options: { ifNoneMatch?: boolean } = {},
  ): Promise<{ etag: string } | "precondition-failed" | "gone"> {
    const body = "<CompleteMultipartUpload>" +
      parts.map((part) =>
        `<Part><PartNumber>${part.number}</PartNumber><ETag>${escapeXml(part.etag)}</ETag></Part>`
      ).join("") + "</CompleteMultipartUpload>";
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    const response = await this.#request("POST", key, {
      query: { uploadId },
      body,
      headers,
      expect: [200, 404, 412],
    });
    const xml = await response.text();
    if (response.status === 412) return "precondition-failed";
    if (response.status === 404) return "gone";
    // A 200 may still carry an error (the store failed after it started answering).
    const [error] = elements(xml, "Error");
    if (error !== undefined) throw storeError(200, childText(error, "Code") ?? "InternalError");
    return { etag: childText(xml, "ETag") ?? "" };
  }

  /** Abandons the upload `uploadId` to `key` and frees its parts (already gone is fine). */
  async abortUpload(key: string, uploadId: string): Promise<void> {
    const response = await this.#request("DELETE", key, {
      query: { uploadId },
      expect: [200, 204, 404],
    });
    await response.body?.cancel();
  }

  /** Every multipart upload in progress to a key starting with `prefix`. */
  async *uploads(prefix: string): AsyncIterable<UploadInProgress> {
    let keyMarker = "";
    let idMarker = "";
    while (true) {
      const query: Record<string, string> = { uploads: "", prefix };
      if (keyMarker !== "") query["key-marker"] = keyMarker;
      if (idMarker !== "") query["upload-id-marker"] = idMarker;
      const response = await this.#request("GET", "", { query, expect: [200] });
      const xml = await response.text();
      for (const inner of elements(xml, "Upload")) {
        yield {
          key: childText(inner, "Key") ?? "",
          uploadId: childText(inner, "UploadId") ?? "",
          initiated: Date.parse(childText(inner, "Initiated") ?? ""),
        };
      }
      const nextKey = childText(xml, "NextKeyMarker") ?? "";
      const nextId = childText(xml, "NextUploadIdMarker") ?? "";
      if (
        childText(xml, "IsTruncated") !== "true" || (nextKey === keyMarker && nextId === idMarker)
      ) {
        break;
      }
      keyMarker = nextKey;
      idMarker = nextId;
    }
  }

  /**
   * Signs and sends one request: through `fetch`, except a large body (a part), which is written
   * from its buffer without the copies `fetch` makes (see `_s3_http.ts`).
   */
  async #send(
    method: string,
    url: URL,
    options: RequestOptions,
    signal: AbortSignal,
  ): Promise<Response> {
    const body = options.body;
    if (body instanceof Uint8Array && body.length >= DIRECT_BODY_BYTES) {
      const signed = await new AwsV4Signer({
        ...this.#settings.credentials,
        method,
        url: url.toString(),
        headers: options.headers,
        service: "s3",
        region: this.#settings.region,
      }).sign();
      return await sendWithBody(method, url, new Headers(signed.headers), body, signal);
    }
    const request = await this.#signer.sign(url.toString(), {
      method,
      headers: options.headers,
      body: body as BodyInit | undefined,
      signal,
    });
    return await fetch(request);
  }

  /** The URL of `key` in the bucket (`""`: the bucket itself), with `query`. */
  #url(key: string, query: Record<string, string> = {}): URL {
    const { endpoint, pathStyle } = this.#settings;
    const path = encodeKey(key);
    const base = pathStyle
      ? `${endpoint.origin}/${encodeSegment(this.#bucket)}/${path}`
      : `${endpoint.protocol}//${this.#bucket}.${endpoint.host}/${path}`;
    const search = Object.entries(query)
      .map(([name, value]) =>
        value === "" ? encodeSegment(name) : `${name}=${encodeSegment(value)}`
      )
      .join("&");
    return new URL(search === "" ? base : `${base}?${search}`);
  }

  /**
   * Signs and sends one request; retries 5xx, 429 and failed connections a few times. Returns the
   * response when its status is expected, throws an {@link ObjectStoreError} otherwise.
   */
  async #request(method: string, key: string, options: RequestOptions): Promise<Response> {
    const url = this.#url(key, options.query);
    let lastProblem = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (attempt > 1) {
        await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 2)));
      }
      let response: Response;
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
      try {
        response = await this.#send(method, url, options, abort.signal);
      } catch (error) {
        if (abort.signal.aborted) {
          throw new ObjectStoreError(
            `The object store did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`,
          );
        }
        lastProblem = (error as Error).message?.split("\n", 1)[0] ?? String(error);
        if (
          error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
        ) {
          throw error;
        }
        continue; // the connection failed: try again
      } finally {
        clearTimeout(timer);
      }
      if (options.expect.includes(response.status)) return response;
      const text = method === "HEAD" ? "" : await response.text().catch(() => "");
      const errorCode = childText(text, "Code") ?? response.statusText;
      if (response.status >= 500 || response.status === 429) {
        lastProblem = `${response.status} ${errorCode}`;
        continue;
      }
      throw storeError(response.status, errorCode);
    }
    throw new ObjectStoreError(`The object store did not answer: ${lastProblem}`);
  }
}

/** An {@link ObjectStoreError} for the store's answer `status` with S3 error `errorCode`. */
function storeError(status: number, errorCode: string): ObjectStoreError {
  const hint = status === 403
    ? ": check the server's credentials and the bucket's permissions"
    : errorCode === "NoSuchBucket"
    ? ": the bucket does not exist"
    : "";
  return new ObjectStoreError(
    `The object store refused the request (${status} ${errorCode})${hint}`,
  );
}

/** What a HEAD or GET response tells of its object. */
function headOf(response: Response): ObjectHead {
  const meta: Record<string, string> = {};
  for (const [name, value] of response.headers) {
    if (name.startsWith("x-amz-meta-")) meta[name.slice("x-amz-meta-".length)] = value;
  }
  return {
    size: Number(response.headers.get("content-length") ?? 0),
    etag: response.headers.get("etag") ?? "",
    lastModified: wholeSeconds(Date.parse(response.headers.get("last-modified") ?? "")),
    meta,
  };
}

/** The store's clock when it answered (the `Date` header), ms since the epoch. */
function dateOf(response: Response): number {
  const date = Date.parse(response.headers.get("date") ?? "");
  return Number.isFinite(date) ? date : Date.now();
}

function metaHeaders(meta: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(
    Object.entries(meta).map(([name, value]) => [`x-amz-meta-${name}`, value]),
  );
}

/** Times rounded down to whole seconds, as HTTP dates give them (0 when unknown). */
function wholeSeconds(ms: number): number {
  return Number.isFinite(ms) ? Math.floor(ms / 1000) * 1000 : 0;
}

/** One path segment or query value, percent-encoded as SigV4 wants it (RFC 3986). */
function encodeSegment(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** A key as a URL path: each segment encoded, the slashes kept. */
export function encodeKey(key: string): string {
  return key.split("/").map(encodeSegment).join("/");
}

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (char) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[char]};`,
  );
}
