/**
 * `ferry relay` as a user meets it: the token file it creates (and never prints), the permissions
 * it asks for by name, and one-line refusals of bad options and a port already taken.
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { DENO, MAIN, runFerry, tempDir } from "./_helpers.ts";

/** Starts `ferry relay` with `flags` and `args`; resolves once it listens (or exits). */
async function startRelay(flags: string[], args: string[]) {
  const child = new Deno.Command(DENO, {
    args: ["run", "--no-prompt", ...flags, MAIN, "relay", ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const listening = Promise.withResolvers<number>();
  const reading = (async () => {
    for await (const chunk of child.stderr) {
      log += decoder.decode(chunk, { stream: true });
      const match = /Relay listening on 127\.0\.0\.1:(\d+) /.exec(log);
      if (match) listening.resolve(Number(match[1]));
    }
    listening.reject(new Error(`ferry relay exited:\n${log}`));
  })();
  const stdout = new Response(child.stdout).text();
  return {
    port: await listening.promise,
    log: () => log,
    async stop(): Promise<{ code: number; stdout: string }> {
      child.kill("SIGTERM");
      const status = await child.status;
      await reading;
      return { code: status.code, stdout: await stdout };
    },
  };
}

Deno.test("ferry relay creates its token file with mode 0600, names it, never prints the token, and keeps it", async () => {
  await using dir = await tempDir();
  const tokenFile = join(dir.path, "relay_token");
  const flags = [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${dir.path}`,
    `--allow-write=${dir.path}`,
  ];
  const args = ["--host", "127.0.0.1", "--port", "0", "--token-file", tokenFile];
  const first = await startRelay(flags, args);
  const token = (await Deno.readTextFile(tokenFile)).trim();
  strictEqual((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
  ok(first.log().includes(`Created ${tokenFile}`), first.log());
  ok(!first.log().includes(token), "the token was printed");
  const stopped = await first.stop();
  strictEqual(stopped.code, 0);
  strictEqual(stopped.stdout, "");
  ok(first.log().includes("Relay stopped."), first.log());
  // A second run uses the same token, and needs no write permission for it.
  const second = await startRelay(
    ["--allow-net=127.0.0.1:0", `--allow-read=${tokenFile}`],
    args,
  );
  ok(!second.log().includes("Created"), second.log());
  await second.stop();
  strictEqual((await Deno.readTextFile(tokenFile)).trim(), token);
});

Deno.test("ferry relay names the permission it lacks, refuses bad options in one line, and a port in use", async () => {
  await using dir = await tempDir();
  const tokenFile = join(dir.path, "relay_token");
  const args = ["--host", "127.0.0.1", "--port", "0", "--token-file", tokenFile];
  const noWrite = await runFerry(["relay", ...args], {
    permissions: ["--allow-net=127.0.0.1:0", `--allow-read=${dir.path}`],
  });
  strictEqual(noWrite.code, 1, noWrite.stderr);
  strictEqual(
    noWrite.stderr,
    `ferry: Permission denied: run deno with --allow-write=${dir.path} (to create the token file)\n`,
  );
  for (
    const [bad, message] of [
      [["--rate-per-address", "0"], /^ferry: Invalid --rate-per-address/],
      [["--port", "99999"], /^ferry: Invalid port 99999/],
      [["--idle-timeout", "soon"], /^ferry: Invalid --idle-timeout "soon"/],
      [["extra"], /^ferry: Too many arguments/],
    ] as const
  ) {
    const result = await runFerry(["relay", ...args, ...bad]);
    strictEqual(result.code, 2, result.stderr);
    ok(message.test(result.stderr), result.stderr);
  }
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const result = await runFerry([
      "relay",
      "--host",
      "127.0.0.1",
      "--port",
      String(taken.addr.port),
      "--token-file",
      tokenFile,
    ]);
    strictEqual(result.code, 1, result.stderr);
    strictEqual(
      result.stderr.split("\n").filter((line) => line.startsWith("ferry:")).length,
      1,
      result.stderr,
    );
    ok(
      result.stderr.includes(`ferry: Cannot listen on 127.0.0.1:${taken.addr.port}: address`),
      result.stderr,
    );
  } finally {
    taken.close();
  }
});
