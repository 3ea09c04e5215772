/**
 * Benchmark plumbing: run a command with its wall time and peak resident memory, read a running
 * process's high-water mark, and the small statistics and formatting the tables need.
 *
 * Peak RSS of a command we start comes from GNU time (`/usr/bin/time -f %M`), which reports the
 * kernel's `ru_maxrss` for the child (and the children it waited for) when it exits: exact, nothing
 * polled. Without GNU time, `/proc/<pid>/status` `VmHWM` is polled every 50 ms until the process
 * ends; the high-water mark only grows, so this misses at most the last 50 ms of growth. Deno wants
 * `--allow-all` to read `/proc` itself, so `/proc` files are read through `cat`.
 *
 * The whole machine's busy CPU time during a run comes from the first line of `/proc/stat`, read
 * right before the spawn and right after the exit: every process counts (the client, the server,
 * sshd's forks, the kernel's network and file work, and whatever else is running).
 *
 * Permissions: run (the commands, `cat` and `getconf`), read and write (the temporary folder, for GNU time's
 * report).
 *
 * @module
 */
import { join } from "node:path";

/** Where a command's peak RSS came from. */
export type RssMethod = "gnu-time" | "proc-poll";

const GNU_TIME = "/usr/bin/time";

/** Whether GNU time is there and answers `-f %M` (probed once). */
export async function detectRssMethod(): Promise<RssMethod> {
  try {
    const output = await new Deno.Command(GNU_TIME, {
      args: ["-f", "%M", "true"],
      stdout: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stderr).trim();
    if (output.success && /^\d+$/.test(text)) return "gnu-time";
  } catch {
    // not installed
  }
  return "proc-poll";
}

/**
 * The text of a file under `/proc`, or undefined if it cannot be read. Deno asks for `--allow-all`
 * to read `/proc` directly, so this runs `cat` (covered by `--allow-run`) instead.
 */
export async function readProcFile(path: string): Promise<string | undefined> {
  try {
    const output = await new Deno.Command("cat", {
      args: [path],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** Peak resident set size of a live process (`VmHWM`, in bytes), or undefined once it is gone. */
export async function readPeakRss(pid: number): Promise<number | undefined> {
  const status = await readProcFile(`/proc/${pid}/status`);
  const match = status === undefined ? null : /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** Cumulative CPU time of the whole machine since boot, in clock ticks (`/proc/stat`). */
export interface MachineCpu {
  /** user + nice + system + irq + softirq + steal. */
  busy: number;
  /** busy + idle + iowait. */
  total: number;
}

/**
 * The machine's CPU ticks so far, from the `cpu` line of `/proc/stat` (all cores summed), or
 * undefined where there is no `/proc/stat`. Busy is the total less idle and iowait; guest time is
 * left out of the total because the kernel already counts it in user and nice.
 */
export async function readMachineCpu(): Promise<MachineCpu | undefined> {
  const stat = await readProcFile("/proc/stat");
  const match = stat === undefined ? null : /^cpu\s+([\d ]+)$/m.exec(stat);
  if (!match) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = match[1]!.trim().split(/\s+/)
    .map(Number);
  const values = [user, nice, system, idle, iowait, irq, softirq, steal ?? 0];
  if (!values.every((value) => Number.isFinite(value))) return undefined;
  const total = values.reduce((sum, value) => sum! + value!, 0)!;
  return { busy: total - idle! - iowait!, total };
}

let clockTicksPromise: Promise<number> | undefined;

/** Clock ticks per second of `/proc` figures (`getconf CLK_TCK`; 100, Linux's USER_HZ, if absent). */
export function clockTicks(): Promise<number> {
  clockTicksPromise ??= (async () => {
    try {
      const output = await new Deno.Command("getconf", {
        args: ["CLK_TCK"],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
      const ticks = Number(new TextDecoder().decode(output.stdout).trim());
      return output.success && Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
    } catch {
      return 100;
    }
  })();
  return clockTicksPromise;
}

/** Result of {@link runMeasured}. */
export interface Measured {
  code: number;
  /** Wall time from spawn to exit. */
  seconds: number;
  /** Peak resident set size in bytes (undefined if it could not be read). */
  peakRss: number | undefined;
  /** CPU seconds in user and kernel mode (only with GNU time). */
  cpu: CpuSeconds | undefined;
  /**
   * Busy CPU seconds of the whole machine (all cores) from spawn to exit, when
   * {@link MeasureOptions.machineCpu} asked for it and `/proc/stat` was readable.
   */
  machineBusy: number | undefined;
  stdout: string;
  stderr: string;
}

/** CPU time of a process: user and kernel (system) seconds. */
export interface CpuSeconds {
  user: number;
  system: number;
}

/** CPU seconds used so far by the live process `pid`, from `/proc/<pid>/stat`. */
export async function readCpuSeconds(pid: number): Promise<CpuSeconds | undefined> {
  const stat = await readProcFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100; // USER_HZ on Linux
  const user = Number(fields[11]) / ticksPerSecond;
  const system = Number(fields[12]) / ticksPerSecond;
  return Number.isFinite(user) && Number.isFinite(system) ? { user, system } : undefined;
}

/** Options of {@link runMeasured}. */
export interface MeasureOptions {
  method: RssMethod;
  /** Folder for GNU time's report file. */
  scratch: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Also read `/proc/stat` right before the spawn and right after the exit. */
  machineCpu?: boolean;
}

let reportCounter = 0;

/** Runs `command args...` to completion, timing it and measuring its peak RSS. */
export async function runMeasured(
  command: string,
  args: readonly string[],
  options: MeasureOptions,
): Promise<Measured> {
  const report = join(options.scratch, `rss-${Deno.pid}-${reportCounter++}.txt`);
  const [program, programArgs] = options.method === "gnu-time"
    ? [GNU_TIME, ["-f", "%M %U %S", "-o", report, command, ...args]]
    : [command, [...args]];
  const ticks = options.machineCpu ? await clockTicks() : 0;
  const cpuBefore = options.machineCpu ? await readMachineCpu() : undefined;
  const started = performance.now();
  const child = new Deno.Command(program, {
    args: programArgs,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peakRss: number | undefined;
  let cpu: CpuSeconds | undefined;
  let poller: ReturnType<typeof setInterval> | undefined;
  if (options.method === "proc-poll") {
    const poll = async () => {
      const value = await readPeakRss(child.pid);
      if (value !== undefined) peakRss = Math.max(peakRss ?? 0, value);
    };
    await poll();
    poller = setInterval(poll, 50);
  }
  const output = await child.output();
  const seconds = (performance.now() - started) / 1000;
  clearInterval(poller);
  const cpuAfter = cpuBefore ? await readMachineCpu() : undefined;
  const machineBusy = cpuBefore && cpuAfter ? (cpuAfter.busy - cpuBefore.busy) / ticks : undefined;
  if (options.method === "gnu-time") {
    try {
      // GNU time writes "Command exited with non-zero status N" first when the command failed.
      const lines = (await Deno.readTextFile(report)).trim().split("\n");
      const [kib, user, system] = (lines[lines.length - 1] ?? "").split(" ").map(Number);
      if (Number.isFinite(kib)) peakRss = kib! * 1024;
      if (Number.isFinite(user) && Number.isFinite(system)) cpu = { user: user!, system: system! };
    } finally {
      await Deno.remove(report).catch(() => {});
    }
  }
  return {
    code: output.code,
    seconds,
    peakRss,
    cpu,
    machineBusy,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The `p`-th percentile (0..100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Parses `64M`, `1G`, `512K`, `256MiB` or a byte count (suffixes are binary: K = 1024). */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) throw new RangeError(`Cannot parse size "${text}": expected e.g. 64M or 1G`);
  const scale = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[match[2]!.toUpperCase()]!;
  const size = Math.round(Number(match[1]) * scale);
  if (size <= 0) throw new RangeError(`Cannot use size "${text}": must be above zero`);
  return size;
}

/** A size in binary units, as the table labels files (`256 MiB`). */
export function formatSize(bytes: number): string {
  for (const [unit, scale] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes >= scale) {
      const value = bytes / scale;
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} B`;
}

/** Bytes as decimal megabytes (MB = 10^6 bytes), one decimal. */
export function formatMB(bytes: number | undefined): string {
  return bytes === undefined ? "-" : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Throws with the command's output and the end of `serverLog` unless `result` exited with 0. */
export function expectSuccess(result: Measured, what: string, serverLog: string): void {
  if (result.code === 0) return;
  throw new Error(
    `${what} failed with status ${result.code}:\n${result.stderr.trim()}\n${result.stdout.trim()}` +
      `\n--- server log (end) ---\n${serverLog.slice(-2000).trim()}`,
  );
}

/**
 * Flushes every dirty page to disk (`sync`) before a timed run, so that no run pays for the
 * write-back of the files the previous run (often the other tool's) left in the page cache.
 */
export async function syncDisk(): Promise<void> {
  await new Deno.Command("sync").output();
}

/** `0.12u+0.03s`: user and system CPU seconds, or `?`. */
export function formatCpu(cpu: CpuSeconds | undefined): string {
  return cpu ? `${cpu.user.toFixed(2)}u+${cpu.system.toFixed(2)}s` : "?";
}

/** Pads a table cell to `width`, on the left when `right` (numbers). */
export function cell(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}
