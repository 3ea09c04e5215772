/**
 * Reach as a `ferry` user meets it on one machine (loopback only). The client commands' `@` and
 * `--relay` are refused in one line where they cannot work, before anything touches the network.
 * `ferry serve --relay` against a relay on 127.0.0.1 registers its named codes (never the default
 * one), follows codes added and revoked while it runs, never serves the token file, stops at
 * start-up on a wrong token, and keeps serving, quietly, while the relay cannot be reached.
 * Finding a server with `@` sends multicast datagrams, so it runs in network namespaces only:
 * reach_netns_test.ts.
 */
import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { parseServerTarget, ServerSearch } from "../lib/cli/target.ts";
import { codeIdentifier, codeSecret, generateCode } from "../lib/code.ts";
import { UsageError } from "../lib/errors.ts";
import { relayDial } from "../lib/net/relay_dial.ts";
import { makeCodeFile, runFerry, type RunResult, startServe, tempDir, until } from "./_helpers.ts";
import { startTestRelay } from "./_relaying.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** Exit status `code`, and stderr is one line, `ferry: ...` matching `pattern`. */
function assertOneLine(result: RunResult, code: number, pattern: RegExp): void {
  strictEqual(result.code, code, show(result));
  strictEqual(result.stderr.trimEnd().split("\n").length, 1, show(result));
  match(result.stderr, pattern, show(result));
}

/** The relay's token as its token file holds it (mode 0600), at `path`. */
async function writeToken(path: string, token: Uint8Array): Promise<void> {
  const hex = [...token].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(path, `${hex}\n`, { mode: 0o600 });
}

Deno.test("parseServerTarget(): @ finds by the code, --relay goes with @ only, and @ stands alone", () => {
  const found = parseServerTarget("@", undefined);
  ok(found instanceof ServerSearch);
  strictEqual(found.relay, undefined);
  const relayed = parseServerTarget("@", "relay.example.org");
  ok(relayed instanceof ServerSearch);
  deepStrictEqual(relayed.relay, { hostname: "relay.example.org", port: 7879 });
  deepStrictEqual(
    (parseServerTarget("@", "[2001:db8::1]:443") as ServerSearch).relay,
    { hostname: "2001:db8::1", port: 443 },
  );
  deepStrictEqual(parseServerTarget("host.lan:9000", undefined), {
    hostname: "host.lan",
    port: 9000,
  });
  const refused: [string, string | undefined, RegExp][] = [
    ["host.lan", "relay.example.org", /^--relay goes with @ in place of the address/],
    ["@", "", /^Option --relay needs the relay's address/],
    ["@", "relay:", /^Invalid relay address "relay:": the port after ":" is missing$/],
    ["@relay", undefined, /^Invalid server address "@relay": write @ alone/],
    ["@@", undefined, /^Invalid server address "@@": write @ alone/],
  ];
  for (const [host, relay, message] of refused) {
    throws(() => parseServerTarget(host, relay), (error: Error) => {
      ok(error instanceof UsageError, String(error));
      match(error.message, message);
      return true;
    });
  }
});

Deno.test("`@` and --relay on the command line: what cannot work exits 2 in one line, before any network", async () => {
  await using cwd = await tempDir();
  // A server's default code, of 16 symbols: no identifier a relay could tell apart.
  await makeCodeFile(join(cwd.path, ".connection_code"));
  const cases: [string[], RegExp][] = [
    [["ls", "192.0.2.7", "--relay", "relay.example.org"], /^ferry: --relay goes with @ /],
    [["get", "@", "a.txt", "--relay="], /^ferry: Option --relay needs the relay's address/],
    [
      ["get", "@", "a.txt", "--relay", "relay.example.org"],
      /^ferry: A relay needs a named code, and this is a server's default code .*ferry code add NAME/,
    ],
    [["connect", "@x"], /^ferry: Invalid server address "@x": write @ alone/],
  ];
  // No network permission at all: nothing here may need it.
  const permissions = [`--allow-read=${cwd.path}`, `--allow-write=${cwd.path}`];
  const results = await Promise.all(
    cases.map(([args]) => runFerry(args, { cwd: cwd.path, permissions })),
  );
  for (const [index, result] of results.entries()) assertOneLine(result, 2, cases[index]![1]);
  ok(!results.some((result) => /^\s+at |Uncaught/m.test(result.stderr)));
  // A named code and @, but no network permission: said before looking, with the flag to add.
  await Deno.writeTextFile(join(cwd.path, "named"), `K7QD-${generateCode()}\n`, { mode: 0o600 });
  assertOneLine(
    await runFerry(["ls", "@", "--code-file", "named"], { cwd: cwd.path, permissions }),
    1,
    /^ferry: Permission denied: run deno with --allow-net \(to find the server on the local network, whose address is not known in advance\)$/m,
  );
});

Deno.test("every client command's help says how to write @ and --relay", async () => {
  for (const command of ["ls", "get", "put", "connect"]) {
    const help = await runFerry([command, "--help"]);
    strictEqual(help.code, 0, show(help));
    match(help.stdout, new RegExp(`^Usage: ferry ${command} HOST\\[:PORT\\]\\|@ `), command);
    match(help.stdout, /HOST\[:PORT\] or @ +The server's address .*or @ to find the server by/);
    match(
      help.stdout,
      /--relay HOST\[:PORT\] +With @: when the server is not on the local network/,
    );
    match(help.stdout, new RegExp(`ferry ${command} @`), `an example of @ (${command})`);
  }
  const serve = await runFerry(["serve", "--help"]);
  match(serve.stdout, /--no-announce /);
  match(serve.stdout, /--relay HOST\[:PORT\] /);
  match(serve.stdout, /--relay-token-file PATH .*\(default: \.\/\.relay_token\)/);
});

Deno.test("ferry serve --relay registers its named codes only, follows codes added and revoked, and never serves the token file", async () => {
  await using relay = await startTestRelay();
  await using served = await tempDir();
  await using codes = await tempDir();
  await Deno.writeTextFile(join(served.path, "notes.txt"), "notes");
  // The token file in the served folder, where ./.relay_token lands when serving `.`.
  const tokenFile = join(served.path, ".relay_token");
  await writeToken(tokenFile, relay.token);
  const codeFile = join(codes.path, "code");
  await makeCodeFile(codeFile);
  await using server = await startServe(served.path, {
    codeFile,
    args: ["--relay", `127.0.0.1:${relay.port}`, "--relay-token-file", tokenFile],
    permissions: [
      `--allow-net=127.0.0.1:0,127.0.0.1:${relay.port}`,
      `--allow-read=${served.path},${codes.path}`,
      `--allow-write=${served.path},${codes.path}`,
    ],
  });
  await relay.log.waitFor(/server connected \(token proved\)/);
  await until(() => /a relay carries named codes only/.test(server.log()), "the note");
  match(server.log(), /; through the relay at 127\.0\.0\.1:\d+\. Press Ctrl-C/);
  ok(!relay.log.text().includes("registered"), relay.log.text());

  const added = await runFerry(["code", "add", "alice", "--file", codeFile]);
  strictEqual(added.code, 0, show(added));
  const code = added.stdout.trim();
  const identifier = codeIdentifier(code);
  await relay.log.waitFor(new RegExp(`registered ${identifier}$`));
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: relay.port,
    secret: codeSecret(code),
    identifier,
    dial: relayDial(identifier),
  });
  deepStrictEqual((await client.list("")).map((entry) => entry.name), ["notes.txt"]);
  ok(!relay.log.text().includes("registered 0000"), "the default code was registered");

  const revoked = await runFerry(["code", "revoke", "alice", "--file", codeFile]);
  strictEqual(revoked.code, 0, show(revoked));
  await relay.log.waitFor(new RegExp(`released ${identifier}$`));
  ok(!server.log().includes(code.slice(5)), "a secret was logged");
});

Deno.test("ferry serve --relay stops at start-up, in one line, when the relay refuses the token", async () => {
  await using relay = await startTestRelay();
  await using dir = await tempDir();
  const served = join(dir.path, "served");
  await Deno.mkdir(served);
  const tokenFile = join(dir.path, "wrong_token");
  await writeToken(tokenFile, crypto.getRandomValues(new Uint8Array(32)));
  const codeFile = join(dir.path, "code");
  await makeCodeFile(codeFile);
  const result = await runFerry([
    "serve",
    served,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--code-file",
    codeFile,
    "--relay",
    `127.0.0.1:${relay.port}`,
    "--relay-token-file",
    tokenFile,
  ], {
    permissions: [
      `--allow-net=127.0.0.1:0,127.0.0.1:${relay.port}`,
      `--allow-read=${dir.path}`,
      `--allow-write=${served}`,
    ],
  });
  assertOneLine(
    result,
    1,
    new RegExp(
      `^ferry: The relay at 127\\.0\\.0\\.1:${relay.port} refused the token in .*wrong_token: it is not this relay's token file \\(copy it again`,
    ),
  );
  await relay.log.waitFor(/registration refused: wrong token/);
});

Deno.test("ferry serve --relay keeps serving while the relay cannot be reached, with one line, not one per try", async () => {
  // A "relay" that hangs up at once, counting how often the server tries.
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let tries = 0;
  const hangingUp = (async () => {
    for await (const conn of fake) {
      tries++;
      conn.close();
    }
  })();
  try {
    await using dir = await tempDir();
    await using keys = await tempDir();
    const tokenFile = join(keys.path, "token");
    await writeToken(tokenFile, crypto.getRandomValues(new Uint8Array(32)));
    const codeFile = join(keys.path, "code");
    await makeCodeFile(codeFile);
    await using server = await startServe(dir.path, {
      codeFile,
      args: ["--relay", `127.0.0.1:${fake.addr.port}`, "--relay-token-file", tokenFile],
      permissions: [
        `--allow-net=127.0.0.1:0,127.0.0.1:${fake.addr.port}`,
        `--allow-read=${dir.path},${keys.path}`,
        `--allow-write=${dir.path}`,
      ],
    });
    await until(() => tries >= 3, "three tries", 15_000);
    const lines = server.log().split("\n").filter((line) => /cannot register/.test(line));
    strictEqual(lines.length, 1, server.log());
    match(lines[0]!, /cannot register \(.+\); trying again .*quietly until something changes$/);
    // Direct clients are served meanwhile.
    const listed = await runFerry(["ls", server.address, "--code-file", server.codeFile]);
    strictEqual(listed.code, 0, show(listed));
  } finally {
    fake.close();
    await hangingUp.catch(() => {});
  }
});

Deno.test("ferry serve --relay refuses, in one line, what it cannot use before starting", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "code");
  await makeCodeFile(codeFile);
  const serve = (args: string[]) =>
    runFerry(
      ["serve", dir.path, "--host", "127.0.0.1", "--port", "0", "--code-file", codeFile, ...args],
      {
        permissions: [
          "--allow-net=127.0.0.1",
          `--allow-read=${dir.path}`,
          `--allow-write=${dir.path}`,
        ],
      },
    );
  const missing = join(dir.path, "nowhere");
  const cases: [string[], number, RegExp][] = [
    [["--relay-token-file", missing], 2, /^ferry: --relay-token-file goes with --relay /],
    [["--relay", "127.0.0.1:9", "--relay-token-file", missing], 2, /does not exist \(copy it/],
    [["--relay", "http://relay"], 2, /^ferry: Invalid relay address "http:\/\/relay"/],
    [
      ["--relay", "192.0.2.1", "--relay-token-file", codeFile],
      1,
      /^ferry: Permission denied: run deno with --allow-net=192\.0\.2\.1:7879 \(to reach the relay\)/,
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => serve(args)));
  for (const [index, result] of results.entries()) {
    const [, code, pattern] = cases[index]!;
    assertOneLine(result, code, pattern);
  }
});
