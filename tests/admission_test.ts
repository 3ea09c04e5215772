/**
 * Connection slots as a specification: strangers who never finish a handshake cannot lock out
 * clients who hold the code (issue 12, item 1). The budget itself is tested directly; the server
 * is tested with attackers on other loopback addresses (127.0.0.2, ...: on Linux the whole
 * 127.0.0.0/8 is loopback) while the honest client connects from 127.0.0.1.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { FerryClient } from "../lib/client/client.ts";
import { RefusedError } from "../lib/errors.ts";
import { RefusalStatus } from "../lib/protocol/handshake.ts";
import { Admission, DEFAULT_ADMISSION_OPTIONS, type Handshaking } from "../lib/server/admission.ts";
import { tempDir } from "./_helpers.ts";
import { startTestServer } from "./_hostile.ts";

/** A connection in its handshake that records whether it was closed to make room. */
function connection(address: string): Handshaking & { evicted: string | undefined } {
  const made = {
    address,
    evicted: undefined as string | undefined,
    evict(reason: string) {
      made.evicted = reason;
    },
  };
  return made;
}

Deno.test("admission: one address holds at most its share of handshakes; the next is refused, and admitted again once one ends", () => {
  const admission = new Admission({ maxHandshakesPerAddress: 2, maxHandshakes: 10 });
  const [first, second, third] = [
    connection("10.0.0.9"),
    connection("10.0.0.9"),
    connection("10.0.0.9"),
  ];
  assert.equal(admission.startHandshake(first), undefined);
  assert.equal(admission.startHandshake(second), undefined);
  assert.match(admission.startHandshake(third)!, /too many connections from your address/);
  assert.equal(
    admission.startHandshake(connection("10.0.0.10")),
    undefined,
    "other addresses still get in",
  );
  admission.endHandshake(first);
  admission.endHandshake(first); // twice changes nothing
  assert.equal(admission.startHandshake(third), undefined);
  assert.equal(admission.handshakes, 3);
});

Deno.test("admission: a newcomer from an address at its share closes that address's oldest stale handshake, never a fresh one", () => {
  let now = 0;
  const admission = new Admission({ maxHandshakesPerAddress: 2, staleMs: 1000 }, () => now);
  const [old, older] = [connection("10.3.0.1"), connection("10.3.0.1")];
  admission.startHandshake(old);
  now = 500;
  admission.startHandshake(older);
  assert.match(admission.startHandshake(connection("10.3.0.1"))!, /from your address/); // all fresh
  now = 1200; // the first is stale now, the second not yet
  const newcomer = connection("10.3.0.1");
  assert.equal(admission.startHandshake(newcomer), undefined);
  assert.deepEqual([old.evicted !== undefined, older.evicted, newcomer.evicted], [
    true,
    undefined,
    undefined,
  ]);
  assert.equal(admission.handshakes, 2);
});

Deno.test("admission: when all handshake slots are taken, the oldest handshake of the address holding the most is closed, never a lone newcomer's", () => {
  const admission = new Admission({ maxHandshakesPerAddress: 5, maxHandshakes: 4 });
  const honest = connection("127.0.0.1");
  const attackers = [1, 2, 3].map(() => connection("127.0.0.2"));
  assert.equal(admission.startHandshake(honest), undefined); // the honest client is the oldest
  for (const attacker of attackers) assert.equal(admission.startHandshake(attacker), undefined);
  const newcomer = connection("127.0.0.3");
  assert.equal(admission.startHandshake(newcomer), undefined);
  assert.match(attackers[0]!.evicted!, /make room/);
  assert.equal(honest.evicted, undefined);
  assert.equal(attackers[1]!.evicted, undefined);
  assert.equal(admission.handshakes, 4);
});

Deno.test("admission: a burst of fresh handshakes from one address is not closed while stale ones are there", () => {
  let now = 0;
  const admission = new Admission({ maxHandshakes: 4, staleMs: 1000 }, () => now);
  const stalled = [connection("127.0.0.2"), connection("127.0.0.3")];
  for (const one of stalled) admission.startHandshake(one);
  now = 5000;
  const burst = [1, 2, 3].map(() => connection("127.0.0.1")); // a script's parallel downloads
  for (const one of burst) admission.startHandshake(one);
  assert.deepEqual(stalled.map((one) => one.evicted !== undefined), [true, false]);
  assert.deepEqual(burst.map((one) => one.evicted), [undefined, undefined, undefined]);
});

Deno.test("admission: among addresses holding one handshake each, the oldest is closed", () => {
  const admission = new Admission({ maxHandshakes: 3 });
  const held = ["10.1.0.1", "10.1.0.2", "10.1.0.3"].map(connection);
  for (const one of held) admission.startHandshake(one);
  admission.startHandshake(connection("10.1.0.4"));
  assert.deepEqual(held.map((one) => one.evicted !== undefined), [true, false, false]);
});

Deno.test("admission: authenticated sessions have their own cap, apart from handshakes", () => {
  const admission = new Admission({ maxSessions: 2, maxHandshakes: 2 });
  assert.equal(admission.startSession(), undefined);
  assert.equal(admission.startSession(), undefined);
  assert.match(admission.startSession()!, /too many connections/);
  assert.match(admission.startHandshake(connection("10.2.0.1"))!, /too many connections/);
  admission.endSession();
  assert.equal(admission.startHandshake(connection("10.2.0.1")), undefined);
  assert.equal(admission.sessions, 1);
  assert.throws(() => new Admission({ maxHandshakes: 0 }), RangeError);
});

/**
 * Keeps `count` connections from `address` open without a byte of handshake, opening a new one
 * whenever the server closes one, until `stop` is called.
 */
function holdSlots(address: string, port: number, count: number) {
  let stopped = false;
  const sockets = new Set<net.Socket>();
  let opened = 0;
  const open = () => {
    if (stopped) return;
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: address });
    opened++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("data", () => {});
    socket.on("close", () => {
      sockets.delete(socket);
      setTimeout(open, 5); // right back, as an attacker would
    });
  };
  for (let index = 0; index < count; index++) open();
  return {
    get opened() {
      return opened;
    },
    async stop() {
      stopped = true;
      const closed = [...sockets].map((socket) =>
        new Promise<void>((resolve) => {
          socket.once("close", () => resolve());
          socket.destroy();
        })
      );
      await Promise.all(closed);
    },
  };
}

const ATTACK_ADDRESSES = Array.from({ length: 16 }, (_, index) => `127.0.0.${index + 2}`);

Deno.test("hostile client: 16 addresses holding stalled handshakes (and reconnecting) do not lock out a client with the code", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, {
    handshakeTimeoutMs: 10_000, // the default: stalled connections stay until they are pushed out
    penalty: { freeFailures: 1_000_000 }, // the budget alone, without the penalty box's help
    repeatedLog: { perWindow: 1 },
  });
  // 16 addresses x 10 = 160 stalled connections against 64 handshake slots.
  const attackers = ATTACK_ADDRESSES.map((address) => holdSlots(address, server.port, 10));
  try {
    await new Promise((resolve) => setTimeout(resolve, 300)); // every slot taken
    assert.equal(server.server.connections >= 64, true, "the attack fills the handshake slots");
    let admitted = 0;
    for (let attempt = 0; attempt < 30; attempt++) {
      const client = await FerryClient.connect({
        hostname: "127.0.0.1",
        port: server.port,
        secret: server.secret,
      });
      assert.deepEqual(await client.list(""), []);
      await client.close();
      admitted++;
    }
    assert.equal(admitted, 30);
    const reconnects = attackers.reduce((sum, attacker) => sum + attacker.opened, 0);
    assert.ok(reconnects > 160, `the attackers kept reconnecting (${reconnects} connections)`);
  } finally {
    await Promise.all(attackers.map((attacker) => attacker.stop()));
  }
});

Deno.test("hostile client: one address gets 16 connections in their handshake; its 17th is refused as busy at once", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { penalty: { freeFailures: 1_000_000 } });
  const attacker = holdSlots(
    "127.0.0.2",
    server.port,
    DEFAULT_ADMISSION_OPTIONS.maxHandshakesPerAddress,
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    const socket = net.connect({ host: "127.0.0.1", port: server.port, localAddress: "127.0.0.2" });
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("close", () => resolve(Buffer.concat(chunks)));
      socket.on("error", reject);
    });
    assert.ok(performance.now() - started < 2000, "refused at once, not at the deadline");
    assert.equal(reply[5], RefusalStatus.busy, "the hello's status byte says busy");
    assert.match(reply.toString("latin1"), /too many connections from your address/);
  } finally {
    await attacker.stop();
  }
});

Deno.test("hostile client: a client behind the same address as 16 stalled handshakes still gets in", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, { penalty: { freeFailures: 1_000_000 } });
  const attacker = holdSlots(
    "127.0.0.1",
    server.port,
    DEFAULT_ADMISSION_OPTIONS.maxHandshakesPerAddress,
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, DEFAULT_ADMISSION_OPTIONS.staleMs + 200));
    for (let attempt = 0; attempt < 3; attempt++) {
      const client = await FerryClient.connect({
        hostname: "127.0.0.1",
        port: server.port,
        secret: server.secret,
      });
      assert.deepEqual(await client.list(""), []);
      await client.close();
      await new Promise((resolve) => setTimeout(resolve, DEFAULT_ADMISSION_OPTIONS.staleMs));
    }
  } finally {
    await attacker.stop();
  }
});

Deno.test("hostile client: stalled handshakes do not take the places of authenticated sessions, and a full server says busy", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path, {
    maxConnections: 2,
    penalty: { freeFailures: 1_000_000 },
  });
  const attacker = holdSlots("127.0.0.2", server.port, 10);
  const connect = () =>
    FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret: server.secret });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const first = await connect();
    const second = await connect();
    await assert.rejects(
      connect(),
      (error) => error instanceof RefusedError && error.status === RefusalStatus.busy,
    );
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 100)); // the server sees the close
    const third = await connect();
    await third.close();
    await second.close();
  } finally {
    await attacker.stop();
  }
});

Deno.test("admission: a client that has sent its share outlives silent sockets, however long its handshake runs", () => {
  let now = 0;
  const admission = new Admission({ maxHandshakes: 4, staleMs: 1000 }, () => now);
  const slow = connection("127.0.0.1"); // an honest client on a loaded machine
  admission.startHandshake(slow);
  admission.progressed(slow);
  now = 5000; // its handshake is stale; the silent sockets below are fresh
  const silent = [1, 2, 3].map(() => connection("127.0.0.2"));
  for (const one of silent) admission.startHandshake(one);
  for (let newcomer = 0; newcomer < 6; newcomer++) {
    now += 10;
    assert.equal(admission.startHandshake(connection(`127.0.0.${3 + newcomer}`)), undefined);
  }
  assert.equal(slow.evicted, undefined, "the client that sent its share is kept");
  assert.ok(silent.every((one) => one.evicted !== undefined), "the silent ones made room");
  assert.equal(admission.handshakes, 4);
});

Deno.test("admission: with only clients that sent their share, the usual order applies", () => {
  let now = 0;
  const admission = new Admission({ maxHandshakes: 2, staleMs: 1000 }, () => now);
  const [old, fresh] = [connection("10.2.0.1"), connection("10.2.0.2")];
  admission.startHandshake(old);
  admission.progressed(old);
  now = 2000;
  admission.startHandshake(fresh);
  admission.progressed(fresh);
  admission.startHandshake(connection("10.2.0.3"));
  assert.deepEqual([old.evicted !== undefined, fresh.evicted], [true, undefined]);
});
