/**
 * Reach on real networks (Linux network namespaces, veth pairs, a bridge, iptables NAT), with the
 * real `ferry` command in each namespace (`ip netns exec NS deno run ... main.ts ...`), given the
 * permissions `deno task` would give it (`planTaskRun`). A server and a client behind two
 * different NATs meet through `ferry relay` on the public network between them; servers on one
 * LAN are found with `@`, by their code alone.
 *
 * These need root, `ip` and `iptables`; where namespaces cannot be made the tests are ignored
 * and the reason is printed once (see tests/_netns.ts).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { codeIdentifier, generateCode } from "../lib/code.ts";
import { planTaskRun } from "../scripts/task.ts";
import { CHECKOUT, runFlags } from "../scripts/_run_flags.ts";
import {
  DENO,
  FERRY_V8_FLAGS,
  MAIN,
  makeCodeFile,
  makeFile,
  runFerry,
  sha256File,
  tempDir,
} from "./_helpers.ts";
import { type Lab, type LabProcess, lanLab, natLab, NETNS } from "./_netns.ts";

const PEER = new URL("./_reach_peer.ts", import.meta.url).pathname;
const ignore = !NETNS.available;
const MiB = 1024 * 1024;

/** Runs the peer program's `role` in namespace `ns` (a tap, a fake announcer, noise...). */
function peer(lab: Lab, ns: string, role: string, args: string[], label = role): LabProcess {
  return lab.spawn(ns, DENO, ["run", "--no-prompt", "-A", PEER, role, ...args], label);
}

/**
 * Runs `ferry ARGS...` in namespace `ns` as `deno task ferry` would: with the permissions
 * `planTaskRun` works out for that command line (every path in it absolute), and nothing else.
 */
function ferry(lab: Lab, ns: string, args: string[], label = args[0]!): LabProcess {
  const plan = planTaskRun(args, {
    here: CHECKOUT,
    checkout: CHECKOUT,
    exists: (path) => {
      try {
        Deno.lstatSync(path);
        return true;
      } catch {
        return false;
      }
    },
  });
  if ("refusal" in plan) throw new Error(plan.refusal);
  return lab.spawn(
    ns,
    DENO,
    ["run", ...runFlags(), ...plan.permissions, MAIN, ...args],
    label,
  );
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

/** Adds the named code `name` beside `codeFile` (`ferry code add`); returns the code printed. */
async function addCode(codeFile: string, name: string): Promise<string> {
  const added = await runFerry(["code", "add", name, "--file", codeFile]);
  if (added.code !== 0) throw new Error(`ferry code add ${name}: ${added.stderr}`);
  return added.stdout.trim();
}

/** Writes `code` to a code file of mode 0600 at `path`; returns `path`. */
async function codeFileWith(path: string, code: string): Promise<string> {
  await Deno.writeTextFile(path, `${code}\n`, { mode: 0o600 });
  return path;
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

/** Exit status, stdout and stderr of a finished process, for assertion messages. */
function show(process: LabProcess): string {
  return `${process.name}\n--- stdout\n${process.stdout}\n--- stderr\n${process.stderr}`;
}

/** Waits until `condition()` holds, checking every 20 ms (20 s at most). */
async function waitFor(condition: () => boolean, what: string, context: string): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`No ${what}:\n${context}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** How many lines of `text` match `pattern`. */
function countLines(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

Deno.test({
  name:
    "across two NATs: ferry ls, get and put @ --relay reach the server through ferry relay, a cut download resumes, a wrong code fails, and a tap sees no code and no content",
  ignore,
  async fn(t) {
    await using lab = await natLab();
    await using files = await tempDir();
    const folder = (name: string) =>
      Deno.mkdir(join(files.path, name)).then(() => join(files.path, name));
    const served = await folder("served");
    const out = await folder("out");
    const tap = await folder("tap");
    const tokens = await folder("tokens");
    const serverKeys = await folder("server-keys");
    const clientKeys = await folder("client-keys");
    const local = await folder("local");
    await makeFile(join(served, "private-report.bin"), 3 * MiB + 11, 21);
    await makeFile(join(served, "big.bin"), 48 * MiB, 22);
    await makeFile(join(local, "from-client.bin"), MiB + 3, 23);
    const serverCode = join(serverKeys, "code");
    const defaultCode = await makeCodeFile(serverCode);
    const code = await addCode(serverCode, "travel");
    const identifier = codeIdentifier(code);
    const clientCode = await codeFileWith(join(clientKeys, "code"), code);

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
    const server = ferry(lab, "server", [
      "serve",
      served,
      "--code-file",
      serverCode,
      "--relay",
      "100.64.1.1:7880",
      "--relay-token-file",
      join(tokens, "relay_token"),
    ], "server");
    const registered = new RegExp(`relay 100\\.64\\.1\\.1:7880: registered ${identifier}$`, "m");
    await server.stderrMatches(registered);
    const client = (args: string[], codeFile = clientCode) =>
      ferry(lab, "client", [
        ...args,
        "--relay",
        "100.64.2.1:7879",
        "--code-file",
        codeFile,
      ], `ferry ${args[0]}`);

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
      "ls @ and get @ through the relay; the server sees the client's NAT address",
      async () => {
        const listing = client(["ls", "@"]);
        strictEqual(await listing.exit(), 0, show(listing));
        ok(/private-report\.bin/.test(listing.stdout) && /big\.bin/.test(listing.stdout));
        ok(
          listing.stderr.includes("ferry: through the relay at 100.64.2.1:7879"),
          show(listing),
        );
        const getting = client(["get", "@", "private-report.bin", "-o", out, "-q"]);
        strictEqual(await getting.exit(), 0, show(getting));
        strictEqual(
          await sha256File(join(out, "private-report.bin")),
          await sha256File(join(served, "private-report.bin")),
        );
        // The relay saw the client come from its NAT's outer address, and told the server.
        ok(
          /100\.64\.2\.2:\d+ via relay code=travel authenticated/.test(server.stderr),
          server.stderr,
        );
      },
    );

    await t.step("put @ through the relay lands with the upload prefix, exact", async () => {
      const putting = client(["put", "@", join(local, "from-client.bin"), "-q"]);
      strictEqual(await putting.exit(), 0, show(putting));
      strictEqual(
        await sha256File(join(served, "uploaded_from-client.bin")),
        await sha256File(join(local, "from-client.bin")),
      );
    });

    await t.step(
      "a wrong code fails through the relay as directly (exit 3); a default code is refused at once (exit 2)",
      async () => {
        const wrongFile = await codeFileWith(
          join(clientKeys, "wrong"),
          `${identifier}-${generateCode()}`,
        );
        const defaultFile = await codeFileWith(join(clientKeys, "default"), defaultCode);
        const [wrong, unnamed] = [
          client(["ls", "@"], wrongFile),
          client(["ls", "@"], defaultFile),
        ];
        strictEqual(await wrong.exit(), 3, show(wrong));
        ok(/^ferry: .*wrong connection code|^ferry: .*code/m.test(wrong.stderr), show(wrong));
        strictEqual(await unnamed.exit(), 2, show(unnamed));
        strictEqual(unnamed.stderr.trimEnd().split("\n").length, 1, show(unnamed));
        ok(/^ferry: A relay needs a named code/.test(unnamed.stderr), show(unnamed));
      },
    );

    await t.step("the tap between relay and server saw ciphertext only", async () => {
      const recorded = await allBytes(tap);
      ok(recorded.length > 4 * MiB, `the tap recorded ${recorded.length} bytes`);
      const encoder = new TextEncoder();
      const secret = code.slice(5).replaceAll("-", "");
      for (const form of [code, secret, secret.toLowerCase(), code.slice(5)]) {
        ok(!contains(recorded, encoder.encode(form)), "the code crossed the tap");
      }
      for (const name of ["private-report", "from-client"]) {
        ok(!contains(recorded, encoder.encode(name)), `the name ${name} crossed the tap`);
      }
      const report = await Deno.readFile(join(served, "private-report.bin"));
      const upload = await Deno.readFile(join(local, "from-client.bin"));
      for (const offset of [0, 4096, MiB, 3 * MiB]) {
        ok(!contains(recorded, report.subarray(offset, offset + 32)), `content at ${offset}`);
        ok(!contains(recorded, upload.subarray(offset / 4, offset / 4 + 32)), "upload content");
      }
    });

    await t.step(
      "killing the relay cuts a download; run again, it resumes through the new relay",
      async () => {
        // A relay that moves 8 MiB/s per client address, so the download is still running when it dies.
        relayProcess.kill("SIGKILL");
        await relayProcess.exit();
        relayProcess = await relay(lab, "public", tokens, ["--rate-per-address", "8M"]);
        const registrations = () => countLines(server.stderr, registered);
        const before = registrations();
        await waitFor(() => registrations() > before, "registering again", server.stderr);
        const cut = client(["get", "@", "big.bin", "-o", out, "--json"]);
        await waitFor(
          () =>
            cut.events.some((event) => event.event === "progress" && Number(event.bytes) > 4 * MiB),
          "the download under way",
          cut.stdout,
        );
        relayProcess.kill("SIGKILL");
        strictEqual(await cut.exit(), 1, show(cut));
        ok(
          /^ferry: The server closed the connection during the transfer: run the same command again to resume$/m
            .test(cut.stderr),
          show(cut),
        );
        relayProcess = await relay(lab, "public", tokens);
        const again = registrations();
        await waitFor(() => registrations() > again, "registering again", server.stderr);
        const resumed = client(["get", "@", "big.bin", "-o", out, "--json"]);
        strictEqual(await resumed.exit(60_000), 0, show(resumed));
        const done = resumed.events.find((event) => event.event === "done")!;
        ok(Number(done.resumedFrom) > 4 * MiB, JSON.stringify(done));
        strictEqual(
          await sha256File(join(out, "big.bin")),
          await sha256File(join(served, "big.bin")),
        );
      },
    );
  },
});

Deno.test({
  name:
    "on one LAN: ferry ls @ finds the server holding its code among several, past a fake announcer; codes added and revoked are announced and withdrawn",
  ignore,
  async fn(t) {
    await using lab = await lanLab(6);
    await using files = await tempDir();
    const folder = (name: string) =>
      Deno.mkdir(join(files.path, name)).then(() => join(files.path, name));
    const rootA = await folder("a");
    const rootB = await folder("b");
    const rootFake = await folder("fake");
    const rootC = await folder("c");
    const keysA = await folder("keys-a");
    const keysB = await folder("keys-b");
    const keysC = await folder("keys-c");
    const clientKeys = await folder("client");
    const tokens = await folder("tokens");
    await Deno.writeTextFile(join(rootA, "from-a.txt"), "a");
    await Deno.writeTextFile(join(rootB, "from-b.txt"), "b");
    const codeFileA = join(keysA, "code");
    const codeFileB = join(keysB, "code");
    await makeCodeFile(codeFileA);
    const defaultB = await makeCodeFile(codeFileB);
    const alpha = await addCode(codeFileA, "alpha");
    const beta = await addCode(codeFileB, "beta");
    // A relay on this LAN too: a client that names it still goes direct when it can.
    const relayProcess = await relay(lab, "h6", tokens);
    const serverA = ferry(lab, "h1", [
      "serve",
      rootA,
      "--code-file",
      codeFileA,
      "--relay",
      "10.9.0.6",
      "--relay-token-file",
      join(tokens, "relay_token"),
    ], "server A");
    const serverB = ferry(lab, "h2", ["serve", rootB, "--code-file", codeFileB], "server B");
    // h3 announces alpha's identifier for an impostor: a ferry server holding a code of its own.
    const fake = peer(lab, "h3", "fake-announce", [
      "--identifier",
      codeIdentifier(alpha),
      "--root",
      rootFake,
      "--port",
      "7878",
    ], "fake");
    const noise = peer(lab, "h5", "noise", ["--identifier", codeIdentifier(alpha)]);
    await Promise.all([fake, noise].map((process) => process.event("listening")));
    for (const server of [serverA, serverB]) {
      await server.stderrMatches(/announced on the local network \(ferry ls @ finds it\)/);
    }
    await serverA.stderrMatches(new RegExp(`registered ${codeIdentifier(alpha)}$`, "m"));
    let codeFiles = 0;
    const client = async (code: string, args: string[] = []) => {
      const codeFile = await codeFileWith(join(clientKeys, `code-${++codeFiles}`), code);
      return ferry(lab, "h4", ["ls", "@", "--code-file", codeFile, ...args], "ferry ls @");
    };
    const failures = (process: LabProcess) =>
      countLines(process.stderr, /authentication failed: wrong code/);

    await t.step(
      "a finder hears both announcers of alpha's identifier, never the others nor the noise",
      async () => {
        const finder = peer(lab, "h4", "find", [
          "--identifier",
          codeIdentifier(alpha),
          "--timeout",
          "1000",
        ]);
        await finder.event("done");
        const heard = finder.events.filter((event) => event.event === "candidate")
          .map((event) => `${event.hostname}:${event.port}`).sort();
        deepStrictEqual(heard, ["10.9.0.1:7878", "10.9.0.3:7878"]);
      },
    );

    await t.step(
      "each named code finds its own server; the fake costs one attempt at most, and no error shows",
      async () => {
        const fakeBefore = failures(fake);
        const [a, b, aRelay] = await Promise.all([
          client(alpha),
          client(beta),
          client(alpha, ["--relay", "10.9.0.6"]),
        ]);
        for (
          const [process, name, host] of [
            [a, "from-a.txt", "10.9.0.1"],
            [b, "from-b.txt", "10.9.0.2"],
            [aRelay, "from-a.txt", "10.9.0.1"],
          ] as const
        ) {
          strictEqual(await process.exit(), 0, show(process));
          ok(process.stdout.includes(name), show(process));
          // One line on stderr, where it was found: not the fake's failed handshake.
          strictEqual(
            process.stderr,
            `ferry: found on the local network at ${host}:7878\n`,
            show(process),
          );
        }
        ok(failures(fake) - fakeBefore <= 2, fake.stderr); // at most one per alpha client
        ok(!relayProcess.stderr.includes("paired"), "the relay was used on the LAN");
        // The connect shell finds its server the same way (a script of no commands here).
        const shellCode = await codeFileWith(join(clientKeys, "shell"), beta);
        const shell = ferry(lab, "h4", ["connect", "@", "--code-file", shellCode], "connect @");
        strictEqual(await shell.exit(), 0, show(shell));
        await serverB.stderrMatches(/10\.9\.0\.4:\d+ code=beta authenticated/);
      },
    );

    await t.step(
      "default codes: every server announces 0000, and the client tries each until its own answers",
      async () => {
        const b = await client(defaultB);
        strictEqual(await b.exit(), 0, show(b));
        ok(b.stdout.includes("from-b.txt"), show(b));
        strictEqual(b.stderr, "ferry: found on the local network at 10.9.0.2:7878\n", show(b));
      },
    );

    await t.step(
      "a code only others announce fails as a wrong code (exit 3), one attempt each; an unknown one in one line (exit 1)",
      async () => {
        const fakeBefore = failures(fake);
        const aBefore = failures(serverA);
        const [wrong, unknown] = await Promise.all([
          client(`${codeIdentifier(alpha)}-${generateCode()}`),
          client(`ZZZZ-${generateCode()}`),
        ]);
        strictEqual(await wrong.exit(), 3, show(wrong));
        strictEqual(wrong.stderr.trimEnd().split("\n").length, 1, show(wrong));
        strictEqual(await unknown.exit(), 1, show(unknown));
        strictEqual(unknown.stderr.trimEnd().split("\n").length, 1, show(unknown));
        ok(
          /^ferry: No server announced this code \(identifier ZZZZ\) on the local network within 2 s: is its ferry serve running, with announcements on, on this network\? Otherwise give its address, or a relay with --relay HOST$/
            .test(unknown.stderr.trimEnd()),
          show(unknown),
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        strictEqual(failures(fake) - fakeBefore, 1, fake.stderr);
        strictEqual(failures(serverA) - aBefore, 1, serverA.stderr);
      },
    );

    await t.step(
      "a code added while serving is announced (and registered), and withdrawn once revoked",
      async () => {
        const gamma = await addCode(codeFileA, "gamma");
        const id = codeIdentifier(gamma);
        await serverA.stderrMatches(/code "gamma" added/);
        const found = await client(gamma);
        strictEqual(await found.exit(), 0, show(found));
        ok(found.stdout.includes("from-a.txt"), show(found));
        await serverA.stderrMatches(new RegExp(`registered ${codeIdentifier(alpha)}, ${id}$`, "m"));
        const revoked = await runFerry(["code", "revoke", "gamma", "--file", codeFileA]);
        strictEqual(revoked.code, 0, revoked.stderr);
        await serverA.stderrMatches(/code "gamma" revoked/);
        await relayProcess.stderrMatches(new RegExp(`released ${id}$`, "m"));
        const finder = peer(lab, "h4", "find", ["--identifier", id, "--timeout", "1500"]);
        await finder.event("done");
        strictEqual(finder.events.filter((event) => event.event === "candidate").length, 0);
      },
    );

    await t.step(
      "a server without permission to announce says so once and serves; --no-announce is silent",
      async () => {
        const codeFileC = join(keysC, "code");
        await makeCodeFile(codeFileC);
        const delta = await addCode(codeFileC, "delta");
        const base = [
          "run",
          ...runFlags(),
          `--allow-read=${rootC},${keysC}`,
          `--allow-write=${rootC}`,
          MAIN,
          "serve",
          rootC,
          "--code-file",
          codeFileC,
          "--read-only",
        ];
        const unannounced = lab.spawn("h5", DENO, [
          ...base.slice(0, 2),
          "--allow-net=0.0.0.0:9001",
          ...base.slice(2),
          "--port",
          "9001",
        ], "server without permission");
        const silent = lab.spawn("h5", DENO, [
          ...base.slice(0, 2),
          "--allow-net=0.0.0.0:9002",
          ...base.slice(2),
          "--port",
          "9002",
          "--no-announce",
        ], "server --no-announce");
        for (const server of [unannounced, silent]) await server.stderrMatches(/^Serving /m);
        strictEqual(
          countLines(unannounced.stderr, /^ferry: note: not announcing on the local network/),
          1,
          unannounced.stderr,
        );
        ok(
          unannounced.stderr.includes(
            "that needs --allow-net=0.0.0.0:7878,239.255.78.78:7878 (and --allow-sys=networkInterfaces",
          ),
          unannounced.stderr,
        );
        ok(!silent.stderr.includes("announc"), silent.stderr);
        const finder = peer(lab, "h4", "find", [
          "--identifier",
          codeIdentifier(delta),
          "--timeout",
          "1500",
        ]);
        await finder.event("done");
        strictEqual(finder.events.filter((event) => event.event === "candidate").length, 0);
      },
    );
  },
});
