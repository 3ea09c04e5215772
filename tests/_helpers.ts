/**
 * Test helpers: temporary folders that remove themselves, and the real CLI run as a subprocess
 * (`ferry serve` on port 0, clients against it) with explicit, narrow permission flags.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { lstatOrNull } from "../lib/_fs.ts";
import { generateCode } from "../lib/code.ts";
import { writeCodeFile } from "../lib/code_file.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";

/** Absolute path of `main.ts`. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** The Deno binary running the tests. */
export const DENO = Deno.execPath();
/**
 * The V8 flag every documented way of running ferry passes (the tasks in deno.json, the shebang of
 * main.ts, the README's install command): V8's young generation otherwise grows to 16 MB or more
 * per semi-space; with 1 MB, peak RSS fell by 5 MB (one large file) to 25 MB (5000 small files),
 * at the same speed. The benchmark runs ferry with it.
 */
export const FERRY_V8_FLAGS: readonly string[] = ["--v8-flags=--max-semi-space-size=1,--expose-gc"];

/** A temporary folder removed on dispose: `await using dir = await tempDir()`. */
export async function tempDir(prefix = "ferry-test-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(await Deno.makeTempDir({ prefix }));
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes a fresh connection code file at `path` and returns the code. */
export async function makeCodeFile(path: string): Promise<string> {
  const code = generateCode();
  await writeCodeFile(path, code, { force: true });
  return code;
}

/** Result of {@link runFerry}. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runFerry}. */
export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Deno permission flags; default: everything the client may need (`-A`). */
  permissions?: string[];
  /** Text fed to standard input. */
  stdin?: string;
  /** Kill the process after this long (default 60 s). */
  timeoutMs?: number;
}

/** Runs `ferry ARGS...` to completion as a subprocess. */
export async function runFerry(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const command = new Deno.Command(DENO, {
    args: ["run", "--no-prompt", ...(options.permissions ?? ["-A"]), MAIN, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: false,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, options.timeoutMs ?? 60_000);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  clearTimeout(timer);
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** A `ferry serve` subprocess. */
export interface ServeProcess extends AsyncDisposable {
  /** The port it bound (it is started with `--port 0`). */
  port: number;
  /** `127.0.0.1:<port>`, ready to pass to client commands. */
  address: string;
  /** The connection code. */
  code: string;
  /** Path of the code file (outside the served folder). */
  codeFile: string;
  child: Deno.ChildProcess;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** Sends `signal` and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Options of {@link startServe}. */
export interface ServeOptions {
  /** Extra arguments after `serve <root>`. */
  args?: string[];
  /**
   * Permission flags; default: scoped to the folder, the code file's folder (read only: the code
   * file and the code store beside it) and 127.0.0.1:0.
   */
  permissions?: string[];
  /** Code file to use; default: a fresh one in a temporary folder beside `root`. */
  codeFile?: string;
  env?: Record<string, string>;
}

/**
 * Starts `ferry serve ROOT --host 127.0.0.1 --port 0` with scoped permissions and waits for the
 * line that names the bound port.
 */
export async function startServe(root: string, options: ServeOptions = {}): Promise<ServeProcess> {
  const codeDir = options.codeFile ? undefined : await Deno.makeTempDir({ prefix: "ferry-code-" });
  const codeFile = options.codeFile ?? join(codeDir!, "code");
  let code = "";
  try {
    code = (await Deno.readTextFile(codeFile)).trim();
  } catch {
    code = await makeCodeFile(codeFile);
  }
  // The code file's folder may be read, for the code store beside the code file (`ferry code
  // add`); not written (the last use of codes).
  const permissions = options.permissions ?? [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${root},${dirname(codeFile)}`,
    `--allow-write=${root}`,
  ];
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "--no-prompt",
      ...permissions,
      MAIN,
      "serve",
      root,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--code-file",
      codeFile,
      ...(options.args ?? []),
    ],
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const portFound = Promise.withResolvers<number>();
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      log += decoder.decode(chunk, { stream: true });
      const match = / on 127\.0\.0\.1:(\d+) /.exec(log);
      if (match) portFound.resolve(Number(match[1]));
    }
    portFound.reject(new Error(`ferry serve exited before listening:\n${log}`));
  })();
  const stdoutDone = child.stdout.pipeTo(new WritableStream());
  const timer = setTimeout(
    () => portFound.reject(new Error(`ferry serve did not start:\n${log}`)),
    30_000,
  );
  let port: number;
  try {
    port = await portFound.promise;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
  let status: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    if (!status) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      status = Promise.all([child.status, stderrDone, stdoutDone]).then(([result]) => result);
    }
    return status;
  };
  return {
    port,
    address: `127.0.0.1:${port}`,
    code,
    codeFile,
    child,
    log: () => log,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
      if (codeDir) await Deno.remove(codeDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Fills a file with `size` pseudo-random bytes (deterministic per seed) in 1 MiB blocks. */
export async function makeFile(path: string, size: number, seed = 1): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1024 * 1024);
  let state = seed >>> 0 || 1;
  let written = 0;
  while (written < size) {
    const length = Math.min(block.length, size - written);
    for (let index = 0; index < length; index += 4) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      block[index] = state & 0xff;
      block[index + 1] = (state >>> 8) & 0xff;
      block[index + 2] = (state >>> 16) & 0xff;
      block[index + 3] = (state >>> 24) & 0xff;
    }
    let offset = 0;
    while (offset < length) offset += await file.write(block.subarray(offset, length));
    written += length;
  }
}

/** SHA-256 of a file, lowercase hex. */
export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const block = new Uint8Array(1024 * 1024);
  while (true) {
    const count = await file.read(block);
    if (count === null) break;
    hash.update(block.subarray(0, count));
  }
  return hash.digest("hex");
}

/** Whether this process may mount a small tmpfs (root on Linux, usually): full-disk tests need it. */
export async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const probe = await Deno.makeTempDir({ prefix: "ferry-mount-probe-" });
  try {
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => ({ success: false }));
    if (!mounted.success) return false;
    await new Deno.Command("umount", { args: [probe] }).output();
    return true;
  } finally {
    await Deno.remove(probe).catch(() => {});
  }
}

/** Whether anything (even a dangling link) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  return await lstatOrNull(path) !== null;
}

/** Size of the entry at `path`, or undefined when nothing is there. */
export async function sizeOf(path: string): Promise<number | undefined> {
  return (await lstatOrNull(path))?.size;
}

/** The names in folder `dir`, sorted. */
export async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

/** Path of the hidden partial file that receives `name` in `dir`. */
export function partialPath(dir: string, name: string): string {
  return join(dir, PARTIAL_PREFIX + name);
}

/** A CLI client run as a subprocess, to be signalled while it runs. */
export function spawnFerry(args: string[]) {
  const child = new Deno.Command(DENO, {
    args: ["run", "--no-prompt", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let ended = false;
  const result = child.output().then((output) => {
    ended = true;
    const decoder = new TextDecoder();
    return {
      code: output.code,
      signal: output.signal,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  });
  return {
    child,
    result,
    signal(signal: Deno.Signal) {
      if (!ended) child.kill(signal);
    },
    async [Symbol.asyncDispose]() {
      if (!ended) {
        child.kill("SIGKILL");
        child.kill("SIGCONT");
      }
      await result;
    },
  };
}

/**
 * Waits until the partial file at `path` holds more than `bytes` (the transfer is under way).
 * The writer is another process, so this polls its size every 2 ms.
 */
export async function partialGrows(
  path: string,
  bytes = 1024 * 1024,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const size = await Deno.stat(path).then((info) => info.size, () => 0);
    if (size > bytes) return;
    if (performance.now() > deadline) throw new Error(`${path} did not grow past ${bytes} bytes`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Waits until `condition()` holds, checking every 10 ms (for output of another process). */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
