/**
 * What a connection may do: every read and write permission check of the server, in one place.
 *
 * Today the rights follow from the server's {@link ServeMode} and upload limit alone; rights per connection code
 * belong here too, so that no handler decides a permission on its own.
 *
 * @module
 */
import type { ServeMode } from "../protocol/messages.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { RequestError } from "./replies.ts";
import { formatBytesPair } from "../units.ts";

/** The rights of one session. Each `require*` method throws a {@link RequestError} when refused. */
export class Rights {
  /** The serving mode these rights come from (sent to the client in `welcome`). */
  readonly mode: ServeMode;
  /** Largest upload accepted in bytes, or undefined for no limit. */
  readonly maxUpload: number | undefined;

  /** The rights of a session on a server in `mode` that accepts uploads up to `maxUpload`. */
  constructor(mode: ServeMode, maxUpload?: number) {
    this.mode = mode;
    this.maxUpload = maxUpload;
  }

  /** `list` and `get`: refused with `upload-only` on a drop box. */
  requireReading(): void {
    if (this.mode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "The server is in upload-only mode (a drop box): listing and downloading are refused",
      );
    }
  }

  /** `put` and `mkdir`: refused with `read-only` on a read-only server. */
  requireWriting(): void {
    if (this.mode === "read-only") {
      throw new RequestError("read-only", "The server is in read-only mode: uploads are refused");
    }
  }

  /**
   * `put` with `force`: refused with `upload-only` on a drop box (uploaders never replace each
   * other's files). Call after {@link requireWriting}.
   */
  requireReplacing(force: boolean): void {
    if (force && this.mode === "upload-only") {
      throw new RequestError(
        "upload-only",
        "The server is a drop box (upload-only): uploads cannot replace existing files",
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
    if (this.mode !== "upload-only") return;
    const first = parseRemotePath(dir)[0];
    if (first === undefined || (prefix !== "" && first.startsWith(prefix))) return;
    throw new RequestError(
      "upload-only",
      "The server is a drop box (upload-only): uploads go into its top folder, or into folders " +
        "uploaded to it",
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
    return this.mode !== "upload-only";
  }
}
