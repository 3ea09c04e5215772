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

/** Tuning of an {@link IdentifierThrottle}. */
export interface IdentifierThrottleOptions {
  /** Failed handshakes one identifier may have in a burst. */
  burst: number;
  /** Failed handshakes one identifier gets back per second. */
  perSecond: number;
  /** The most identifiers that belong to no code remembered at once (the stalest go first). */
  maxUnknown: number;
}

/**
 * Defaults: a burst of 64 attempts per identifier (as many handshakes as a server runs at once,
 * so holders of one code connecting together are never refused for it), then 5 failures a
 * second. One address alone, slowed to about one attempt a second by the {@link PenaltyBox}, can
 * never use them up, so it cannot lock out the holders of a code; only a crowd of more than five
 * addresses guessing one code slows it.
 */
export const DEFAULT_IDENTIFIER_THROTTLE: IdentifierThrottleOptions = {
  burst: 64,
  perSecond: 5,
  maxUnknown: 10_000,
};

interface Bucket {
  tokens: number;
  updated: number;
}

/**
 * Failed handshakes per code identifier, from all addresses together: a token bucket per
 * identifier, so that guessing one code's secret from many addresses is slowed too, while the
 * holders of other codes are not. Each attempt takes a token as it is admitted (so parallel
 * attempts cannot multiply guesses) and a success gives it back; with no token left the attempt
 * is refused until one comes back. Identifiers that belong to no code are tracked exactly alike
 * (the answer must not tell whether a code has an identifier), in a map of bounded size: an
 * attacker cycling through random identifiers evicts only other unknown ones, never a code's.
 */
export class IdentifierThrottle {
  #options: IdentifierThrottleOptions;
  #now: () => number;
  #known = new Map<string, Bucket>();
  #unknown = new Map<string, Bucket>();

  /** `now` is injectable for tests. */
  constructor(options: Partial<IdentifierThrottleOptions> = {}, now: () => number = Date.now) {
    this.#options = { ...DEFAULT_IDENTIFIER_THROTTLE, ...options };
    this.#now = now;
  }

  /** Identifiers remembered (of codes, and of none). */
  get size(): number {
    return this.#known.size + this.#unknown.size;
  }

  /**
   * Decides whether an attempt with `identifier` (`known`: it belongs to a code) may go on now:
   * 0 if so, and its token is taken; else the milliseconds until a token comes back.
   */
  admit(identifier: string, known: boolean): number {
    const bucket = this.#bucket(identifier, known, true)!;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.#options.perSecond) * 1000);
  }

  /** Gives back the token of an attempt with `identifier` that succeeded. */
  succeed(identifier: string, known: boolean): void {
    const bucket = this.#bucket(identifier, known, false);
    if (bucket === undefined) return;
    bucket.tokens = Math.min(this.#options.burst, bucket.tokens + 1);
    if (bucket.tokens >= this.#options.burst) this.#mapOf(known).delete(identifier);
  }

  #mapOf(known: boolean): Map<string, Bucket> {
    return known ? this.#known : this.#unknown;
  }

  /** The bucket of `identifier`, refilled to now; a new full one when `create`. */
  #bucket(identifier: string, known: boolean, create: boolean): Bucket | undefined {
    const map = this.#mapOf(known);
    const now = this.#now();
    let bucket = map.get(identifier);
    if (bucket !== undefined) {
      const refill = ((now - bucket.updated) / 1000) * this.#options.perSecond;
      bucket.tokens = Math.min(this.#options.burst, bucket.tokens + Math.max(0, refill));
      bucket.updated = now;
      map.delete(identifier); // re-inserted below: the Map's order is "least recently used first"
    } else if (create) {
      bucket = { tokens: this.#options.burst, updated: now };
    } else {
      return undefined;
    }
    map.set(identifier, bucket);
    const bound = known ? Math.max(this.#options.maxUnknown, 2000) : this.#options.maxUnknown;
    while (map.size > bound) {
      const stalest = map.keys().next().value;
      if (stalest === undefined) break;
      map.delete(stalest);
    }
    return bucket;
  }
}
