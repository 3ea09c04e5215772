/**
 * Storing a connection code someone gave you: `ferry code --save` takes it from standard input or
 * asks for it without echo, writes it with mode 0600 and never prints it; `echo CODE | ferry code`
 * is refused rather than silently making another code; a client with no code asks for it on a
 * terminal; and a code file other users can read is used with a warning.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { formatCode, generateCode } from "../lib/code.ts";
import { readFirstLine, readHiddenLine } from "../lib/cli/code_input.ts";
import { InterruptedError, UsageError } from "../lib/errors.ts";
import { DENO, MAIN, runFerry, type RunResult, startServe, tempDir } from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** Every spelling of `code` an echo could take. */
function spellings(code: string): string[] {
  const bare = code.replaceAll("-", "");
  return [code, bare, code.toLowerCase(), bare.toLowerCase()];
}

function assertUnshown(result: RunResult, code: string): void {
  for (const spelling of spellings(code)) {
    ok(!result.stdout.includes(spelling), `stdout holds the code\n${show(result)}`);
    ok(!result.stderr.includes(spelling), `stderr holds the code\n${show(result)}`);
  }
}

/** A reader that hands out `chunks`, one per read, then the end of input. */
function fakeReader(...chunks: (string | number[])[]) {
  const queue = chunks.map((chunk) =>
    typeof chunk === "string" ? new TextEncoder().encode(chunk) : Uint8Array.from(chunk)
  );
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      const count = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, count));
      if (count < next.length) queue.unshift(next.subarray(count));
      return Promise.resolve(count);
    },
  };
}

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

Deno.test("`ferry code --save` writes a piped code with mode 0600 and never prints it", async () => {
  await using dir = await tempDir();
  const code = generateCode();
  const result = await runFerry(["code", "--save"], {
    cwd: dir.path,
    stdin: `  ${code.toLowerCase()}  \nsecond line ignored\n`,
  });
  strictEqual(result.code, 0, show(result));
  const path = join(dir.path, ".connection_code");
  strictEqual(await Deno.readTextFile(path), `${code}\n`);
  if (Deno.build.os !== "windows") strictEqual(await mode(path), 0o600);
  ok(result.stderr.includes("Saved the code in .connection_code (mode 0600)"), show(result));
  strictEqual(result.stdout, "");
  assertUnshown(result, code);
});

Deno.test("`ferry code --save --file PATH` writes PATH, and the saved code opens a session", async () => {
  await using dir = await tempDir();
  await using served = await tempDir();
  await Deno.writeTextFile(join(served.path, "hello.txt"), "hello");
  await using server = await startServe(served.path);
  const path = join(dir.path, "given.code");
  const saved = await runFerry(["code", "--save", "--file", path], { stdin: server.code });
  strictEqual(saved.code, 0, show(saved));
  const listed = await runFerry(["ls", server.address, "--code-file", path]);
  strictEqual(listed.code, 0, show(listed));
  ok(listed.stdout.includes("hello.txt"), show(listed));
});

Deno.test("`ferry code --save` refuses an invalid code with exit 2 and does not print it", async () => {
  await using dir = await tempDir();
  const nearMiss = generateCode().slice(0, -1);
  for (const input of [nearMiss, `${nearMiss}U`, ""]) {
    const result = await runFerry(["code", "--save"], { cwd: dir.path, stdin: `${input}\n` });
    strictEqual(result.code, 2, show(result));
    if (input !== "") assertUnshown(result, input);
  }
  const entries = await Array.fromAsync(Deno.readDir(dir.path));
  deepStrictEqual(entries, [], "nothing is written");
});

Deno.test("`ferry code --save` keeps an existing different code unless --force", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, ".connection_code");
  const old = generateCode();
  const given = generateCode();
  await Deno.writeTextFile(path, `${old}\n`, { mode: 0o644 });
  await Deno.chmod(path, 0o644);

  const refused = await runFerry(["code", "--save"], { cwd: dir.path, stdin: given });
  strictEqual(refused.code, 1, show(refused));
  ok(refused.stderr.includes("--force"), show(refused));
  strictEqual(await Deno.readTextFile(path), `${old}\n`);
  assertUnshown(refused, given);
  assertUnshown(refused, old);

  const same = await runFerry(["code", "--save"], { cwd: dir.path, stdin: old });
  strictEqual(same.code, 0, `the same code again is fine\n${show(same)}`);
  if (Deno.build.os !== "windows") strictEqual(await mode(path), 0o600, "and becomes 0600");

  const forced = await runFerry(["code", "--save", "--force"], { cwd: dir.path, stdin: given });
  strictEqual(forced.code, 0, show(forced));
  strictEqual(await Deno.readTextFile(path), `${given}\n`);
  assertUnshown(forced, given);
});

Deno.test("`echo CODE | ferry code` is refused with a hint to `ferry code --save` and writes nothing", async () => {
  await using dir = await tempDir();
  const code = generateCode();
  const result = await runFerry(["code"], { cwd: dir.path, stdin: `${code}\n` });
  strictEqual(result.code, 2, show(result));
  ok(result.stderr.includes("ferry code --save"), show(result));
  assertUnshown(result, code);
  deepStrictEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
});

Deno.test("`ferry code` with standard input at /dev/null still makes a new code", async () => {
  await using dir = await tempDir();
  const result = await runFerry(["code"], { cwd: dir.path });
  strictEqual(result.code, 0, show(result));
  strictEqual(
    await Deno.readTextFile(join(dir.path, ".connection_code")),
    `${formatCode(result.stdout.trim())}\n`,
  );
});

Deno.test({
  name: "a code file other users can read makes `ferry ls` warn on stderr, and still work",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using served = await tempDir();
    await using dir = await tempDir();
    await Deno.writeTextFile(join(served.path, "hello.txt"), "hello");
    await using server = await startServe(served.path);
    const path = join(dir.path, ".connection_code");
    await Deno.writeTextFile(path, `${server.code}\n`);
    await Deno.chmod(path, 0o644);

    const result = await runFerry(["ls", server.address], { cwd: dir.path });
    strictEqual(result.code, 0, show(result));
    ok(result.stdout.includes("hello.txt"), show(result));
    ok(
      result.stderr.includes(
        "ferry: warning: ./.connection_code can be read by other users: chmod 600 ./.connection_code",
      ),
      show(result),
    );

    await Deno.chmod(path, 0o600);
    const quiet = await runFerry(["ls", server.address], { cwd: dir.path });
    strictEqual(quiet.code, 0, show(quiet));
    ok(!quiet.stderr.includes("warning"), show(quiet));
  },
});

Deno.test("a client with no code and no terminal fails naming `ferry code --save`", async () => {
  await using dir = await tempDir();
  const result = await runFerry(["ls", "127.0.0.1:1"], {
    cwd: dir.path,
    permissions: ["--allow-read", "--allow-net"],
  });
  strictEqual(result.code, 2, show(result));
  ok(result.stderr.includes("ferry code --save"), show(result));
});

Deno.test("`readHiddenLine()` reads up to Enter, applying Backspace, Ctrl-U and skipping arrow keys", async () => {
  strictEqual(await readHiddenLine(fakeReader("ab", "c\r")), "abc");
  strictEqual(await readHiddenLine(fakeReader("abx", [0x7f], "c\n", "ignored")), "abc");
  strictEqual(await readHiddenLine(fakeReader("abx", [0x08], "c\r")), "abc");
  strictEqual(await readHiddenLine(fakeReader("junk", [0x15], "ok\r")), "ok");
  strictEqual(await readHiddenLine(fakeReader("a\x1b[Db\x1bOC", "\r")), "ab");
  strictEqual(await readHiddenLine(fakeReader([0xc3], [0xa9], "\r")), "é");
  strictEqual(await readHiddenLine(fakeReader([0x7f, 0x7f], "\r")), "");
});

Deno.test("`readHiddenLine()` ends on Ctrl-C as interrupted, on Ctrl-D or end of input as no code", async () => {
  await rejects(readHiddenLine(fakeReader("abc", [0x03])), InterruptedError);
  await rejects(readHiddenLine(fakeReader("abc", [0x04])), UsageError);
  await rejects(readHiddenLine(fakeReader("abc")), UsageError);
  await rejects(readHiddenLine(fakeReader("x".repeat(2000))), UsageError);
});

Deno.test("`readFirstLine()` returns the first line trimmed and refuses an endless one", async () => {
  strictEqual(await readFirstLine(fakeReader("  AB", "CD \r\nsecond")), "ABCD");
  strictEqual(await readFirstLine(fakeReader("")), "");
  strictEqual(await readFirstLine(fakeReader()), "");
  await rejects(readFirstLine(fakeReader("x".repeat(5000))), UsageError);
  await rejects(readFirstLine(fakeReader([0xff, 0x0a])), UsageError);
});

// --- on a real terminal (tmux) --------------------------------------------------------------------

const HAS_TMUX =
  (await new Deno.Command("sh", { args: ["-c", "command -v tmux"] }).output()).success;

async function tmux(socket: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("tmux", { args: ["-S", socket, ...args] }).output();
  return new TextDecoder().decode(output.stdout);
}

/** Polls the pane until `pattern` shows, or fails after 15 s. */
async function waitForScreen(socket: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (true) {
    const screen = await tmux(socket, "capture-pane", "-p", "-t", "ferry");
    if (pattern.test(screen)) return screen;
    if (Date.now() > deadline) throw new Error(`screen never matched ${pattern}:\n${screen}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs `ferry ARGS` in a tmux pane in `cwd`, then `; echo EXIT=$?` and a pause. */
async function inTmux(socket: string, cwd: string, args: string[]): Promise<void> {
  const words = [DENO, "run", "-q", "-A", MAIN, ...args].map((word) => `'${word}'`).join(" ");
  await tmux(
    socket,
    "new-session",
    "-d",
    "-s",
    "ferry",
    "-x",
    "120",
    "-y",
    "30",
    "-c",
    cwd,
    `env -u FERRY_CODE ${words}; echo EXIT=$?; sleep 30`,
  );
}

Deno.test({
  name: "`ferry ls` with no code asks for it on a terminal without showing what is typed",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await Deno.writeTextFile(join(served.path, "hello.txt"), "hello");
    await using server = await startServe(served.path);
    const socket = join(work.path, "tmux.sock");
    await inTmux(socket, work.path, ["ls", server.address]);
    try {
      await waitForScreen(socket, /Connection code \(not shown\):/);
      // A typo corrected with Backspace, in lowercase: every spelling must stay off the screen.
      await tmux(socket, "send-keys", "-t", "ferry", "-l", `${server.code.toLowerCase()}x`);
      await tmux(socket, "send-keys", "-t", "ferry", "BSpace", "Enter");
      const screen = await waitForScreen(socket, /EXIT=\d+/);
      ok(screen.includes("hello.txt") && screen.includes("EXIT=0"), screen);
      for (const spelling of spellings(server.code)) ok(!screen.includes(spelling), screen);
      const names = (await Array.fromAsync(Deno.readDir(work.path))).map((entry) => entry.name);
      deepStrictEqual(names, ["tmux.sock"], "the typed code is not saved");
    } finally {
      await tmux(socket, "kill-server");
    }
  },
});

Deno.test({
  name: "`ferry code --save` on a terminal asks without echo and saves the code with mode 0600",
  ignore: !HAS_TMUX,
  async fn() {
    await using work = await tempDir();
    const socket = join(work.path, "tmux.sock");
    const code = generateCode();
    await inTmux(socket, work.path, ["code", "--save"]);
    try {
      await waitForScreen(socket, /Connection code \(not shown\):/);
      await tmux(socket, "send-keys", "-t", "ferry", "-l", code);
      await tmux(socket, "send-keys", "-t", "ferry", "Enter");
      const screen = await waitForScreen(socket, /EXIT=\d+/);
      ok(screen.includes("Saved the code in .connection_code (mode 0600)"), screen);
      for (const spelling of spellings(code)) ok(!screen.includes(spelling), screen);
      const path = join(work.path, ".connection_code");
      strictEqual(await Deno.readTextFile(path), `${code}\n`);
      strictEqual(await mode(path), 0o600);
    } finally {
      await tmux(socket, "kill-server");
    }
  },
});
