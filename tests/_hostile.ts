/**
 * Helpers for the hostile-client, fault and load tests: an in-process server whose log can be
 * awaited line by line, raw loopback sockets, a hand-driven authenticated channel whose bytes
 * can be captured or altered, and a tiny honest client that proves the server still answers.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import net from "node:net";
import { concatBytes } from "../lib/deps.ts";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { ConnectionError } from "../lib/errors.ts";
import type { Dial } from "../lib/net/dial.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { clientHandshake, type SecureChannel } from "../lib/protocol/handshake.ts";
import {
  type ClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ServerMessage,
} from "../lib/protocol/messages.ts";
import { type FerryServer, type ServerOptions, startServer } from "../lib/server/server.ts";

/** Length of the server's hello: "FRY1", version, status, 16-byte nonce. */
export const HELLO_BYTES = 22;

/** Lines a server logged, with a way to wait for lines that have not come yet. */
export class LogBook {
  readonly lines: string[] = [];
  #waiters: { done: () => boolean; resolve: () => void }[] = [];

  /** Pass as `ServerOptions.log`. */
  readonly add = (line: string): void => {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.done()) return true;
      waiter.resolve();
      return false;
    });
  };

  /** Resolves with the first line matching `pattern` (already logged or still to come). */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    await this.#until(() => this.count(pattern) > 0, `a line matching ${pattern}`, timeoutMs);
    return this.lines.find((line) => pattern.test(line))!;
  }

  /** Resolves once `count` lines in all have matched `pattern`. */
  waitForCount(pattern: RegExp, count: number, timeoutMs = 10_000): Promise<void> {
    return this.#until(
      () => this.count(pattern) >= count,
      `${count} lines matching ${pattern}`,
      timeoutMs,
    );
  }

  #until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter = {
      done,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    };
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((other) => other !== waiter);
      reject(new Error(`The server did not log ${what} within ${timeoutMs} ms:\n${this.text()}`));
    }, timeoutMs);
    this.#waiters.push(waiter);
    return promise;
  }

  /** Number of lines matching `pattern`. */
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }

  /** Everything logged, one line each. */
  text(): string {
    return this.lines.join("\n");
  }
}

/** An in-process server on 127.0.0.1, port 0, with a fresh code and a {@link LogBook}. */
export interface TestServer extends AsyncDisposable {
  server: FerryServer;
  port: number;
  code: string;
  secret: Uint8Array;
  log: LogBook;
}

/** Starts {@link startServer} on `root` for a test; disposing shuts it down at once. */
export async function startTestServer(
  root: string,
  options: Partial<ServerOptions> & { code?: string } = {},
): Promise<TestServer> {
  const { code = generateCode(), ...serverOptions } = options;
  const secret = codeSecret(code);
  const log = new LogBook();
  const server = await startServer({
    root,
    secret,
    hostname: "127.0.0.1",
    port: 0,
    log: log.add,
    ...serverOptions,
  });
  return {
    server,
    port: server.port,
    code,
    secret,
    log,
    async [Symbol.asyncDispose]() {
      await server.shutdown(0);
    },
  };
}

/** A raw TCP connection to the server under test. */
export function rawConnect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port, transport: "tcp" });
}

/**
 * A raw TCP connection to the server under test from `source`, another loopback address
 * (127.0.0.2, ...: on Linux the whole 127.0.0.0/8 is loopback), as an attacker elsewhere would
 * connect. `closed` resolves with every byte received once the server closes it (or resets it).
 */
export function connectFrom(
  source: string,
  port: number,
): { socket: net.Socket; closed: Promise<Uint8Array> } {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: source });
  const chunks: Uint8Array[] = [];
  socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  socket.on("error", () => {}); // a reset counts as closed
  const closed = new Promise<Uint8Array>((resolve) =>
    socket.on("close", () => resolve(concatBytes(...chunks)))
  );
  return { socket, closed };
}

/**
 * A {@link Dial} that connects from `source`, another loopback address (see {@link connectFrom}),
 * so that `FerryClient.connect` runs as a client elsewhere would.
 */
export function dialFrom(source: string): Dial {
  return ({ hostname, port }) =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: hostname, port, localAddress: source });
      const chunks: Uint8Array[] = [];
      let ended = false;
      let wake = () => {};
      socket.on("data", (chunk: Uint8Array) => {
        chunks.push(new Uint8Array(chunk));
        wake();
      });
      const end = () => {
        ended = true;
        wake();
      };
      socket.on("close", end);
      socket.on("error", (error) => {
        end();
        reject(error);
      });
      socket.on("connect", () =>
        resolve({
          async read(buffer: Uint8Array): Promise<number | null> {
            while (chunks.length === 0 && !ended) {
              await new Promise<void>((resolve) => wake = resolve);
            }
            const chunk = chunks.shift();
            if (chunk === undefined) return null;
            const count = Math.min(chunk.length, buffer.length);
            buffer.set(chunk.subarray(0, count));
            if (count < chunk.length) chunks.unshift(chunk.subarray(count));
            return count;
          },
          write(bytes: Uint8Array): Promise<number> {
            return new Promise((resolve, reject) =>
              socket.write(
                bytes.slice(),
                (error?: Error | null) => error ? reject(error) : resolve(bytes.length),
              )
            );
          },
          close() {
            socket.destroy();
          },
        }));
    });
}

/** Writes every byte (a raw socket may take fewer at once). */
export async function writeRaw(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Reads until the server closes the connection (or resets it) and returns what came, with the
 * time it took. Fails after `timeoutMs` if the server keeps the connection open.
 */
export async function readUntilClosed(
  conn: Deno.Conn,
  timeoutMs = 10_000,
): Promise<{ bytes: Uint8Array; ms: number }> {
  const started = performance.now();
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    while (true) {
      let count: number | null;
      try {
        count = await conn.read(buffer);
      } catch {
        count = null; // reset by the server counts as closed
      }
      if (count === null) break;
      chunks.push(buffer.slice(0, count));
    }
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) throw new Error(`The server kept the connection open for ${timeoutMs} ms`);
  try {
    conn.close();
  } catch {
    // closed already
  }
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return { bytes, ms: performance.now() - started };
}

/**
 * An authenticated connection driven by hand: messages and records go out exactly as the test
 * says, in any order. Every socket write can be seen (`sent`) or altered (`alter`) first.
 */
export interface ManualSession extends AsyncDisposable {
  conn: Deno.TcpConn;
  channel: SecureChannel;
  /** Raw byte blocks written to the socket since the handshake, in order. */
  sent: Uint8Array[];
  /** When set, applied to the next socket write only (then cleared). */
  alter: ((bytes: Uint8Array) => Uint8Array) | undefined;
  /** Seals and sends one control message. */
  send(message: ClientMessage): Promise<void>;
  /** Seals and sends one record of any type. */
  record(type: RecordType, payload: Uint8Array): Promise<void>;
  /** The next server message (data records are returned as `undefined`). */
  next(): Promise<ServerMessage | undefined>;
}

/**
 * Connects and completes the real handshake with `secret` (and the code's `identifier`, for a
 * named code), then reads the welcome.
 */
export async function manualSession(
  port: number,
  secret: Uint8Array,
  identifier?: string,
): Promise<ManualSession> {
  const conn = await rawConnect(port);
  const sent: Uint8Array[] = [];
  let capturing = false;
  const session: ManualSession = {
    conn,
    channel: undefined as unknown as SecureChannel,
    sent,
    alter: undefined,
    send: (message) => session.channel.writer.send(RecordType.control, encodeMessage(message)),
    record: (type, payload) => session.channel.writer.send(type, payload),
    async next() {
      const record = await session.channel.reader.next();
      if (record.type === RecordType.data) return undefined;
      if (record.type === RecordType.end) throw new ConnectionError("The server ended the stream");
      return decodeServerMessage(record.payload);
    },
    [Symbol.asyncDispose]() {
      try {
        conn.close();
      } catch {
        // closed already
      }
      return Promise.resolve();
    },
  };
  const socket = {
    read: (buffer: Uint8Array) => conn.read(buffer),
    write: (bytes: Uint8Array) => {
      let out = bytes;
      if (capturing) {
        if (session.alter) {
          out = session.alter(bytes.slice());
          session.alter = undefined;
        }
        sent.push(out.slice());
      }
      return writeRaw(conn, out).then(() => bytes.length);
    },
  };
  session.channel = await clientHandshake(socket, secret, identifier);
  capturing = true;
  const welcome = await session.next();
  if (welcome?.t === "error") {
    conn.close(); // a full server says `busy` in place of `welcome`
    throw new ConnectionError(`The server refused the session: ${welcome.message}`);
  }
  strictEqual(welcome?.t, "welcome");
  return session;
}

/** Proves the server still serves: an honest client connects and lists the root. */
export async function assertStillServes(port: number, secret: Uint8Array): Promise<void> {
  await using client = await FerryClient.connect({ hostname: "127.0.0.1", port, secret });
  const entries = await client.list("");
  ok(Array.isArray(entries));
}

/** Files in `dir` whose names start with the partial-transfer prefix. */
export async function partialFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".ferry-partial.")) names.push(entry.name);
  }
  return names;
}

export { exists } from "./_helpers.ts";
