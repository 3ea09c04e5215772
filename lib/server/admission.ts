/**
 * Who gets a connection slot. Connections still in their handshake have a budget of their own,
 * apart from authenticated sessions, in the spirit of sshd's `MaxStartups` and
 * `PerSourceMaxStartups`:
 *
 * - one address may hold at most {@link AdmissionOptions.maxHandshakesPerAddress} connections in
 *   their handshake; a newcomer from it closes that address's oldest stale handshake (see below),
 *   or is refused at once (`busy`) when none is stale;
 * - all addresses together hold at most {@link AdmissionOptions.maxHandshakes}; when a new
 *   connection finds them full, one is closed to make room. Connections that have not yet sent
 *   their share (the client's first flight, which an honest client sends one round trip after
 *   the server's hello) go first, before any that has ({@link Admission.progressed}); within
 *   each, the oldest handshake of the address holding the most that have run longer than
 *   {@link AdmissionOptions.staleMs}, or, when none has, the oldest of the address holding the
 *   most. So connections that never send anything only ever push out each other, an honest
 *   client on a slow machine is not closed for being slow while silent ones are there, and a
 *   burst of honest clients from one address is not taken for a crowd while stale ones are there;
 * - authenticated sessions are capped apart ({@link AdmissionOptions.maxSessions}), so a crowd of
 *   strangers never takes the places of clients who hold the code, nor the other way round.
 *
 * The server's penalty box (penalty.ts) still slows addresses that keep failing handshakes; a
 * handshake closed here to make room counts as a failure there.
 *
 * @module
 */

/** The budgets of an {@link Admission}. */
export interface AdmissionOptions {
  /** Connections of one address that may be in their handshake at once. */
  maxHandshakesPerAddress: number;
  /** Connections of all addresses that may be in their handshake at once. */
  maxHandshakes: number;
  /** Authenticated sessions served at once. */
  maxSessions: number;
  /** A handshake running this long is stale: the first to be closed to make room. */
  staleMs: number;
}

/**
 * Defaults: 16 handshakes per address (a script's parallel downloads fit), 64 in all, 64
 * authenticated sessions; a handshake is stale after 1 s (an honest one takes milliseconds).
 */
export const DEFAULT_ADMISSION_OPTIONS: AdmissionOptions = {
  maxHandshakesPerAddress: 16,
  maxHandshakes: 64,
  maxSessions: 64,
  staleMs: 1000,
};

/** A connection in its handshake, as the budget sees it. */
export interface Handshaking {
  /** The address it counts against. */
  readonly address: string;
  /** Closes it to make room for a newer one (`reason` is logged). */
  evict(reason: string): void;
}

/** Why a connection was refused a slot, to tell the client; `undefined` when admitted. */
export type Refusal = string | undefined;

/** The slot budgets of one server. */
export class Admission {
  #options: AdmissionOptions;
  /** Connections in their handshake with when each started, oldest first (insertion order). */
  #handshaking = new Map<Handshaking, number>();
  /** Those of {@link #handshaking} whose client has sent its share. */
  #progressed = new Set<Handshaking>();
  #perAddress = new Map<string, number>();
  #sessions = 0;

  #now: () => number;

  /** Budgets from `options`, the rest from {@link DEFAULT_ADMISSION_OPTIONS}; `now` for tests. */
  constructor(
    options: Partial<AdmissionOptions> = {},
    now: () => number = performance.now.bind(performance),
  ) {
    this.#options = { ...DEFAULT_ADMISSION_OPTIONS, ...options };
    this.#now = now;
    for (const [name, value] of Object.entries(this.#options)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`${name} must be a whole number of at least 1, not ${value}`);
      }
    }
  }

  /** Connections in their handshake now. */
  get handshakes(): number {
    return this.#handshaking.size;
  }

  /** Authenticated sessions now. */
  get sessions(): number {
    return this.#sessions;
  }

  /**
   * Takes a handshake slot for `connection`, closing the oldest handshake of the address that
   * holds the most when all are taken. Returns why it was refused instead, if it was; a refused
   * connection holds nothing.
   */
  startHandshake(connection: Handshaking): Refusal {
    if (this.#sessions >= this.#options.maxSessions) {
      return "too many connections, try again later";
    }
    let own = this.#perAddress.get(connection.address) ?? 0;
    if (own >= this.#options.maxHandshakesPerAddress) {
      // Its own stale handshake makes room (an honest client behind the same NAT as a crowd
      // still gets in); with none stale, the address is busy.
      const stale = this.#oldestStaleOf(connection.address);
      if (stale === undefined) return "too many connections from your address, try again later";
      this.#evict(stale);
      own--;
    }
    if (this.#handshaking.size >= this.#options.maxHandshakes) {
      this.#evict(this.#victim());
    }
    this.#handshaking.set(connection, this.#now());
    this.#perAddress.set(connection.address, own + 1);
    return undefined;
  }

  /**
   * Notes that the client of `connection` has sent its share (its first flight): it is a client
   * running the protocol, not a socket held open, and is closed to make room only when no
   * connection that has sent nothing is left (see the module documentation).
   */
  progressed(connection: Handshaking): void {
    if (this.#handshaking.has(connection)) this.#progressed.add(connection);
  }

  /** Gives back the handshake slot of `connection` (however its handshake ended); idempotent. */
  endHandshake(connection: Handshaking): void {
    this.#progressed.delete(connection);
    if (!this.#handshaking.delete(connection)) return;
    const left = (this.#perAddress.get(connection.address) ?? 1) - 1;
    if (left > 0) this.#perAddress.set(connection.address, left);
    else this.#perAddress.delete(connection.address);
  }

  /**
   * Takes a session slot for a connection that has just authenticated. Returns why it was
   * refused instead (the cap was reached while it was in its handshake), if it was.
   */
  startSession(): Refusal {
    if (this.#sessions >= this.#options.maxSessions) return "too many connections, try again later";
    this.#sessions++;
    return undefined;
  }

  /** Gives back a session slot taken with {@link startSession}. */
  endSession(): void {
    if (this.#sessions > 0) this.#sessions--;
  }

  #evict(victim: Handshaking): void {
    this.endHandshake(victim);
    victim.evict("handshake closed to make room for newer connections");
  }

  /** The oldest handshake of `address` that has run longer than `staleMs`, if any. */
  #oldestStaleOf(address: string): Handshaking | undefined {
    const staleBefore = this.#now() - this.#options.staleMs;
    for (const [connection, started] of this.#handshaking) {
      if (started > staleBefore) return undefined; // oldest first: the rest are newer
      if (connection.address === address) return connection;
    }
    return undefined;
  }

  /**
   * The handshake to close for a newcomer: among those that have sent nothing yet if there are
   * any, else among all; of those, among the stale ones if there are any; then the oldest of
   * those whose address holds the most (ties: the oldest).
   */
  #victim(): Handshaking {
    const staleBefore = this.#now() - this.#options.staleMs;
    const silent = [...this.#handshaking].filter(([one]) => !this.#progressed.has(one));
    const pool = silent.length > 0 ? silent : [...this.#handshaking];
    const stale = pool.filter(([, started]) => started <= staleBefore);
    const candidates = (stale.length > 0 ? stale : pool).map(([one]) => one);
    const held = new Map<string, number>();
    for (const one of candidates) held.set(one.address, (held.get(one.address) ?? 0) + 1);
    const most = Math.max(...held.values());
    return candidates.find((one) => held.get(one.address) === most)!;
  }
}
