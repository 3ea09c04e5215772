/**
 * What the client's transfers report and take: progress, results and options, shared by
 * downloads and uploads.
 *
 * @module
 */

/** Progress of one file, reported while it moves. */
export interface Progress {
  /** Bytes of the file now present on the receiving side (kept prefix included). */
  bytes: number;
  /** Total size of the file. */
  size: number;
}

/** What a finished file transfer reports. */
export interface TransferResult {
  /** Name of the file where it landed (local path for downloads, remote path for uploads). */
  name: string;
  /** Size of the whole file in bytes. */
  size: number;
  /** Bytes the transfer started from (0 unless resumed). */
  resumedFrom: number;
  /** Bytes that actually crossed the wire. */
  transferred: number;
  /** Nothing was moved: the target already held exactly these bytes. */
  skipped?: true;
  /**
   * SHA-256 of the whole file, lowercase hex, compared end to end (with `verify`, or when a re-run
   * found the file already complete); `""` otherwise.
   */
  sha256: string;
  /** Wall-clock duration of the transfer. */
  seconds: number;
}

/** Options shared by downloads and uploads. */
export interface TransferOptions {
  /** Replace an existing target atomically instead of refusing. */
  force?: boolean;
  /**
   * Also hash the whole file on both sides and compare the digests (`--verify`). Without it the
   * record layer's authentication, the exact length and the sender's check that its source did
   * not change are what vouch for the bytes.
   */
  verify?: boolean;
  /**
   * For downloads: the caller has just seen that no local file has the target's name, so it is
   * not looked up again (the commit still refuses, atomically, a file that took the name since).
   */
  targetAbsent?: boolean;
  /** Called with the number of bytes present so far (at most every chunk). */
  onProgress?: (progress: Progress) => void;
  /**
   * Called before the first `bytes` of the file already on the receiving side are hashed to
   * resume it (a partial file of a cut transfer), which may take seconds.
   */
  onChecking?: (info: { bytes: number }) => void;
  /** Called once the size and starting offset are known. */
  onStart?: (info: { size: number; offset: number }) => void;
}
