/**
 * What a many-file transfer reports as it goes: one {@link TransferEvent} per file started,
 * progressed, done, or folder created; `--json` prints each as one line.
 *
 * @module
 */

/** One event of a transfer, as printed by `--json` (one object per line). */
export type TransferEvent =
  | { event: "start"; direction: "get" | "put"; name: string; size: number; offset: number }
  | { event: "progress"; direction: "get" | "put"; name: string; bytes: number; size: number }
  | {
    event: "done";
    direction: "get" | "put";
    name: string;
    size: number;
    transferred: number;
    resumedFrom: number;
    seconds: number;
    /** SHA-256 of the whole file, compared end to end: with `--verify`, or for a skipped file. */
    sha256?: string;
    /** Present (true) when the target already held exactly these bytes and nothing moved. */
    skipped?: true;
    /** For `put`: the name the server gave the file (with its upload prefix). */
    remote?: string;
  }
  | { event: "mkdir"; direction: "get" | "put"; name: string };
