/**
 * Everything the CLI prints: results as text or JSON, progress bars on a terminal, errors.
 *
 * Results go to stdout, progress and diagnostics to stderr. Progress bars appear only when stderr
 * is a terminal and neither `--quiet` nor `--json` is given, so pipes and logs never receive
 * control characters. With `--json`, stdout carries one JSON object per line for each event.
 *
 * One file gets its own bar and a line saying where it landed. Several files (a folder, several
 * paths) get one overall bar (files done of total, bytes, rate, ETA) and one summary line at the
 * end; what could not be moved is still named on stderr as it is met. `--quiet` prints errors
 * only.
 *
 * When the reader of stdout goes away early (`ferry get HOST FILE --json | head -2`), a transfer
 * stops at its next line of output and the command exits 1 (`OutputClosedError`), its partial
 * file kept for a resume: a transfer that did not finish never exits 0. The summary line printed
 * once every file has landed is the exception: losing it loses nothing, and the status stays 0,
 * as it does for `ferry ls | head`.
 *
 * @module
 */
import type { TransferEvent } from "../client/events.ts";
import { OutputClosedError } from "../errors.ts";
import { type BarFields, formatBar, formatEta, RateMeter, truncate } from "./progress_bar.ts";
import { formatBytes } from "../units.ts";

/** A byte count as a person reads it (`3.00 MiB`); defined in `lib/units.ts` for the server too. */
export { formatBytes };

/** How output should look. */
export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** Draw progress bars (stderr is a terminal). */
  progress: boolean;
  /**
   * Several files move (several paths were named): one overall bar and a summary line instead of
   * a bar and a line per file. A folder's first `mkdir` event, or more than one expected file
   * ({@link TransferReporter.expect}), turns this on as well.
   */
  many?: boolean;
}

const encoder = new TextEncoder();

/** Writes a line to stdout. */
export function printLine(line: string): void {
  writeAllSync(Deno.stdout, encoder.encode(line + "\n"));
}

/** Writes `text` to standard output as it is, with no newline. */
export function printText(text: string): void {
  writeAllSync(Deno.stdout, encoder.encode(text));
}

/** Writes a line to stderr. */
export function printError(line: string): void {
  writeAllSync(Deno.stderr, encoder.encode(line + "\n"));
}

/** Writes every byte, looping over short writes (a pipe may take only part of a large write). */
function writeAllSync(stream: { writeSync(bytes: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += stream.writeSync(bytes.subarray(offset));
}

/** Bytes per second as text. */
export function formatRate(bytes: number, seconds: number): string {
  return `${formatBytes(seconds > 0 ? bytes / seconds : 0)}/s`;
}

/** Interval between two `--json` progress events of one file. */
const JSON_PROGRESS_INTERVAL_MS = 500;
/** Interval between two redraws of a progress bar. */
const REDRAW_INTERVAL_MS = 100;
/** Terminal width assumed when it cannot be asked. */
const DEFAULT_COLUMNS = 80;

/** The width of the terminal that shows stderr, or {@link DEFAULT_COLUMNS}. */
function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || DEFAULT_COLUMNS;
  } catch {
    return DEFAULT_COLUMNS;
  }
}

/** What the bar of one file (or of the whole transfer) knows. */
interface BarState {
  /** File name or `3/50 files`. */
  label: () => string;
  /** Bytes present on the receiving side, and of how many (0: unknown). */
  present: number;
  total: number;
  /** Smoothed rate of the bytes that move. */
  meter: RateMeter;
  /** Bytes moved (for the meter). */
  moved: number;
}

/** Turns transfer events into text lines, progress bars or JSON lines. */
export class TransferReporter {
  #options: OutputOptions;
  #many: boolean;
  #lastJsonProgress = 0;
  #started = performance.now();
  // Counts of the whole transfer.
  #files = 0;
  #skipped = 0;
  #notTransferred = 0;
  #moved = 0;
  #present = 0;
  #expectedFiles = 0;
  #expectedBytes = 0;
  /** Per file in flight: bytes present so far and how many of them were moved. */
  #inFlight = new Map<string, { present: number; moved: number }>();
  // What is on screen.
  #bar: BarState | undefined;
  #checking: string | undefined;
  #drawn = false;
  #lastDraw = -Infinity;
  /** The direction of the transfer, as its last event named it. */
  #direction: "get" | "put" = "get";

  private constructor(options: OutputOptions) {
    this.#options = options;
    this.#many = options.many ?? false;
  }

  /** A reporter for `options`. */
  static create(options: OutputOptions): Promise<TransferReporter> {
    return Promise.resolve(new TransferReporter(options));
  }

  /** Whether bars are drawn: on a terminal, without `--quiet` or `--json`. */
  get #draws(): boolean {
    return this.#options.progress && !this.#options.quiet && !this.#options.json;
  }

  /**
   * Adds `files` files of `bytes` bytes to what the transfer is expected to move (the overall
   * bar's total and ETA); more than one file in all makes it a many-file transfer.
   */
  expect(files: number, bytes: number): void {
    this.#expectedFiles += files;
    this.#expectedBytes += bytes;
    if (this.#expectedFiles > 1) this.#many = true;
  }

  /**
   * Handles one event (pass as `onEvent`). When standard output was closed by its reader, throws
   * {@link OutputClosedError}: the transfer stops at once (a partial file stays for a resume) and
   * the command fails, for a transfer that did not finish must never end with status 0.
   */
  readonly onEvent = (event: TransferEvent): void => {
    try {
      this.#print(event);
    } catch (error) {
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
      throw new OutputClosedError(
        "Standard output was closed before the transfer finished, so it stopped: " +
          "run the command again to resume it",
        { cause: error },
      );
    }
  };

  #print(event: TransferEvent): void {
    this.#count(event);
    if (this.#options.json) return this.#json(event);
    switch (event.event) {
      case "checking":
        this.#checking = `checking ${formatBytes(event.bytes)} already here of ${event.name}...`;
        this.#draw(true);
        break;
      case "start":
        this.#checking = undefined;
        if (!this.#draws) break;
        if (this.#many) {
          this.#bar ??= this.#overallBar();
        } else {
          this.#bar = {
            label: () => event.name,
            present: event.offset,
            total: event.size,
            meter: new RateMeter(0, performance.now()),
            moved: 0,
          };
        }
        this.#draw(true);
        break;
      case "progress":
        if (this.#bar && !this.#many) {
          this.#bar.moved += Math.max(0, event.bytes - this.#bar.present);
          this.#bar.present = event.bytes;
        }
        this.#draw(event.bytes >= event.size); // the last one always shows (100%)
        break;
      case "done": {
        if (this.#many) {
          this.#draw(false);
          break;
        }
        this.#erase();
        this.#bar = undefined;
        if (this.#options.quiet) break;
        // The text says where the file landed: for `put`, the server's name (with its prefix).
        const landed = event.remote ?? event.name;
        if (event.skipped) {
          printLine(
            `Skipped ${landed}: already complete (${formatBytes(event.size)}, same SHA-256)`,
          );
          break;
        }
        const verb = event.direction === "get" ? "Downloaded" : "Uploaded";
        const resumed = event.resumedFrom > 0
          ? `, resumed at ${formatBytes(event.resumedFrom)}`
          : "";
        printLine(
          `${verb} ${landed} (${formatBytes(event.size)} in ${event.seconds.toFixed(2)} s, ` +
            `${formatRate(event.transferred, event.seconds)}${resumed})`,
        );
        break;
      }
      case "mkdir":
        if (!this.#many) {
          this.#many = true;
          if (this.#draws) this.#bar = this.#overallBar();
        }
        break;
      case "not-transferred":
        this.#erase();
        printError(
          `ferry: not ${event.direction === "get" ? "downloaded" : "uploaded"}: ${event.name} ` +
            `(${event.reason})`,
        );
        this.#draw(true);
        break;
    }
  }

  /** Keeps the counts of the whole transfer, whatever is printed. */
  #count(event: TransferEvent): void {
    this.#direction = event.direction;
    switch (event.event) {
      case "start":
        this.#present += event.offset;
        this.#inFlight.set(event.name, { present: event.offset, moved: 0 });
        break;
      case "progress": {
        const file = this.#inFlight.get(event.name);
        if (!file) break;
        const delta = Math.max(0, event.bytes - file.present);
        file.present = event.bytes;
        file.moved += delta;
        this.#present += delta;
        this.#moved += delta;
        break;
      }
      case "done": {
        const file = this.#inFlight.get(event.name) ?? { present: 0, moved: 0 };
        this.#inFlight.delete(event.name);
        this.#present += Math.max(0, event.size - file.present);
        this.#moved += Math.max(0, event.transferred - file.moved);
        if (event.skipped) this.#skipped++;
        else this.#files++;
        break;
      }
      case "not-transferred":
        this.#notTransferred++;
        break;
      default:
        break;
    }
  }

  /** The bar of a many-file transfer, reading the counts of the whole transfer. */
  #overallBar(): BarState {
    return {
      label: () => {
        const done = this.#files + this.#skipped;
        const total = Math.max(this.#expectedFiles, done + this.#inFlight.size);
        return `${done}/${total} files`;
      },
      present: 0,
      total: 0,
      meter: new RateMeter(this.#moved, performance.now()),
      moved: 0,
    };
  }

  /** The fields of the bar on screen now. */
  #fields(bar: BarState): BarFields {
    const many = this.#many;
    const present = many ? this.#present : bar.present;
    const total = many ? this.#expectedBytes : bar.total;
    const rate = bar.meter.sample(many ? this.#moved : bar.moved, performance.now());
    const known = total > 0 && present <= total;
    const fraction = known
      ? present / total
      : many && this.#expectedFiles > 0
      ? (this.#files + this.#skipped) / this.#expectedFiles
      : total === 0 && !many
      ? 1
      : 0;
    const eta = !known
      ? "-"
      : present >= total
      ? "0s"
      : rate
      ? formatEta((total - present) / rate)
      : "-";
    return {
      label: bar.label(),
      fraction,
      amount: known ? `${formatBytes(present)}/${formatBytes(total)}` : formatBytes(present),
      rate: rate === undefined ? "-" : `${formatBytes(rate)}/s`,
      eta,
    };
  }

  /** Redraws the line on screen, at most every {@link REDRAW_INTERVAL_MS} unless `now`. */
  #draw(now: boolean): void {
    if (!this.#draws) return;
    const time = performance.now();
    if (!now && time - this.#lastDraw < REDRAW_INTERVAL_MS) return;
    const width = terminalColumns();
    let line: string | undefined;
    if (this.#checking !== undefined) {
      const text = this.#bar && this.#many
        ? `${this.#bar.label()}, ${this.#checking}`
        : this.#checking[0]!.toUpperCase() + this.#checking.slice(1);
      line = truncate(text, width - 1);
    } else if (this.#bar) {
      line = formatBar(this.#fields(this.#bar), width);
    }
    if (line === undefined) return;
    this.#lastDraw = time;
    writeAllSync(
      Deno.stderr,
      encoder.encode(`${this.#drawn ? "" : HIDE_CURSOR}\r${line}${CLEAR_TO_END}`),
    );
    this.#drawn = true;
  }

  /** Clears the line of the bar, if one is drawn. */
  #erase(): void {
    if (!this.#drawn) return;
    writeAllSync(Deno.stderr, encoder.encode(`\r${CLEAR_TO_END}${SHOW_CURSOR}`));
    this.#drawn = false;
  }

  #json(event: TransferEvent): void {
    // Each file's first progress event comes at once, later ones at most every 500 ms.
    if (event.event === "start") this.#lastJsonProgress = -Infinity;
    if (event.event === "progress") {
      const now = performance.now();
      if (now - this.#lastJsonProgress < JSON_PROGRESS_INTERVAL_MS && event.bytes < event.size) {
        return;
      }
      this.#lastJsonProgress = now;
    }
    printLine(JSON.stringify(event));
  }

  /**
   * Prints the summary line of a many-file transfer (text mode, without `--quiet`): how many
   * files moved, how many bytes, how long and how fast, and how many were skipped or not moved.
   */
  summary(): void {
    this.#erase();
    this.#bar = undefined;
    if (this.#options.json || this.#options.quiet || !this.#many) return;
    const seconds = (performance.now() - this.#started) / 1000;
    printLine(
      summaryLine({
        direction: this.#direction,
        files: this.#files,
        bytes: this.#moved,
        seconds,
        skipped: this.#skipped,
        notTransferred: this.#notTransferred,
      }),
    );
  }

  /** Removes a progress bar left on screen (before an error is printed). */
  abort(): void {
    this.#erase();
    this.#bar = undefined;
    this.#checking = undefined;
  }
}

const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const CLEAR_TO_END = "\x1b[K";

/** What a many-file transfer's summary line reports. */
export interface SummaryCounts {
  direction: "get" | "put";
  /** Files moved (skipped ones not included). */
  files: number;
  /** Bytes that crossed the wire. */
  bytes: number;
  seconds: number;
  /** Files that were already complete on the other side. */
  skipped: number;
  /** Files and folders that were not moved. */
  notTransferred: number;
}

/**
 * The summary line of a many-file transfer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summaryLine } from "./output.ts";
 * assert.equal(
 *   summaryLine({ direction: "get", files: 2, bytes: 2048, seconds: 2, skipped: 1, notTransferred: 0 }),
 *   "Downloaded 2 files (2.00 KiB) in 2.00 s, 1.00 KiB/s; 1 skipped (already complete)",
 * );
 * ```
 */
export function summaryLine(counts: SummaryCounts): string {
  const verb = counts.direction === "get" ? "Downloaded" : "Uploaded";
  let line = `${verb} ${counts.files} file${counts.files === 1 ? "" : "s"} (${
    formatBytes(counts.bytes)
  }) in ${counts.seconds.toFixed(2)} s, ${formatRate(counts.bytes, counts.seconds)}`;
  if (counts.skipped > 0) line += `; ${counts.skipped} skipped (already complete)`;
  if (counts.notTransferred > 0) {
    line += `; ${counts.notTransferred} not ${
      counts.direction === "get" ? "downloaded" : "uploaded"
    }`;
  }
  return line;
}
