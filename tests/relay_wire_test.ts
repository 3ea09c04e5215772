/**
 * The relay's and the LAN announcements' bytes, the token file and its proof, and the small
 * pieces under them (identifiers, per-address counts, the byte rate, merged listeners): no
 * network beyond loopback.
 */
import {
  deepStrictEqual,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { join } from "node:path";
import { ConnectionError } from "../lib/errors.ts";
import { relayDial } from "../lib/net/relay_dial.ts";
import {
  decodeDatagram,
  encodeAnnouncement,
  encodeQuery,
  MAX_DATAGRAM_BYTES,
} from "../lib/net/announce.ts";
import { decodeIdentifier, encodeIdentifier, isIdentifier } from "../lib/net/identifier.ts";
import { mergeListeners } from "../lib/net/merged_listener.ts";
import { listenTcp } from "../lib/net/socket.ts";
import { AddressCounts, ByteRate } from "../lib/relay/limits.ts";
import {
  createTokenFile,
  parseToken,
  proofMatches,
  readTokenFile,
  registrationProof,
  tokenFileWarning,
} from "../lib/relay/token.ts";
import {
  decodeAnswer,
  decodeHeader,
  decodePeer,
  encodeAnswer,
  encodeClientRequest,
  encodeHeader,
  encodePeer,
  encodeSet,
  formatIp,
  parseIp,
  RelayRole,
  RelayStatus,
} from "../lib/relay/wire.ts";
import { tempDir } from "./_helpers.ts";

Deno.test("isIdentifier() takes four canonical Crockford base32 symbols and nothing else", () => {
  for (const good of ["K7QD", "0000", "ZZZZ", "A1B2"]) ok(isIdentifier(good), good);
  for (const bad of ["k7qd", "K7Q", "K7QDX", "K7QI", "L000", "O000", "U000", "K7-Q", " K7Q", ""]) {
    ok(!isIdentifier(bad), bad);
  }
  deepStrictEqual([...encodeIdentifier("K7QD")], [0x4b, 0x37, 0x51, 0x44]);
  strictEqual(decodeIdentifier(Uint8Array.of(0x4b, 0x37, 0x51, 0x44)), "K7QD");
  strictEqual(decodeIdentifier(Uint8Array.of(0x6b, 0x37, 0x51, 0x44)), undefined); // lowercase
  strictEqual(decodeIdentifier(Uint8Array.of(0x4b, 0x37, 0x51, 0x00)), undefined);
  throws(() => encodeIdentifier("k7qd"), TypeError);
});

Deno.test("relay headers and answers: one 6-byte shape, garbage and other versions told apart", () => {
  deepStrictEqual(
    [...encodeClientRequest("K7QD")],
    [0x46, 0x52, 0x4c, 0x59, 1, RelayRole.client, 0x4b, 0x37, 0x51, 0x44],
  );
  deepStrictEqual(decodeHeader(encodeHeader(RelayRole.control)), {
    kind: "request",
    role: RelayRole.control,
  });
  deepStrictEqual(decodeHeader(new TextEncoder().encode("GET / ")), { kind: "garbage" });
  deepStrictEqual(decodeHeader(Uint8Array.of(0x46, 0x52, 0x4c, 0x59, 1, 9)), { kind: "garbage" });
  deepStrictEqual(decodeHeader(Uint8Array.of(0x46, 0x52, 0x4c, 0x59, 2, 1)), {
    kind: "other-version",
    version: 2,
  });
  // Every answer, whatever it says, has the same length and the same first five bytes.
  const answers = Object.values(RelayStatus).map((status) => encodeAnswer(status));
  for (const answer of answers) {
    strictEqual(answer.length, 6);
    deepStrictEqual([...answer.subarray(0, 5)], [0x46, 0x52, 0x4c, 0x59, 1]);
  }
  deepStrictEqual(decodeAnswer(encodeAnswer(RelayStatus.notFound)), {
    kind: "answer",
    status: RelayStatus.notFound,
  });
  deepStrictEqual(decodeAnswer(new TextEncoder().encode("FRY1\x01\x00")), { kind: "garbage" });
});

Deno.test("a set of identifiers is bounded before it is sent", () => {
  const sixteen = Array.from(
    { length: 16 },
    (_, index) => `AA${index.toString().padStart(2, "0")}`,
  );
  strictEqual(encodeSet(sixteen).length, 2 + 4 * 16);
  throws(() => encodeSet([...sixteen, "ZZZZ"]), RangeError);
  throws(() => encodeSet(["k7qd"]), TypeError);
});

Deno.test("a client's address travels in 18 bytes: IPv4 mapped, IPv6 canonical, port", () => {
  deepStrictEqual(decodePeer(encodePeer("203.0.113.9", 51234)), {
    hostname: "203.0.113.9",
    port: 51234,
  });
  deepStrictEqual(decodePeer(encodePeer("::ffff:198.51.100.7", 1)), {
    hostname: "198.51.100.7",
    port: 1,
  });
  strictEqual(formatIp(parseIp("2001:DB8:0:0:0:0:0:1")!), "2001:db8::1");
  strictEqual(formatIp(parseIp("2001:db8:0:1:0:0:0:1")!), "2001:db8:0:1::1"); // longest run
  strictEqual(formatIp(parseIp("2001:db8:0:1:1:1:1:1")!), "2001:db8:0:1:1:1:1:1"); // one zero stays
  strictEqual(formatIp(parseIp("::1")!), "::1");
  strictEqual(formatIp(parseIp("fe80::1%eth0")!), "fe80::1");
  for (const bad of ["", "1.2.3.256", "1::2::3", "12345::", "host.example", "1:2:3:4:5:6:7:8:9"]) {
    strictEqual(parseIp(bad), undefined, bad);
  }
  // Anything a relay could send decodes to some address: there is nothing to fail on.
  const random = crypto.getRandomValues(new Uint8Array(18));
  ok(typeof decodePeer(random).hostname === "string");
});

Deno.test("LAN datagrams: announcements and queries decode; any flaw discards the whole datagram", () => {
  const announcement = encodeAnnouncement(7878, ["K7QD", "AB12"]);
  deepStrictEqual(decodeDatagram(announcement), {
    type: "announce",
    port: 7878,
    identifiers: ["K7QD", "AB12"],
  });
  deepStrictEqual(decodeDatagram(encodeQuery("K7QD")), { type: "query", identifier: "K7QD" });
  const flawed = (change: (bytes: Uint8Array) => Uint8Array) =>
    decodeDatagram(change(announcement.slice()));
  strictEqual(flawed((bytes) => (bytes[0] = 0x47, bytes)), undefined); // magic
  strictEqual(flawed((bytes) => (bytes[4] = 2, bytes)), undefined); // version
  strictEqual(flawed((bytes) => (bytes[5] = 9, bytes)), undefined); // type
  strictEqual(flawed((bytes) => (bytes[6] = bytes[7] = 0, bytes)), undefined); // port 0
  strictEqual(flawed((bytes) => (bytes[8] = 3, bytes)), undefined); // count beyond the bytes
  strictEqual(flawed((bytes) => (bytes[8] = 1, bytes)), undefined); // count short of the bytes
  strictEqual(flawed((bytes) => (bytes[9] = 0x6b, bytes)), undefined); // lowercase identifier
  strictEqual(flawed((bytes) => bytes.subarray(0, 9)), undefined);
  const oversized = new Uint8Array(MAX_DATAGRAM_BYTES + 1);
  oversized.set(announcement);
  strictEqual(decodeDatagram(oversized), undefined);
  for (let index = 0; index < 2000; index++) {
    const noise = crypto.getRandomValues(new Uint8Array(1 + (index % 90)));
    const decoded = decodeDatagram(noise);
    ok(decoded === undefined || decoded.type === "announce" || decoded.type === "query");
  }
  throws(() => encodeAnnouncement(0, ["K7QD"]), RangeError);
  throws(() => encodeAnnouncement(7878, []), RangeError);
});

Deno.test("a relay token file: created once with mode 0600, read back, never quoted in errors", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, ".relay_token");
  strictEqual(await createTokenFile(path), true);
  strictEqual(await createTokenFile(path), false); // an existing token is never replaced
  const text = await Deno.readTextFile(path);
  ok(/^[0-9a-f]{64}\n$/.test(text));
  strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
  strictEqual(await tokenFileWarning(path), undefined);
  deepStrictEqual(await readTokenFile(path), parseToken(text));
  await Deno.chmod(path, 0o644);
  ok((await tokenFileWarning(path))?.includes("chmod 600"));
  const secretish = "not-a-token-but-private";
  await Deno.writeTextFile(path, secretish);
  await rejects(readTokenFile(path), (error: Error) => {
    ok(error.message.includes(path) && !error.message.includes(secretish), error.message);
    return true;
  });
  await rejects(readTokenFile(join(dir.path, "missing")), /does not exist/);
  await rejects(createTokenFile(join(dir.path, "no", "such", "folder", "t")), /does not exist/);
});

Deno.test("registrationProof() binds the token, the relay's nonce and the server id", () => {
  const token = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const serverId = crypto.getRandomValues(new Uint8Array(16));
  const proof = registrationProof(token, nonce, serverId);
  strictEqual(proof.length, 32);
  ok(proofMatches(token, nonce, serverId, proof));
  const other = (bytes: Uint8Array) => bytes.map((byte, index) => index === 0 ? byte ^ 1 : byte);
  ok(!proofMatches(other(token), nonce, serverId, proof));
  ok(!proofMatches(token, other(nonce), serverId, proof)); // a recorded proof does not replay
  ok(!proofMatches(token, nonce, other(serverId), proof));
  ok(!proofMatches(token, nonce, serverId, proof.subarray(0, 31)));
  notDeepStrictEqual(registrationProof(token, other(nonce), serverId), proof);
  // The proof is not the token, nor holds it.
  ok(!Buffer.from(proof).includes(Buffer.from(token.subarray(0, 8))));
});

Deno.test("AddressCounts caps each address and forgets an address that holds nothing", () => {
  const counts = new AddressCounts();
  ok(counts.take("a", 2));
  ok(counts.take("a", 2));
  ok(!counts.take("a", 2));
  ok(counts.take("b", 2));
  strictEqual(counts.total, 3);
  counts.give("a");
  counts.give("a");
  counts.give("a"); // never below zero
  strictEqual(counts.of("a"), 0);
  strictEqual(counts.total, 1);
});

Deno.test("ByteRate lets a second's worth through, then asks each address to wait its share", () => {
  let now = 0;
  const rate = new ByteRate(1_000_000, () => now);
  rate.hold("a");
  rate.hold("b");
  strictEqual(rate.take("a", 1_000_000), 0); // the burst
  strictEqual(rate.take("a", 500_000), 500); // half a second over
  strictEqual(rate.take("b", 1_000_000), 0); // another address has its own bucket
  now += 1500; // the debt is paid, and a second's worth more is back
  strictEqual(rate.take("a", 1_000_000), 0);
  rate.release("a");
  rate.release("b");
  strictEqual(new ByteRate(0).take("a", 1e12), 0); // no limit
  throws(() => new ByteRate(-1), RangeError);
});

Deno.test("mergeListeners() accepts from each listener and rejects once all are closed", async () => {
  const first = listenTcp("127.0.0.1", 0);
  const second = listenTcp("127.0.0.1", 0);
  const merged = mergeListeners([first, second]);
  strictEqual(merged.addr.port, first.addr.port);
  const ports = [second.addr.port, first.addr.port];
  const clients = await Promise.all(
    ports.map((port) => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  const accepted = [await merged.accept(), await merged.accept()];
  deepStrictEqual(
    accepted.map(({ socket }) => (socket as Deno.TcpConn).localAddr.port).sort(),
    [...ports].sort(),
  );
  merged.close();
  await rejects(merged.accept(), Deno.errors.BadResource);
  for (const conn of [...clients, ...accepted.map(({ socket }) => socket)]) conn.close();
});

Deno.test("`relayDial()` against a peer that hangs up before answering says so in words, not byte counts", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closing = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(64)); // the client's request, then hang up without an answer
    conn.close();
  })();
  try {
    const dial = relayDial("K7QD");
    await rejects(
      dial({ hostname: "127.0.0.1", port: listener.addr.port }, new AbortController().signal),
      (error: unknown) => {
        ok(error instanceof ConnectionError, String(error));
        ok(/closed the connection before answering/.test(error.message), error.message);
        ok(!/bytes/.test(error.message), error.message);
        return true;
      },
    );
  } finally {
    await closing;
    listener.close();
  }
});
