/**
 * What a connection may do: every read and write permission check of the server, in one place.
 *
 * A session's rights are those of the server ({@link ServeMode} and upload limit, from `ferry
 * serve`'s flags) and those of the code it authenticated with (`ferry code add --read-only`, ...),
 * both at once: a right is granted only when both grant it. A refusal says which of the two
 * refused, so that "the server is read-only" and "this code is read-only" are told apart. No
 * handler decides a permission on its own.
 *
 * @module
 */
import type { AccessMode, ServeMode } from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { RequestError } from "./replies.ts";
import { formatBytesPair } from "../units.ts";

/** The rights of one session. Each `require*` method throws a {@link RequestError} when refused. */
export class Rights {
  /** The server's serving mode (`ferry serve --read-only`, ...). */
  readonly serverMode: ServeMode;
  /** What the session's code allows (`read-write` when the code adds no limit of its own). */
  readonly codeMode: ServeMode;
  /** Largest upload accepted in bytes, or undefined for no limit. */
  readonly maxUpload: number | undefined;

  /**
   * The rights of a session on a server in `mode` that accepts uploads up to `maxUpload`, with a
   * code that allows `codeMode` (default: whatever the server allows).
   */
  constructor(mode: ServeMode, maxUpload?: number, codeMode: ServeMode = "read-write") {
    this.serverMode = mode;
    this.codeMode = codeMode;
    this.maxUpload = maxUpload;
  }

  /** These rights, narrowed to what a code that allows `codeMode` may do. */
  forCode(codeMode: ServeMode): Rights {
    return new Rights(this.serverMode, this.maxUpload, codeMode);
  }

  /**
   * What the session may do, both limits applied (sent to the client in `welcome`): `none` when
   * one forbids reading and the other uploading (an upload-only code on a read-only server).
   */
  get mode(): AccessMode {
    const read = this.serverMode !== "upload-only" && this.codeMode !== "upload-only";
    const write = this.serverMode !== "read-only" && this.codeMode !== "read-only";
    return read && write ? "read-write" : read ? "read-only" : write ? "upload-only" : "none";
  }

  /** `list` and `get`: refused with `upload-only` on a drop box, or with an upload-only code. */
  requireReading(): void {
    if (this.serverMode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "The server is in upload-only mode (a drop box): listing and downloading are refused",
      );
    }
    if (this.codeMode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "This code is upload-only (a drop box): listing and downloading are refused",
      );
    }
  }

  /** `put` and `mkdir`: refused with `read-only` on a read-only server, or with a read-only code. */
  requireWriting(): void {
    if (this.serverMode === "read-only") {
      throw new RequestError("read-only", "The server is in read-only mode: uploads are refused");
    }
    if (this.codeMode === "read-only") {
      throw new RequestError("read-only", "This code is read-only: uploads are refused");
    }
  }

  /** Whether uploads are a drop box's: by the server's mode or by the code's. */
  get #dropBox(): boolean {
    return this.serverMode === "upload-only" || this.codeMode === "upload-only";
  }

  /** Who made this session a drop box, for messages. */
  get #dropBoxIs(): string {
    return this.serverMode === "upload-only" ? "The server is" : "This code is";
  }

  /**
   * `put` with `force`: refused with `upload-only` on a drop box (uploaders never replace each
   * other's files). Call after {@link requireWriting}.
   */
  requireReplacing(force: boolean): void {
    if (force && this.#dropBox) {
      throw new RequestError(
        "upload-only",
        `${this.#dropBoxIs} a drop box (upload-only): uploads cannot replace existing files`,
      );
    }
  }

  /**
   * `put` and `mkdir` into the remote folder `dir`: on a drop box, uploads go into its top folder
   * or into folders uploaded to it (whose first component carries the upload `prefix`), never into
   * the owner's folders. Any other `dir` is refused with `upload-only` before anything is looked
   * up, whether it exists or not, so that probing tells nothing of the owner's files.
   */
  requireUploadFolder(dir: string, prefix: string): void {
    if (!this.#dropBox) return;
    const first = parseRemotePath(dir)[0];
    if (first === undefined || (prefix !== "" && first.startsWith(prefix))) return;
    throw new RequestError(
      "upload-only",
      `${this.#dropBoxIs} a drop box (upload-only): uploads go into its top folder, or into ` +
        "folders uploaded to it",
    );
  }

  /** `put` of `size` bytes: refused with `too-large` above the server's maximum. */
  requireUploadSize(size: number): void {
    if (this.maxUpload !== undefined && size > this.maxUpload) {
      const [asked, most] = formatBytesPair(size, this.maxUpload);
      throw new RequestError(
        "too-large",
        `Upload of ${asked} refused: the server accepts at most ${most}`,
      );
    }
  }

  /**
   * Whether `put` may answer `ifIdentical` by comparing an existing file: never on a drop box,
   * where it would let an uploader test guesses about other people's files.
   */
  get mayConfirmIdentical(): boolean {
    return !this.#dropBox;
  }
}
