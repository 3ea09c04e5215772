/**
 * What one address may hold at a relay, and how fast its spliced bytes may flow.
 *
 * {@link AddressCounts} counts things per address (connections still in their header, clients,
 * control connections, identifiers) against a limit, and forgets an address once it holds
 * nothing, so its memory follows what is held, not who ever came. {@link ByteRate} is a token
 * bucket per address, shared by all of that address's spliced pairs.
 *
 * @module
 */

/** Per-address counts of one kind of thing, each capped. */
export class AddressCounts {
  #counts = new Map<string, number>();

  /** What `address` holds now. */
  of(address: string): number {
    return this.#counts.get(address) ?? 0;
  }

  /** Every address's holdings added up. */
  get total(): number {
    let sum = 0;
    for (const count of this.#counts.values()) sum += count;
    return sum;
  }

  /** Takes `amount` for `address` if it then holds at most `limit`; returns whether it did. */
  take(address: string, limit: number, amount = 1): boolean {
    const held = this.of(address);
    if (held + amount > limit) return false;
    this.#counts.set(address, held + amount);
    return true;
  }

  /** Gives back `amount` of what `address` holds (never below zero). */
  give(address: string, amount = 1): void {
    const left = this.of(address) - amount;
    if (left > 0) this.#counts.set(address, left);
    else this.#counts.delete(address);
  }
}

/**
 * A token bucket per address: {@link take} waits as long as the address's bytes run ahead of
 * `bytesPerSecond`, with a burst of one second's worth (at least 64 KiB). With 0 nothing waits.
 */
export class ByteRate {
  #bytesPerSecond: number;
  #buckets = new Map<string, { tokens: number; at: number; users: number }>();
  #now: () => number;

  /** Limits each address to `bytesPerSecond` (0: no limit); `now` for tests. */
  constructor(bytesPerSecond: number, now: () => number = performance.now.bind(performance)) {
    if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(`bytesPerSecond must be a whole number, not ${bytesPerSecond}`);
    }
    this.#bytesPerSecond = bytesPerSecond;
    this.#now = now;
  }

  /** Whether any limit applies. */
  get limited(): boolean {
    return this.#bytesPerSecond > 0;
  }

  /** Starts counting a pair of `address` (call {@link release} when it ends). */
  hold(address: string): void {
    const bucket = this.#buckets.get(address);
    if (bucket) bucket.users++;
    else this.#buckets.set(address, { tokens: this.#burst, at: this.#now(), users: 1 });
  }

  /** Ends a pair of `address`; the bucket goes once no pair uses it. */
  release(address: string): void {
    const bucket = this.#buckets.get(address);
    if (bucket && --bucket.users <= 0) this.#buckets.delete(address);
  }

  /** Milliseconds to wait before `bytes` more of `address` may go (and counts them). */
  take(address: string, bytes: number): number {
    const bucket = this.#buckets.get(address);
    if (!this.limited || bucket === undefined) return 0;
    const now = this.#now();
    bucket.tokens = Math.min(
      this.#burst,
      bucket.tokens + ((now - bucket.at) * this.#bytesPerSecond) / 1000,
    );
    bucket.at = now;
    bucket.tokens -= bytes;
    return bucket.tokens >= 0 ? 0 : (-bucket.tokens * 1000) / this.#bytesPerSecond;
  }

  get #burst(): number {
    return Math.max(this.#bytesPerSecond, 64 * 1024);
  }
}
