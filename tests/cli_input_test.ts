/**
 * Bad and unusual input on the command line, as an unlucky user types it: every flag with a missing
 * or invalid value, odd server addresses, odd code files, odd file names, repeated and misplaced
 * arguments, and the `connect` shell fed a messy script. The rule checked throughout: a clear
 * one-line error, the right exit status (2 usage, 1 failure, 3 wrong code), no stack trace, and
 * nothing lost or half-written.
 *
 * @module
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { GLOBAL_OPTIONS, parseCommand, suggestOption } from "../lib/cli/args.ts";
import { parseHostPort } from "../lib/cli/common.ts";
import { serveSpec } from "../lib/cli/specs/serve.ts";
import { FerryClient } from "../lib/client/client.ts";
import { ConnectionError } from "../lib/errors.ts";
import { codeSecret } from "../lib/code.ts";
import { fakeServer } from "./_fake_server.ts";
import {
  canMountTmpfs,
  makeCodeFile,
  runFerry,
  type RunResult,
  type ServeProcess,
  startServe,
  tempDir,
} from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** Exit status `code`, and the first line of stderr is `ferry: ...` matching `pattern`. */
function assertError(result: RunResult, code: number, pattern: RegExp): void {
  strictEqual(result.code, code, show(result));
  const first = result.stderr.split("\n", 1)[0]!;
  ok(first.startsWith("ferry: "), show(result));
  match(first, pattern, show(result));
  ok(!/^\s+at /m.test(result.stderr), `no stack trace\n${show(result)}`);
  ok(!/TypeError|ReferenceError|Uncaught|node:/.test(result.stderr), show(result));
}

/** As {@link assertError}, and stderr is that one line only (no usage block after it). */
function assertOneLine(result: RunResult, code: number, pattern: RegExp): void {
  assertError(result, code, pattern);
  strictEqual(result.stderr.trimEnd().split("\n").length, 1, show(result));
}

/** Names in `dir`, sorted. */
async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

/** Connections the server has accepted so far. */
function connections(serve: ServeProcess): number {
  return serve.log().split("\n").filter((line) => line.endsWith(" connected")).length;
}

/**
 * Runs one `ferry ls` and waits until the server has logged it: every connection made before is
 * then in the log too, so a count of connections is exact.
 */
async function settledConnections(serve: ServeProcess): Promise<number> {
  const before = serve.log().split(" list .").length;
  const result = await runFerry(["ls", serve.address, "--code-file", serve.codeFile]);
  strictEqual(result.code, 0, show(result));
  const deadline = performance.now() + 10_000;
  while (serve.log().split(" list .").length === before) {
    if (performance.now() > deadline) throw new Error(`no listing logged:\n${serve.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return connections(serve) - 1;
}

/** A read-only tmpfs folder (root on Linux), unmounted on dispose; `undefined` where impossible. */
async function readOnlyFolder(): Promise<({ path: string } & AsyncDisposable) | undefined> {
  if (!await canMountTmpfs()) return undefined;
  const path = await Deno.makeTempDir({ prefix: "ferry-ro-" });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", path],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!mounted.success) {
    await Deno.remove(path);
    return undefined;
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path).catch(() => {});
    },
  };
}

Deno.test("`ferry serve` with a bad option value exits 2 in one line and creates nothing", async () => {
  await using cwd = await tempDir();
  await Deno.writeTextFile(join(cwd.path, "file.txt"), "not a folder\n");
  const cases: [string[], RegExp][] = [
    [["--port", "abc"], /^ferry: Invalid port "abc": expected a number$/],
    [["--port", "70000"], /^ferry: Invalid port 70000: expected 1 to 65535$/],
    [["--port", ""], /^ferry: Invalid port "": expected a number$/],
    [["--max-upload", "5X"], /^ferry: Invalid size "5X": expected a number like 500M or 2G$/],
    [["--grace=-1"], /^ferry: Invalid --grace "-1": expected a number of seconds from 0\.001/],
    [["--grace", "0"], /^ferry: Invalid --grace "0"/],
    [["--grace", "soon"], /^ferry: Invalid --grace "soon"/],
    // A timer longer than 2^31 ms fires at once: a huge value must not mean "no grace at all".
    [["--grace", "9999999999"], /^ferry: Invalid --grace "9999999999": .* to 2147483$/],
    [["--idle-timeout", "99999999999"], /^ferry: Invalid --idle-timeout "99999999999"/],
    [["--handshake-timeout", "0.0001"], /^ferry: Invalid --handshake-timeout "0\.0001"/],
    [["--handshake-timeout", "1e3"], /^ferry: Invalid --handshake-timeout "1e3"/],
    [["--max-connections", "0"], /^ferry: Invalid --max-connections "0"/],
    [["--max-connections", "1.5"], /^ferry: Invalid --max-connections "1\.5"/],
    [["--read-only", "--upload-only"], /^ferry: Choose one of --read-only and --upload-only$/],
    [["--upload-prefix", "../x"], /^ferry: Invalid --upload-prefix: Refused name "\.\.\/x"/],
    [["--upload-prefix", "a/b"], /^ferry: Invalid --upload-prefix: .*slash/],
    [["--host", ""], /^ferry: Option --host needs an address \(ADDR\)$/],
    [[""], /^ferry: Name the folder to share \(DIR\)/],
    [["file.txt"], /^ferry: file\.txt is not a folder$/],
    [["no-such-folder"], /^ferry: Folder no-such-folder does not exist$/],
    [["--code-file", ""], /^ferry: Cannot write code file: the path is empty$/],
  ];
  const results = await Promise.all(
    cases.map(([args]) => runFerry(["serve", ...args], { cwd: cwd.path, timeoutMs: 20_000 })),
  );
  for (const [index, result] of results.entries()) {
    assertOneLine(result, 2, cases[index]![1]);
    strictEqual(result.stdout, "");
  }
  deepStrictEqual(await names(cwd.path), ["file.txt"], "no code file was created");
});

Deno.test("a flag whose value starts with a dash exits 2 and says how to pass it (`--grace -1`, `-o -q`)", async () => {
  const [grace, output, missing] = await Promise.all([
    runFerry(["serve", "--grace", "-1"]),
    runFerry(["get", "127.0.0.1", "a.txt", "-o", "-q"]),
    runFerry(["ls", "127.0.0.1", "--code-file"]),
  ]);
  assertError(
    grace,
    2,
    /^ferry: Option --grace needs a value \(SECONDS\): "-1" looks like an option; write --grace=-1 if it is the value$/,
  );
  match(grace.stderr, /^Usage: ferry serve /m);
  assertError(
    output,
    2,
    /^ferry: Option --output needs a value \(DIR\): "-q" looks like an option; write --output=-q/,
  );
  assertError(missing, 2, /^ferry: Option --code-file needs a value \(PATH\)$/);
});

Deno.test("`ferry serve` on a port already in use exits 1 and names the address", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "code");
  await makeCodeFile(codeFile);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const result = await runFerry([
    "serve",
    dir.path,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--code-file",
    codeFile,
  ]);
  assertOneLine(
    result,
    1,
    new RegExp(`^ferry: Cannot listen on 127\\.0\\.0\\.1:${port}: address already in use$`),
  );
});

Deno.test("`ferry code` never renames over a pipe or device, refuses an empty path, and explains a read-only folder", async () => {
  await using dir = await tempDir();
  const fifo = join(dir.path, "fifo");
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  ok(made.success, "mkfifo");
  const [onFifo, empty] = await Promise.all([
    runFerry(["code", "--file", fifo, "--force"]),
    runFerry(["code", "--file", ""], { cwd: dir.path }),
  ]);
  assertOneLine(onFifo, 2, /^ferry: Cannot write code file .*fifo: it is not a regular file$/);
  strictEqual(onFifo.stdout, "", "no code printed");
  ok((await Deno.lstat(fifo)).isFifo, "the pipe is still a pipe");
  assertOneLine(empty, 2, /^ferry: Cannot write code file: the path is empty$/);
  deepStrictEqual(await names(dir.path), ["fifo"], "no temporary file is left");

  await using readOnly = await readOnlyFolder();
  if (readOnly) {
    const result = await runFerry(["code"], { cwd: readOnly.path });
    assertOneLine(
      result,
      1,
      /^ferry: Cannot write code file \.connection_code: read-only file system$/,
    );
  }
});

Deno.test("`parseHostPort()` accepts IPv6 in brackets and international names, and refuses the rest", () => {
  deepStrictEqual(parseHostPort("[::1]:7000"), { hostname: "::1", port: 7000 });
  deepStrictEqual(parseHostPort("[::1]"), { hostname: "::1", port: 7878 });
  deepStrictEqual(parseHostPort("::1"), { hostname: "::1", port: 7878 });
  deepStrictEqual(parseHostPort("Example.COM:9"), { hostname: "example.com", port: 9 });
  deepStrictEqual(parseHostPort("bücher.example:80"), {
    hostname: "xn--bcher-kva.example",
    port: 80,
  });
  for (
    const [text, why] of [
      ["[::1", /expected HOST, HOST:PORT or \[IPv6\]:PORT/],
      ["[::1]x", /expected HOST, HOST:PORT or \[IPv6\]:PORT/],
      ["[]:80", /expected an IPv6 address between \[ and \]/],
      ["[127.0.0.1]:80", /expected an IPv6 address/],
      ["::1:45441", /: write \[::1\]:45441 for port 45441$/],
      ["::1:99999", /write an IPv6 address with a port as \[ADDRESS\]:PORT/],
      ["host:", /the port after ":" is missing/],
      ["[::1]:", /the port after ":" is missing/],
      [":7878", /the host before ":" is missing/],
      ["a b", /expected HOST or HOST:PORT/],
      ["user@host", /expected HOST or HOST:PORT/],
      ["a%20b", /expected HOST or HOST:PORT/],
    ] as const
  ) {
    let message = "";
    try {
      parseHostPort(text);
    } catch (error) {
      message = (error as Error).message;
    }
    match(message, why, text);
    ok(message.startsWith(`Invalid server address "${text}": `), message);
  }
});

Deno.test("`parseHostPort()` refuses a bare IPv6 address ending in a port-like group, with a hint to bracket it", () => {
  // `::1:9003` is a valid address, but the user almost surely meant ::1 with port 9003.
  let message = "";
  try {
    parseHostPort("::1:9003");
  } catch (error) {
    message = (error as Error).message;
  }
  strictEqual(
    message,
    'Invalid server address "::1:9003": write [::1]:9003 for port 9003, ' +
      "or [::1:9003] for that whole address with the default port 7878",
  );
  // Written unambiguously, both readings are accepted.
  deepStrictEqual(parseHostPort("[::1]:9003"), { hostname: "::1", port: 9003 });
  deepStrictEqual(parseHostPort("[::1:9003]"), { hostname: "::1:9003", port: 7878 });
  // A last group that cannot be a port (hex, or a prefix that is no address) stays an address.
  deepStrictEqual(parseHostPort("fe80::1:abcd"), { hostname: "fe80::1:abcd", port: 7878 });
  deepStrictEqual(parseHostPort("2001:db8::1234"), { hostname: "2001:db8::1234", port: 7878 });
});

Deno.test("`ferry ls ::1:9003` exits 2 with a hint to write [::1]:9003", async () => {
  await using cwd = await tempDir();
  const result = await runFerry(["ls", "::1:9003"], { cwd: cwd.path });
  assertOneLine(
    result,
    2,
    /^ferry: Invalid server address "::1:9003": write \[::1\]:9003 for port 9003/,
  );
});

Deno.test("`FerryClient.connect()` names an IPv6 server in brackets when it cannot connect", async () => {
  let caught: unknown;
  try {
    await FerryClient.connect({
      hostname: "::1",
      port: 9003,
      secret: new Uint8Array(32),
      dial: () => Promise.reject(new Error("Connection refused (os error 111)")),
    });
  } catch (error) {
    caught = error;
  }
  ok(caught instanceof ConnectionError, String(caught));
  strictEqual(caught.message, "Cannot connect to [::1]:9003: Connection refused");
});

Deno.test("`suggestOption()` names the option within edit distance 2, or whose letter differs in case", () => {
  strictEqual(suggestOption("--versoin", GLOBAL_OPTIONS), "--version");
  strictEqual(suggestOption("-v", GLOBAL_OPTIONS), "--version");
  strictEqual(suggestOption("--hlep", GLOBAL_OPTIONS), "--help");
  strictEqual(suggestOption("--verbose", GLOBAL_OPTIONS), undefined);
  strictEqual(suggestOption("-x", GLOBAL_OPTIONS), undefined);
  const options = serveSpec.options;
  strictEqual(suggestOption("--read-onyl", options), "--read-only");
  strictEqual(suggestOption("--max-uplod=2G", options), "--max-upload");
  strictEqual(suggestOption("--prot", options), "--port");
  strictEqual(suggestOption("--pot", options), "--port");
  strictEqual(suggestOption("--paranoid", options), undefined);
  // One letter is no typo of a two-letter name.
  strictEqual(suggestOption("--x", [{ name: "to" }]), undefined);
});

Deno.test("`parseCommand()` hands out flags typed and converted as the spec declares them", () => {
  const { positionals, flags } = parseCommand(serveSpec, [
    "shared",
    "--port=0",
    "--max-upload",
    "2G",
    "--grace",
    "1.5",
    "--read-only",
  ]);
  deepStrictEqual(positionals, ["shared"]);
  // Typed without casts: these assignments are checked by `deno check`.
  const port: number | undefined = flags.port;
  const readOnly: boolean = flags["read-only"];
  const host: string | undefined = flags.host;
  strictEqual(port, 0);
  strictEqual(flags["max-upload"], 2 * 1024 ** 3);
  strictEqual(flags.grace, 1500);
  strictEqual(readOnly, true);
  strictEqual(flags["upload-only"], false);
  strictEqual(host, undefined);
  strictEqual(flags["idle-timeout"], undefined);
  // With --help nothing is converted, so a bad value does not hide the help.
  strictEqual(parseCommand(serveSpec, ["--port", "x", "--help"]).flags.port, undefined);
});

Deno.test("a malformed HOST[:PORT] exits 2 in one line before any code is read", async () => {
  // The folder holds no code file: the address must be refused first.
  await using cwd = await tempDir();
  const cases: [string, RegExp][] = [
    ["[::1", /^ferry: Invalid server address "\[::1": /],
    ["[]:80", /^ferry: Invalid server address "\[\]:80": /],
    ["::1:45441", /^ferry: Invalid server address "::1:45441": write \[::1\]:45441 for port/],
    ["host:", /^ferry: Invalid server address "host:": the port after ":" is missing$/],
    [":7878", /^ferry: Invalid server address ":7878": the host before ":" is missing$/],
    ["host:0", /^ferry: Invalid port 0: expected 1 to 65535$/],
    ["host:99999", /^ferry: Invalid port 99999: expected 1 to 65535$/],
    ["host:http", /^ferry: Invalid port "http": expected a number$/],
    ["", /^ferry: Invalid server address "": expected HOST or HOST:PORT$/],
    ["http://host", /^ferry: Invalid server address "http:\/\/host": .*not a URL$/],
    ["@:9000", /^ferry: Invalid server address "@:9000": write @ alone to find the server by/],
    ["@host", /^ferry: Invalid server address "@host": write @ alone to find the server by/],
    ["user@host", /^ferry: Invalid server address "user@host": expected HOST or HOST:PORT$/],
  ];
  const results = await Promise.all(
    cases.map(([host]) => runFerry(["ls", host], { cwd: cwd.path })),
  );
  for (const [index, result] of results.entries()) {
    assertOneLine(result, 2, cases[index]![1]);
  }
});

Deno.test("the top level: no arguments, `help CMD`, options before the command, `completions`", async (t) => {
  await t.step("`ferry` with no arguments prints the help on stdout and exits 0", async () => {
    const result = await runFerry([]);
    strictEqual(result.code, 0, show(result));
    match(result.stdout, /^Usage: ferry <command> \[options\]$/m);
    strictEqual(result.stderr, "");
  });
  await t.step("`ferry help get` prints the help of get", async () => {
    const result = await runFerry(["help", "get"]);
    strictEqual(result.code, 0, show(result));
    match(result.stdout, /^Usage: ferry get HOST\[:PORT\]\|@ REMOTE_PATH\.\.\./);
  });
  await t.step("`ferry help gte` exits 2 and suggests get", async () => {
    const result = await runFerry(["help", "gte"]);
    assertError(result, 2, /^ferry: Unknown command "gte": did you mean "get"\?$/);
    strictEqual(result.stdout, "");
  });
  await t.step("an option before the command exits 2 and says options go after it", async () => {
    const result = await runFerry(["--json", "ls", "127.0.0.1"]);
    assertError(result, 2, /^ferry: Unknown option "--json": options go after the command/);
  });
  await t.step("`ferry --versoin` and `ferry -v` exit 2 and suggest --version", async () => {
    for (const typo of ["--versoin", "-v", "--verison"]) {
      const result = await runFerry([typo]);
      assertError(
        result,
        2,
        new RegExp(`^ferry: Unknown option "${typo}": did you mean --version\\?$`),
      );
      strictEqual(result.stdout, "");
    }
  });
  await t.step("`ferry ls -v` exits 2 and says --version goes before the command", async () => {
    const result = await runFerry(["ls", "127.0.0.1", "-v"]);
    assertError(
      result,
      2,
      /^ferry: Unknown option -v: did you mean --version\? It goes before the command: ferry --version$/,
    );
  });
  await t.step("`ferry completions` without a shell exits 2 and names SHELL", async () => {
    const [none, unknown] = await Promise.all([
      runFerry(["completions"]),
      runFerry(["completions", "tcsh"]),
    ]);
    assertError(none, 2, /^ferry: Missing SHELL$/);
    match(none.stderr, /^Usage: ferry completions bash\|zsh\|fish$/m);
    assertOneLine(unknown, 2, /^ferry: Unknown shell "tcsh": expected bash, zsh or fish$/);
  });
  await t.step("an unknown command full of escape codes is printed escaped", async () => {
    const result = await runFerry(["\x1b[2Jwipe"]);
    assertError(result, 2, /^ferry: Unknown command "\\x1b\[2Jwipe"/);
    ok(!result.stderr.includes("\x1b"));
  });
});

Deno.test("against one `ferry serve`: odd arguments to ls, get and put", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  const local = join(dir.path, "local");
  await Deno.mkdir(srv);
  await Deno.mkdir(local);
  await Deno.writeTextFile(join(srv, "a.txt"), "remote a\n");
  await Deno.writeTextFile(join(srv, "-h"), "a file named -h\n");
  await Deno.mkdir(join(srv, "folder"));
  await Deno.writeTextFile(join(srv, "folder", "a.txt"), "inner a\n");
  await using serve = await startServe(srv);
  const withCode = ["--code-file", serve.codeFile];
  const out = async (name: string) => {
    const path = join(dir.path, name);
    await Deno.mkdir(path);
    return path;
  };

  await t.step("the code file may hold lowercase, spaces, CRLF and a BOM", async () => {
    const bare = serve.code.replaceAll("-", "");
    const spellings = [
      `  ${serve.code.toLowerCase()}  \n\n`,
      bare,
      `${serve.code}\r\n`,
      `\ufeff${serve.code}\n`,
      serve.code.replaceAll("-", " "),
    ];
    const results = await Promise.all(spellings.map(async (text, index) => {
      const path = join(dir.path, `code-${index}`);
      await Deno.writeTextFile(path, text);
      return runFerry(["ls", serve.address, "--code-file", path]);
    }));
    for (const result of results) {
      strictEqual(result.code, 0, show(result));
      match(result.stdout, /a\.txt/);
    }
  });

  await t.step("FERRY_CODE with spaces around and between the groups works", async () => {
    await using cwd = await tempDir();
    const result = await runFerry(["ls", serve.address], {
      cwd: cwd.path,
      env: { FERRY_CODE: `  ${serve.code.replaceAll("-", " ")}  ` },
    });
    strictEqual(result.code, 0, show(result));
  });

  await t.step(
    "a code file that is a folder, empty, binary or huge exits 2 without echoing it",
    async () => {
      const folder = await out("code-folder");
      const emptyFile = join(dir.path, "code-empty");
      const binary = join(dir.path, "code-binary");
      const huge = join(dir.path, "code-huge");
      await Deno.writeTextFile(emptyFile, "");
      await Deno.writeFile(binary, new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3]));
      await Deno.writeTextFile(huge, `${serve.code}\n`.repeat(10_000));
      const cases: [string, RegExp][] = [
        [folder, /^ferry: Cannot read code file .*code-folder: it is a folder$/],
        [emptyFile, /^ferry: Invalid connection code in .*code-empty: expected 16 characters/],
        [binary, /^ferry: Invalid connection code in .*code-binary: the file is not UTF-8 text$/],
        [huge, /^ferry: Invalid connection code in .*code-huge: the file is larger than 1024/],
        ["", /^ferry: Cannot read code file: the path is empty$/],
      ];
      const results = await Promise.all(
        cases.map(([path]) => runFerry(["ls", serve.address, "--code-file", path])),
      );
      for (const [index, result] of results.entries()) {
        assertOneLine(result, 2, cases[index]![1]);
        ok(!result.stderr.includes(serve.code.slice(0, 4) + "-"), "the code is not echoed");
      }
    },
  );

  await t.step("a repeated --code-file: the last one wins (a wrong one last exits 3)", async () => {
    const wrong = join(dir.path, "code-wrong");
    await Deno.writeTextFile(wrong, "ABCD-EFGH-JKMN-PQRS\n", { mode: 0o600 });
    const [rightLast, wrongLast] = await Promise.all([
      runFerry(["ls", serve.address, "--code-file", wrong, "--code-file", serve.codeFile]),
      runFerry(["ls", serve.address, "--code-file", serve.codeFile, "--code-file", wrong]),
    ]);
    strictEqual(rightLast.code, 0, show(rightLast));
    assertOneLine(wrongLast, 3, /^ferry: Wrong connection code/);
  });

  await t.step("-h among other arguments shows the help and touches nothing", async () => {
    const target = await out("help-target");
    const result = await runFerry(["get", serve.address, "a.txt", "-h", "-o", target]);
    strictEqual(result.code, 0, show(result));
    match(result.stdout, /^Usage: ferry get /);
    deepStrictEqual(await names(target), []);
  });

  await t.step("after --, a word like -h is a remote path", async () => {
    const target = await out("dashdash");
    const result = await runFerry(["get", serve.address, "-o", target, ...withCode, "--", "-h"]);
    strictEqual(result.code, 0, show(result));
    strictEqual(await Deno.readTextFile(join(target, "-h")), "a file named -h\n");
  });

  const before = await settledConnections(serve);

  await t.step(
    "`ferry get` with -o naming a file exits 2 and says it is not a folder",
    async () => {
      const result = await runFerry(["get", serve.address, "a.txt", "-o", join(srv, "a.txt")]);
      assertOneLine(result, 2, /^ferry: Local output .*a\.txt is not a folder$/);
    },
  );

  await t.step("`ferry get` with an empty -o exits 2", async () => {
    const result = await runFerry(["get", serve.address, "a.txt", "-o", "", ...withCode]);
    assertOneLine(result, 2, /^ferry: Option --output needs a folder \(DIR\)$/);
  });

  await t.step('`ferry get HOST ""` exits 2: it names the served folder itself', async () => {
    const result = await runFerry(["get", serve.address, "", ...withCode]);
    assertOneLine(result, 2, /^ferry: Name a file or folder to download, not the served folder/);
  });

  await t.step(
    "`ferry get` of the same remote path twice exits 2 before connecting and downloads nothing",
    async () => {
      const target = await out("twice");
      const result = await runFerry(["get", serve.address, "a.txt", "a.txt", "-o", target]);
      assertOneLine(result, 2, /^ferry: "a\.txt" is named twice$/);
      deepStrictEqual(await names(target), []);
    },
  );

  await t.step(
    "`ferry get` of two paths with one name (folder/a.txt a.txt) exits 2 and downloads nothing",
    async () => {
      const target = await out("clash");
      const result = await runFerry([
        "get",
        serve.address,
        "folder/a.txt",
        "a.txt",
        "-o",
        target,
        ...withCode,
      ]);
      assertOneLine(
        result,
        2,
        /^ferry: "folder\/a\.txt" and "a\.txt" would both be saved as a\.txt: download them in separate commands$/,
      );
      deepStrictEqual(await names(target), []);
    },
  );

  await t.step("`ferry put` of a FIFO or /dev/zero exits 2: not a file or folder", async () => {
    const fifo = join(local, "fifo");
    ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    const results = await Promise.all(
      [fifo, "/dev/zero"].map((path) => runFerry(["put", serve.address, path, ...withCode])),
    );
    for (const result of results) {
      assertOneLine(result, 2, /^ferry: Cannot upload .*: it is not a file or folder$/);
    }
    await Deno.remove(fifo);
  });

  await t.step("`ferry put` of the same file twice exits 2 and uploads nothing", async () => {
    const file = join(local, "twice.txt");
    const other = join(local, "elsewhere", "twice.txt");
    await Deno.mkdir(join(local, "elsewhere"));
    await Deno.writeTextFile(file, "twice\n");
    await Deno.writeTextFile(other, "another\n");
    const [same, sameName] = await Promise.all([
      runFerry(["put", serve.address, file, file, ...withCode]),
      runFerry(["put", serve.address, file, other, ...withCode]),
    ]);
    assertOneLine(same, 2, /^ferry: .*twice\.txt is named twice$/);
    assertOneLine(
      sameName,
      2,
      /^ferry: .*twice\.txt and .*twice\.txt would both be uploaded as twice\.txt/,
    );
    await Deno.remove(file);
  });

  await t.step('`ferry put ""` exits 2', async () => {
    const result = await runFerry(["put", serve.address, "", ...withCode]);
    assertOneLine(result, 2, /^ferry: Name a local file or folder, not an empty one$/);
  });

  await t.step("none of the refused commands above connected", async () => {
    strictEqual(await settledConnections(serve), before + 1, serve.log());
  });

  await t.step(
    "a refused --to or remote path is a usage error (exit 2) in one line and names --to",
    async () => {
      const file = join(local, "to.txt");
      await Deno.writeTextFile(file, "to\n");
      const [to, absolute, ls] = await Promise.all([
        runFerry(["put", serve.address, file, "--to", "../x", ...withCode]),
        runFerry(["get", serve.address, "/etc/passwd", "-o", local, ...withCode]),
        runFerry(["ls", serve.address, "folder/../..", ...withCode]),
      ]);
      assertOneLine(to, 2, /^ferry: Invalid --to: Refused path "\.\.\/x": .*"\.\."$/);
      assertOneLine(absolute, 2, /^ferry: Refused path "\/etc\/passwd": it is absolute$/);
      assertOneLine(ls, 2, /^ferry: Refused path "folder\/\.\.\/\.\.": /);
      deepStrictEqual(await names(srv), ["-h", "a.txt", "folder"]);
      await Deno.remove(file);
    },
  );

  await t.step(
    "`ferry get` of a file onto a local folder of that name exits 1 and leaves the folder",
    async () => {
      const target = await out("folder-in-the-way");
      await Deno.mkdir(join(target, "a.txt"));
      await Deno.writeTextFile(join(target, "a.txt", "mine"), "mine\n");
      const result = await runFerry(["get", serve.address, "a.txt", "-o", target, ...withCode]);
      assertOneLine(result, 1, /a\.txt exists and is a folder$/);
      deepStrictEqual(await names(join(target, "a.txt")), ["mine"]);
      deepStrictEqual(await names(target), ["a.txt"], "no partial file is left");
    },
  );

  await t.step(
    "`ferry get` of a folder onto a local file of that name exits 1 and keeps the file, even with --force",
    async () => {
      const target = await out("file-in-the-way");
      await Deno.writeTextFile(join(target, "folder"), "my file\n");
      const [plain, forced] = [
        await runFerry(["get", serve.address, "folder", "-o", target, ...withCode]),
        await runFerry(["get", serve.address, "folder", "-o", target, "--force", ...withCode]),
      ];
      assertOneLine(plain, 1, /folder already exists: use --force to replace it$|is not a folder/);
      assertOneLine(forced, 1, /folder exists and is not a folder$/);
      strictEqual(await Deno.readTextFile(join(target, "folder")), "my file\n");
      deepStrictEqual(await names(target), ["folder"]);
    },
  );

  await t.step(
    "names with spaces, quotes, a leading dash, NFC and NFD forms, and zero bytes arrive as they are",
    async () => {
      const files: [string, string][] = [
        ["with space.txt", "space\n"],
        [`quo"te's.txt`, "quotes\n"],
        ["-f", "dash\n"],
        ["caf\u00e9.txt", "nfc\n"],
        ["cafe\u0301.txt", "nfd\n"],
        ["empty", ""],
      ];
      const sub = join(local, "odd");
      await Deno.mkdir(sub);
      for (const [name, text] of files) await Deno.writeTextFile(join(sub, name), text);
      const result = await runFerry(
        ["put", serve.address, ...withCode, "--", ...files.map(([name]) => name)],
        { cwd: sub },
      );
      strictEqual(result.code, 0, show(result));
      for (const [name, text] of files) {
        strictEqual(await Deno.readTextFile(join(srv, `uploaded_${name}`)), text, name);
      }
      const target = await out("odd-back");
      const back = await runFerry([
        "get",
        serve.address,
        "-o",
        target,
        ...withCode,
        "--",
        ...files.map(([name]) => `uploaded_${name}`),
      ]);
      strictEqual(back.code, 0, show(back));
      for (const [name, text] of files) {
        strictEqual(await Deno.readTextFile(join(target, `uploaded_${name}`)), text, name);
      }
    },
  );

  await t.step(
    "a 255-byte name that the upload prefix makes too long exits 1 in one line",
    async () => {
      const name = "n".repeat(255);
      await Deno.writeTextFile(join(local, name), "long\n");
      const result = await runFerry(["put", serve.address, join(local, name), ...withCode]);
      assertOneLine(result, 1, /^ferry: Refused name "uploaded_n+…": a name is longer than 255/);
      ok(!(await names(srv)).some((entry) => entry.includes("nnnn")), "nothing half-written");
    },
  );

  await t.step(
    "`ferry get` into a read-only folder exits 1 naming the folder, not a hidden file",
    async () => {
      await using readOnly = await readOnlyFolder();
      if (!readOnly) return;
      const result = await runFerry([
        "get",
        serve.address,
        "a.txt",
        "-o",
        readOnly.path,
        ...withCode,
      ]);
      assertOneLine(
        result,
        1,
        new RegExp(`^ferry: Cannot write in ${readOnly.path}: read-only file system$`),
      );
      ok(!result.stderr.includes(".ferry-partial."));
    },
  );
});

Deno.test("the `connect` shell fed a messy script", async (t) => {
  await using dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  await Deno.writeTextFile(join(srv, "a.txt"), "remote a\n");
  await Deno.mkdir(join(srv, "folder"));
  await Deno.writeTextFile(join(srv, "folder", "b.txt"), "b\n");
  await using serve = await startServe(srv);
  const shell = (script: string) =>
    runFerry(["connect", serve.address, "--code-file", serve.codeFile], {
      stdin: script,
      cwd: dir.path,
    });

  await t.step("empty lines, blank lines, comments and tabs are ignored", async () => {
    const result = await shell("\n   \n# a comment\n   # an indented one\nls\tfolder\r\n\n");
    strictEqual(result.code, 0, show(result));
    match(result.stdout, /b\.txt\n$/);
    strictEqual(result.stderr, "");
  });

  await t.step(
    "an unclosed quote stops the script with exit 2 and runs nothing after it",
    async () => {
      const result = await shell(`get "a.txt\nget a.txt\n`);
      assertOneLine(result, 2, /^ferry: Unclosed quote$/);
      deepStrictEqual(await names(dir.path), ["srv"]);
    },
  );

  await t.step("`get` with no arguments exits 2 with the shell's usage", async () => {
    const result = await shell("get\n");
    assertOneLine(result, 2, /^ferry: Usage: get \[-f\] \[-N\] <remote> \[local\]$/);
  });

  await t.step("`get` to a file name in a missing folder exits 2 and writes nothing", async () => {
    const result = await shell(`get a.txt ${join(dir.path, "nowhere", "copy.txt")}\n`);
    assertOneLine(result, 2, /^ferry: Folder .*nowhere does not exist$/);
    deepStrictEqual(await names(dir.path), ["srv"]);
  });

  await t.step("`get` of a folder to a new local name saves it under that name", async () => {
    await using out = await tempDir();
    const result = await shell(`get folder ${join(out.path, "copy")}\n`);
    strictEqual(result.code, 0, show(result));
    deepStrictEqual(await names(out.path), ["copy"]);
    strictEqual(await Deno.readTextFile(join(out.path, "copy", "b.txt")), "b\n");
  });

  await t.step("empty local arguments exit 2", async () => {
    const [get, put] = await Promise.all([shell(`get a.txt ""\n`), shell(`put ""\n`)]);
    assertOneLine(get, 2, /^ferry: Usage: get .*: local is empty$/);
    assertOneLine(put, 2, /^ferry: Usage: put .*: local is empty$/);
  });

  await t.step("a 100 000-character line is refused in one short line", async () => {
    const result = await shell(`ls ${"a".repeat(100_000)}\n`);
    assertOneLine(result, 2, /^ferry: Refused path "a+…": it is longer than 4096 bytes$/);
    ok(result.stderr.length < 400, `${result.stderr.length} characters`);
  });

  await t.step("an unknown command stops the script with exit 2", async () => {
    const result = await shell("frob\nls\n");
    assertOneLine(result, 2, /^ferry: Unknown command "frob": type help for the list$/);
    strictEqual(result.stdout, "");
  });
});

Deno.test("`ferry ls --json` reports an error as one JSON object line, like every command's error event", async () => {
  await using served = await tempDir();
  await using server = await startServe(served.path);
  const result = await runFerry([
    "ls",
    server.address,
    "no-such",
    "--json",
    "--code-file",
    server.codeFile,
  ]);
  strictEqual(result.code, 1, show(result));
  const lines = result.stdout.trimEnd().split("\n");
  strictEqual(lines.length, 1, show(result));
  const event = JSON.parse(lines[0]!);
  deepStrictEqual(Object.keys(event), ["event", "code", "message"]);
  strictEqual(event.event, "error");
  strictEqual(event.code, "not-found");
});

Deno.test("`ferry ls --json` cut short mid-listing closes the array of what came, then prints the error event", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "code");
  const code = await makeCodeFile(codeFile);
  await using server = fakeServer(codeSecret(code), async ({ reader }, send) => {
    await reader.next(); // the list request
    const entry = { name: "a.txt", type: "file" as const, size: 1, mtime: 0, mode: 0o644 };
    await send({ t: "listing", entries: [entry], done: false });
    await send({ t: "error", code: "io", message: "The server could not complete the request" });
    await reader.next().catch(() => {});
  });
  const result = await runFerry([
    "ls",
    `127.0.0.1:${server.port}`,
    "--json",
    "--code-file",
    codeFile,
  ]);
  strictEqual(result.code, 1, show(result));
  const [listing, error, ...rest] = result.stdout.trimEnd().split("\n").map((line) =>
    JSON.parse(line)
  );
  deepStrictEqual(listing.map((entry: { name: string }) => entry.name), ["a.txt"]);
  strictEqual(error.event, "error");
  deepStrictEqual(rest, []);
});
