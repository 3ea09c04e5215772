/**
 * The `ferry` command on a machine with Node.js and npm only (issue 13, item 1): the README's
 * install command, run with an empty HOME and no Deno on PATH, makes a `ferry` that works from any
 * folder; run again, it updates in place; with `--uninstall`, it removes what it made.
 *
 * The README runs the script with `npx -y deno@2.9.6`; these tests run the same command with the
 * Deno that runs them, and Deno's cache of this machine, so they stay off the network.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LAUNCHER_MARK, launcherScript, pathAdvice, shellQuote } from "../scripts/install.ts";
import { VERSION } from "../lib/version.ts";
import { DENO, exists, tempDir } from "./_helpers.ts";
import { CHECKOUT, pathWithoutDeno, type Ran, run, startListening } from "./_launch.ts";

/** The README's install command, from `run` on (what follows `npx -y deno@2.9.6`). */
async function readmeInstallCommand(): Promise<string> {
  const readme = await Deno.readTextFile(join(CHECKOUT, "README.md"));
  const match = /^npx -y deno@2\.9\.6 (run .*scripts\/install\.ts)$/m.exec(readme);
  assert.ok(match, "the README gives the install command on one line");
  return match[1]!;
}

/** Where this machine's Deno keeps its cache (ferry's npm libraries are in it). */
async function denoDir(): Promise<string> {
  const output = await new Deno.Command(DENO, { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(output.stdout)).denoDir;
}

/** A login's environment: nothing but HOME, PATH, and Deno's cache. */
function loginEnv(home: string, path: string, cache: string): Record<string, string> {
  return { HOME: home, PATH: path, DENO_DIR: cache, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
}

/** Runs the README's install command (plus `extra` arguments) in the checkout, through bash. */
function install(command: string, env: Record<string, string>, extra: string[] = []) {
  return run("bash", ["-c", `${shellQuote(DENO)} ${command} "$@"`, "install", ...extra], {
    cwd: CHECKOUT,
    env,
  });
}

/** Runs `ferry ARGS...` as the shell finds it on `env`'s PATH. */
function ferry(args: string[], cwd: string, env: Record<string, string>, stdin?: string) {
  return run("sh", ["-c", 'exec ferry "$@"', "ferry", ...args], { cwd, env, stdin });
}

function assertOk(result: Ran, what: string): void {
  assert.equal(result.code, 0, `${what}: ${result.stderr}`);
}

Deno.test("README's install command, with an empty HOME and no deno on PATH, makes a ferry that serves, lists and downloads; again, it updates; --uninstall removes it", async () => {
  await using home = await tempDir("ferry-home-");
  const cache = await denoDir();
  const bare = pathWithoutDeno();
  const command = await readmeInstallCommand();
  const bin = join(home.path, ".local", "bin");
  const data = join(home.path, ".local", "share", "ferry");
  const deno = await run("sh", ["-c", "command -v deno"], { cwd: home.path, env: { PATH: bare } });
  assert.notEqual(deno.code, 0, `no deno on PATH: ${deno.stdout}`);

  const installed = await install(command, loginEnv(home.path, bare, cache));
  assertOk(installed, "install");
  assert.match(installed.stdout, /^Installed ~\/\.local\/bin\/ferry: ferry /m);
  assert.match(installed.stdout, /~\/\.local\/bin is not on your PATH/);
  assert.match(installed.stdout, /export PATH="\$HOME\/\.local\/bin:\$PATH"/);
  assert.ok(await exists(join(data, "deno")), "the Deno that ran the script is kept");

  const env = loginEnv(home.path, `${bin}:${bare}`, cache);
  const version = await ferry(["--version"], home.path, env);
  assertOk(version, "ferry --version");
  assert.equal(version.stdout.trim(), `ferry ${VERSION}`);

  const share = join(home.path, "Public");
  const receive = join(home.path, "Downloads");
  await Deno.mkdir(share);
  await Deno.mkdir(receive);
  await Deno.writeTextFile(join(share, "notes.txt"), "notes from Public\n");
  const made = await ferry(["code"], share, env);
  assertOk(made, "ferry code");
  const code = made.stdout.trim();
  await using server = await startListening(
    "sh",
    ["-c", 'exec ferry "$@"', "ferry", "serve", "--host", "127.0.0.1", "--port", "0"],
    { cwd: share, env },
  );
  assertOk(await ferry(["code", "--save"], receive, env, `${code}\n`), "ferry code --save");
  const listed = await ferry(["ls", server.address], receive, env);
  assertOk(listed, "ferry ls");
  assert.match(listed.stdout, /notes\.txt/);
  assertOk(await ferry(["get", server.address, "notes.txt"], receive, env), "ferry get");
  assert.equal(await Deno.readTextFile(join(receive, "notes.txt")), "notes from Public\n");
  assert.equal((await server.stop()).code, 0, server.log());

  const again = await install(command, env);
  assertOk(again, "install again");
  assert.match(again.stdout, /^Updated ~\/\.local\/bin\/ferry/m);
  assert.doesNotMatch(again.stdout, /not on your PATH/, "the bin folder is on PATH now");
  assertOk(await ferry(["--version"], home.path, env), "ferry --version after the update");

  const removed = await install(command, env, ["--uninstall"]);
  assertOk(removed, "uninstall");
  assert.ok(!await exists(join(bin, "ferry")));
  assert.ok(!await exists(data));
  assert.equal((await ferry(["--version"], home.path, env)).code, 127, "no ferry any more");
});

Deno.test("install.ts leaves a ferry it did not write in place, and names --force", async () => {
  await using home = await tempDir("ferry-home-");
  const bin = join(home.path, ".local", "bin");
  await Deno.mkdir(bin, { recursive: true });
  await Deno.writeTextFile(join(bin, "ferry"), "#!/bin/sh\necho another ferry\n");
  const result = await install(
    await readmeInstallCommand(),
    loginEnv(home.path, pathWithoutDeno(), await denoDir()),
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^install: .*\.local\/bin\/ferry exists .*--force/);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.equal(await Deno.readTextFile(join(bin, "ferry")), "#!/bin/sh\necho another ferry\n");
  assert.ok(!await exists(join(home.path, ".local", "share", "ferry")), "nothing copied");
});

Deno.test("install.ts --bin DIR outside the folder it may write names the --allow-write flag to add", async () => {
  await using home = await tempDir("ferry-home-");
  await using elsewhere = await tempDir();
  const result = await install(
    await readmeInstallCommand(),
    loginEnv(home.path, pathWithoutDeno(), await denoDir()),
    ["--bin", elsewhere.path],
  );
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr.trim(),
    `install: Permission denied: run deno with --allow-write=${elsewhere.path} (to write in ${elsewhere.path})`,
  );
});

Deno.test("launcherScript() runs main.ts with the kept Deno and passes every argument as it was typed", async () => {
  await using dir = await tempDir();
  const checkout = join(dir.path, "it's a checkout");
  await Deno.mkdir(checkout);
  await Deno.writeTextFile(join(checkout, "main.ts"), "");
  const deno = join(dir.path, "fake deno");
  await Deno.writeTextFile(deno, '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
  const launcher = join(dir.path, "ferry");
  await Deno.writeTextFile(launcher, launcherScript(deno, checkout), { mode: 0o755 });
  assert.ok((await Deno.readTextFile(launcher)).split("\n").includes(LAUNCHER_MARK));

  const result = await run(launcher, ["get", "host", "a b.txt", "$HOME", "it's"], {
    cwd: dir.path,
    env: { PATH: "/usr/bin:/bin" },
  });
  assertOk(result, "launcher");
  const words = result.stdout.split("\n").slice(0, -1);
  assert.deepEqual(words.slice(0, 1), ["run"]);
  assert.ok(words.includes("--v8-flags=--max-semi-space-size=1,--expose-gc"));
  assert.ok(words.includes(`--config=${join(checkout, "deno.json")}`));
  assert.ok(words.includes("--allow-env=FERRY_CODE"));
  // The network, and each network interface for announcements and `@` (lib/net/announce.ts).
  assert.ok(words.includes("--allow-net"));
  assert.ok(words.includes("--allow-sys=networkInterfaces"));
  assert.deepEqual(words.slice(-6), [
    join(checkout, "main.ts"),
    "get",
    "host",
    "a b.txt",
    "$HOME",
    "it's",
  ]);

  await Deno.remove(join(checkout, "main.ts"));
  const gone = await run(launcher, ["--version"], {
    cwd: dir.path,
    env: { PATH: "/usr/bin:/bin" },
  });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^ferry: .*main\.ts is gone .*run scripts\/install\.ts again/);
});

Deno.test("pathAdvice() says how to add the bin folder to PATH, and names a ferry that comes first", () => {
  const none = () => false;
  assert.deepEqual(
    pathAdvice("/home/ann/.local/bin", "/usr/bin:/home/ann/.local/bin", "/home/ann", none),
    [],
  );
  const missing = pathAdvice("/home/ann/.local/bin", "/usr/bin:/bin", "/home/ann", none);
  assert.match(missing[0]!, /^~\/\.local\/bin is not on your PATH/);
  assert.ok(missing.some((line) => line.includes(`export PATH="$HOME/.local/bin:$PATH"`)));
  const outside = pathAdvice("/opt/ferry/bin", "/usr/bin", "/home/ann", none);
  assert.ok(outside.some((line) => line.includes(`export PATH="/opt/ferry/bin:$PATH"`)));
  const shadowed = pathAdvice(
    "/home/ann/.local/bin",
    "/home/ann/.deno/bin:/home/ann/.local/bin",
    "/home/ann",
    (path) => path === "/home/ann/.deno/bin/ferry",
  );
  assert.equal(shadowed.length, 1);
  assert.match(
    shadowed[0]!,
    /Another ferry comes before it on your PATH: \/home\/ann\/\.deno\/bin\/ferry/,
  );
});
