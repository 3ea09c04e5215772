/**
 * `ferry connect` on a real terminal (tmux): it prompts with the remote folder, runs commands,
 * recalls history with the Up arrow (line editing from `node:readline`), reports a bad command
 * without ending the session, completes commands and paths with Tab, stops a transfer on Ctrl-C
 * and comes back to the prompt (the same get resumes it), clears the line on Ctrl-C at the
 * prompt, reconnects by itself when the server closed an idle session, and leaves on `quit` or
 * Ctrl-D with the user's shell on a fresh line.
 *
 * A terminal gives no signal when a program has drawn something, so each step polls the screen
 * for the text it expects, under a deadline. readline takes a Tab as completion only when it
 * arrives on its own, so the text before it is sent first and waited for.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DENO,
  exists,
  MAIN,
  makeFile,
  partialGrows,
  partialPath,
  type ServeProcess,
  sha256File,
  startServe,
  tempDir,
} from "./_helpers.ts";

const HAS_TMUX =
  (await new Deno.Command("sh", { args: ["-c", "command -v tmux"] }).output()).success;

/** What the pane shows after the shell ended: its exit status, on a line of its own. */
const EXITED = /^\[exited (\d+)\]$/m;

/** `ferry connect` in a tmux pane of 120x30, driven by keys and read from the screen. */
class TmuxShell implements AsyncDisposable {
  readonly #socket: string;

  private constructor(socket: string) {
    this.#socket = socket;
  }

  /** Starts `ferry connect` to `server` in `cwd`; the pane stays open after it ends. */
  static async start(server: ServeProcess, cwd: string): Promise<TmuxShell> {
    const ferry = [DENO, "run", "-q", "-A", MAIN, "connect", server.address, "--code-file"]
      .concat(server.codeFile).map((word) => `'${word}'`).join(" ");
    const shell = new TmuxShell(join(cwd, ".tmux.sock"));
    await shell.#tmux(
      ["new-session", "-d", "-s", "ferry", "-x", "120", "-y", "30", "-c", cwd],
      `${ferry}; echo "[exited $?]"; sleep 60`,
    );
    await shell.waitFor(/^ferry:\/>\s*$/m);
    return shell;
  }

  async #tmux(args: string[], ...rest: string[]): Promise<string> {
    const output = await new Deno.Command("tmux", { args: ["-S", this.#socket, ...args, ...rest] })
      .output();
    return new TextDecoder().decode(output.stdout);
  }

  /** Types `text` as it is (no key names). */
  async type(text: string): Promise<void> {
    await this.#tmux(["send-keys", "-t", "ferry", "-l", text]);
  }

  /** Presses keys by name: `Enter`, `Tab`, `C-c`, `C-d`, `Up`. */
  async press(...keys: string[]): Promise<void> {
    await this.#tmux(["send-keys", "-t", "ferry", ...keys]);
  }

  /** Types `line`, waits until it shows after the prompt, then presses Enter. */
  async run(line: string): Promise<void> {
    await this.type(line);
    await this.waitFor(new RegExp(`> ${escape(line)}\\s*$`, "m"));
    await this.press("Enter");
  }

  /** The pane's text, trailing blank lines left out. */
  async screen(): Promise<string> {
    return (await this.#tmux(["capture-pane", "-p", "-t", "ferry"])).trimEnd();
  }

  /** Polls the pane until `pattern` shows, or fails after 15 s with what it showed. */
  async waitFor(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + 15_000;
    while (true) {
      const screen = await this.screen();
      if (pattern.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`screen never matched ${pattern}:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The last line on the pane (where the cursor's line is, once the pane settled). */
  async lastLine(): Promise<string> {
    return (await this.screen()).split("\n").at(-1) ?? "";
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#tmux(["kill-server"]);
  }
}

function escape(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}

Deno.test({
  name: "`ferry connect` on a terminal prompts, runs commands, recalls history and quits",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await Deno.writeTextFile(join(served.path, "hello.txt"), "hello");
    await using server = await startServe(served.path);
    await using shell = await TmuxShell.start(server, work.path);
    await shell.run("ls");
    await shell.waitFor(/hello\.txt/);
    await shell.run("get hello.txt copy.txt");
    await shell.waitFor(/Downloaded hello\.txt/); // named as on the server, as ferry get --as does
    assert.equal(await Deno.readTextFile(join(work.path, "copy.txt")), "hello");

    await shell.waitFor(/^ferry:\/>\s*$/m);
    await shell.press("Up");
    await shell.waitFor(/ferry:\/> get hello\.txt copy\.txt\s*$/);
    await shell.press("C-u");
    await shell.run("bogus");
    await shell.waitFor(/error: Unknown command "bogus"/);
    await shell.run("quit");
    assert.match(await shell.waitFor(EXITED), /^ferry:\/> quit\n\[exited 0\]$/m);
  },
});

Deno.test({
  name:
    "`ferry connect`: Ctrl-C at the prompt clears the line and stays; Ctrl-D leaves on a fresh line",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await using server = await startServe(served.path);
    await using shell = await TmuxShell.start(server, work.path);
    await shell.type("half a comm");
    await shell.waitFor(/ferry:\/> half a comm$/);
    await shell.press("C-c");
    await shell.waitFor(/^ferry:\/> half a comm\^C\nferry:\/>$/m);
    await shell.run("pwd");
    await shell.waitFor(/^ferry:\/> pwd\n\/\nferry:\/>$/m);
    assert.doesNotMatch(await shell.screen(), EXITED, "Ctrl-C did not end the shell");

    await shell.press("C-d");
    // The prompt's line ends before the user's shell writes: nothing follows it on that line.
    assert.match(await shell.waitFor(EXITED), /^ferry:\/>\n\[exited 0\]$/m);
  },
});

Deno.test({
  name: "`ferry connect`: Tab completes a command, a path in a subfolder, and a name with a space",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await Deno.mkdir(join(served.path, "photos", "2024"), { recursive: true });
    await Deno.writeTextFile(join(served.path, "photos", "2024", "deep.png"), "deep");
    await Deno.writeTextFile(join(served.path, "photos", "one.jpg"), "one");
    await Deno.writeTextFile(join(served.path, "my file.txt"), "spaced");
    await Deno.writeTextFile(join(served.path, "my folder.txt"), "other");
    await using server = await startServe(served.path);
    await using shell = await TmuxShell.start(server, work.path);

    const complete = async (typed: string, shown: RegExp) => {
      await shell.type(typed);
      await shell.waitFor(new RegExp(`> .*${escape(typed)}$`, "m"));
      await shell.press("Tab");
      await shell.waitFor(shown);
    };
    await complete("pw", /ferry:\/> pwd\s*$/);
    await shell.press("Enter");
    await shell.waitFor(/^\/$/m);

    await complete("get ph", /> get photos\/$/);
    await complete("2", /> get photos\/2024\/$/);
    await shell.press("Tab");
    await shell.waitFor(/> get photos\/2024\/deep\.png\s*$/);
    await shell.press("Enter");
    await shell.waitFor(/Downloaded photos\/2024\/deep\.png/);

    await complete("get my", /> get my\\ f$/);
    await complete("i", /> get my\\ file\.txt\s*$/);
    await shell.press("Enter");
    await shell.waitFor(/Downloaded my file\.txt/);
    assert.equal(await Deno.readTextFile(join(work.path, "my file.txt")), "spaced");

    await complete("cd p", /> cd photos\/$/);
    await shell.press("Enter");
    await shell.waitFor(/^ferry:\/photos>\s*$/m);
    await complete("get o", /ferry:\/photos> get one\.jpg\s*$/);
    await shell.press("Enter");
    await shell.waitFor(/Downloaded photos\/one\.jpg/);
    assert.equal(await Deno.readTextFile(join(work.path, "one.jpg")), "one");
  },
});

Deno.test({
  name:
    "`ferry connect`: Ctrl-C during a big get returns to the prompt, keeps the partial file, and the same get resumes",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await makeFile(join(served.path, "big.bin"), 48 * 1024 * 1024, 13);
    await using server = await startServe(served.path);
    await using shell = await TmuxShell.start(server, work.path);
    await shell.run("get big.bin");
    await partialGrows(partialPath(work.path, "big.bin"));
    server.child.kill("SIGSTOP"); // hold the transfer mid-way while the user presses Ctrl-C
    try {
      await shell.press("C-c");
      await shell.waitFor(
        /^Interrupted: the partial file is kept, and the same command resumes it$/m,
      );
      await shell.waitFor(/^ferry:\/>\s*$/m);
    } finally {
      server.child.kill("SIGCONT");
    }
    const kept = (await Deno.stat(partialPath(work.path, "big.bin"))).size;
    assert.ok(kept > 0, "the partial file is kept");
    assert.ok(!await exists(join(work.path, "big.bin")));

    await shell.run("ls");
    await shell.waitFor(/^file .*big\.bin$/m); // a new connection, made for this command
    await shell.run("get big.bin");
    await shell.waitFor(/Downloaded big\.bin .*resumed at/);
    assert.equal(
      await sha256File(join(work.path, "big.bin")),
      await sha256File(join(served.path, "big.bin")),
    );
    assert.doesNotMatch(await shell.screen(), /error:|readline/);
  },
});

Deno.test({
  name: "`ferry connect` connects again by itself after the server closed the idle session",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await Deno.writeTextFile(join(served.path, "still-here.txt"), "x");
    await using server = await startServe(served.path, { args: ["--idle-timeout", "1"] });
    await using shell = await TmuxShell.start(server, work.path);
    const deadline = Date.now() + 15_000;
    while (!server.log().includes("idle deadline passed")) {
      assert.ok(
        Date.now() < deadline,
        `the server never closed the idle session:\n${server.log()}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await shell.run("ls");
    await shell.waitFor(/still-here\.txt/);
    assert.doesNotMatch(await shell.screen(), /error:/);
  },
});
