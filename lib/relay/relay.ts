/**
 * `ferry relay`'s engine: a meeting point for sharing servers behind NATs and their clients.
 *
 * A sharing server keeps a **control connection** open to the relay, proves that it holds the
 * relay's token (token.ts) and registers its identifiers. A **client** names an identifier; the
 * relay asks the server that registered it, over its control connection, to open a **data
 * connection** with a fresh random pairing, tells that data connection the client's address, and
 * from then on splices the two byte streams (splice.ts). The ferry handshake and records pass
 * through unchanged: the relay sees identifiers and ciphertext, never a code, a key or a name.
 *
 * Defences, in the spirit of the server's (lib/server/admission.ts, penalty.ts):
 *
 * - every step has a deadline: the header (and a control connection's proof) in
 *   {@link RelayLimits.headerTimeoutMs}, the server's data connection in
 *   {@link RelayLimits.pairTimeoutMs}; a control connection that sends nothing for
 *   {@link RelayLimits.controlTimeoutMs} is closed, and so is a pair with no byte either way for
 *   {@link RelayLimits.idleTimeoutMs};
 * - what one address may hold is capped apart for each kind (connections still in their header,
 *   clients, control connections, identifiers), and all connections together are capped;
 * - garbage (a wrong magic, an unknown role, a malformed identifier or message) closes that one
 *   connection and nothing else; no buffer is ever sized from what a peer sent;
 * - identifiers belong to the control connection that registered them and vanish with it. A
 *   second server asking for an identifier another server holds is refused (`taken`) rather than
 *   taking it over: a collision of two codes' identifiers must not send one server's clients to
 *   the other. Only the same server (the same random server id, proved with the token, from the
 *   same address) replaces its own older control connection, as after a reconnection the relay
 *   has not noticed yet.
 *
 * Permissions: `--allow-net=<host:port>` to listen.
 *
 * @module
 */
import { settle, writeAll } from "../_fs.ts";
import { formatAddress } from "../net/address.ts";
import { readExact, ShortReadError } from "../net/_exact.ts";
import { decodeIdentifier, IDENTIFIER_BYTES } from "../net/identifier.ts";
import { Watchdog } from "../net/watchdog.ts";
import { RepeatedLog, type RepeatedLogOptions } from "../server/repeated_log.ts";
import { AddressCounts, ByteRate } from "./limits.ts";
import { splice } from "./splice.ts";
import { proofMatches } from "./token.ts";
import {
  decodeHeader,
  DEFAULT_RELAY_PORT,
  encodeAnswer,
  encodePair,
  encodePeer,
  encodeRegistered,
  MAX_IDENTIFIERS_PER_CONTROL,
  NONCE_BYTES,
  PAIRING_BYTES,
  PING,
  PROOF_BYTES,
  RegistrationStatus,
  type RegistrationStatusValue,
  RelayRole,
  RelayStatus,
  type RelayStatusValue,
  SERVER_ID_BYTES,
  ServerMessageType,
} from "./wire.ts";

/** What a relay allows, and its deadlines. */
export interface RelayLimits {
  /** Connections of every kind at once; more are answered `busy` at once. */
  maxConnections: number;
  /** Connections of one address still sending their header (or proof). */
  maxUnidentifiedPerAddress: number;
  /** Client connections of one address, waiting for their server or spliced. */
  maxClientsPerAddress: number;
  /** Control connections of one address. */
  maxControlsPerAddress: number;
  /** Identifiers registered by all the control connections of one address. */
  maxIdentifiersPerAddress: number;
  /** Clients waiting for one server's data connection at once. */
  maxPendingPerServer: number;
  /** Spliced bytes per second of one client address, both ways together; 0 for no limit. */
  bytesPerSecondPerAddress: number;
  /** Time for a header, and for a control connection's proof. */
  headerTimeoutMs: number;
  /** Time for the server to answer a pairing with its data connection. */
  pairTimeoutMs: number;
  /** A spliced pair with no byte either way for this long is closed. */
  idleTimeoutMs: number;
  /** The relay pings each control connection this often. */
  controlPingMs: number;
  /** A control connection that sends nothing (not even a ping) for this long is closed. */
  controlTimeoutMs: number;
}

/**
 * Defaults: 1024 connections in all; per address 16 in their header, 32 clients, 4 control
 * connections and 64 identifiers; 16 clients waiting per server; no byte-rate limit; 5 s for a
 * header, 10 s for a pairing, 10 min of silence closes a pair; pings every 10 s, 30 s of silence
 * closes a control connection.
 */
export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  maxConnections: 1024,
  maxUnidentifiedPerAddress: 16,
  maxClientsPerAddress: 32,
  maxControlsPerAddress: 4,
  maxIdentifiersPerAddress: 64,
  maxPendingPerServer: 16,
  bytesPerSecondPerAddress: 0,
  headerTimeoutMs: 5_000,
  pairTimeoutMs: 10_000,
  idleTimeoutMs: 10 * 60_000,
  controlPingMs: 10_000,
  controlTimeoutMs: 30_000,
};

/** How a relay is set up. */
export interface RelayOptions {
  /** The token registering servers must prove they hold (32 bytes). */
  token: Uint8Array;
  /** Address to listen on (default `0.0.0.0`). */
  hostname?: string;
  /** Port to listen on (default 7879; 0 picks a free one). */
  port?: number;
  /** Limits and deadlines; the rest from {@link DEFAULT_RELAY_LIMITS}. */
  limits?: Partial<RelayLimits>;
  /** Receives one line per event; never given the token. Default: nothing is logged. */
  log?: (line: string) => void;
  /** How events a stranger can repeat are limited in the log (see `RepeatedLog`). */
  repeatedLog?: Partial<RepeatedLogOptions>;
}

/** What a relay holds now, for tests and status lines. */
export interface RelayCounts {
  /** Open connections of every kind. */
  connections: number;
  /** Authenticated control connections. */
  controls: number;
  /** Registered identifiers. */
  identifiers: number;
  /** Clients waiting for their server's data connection. */
  pending: number;
  /** Pairs being spliced. */
  pairs: number;
}

/** A registered server's control connection. */
interface Control {
  conn: Deno.TcpConn;
  address: string;
  label: string;
  /** The server id and the address it came from: what a reconnection must match. */
  serverId: string;
  identifiers: Set<string>;
  pending: Set<Pending>;
  /** Writes in order; `queued` counts those not done yet. */
  writes: Promise<void>;
  queued: number;
  closed: boolean;
}

/** A client waiting for its server's data connection. */
interface Pending {
  client: { hostname: string; port: number };
  control: Control;
  /**
   * Hands over the data connection and a callback for when the splice ends, or nothing (the
   * server left, the deadline passed). Only the first call counts; it returns whether it was the
   * first.
   */
  settle(data: { conn: Deno.TcpConn; done: () => void } | undefined): boolean;
}

/** Writes to a control connection that may wait unanswered before it is closed as stuck. */
const MAX_QUEUED_CONTROL_WRITES = 64;

/** A running relay. Start one with {@link startRelay}. */
export class RelayServer {
  /** The address actually bound. */
  readonly hostname: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Settles when the relay has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  #listener: Deno.TcpListener;
  #token: Uint8Array;
  #limits: RelayLimits;
  #log: (line: string) => void;
  #repeatedLog: RepeatedLog;
  #open = new Set<Deno.TcpConn>();
  #handlers = new Set<Promise<void>>();
  #unidentified = new AddressCounts();
  #clients = new AddressCounts();
  #controlCounts = new AddressCounts();
  #identifierCounts = new AddressCounts();
  #rate: ByteRate;
  #owners = new Map<string, Control>();
  #byServerId = new Map<string, Control>();
  #pending = new Map<string, Pending>();
  #pairs = 0;
  #stopping = new AbortController();

  private constructor(listener: Deno.TcpListener, options: RelayOptions) {
    this.#listener = listener;
    this.hostname = listener.addr.hostname;
    this.port = listener.addr.port;
    this.#token = options.token;
    this.#limits = relayLimits(options.limits);
    this.#log = options.log ?? (() => {});
    this.#repeatedLog = new RepeatedLog(this.#log, options.repeatedLog);
    this.#rate = new ByteRate(this.#limits.bytesPerSecondPerAddress);
    this.finished = this.#acceptLoop().finally(() => this.#repeatedLog.close());
  }

  /** Starts a relay; resolves once its port is bound. Permission: `--allow-net=<host:port>`. */
  static start(options: RelayOptions): Promise<RelayServer> {
    // Bad options and a port in use reject, as an asynchronous failure would.
    return settle(() => {
      if (options.token.length !== 32) throw new RangeError("A relay token is 32 bytes");
      const limits = relayLimits(options.limits);
      for (const [name, value] of Object.entries(limits)) {
        const least = name === "bytesPerSecondPerAddress" ? 0 : 1;
        if (!Number.isSafeInteger(value) || value < least) {
          throw new RangeError(`${name} must be a whole number of at least ${least}, not ${value}`);
        }
      }
      const listener = Deno.listen({
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? DEFAULT_RELAY_PORT,
        transport: "tcp",
      });
      return new RelayServer(listener, options);
    });
  }

  /** What the relay holds now. */
  get counts(): RelayCounts {
    return {
      connections: this.#open.size,
      controls: this.#byServerId.size,
      identifiers: this.#owners.size,
      pending: this.#pending.size,
      pairs: this.#pairs,
    };
  }

  /** Stops listening and closes every connection (pairs in progress are cut). */
  async close(): Promise<void> {
    this.#stopping.abort();
    try {
      this.#listener.close();
    } catch {
      // closed already
    }
    for (const conn of this.#open) closeQuietly(conn);
    await this.finished;
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping.signal.aborted || error instanceof Deno.errors.BadResource) break;
        this.#log(`${new Date().toISOString()} accept failed: ${firstLine(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100)); // out of file descriptors
        continue;
      }
      if (this.#open.size >= this.#limits.maxConnections) {
        void this.#refuse(conn, RelayStatus.busy);
        continue;
      }
      this.#open.add(conn);
      const handler = this.#handle(conn)
        .catch(() => {}) // a connection's failure is its own
        .finally(() => {
          closeQuietly(conn);
          this.#open.delete(conn);
          this.#handlers.delete(handler);
        });
      this.#handlers.add(handler);
    }
    while (this.#handlers.size > 0) await Promise.allSettled([...this.#handlers]);
  }

  /** Answers `status` and closes, giving the answer a moment to leave. */
  async #refuse(conn: Deno.TcpConn, status: RelayStatusValue): Promise<void> {
    const timer = setTimeout(() => closeQuietly(conn), 1000);
    try {
      await writeAll(conn, encodeAnswer(status));
    } catch {
      // gone already
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    const remote = conn.remoteAddr;
    const address = remote.hostname;
    const label = formatAddress(remote.hostname, remote.port);
    const limits = this.#limits;
    if (!this.#unidentified.take(address, limits.maxUnidentifiedPerAddress)) {
      this.#event(address, label, "refused", "refused: too many unanswered connections", true);
      await this.#refuse(conn, RelayStatus.busy);
      return;
    }
    // The header deadline covers the header, a client's identifier, a data connection's pairing
    // and a control connection's proof; `identified` ends it and gives back the slot.
    let inHeader = true;
    const deadline = new Watchdog(() => closeQuietly(conn));
    deadline.arm(limits.headerTimeoutMs, "header deadline");
    const identified = () => {
      if (!inHeader) return;
      inHeader = false;
      deadline.disarm();
      this.#unidentified.give(address);
    };
    try {
      const header = decodeHeader(await readExact(conn, 6));
      if (header.kind === "garbage") {
        this.#event(address, label, "garbage", "closed: not a relay request", true);
        return;
      }
      if (header.kind === "other-version") {
        this.#event(address, label, "garbage", `refused: version ${header.version}`, true);
        await this.#refuse(conn, RelayStatus.badVersion);
        return;
      }
      switch (header.role) {
        case RelayRole.client: {
          const identifier = decodeIdentifier(await readExact(conn, IDENTIFIER_BYTES));
          identified();
          if (identifier === undefined) {
            this.#event(address, label, "garbage", "closed: malformed identifier", true);
            return;
          }
          await this.#client(conn, remote, label, identifier);
          return;
        }
        case RelayRole.data: {
          const pairing = await readExact(conn, PAIRING_BYTES);
          await this.#data(conn, label, pairing, identified);
          return;
        }
        case RelayRole.control:
          await this.#control(conn, address, label, identified);
          return;
      }
    } finally {
      identified();
    }
  }

  async #client(
    conn: Deno.TcpConn,
    remote: Deno.NetAddr,
    label: string,
    identifier: string,
  ): Promise<void> {
    const address = remote.hostname;
    // The limits are checked before the identifier is looked up, so a refusal for being busy
    // says nothing about which identifiers are registered.
    if (!this.#clients.take(address, this.#limits.maxClientsPerAddress)) {
      this.#event(address, label, "refused", "refused: too many clients from this address", true);
      await this.#refuse(conn, RelayStatus.busy);
      return;
    }
    try {
      const control = this.#owners.get(identifier);
      if (control === undefined) {
        this.#event(address, label, "not found", `asked for ${identifier}: not registered`, true);
        await this.#refuse(conn, RelayStatus.notFound);
        return;
      }
      if (control.pending.size >= this.#limits.maxPendingPerServer) {
        this.#event(address, label, "refused", `asked for ${identifier}: its server is busy`, true);
        await this.#refuse(conn, RelayStatus.busy);
        return;
      }
      const pairing = crypto.getRandomValues(new Uint8Array(PAIRING_BYTES));
      const key = toHex(pairing);
      const waiting = Promise.withResolvers<{ conn: Deno.TcpConn; done: () => void } | undefined>();
      let settled = false;
      const pending: Pending = {
        client: { hostname: remote.hostname, port: remote.port },
        control,
        settle(data) {
          if (settled) return false;
          settled = true;
          waiting.resolve(data);
          return true;
        },
      };
      this.#pending.set(key, pending);
      control.pending.add(pending);
      const timer = setTimeout(() => pending.settle(undefined), this.#limits.pairTimeoutMs);
      this.#send(control, encodePair(pairing));
      let data;
      try {
        data = await waiting.promise;
      } finally {
        clearTimeout(timer);
        this.#pending.delete(key);
        control.pending.delete(pending);
      }
      if (data === undefined) {
        // The server left (not found), or did not answer in time (busy: it may next time).
        const status = control.closed ? RelayStatus.notFound : RelayStatus.busy;
        this.#event(address, label, "refused", `asked for ${identifier}: no data connection`, true);
        await this.#refuse(conn, status);
        return;
      }
      try {
        await writeAll(conn, encodeAnswer(RelayStatus.ok));
        this.#log(`${now()} ${label} paired with ${identifier} (server ${control.label})`);
        this.#pairs++;
        this.#rate.hold(address);
        const result = await splice(conn, data.conn, {
          idleMs: this.#limits.idleTimeoutMs,
          pace: this.#rate.limited ? (bytes) => this.#rate.take(address, bytes) : undefined,
          signal: this.#stopping.signal,
        });
        this.#log(
          `${now()} ${label} pair with ${identifier} ended (${result.reason}): ${result.forward} bytes to the server, ${result.backward} back`,
        );
      } finally {
        this.#rate.release(address);
        this.#pairs--;
        data.done();
      }
    } finally {
      this.#clients.give(address);
    }
  }

  async #data(
    conn: Deno.TcpConn,
    label: string,
    pairing: Uint8Array,
    identified: () => void,
  ): Promise<void> {
    const key = toHex(pairing);
    const pending = this.#pending.get(key);
    if (pending === undefined) {
      identified();
      this.#log(`${now()} ${label} data connection for an unknown or expired pairing`);
      await this.#refuse(conn, RelayStatus.notFound);
      return;
    }
    this.#pending.delete(key);
    const answer = new Uint8Array(6 + 18);
    answer.set(encodeAnswer(RelayStatus.ok));
    answer.set(encodePeer(pending.client.hostname, pending.client.port), 6);
    try {
      await writeAll(conn, answer); // still under the header deadline
    } catch (error) {
      pending.settle(undefined);
      throw error;
    }
    identified();
    const finished = Promise.withResolvers<void>();
    // The client's deadline may have passed while the answer was written: then it is gone.
    if (!pending.settle({ conn, done: finished.resolve })) return;
    await finished.promise;
  }

  async #control(
    conn: Deno.TcpConn,
    address: string,
    label: string,
    identified: () => void,
  ): Promise<void> {
    if (!this.#controlCounts.take(address, this.#limits.maxControlsPerAddress)) {
      this.#event(address, label, "refused", "refused: too many servers from this address", true);
      await this.#refuse(conn, RelayStatus.busy);
      return;
    }
    let control: Control | undefined;
    try {
      const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
      const challenge = new Uint8Array(6 + NONCE_BYTES);
      challenge.set(encodeAnswer(RelayStatus.ok));
      challenge.set(nonce, 6);
      await writeAll(conn, challenge);
      const reply = await readExact(conn, SERVER_ID_BYTES + PROOF_BYTES);
      const serverId = reply.subarray(0, SERVER_ID_BYTES);
      if (!proofMatches(this.#token, nonce, serverId, reply.subarray(SERVER_ID_BYTES))) {
        this.#event(address, label, "wrong token", "registration refused: wrong token", true);
        await this.#refuse(conn, RelayStatus.unauthorized);
        return;
      }
      identified();
      await writeAll(conn, encodeAnswer(RelayStatus.ok));
      control = {
        conn,
        address,
        label,
        // The same server reconnecting (the same server id, proved with the token, from the
        // same address) replaces its older connection at once. From another address the older
        // one keeps its identifiers until it falls silent: the server id travels in the clear,
        // so another token holder who saw it must not be able to push a server out with it.
        serverId: `${toHex(serverId)} ${address}`,
        identifiers: new Set(),
        pending: new Set(),
        writes: Promise.resolve(),
        queued: 0,
        closed: false,
      };
      const older = this.#byServerId.get(control.serverId);
      if (older) this.#closeControl(older, "replaced by a newer connection of the same server");
      this.#byServerId.set(control.serverId, control);
      this.#log(`${now()} ${label} server connected (token proved)`);
      await this.#controlLoop(control);
    } finally {
      this.#controlCounts.give(address);
      if (control) this.#closeControl(control, undefined);
    }
  }

  async #controlLoop(control: Control): Promise<void> {
    const silence = new Watchdog((reason) => this.#closeControl(control, reason));
    silence.arm(this.#limits.controlTimeoutMs, "silent for too long");
    const pinger = setInterval(() => this.#send(control, PING), this.#limits.controlPingMs);
    try {
      while (!control.closed) {
        const type = (await readExact(control.conn, 1))[0]!;
        silence.touch();
        if (type === ServerMessageType.ping) continue;
        if (type !== ServerMessageType.set) {
          this.#closeControl(control, `unknown message type ${type}`);
          return;
        }
        const count = (await readExact(control.conn, 1))[0]!;
        if (count > MAX_IDENTIFIERS_PER_CONTROL) {
          this.#closeControl(control, `asked for ${count} identifiers`);
          return;
        }
        const body = await readExact(control.conn, IDENTIFIER_BYTES * count);
        const identifiers: string[] = [];
        for (let index = 0; index < count; index++) {
          const start = IDENTIFIER_BYTES * index;
          const identifier = decodeIdentifier(body.subarray(start, start + IDENTIFIER_BYTES));
          if (identifier === undefined) {
            this.#closeControl(control, "malformed identifier");
            return;
          }
          identifiers.push(identifier);
        }
        this.#send(control, encodeRegistered(this.#register(control, identifiers)));
      }
    } catch (error) {
      const ended = error instanceof ShortReadError && error.received === 0;
      this.#closeControl(control, ended ? "closed by the server" : firstLine(error));
    } finally {
      silence.disarm();
      clearInterval(pinger);
    }
  }

  /** Makes `identifiers` the whole registration of `control`; returns each one's status. */
  #register(control: Control, identifiers: readonly string[]): RegistrationStatusValue[] {
    const wanted = new Set(identifiers);
    for (const identifier of control.identifiers) {
      if (!wanted.has(identifier)) this.#release(control, identifier);
    }
    return identifiers.map((identifier) => {
      if (control.identifiers.has(identifier)) return RegistrationStatus.registered;
      const owner = this.#owners.get(identifier);
      if (owner !== undefined && owner !== control) {
        this.#log(`${now()} ${control.label} ${identifier} refused: another server holds it`);
        return RegistrationStatus.taken;
      }
      if (
        !this.#identifierCounts.take(control.address, this.#limits.maxIdentifiersPerAddress)
      ) {
        this.#log(`${now()} ${control.label} ${identifier} refused: too many for this address`);
        return RegistrationStatus.limit;
      }
      this.#owners.set(identifier, control);
      control.identifiers.add(identifier);
      this.#log(`${now()} ${control.label} registered ${identifier}`);
      return RegistrationStatus.registered;
    });
  }

  #release(control: Control, identifier: string): void {
    if (!control.identifiers.delete(identifier)) return;
    if (this.#owners.get(identifier) === control) this.#owners.delete(identifier);
    this.#identifierCounts.give(control.address);
    this.#log(`${now()} ${control.label} released ${identifier}`);
  }

  /** Ends a control connection: its identifiers go, its waiting clients are told `not-found`. */
  #closeControl(control: Control, reason: string | undefined): void {
    if (control.closed) return;
    control.closed = true;
    for (const identifier of [...control.identifiers]) this.#release(control, identifier);
    for (const pending of control.pending) pending.settle(undefined);
    if (this.#byServerId.get(control.serverId) === control) {
      this.#byServerId.delete(control.serverId);
    }
    closeQuietly(control.conn);
    this.#log(`${now()} ${control.label} server disconnected${reason ? `: ${reason}` : ""}`);
  }

  /** Queues `bytes` on a control connection; one that stops reading is closed. */
  #send(control: Control, bytes: Uint8Array): void {
    if (control.closed) return;
    if (++control.queued > MAX_QUEUED_CONTROL_WRITES) {
      this.#closeControl(control, "not reading its messages");
      return;
    }
    control.writes = control.writes
      .then(() => writeAll(control.conn, bytes))
      .then(() => void control.queued--)
      .catch((error) => this.#closeControl(control, firstLine(error)));
  }

  #event(address: string, label: string, kind: string, message: string, failure: boolean): void {
    this.#repeatedLog.event(address, kind, `${now()} ${label} ${message}`, failure);
  }
}

/**
 * Starts a relay. Resolves once its port is bound.
 * Permission: `--allow-net=<host:port>`.
 */
export function startRelay(options: RelayOptions): Promise<RelayServer> {
  return RelayServer.start(options);
}

/** The defaults, with the limits in `given` that are defined in their place. */
function relayLimits(given: Partial<RelayLimits> = {}): RelayLimits {
  const defined = Object.entries(given).filter(([, value]) => value !== undefined);
  return { ...DEFAULT_RELAY_LIMITS, ...Object.fromEntries(defined) };
}

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n", 1)[0]!;
}

function now(): string {
  return new Date().toISOString();
}
