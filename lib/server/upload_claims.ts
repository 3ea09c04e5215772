/**
 * Which uploads are being received now, for every session of a server: a second upload of the
 * same target is refused as `busy`, unless the first has gone quiet.
 *
 * A cut connection is not always noticed: without a FIN (a cable pulled, a laptop closed, a NAT
 * that forgot the flow) the server only learns at its idle deadline (5 min). Meanwhile the user
 * runs the same command again. So an upload whose sender has sent nothing for
 * {@link DEFAULT_UPLOAD_TAKEOVER_MS} (15 s; longer while its peer is allowed to hash a kept
 * prefix) can be taken over: the quiet session is closed, its partial file is kept as for any cut
 * upload, and the new upload resumes from it.
 *
 * @module
 */
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { RequestError } from "./replies.ts";

/** An upload whose sender sent nothing for this long may be taken over by a new one. */
export const DEFAULT_UPLOAD_TAKEOVER_MS = 15_000;
/** How long a takeover waits for the quiet session to let go of its partial file. */
const RELEASE_WAIT_MS = 5_000;

/** One upload being received; hold it until the upload ends, then {@link release} it. */
export class UploadClaim {
  /** The target's path in the store. */
  readonly target: string;
  #quietFrom: number;
  #graceMs = 0;
  #claims: UploadClaims;
  #endHolder: (reason: string) => void;
  #released: Promise<void>;
  #resolveReleased!: () => void;

  /** @internal Made by {@link UploadClaims.claim}. */
  constructor(target: string, claims: UploadClaims, endHolder: (reason: string) => void) {
    this.target = target;
    this.#claims = claims;
    this.#endHolder = endHolder;
    this.#quietFrom = claims.now();
    this.#released = new Promise((resolve) => this.#resolveReleased = resolve);
  }

  /**
   * The sender was heard from (a record of the upload arrived). `graceMs` more are allowed before
   * the upload counts as quiet: the sender hashes that many bytes first, say; `Infinity` while
   * this side itself works (it hashes a kept prefix).
   */
  heard(graceMs = 0): void {
    this.#quietFrom = this.#claims.now();
    this.#graceMs = graceMs;
  }

  /** Whether the sender has been quiet for `takeoverMs` (plus any grace it was given). */
  quiet(takeoverMs: number): boolean {
    return this.#msUntilQuiet(takeoverMs) <= 0;
  }

  /** The refusal of a second upload of this target while this one is not quiet. */
  busy(takeoverMs: number): RequestError {
    const wait = Math.ceil(this.#msUntilQuiet(takeoverMs) / 1000);
    const hint = Number.isFinite(wait)
      ? `; if that upload was cut, run the command again in ${wait} s to take it over`
      : "";
    return new RequestError(
      "busy",
      `${sanitizeForDisplay(this.target)} is being uploaded by another client${hint}`,
    );
  }

  #msUntilQuiet(takeoverMs: number): number {
    return takeoverMs + this.#graceMs - (this.#claims.now() - this.#quietFrom);
  }

  /** Ends the claim (the upload was committed, refused or cut); the target is free again. */
  release(): void {
    this.#claims.forget(this);
    this.#resolveReleased();
  }

  /** Closes the quiet session that holds this claim and waits until it let go (bounded). */
  async takeOver(): Promise<void> {
    this.#endHolder(
      `its upload of ${sanitizeForDisplay(this.target)} was taken over by a new one after ` +
        "a silence",
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#released,
      new Promise((resolve) => timer = setTimeout(resolve, RELEASE_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }
}

/** The uploads in progress on one server (see the module's text). */
export class UploadClaims {
  #held = new Map<string, UploadClaim>();
  #takeoverMs: number;
  /** The clock (milliseconds; injectable for tests). */
  readonly now: () => number;

  /** `takeoverMs`: the silence after which an upload may be taken over. */
  constructor(
    takeoverMs = DEFAULT_UPLOAD_TAKEOVER_MS,
    now: () => number = () => performance.now(),
  ) {
    this.#takeoverMs = takeoverMs;
    this.now = now;
  }

  /** Uploads in progress now. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether `target` is being uploaded now. */
  has(target: string): boolean {
    return this.#held.has(target);
  }

  /**
   * Claims `target` for an upload of the session that `endHolder` would close. An upload of it in
   * progress is `busy`, unless its sender has been quiet long enough: then that session is closed
   * and this claim waits until it let go.
   */
  async claim(target: string, endHolder: (reason: string) => void): Promise<UploadClaim> {
    const holder = this.#held.get(target);
    if (holder !== undefined) {
      if (!holder.quiet(this.#takeoverMs)) throw holder.busy(this.#takeoverMs);
      await holder.takeOver();
      holder.release(); // if it has not let go in time, its claim ends anyway
      if (this.#held.has(target)) {
        throw new RequestError(
          "busy",
          `${sanitizeForDisplay(target)} is being uploaded by another client`,
        );
      }
    }
    const claim = new UploadClaim(target, this, endHolder);
    this.#held.set(target, claim);
    return claim;
  }

  /** @internal Drops `claim` if it is still the one held for its target. */
  forget(claim: UploadClaim): void {
    if (this.#held.get(claim.target) === claim) this.#held.delete(claim.target);
  }
}
