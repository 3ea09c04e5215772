/**
 * What a many-file transfer reports as it goes: one {@link TransferEvent} per file started,
 * progressed, done, or folder created; `--json` prints each as one line.
 *
 * @module
 */

import type { TransferOptions, TransferResult } from "./types.ts";

/** The direction of a transfer, as its events name it. */
export type Direction = "get" | "put";

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
  | { event: "mkdir"; direction: "get" | "put"; name: string }
  | {
    /**
     * The first `bytes` of a file already on the receiving side (a cut transfer's partial file)
     * are being hashed before the transfer resumes, which takes a while for a big one; its
     * `start` follows.
     */
    event: "checking";
    direction: "get" | "put";
    name: string;
    bytes: number;
  }
  | {
    /**
     * A file or folder of a many-file transfer that was not moved, and why (a name the other
     * side cannot store, a file it refused or cannot read): the command ends non-zero, after the
     * rest, naming each again.
     */
    event: "not-transferred";
    direction: "get" | "put";
    /** Its path, escaped for display. */
    name: string;
    reason: string;
  };

/** What a many-file transfer passes to each file: its flags and where its events go. */
export interface EventOptions {
  /** Replace existing targets (atomically). */
  force: boolean;
  /** Hash every file on both sides and compare the digests. */
  verify?: boolean;
  /** Receives every {@link TransferEvent}. */
  onEvent?: (event: TransferEvent) => void;
}

/** The options of one file's transfer shown as `shown`: its flags, its start and progress events. */
export function fileTransferOptions(
  direction: Direction,
  shown: string,
  options: EventOptions,
): TransferOptions {
  return {
    force: options.force,
    verify: options.verify,
    onChecking: ({ bytes }) =>
      options.onEvent?.({ event: "checking", direction, name: shown, bytes }),
    onStart: ({ size, offset }) =>
      options.onEvent?.({ event: "start", direction, name: shown, size, offset }),
    onProgress: ({ bytes, size }) =>
      options.onEvent?.({ event: "progress", direction, name: shown, bytes, size }),
  };
}

/** An entry a many-file transfer left out, and why: named in its final `IncompleteError`. */
export interface LeftOut {
  /** Its path, escaped for display. */
  name: string;
  /** Why it was not moved. */
  reason: string;
}

/**
 * The recorder of what a many-file transfer leaves out: each entry goes into `leftOut` (for the
 * final error) and out as a `not-transferred` event at once.
 */
export function leaveOut(
  direction: Direction,
  leftOut: LeftOut[],
  options: { onEvent?: (event: TransferEvent) => void },
): (name: string, reason: string) => void {
  return (name, reason) => {
    leftOut.push({ name, reason });
    options.onEvent?.({ event: "not-transferred", direction, name, reason });
  };
}

/**
 * Reports a finished file as its `done` event (with the server's name of an upload as `remote`)
 * and passes the result on.
 */
export function reportDone(
  direction: Direction,
  shown: string,
  result: TransferResult,
  options: EventOptions,
  remote?: string,
): TransferResult {
  options.onEvent?.({
    event: "done",
    direction,
    name: shown,
    ...(remote === undefined ? {} : { remote }),
    size: result.size,
    transferred: result.transferred,
    resumedFrom: result.resumedFrom,
    seconds: result.seconds,
    ...(result.sha256 ? { sha256: result.sha256 } : {}),
    ...(result.skipped ? { skipped: true as const } : {}),
  });
  return result;
}
