/**
 * Every control message of protocol version 1, as a discriminated union on `t`, with one decoder
 * that checks the shape of whatever the peer sent before any other code sees it.
 *
 * Control messages travel as UTF-8 JSON inside {@link RecordType.control} records; file content
 * travels in {@link RecordType.data} records between a `file`/`put-ready` message and the
 * matching `file-end`/`put-end`. See `docs/PROTOCOL.md` for the conversation.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { bool, type Fields, int, mode, mtime, parseObject, sha256Hex, str } from "./_fields.ts";
import { MAX_CONTROL_BYTES, MAX_LISTING_BATCH } from "./constants.ts";
import { sanitizeForDisplay } from "./remote_path.ts";
import { toWireErrorCode, type WireErrorCode } from "./wire_errors.ts";

/** What a server allows. */
export type ServeMode = "read-write" | "read-only" | "upload-only";

/**
 * What one session may do, the server's mode and its code's rights both applied: a
 * {@link ServeMode}, or `none` when one forbids reading and the other uploading.
 */
export type AccessMode = ServeMode | "none";

/** What a `welcome`'s mode may look like: a newer server may name a mode this client does not know. */
const MODE_WORD = /^[a-z][a-z0-9-]{0,31}$/;

/** Most features a `welcome` may offer or a request take up. */
const MAX_FEATURES = 16;

/** One entry of a listing; `name` is a POSIX path relative to the listed folder. */
export interface ListEntry {
  /** POSIX path relative to the listed folder; "" for the file itself when a file is listed. */
  name: string;
  /** A regular file or a folder (nothing else is ever listed). */
  type: "file" | "dir";
  /** Size in bytes; 0 for a folder. */
  size: number;
  /** Modification time, milliseconds since the epoch. */
  mtime: number;
  /** Permission bits (`mode & 0o777`). */
  mode: number;
}

/**
 * What every request (`list`, `get`, `put`, `mkdir`) may carry: the features of the `welcome`'s
 * offer that the client takes up, on its first request only (optional on the wire; words the server
 * did not offer, and all words on later requests, are ignored). With `bundle`, each side reads
 * bundles from the record after this request on, and may send them from then on too.
 */
export interface TakesUpFeatures {
  features?: string[];
}

/** Client to server: list a folder (or one file); `recursive` walks the whole tree. */
export interface ListRequest extends TakesUpFeatures {
  t: "list";
  path: string;
  recursive: boolean;
}
/** Client to server: send a file from `offset`, which the server accepts only if the hash of its first `offset` bytes equals `prefixSha256`. */
export interface GetRequest extends TakesUpFeatures {
  t: "get";
  path: string;
  offset: number;
  prefixSha256: string;
  /**
   * Hash the whole file and send its SHA-256 in `file-end` (`--verify`). Optional on the wire, and
   * `true` when absent, as every `get` was before it existed; ferry's client sends `false` unless
   * asked to verify.
   */
  verify?: boolean;
}
/** Client to server: announce an upload of `size` bytes to `<prefix>name` inside folder `dir`. */
export interface PutRequest extends TakesUpFeatures {
  t: "put";
  dir: string;
  name: string;
  size: number;
  mode: number;
  mtime: number;
  force: boolean;
  /**
   * SHA-256 of the whole local file, or "" (optional on the wire). Without `force`, a target that
   * already holds exactly these bytes is answered with `put-done` and `skipped` instead of `exists`
   * (a re-run after a cut), except on an upload-only server, where it would let an uploader test
   * guesses about other people's files.
   */
  ifIdentical?: string;
  /**
   * The client sends the whole file's SHA-256 in `put-end`, to be checked (`--verify`). Optional on
   * the wire and `true` when absent, as before it existed.
   */
  verify?: boolean;
  /**
   * The data follows at once, from byte 0, without `put-ready` and `put-start` (optional, default
   * false): for small files, so that several uploads are on the wire at once. No resume is offered;
   * a refused upload's data is read and dropped before the `error` answer.
   */
  stream?: boolean;
}
/** Client to server: start sending upload bytes at `offset` (0, or the offset the server offered). */
export interface PutStart {
  t: "put-start";
  offset: number;
}
/**
 * Client to server: all upload bytes are sent; `sha256` is the hash of the whole file with
 * `verify`, `""` without.
 */
export interface PutEnd {
  t: "put-end";
  sha256: string;
}
/**
 * Client to server, instead of `put-end`: the source changed while it was sent, so the upload is
 * to be dropped (answered with an `error`, code `changed`).
 */
export interface PutCancel {
  t: "put-cancel";
}
/** Client to server: create folder `<prefix>name` inside `dir` (folder uploads, empty folders). */
export interface MkdirRequest extends TakesUpFeatures {
  t: "mkdir";
  dir: string;
  name: string;
  mode: number;
  mtime: number;
}

/**
 * Client to server, between requests: the client is still there, busy with local work (hashing a
 * kept file before it can ask). Restarts the server's idle deadline; never answered.
 */
export interface KeepAlive {
  t: "keepalive";
}

/** Server to client, first message after the handshake. */
export interface Welcome {
  /** The message type. */
  t: "welcome";
  /** The server's software and version, such as `ferry/0.1.0` (untrusted text). */
  server: string;
  /**
   * What this session may do (the server's mode and the code's rights both applied): an
   * {@link AccessMode}, or a word (lowercase letters, digits, dashes) a newer server uses, which a
   * client shows as it is and otherwise ignores: the server enforces the rights anyway.
   */
  mode: AccessMode | (string & Record<never, never>);
  /** Largest upload accepted, in bytes, or -1 for no limit. */
  maxUpload: number;
  /**
   * How long the server waits for the next request before it closes the session, in ms (optional
   * on the wire): a client busy with local work sends `keepalive` well within it.
   */
  idleTimeoutMs?: number;
  /**
   * What this server can do beyond the base protocol, offered to the client (optional on the
   * wire): today `bundle` (`BUNDLE_FEATURE`). A client takes up what it knows with
   * {@link TakesUpFeatures} on its first request and ignores the rest.
   */
  features?: string[];
}
/** Server to client: a batch of entries; `done` on the last batch. */
export interface Listing {
  /** The message type. */
  t: "listing";
  /** At most {@link MAX_LISTING_BATCH} entries, in the order the server lists them. */
  entries: ListEntry[];
  /** True on the last batch of the listing. */
  done: boolean;
  /**
   * Entries the server found but cannot list (optional on the wire; older clients ignore it): their
   * names, escaped for display (they need not be valid paths), each with why. At most
   * {@link MAX_LISTING_BATCH} a batch. A client reports them by name: nothing is left out silently.
   */
  skipped?: SkippedEntry[];
}
/** An entry of a folder that a listing leaves out, and why (see {@link Listing.skipped}). */
export interface SkippedEntry {
  /** Its path relative to the listed folder, escaped for display (not a valid path). */
  name: string;
  /** Why it cannot be listed, e.g. "its name contains a control character (U+0009)". */
  reason: string;
}
/** Server to client: the file follows from `offset` as data records, then `file-end`. */
export interface FileStart {
  t: "file";
  size: number;
  mtime: number;
  mode: number;
  offset: number;
}
/**
 * Server to client: end of file content; `sha256` covers the whole file from byte 0 when the
 * `get` asked to `verify`, and is `""` otherwise.
 */
export interface FileEnd {
  t: "file-end";
  sha256: string;
}
/** Server to client: ready for upload data. `offset` > 0 offers to resume a kept partial upload whose first `offset` bytes hash to `prefixSha256`. */
export interface PutReady {
  t: "put-ready";
  offset: number;
  prefixSha256: string;
}
/** Server to client: the upload is verified and in place under `name` (relative to the served folder). */
export interface PutDone {
  t: "put-done";
  name: string;
  size: number;
  sha256: string;
  /** True when nothing moved: the target already held these bytes (see `ifIdentical`). */
  skipped?: boolean;
}
/** Server to client: the folder exists (created or already there). */
export interface MkdirDone {
  t: "mkdir-done";
  name: string;
}
/**
 * Server to client: the request failed. `code` is machine-readable (see {@link WireErrorCode});
 * `message` is for a person and is untrusted text.
 */
export interface ErrorReply {
  t: "error";
  /** Why (`docs/PROTOCOL.md` §4.2); a code this side does not know is decoded as `error`. */
  code: WireErrorCode;
  /** What went wrong, for a person: untrusted text, escaped before it is shown. */
  message: string;
}

/** Any message a client sends. */
export type ClientMessage =
  | ListRequest
  | GetRequest
  | PutRequest
  | PutStart
  | PutEnd
  | PutCancel
  | MkdirRequest
  | KeepAlive;
/** Any message a server sends. */
export type ServerMessage =
  | Welcome
  | Listing
  | FileStart
  | FileEnd
  | PutReady
  | PutDone
  | MkdirDone
  | ErrorReply;

const encoder = new TextEncoder();

/** Encodes a message as UTF-8 JSON; refuses one larger than {@link MAX_CONTROL_BYTES}. */
export function encodeMessage(message: ClientMessage | ServerMessage): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(message));
  if (bytes.length > MAX_CONTROL_BYTES) {
    throw new RangeError(`Control message of ${bytes.length} bytes exceeds the maximum`);
  }
  return bytes;
}

/** `request` with the features the client takes up in `fields`, when it names any. */
function takingUp<T extends TakesUpFeatures>(fields: Fields, request: T): T {
  return fields.features === undefined
    ? request
    : { ...request, features: words(fields, "features") };
}

/** A short list of feature words (lowercase letters, digits, dashes). */
function words(fields: Fields, field: string): string[] {
  const value = fields[field];
  if (!Array.isArray(value) || value.length > MAX_FEATURES) {
    throw new ProtocolError(`"${field}" must be an array of at most ${MAX_FEATURES} words`);
  }
  for (const word of value) {
    if (typeof word !== "string" || !MODE_WORD.test(word)) {
      throw new ProtocolError(`"${field}" must hold words of lowercase letters, digits and dashes`);
    }
  }
  return value as string[];
}

function entry(value: unknown): ListEntry {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Listing entry is not an object");
  }
  const fields = value as Fields;
  const type = str(fields, "type", 8);
  if (type !== "file" && type !== "dir") {
    throw new ProtocolError("Listing entry has an unknown type");
  }
  return {
    name: str(fields, "name"),
    type,
    size: int(fields, "size"),
    mtime: mtime(fields),
    mode: mode(fields),
  };
}

function skippedEntry(value: unknown): SkippedEntry {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Listing skipped entry is not an object");
  }
  const fields = value as Fields;
  // Shown to the user, so made safe to print whatever the server sent.
  return {
    name: sanitizeForDisplay(str(fields, "name")),
    reason: sanitizeForDisplay(str(fields, "reason", 256)),
  };
}

/** Decodes and checks a message sent by a client. Throws {@link ProtocolError} on anything else. */
export function decodeClientMessage(bytes: Uint8Array): ClientMessage {
  const fields = parseObject(bytes);
  switch (fields.t) {
    case "list":
      return takingUp<ListRequest>(fields, {
        t: "list",
        path: str(fields, "path"),
        recursive: bool(fields, "recursive"),
      });
    case "get":
      return takingUp<GetRequest>(fields, {
        t: "get",
        path: str(fields, "path"),
        offset: int(fields, "offset"),
        prefixSha256: sha256Hex(fields, "prefixSha256", true),
        verify: fields.verify === undefined ? true : bool(fields, "verify"),
      });
    case "put":
      return takingUp<PutRequest>(fields, {
        t: "put",
        dir: str(fields, "dir"),
        name: str(fields, "name"),
        size: int(fields, "size"),
        mode: mode(fields),
        mtime: mtime(fields),
        force: bool(fields, "force"),
        ifIdentical: fields.ifIdentical === undefined ? "" : sha256Hex(fields, "ifIdentical", true),
        verify: fields.verify === undefined ? true : bool(fields, "verify"),
        ...(fields.stream === undefined ? {} : { stream: bool(fields, "stream") }),
      });
    case "put-start":
      return { t: "put-start", offset: int(fields, "offset") };
    case "keepalive":
      return { t: "keepalive" };
    case "put-end":
      return { t: "put-end", sha256: sha256Hex(fields, "sha256", true) };
    case "put-cancel":
      return { t: "put-cancel" };
    case "mkdir":
      return takingUp<MkdirRequest>(fields, {
        t: "mkdir",
        dir: str(fields, "dir"),
        name: str(fields, "name"),
        mode: mode(fields),
        mtime: mtime(fields),
      });
    default:
      throw new ProtocolError("Unknown client message type");
  }
}

/** Decodes and checks a message sent by a server. Throws {@link ProtocolError} on anything else. */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  const fields = parseObject(bytes);
  switch (fields.t) {
    case "welcome": {
      const mode = str(fields, "mode", 32);
      if (!MODE_WORD.test(mode)) throw new ProtocolError("Invalid server mode");
      return {
        t: "welcome",
        server: str(fields, "server", 128),
        mode,
        maxUpload: int(fields, "maxUpload", -1),
        ...(fields.idleTimeoutMs === undefined
          ? {}
          : { idleTimeoutMs: int(fields, "idleTimeoutMs", 1) }),
        ...(fields.features === undefined ? {} : { features: words(fields, "features") }),
      };
    }
    case "listing": {
      const entries = fields.entries;
      if (!Array.isArray(entries) || entries.length > MAX_LISTING_BATCH) {
        throw new ProtocolError("Listing entries must be an array of bounded length");
      }
      const skipped = fields.skipped;
      if (
        skipped !== undefined && (!Array.isArray(skipped) || skipped.length > MAX_LISTING_BATCH)
      ) {
        throw new ProtocolError("Listing skipped entries must be an array of bounded length");
      }
      return {
        t: "listing",
        entries: entries.map(entry),
        done: bool(fields, "done"),
        ...(skipped === undefined ? {} : { skipped: skipped.map(skippedEntry) }),
      };
    }
    case "file":
      return {
        t: "file",
        size: int(fields, "size"),
        mtime: mtime(fields),
        mode: mode(fields),
        offset: int(fields, "offset"),
      };
    case "file-end":
      return { t: "file-end", sha256: sha256Hex(fields, "sha256", true) };
    case "put-ready":
      return {
        t: "put-ready",
        offset: int(fields, "offset"),
        prefixSha256: sha256Hex(fields, "prefixSha256", true),
      };
    case "put-done":
      return {
        t: "put-done",
        name: str(fields, "name"),
        size: int(fields, "size"),
        sha256: sha256Hex(fields, "sha256", true),
        skipped: fields.skipped === undefined ? false : bool(fields, "skipped"),
      };
    case "mkdir-done":
      return { t: "mkdir-done", name: str(fields, "name") };
    case "error":
      return {
        t: "error",
        // A code from a newer (or hostile) server: a generic failure of this request.
        code: toWireErrorCode(str(fields, "code", 64)),
        message: str(fields, "message", 1024),
      };
    default:
      throw new ProtocolError("Unknown server message type");
  }
}
