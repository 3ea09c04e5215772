/**
 * Helpers for the relay tests: an in-process relay on 127.0.0.1 with its token and log, a ferry
 * server registered through a `RelayListener`, and the relay's three roles driven by hand (a
 * control connection, a data connection, a client), byte by byte as the wire format says.
 *
 * @module
 */
import net from "node:net";
import { writeAll } from "../lib/_fs.ts";
import { readExact } from "../lib/net/_exact.ts";
import { mergeListeners } from "../lib/net/merged_listener.ts";
import {
  listenViaRelay,
  type RelayListener,
  type RelayListenerEvent,
  type RelayListenerOptions,
} from "../lib/net/relay_listener.ts";
import { listenTcp } from "../lib/net/socket.ts";
import { type RelayLimits, type RelayServer, startRelay } from "../lib/relay/relay.ts";
import { registrationProof } from "../lib/relay/token.ts";
import {
  decodeAnswer,
  decodePeer,
  encodeClientRequest,
  encodeHeader,
  encodeSet,
  RelayMessageType,
  RelayRole,
  RelayStatus,
} from "../lib/relay/wire.ts";
import type { ServerOptions } from "../lib/server/server.ts";
import { LogBook, startTestServer, type TestServer } from "./_hostile.ts";

/** An in-process relay for a test. */
export interface TestRelay extends AsyncDisposable {
  relay: RelayServer;
  port: number;
  token: Uint8Array;
  log: LogBook;
}

/** Starts a relay on 127.0.0.1, port 0, with a fresh token; disposing closes it. */
export async function startTestRelay(
  limits: Partial<RelayLimits> = {},
  port = 0,
  token: Uint8Array = crypto.getRandomValues(new Uint8Array(32)),
): Promise<TestRelay> {
  const log = new LogBook();
  const relay = await startRelay({
    token,
    hostname: "127.0.0.1",
    port,
    limits,
    log: log.add,
    repeatedLog: { perWindow: 1_000_000 },
  });
  return {
    relay,
    port: relay.port,
    token,
    log,
    async [Symbol.asyncDispose]() {
      await relay.close();
    },
  };
}

/** A relay listener's events, with a way to wait for one that has not come yet. */
export class ListenerEvents {
  readonly events: RelayListenerEvent[] = [];
  #waiters: { test: (event: RelayListenerEvent) => boolean; resolve(): void }[] = [];

  /** Pass as `onEvent`. */
  readonly add = (event: RelayListenerEvent): void => {
    this.events.push(event);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.test(event)) return true;
      waiter.resolve();
      return false;
    });
  };

  /** Resolves once an event (already come or to come) passes `test`. */
  waitFor(
    test: (event: RelayListenerEvent) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<void> {
    if (this.events.some(test)) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      reject(new Error(`No ${what} within ${timeoutMs} ms: ${JSON.stringify(this.events)}`));
    }, timeoutMs);
    this.#waiters.push({
      test,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
    return promise;
  }

  /** Resolves once `identifier` is registered. */
  registered(identifier: string, timeoutMs?: number): Promise<void> {
    return this.waitFor(
      (event) => event.kind === "registered" && event.registered.includes(identifier),
      `registration of ${identifier}`,
      timeoutMs,
    );
  }
}

/** A test server reached through a relay (and, with `alsoTcp`, directly on 127.0.0.1 too). */
export interface RelayedServer extends TestServer {
  listener: RelayListener;
  events: ListenerEvents;
}

/**
 * Starts a ferry server on `root` whose clients come through the relay on `relayPort`, with
 * `identifiers` registered (waited for unless `wait` is false).
 */
export async function startRelayedServer(
  root: string,
  relay: { port: number; token: Uint8Array },
  options: {
    identifiers?: string[];
    alsoTcp?: boolean;
    wait?: boolean;
    listener?: Partial<RelayListenerOptions>;
    server?: Partial<ServerOptions> & { code?: string };
  } = {},
): Promise<RelayedServer> {
  const identifiers = options.identifiers ?? ["K7QD"];
  const events = new ListenerEvents();
  // The listener's lines go to the server's log book, as `ferry serve` would print them.
  const sink: { log?: LogBook } = {};
  const early: string[] = [];
  const listener = listenViaRelay({
    relay: { hostname: "127.0.0.1", port: relay.port },
    token: relay.token,
    identifiers: () => identifiers,
    onEvent: events.add,
    log: (line) => sink.log ? sink.log.add(line) : early.push(line),
    firstRetryMs: 50,
    maxRetryMs: 200,
    ...options.listener,
  });
  const server = await startTestServer(root, {
    ...options.server,
    listen: (hostname, port) =>
      options.alsoTcp ? mergeListeners([listenTcp(hostname, port), listener]) : listener,
  });
  sink.log = server.log;
  for (const line of early.splice(0)) server.log.add(line);
  if (options.wait ?? true) {
    for (const identifier of identifiers) await events.registered(identifier);
  }
  return Object.assign(server, { listener, events });
}

/** A connection as the helpers use it: a `Deno.Conn`, or a Node socket seen through one. */
export interface Conn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

/** Connects to the relay on 127.0.0.1:`port`. */
export function connectRelay(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port, transport: "tcp" });
}

/**
 * Connects to the relay on 127.0.0.1:`port` from `source`, another loopback address (Deno cannot
 * choose its source address, so this is a Node socket behind the `read`/`write` of a Deno.Conn).
 */
export async function connectRelayFrom(source: string, port: number): Promise<Conn> {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: source });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  socket.on("data", (chunk: Uint8Array) => {
    chunks.push(new Uint8Array(chunk));
    wake?.();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    ended = true;
    wake?.();
  });
  return {
    async read(buffer) {
      while (chunks.length === 0 && !ended) await new Promise<void>((resolve) => wake = resolve);
      const chunk = chunks.shift();
      if (chunk === undefined) return null;
      const count = Math.min(chunk.length, buffer.length);
      buffer.set(chunk.subarray(0, count));
      if (count < chunk.length) chunks.unshift(chunk.subarray(count));
      return count;
    },
    write: (bytes) =>
      new Promise((resolve, reject) =>
        socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length))
      ),
    close: () => socket.destroy(),
  };
}

/** The relay's 6-byte answer's status (`undefined` when the relay closed without answering). */
export async function readStatus(conn: Conn): Promise<number | undefined> {
  try {
    const answer = decodeAnswer(await readExact(conn, 6));
    return answer.kind === "answer" ? answer.status : undefined;
  } catch {
    return undefined;
  }
}

/** A client asking the relay for `identifier`: its connection and the relay's answer. */
export async function askRelay(
  port: number,
  identifier: string,
): Promise<{ conn: Deno.TcpConn; status: number | undefined }> {
  const conn = await connectRelay(port);
  await writeAll(conn, encodeClientRequest(identifier));
  return { conn, status: await readStatus(conn) };
}

/** A sharing server's control connection, driven by hand. */
export interface ManualControl extends AsyncDisposable {
  conn: Conn;
  /** Sends `set` and returns the statuses the relay answers (skipping pings and pairings). */
  register(identifiers: string[]): Promise<number[]>;
  /** The next pairing the relay asks for (skipping pings). */
  nextPairing(): Promise<Uint8Array>;
  /** Settles once the relay has closed the connection (or it failed). */
  closed: Promise<void>;
}

/**
 * Opens a control connection (from `source`, a loopback address, if given) and proves `token`
 * with `serverId` (random unless given). Throws with the relay's status when it refuses.
 */
export async function manualControl(
  port: number,
  token: Uint8Array,
  serverId: Uint8Array = crypto.getRandomValues(new Uint8Array(16)),
  source?: string,
): Promise<ManualControl> {
  const conn: Conn = source ? await connectRelayFrom(source, port) : await connectRelay(port);
  await writeAll(conn, encodeHeader(RelayRole.control));
  const first = await readStatus(conn);
  if (first !== RelayStatus.ok) {
    conn.close();
    throw new Error(`The relay refused the control connection: status ${first}`);
  }
  const nonce = await readExact(conn, 32);
  const reply = new Uint8Array(48);
  reply.set(serverId);
  reply.set(registrationProof(token, nonce, serverId), 16);
  await writeAll(conn, reply);
  const second = await readStatus(conn);
  if (second !== RelayStatus.ok) {
    conn.close();
    throw new Error(`The relay refused the proof: status ${second}`);
  }
  const pairings: Uint8Array[] = [];
  const answers: number[][] = [];
  let waiter: (() => void) | undefined;
  const reading = (async () => {
    while (true) {
      const type = (await readExact(conn, 1))[0];
      if (type === RelayMessageType.pair) pairings.push(await readExact(conn, 16));
      else if (type === RelayMessageType.registered) {
        const count = (await readExact(conn, 1))[0]!;
        answers.push([...await readExact(conn, count)]);
      } else if (type !== RelayMessageType.ping) throw new Error(`unknown type ${type}`);
      waiter?.();
    }
  })().catch(() => waiter?.());
  const next = async <T>(queue: T[], what: string): Promise<T> => {
    const deadline = performance.now() + 10_000;
    while (queue.length === 0) {
      if (performance.now() > deadline) throw new Error(`No ${what} from the relay`);
      await new Promise<void>((resolve) => {
        waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
    return queue.shift()!;
  };
  return {
    conn,
    async register(identifiers) {
      await writeAll(conn, encodeSet(identifiers));
      return await next(answers, "registration answer");
    },
    nextPairing: () => next(pairings, "pairing"),
    closed: reading,
    async [Symbol.asyncDispose]() {
      try {
        conn.close();
      } catch {
        // closed already
      }
      await reading;
    },
  };
}

/** Answers `pairing` with a data connection; returns it and the client's address. */
export async function openData(
  port: number,
  pairing: Uint8Array,
): Promise<
  { conn: Deno.TcpConn; status: number | undefined; peer?: { hostname: string; port: number } }
> {
  const conn = await connectRelay(port);
  await writeAll(conn, encodeHeader(RelayRole.data, pairing));
  const status = await readStatus(conn);
  if (status !== RelayStatus.ok) return { conn, status };
  return { conn, status, peer: decodePeer(await readExact(conn, 18)) };
}

/** Closes a connection that may be closed already. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
