/**
 * The server's way out through a relay: a {@link Listener} that keeps a control connection to a
 * relay, registers the server's identifiers there, and hands the server each client the relay
 * pairs with it, as an {@link Accepted} like any other.
 *
 * The listener connects out (so a server behind a NAT or a firewall that lets nothing in can
 * share), proves it holds the relay's token without sending it (token.ts), and sends the list its
 * `identifiers` function returns, again whenever that list changes (a code added to a running
 * server is registered within {@link RelayListenerOptions.refreshMs}). When the relay asks, it
 * opens a data connection for that pairing, reads the client's address from the relay's answer,
 * and yields the connection.
 *
 * **Peers.** A relayed client's `peer.address` is `relay:` followed by its address as the relay
 * reports it (`relay:203.0.113.9`): penalties and admission budgets stay per client, and can
 * never be confused with a direct client from the same address (nor, since a hostile relay can
 * report any address, let a relay's word clear a direct client's record). Its `label`, for logs,
 * is `203.0.113.9:51234 via relay`.
 *
 * **Reconnection.** A lost or refused control connection is tried again after a growing delay
 * (half a second, doubling to 30 s, with a random tenth either way), which starts over once a
 * registration came through. The log gets one line per change (lost, refused for another reason,
 * connected again), not one per try. A relay that sends nothing for {@link RelayListenerOptions.silenceMs}
 * is taken for lost. Clients already paired keep their connections.
 *
 * Permission: `--allow-net=<relay host:port>`.
 *
 * @module
 */
import { writeAll } from "../_fs.ts";
import {
  decodeAnswer,
  decodePeer,
  encodeHeader,
  encodeSet,
  MAX_IDENTIFIERS_PER_CONTROL,
  NONCE_BYTES,
  PAIRING_BYTES,
  PEER_BYTES,
  PING,
  RegistrationStatus,
  RelayMessageType,
  RelayRole,
  RelayStatus,
  SERVER_ID_BYTES,
} from "../relay/wire.ts";
import { registrationProof } from "../relay/token.ts";
import { readExact } from "./_exact.ts";
import { formatAddress } from "./address.ts";
import { isIdentifier } from "./identifier.ts";
import type { Accepted, Listener } from "./socket.ts";
import { Watchdog } from "./watchdog.ts";

/** How a {@link RelayListener} reaches its relay. */
export interface RelayListenerOptions {
  /** The relay's address. */
  relay: { hostname: string; port: number };
  /** The relay's token (32 bytes, from its token file). */
  token: Uint8Array;
  /**
   * The identifiers to register now, asked again every {@link refreshMs}: codes added to a
   * running server are registered, codes removed are released. At most 16 are registered.
   */
  identifiers: () => readonly string[];
  /** Receives one line per event (connected, registered, lost); never the token. */
  log?: (line: string) => void;
  /** Told of each registration and each lost connection (for a command's status line). */
  onEvent?: (event: RelayListenerEvent) => void;
  /** How often `identifiers` is asked again (default 1 s). */
  refreshMs?: number;
  /** Identifiers the relay refused are asked for again after this long (default 5 s). */
  retryRefusedMs?: number;
  /** The listener pings the relay after this long without writing (default 10 s). */
  pingMs?: number;
  /** A relay that sends nothing this long is taken for lost (default 30 s). */
  silenceMs?: number;
  /** Deadline for connecting and each step of the relay's answers (default 10 s). */
  stepTimeoutMs?: number;
  /** First delay before trying again (default 500 ms), doubled each time up to `maxRetryMs`. */
  firstRetryMs?: number;
  /** Longest delay before trying again (default 30 s). */
  maxRetryMs?: number;
  /** Data connections being opened at once; further pairings are ignored (default 16). */
  maxOpening?: number;
}

/** What happened to a {@link RelayListener}'s registration. */
export type RelayListenerEvent =
  | {
    kind: "registered";
    /** Identifiers the relay now routes to this server. */
    registered: string[];
    /** Identifiers it refused: `taken` by another server, or over the address's `limit`. */
    refused: { identifier: string; reason: "taken" | "limit" }[];
  }
  | {
    kind: "disconnected";
    /** Why, in words. */
    reason: string;
    /** When it tries again. */
    retryInMs: number;
    /** The relay said the token is wrong. */
    unauthorized: boolean;
  };

/** Accepted connections waiting for `accept()` before new ones are turned away. */
const MAX_WAITING_ACCEPTED = 64;

/** A {@link Listener} fed by a relay. Create one with {@link listenViaRelay}. */
export class RelayListener implements Listener {
  /** The relay's address (a relay listener binds nothing of its own). */
  readonly addr: { hostname: string; port: number };
  #options: Required<Omit<RelayListenerOptions, "log" | "onEvent">> & RelayListenerOptions;
  #serverId = crypto.getRandomValues(new Uint8Array(SERVER_ID_BYTES));
  #waiting: Accepted[] = [];
  #acceptors: { resolve(accepted: Accepted): void; reject(error: Error): void }[] = [];
  #closed = new AbortController();
  #control: Deno.TcpConn | undefined;
  #opening = 0;
  #lastReport: string | undefined;
  /** The last failure logged, so that the same one is not logged at every try. */
  #lastProblem: string | undefined;
  /** Whether the current (or last) control connection got past the token. */
  #connected = false;
  #running: Promise<void>;
  #where: string;

  /** Starts keeping a registration at `options.relay`. Permission: net to the relay. */
  constructor(options: RelayListenerOptions) {
    if (options.token.length !== 32) throw new RangeError("A relay token is 32 bytes");
    this.#options = {
      refreshMs: 1000,
      retryRefusedMs: 5000,
      pingMs: 10_000,
      silenceMs: 30_000,
      stepTimeoutMs: 10_000,
      firstRetryMs: 500,
      maxRetryMs: 30_000,
      maxOpening: 16,
      ...options,
    };
    this.addr = { ...options.relay };
    this.#where = formatAddress(options.relay.hostname, options.relay.port);
    this.#running = this.#keepRegistered();
  }

  /** The next client the relay paired with this server; rejects once the listener is closed. */
  accept(): Promise<Accepted> {
    const next = this.#waiting.shift();
    if (next) return Promise.resolve(next);
    if (this.#closed.signal.aborted) {
      return Promise.reject(new Deno.errors.BadResource("The relay listener is closed"));
    }
    return new Promise((resolve, reject) => this.#acceptors.push({ resolve, reject }));
  }

  /** Leaves the relay (its identifiers are released) and rejects a pending {@link accept}. */
  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort();
    if (this.#control) closeQuietly(this.#control);
    for (const acceptor of this.#acceptors.splice(0)) {
      acceptor.reject(new Deno.errors.BadResource("The relay listener is closed"));
    }
    for (const accepted of this.#waiting.splice(0)) closeQuietly(accepted.socket);
  }

  /** Settles once {@link close} has been called and the control connection is gone. */
  get finished(): Promise<void> {
    return this.#running;
  }

  #log(line: string): void {
    this.#options.log?.(`${new Date().toISOString()} relay ${this.#where}: ${line}`);
  }

  async #keepRegistered(): Promise<void> {
    let delay = this.#options.firstRetryMs;
    while (!this.#closed.signal.aborted) {
      let registered = false;
      this.#connected = false;
      let unauthorized = false;
      let reason: string;
      try {
        await this.#session(() => registered = true);
        reason = "the relay closed the connection";
      } catch (error) {
        if (error instanceof Unauthorized) unauthorized = true;
        reason = firstLine(error).replace(/ \(os error \d+\)/, "");
      }
      if (this.#closed.signal.aborted) break;
      if (registered) delay = this.#options.firstRetryMs;
      const retryInMs = Math.round(delay * (0.9 + Math.random() * 0.2));
      const what = this.#connected ? "connection lost" : "cannot register";
      // One line per change of state: a relay that stays unreachable is not reported each try.
      const state = `${what} (${reason})`;
      if (state !== this.#lastProblem) {
        this.#lastProblem = state;
        const longest = this.#options.maxRetryMs / 1000;
        this.#log(
          `${state}; trying again now and then (at most ${
            longest >= 1 ? Math.round(longest) : longest.toFixed(1)
          } s apart), quietly until something changes`,
        );
      }
      this.#options.onEvent?.({ kind: "disconnected", reason, retryInMs, unauthorized });
      await sleep(retryInMs, this.#closed.signal);
      delay = Math.min(delay * 2, this.#options.maxRetryMs);
    }
  }

  /** One control connection, from connecting to its end; `onRegistered` once a `set` is answered. */
  async #session(onRegistered: () => void): Promise<void> {
    const options = this.#options;
    const step = new Watchdog(() => this.#control && closeQuietly(this.#control));
    const connecting = AbortSignal.any([
      this.#closed.signal,
      AbortSignal.timeout(options.stepTimeoutMs),
    ]);
    const conn = await Deno.connect({ ...options.relay, transport: "tcp", signal: connecting });
    this.#control = conn;
    if (this.#closed.signal.aborted) closeQuietly(conn);
    let refresher: ReturnType<typeof setInterval> | undefined;
    try {
      conn.setNoDelay(true);
      step.arm(options.stepTimeoutMs, "the relay did not answer in time");
      await writeAll(conn, encodeHeader(RelayRole.control));
      expectOk(await readExact(conn, 6), this.#where, "registering");
      const nonce = await readExact(conn, NONCE_BYTES);
      const reply = new Uint8Array(SERVER_ID_BYTES + 32);
      reply.set(this.#serverId);
      reply.set(registrationProof(options.token, nonce, this.#serverId), SERVER_ID_BYTES);
      await writeAll(conn, reply);
      expectOk(await readExact(conn, 6), this.#where, "registering");
      this.#log("connected, token accepted");
      this.#connected = true;
      this.#lastProblem = undefined;
      this.#lastReport = undefined;

      // From here the relay's silence is what ends the connection.
      step.arm(options.silenceMs, "the relay went silent");
      const control = new ControlWriter(conn, options.pingMs);
      let sent: string[] | undefined;
      const inFlight: string[][] = [];
      // Identifiers another server held are asked for again now and then: they may be free.
      let refusedAt: number | undefined;
      const refresh = () => {
        const wanted = this.#currentIdentifiers();
        const retry = refusedAt !== undefined &&
          performance.now() - refusedAt >= options.retryRefusedMs;
        if (sent !== undefined && sameList(sent, wanted) && !retry) return;
        sent = wanted;
        refusedAt = undefined;
        inFlight.push(wanted);
        control.send(encodeSet(wanted));
      };
      refresh();
      refresher = setInterval(refresh, options.refreshMs);
      try {
        while (true) {
          const type = (await readExact(conn, 1))[0]!;
          step.touch();
          if (type === RelayMessageType.ping) continue;
          if (type === RelayMessageType.pair) {
            this.#openData(await readExact(conn, PAIRING_BYTES));
            continue;
          }
          if (type !== RelayMessageType.registered) {
            throw new Error(`the relay sent an unknown message (type ${type})`);
          }
          const count = (await readExact(conn, 1))[0]!;
          const asked = inFlight.shift();
          if (asked === undefined || count !== asked.length) {
            throw new Error("the relay answered a registration that was not asked for");
          }
          const statuses = await readExact(conn, count);
          const refused = this.#reportRegistration(asked, statuses);
          if (refused && inFlight.length === 0) refusedAt = performance.now();
          onRegistered();
        }
      } finally {
        control.stop();
      }
    } finally {
      clearInterval(refresher);
      step.disarm();
      closeQuietly(conn);
      this.#control = undefined;
    }
  }

  /** The identifiers to register: the function's, checked, without repeats, at most 16. */
  #currentIdentifiers(): string[] {
    let listed: readonly string[];
    try {
      listed = this.#options.identifiers();
    } catch (error) {
      this.#log(`could not list the identifiers to register: ${error}`);
      return [];
    }
    const unique = [...new Set(listed)].filter((identifier) => isIdentifier(identifier));
    return unique.slice(0, MAX_IDENTIFIERS_PER_CONTROL);
  }

  /** Logs and reports what the relay answered; returns whether it refused any identifier. */
  #reportRegistration(asked: string[], statuses: Uint8Array): boolean {
    const registered: string[] = [];
    const refused: { identifier: string; reason: "taken" | "limit" }[] = [];
    asked.forEach((identifier, index) => {
      const status = statuses[index];
      if (status === RegistrationStatus.registered) registered.push(identifier);
      else {refused.push({
          identifier,
          reason: status === RegistrationStatus.taken ? "taken" : "limit",
        });}
    });
    const parts = [
      registered.length > 0 ? `registered ${registered.join(", ")}` : "no identifier registered",
      ...refused.map(({ identifier, reason }) =>
        reason === "taken"
          ? `${identifier} refused: another server holds it there (make a new code)`
          : `${identifier} refused: this address holds as many as the relay allows`
      ),
    ];
    const line = parts.join("; ");
    // An answer like the last one (a refused identifier asked for again) is not said again.
    if (line !== this.#lastReport) {
      this.#lastReport = line;
      this.#log(line);
      this.#options.onEvent?.({ kind: "registered", registered, refused });
    }
    return refused.length > 0;
  }

  /** Answers a pairing with a data connection, and queues it for `accept()`. */
  #openData(pairing: Uint8Array): void {
    if (this.#opening >= this.#options.maxOpening) {
      this.#log("a pairing was ignored: too many data connections being opened");
      return;
    }
    this.#opening++;
    void this.#dataConnection(pairing)
      .then((accepted) => accepted && this.#deliver(accepted))
      .catch((error) => this.#log(`a data connection failed: ${firstLine(error)}`))
      .finally(() => this.#opening--);
  }

  async #dataConnection(pairing: Uint8Array): Promise<Accepted | undefined> {
    const signal = AbortSignal.any([
      this.#closed.signal,
      AbortSignal.timeout(this.#options.stepTimeoutMs),
    ]);
    const conn = await Deno.connect({ ...this.#options.relay, transport: "tcp", signal });
    const onAbort = () => closeQuietly(conn);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await writeAll(conn, encodeHeader(RelayRole.data, pairing));
      const answer = decodeAnswer(await readExact(conn, 6));
      if (answer.kind !== "answer" || answer.status !== RelayStatus.ok) {
        closeQuietly(conn); // the client left, or its deadline passed
        return undefined;
      }
      const client = decodePeer(await readExact(conn, PEER_BYTES));
      return {
        socket: conn,
        peer: {
          address: `relay:${client.hostname}`,
          label: `${formatAddress(client.hostname, client.port)} via relay`,
        },
      };
    } catch (error) {
      closeQuietly(conn);
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  #deliver(accepted: Accepted): void {
    const acceptor = this.#acceptors.shift();
    if (acceptor) return acceptor.resolve(accepted);
    if (this.#closed.signal.aborted || this.#waiting.length >= MAX_WAITING_ACCEPTED) {
      closeQuietly(accepted.socket);
      return;
    }
    this.#waiting.push(accepted);
  }
}

/**
 * Starts a {@link RelayListener}: pass it as a server's listener (`listen: () => listener`, or
 * beside TCP with `mergeListeners`). Permission: `--allow-net=<relay host:port>`.
 */
export function listenViaRelay(options: RelayListenerOptions): RelayListener {
  return new RelayListener(options);
}

/** The relay refused the token. */
class Unauthorized extends Error {}

/** Throws unless `bytes` is the relay's `ok` answer. */
function expectOk(bytes: Uint8Array, where: string, doing: string): void {
  const answer = decodeAnswer(bytes);
  if (answer.kind === "garbage") throw new Error(`${where} is not a ferry relay`);
  if (answer.kind === "other-version") {
    throw new Error(`the relay speaks relay protocol version ${answer.version}`);
  }
  switch (answer.status) {
    case RelayStatus.ok:
      return;
    case RelayStatus.unauthorized:
      throw new Unauthorized(
        "the relay refused its token: the token file is not the relay's (copy it again)",
      );
    case RelayStatus.busy:
      throw new Error(`the relay is busy ${doing}`);
    default:
      throw new Error(`the relay refused (status ${answer.status})`);
  }
}

/** Writes control messages in order, and pings when nothing else was written for a while. */
class ControlWriter {
  #conn: Deno.TcpConn;
  #writes: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval>;
  #wroteSinceTick = false;

  constructor(conn: Deno.TcpConn, pingMs: number) {
    this.#conn = conn;
    this.#timer = setInterval(() => {
      if (!this.#wroteSinceTick) this.send(PING);
      this.#wroteSinceTick = false;
    }, pingMs);
  }

  send(bytes: Uint8Array): void {
    this.#wroteSinceTick = true;
    this.#writes = this.#writes
      .then(() => writeAll(this.#conn, bytes))
      .catch(() => closeQuietly(this.#conn)); // the read loop then ends the session
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n", 1)[0]!;
}
