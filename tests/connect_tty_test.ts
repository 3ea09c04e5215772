/**
 * `ferry connect` on a real terminal (tmux): it prompts, runs commands, recalls history with the
 * Up arrow (line editing from `node:readline`), reports a bad command without ending the session,
 * and ends on `quit`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DENO, MAIN, startServe, tempDir } from "./_helpers.ts";

const HAS_TMUX =
  (await new Deno.Command("sh", { args: ["-c", "command -v tmux"] }).output()).success;

async function tmux(socket: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("tmux", { args: ["-S", socket, ...args] }).output();
  return new TextDecoder().decode(output.stdout);
}

/** Polls the pane until `pattern` shows (a terminal gives no other signal), or fails after 15 s. */
async function waitForScreen(socket: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (true) {
    const screen = await tmux(socket, "capture-pane", "-p", "-t", "ferry");
    if (pattern.test(screen)) return screen;
    if (Date.now() > deadline) throw new Error(`screen never matched ${pattern}:\n${screen}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  name: "`ferry connect` on a terminal prompts, runs commands, recalls history and quits",
  ignore: !HAS_TMUX,
  async fn() {
    await using served = await tempDir();
    await using work = await tempDir();
    await Deno.writeTextFile(join(served.path, "hello.txt"), "hello");
    await using server = await startServe(served.path);
    const socket = join(work.path, "tmux.sock");
    const command = [
      DENO,
      "run",
      "-q",
      "-A",
      MAIN,
      "connect",
      server.address,
      "--code-file",
      server.codeFile,
    ]
      .map((word) => `'${word}'`).join(" ");
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
      work.path,
      command,
    );
    try {
      await waitForScreen(socket, /^ferry>\s*$/m);
      await tmux(socket, "send-keys", "-t", "ferry", "ls", "Enter");
      await waitForScreen(socket, /hello\.txt/);
      await tmux(socket, "send-keys", "-t", "ferry", "get hello.txt copy.txt", "Enter");
      await waitForScreen(socket, /Downloaded copy\.txt/);
      assert.equal(await Deno.readTextFile(join(work.path, "copy.txt")), "hello");

      await tmux(socket, "send-keys", "-t", "ferry", "Up");
      await waitForScreen(socket, /ferry> get hello\.txt copy\.txt\s*$/m);
      await tmux(socket, "send-keys", "-t", "ferry", "C-u", "bogus", "Enter");
      await waitForScreen(socket, /error: Unknown command "bogus"/);
      await tmux(socket, "send-keys", "-t", "ferry", "quit", "Enter");
      const deadline = Date.now() + 15_000;
      while ((await tmux(socket, "list-sessions")).includes("ferry") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.doesNotMatch(await tmux(socket, "list-sessions"), /ferry/, "the shell ended on quit");
    } finally {
      await tmux(socket, "kill-server");
    }
  },
});
