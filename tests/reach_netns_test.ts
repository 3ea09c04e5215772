/**
 * Reach on real networks (Linux network namespaces, veth pairs, a bridge, iptables NAT): a
 * server and a client behind two different NATs meet through `ferry relay` on the public
 * network between them, and servers on one LAN are found by their identifier alone.
 *
 * These need root, `ip` and `iptables`; where namespaces cannot be made the tests are ignored
 * and the reason is printed once (see tests/_netns.ts).
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { DENO, FERRY_V8_FLAGS, MAIN, makeFile, sha256File, tempDir } from "./_helpers.ts";
import { type Lab, lanLab, natLab, NETNS } from "./_netns.ts";

const PEER = new URL("./_reach_peer.ts", import.meta.url).pathname;
const ignore = !NETNS.available;
const MiB = 1024 * 1024;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A secret written like a code's: 16 Crockford symbols, its text and its bytes in hex. */
function testSecret(): { text: string; grouped: string; hex: string } {
  const random = crypto.getRandomValues(new Uint8Array(16));
  const text = [...random].map((byte) => CROCKFORD[byte % 32]).join("");
  const hex = [...new TextEncoder().encode(text)]
    .map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return { text, grouped: text.match(/..../g)!.join("-"), hex };
}

/** Runs the peer program's `role` in namespace `ns`. */
function peer(lab: Lab, ns: string, role: string, args: string[], label = role) {
  return lab.spawn(ns, DENO, ["run", "--no-prompt", "-A", PEER, role, ...args], label);
}

/** Starts `ferry relay` (the real command, scoped permissions) in namespace `ns`. */
async function relay(lab: Lab, ns: string, tokenDir: string, extra: string[] = []) {
  const process = lab.spawn(ns, DENO, [
    "run",
    "--no-prompt",
    ...FERRY_V8_FLAGS,
    "--allow-net=0.0.0.0:7879",
    `--allow-read=${tokenDir}`,
    `--allow-write=${tokenDir}`,
    MAIN,
    "relay",
    "--token-file",
    join(tokenDir, "relay_token"),
    ...extra,
  ], "relay");
  await process.stderrMatches(/Relay listening on 0\.0\.0\.0:7879 /);
  return process;
}

/** Every byte of every file in `dir`, concatenated. */
async function allBytes(dir: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const entry of Deno.readDir(dir)) {
    parts.push(await Deno.readFile(join(dir, entry.name)));
  }
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

/** Whether `needle` occurs in `haystack`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.length)
    .includes(Buffer.from(needle.buffer, needle.byteOffset, needle.length));
}

Deno.test({
  name:
    "across two NATs: the client cannot reach the server, yet lists, downloads and resumes through ferry relay, and a tap sees no code and no content",
  ignore,
  async fn(t) {
    await using lab = await natLab();
    await using files = await tempDir();
    const served = join(files.path, "served");
    const out = join(files.path, "out");
    const tap = join(files.path, "tap");
    const tokens = join(files.path, "tokens");
    for (const dir of [served, out, tap, tokens]) await Deno.mkdir(dir);
    await makeFile(join(served, "private-report.bin"), 3 * MiB + 11, 21);
    await makeFile(join(served, "big.bin"), 48 * MiB, 22);
    const secret = testSecret();
    const identifier = "K7QD";

    let relayProcess = await relay(lab, "public", tokens);
    // The server reaches the relay through a recording TCP proxy on the public network.
    const tapProcess = peer(lab, "public", "tap", [
      "--listen",
      "100.64.1.1:7880",
      "--target",
      "127.0.0.1:7879",
      "--out",
      tap,
    ]);
    await tapProcess.event("listening");
    const server = peer(lab, "server", "serve", [
      "--root",
      served,
      "--secret",
      secret.hex,
      "--identifier",
      identifier,
      "--relay",
      "100.64.1.1:7880",
      "--token-file",
      join(tokens, "relay_token"),
    ], "server");
    await server.event("registered");
    const client = (args: string[], secretHex = secret.hex) =>
      peer(lab, "client", "client", [
        "--secret",
        secretHex,
        "--identifier",
        identifier,
        "--relay",
        "100.64.2.1:7879",
        "--lan-ms",
        "300",
        ...args,
      ], "client");

    await t.step("the client cannot reach the server, nor its NAT, directly", async () => {
      const targets = ["10.1.0.2:7878", "100.64.1.2:7878"];
      const dials = targets.map((target) =>
        peer(lab, "client", "dial", [target, "--timeout", "1000"])
      );
      for (const [index, dial] of dials.entries()) {
        strictEqual((await dial.event("dial")).ok, false, targets[index]);
      }
    });

    await t.step(
      "ls and get through the relay; the server sees the client's NAT address",
      async () => {
        const listing = client(["ls"]);
        strictEqual((await listing.event("reached")).kind, "relay");
        const names = (await listing.event("listed")).names as string[];
        ok(names.includes("private-report.bin") && names.includes("big.bin"), names.join());
        strictEqual(await listing.exit(), 0);
        const getting = client(["get", "private-report.bin", out]);
        strictEqual((await getting.event("got")).size, 3 * MiB + 11);
        strictEqual(await getting.exit(), 0);
        strictEqual(
          await sha256File(join(out, "private-report.bin")),
          await sha256File(join(served, "private-report.bin")),
        );
        // The relay saw the client come from its NAT's outer address, and told the server.
        ok(/100\.64\.2\.2:\d+ via relay authenticated/.test(server.stderr), server.stderr);
      },
    );

    await t.step("a wrong code fails through the relay as it fails directly", async () => {
      const wrong = client(["ls"], testSecret().hex);
      const error = await wrong.event("error");
      strictEqual(error.name, "AuthenticationError", JSON.stringify(error));
      strictEqual(await wrong.exit(), 1);
    });

    await t.step("the tap between relay and server saw ciphertext only", async () => {
      const recorded = await allBytes(tap);
      ok(recorded.length > 3 * MiB, `the tap recorded ${recorded.length} bytes`);
      const encoder = new TextEncoder();
      for (const form of [secret.text, secret.grouped, secret.hex, secret.text.toLowerCase()]) {
        ok(!contains(recorded, encoder.encode(form)), "the code crossed the tap");
      }
      ok(!contains(recorded, encoder.encode("private-report")), "a file name crossed the tap");
      const content = await Deno.readFile(join(served, "private-report.bin"));
      for (const offset of [0, 4096, MiB, 3 * MiB]) {
        ok(!contains(recorded, content.subarray(offset, offset + 32)), `content at ${offset}`);
      }
    });

    await t.step(
      "killing the relay cuts a download; run again, it resumes through the new relay",
      async () => {
        // A relay that moves 8 MiB/s per client address, so the download is still running when it dies.
        relayProcess.kill("SIGKILL");
        await relayProcess.exit();
        relayProcess = await relay(lab, "public", tokens, ["--rate-per-address", "8M"]);
        const registrations = () =>
          server.events.filter((event) => event.event === "registered").length;
        const before = registrations();
        await waitFor(
          () => registrations() > before,
          "the server registering again",
          server.stderr,
        );
        const cut = client(["get", "big.bin", out]);
        await waitFor(
          () =>
            cut.events.some((event) => event.event === "progress" && Number(event.bytes) > 4 * MiB),
          "the download under way",
          cut.stdout,
        );
        relayProcess.kill("SIGKILL");
        strictEqual(await cut.exit(), 1);
        ok(cut.events.some((event) => event.event === "error"), cut.stdout);
        relayProcess = await relay(lab, "public", tokens);
        const again = registrations();
        await waitFor(() => registrations() > again, "the server registering again", server.stderr);
        const resumed = client(["get", "big.bin", out]);
        const got = await resumed.event("got", 60_000);
        ok(Number(got.resumedFrom) > 4 * MiB, JSON.stringify(got));
        strictEqual(
          await sha256File(join(out, "big.bin")),
          await sha256File(join(served, "big.bin")),
        );
      },
    );
  },
});

/** Waits until `condition()` holds, checking every 20 ms (20 s at most). */
async function waitFor(condition: () => boolean, what: string, context: string): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`No ${what}:\n${context}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test({
  name:
    "on one LAN: each client finds its own server among two by identifier; a fake announcer costs one attempt; malformed datagrams are ignored",
  ignore,
  async fn(t) {
    await using lab = await lanLab(6);
    await using files = await tempDir();
    const rootA = join(files.path, "a");
    const rootB = join(files.path, "b");
    const rootFake = join(files.path, "fake");
    for (const dir of [rootA, rootB, rootFake]) await Deno.mkdir(dir);
    await Deno.writeTextFile(join(rootA, "from-a.txt"), "a");
    await Deno.writeTextFile(join(rootB, "from-b.txt"), "b");
    const secretA = testSecret();
    const secretB = testSecret();
    const serve = (host: string, root: string, identifier: string, hex: string) =>
      peer(lab, host, "serve", [
        "--root",
        root,
        "--secret",
        hex,
        "--identifier",
        identifier,
        "--announce",
      ], `server ${identifier}`);
    const serverA = serve("h1", rootA, "K7QD", secretA.hex);
    const serverB = serve("h2", rootB, "ZX12", secretB.hex);
    // h3 announces K7QD for an impostor: a ferry server holding a code of its own.
    const fake = peer(lab, "h3", "fake-announce", [
      "--identifier",
      "K7QD",
      "--root",
      rootFake,
      "--port",
      "7878",
    ], "fake K7QD");
    const noise = peer(lab, "h5", "noise", []);
    await Promise.all([serverA, serverB, fake, noise].map((process) => process.event("listening")));
    const client = (identifier: string, hex: string) =>
      peer(lab, "h4", "client", ["--identifier", identifier, "--secret", hex, "ls"], "client");

    await t.step("the finder hears both announcers of K7QD, never the other server", async () => {
      const finder = peer(lab, "h4", "find", ["--identifier", "K7QD", "--timeout", "1000"]);
      await finder.event("done");
      const heard = finder.events.filter((event) => event.event === "candidate")
        .map((event) => `${event.hostname}:${event.port}`).sort();
      ok(heard.includes("10.9.0.1:7878") && heard.includes("10.9.0.3:7878"), heard.join());
      ok(!heard.some((where) => where.startsWith("10.9.0.2")), heard.join());
      ok(!heard.some((where) => where.startsWith("10.9.0.5")), heard.join()); // the noise
    });

    await t.step(
      "each client reaches its own server, past the fake if it answers first",
      async () => {
        const [a, b] = [client("K7QD", secretA.hex), client("ZX12", secretB.hex)];
        const reachedA = await a.event("reached");
        strictEqual(reachedA.hostname, "10.9.0.1");
        strictEqual(reachedA.kind, "lan");
        ok(((await a.event("listed")).names as string[]).includes("from-a.txt"));
        strictEqual((await b.event("reached")).hostname, "10.9.0.2");
        ok(((await b.event("listed")).names as string[]).includes("from-b.txt"));
        const attempts = a.events.filter((event) => event.event === "attempt").length;
        ok(attempts <= 2, a.stdout);
        await Promise.all([a.exit(), b.exit()]);
      },
    );

    await t.step(
      "a client whose identifier only the fake announces fails after one attempt",
      async () => {
        const before = fake.stderr.split("\n").filter((line) => /failed/.test(line)).length;
        const fooled = peer(lab, "h6", "client", [
          "--identifier",
          "K7QD",
          "--secret",
          testSecret().hex,
          "--lan-ms",
          "1500",
          "ls",
        ]);
        strictEqual(await fooled.exit(), 1);
        strictEqual((await fooled.event("error")).name, "AuthenticationError", fooled.stdout);
        // The impostor was offered one handshake by that client (and the real server one too): a
        // wrong guess each, at one guess per connection.
        await new Promise((resolve) => setTimeout(resolve, 200));
        const after = fake.stderr.split("\n").filter((line) => /failed/.test(line)).length;
        strictEqual(after - before, 1, fake.stderr);
      },
    );
  },
});
