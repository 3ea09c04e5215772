/**
 * A deadline that is cheap to push back.
 *
 * Transfers push their stall deadline back after every record: thousands of times per gigabyte.
 * Re-creating a timer each time kept every cancelled timer (and its closure) alive until its
 * original due time, minutes later, and the heap grew with the size of the transfer. A
 * {@link Watchdog} keeps one timer; pushing the deadline back only moves a number, and the timer,
 * when it fires early, sleeps again for the time that is left.
 *
 * @module
 */
import { unrefTimer } from "../_timers.ts";

/** Calls `onExpire(reason)` once the deadline passes without being pushed back. */
export class Watchdog {
  #onExpire: (reason: string) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDue = 0;
  #deadline = 0;
  #ms = 0;
  #reason = "";
  #unref: boolean;

  /** With `unref`, a pending deadline does not keep the process alive. */
  constructor(onExpire: (reason: string) => void, options: { unref?: boolean } = {}) {
    this.#onExpire = onExpire;
    this.#unref = options.unref ?? false;
  }

  /** Sets the deadline to `ms` from now, to expire with `reason`. */
  arm(ms: number, reason: string): void {
    this.#ms = ms;
    this.#reason = reason;
    this.#deadline = performance.now() + ms;
    // A timer already due before the new deadline wakes up and sleeps again; only a timer due
    // after it (a shorter deadline than before) must be replaced.
    if (this.#timer === undefined || this.#timerDue > this.#deadline) this.#schedule(ms);
  }

  /** Pushes the current deadline back to its full length from now. */
  touch(): void {
    if (this.#timer !== undefined) this.#deadline = performance.now() + this.#ms;
  }

  /**
   * Suspends the deadline without touching the timer: a later {@link arm} reuses it. For a
   * deadline that is paused and re-armed often (while a reply is awaited, record after record).
   */
  pause(): void {
    this.#deadline = Infinity;
  }

  /** Cancels the deadline and its timer. */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#timerDue = performance.now() + ms;
    this.#timer = setTimeout(() => this.#fire(), ms);
    if (this.#unref) unrefTimer(this.#timer);
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#deadline === Infinity) return; // paused
    const left = this.#deadline - performance.now();
    if (left > 1) {
      this.#schedule(left);
      return;
    }
    this.#onExpire(this.#reason);
  }
}
