/**
 * Test helpers for the ways a person starts ferry, rather than `deno run main.ts`: `deno task`
 * from another folder, and the `ferry` command that scripts/install.ts writes. Each runs as a
 * subprocess with an environment the test chooses.
 *
 * @module
 */
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DENO } from "./_helpers.ts";

/** The checkout under test (the folder of deno.json). */
export const CHECKOUT: string = dirname(dirname(fileURLToPath(import.meta.url)));

/** Result of {@link run}. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link run} and {@link startListening}. */
export interface LaunchOptions {
  cwd: string;
  /** The whole environment (nothing is inherited). */
  env: Record<string, string>;
  /** Text fed to standard input. */
  stdin?: string;
}

/**
 * This process's environment without `names`, plus `NO_COLOR`: the base for a child that must
 * not inherit, say, the `INIT_CWD` of the `deno task test` that runs the tests.
 */
export function environmentWithout(...names: string[]): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of names) delete env[name];
  return { ...env, NO_COLOR: "1" };
}

/** The folders of PATH that hold no `deno`: a machine where Deno is not installed. */
export function pathWithoutDeno(): string {
  const folders = (Deno.env.get("PATH") ?? "").split(delimiter).filter((folder) => {
    try {
      Deno.lstatSync(join(folder, "deno"));
      return false;
    } catch {
      return folder !== "";
    }
  });
  return folders.join(delimiter);
}

/** Runs `program args...` to completion (killed after 60 s). */
export async function run(program: string, args: string[], options: LaunchOptions): Promise<Ran> {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** `deno task -q --config CHECKOUT/deno.json ARGS...` run in `cwd`, as a person would from there. */
export function denoTask(args: string[], cwd: string, stdin?: string): Promise<Ran> {
  return run(DENO, ["task", "-q", "--config", join(CHECKOUT, "deno.json"), ...args], {
    cwd,
    env: environmentWithout("INIT_CWD"),
    stdin,
  });
}

/** A running server started by {@link startListening}. */
export interface Listening extends AsyncDisposable {
  /** `127.0.0.1:<port>`, as the server announced it. */
  address: string;
  /** Everything written to stderr so far. */
  log(): string;
  /** Sends SIGTERM (passed down by `deno task` and the launchers) and waits for the exit. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `program args...` (a `ferry serve` however launched, listening on 127.0.0.1) and waits
 * for the line naming the address it listens on. Disposing stops it with SIGTERM, which every
 * launcher passes on, so no ferry is left behind a launcher that was killed.
 */
export async function startListening(
  program: string,
  args: string[],
  options: LaunchOptions,
): Promise<Listening> {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const found = Promise.withResolvers<string>();
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      log += decoder.decode(chunk, { stream: true });
      const match = / on (127\.0\.0\.1:\d+) /.exec(log);
      if (match) found.resolve(match[1]!);
    }
    found.reject(new Error(`the server exited before listening:\n${log}`));
  })();
  const timer = setTimeout(() => found.reject(new Error(`no server after 30 s:\n${log}`)), 30_000);
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () => {
    if (!stopped) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      stopped = Promise.all([child.status, reading]).then(([status]) => status);
    }
    return stopped;
  };
  try {
    const address = await found.promise;
    return { address, log: () => log, stop, [Symbol.asyncDispose]: async () => void await stop() };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
