/**
 * Integration tests of issue 2: the real `ferry` CLI run as subprocesses against `ferry serve` on
 * 127.0.0.1 port 0, with scoped Deno permissions.
 *
 * Related checks share one server (steps of one test) to keep the file fast on two cores.
 *
 * @module
 */
import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { generateCode, normaliseCode } from "../lib/code.ts";
import { COMMANDS } from "../lib/cli/commands.ts";
import { VERSION } from "../lib/version.ts";
import {
  DENO,
  exists,
  MAIN,
  makeCodeFile,
  makeFile,
  runFerry,
  type RunResult,
  sha256File,
  startServe,
  tempDir,
} from "./_helpers.ts";

const CODE_PATTERN = /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/;
const encoder = new TextEncoder();

// --- helpers ------------------------------------------------------------------------------------

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

/** Asserts the exit status, showing the output when it differs. */
function assertExit(result: RunResult, expected: number): void {
  strictEqual(result.code, expected, show(result));
}

/** A runtime error: exactly one line on stderr, prefixed `ferry: `, no stack trace. */
function assertOneLineError(result: RunResult): void {
  const lines = result.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, `expected one line on stderr:\n${result.stderr}`);
  match(lines[0]!, /^ferry: \S/);
  assertNoStack(result);
}

/** No `    at ...` stack-trace lines anywhere. */
function assertNoStack(result: RunResult): void {
  ok(!/^\s+at /m.test(result.stderr), `stack trace on stderr:\n${result.stderr}`);
  ok(!/^\s+at /m.test(result.stdout), `stack trace on stdout:\n${result.stdout}`);
}

/** Every path below `dir`, relative, folders ending in `/`, sorted. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const paths: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) paths.push(`${path}/`, ...await tree(dir, path));
    else paths.push(path);
  }
  return paths.sort();
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, "gm"))?.length ?? 0;
}

/**
 * Waits until the server's log satisfies `test` (its stderr is read in the background, so a line
 * the server wrote before the client exited may arrive a moment later).
 */
async function waitForLog(log: () => string, test: (text: string) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!test(log())) {
    if (Date.now() > deadline) throw new Error(`server log never showed ${what}:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `ferry serve` started in `cwd` with no DIR and no `--code-file`: the defaults `.` and `./.connection_code`. */
interface FolderServe extends AsyncDisposable {
  address: string;
  port: number;
  log(): string;
  stdout(): string;
}

/**
 * Starts `ferry serve --host 127.0.0.1 --port 0` in `cwd` with
 * `--allow-net=127.0.0.1:0 --allow-read=<cwd> --allow-write=<cwd>` and nothing else.
 */
async function serveInFolder(cwd: string): Promise<FolderServe> {
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1:0",
      `--allow-read=${cwd}`,
      `--allow-write=${cwd}`,
      MAIN,
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
    ],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let stdout = "";
  const portFound = Promise.withResolvers<number>();
  const stderrDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += text;
      const found = / on 127\.0\.0\.1:(\d+) /.exec(log);
      if (found) portFound.resolve(Number(found[1]));
    }
    portFound.reject(new Error(`ferry serve exited before listening:\n${log}`));
  })();
  const stdoutDone = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) stdout += text;
  })();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await Promise.all([child.status, stderrDone, stdoutDone]);
  };
  const timer = setTimeout(
    () => portFound.reject(new Error(`serve did not start:\n${log}`)),
    30_000,
  );
  let port: number;
  try {
    port = await portFound.promise;
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    log: () => log,
    stdout: () => stdout,
    [Symbol.asyncDispose]: stop,
  };
}

// --- ferry code ---------------------------------------------------------------------------------

Deno.test("`ferry code` creates connection code files", async (t) => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, ".connection_code");
  let first = "";

  await t.step(
    "prints a XXXX-XXXX-XXXX-XXXX code and writes it alone on one line, mode 0600",
    async () => {
      const result = await runFerry(["code"], { cwd: dir.path });
      assertExit(result, 0);
      first = result.stdout.trim();
      match(first, CODE_PATTERN);
      strictEqual(await Deno.readTextFile(codeFile), `${first}\n`);
      strictEqual((await Deno.stat(codeFile)).mode! & 0o777, 0o600);
    },
  );

  await t.step("refuses to replace an existing code file without --force", async () => {
    const result = await runFerry(["code"], { cwd: dir.path });
    assertExit(result, 1);
    assertOneLineError(result);
    match(result.stderr, /--force/);
    strictEqual(result.stdout, "");
    strictEqual(await Deno.readTextFile(codeFile), `${first}\n`);
  });

  await t.step("replaces the code file with --force", async () => {
    const result = await runFerry(["code", "--force"], { cwd: dir.path });
    assertExit(result, 0);
    const second = result.stdout.trim();
    match(second, CODE_PATTERN);
    notStrictEqual(second, first);
    strictEqual(await Deno.readTextFile(codeFile), `${second}\n`);
    strictEqual((await Deno.stat(codeFile)).mode! & 0o777, 0o600);
  });

  await t.step("writes to --file PATH instead of ./.connection_code", async () => {
    await Deno.mkdir(join(dir.path, "keys"));
    const path = join(dir.path, "keys", "ferry.code");
    const result = await runFerry(["code", "--file", path], { cwd: join(dir.path, "keys") });
    assertExit(result, 0);
    const code = result.stdout.trim();
    match(code, CODE_PATTERN);
    strictEqual(await Deno.readTextFile(path), `${code}\n`);
    strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    ok(!await exists(join(dir.path, "keys", ".connection_code")));
  });
});

// --- ferry serve with its defaults --------------------------------------------------------------

Deno.test("`ferry serve` in a fresh folder, with permissions scoped to that folder", async (t) => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "hello.txt"), "hello from the served folder\n");
  await using server = await serveInFolder(dir.path);
  const codeFile = join(dir.path, ".connection_code");
  let code = "";

  await t.step("creates ./.connection_code when missing and prints the code", async () => {
    const text = await Deno.readTextFile(codeFile);
    code = text.trim();
    match(code, CODE_PATTERN);
    strictEqual(text, `${code}\n`);
    strictEqual((await Deno.stat(codeFile)).mode! & 0o777, 0o600);
    ok(
      (server.stdout() + server.log()).includes(code),
      `the new code is not printed:\n${server.log()}`,
    );
  });

  await t.step(
    "serves ls, get and put with only --allow-read/--allow-write of its folder (absolute) and ./.connection_code",
    async () => {
      await using client = await tempDir();
      const ls = await runFerry(["ls", server.address, "--json", "--code-file", codeFile]);
      assertExit(ls, 0);
      const names = (JSON.parse(ls.stdout) as { name: string }[]).map((entry) => entry.name);
      deepStrictEqual(names, ["hello.txt"], "the code file inside the served folder is not listed");

      const get = await runFerry([
        "get",
        server.address,
        "hello.txt",
        "-o",
        client.path,
        "--code-file",
        codeFile,
      ]);
      assertExit(get, 0);
      strictEqual(
        await Deno.readTextFile(join(client.path, "hello.txt")),
        "hello from the served folder\n",
      );

      await Deno.writeTextFile(join(client.path, "reply.txt"), "a reply\n");
      const put = await runFerry([
        "put",
        server.address,
        join(client.path, "reply.txt"),
        "--code-file",
        codeFile,
      ]);
      assertExit(put, 0);
      strictEqual(await Deno.readTextFile(join(dir.path, "uploaded_reply.txt")), "a reply\n");
    },
  );

  await t.step("never logs the code after printing it once on creation", () => {
    const log = server.log() + server.stdout();
    strictEqual(log.split(code).length - 1, 1, log);
    ok(!log.includes(normaliseCode(code)), log);
  });
});

Deno.test("`ferry serve` refuses a DIR that does not exist (exit 2)", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "code");
  await makeCodeFile(codeFile);
  const missing = join(dir.path, "no-such-folder");
  const result = await runFerry([
    "serve",
    missing,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--code-file",
    codeFile,
  ], { timeoutMs: 15_000 });
  assertExit(result, 2);
  match(result.stderr, /no-such-folder/);
  match(result.stderr.split("\n")[0]!, /^ferry: /);
  assertNoStack(result);
});

// --- one shared server: ls, get, put, code lookup, connect, logs, permissions ------------------

/**
 * The served folder of the shared server:
 *
 * ```
 * root/
 *   .connection_code             the code file, inside the folder: never listed or served
 *   .ferry-partial.a.txt         a transfer in progress: never listed
 *   a.txt (1000 B), big.bin (3 MiB + 7), empty.txt (0 B)
 *   folder/x.txt, folder/sub/y.bin, folder/empty/, folder/.ferry-partial.y.bin
 *   incoming/
 * ```
 */
async function makeServedFolder(root: string): Promise<void> {
  await makeFile(join(root, "a.txt"), 1000, 1);
  await makeFile(join(root, "big.bin"), 3 * 1024 * 1024 + 7, 2);
  await Deno.writeFile(join(root, "empty.txt"), new Uint8Array());
  await Deno.writeTextFile(join(root, ".ferry-partial.a.txt"), "half");
  await Deno.mkdir(join(root, "folder", "sub"), { recursive: true });
  await Deno.mkdir(join(root, "folder", "empty"));
  await Deno.mkdir(join(root, "incoming"));
  await makeFile(join(root, "folder", "x.txt"), 10, 3);
  await makeFile(join(root, "folder", "sub", "y.bin"), 70_000, 4);
  await Deno.writeTextFile(join(root, "folder", ".ferry-partial.y.bin"), "half");
}

Deno.test("ferry ls, get, put and connect against one `ferry serve`", async (t) => {
  await using served = await tempDir("ferry-served-");
  const root = served.path;
  await makeServedFolder(root);
  const codeFile = join(root, ".connection_code");
  // Exactly startServe's default scoping, spelled out: net to 127.0.0.1:0, read on the folder and
  // the code file, write on the folder, nothing else.
  await using server = await startServe(root, {
    codeFile,
    permissions: [
      "--allow-net=127.0.0.1:0",
      `--allow-read=${root},${codeFile}`,
      `--allow-write=${root}`,
    ],
  });
  const address = server.address;
  const withCode = ["--code-file", codeFile];
  const wrongCodes: string[] = [];
  const log = () => server.log();

  // --- ls ---

  await t.step("`ferry ls` prints names, types and sizes as text", async () => {
    const result = await runFerry(["ls", address, ...withCode]);
    assertExit(result, 0);
    const lines = result.stdout.trimEnd().split("\n");
    strictEqual(lines.length, 5, result.stdout);
    const line = (name: string) => lines.find((text) => text.endsWith(`  ${name}`)) ?? "";
    match(line("a.txt"), /^file\s+1000 B\s+\d{4}-\d\d-\d\d \d\d:\d\d {2}a\.txt$/);
    match(line("big.bin"), /^file\s+3\.00 MiB\s/);
    match(line("empty.txt"), /^file\s+0 B\s/);
    match(line("folder/"), /^dir\s+-\s/);
    match(line("incoming/"), /^dir\s/);
  });

  await t.step("`ferry ls --json` prints an array of {name, type, size, mtime}", async () => {
    const result = await runFerry(["ls", address, "--json", ...withCode]);
    assertExit(result, 0);
    const entries = JSON.parse(result.stdout) as Record<string, unknown>[];
    ok(Array.isArray(entries));
    for (const entry of entries) {
      deepStrictEqual(Object.keys(entry).sort(), ["mtime", "name", "size", "type"]);
      ok(!Number.isNaN(Date.parse(entry.mtime as string)), `mtime ${entry.mtime}`);
    }
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    deepStrictEqual(
      [...byName.keys()].sort(),
      ["a.txt", "big.bin", "empty.txt", "folder", "incoming"],
    );
    strictEqual(byName.get("a.txt")!.type, "file");
    strictEqual(byName.get("a.txt")!.size, 1000);
    strictEqual(byName.get("big.bin")!.size, 3 * 1024 * 1024 + 7);
    strictEqual(byName.get("folder")!.type, "dir");
    const mtime = (await Deno.stat(join(root, "a.txt"))).mtime!;
    strictEqual(Date.parse(byName.get("a.txt")!.mtime as string), mtime.getTime());
  });

  await t.step(
    "`ferry ls` lists neither hidden partial files nor the code file inside the folder",
    async () => {
      const top = await runFerry(["ls", address, "--json", ...withCode]);
      const sub = await runFerry(["ls", address, "folder", "--json", ...withCode]);
      assertExit(top, 0);
      assertExit(sub, 0);
      const names = (result: RunResult) =>
        (JSON.parse(result.stdout) as { name: string }[]).map((entry) => entry.name).sort();
      ok(!names(top).includes(".connection_code"));
      ok(!names(top).some((name) => name.startsWith(".ferry-partial.")));
      deepStrictEqual(names(sub), ["empty", "sub", "x.txt"]);
      const text = await runFerry(["ls", address, ...withCode]);
      ok(!text.stdout.includes(".ferry-partial.") && !text.stdout.includes(".connection_code"));
    },
  );

  await t.step(
    "`ferry ls` refuses hostile paths as a usage error (exit 2) in one line, before connecting",
    async () => {
      const hostile = [
        "../",
        "..",
        "/etc",
        "/etc/passwd",
        "folder/../../etc",
        "..\\..\\windows",
        "C:\\Windows",
        "folder/\x1b[2Jx",
      ]; // "CON" and "C:/Windows" are ordinary names off Windows (names_test.ts)
      const results = await Promise.all(
        hostile.map((path) => runFerry(["ls", address, path, ...withCode])),
      );
      for (const [index, result] of results.entries()) {
        strictEqual(result.code, 2, `ls ${JSON.stringify(hostile[index])}\n${show(result)}`);
        assertOneLineError(result);
        strictEqual(result.stdout, "");
        ok(!result.stderr.includes("\x1b"), "control characters are not echoed");
      }
    },
  );

  // --- get ---

  await t.step("`ferry get` downloads one file byte-exact into the current folder", async () => {
    await using out = await tempDir();
    const result = await runFerry(["get", address, "big.bin", ...withCode], { cwd: out.path });
    assertExit(result, 0);
    strictEqual(
      await sha256File(join(out.path, "big.bin")),
      await sha256File(join(root, "big.bin")),
    );
    deepStrictEqual(await tree(out.path), ["big.bin"], "no partial file is left behind");
  });

  await t.step("`ferry get` downloads several paths into -o DIR", async () => {
    await using out = await tempDir();
    const result = await runFerry([
      "get",
      address,
      "a.txt",
      "empty.txt",
      "folder/x.txt",
      "-o",
      out.path,
      ...withCode,
    ]);
    assertExit(result, 0);
    deepStrictEqual(await tree(out.path), ["a.txt", "empty.txt", "x.txt"]);
    for (const [local, remote] of [["a.txt", "a.txt"], ["x.txt", "folder/x.txt"]]) {
      strictEqual(await sha256File(join(out.path, local!)), await sha256File(join(root, remote!)));
    }
    strictEqual((await Deno.stat(join(out.path, "empty.txt"))).size, 0);
  });

  await t.step("`ferry get` downloads a folder recursively, keeping empty folders", async () => {
    await using out = await tempDir();
    const result = await runFerry(["get", address, "folder", "--output", out.path, ...withCode]);
    assertExit(result, 0);
    deepStrictEqual(await tree(out.path), [
      "folder/",
      "folder/empty/",
      "folder/sub/",
      "folder/sub/y.bin",
      "folder/x.txt",
    ]);
    strictEqual(
      await sha256File(join(out.path, "folder", "sub", "y.bin")),
      await sha256File(join(root, "folder", "sub", "y.bin")),
    );
  });

  await t.step("`ferry get` keeps an existing local file unless --force", async () => {
    await using out = await tempDir();
    const local = join(out.path, "a.txt");
    await Deno.writeTextFile(local, "my own a.txt\n");
    const refused = await runFerry(["get", address, "a.txt", "-o", out.path, ...withCode]);
    assertExit(refused, 1);
    assertOneLineError(refused);
    match(refused.stderr, /--force/);
    strictEqual(await Deno.readTextFile(local), "my own a.txt\n");

    const forced = await runFerry([
      "get",
      address,
      "a.txt",
      "-o",
      out.path,
      "--force",
      ...withCode,
    ]);
    assertExit(forced, 0);
    strictEqual(await sha256File(local), await sha256File(join(root, "a.txt")));
    deepStrictEqual(await tree(out.path), ["a.txt"]);
  });

  await t.step(
    "`ferry get -o` a missing folder makes it, with its parents, like mkdir -p",
    async () => {
      await using out = await tempDir();
      const target = join(out.path, "new", "deeper");
      const result = await runFerry(["get", address, "a.txt", "-o", target, ...withCode]);
      assertExit(result, 0);
      strictEqual(await sha256File(join(target, "a.txt")), await sha256File(join(root, "a.txt")));
      deepStrictEqual(await tree(out.path), ["new/", "new/deeper/", "new/deeper/a.txt"]);
    },
  );

  await t.step(
    "`ferry get -o` below a local file exits 2, says local, and makes nothing",
    async () => {
      await using out = await tempDir();
      await Deno.writeTextFile(join(out.path, "file.txt"), "in the way");
      const target = join(out.path, "file.txt", "sub", "dir");
      const result = await runFerry(["get", address, "a.txt", "-o", target, ...withCode]);
      assertExit(result, 2);
      match(
        result.stderr,
        /^ferry: Cannot create the local output folder .*file\.txt\/sub\/dir: .*file\.txt is not a folder\n/,
      );
      assertNoStack(result);
      deepStrictEqual(await tree(out.path), ["file.txt"]);
    },
  );

  await t.step("`ferry get -o` a missing folder makes nothing when it cannot connect", async () => {
    await using out = await tempDir();
    const target = join(out.path, "never");
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    const result = await runFerry(["get", "127.0.0.1:1", "a.txt", "-o", target, ...withCode]);
    assertExit(result, 1);
    assertOneLineError(result);
    ok(!await exists(target), "no folder made before the connection was");
  });

  await t.step("`ferry get` of a remote path that does not exist fails (exit 1)", async () => {
    await using out = await tempDir();
    const result = await runFerry([
      "get",
      address,
      "nothing-here.txt",
      "-o",
      out.path,
      ...withCode,
    ]);
    assertExit(result, 1);
    assertOneLineError(result);
    match(result.stderr, /nothing-here\.txt/);
    deepStrictEqual(await tree(out.path), []);
  });

  // --- put ---

  await using local = await tempDir("ferry-local-");
  await makeFile(join(local.path, "notes.txt"), 5000, 5);
  await makeFile(join(local.path, "report.bin"), 1024 * 1024 + 3, 6);

  await t.step("`ferry put` uploads a file as uploaded_<name>", async () => {
    const result = await runFerry(["put", address, join(local.path, "notes.txt"), ...withCode]);
    assertExit(result, 0);
    strictEqual(
      await sha256File(join(root, "uploaded_notes.txt")),
      await sha256File(join(local.path, "notes.txt")),
    );
    ok(!await exists(join(root, "notes.txt")));
  });

  await t.step("`ferry put --to sub` uploads into a folder on the server", async () => {
    const result = await runFerry([
      "put",
      address,
      join(local.path, "report.bin"),
      "--to",
      "incoming",
      ...withCode,
    ]);
    assertExit(result, 0);
    strictEqual(
      await sha256File(join(root, "incoming", "uploaded_report.bin")),
      await sha256File(join(local.path, "report.bin")),
    );
  });

  await t.step(
    "`ferry put --to` a remote folder that does not exist fails (exit 1), says it is the server's, and sends nothing",
    async () => {
      const before = await tree(root);
      for (const source of [join(local.path, "notes.txt"), local.path]) { // a file, a folder
        const result = await runFerry([
          "put",
          address,
          source,
          "--to",
          "no-such/folder",
          ...withCode,
        ]);
        assertExit(result, 1);
        assertOneLineError(result);
        match(
          result.stderr,
          /^ferry: The remote folder "no-such\/folder" does not exist on the server: create it there first/,
        );
      }
      deepStrictEqual(await tree(root), before);
    },
  );

  await t.step("`ferry put` keeps an existing remote file unless --force", async () => {
    const remote = join(root, "uploaded_notes.txt");
    const before = await sha256File(remote);
    await Deno.mkdir(join(local.path, "changed"));
    await makeFile(join(local.path, "changed", "notes.txt"), 4321, 7);
    const changed = join(local.path, "changed", "notes.txt");

    const refused = await runFerry(["put", address, changed, ...withCode]);
    assertExit(refused, 1);
    assertOneLineError(refused);
    match(refused.stderr, /--force/);
    strictEqual(await sha256File(remote), before);

    const forced = await runFerry(["put", address, changed, "--force", ...withCode]);
    assertExit(forced, 0);
    strictEqual(await sha256File(remote), await sha256File(changed));
  });

  await t.step("`ferry put` of a missing local path exits 2 and sends nothing", async () => {
    const connections = count(log(), / connected$/);
    const lists = count(log(), / list \.$/);
    const result = await runFerry([
      "put",
      address,
      join(local.path, "notes.txt"),
      join(local.path, "no-such-file"),
      ...withCode,
    ]);
    assertExit(result, 2);
    match(result.stderr, /^ferry: .*no-such-file/);
    assertNoStack(result);
    // A later client's connection is logged after any the failed put could have made.
    assertExit(await runFerry(["ls", address, ...withCode]), 0);
    await waitForLog(log, (text) => count(text, / list \.$/) > lists, "the ls after the put");
    strictEqual(count(log(), / connected$/), connections + 1, log());
  });

  await t.step("`ferry put` uploads a folder as uploaded_<dir>/...", async () => {
    const folder = join(local.path, "d");
    await Deno.mkdir(join(folder, "inner"), { recursive: true });
    await Deno.mkdir(join(folder, "void"));
    await makeFile(join(folder, "f.txt"), 100, 8);
    await makeFile(join(folder, "inner", "g.bin"), 300_000, 9);
    const result = await runFerry(["put", address, folder, ...withCode]);
    assertExit(result, 0);
    deepStrictEqual(await tree(join(root, "uploaded_d")), [
      "f.txt",
      "inner/",
      "inner/g.bin",
      "void/",
    ]);
    strictEqual(
      await sha256File(join(root, "uploaded_d", "inner", "g.bin")),
      await sha256File(join(folder, "inner", "g.bin")),
    );
  });

  // --- where the code comes from ---

  await using home = await tempDir("ferry-cwd-");
  const rightCode = server.code;
  const wrongCode = generateCode();
  wrongCodes.push(wrongCode);
  const wrongFile = join(home.path, "wrong.code");
  // Owner-only, as a code file should be: a readable one adds a warning line on stderr.
  await Deno.writeTextFile(wrongFile, `${wrongCode}\n`, { mode: 0o600 });
  const cwdCode = join(home.path, ".connection_code");

  await t.step("--code-file beats FERRY_CODE, which beats ./.connection_code", async () => {
    await Deno.writeTextFile(cwdCode, `${wrongCode}\n`);
    const fromFlag = await runFerry(["ls", address, ...withCode], {
      cwd: home.path,
      env: { FERRY_CODE: wrongCode },
    });
    assertExit(fromFlag, 0);
    const fromEnv = await runFerry(["ls", address], {
      cwd: home.path,
      env: { FERRY_CODE: rightCode.toLowerCase().replaceAll("-", " ") },
    });
    assertExit(fromEnv, 0);
    await Deno.writeTextFile(cwdCode, `${rightCode}\n`);
    const fromCwd = await runFerry(["ls", address], { cwd: home.path, env: { FERRY_CODE: "" } });
    assertExit(fromCwd, 0);
    match(fromCwd.stdout, /a\.txt/);
  });

  await t.step("a wrong code exits 3 and says the code is wrong", async () => {
    // The named --code-file is used even though FERRY_CODE holds the right code.
    const result = await runFerry(["ls", address, "--code-file", wrongFile], {
      cwd: home.path,
      env: { FERRY_CODE: rightCode },
    });
    assertExit(result, 3);
    assertOneLineError(result);
    match(result.stderr, /wrong connection code/i);
    ok(!result.stderr.includes(wrongCode) && !result.stderr.includes(rightCode));
    await waitForLog(log, (text) => /authentication failed/.test(text), "the failed attempt");
  });

  await t.step("a malformed code is a usage error (exit 2) that does not echo it", async () => {
    const fromEnv = await runFerry(["ls", address], {
      cwd: local.path,
      env: { FERRY_CODE: "not-a-code-at-all" },
    });
    assertExit(fromEnv, 2);
    match(fromEnv.stderr, /^ferry: Invalid connection code in FERRY_CODE/);
    ok(!fromEnv.stderr.includes("not-a-code"));
    assertNoStack(fromEnv);
    const legacy = join(home.path, "legacy.code");
    await Deno.writeTextFile(legacy, "482913\n");
    const fromFile = await runFerry(["ls", address, "--code-file", legacy]);
    assertExit(fromFile, 2);
    match(fromFile.stderr, /Invalid connection code/);
    ok(!fromFile.stderr.includes("482913"));
  });

  await t.step(
    "the code is never taken from argv: --code is refused (exit 2) without echoing it",
    async () => {
      for (const args of [["--code", rightCode], [`--code=${rightCode}`]]) {
        const result = await runFerry(["ls", address, ...args], { cwd: home.path });
        assertExit(result, 2);
        match(result.stderr, /^ferry: There is no option --code\b/);
        match(result.stderr, /--code-file/);
        ok(!result.stderr.includes(rightCode));
        strictEqual(result.stdout, "");
      }
      const get = await runFerry(["get", address, "a.txt", "--code", rightCode], {
        cwd: home.path,
      });
      assertExit(get, 2);
      ok(!await exists(join(home.path, "a.txt")));
    },
  );

  // --- connect ---

  await t.step("`ferry connect` runs ls, get, put, help and quit from a pipe", async () => {
    await using cwd = await tempDir();
    await Deno.writeTextFile(join(cwd.path, "from-shell.txt"), "sent by the shell\n");
    await Deno.writeTextFile(join(cwd.path, "after-quit.txt"), "never sent\n");
    const result = await runFerry(["connect", address, ...withCode], {
      cwd: cwd.path,
      stdin: "ls\nget a.txt\nput from-shell.txt incoming\nhelp\nquit\nput after-quit.txt\n",
    });
    assertExit(result, 0);
    match(result.stdout, /^file\s+1000 B\s.*\ba\.txt$/m);
    match(result.stdout, /Commands:/);
    match(result.stdout, /quit/);
    strictEqual(await sha256File(join(cwd.path, "a.txt")), await sha256File(join(root, "a.txt")));
    strictEqual(
      await Deno.readTextFile(join(root, "incoming", "uploaded_from-shell.txt")),
      "sent by the shell\n",
    );
    ok(!await exists(join(root, "uploaded_after-quit.txt")), "nothing runs after quit");
  });

  await t.step("`ferry connect` exits non-zero at the first failing scripted command", async () => {
    await using cwd = await tempDir();
    await Deno.writeTextFile(join(cwd.path, "later.txt"), "not sent\n");
    const result = await runFerry(["connect", address, ...withCode], {
      cwd: cwd.path,
      stdin: "get missing-file.txt\nput later.txt\n",
    });
    notStrictEqual(result.code, 0, show(result));
    match(result.stderr, /missing-file\.txt/);
    assertNoStack(result);
    ok(!await exists(join(root, "uploaded_later.txt")), "the script stops at the failure");
  });

  // --- scoped client permissions ---

  await t.step(
    "client `get` runs with only --allow-net=<host:port> --allow-read=<out>,<code> --allow-write=<out>",
    async () => {
      await using out = await tempDir();
      const result = await runFerry([
        "get",
        address,
        "folder",
        "big.bin",
        "-o",
        out.path,
        ...withCode,
      ], {
        permissions: [
          `--allow-net=${address}`,
          `--allow-read=${out.path},${codeFile}`,
          `--allow-write=${out.path}`,
        ],
      });
      assertExit(result, 0);
      strictEqual(
        await sha256File(join(out.path, "big.bin")),
        await sha256File(join(root, "big.bin")),
      );
      ok(await exists(join(out.path, "folder", "empty")));
    },
  );

  await t.step(
    "client `get` makes a missing -o folder with only --allow-read=<out>,<code> --allow-write=<out>",
    async () => {
      await using base = await tempDir();
      const out = join(base.path, "new", "deeper");
      const result = await runFerry(["get", address, "a.txt", "-o", out, ...withCode], {
        permissions: [
          `--allow-net=${address}`,
          `--allow-read=${out},${codeFile}`,
          `--allow-write=${out}`,
        ],
      });
      assertExit(result, 0);
      strictEqual(await sha256File(join(out, "a.txt")), await sha256File(join(root, "a.txt")));
    },
  );

  await t.step(
    "client `put` runs with only --allow-net=<host:port> --allow-read=<file>,<code>",
    async () => {
      await using src = await tempDir();
      const file = join(src.path, "scoped.txt");
      await Deno.writeTextFile(file, "scoped upload\n");
      const result = await runFerry(["put", address, file, ...withCode], {
        permissions: [`--allow-net=${address}`, `--allow-read=${file},${codeFile}`],
      });
      assertExit(result, 0);
      strictEqual(await Deno.readTextFile(join(root, "uploaded_scoped.txt")), "scoped upload\n");
    },
  );

  await t.step(
    "client `ls` runs with only --allow-net=<host:port> --allow-read=<code>; FERRY_CODE is skipped without env permission",
    async () => {
      const result = await runFerry(["ls", address, ...withCode], {
        permissions: [`--allow-net=${address}`, `--allow-read=${codeFile}`],
      });
      assertExit(result, 0);
      match(result.stdout, /a\.txt/);
      // No --code-file: a wrong FERRY_CODE is not read (no env permission, and no prompt), so
      // ./.connection_code supplies the code.
      const fromCwd = await runFerry(["ls", address], {
        cwd: home.path,
        env: { FERRY_CODE: wrongCode },
        permissions: [`--allow-net=${address}`, `--allow-read=${cwdCode}`],
      });
      assertExit(fromCwd, 0);
      match(fromCwd.stdout, /a\.txt/);
    },
  );

  // --- two clients ---

  await t.step(
    "an idle authenticated `connect` session does not block another client's get",
    async () => {
      await using out = await tempDir();
      const session = new Deno.Command(DENO, {
        args: ["run", "--no-prompt", "-A", MAIN, "connect", address, ...withCode],
        env: { NO_COLOR: "1" },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(session.stderr).text();
      const reader = session.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const writer = session.stdin.getWriter();
      let stdout = "";
      try {
        await writer.write(encoder.encode("ls\n"));
        while (!stdout.includes("a.txt")) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`connect ended early:\n${stdout}\n${await stderr}`);
          stdout += value;
        }
        // The session is authenticated and now waits for its next command.
        const get = await runFerry(["get", address, "big.bin", "-o", out.path, ...withCode], {
          timeoutMs: 20_000,
        });
        assertExit(get, 0);
        strictEqual(
          await sha256File(join(out.path, "big.bin")),
          await sha256File(join(root, "big.bin")),
        );
        await writer.write(encoder.encode("quit\n"));
        await writer.close();
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
          stdout += chunk.value;
        }
        strictEqual((await session.status).code, 0, await stderr);
      } finally {
        try {
          session.kill("SIGKILL");
        } catch {
          // already exited
        }
        await session.status;
        await stderr;
        await reader.cancel().catch(() => {});
        await writer.close().catch(() => {});
      }
    },
  );

  // --- the server's log ---

  await t.step("`ferry serve` logs connections, authentication results and transfers", async () => {
    await waitForLog(
      log,
      (text) => / put uploaded_scoped\.txt: \d+ bytes received/.test(text),
      "the scoped put",
    );
    const text = log();
    match(text, / code=default connected$/m);
    match(text, / code=default authenticated$/m);
    match(text, / authentication failed: wrong code \(identifier 0000, code default\)$/m);
    match(text, / code=default get big\.bin: 3145735 bytes sent$/m);
    match(text, / put uploaded_notes\.txt: 5000 bytes received$/m);
    match(text, / put incoming\/uploaded_report\.bin: \d+ bytes received$/m);
  });

  await t.step(
    "`ferry serve` does not log a folder `get` as refused: is-dir is how the client learns to list it",
    () => {
      const text = log();
      // The folder download above asked `get folder` first, as every folder download does.
      match(text, / get folder\/sub\/y\.bin: \d+ bytes sent$/m);
      ok(!/ get refused: folder is a folder/.test(text), text);
    },
  );

  await t.step("`ferry serve` never logs the code, right or wrong, in any spelling", () => {
    const text = log();
    for (const code of [rightCode, ...wrongCodes]) {
      for (const spelling of [code, normaliseCode(code), code.toLowerCase()]) {
        ok(!text.includes(spelling), `log contains ${spelling}`);
        ok(!text.toUpperCase().includes(spelling.toUpperCase()), `log contains ${spelling}`);
      }
    }
  });
});

Deno.test("`ferry serve --upload-prefix` changes where uploads land", async () => {
  await using served = await tempDir("ferry-served-");
  await using local = await tempDir("ferry-local-");
  await using server = await startServe(served.path, { args: ["--upload-prefix", "in-"] });
  const file = join(local.path, "photo.jpg");
  await makeFile(file, 20_000, 10);
  const result = await runFerry(["put", server.address, file, "--code-file", server.codeFile]);
  assertExit(result, 0);
  deepStrictEqual(await tree(served.path), ["in-photo.jpg"]);
  strictEqual(await sha256File(join(served.path, "in-photo.jpg")), await sha256File(file));
});

// --- usage ----------------------------------------------------------------------------------------

Deno.test("`ferry put --json` names a file the same in its start, progress and done events", async () => {
  await using served = await tempDir("ferry-served-");
  await using local = await tempDir("ferry-local-");
  await using server = await startServe(served.path);
  await Deno.mkdir(join(local.path, "docs"));
  await makeFile(join(local.path, "docs", "a.bin"), 20_000, 12);
  const result = await runFerry(
    ["put", server.address, join(local.path, "docs"), "--json", "--code-file", server.codeFile],
  );
  assertExit(result, 0);
  const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line))
    .filter((event) => event.event !== "mkdir");
  deepStrictEqual(
    events.map((event) => [event.event, event.name]).filter(([kind]) => kind !== "progress"),
    [["start", "docs/a.bin"], ["done", "docs/a.bin"]],
  );
  ok(events.every((event) => event.name === "docs/a.bin"), result.stdout);
  // The server's name for it, with the upload prefix, comes as `remote` in `done`.
  strictEqual(events.at(-1).remote, "uploaded_docs/a.bin");
});

Deno.test("ferry's usage: help, version and usage errors", async (t) => {
  await t.step("every command's --help exits 0 and shows Usage, Options and Examples", async () => {
    const names = COMMANDS.map((command) => command.spec.name);
    ok(names.length >= 6);
    const results = await Promise.all(names.map((name) => runFerry([name, "--help"])));
    for (const [index, result] of results.entries()) {
      assertExit(result, 0);
      match(result.stdout, new RegExp(`^Usage: ferry ${names[index]}\\b`), names[index]);
      match(result.stdout, /^Options:$/m, names[index]);
      match(result.stdout, /^Examples:$/m, names[index]);
      strictEqual(result.stderr, "");
    }
    const top = await runFerry(["--help"]);
    assertExit(top, 0);
    for (const name of names) match(top.stdout, new RegExp(`^  ${name}\\b`, "m"));
  });

  await t.step("--version prints the version from lib/version.ts", async () => {
    const result = await runFerry(["--version"]);
    assertExit(result, 0);
    strictEqual(result.stdout, `ferry ${VERSION}\n`);
  });

  await t.step("an unknown flag exits 2 with a did-you-mean hint and the usage", async () => {
    const result = await runFerry(["ls", "127.0.0.1", "--jsno"]);
    assertExit(result, 2);
    match(result.stderr, /^ferry: Unknown option --jsno: did you mean --json\?$/m);
    match(result.stderr, /^Usage: ferry ls /m);
    strictEqual(result.stdout, "");
    assertNoStack(result);
  });

  await t.step("an unknown command exits 2 with a did-you-mean hint", async () => {
    const result = await runFerry(["gte", "127.0.0.1", "a.txt"]);
    assertExit(result, 2);
    match(result.stderr, /^ferry: Unknown command "gte": did you mean "get"\?$/m);
    assertNoStack(result);
  });

  await t.step("missing arguments exit 2 and name what is missing", async () => {
    const cases = [["ls"], ["get", "127.0.0.1"], ["put", "127.0.0.1"], ["connect"]];
    const results = await Promise.all(cases.map((args) => runFerry(args)));
    for (const [index, result] of results.entries()) {
      assertExit(result, 2);
      match(result.stderr, /^ferry: Missing /, cases[index]!.join(" "));
      match(result.stderr, /^Usage: ferry /m);
      assertNoStack(result);
    }
  });

  await t.step(
    "a refused connection is one line on stderr with no stack trace (exit 1)",
    async () => {
      await using dir = await tempDir();
      const codeFile = join(dir.path, "code");
      await makeCodeFile(codeFile);
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      listener.close();
      const result = await runFerry(["ls", `127.0.0.1:${port}`, "--code-file", codeFile]);
      assertExit(result, 1);
      assertOneLineError(result);
    },
  );
});
