/**
 * The progress bar as text: one line fitted to the terminal's width, and the smoothed rate its
 * ETA comes from. Pure functions and a small class, so that what a narrow terminal shows and how
 * steady the ETA stays can be tested without a terminal; lib/cli/output.ts draws the line.
 *
 * @module
 */

/** Filled cell of a bar. */
const FILLED = "\u2588";
/** Empty cell of a bar. */
const EMPTY = "\u2591";
/** Cells of a bar when the terminal has room. */
const BAR_CELLS = 24;
/** Fewest cells worth drawing: below this the bar is left out. */
const MIN_BAR_CELLS = 8;
/** Longest label (a file name) shown before the bar. */
const MAX_LABEL = 40;
/** Shortest a label is cut to before parts of the line are dropped instead. */
const MIN_LABEL = 8;

/** What one progress line shows. */
export interface BarFields {
  /** What moves: a file name, or `12/50 files`. */
  label: string;
  /** Done so far, from 0 to 1. */
  fraction: number;
  /** Bytes done of the total, such as `12.0 MiB/64.0 MiB`. */
  amount: string;
  /** Rate, such as `3.20 MiB/s`. */
  rate: string;
  /** Time left, such as `9s` (see {@link formatEta}). */
  eta: string;
}

/** `text` cut to `width` characters, ending in `…` when cut. */
export function truncate(text: string, width: number): string {
  if (width <= 0) return "";
  const chars = Array.from(text);
  if (chars.length <= width) return text;
  return chars.slice(0, width - 1).join("") + "\u2026";
}

/**
 * One progress line of at most `width - 1` characters (the last column is left free, so that no
 * terminal wraps the line). When the terminal is narrow, the label is cut first, then the bar
 * shrinks, then the byte amount goes, then the rate: the percentage and the ETA stay longest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBar } from "./progress_bar.ts";
 * const fields = { label: "movie.bin", fraction: 0.5, amount: "32.0 MiB/64.0 MiB", rate: "8.00 MiB/s", eta: "4s" };
 * assert.equal(
 *   formatBar(fields, 160),
 *   "movie.bin [████████████░░░░░░░░░░░░] 50% 32.0 MiB/64.0 MiB 8.00 MiB/s ETA 4s",
 * );
 * assert.equal(formatBar(fields, 50), "movie.bin [████████░░░░░░░] 50% 8.00 MiB/s ETA 4s");
 * ```
 */
export function formatBar(fields: BarFields, width: number): string {
  const room = Math.max(1, Math.floor(width) - 1);
  const fraction = Math.min(1, Math.max(0, Number.isFinite(fields.fraction) ? fields.fraction : 0));
  const percent = `${Math.floor(fraction * 100)}%`;
  const eta = `ETA ${fields.eta}`;
  const label = truncate(fields.label, MAX_LABEL);
  const labelLength = Array.from(label).length;
  const tails = [
    [percent, fields.amount, fields.rate, eta],
    [percent, fields.rate, eta],
    [percent, eta],
    [percent],
  ];
  for (const parts of tails) {
    const tail = parts.join(" ");
    // label, " [", cells, "] ", tail
    const left = room - tail.length - 4;
    const shortestLabel = Math.min(labelLength, MIN_LABEL);
    if (left < shortestLabel + MIN_BAR_CELLS) continue;
    const cells = Math.min(BAR_CELLS, Math.max(MIN_BAR_CELLS, left - labelLength));
    const shown = truncate(label, left - cells);
    const filled = Math.round(fraction * cells);
    return `${shown} [${FILLED.repeat(filled)}${EMPTY.repeat(cells - filled)}] ${tail}`;
  }
  // Too narrow for any bar: the percentage first, then what fits of the label.
  return truncate(`${percent} ${label}`, room);
}

/** Seconds left as `9s`, `1m05s` or `2h03m`; `-` when unknown. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "-";
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * A transfer rate smoothed by an exponential moving average over time, so that the ETA computed
 * from it does not jump with every burst or stall of the network. Each sample moves the average
 * towards the rate measured since the previous one by `1 - e^(-Δt/τ)`: samples close together
 * weigh little, and the average follows a lasting change within a few `τ`.
 */
export class RateMeter {
  readonly #tauMs: number;
  readonly #minIntervalMs: number;
  #lastBytes = 0;
  #lastMs = 0;
  #rate: number | undefined;

  /**
   * A meter that starts counting at `bytes` at time `nowMs`. `tauSeconds` is the averaging time
   * constant; samples less than `minIntervalMs` after the previous one are folded into the next.
   */
  constructor(bytes: number, nowMs: number, tauSeconds = 5, minIntervalMs = 200) {
    this.#tauMs = tauSeconds * 1000;
    this.#minIntervalMs = minIntervalMs;
    this.#lastBytes = bytes;
    this.#lastMs = nowMs;
  }

  /**
   * Takes the byte count `bytes` seen at `nowMs`; returns the smoothed rate in bytes per second
   * (before the first full interval, the average since the start; undefined before any time passed).
   */
  sample(bytes: number, nowMs: number): number | undefined {
    const elapsed = nowMs - this.#lastMs;
    if (elapsed < this.#minIntervalMs) {
      // Until the first full interval, the plain average since the start is all there is.
      if (this.#rate !== undefined || elapsed <= 0) return this.#rate;
      return Math.max(0, bytes - this.#lastBytes) / (elapsed / 1000);
    }
    const measured = Math.max(0, bytes - this.#lastBytes) / (elapsed / 1000);
    const weight = 1 - Math.exp(-elapsed / this.#tauMs);
    this.#rate = this.#rate === undefined
      ? measured
      : this.#rate + weight * (measured - this.#rate);
    this.#lastBytes = bytes;
    this.#lastMs = nowMs;
    return this.#rate;
  }

  /** The smoothed rate in bytes per second; undefined before the first full interval. */
  get rate(): number | undefined {
    return this.#rate;
  }
}
