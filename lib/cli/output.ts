/**
 * Everything the CLI prints: results as text or JSON, progress bars on a terminal, errors.
 *
 * Results go to stdout, progress and diagnostics to stderr. Progress bars appear only when stderr
 * is a terminal and neither `--quiet` nor `--json` is given, so pipes and logs never receive
 * control characters. With `--json`, stdout carries one JSON object per line for each event.
 *
 * When the reader of stdout goes away early (`ferry get HOST FILE --json | head -2`), a transfer
 * stops at its next line of output and the command exits 1 (`OutputClosedError`), its partial
 * file kept for a resume: a transfer that did not finish never exits 0. The summary line printed
 * once every file has landed is the exception: losing it loses nothing, and the status stays 0,
 * as it does for `ferry ls | head`.
 *
 * @module
 */
import process from "node:process";
import { loadProgressBars } from "../deps.ts";
import type { TransferEvent } from "../client/events.ts";
import { OutputClosedError } from "../errors.ts";
import { formatBytes } from "../units.ts";

/** A byte count as a person reads it (`3.00 MiB`); defined in `lib/units.ts` for the server too. */
export { formatBytes };

type ProgressBars = Awaited<ReturnType<typeof loadProgressBars>>;

/** How output should look. */
export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** Draw progress bars (stderr is a terminal). */
  progress: boolean;
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

/** Turns transfer events into text lines, progress bars or JSON lines. */
export class TransferReporter {
  #options: OutputOptions;
  #bars: ProgressBars | undefined;
  #bar: InstanceType<ProgressBars["SingleBar"]> | undefined;
  #lastJsonProgress = 0;
  #files = 0;
  #bytes = 0;
  #started = performance.now();

  private constructor(options: OutputOptions, bars: ProgressBars | undefined) {
    this.#options = options;
    this.#bars = bars;
  }

  /** A reporter for `options`; the progress-bar library is loaded only if bars will be drawn. */
  static async create(options: OutputOptions): Promise<TransferReporter> {
    const drawsBars = options.progress && !options.quiet && !options.json;
    return new TransferReporter(options, drawsBars ? await loadProgressBars() : undefined);
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
    if (this.#options.json) return this.#json(event);
    switch (event.event) {
      case "start":
        if (this.#bars) this.#startBar(this.#bars, event);
        break;
      case "progress":
        this.#bar?.update(event.bytes, { rate: this.#rate(event.bytes) });
        break;
      case "done": {
        this.#stopBar();
        this.#files++;
        this.#bytes += event.transferred;
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
        break;
      case "not-transferred":
        this.#stopBar();
        printError(
          `ferry: not ${event.direction === "get" ? "downloaded" : "uploaded"}: ${event.name} ` +
            `(${event.reason})`,
        );
        break;
    }
  }

  #barStart = 0;
  #barOffset = 0;

  #rate(bytes: number): string {
    return formatRate(bytes - this.#barOffset, (performance.now() - this.#barStart) / 1000);
  }

  #startBar(bars: ProgressBars, event: Extract<TransferEvent, { event: "start" }>): void {
    this.#stopBar();
    this.#barStart = performance.now();
    this.#barOffset = event.offset;
    this.#bar = new bars.SingleBar({
      stream: process.stderr,
      format: `${
        event.name.slice(0, 40)
      } [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}`,
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    }, bars.Presets.shades_classic);
    this.#bar.start(Math.max(event.size, 1), event.offset, {
      rate: "-",
      done: formatBytes(event.offset),
      size: formatBytes(event.size),
    });
    const update = this.#bar.update.bind(this.#bar);
    this.#bar.update =
      ((value: number, payload?: Record<string, unknown>) =>
        update(value, { ...payload, done: formatBytes(value) })) as typeof update;
  }

  #stopBar(): void {
    if (this.#bar) {
      this.#bar.stop();
      this.#bar = undefined;
    }
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
    if (event.event === "done") {
      this.#files++;
      this.#bytes += event.transferred;
    }
    printLine(JSON.stringify(event));
  }

  /** Prints the summary line after several files (text mode only). */
  summary(): void {
    this.#stopBar();
    if (this.#options.json || this.#files < 2) return;
    const seconds = (performance.now() - this.#started) / 1000;
    printLine(
      `${this.#files} files, ${formatBytes(this.#bytes)} in ${seconds.toFixed(2)} s (${
        formatRate(this.#bytes, seconds)
      })`,
    );
  }

  /** Removes a progress bar left on screen (before an error is printed). */
  abort(): void {
    this.#stopBar();
  }
}
