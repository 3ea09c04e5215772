/**
 * Slows sources that keep failing the handshake, in the spirit of sshd's `PerSourcePenalties`.
 *
 * Each failed handshake from an address adds to its count; after {@link PenaltyOptions.freeFailures}
 * failures each new attempt must wait a growing delay (doubling up to one second), so a source
 * gets at most about one guess a second. A record is forgotten after
 * {@link PenaltyOptions.forgetAfterMs} without failures, and at most
 * {@link PenaltyOptions.maxSources} records are kept (the stalest goes first), so memory stays
 * bounded whatever an attacker does. Addresses with no failures are never delayed.
 *
 * @module
 */

/** Tuning of a {@link PenaltyBox}. */
export interface PenaltyOptions {
  /** Failures allowed before any delay applies. */
  freeFailures: number;
  /** The first delay, doubled with each further failure. */
  baseDelayMs: number;
  /** The longest delay between two attempts. */
  maxDelayMs: number;
  /** How long a source is remembered after its last failure. */
  forgetAfterMs: number;
  /** The most sources remembered at once. */
  maxSources: number;
}

/** Defaults: three free failures, then 250 ms, 500 ms, then one attempt a second for ten minutes. */
export const DEFAULT_PENALTY_OPTIONS: PenaltyOptions = {
  freeFailures: 3,
  baseDelayMs: 250,
  maxDelayMs: 1000,
  forgetAfterMs: 10 * 60 * 1000,
  maxSources: 10_000,
};

interface SourceRecord {
  failures: number;
  lastFailure: number;
  nextAllowed: number;
}

/** Per-address bookkeeping of failed handshakes. */
export class PenaltyBox {
  #options: PenaltyOptions;
  #now: () => number;
  #sources = new Map<string, SourceRecord>();

  /** `now` is injectable for tests. */
  constructor(options: Partial<PenaltyOptions> = {}, now: () => number = Date.now) {
    this.#options = { ...DEFAULT_PENALTY_OPTIONS, ...options };
    this.#now = now;
  }

  /** Number of sources remembered. */
  get size(): number {
    return this.#sources.size;
  }

  /** Milliseconds `address` must still wait before its next attempt (0 = may try now). */
  waitFor(address: string): number {
    const record = this.#current(address);
    return record ? Math.max(0, record.nextAllowed - this.#now()) : 0;
  }

  /**
   * Decides whether `address` may start a handshake now: returns 0 if so, else the milliseconds
   * it must still wait. Once an address is past its free failures, admitting an attempt also
   * reserves its slot (the next one waits as if this one had failed already), so opening many
   * connections at once cannot multiply its guesses.
   */
  admit(address: string): number {
    const wait = this.waitFor(address);
    if (wait > 0) return wait;
    const record = this.#current(address);
    if (record && record.failures >= this.#options.freeFailures) {
      record.nextAllowed = this.#now() + this.#delayAfter(record.failures + 1);
    }
    return 0;
  }

  /** Records a failed handshake from `address`. */
  fail(address: string): void {
    const now = this.#now();
    const record = this.#current(address) ?? { failures: 0, lastFailure: now, nextAllowed: now };
    record.failures++;
    record.lastFailure = now;
    record.nextAllowed = Math.max(record.nextAllowed, now + this.#delayAfter(record.failures));
    // Re-insert so the Map's order stays "least recently failed first".
    this.#sources.delete(address);
    this.#sources.set(address, record);
    while (this.#sources.size > this.#options.maxSources) {
      const stalest = this.#sources.keys().next().value;
      if (stalest === undefined) break;
      this.#sources.delete(stalest);
    }
  }

  /** Forgets `address`'s failures (after a successful handshake). */
  succeed(address: string): void {
    this.#sources.delete(address);
  }

  /** The wait imposed after the `failures`-th failure. */
  #delayAfter(failures: number): number {
    const over = failures - this.#options.freeFailures;
    return over <= 0
      ? 0
      : Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** (over - 1));
  }

  #current(address: string): SourceRecord | undefined {
    const record = this.#sources.get(address);
    if (record && this.#now() - record.lastFailure > this.#options.forgetAfterMs) {
      this.#sources.delete(address);
      return undefined;
    }
    return record;
  }
}
