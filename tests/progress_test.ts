/**
 * The terminal side of issue 3: on a terminal `get` and `put` draw a progress bar (bytes,
 * percent, rate, ETA) and print a summary line; with `--quiet` or `--json` they print no escape
 * codes even there. The CLI runs under a real pseudo-terminal: util-linux `script`, or tmux when
 * `script` is missing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DENO, MAIN, type ServeProcess, startServe, tempDir } from "./_helpers.ts";

const MiB = 1024 * 1024;

async function onPath(tool: string): Promise<boolean> {
  try {
    const found = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return found.success;
  } catch {
    return false;
  }
}

const TERMINAL: "script" | "tmux" | undefined = (await onPath("script"))
  ? "script"
  : (await onPath("tmux"))
  ? "tmux"
  : undefined;

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Runs `ferry ARGS...` under a pseudo-terminal; returns its exit status and everything it drew. */
async function runInTerminal(
  args: string[],
  columns = 160,
): Promise<{ code: number; screen: string }> {
  // `deno run -q`: on a terminal with a size, Deno itself clears a line (`ESC[0G ESC[2K ESC[J`)
  // while it loads modules; -q silences the runtime, so what remains is ferry's own output.
  const command = ["env", "NO_COLOR=1", DENO, "run", "-q", "--no-prompt", "-A", MAIN, ...args]
    .map(shellQuote).join(" ");
  if (TERMINAL === "script") {
    const output = await new Deno.Command("script", {
      args: ["-qfec", `stty cols ${columns} rows 40; ${command}`, "/dev/null"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: output.code, screen: new TextDecoder().decode(output.stdout) };
  }
  // tmux: a detached session that waits until its pane is piped to a file, then runs the command.
  await using dir = await tempDir("ferry-tmux-");
  const socket = ["-S", join(dir.path, "socket")];
  const raw = join(dir.path, "raw");
  const status = join(dir.path, "status");
  const tmux = async (...tmuxArgs: string[]) => {
    const output = await new Deno.Command("tmux", { args: [...socket, ...tmuxArgs] }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
  };
  const tmuxCall = ["tmux", ...socket].map(shellQuote).join(" ");
  await tmux(
    "new-session",
    "-d",
    "-x",
    String(columns),
    "-y",
    "40",
    `${tmuxCall} wait-for go; ${command}; echo $? > ${
      shellQuote(status)
    }; ${tmuxCall} wait-for -S done`,
  );
  try {
    await tmux("pipe-pane", "-o", `cat >> ${shellQuote(raw)}`);
    await tmux("wait-for", "-S", "go");
    await tmux("wait-for", "done");
  } finally {
    await new Deno.Command("tmux", { args: [...socket, "kill-server"] }).output();
  }
  return {
    code: Number((await Deno.readTextFile(status)).trim()),
    screen: await Deno.readTextFile(raw),
  };
}

/** A file of `size` bytes built from one random MiB (fast to make; content does not matter). */
async function makeLargeFile(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = crypto.getRandomValues(new Uint8Array(MiB / 16)).slice();
  const mib = new Uint8Array(MiB);
  for (let offset = 0; offset < MiB; offset += block.length) mib.set(block, offset);
  for (let written = 0; written < size; written += MiB) {
    const part = mib.subarray(0, Math.min(MiB, size - written));
    let offset = 0;
    while (offset < part.length) offset += await file.write(part.subarray(offset));
  }
}

function client(command: string, serve: ServeProcess, args: string[]): string[] {
  return [command, serve.address, ...args, "--code-file", serve.codeFile];
}

/** The progress bar of cli-progress's `shades_classic` preset: filled and empty cells. */
const BAR = /\[[\u2588\u2591]{24}\] \d{1,3}% /;

Deno.test({
  name:
    "on a terminal, `get` and `put` draw a progress bar with percent, rate and ETA, then a summary line",
  ignore: TERMINAL === undefined,
  async fn() {
    await using dir = await tempDir();
    const srv = join(dir.path, "srv");
    const out = join(dir.path, "out");
    await Deno.mkdir(srv);
    await Deno.mkdir(out);
    await makeLargeFile(join(srv, "movie.bin"), 64 * MiB);
    await using serve = await startServe(srv);

    const get = await runInTerminal(client("get", serve, ["movie.bin", "-o", out]));
    assert.equal(get.code, 0, get.screen);
    assert.match(get.screen, BAR);
    assert.match(get.screen, /movie\.bin \[.*\] \d+% [\d.]+ (B|KiB|MiB)\/64\.0 MiB .* ETA /);
    assert.match(get.screen, /100% 64\.0 MiB\/64\.0 MiB [\d.]+ [KMG]?i?B\/s ETA/);
    assert.match(get.screen, /Downloaded movie\.bin \(64\.0 MiB in [\d.]+ s, [\d.]+ \w+\/s\)/);
    assert.equal((await Deno.stat(join(out, "movie.bin"))).size, 64 * MiB);

    const put = await runInTerminal(client("put", serve, [join(out, "movie.bin")]));
    assert.equal(put.code, 0, put.screen);
    assert.match(put.screen, BAR);
    assert.match(put.screen, / ETA /);
    assert.match(put.screen, /Uploaded uploaded_movie\.bin \(64\.0 MiB in /);
  },
});

Deno.test({
  name: "on a terminal, `--quiet` and `--json` draw no progress bar and print no escape codes",
  ignore: TERMINAL === undefined,
  async fn() {
    await using dir = await tempDir();
    const srv = join(dir.path, "srv");
    await Deno.mkdir(srv);
    await makeLargeFile(join(srv, "data.bin"), 16 * MiB);
    await using serve = await startServe(srv);

    await Deno.mkdir(join(dir.path, "q"));
    await Deno.mkdir(join(dir.path, "j"));
    for (
      const args of [
        ["data.bin", "-o", join(dir.path, "q"), "--quiet"],
        ["data.bin", "-o", join(dir.path, "j"), "--json"],
      ]
    ) {
      const run = await runInTerminal(client("get", serve, args));
      assert.equal(run.code, 0, run.screen);
      assert.ok(!run.screen.includes("\x1b"), JSON.stringify(run.screen));
      assert.doesNotMatch(run.screen, BAR);
    }
    assert.equal((await Deno.stat(join(dir.path, "j", "data.bin"))).size, 16 * MiB);
  },
});

/** What a terminal shows of `screen`, line by line: each redraw (after `\r`) on its own, escape codes removed. */
function drawnLines(screen: string): string[] {
  // deno-lint-ignore no-control-regex
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").split(/[\r\n]+/).filter((line) =>
    line !== ""
  );
}

Deno.test({
  name:
    "on a 50-column terminal, the bar fits the width and keeps percent, rate and ETA; a folder shows one overall bar and a summary",
  ignore: TERMINAL === undefined,
  async fn() {
    await using dir = await tempDir();
    const srv = join(dir.path, "srv");
    const out = join(dir.path, "out");
    await Deno.mkdir(join(srv, "folder"), { recursive: true });
    await Deno.mkdir(out);
    await makeLargeFile(join(srv, "a-file-with-a-rather-long-name.bin"), 64 * MiB);
    for (const name of ["one.bin", "two.bin", "three.bin"]) {
      await makeLargeFile(join(srv, "folder", name), 16 * MiB);
    }
    await using serve = await startServe(srv);

    const single = await runInTerminal(
      client("get", serve, ["a-file-with-a-rather-long-name.bin", "-o", out]),
      50,
    );
    assert.equal(single.code, 0, single.screen);
    const bars = drawnLines(single.screen).filter((line) => line.includes("%"));
    assert.ok(bars.length > 0, single.screen);
    for (const line of bars) {
      assert.ok(line.length <= 49, `${line.length} columns: ${line}`);
      assert.match(line, /\d+% .*ETA \S+$/, line);
    }
    assert.ok(bars.some((line) => /\/s ETA/.test(line)), bars.join("\n"));

    const folder = await runInTerminal(client("get", serve, ["folder", "-o", out]), 50);
    assert.equal(folder.code, 0, folder.screen);
    const lines = drawnLines(folder.screen);
    assert.ok(lines.some((line) => /^\d\/3 files \[/.test(line)), lines.join("\n"));
    assert.ok(!lines.some((line) => /one\.bin|two\.bin|three\.bin/.test(line)), lines.join("\n"));
    assert.match(folder.screen, /Downloaded 3 files \(48\.0 MiB\) in /);
  },
});
