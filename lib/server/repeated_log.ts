/**
 * Keeps the server's log small under attack and still telling: the events a stranger can cause
 * at will (a connection, a refusal, a failed handshake) are logged as they come only the first
 * few times per address and kind within a window, once that address has failed in the window;
 * the rest are counted, and one line per address and kind says how many there were once the
 * window ends. An address that only connects and authenticates is logged in full.
 *
 * @module
 */
import { unrefTimer } from "../_timers.ts";

/** How {@link RepeatedLog} limits. */
export interface RepeatedLogOptions {
  /** Lines of one kind from one address logged as they come, per window (default 10). */
  perWindow: number;
  /** The window, in ms (default 10 s). */
  windowMs: number;
}

/** Default limits: 10 lines per address and kind, per 10 s. */
export const DEFAULT_REPEATED_LOG_OPTIONS: RepeatedLogOptions = {
  perWindow: 10,
  windowMs: 10_000,
};

/** One address's count of one kind of event in the current window. */
interface Tally {
  shown: number;
  held: number;
}

/** A log that says repeated events from one address once per window, with their count. */
export class RepeatedLog {
  #log: (line: string) => void;
  #options: RepeatedLogOptions;
  #tallies = new Map<string, Map<string, Tally>>();
  /** Addresses that failed (a refusal, a failed handshake) in this window. */
  #failing = new Set<string>();
  #timer: ReturnType<typeof setInterval>;

  /** Writes through `log`; call {@link close} when the server stops. */
  constructor(log: (line: string) => void, options: Partial<RepeatedLogOptions> = {}) {
    this.#log = log;
    this.#options = { ...DEFAULT_REPEATED_LOG_OPTIONS, ...options };
    this.#timer = setInterval(() => this.flush(), this.#options.windowMs);
    unrefTimer(this.#timer);
  }

  /**
   * Logs `line` (an event of `kind` from `address`; `failure` when it is a refusal or a failed
   * handshake) unless that address has failed lately and the pair has been seen enough.
   */
  event(address: string, kind: string, line: string, failure = false): void {
    if (failure) this.#failing.add(address);
    let kinds = this.#tallies.get(address);
    if (kinds === undefined) this.#tallies.set(address, kinds = new Map());
    let tally = kinds.get(kind);
    if (tally === undefined) kinds.set(kind, tally = { shown: 0, held: 0 });
    if (tally.shown < this.#options.perWindow || !this.#failing.has(address)) {
      tally.shown++;
      this.#log(line);
    } else {
      tally.held++;
    }
  }

  /** Ends the window: one line per address and kind whose events were held back, then a new window. */
  flush(): void {
    const seconds = Math.round(this.#options.windowMs / 100) / 10;
    for (const [address, kinds] of this.#tallies) {
      for (const [kind, tally] of kinds) {
        if (tally.held === 0) continue;
        this.#log(
          `${
            new Date().toISOString()
          } ${address} ${tally.held} more "${kind}" in the last ${seconds} s (not logged one by one)`,
        );
      }
    }
    this.#tallies.clear();
    this.#failing.clear();
  }

  /** Says what is held back and stops the window timer. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
