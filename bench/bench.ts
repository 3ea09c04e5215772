/**
 * `deno task bench`: ferry against OpenSSH sftp on this machine, side by side (the speed issue).
 *
 * Sets up everything by itself in a temporary folder: the test files, a connection code, and a
 * private `sshd` on 127.0.0.1 (its own keys and config; installed with apt-get when missing).
 * For each size and direction it runs ferry and sftp alternately (`--runs` each), checks every
 * received file's SHA-256 against the source, and prints the median throughput, the ratio to sftp,
 * the whole machine's busy CPU seconds per GiB and the peak memory of both ferry processes. Then
 * the same for a tree of 5000 files of 1 KiB (`_tree.ts`), handshake-plus-listing latency, 16
 * concurrent downloads against one, and a PASS/FAIL line per target.
 *
 * What is timed: the wall time of the whole client process (`ferry get|put` or `sftp -b`), from
 * spawn to exit, start-up and handshake included, for both tools. MB = 10^6 bytes.
 *
 * ```sh
 * deno task bench                                  # 256 MiB and 1 GiB, 3 runs each
 * deno task bench --sizes 64M,256M --runs 3        # quicker
 * deno task bench --sizes 256M --profile           # plus CPU profiles of a ferry download
 * ```
 *
 * Permissions: run (deno, sshd, ssh-keygen, sftp, GNU time, cat, getconf, apt-get), read, write
 * (the temporary folder and `.bench/` for profiles), net (127.0.0.1), env (USER, TMPDIR and the
 * FERRY_BENCH_* defaults).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { codeSecret } from "../lib/code.ts";
import { FerryClient } from "../lib/client/client.ts";
import {
  DENO,
  FERRY_V8_FLAGS,
  MAIN,
  makeCodeFile,
  makeFile,
  sha256File,
  startServe,
} from "../tests/_helpers.ts";
import { ensureSshd, PrivateSshd, SSH_CIPHER } from "./_openssh.ts";
import {
  cell,
  type CpuSeconds,
  detectRssMethod,
  expectSuccess,
  formatCpu,
  formatMB,
  formatSize,
  median,
  parseSize,
  percentile,
  readCpuSeconds,
  readPeakRss,
  readProcFile,
  type RssMethod,
  runMeasured,
  syncDisk,
} from "./_process.ts";
import { summariseProfileFile } from "./cpuprofile_summary.ts";
import {
  makeTree,
  measureTrees,
  reportTrees,
  TREE_FILE_SIZE,
  type TreeSample,
  type TreeSource,
} from "./_tree.ts";

const HELP = `deno task bench [options]: ferry against OpenSSH sftp on 127.0.0.1

Options:
  --sizes LIST         File sizes, binary units (default 256M,1G; env FERRY_BENCH_SIZES)
  --runs N             Runs per tool, size and direction (default 3; env FERRY_BENCH_RUNS)
  --tree FILES         Files of 1 KiB in the small-file tree, moved with \`get|put HOST tree\`
                       and \`sftp -r\` (default 5000; 0 skips it; env FERRY_BENCH_TREE)
  --latency N          Handshake + listing samples after 5 warm-ups (default 20)
  --clients N          Concurrent downloads in the concurrency test (default 16)
  --concurrent-size S  File size of the concurrency test (default 64M)
  --no-sftp            Measure ferry alone
  --profile            Also CPU-profile the ferry server and client during one download of the
                       largest size (profiles kept in .bench/profiles/, top functions printed)
  --tmp DIR            Where the temporary folder goes (default $TMPDIR or /tmp)
  --keep               Keep the temporary folder
  --strict             Exit with status 1 when a target fails
  -h, --help           Show this help

Every received file is checked against the source's SHA-256 (a received tree: its file count and
one SHA-256 over every path and content); a mismatch stops the benchmark with status 1. Throughput is the file size over the client process's wall time; MB = 10^6 bytes.`;

type Tool = "ferry" | "sftp";
type Direction = "download" | "upload";

interface Sample {
  tool: Tool;
  direction: Direction;
  size: number;
  seconds: number;
  clientRss: number | undefined;
  serverRss: number | undefined;
  /** CPU of the client process (GNU time only). */
  clientCpu: CpuSeconds | undefined;
  /** CPU of the ferry server process (sftp's sshd is not measured). */
  serverCpu: CpuSeconds | undefined;
  /** Busy CPU seconds of the whole machine while the client ran (`/proc/stat`). */
  machineBusy: number | undefined;
}

/** Busy CPU seconds of the whole machine per GiB moved. */
function cpuPerGiB(busySeconds: number | undefined, bytes: number): number | undefined {
  return busySeconds === undefined ? undefined : busySeconds / (bytes / 2 ** 30);
}

/** `0.42 s (6.7 s/GiB)`: a run's machine-wide busy CPU, alone and per GiB moved. */
function formatBusy(busySeconds: number | undefined, bytes: number): string {
  return busySeconds === undefined
    ? "?"
    : `${busySeconds.toFixed(2)} s (${cpuPerGiB(busySeconds, bytes)!.toFixed(2)} s/GiB)`;
}

interface Options {
  sizes: number[];
  runs: number;
  /** Files in the small-file tree (0: no tree runs). */
  tree: number;
  latencyRuns: number;
  clients: number;
  concurrentSize: number;
  sftp: boolean;
  profile: boolean;
  tmp: string;
  keep: boolean;
  strict: boolean;
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      sizes: { type: "string" },
      runs: { type: "string" },
      tree: { type: "string" },
      latency: { type: "string" },
      clients: { type: "string" },
      "concurrent-size": { type: "string" },
      "no-sftp": { type: "boolean" },
      profile: { type: "boolean" },
      tmp: { type: "string" },
      keep: { type: "boolean" },
      strict: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const count = (text: string | undefined, fallback: number, name: string) => {
    if (text === undefined) return fallback;
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      throw new RangeError(`Invalid --${name} "${text}": expected a whole number above 0`);
    }
    return Number(text);
  };
  const sizes = (values.sizes ?? Deno.env.get("FERRY_BENCH_SIZES") ?? "256M,1G")
    .split(",").filter((part) => part.trim() !== "").map(parseSize);
  if (sizes.length === 0) throw new RangeError("--sizes names no size");
  const tree = values.tree ?? Deno.env.get("FERRY_BENCH_TREE") ?? "5000";
  if (!/^\d+$/.test(tree)) {
    throw new RangeError(`Invalid --tree "${tree}": expected a whole number (0 skips the tree)`);
  }
  return {
    sizes,
    runs: count(values.runs ?? Deno.env.get("FERRY_BENCH_RUNS"), 3, "runs"),
    tree: Number(tree),
    latencyRuns: count(values.latency, 20, "latency"),
    clients: count(values.clients, 16, "clients"),
    concurrentSize: parseSize(values["concurrent-size"] ?? "64M"),
    sftp: !values["no-sftp"],
    profile: Boolean(values.profile),
    tmp: values.tmp ?? Deno.env.get("TMPDIR") ?? "/tmp",
    keep: Boolean(values.keep),
    strict: Boolean(values.strict),
  };
}

/** Everything a run needs to know about the set-up. */
interface Bench {
  options: Options;
  dir: string;
  /** The folder ferry serves and sftp reads from / writes to. */
  files: string;
  /** Where downloads land. */
  received: string;
  scratch: string;
  codeFile: string;
  code: string;
  method: RssMethod;
  sshd: PrivateSshd | undefined;
  /** name → SHA-256 of each source file. */
  sources: Map<string, string>;
}

function fileName(size: number): string {
  return `data-${formatSize(size).replace(" ", "")}.bin`;
}

function mbps(bytes: number, seconds: number): number {
  return bytes / seconds / 1e6;
}

function serverPermissions(bench: Bench): string[] {
  return [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${bench.files},${bench.codeFile}`,
    `--allow-write=${bench.files}`,
  ];
}

/** Runs `ferry get|put` against a fresh `ferry serve` and measures both processes. */
async function ferryRun(
  bench: Bench,
  direction: Direction,
  size: number,
  extraDenoFlags: { server?: string[]; client?: string[] } = {},
): Promise<Sample> {
  const name = fileName(size);
  await using server = await startServe(bench.files, {
    codeFile: bench.codeFile,
    permissions: [...FERRY_V8_FLAGS, ...(extraDenoFlags.server ?? []), ...serverPermissions(bench)],
  });
  const common = [...FERRY_V8_FLAGS, `--allow-net=127.0.0.1:${server.port}`];
  const args = direction === "download"
    ? [
      "run",
      "--no-prompt",
      ...common,
      `--allow-read=${bench.codeFile},${bench.received}`,
      `--allow-write=${bench.received}`,
      ...(extraDenoFlags.client ?? []),
      MAIN,
      "get",
      server.address,
      name,
      "-o",
      bench.received,
      "--force",
      "--quiet",
      "--code-file",
      bench.codeFile,
    ]
    : [
      "run",
      "--no-prompt",
      ...common,
      `--allow-read=${bench.codeFile},${join(bench.files, name)}`,
      ...(extraDenoFlags.client ?? []),
      MAIN,
      "put",
      server.address,
      join(bench.files, name),
      "--force",
      "--quiet",
      "--code-file",
      bench.codeFile,
    ];
  const result = await runMeasured(DENO, args, {
    method: bench.method,
    scratch: bench.scratch,
    env: { NO_COLOR: "1" },
    machineCpu: true,
  });
  const serverRss = await readPeakRss(server.child.pid);
  const serverCpu = await readCpuSeconds(server.child.pid);
  await server.stop("SIGTERM");
  expectSuccess(result, `ferry ${direction} of ${name}`, server.log());
  const landed = direction === "download"
    ? join(bench.received, name)
    : join(bench.files, `uploaded_${name}`);
  await verify(bench, landed, name, `ferry ${direction}`);
  return {
    tool: "ferry",
    direction,
    size,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss,
    clientCpu: result.cpu,
    serverCpu,
    machineBusy: result.machineBusy,
  };
}

/** Runs `sftp -b` against the private sshd. */
async function sftpRun(bench: Bench, direction: Direction, size: number): Promise<Sample> {
  const sshd = bench.sshd!;
  const name = fileName(size);
  const source = join(bench.files, name);
  const landed = direction === "download"
    ? join(bench.received, name)
    : join(bench.files, `sftp_${name}`);
  const line = direction === "download"
    ? `get "${source}" "${landed}"`
    : `put "${source}" "${landed}"`;
  const args = await sshd.batch(`${direction}-${name}`, [line]);
  const result = await runMeasured("sftp", args, {
    method: bench.method,
    scratch: bench.scratch,
    machineCpu: true,
  });
  expectSuccess(result, `sftp ${direction} of ${name}`, sshd.log());
  await verify(bench, landed, name, `sftp ${direction}`);
  return {
    tool: "sftp",
    direction,
    size,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss: undefined,
    clientCpu: result.cpu,
    serverCpu: undefined,
    machineBusy: result.machineBusy,
  };
}

/**
 * Reads `name` from the files folder once, so that the timed run that follows (whichever tool)
 * finds it in the page cache. Machines of this kind run DAMON proactive reclaim (`pageout` of
 * pages idle for about a second), which can evict a source between runs: the run after a pause
 * would then read part of it from disk. Both tools get the same warm-up, so the comparison stays
 * fair.
 */
async function warmSource(bench: Bench, name: string): Promise<void> {
  using file = await Deno.open(join(bench.files, name), { read: true });
  const block = new Uint8Array(4 * 1024 * 1024);
  while (await file.read(block) !== null) {
    // reading is the point
  }
}

/** Compares `path` with the source's SHA-256, then removes it. Throws on a mismatch. */
async function verify(bench: Bench, path: string, name: string, what: string): Promise<void> {
  const expected = bench.sources.get(name)!;
  const actual = await sha256File(path);
  await Deno.remove(path);
  if (actual !== expected) {
    throw new Error(
      `SHA-256 MISMATCH after ${what} of ${name}: expected ${expected}, got ${actual}`,
    );
  }
}

async function prepareFile(bench: Bench, size: number, seed: number): Promise<string> {
  const name = fileName(size);
  const path = join(bench.files, name);
  const started = performance.now();
  await makeFile(path, size, seed);
  bench.sources.set(name, await sha256File(path));
  console.log(
    `made ${name} (${formatSize(size)}) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return name;
}

/** `deno run main.ts --version`: the fixed start-up time and memory of every ferry process. */
async function startup(bench: Bench): Promise<{ ms: number; rss: number | undefined }> {
  const times: number[] = [];
  const rss: number[] = [];
  for (let index = 0; index < 6; index++) {
    const result = await runMeasured(DENO, [
      "run",
      "--no-prompt",
      ...FERRY_V8_FLAGS,
      MAIN,
      "--version",
    ], {
      method: bench.method,
      scratch: bench.scratch,
    });
    if (index === 0) continue;
    times.push(result.seconds * 1000);
    if (result.peakRss !== undefined) rss.push(result.peakRss);
  }
  return { ms: median(times), rss: rss.length ? median(rss) : undefined };
}

/** Connect (CPace handshake + welcome) and list the top folder, in this process, timed. */
async function latency(bench: Bench): Promise<number[]> {
  await using server = await startServe(bench.files, {
    codeFile: bench.codeFile,
    permissions: [...FERRY_V8_FLAGS, ...serverPermissions(bench)],
  });
  const secret = codeSecret(bench.code);
  const once = async () => {
    const started = performance.now();
    const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
    await client.list("");
    const elapsed = performance.now() - started;
    await client.close();
    return elapsed;
  };
  for (let index = 0; index < 5; index++) await once();
  const times: number[] = [];
  for (let index = 0; index < bench.options.latencyRuns; index++) times.push(await once());
  await server.stop("SIGTERM");
  return times;
}

interface ConcurrencyResult {
  clients: number;
  seconds: number;
  serverRss: number | undefined;
}

/** `clients` in-process downloads of `name` at once from a fresh server, timed together. */
async function concurrentDownloads(
  bench: Bench,
  name: string,
  clients: number,
): Promise<ConcurrencyResult> {
  await using server = await startServe(bench.files, {
    codeFile: bench.codeFile,
    permissions: [...FERRY_V8_FLAGS, ...serverPermissions(bench)],
  });
  const secret = codeSecret(bench.code);
  const outDir = join(bench.received, `concurrent-${clients}`);
  await Deno.mkdir(outDir, { recursive: true });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, index) => {
      await using client = await FerryClient.connect({
        hostname: "127.0.0.1",
        port: server.port,
        secret,
      });
      await client.download(name, outDir, `copy-${index}.bin`, { force: true });
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const serverRss = await readPeakRss(server.child.pid);
  await server.stop("SIGTERM");
  for (let index = 0; index < clients; index++) {
    await verify(bench, join(outDir, `copy-${index}.bin`), name, `concurrent download ${index}`);
  }
  await Deno.remove(outDir, { recursive: true });
  return { clients, seconds, serverRss };
}

/** One ferry download of `size` with both processes under `--cpu-prof`; prints the top functions. */
async function profileDownload(bench: Bench, size: number): Promise<void> {
  const profileDir = resolve(".bench", "profiles", new Date().toISOString().replace(/[:.]/g, "-"));
  await Deno.mkdir(profileDir, { recursive: true });
  const serverDir = join(profileDir, "server");
  const clientDir = join(profileDir, "client");
  const sample = await ferryRun(bench, "download", size, {
    server: ["--cpu-prof", `--cpu-prof-dir=${serverDir}`],
    client: ["--cpu-prof", `--cpu-prof-dir=${clientDir}`],
  });
  console.log(
    `\nCPU profile of one ferry download of ${formatSize(size)} (profiled: ` +
      `${mbps(size, sample.seconds).toFixed(0)} MB/s), kept in ${profileDir}`,
  );
  for (const [label, dir] of [["server", serverDir], ["client", clientDir]] as const) {
    const files: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.name.endsWith(".cpuprofile")) files.push(join(dir, entry.name));
      }
    } catch {
      // no profile written
    }
    if (files.length === 0) {
      console.log(`${label}: no profile was written`);
      continue;
    }
    console.log(`${label} (${files[0]}):`);
    for (const line of await summariseProfileFile(files[0]!, 12)) console.log(`  ${line}`);
  }
}

async function machineLine(): Promise<string> {
  const info = await readProcFile("/proc/cpuinfo") ?? "";
  const cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? "unknown CPU";
  let ssh = "no OpenSSH";
  try {
    const output = await new Deno.Command("ssh", { args: ["-V"], stderr: "piped" }).output();
    ssh = new TextDecoder().decode(output.stderr).trim().split(",")[0] ?? ssh;
  } catch {
    // not installed
  }
  return `${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}, ${ssh}, ` +
    `${Deno.build.os}`;
}

/** The 1-minute load average: other busy processes on a 2-core machine skew every figure. */
async function loadAverage(): Promise<string> {
  return (await readProcFile("/proc/loadavg"))?.split(" ")[0] ?? "?";
}

async function run(options: Options): Promise<number> {
  console.log(`ferry benchmark on ${await machineLine()}; load average ${await loadAverage()}`);
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ dir: options.tmp, prefix: "ferry-bench-" }),
  );
  let sshd: PrivateSshd | undefined;
  const cleanup = async () => {
    await sshd?.stop();
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else console.log(`kept ${dir}`);
  };
  const onInterrupt = () => {
    console.log("\ninterrupted: stopping sshd and removing the temporary folder");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const bench: Bench = {
      options,
      dir,
      files: join(dir, "files"),
      received: join(dir, "received"),
      scratch: join(dir, "scratch"),
      codeFile: join(dir, "code"),
      code: "",
      method: await detectRssMethod(),
      sshd: undefined,
      sources: new Map(),
    };
    for (const folder of [bench.files, bench.received, bench.scratch]) await Deno.mkdir(folder);
    bench.code = await makeCodeFile(bench.codeFile);
    console.log(`temporary folder ${dir}`);
    console.log(
      bench.method === "gnu-time"
        ? "client peak RSS: ru_maxrss from GNU time (/usr/bin/time -f %M), exact"
        : "client peak RSS: /proc/<pid>/status VmHWM polled every 50 ms (no GNU time)",
    );
    console.log(
      "server peak RSS: VmHWM of a fresh `ferry serve` process read right after each run",
    );

    if (options.sftp) {
      const sshdPath = await ensureSshd();
      if (sshdPath) {
        try {
          sshd = await PrivateSshd.start(sshdPath, join(dir, "ssh"));
          bench.sshd = sshd;
          console.log(
            `private sshd ${sshdPath} on 127.0.0.1:${sshd.port} (pid ${sshd.pid}, cipher ` +
              `${SSH_CIPHER}, config and keys in ${join(dir, "ssh")})`,
          );
        } catch (error) {
          console.log(`Could not start sshd, measuring ferry alone: ${(error as Error).message}`);
        }
      }
    }

    // Files, then one small warm-up transfer per tool (module cache, page cache, known_hosts).
    const warmSize = 1024 * 1024;
    await prepareFile(bench, warmSize, 99);
    const sizes = [...new Set(options.sizes)];
    for (const [index, size] of sizes.entries()) await prepareFile(bench, size, index + 1);
    const concurrentName = sizes.includes(options.concurrentSize)
      ? fileName(options.concurrentSize)
      : await prepareFile(bench, options.concurrentSize, 77);
    const treeSource = options.tree > 0 ? await makeTree(bench.files, options.tree) : undefined;
    for (const direction of ["download", "upload"] as const) {
      await ferryRun(bench, direction, warmSize);
      if (bench.sshd) await sftpRun(bench, direction, warmSize);
    }

    const samples: Sample[] = [];
    for (const size of sizes) {
      for (const direction of ["download", "upload"] as const) {
        for (let runIndex = 0; runIndex < options.runs; runIndex++) {
          // Alternate which tool goes first, so neither always follows the other.
          const order: Tool[] = runIndex % 2 === 0 ? ["ferry", "sftp"] : ["sftp", "ferry"];
          for (const tool of order) {
            if (tool === "sftp" && !bench.sshd) continue;
            await syncDisk();
            await warmSource(bench, fileName(size));
            const sample = tool === "ferry"
              ? await ferryRun(bench, direction, size)
              : await sftpRun(bench, direction, size);
            samples.push(sample);
            console.log(
              `  ${cell(tool, 5)} ${cell(direction, 8)} ${formatSize(size)} run ${runIndex + 1}: ` +
                `${sample.seconds.toFixed(2)} s, ${mbps(size, sample.seconds).toFixed(0)} MB/s, ` +
                `client ${formatMB(sample.clientRss)} ${formatCpu(sample.clientCpu)}` +
                (tool === "ferry"
                  ? `, server ${formatMB(sample.serverRss)} ${formatCpu(sample.serverCpu)}`
                  : "") +
                `, machine busy ${formatBusy(sample.machineBusy, size)}`,
            );
          }
        }
      }
    }

    let tree: TreeRuns | undefined;
    if (treeSource) {
      const setup = { ...bench, serverPermissions: serverPermissions(bench) };
      tree = { source: treeSource, samples: await measureTrees(setup, treeSource, options.runs) };
    }

    const idle = await startup(bench);
    const latencies = await latency(bench);
    const concurrency: { one: ConcurrencyResult[]; many: ConcurrencyResult[] } = {
      one: [],
      many: [],
    };
    for (let runIndex = 0; runIndex < options.runs; runIndex++) {
      await warmSource(bench, concurrentName);
      concurrency.one.push(await concurrentDownloads(bench, concurrentName, 1));
      await warmSource(bench, concurrentName);
      concurrency.many.push(await concurrentDownloads(bench, concurrentName, options.clients));
    }
    if (options.profile) await profileDownload(bench, Math.max(...sizes));

    console.log(`load average at the end: ${await loadAverage()}`);
    return report(bench, samples, tree, idle, latencies, concurrency);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await cleanup();
  }
}

/** The small-file tree and its timed runs. */
interface TreeRuns {
  source: TreeSource;
  samples: TreeSample[];
}

function report(
  bench: Bench,
  samples: Sample[],
  tree: TreeRuns | undefined,
  idle: { ms: number; rss: number | undefined },
  latencies: number[],
  concurrency: { one: ConcurrencyResult[]; many: ConcurrencyResult[] },
): number {
  const { options } = bench;
  console.log(
    `\nResults: median of ${options.runs} runs; MB/s = 10^6 bytes per second of client wall ` +
      `time (start-up included); CPU s/GiB = busy CPU seconds of the whole machine (all cores, ` +
      `/proc/stat) while the client ran, per GiB moved; peak RSS = highest of the runs, ` +
      `MB = 10^6 bytes.`,
  );
  const header = [
    "tool",
    "direction",
    "size",
    "MB/s",
    "vs sftp",
    "CPU s/GiB",
    "client RSS",
    "server RSS",
  ];
  const widths = [5, 9, 8, 7, 7, 9, 10, 10];
  const rows: string[][] = [];
  const ratios: { direction: Direction; size: number; ratio: number }[] = [];
  const cpuCosts: { direction: Direction; size: number; ferry: number; sftp: number }[] = [];
  const peak = { client: 0, server: 0 };
  for (const size of [...new Set(options.sizes)]) {
    for (const direction of ["download", "upload"] as const) {
      const of = (tool: Tool) =>
        samples.filter((s) => s.tool === tool && s.direction === direction && s.size === size);
      const speed = (tool: Tool) => median(of(tool).map((s) => mbps(size, s.seconds)));
      const sftpSpeed = bench.sshd ? speed("sftp") : NaN;
      const cpuCost = (tool: Tool) => {
        const values = of(tool).map((s) => cpuPerGiB(s.machineBusy, size))
          .filter((v): v is number => v !== undefined);
        return values.length ? median(values) : NaN;
      };
      if (bench.sshd) {
        const costs = { ferry: cpuCost("ferry"), sftp: cpuCost("sftp") };
        if (Number.isFinite(costs.ferry) && Number.isFinite(costs.sftp)) {
          cpuCosts.push({ direction, size, ...costs });
        }
      }
      for (const tool of ["ferry", "sftp"] as const) {
        if (of(tool).length === 0) continue;
        const toolSpeed = speed(tool);
        const ratio = toolSpeed / sftpSpeed;
        if (tool === "ferry" && Number.isFinite(ratio)) ratios.push({ direction, size, ratio });
        const rss = (pick: (s: Sample) => number | undefined) => {
          const values = of(tool).map(pick).filter((v): v is number => v !== undefined);
          return values.length ? Math.max(...values) : undefined;
        };
        const clientRss = rss((s) => s.clientRss);
        const serverRss = rss((s) => s.serverRss);
        if (tool === "ferry") {
          peak.client = Math.max(peak.client, clientRss ?? Infinity);
          peak.server = Math.max(peak.server, serverRss ?? Infinity);
        }
        rows.push([
          tool,
          direction,
          formatSize(size),
          toolSpeed.toFixed(0),
          Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
          Number.isFinite(cpuCost(tool)) ? cpuCost(tool).toFixed(2) : "-",
          formatMB(clientRss),
          tool === "ferry" ? formatMB(serverRss) : "-",
        ]);
      }
    }
  }
  const line = (cells: string[]) =>
    cells.map((text, index) => cell(text, widths[index]!, index >= 3)).join("  ");
  console.log(line(header));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  for (const row of rows) console.log(line(row));
  const treeSummary = tree ? reportTrees(tree.samples, tree.source, options.runs) : undefined;

  const latencyMedian = median(latencies);
  console.log(
    `\nhandshake + first listing (in-process client, \`ferry serve\` subprocess, after 5 ` +
      `warm-ups): median ${latencyMedian.toFixed(1)} ms, min ${Math.min(...latencies).toFixed(1)}` +
      ` ms, p90 ${percentile(latencies, 90).toFixed(1)} ms over ${latencies.length}`,
  );
  console.log(
    `ferry start-up alone (deno run main.ts --version, median of 5): ${idle.ms.toFixed(0)} ms, ` +
      `peak RSS ${formatMB(idle.rss)}`,
  );
  const concurrentSize = options.concurrentSize;
  const oneSpeed = median(concurrency.one.map((r) => mbps(concurrentSize, r.seconds)));
  const manySpeed = median(
    concurrency.many.map((r) => mbps(concurrentSize * r.clients, r.seconds)),
  );
  const manyRss = Math.max(...concurrency.many.map((r) => r.serverRss ?? Infinity));
  console.log(
    `concurrent downloads of ${formatSize(concurrentSize)} (in-process clients, median of ` +
      `${options.runs}): 1 client ${oneSpeed.toFixed(0)} MB/s; ${options.clients} clients ` +
      `${manySpeed.toFixed(0)} MB/s aggregate ` +
      `(${(manySpeed / oneSpeed).toFixed(2)}x), server peak RSS ${formatMB(manyRss)}`,
  );

  const results: [boolean | undefined, string][] = [];
  for (const direction of ["download", "upload"] as const) {
    const ratio = treeSummary?.ratios.find((r) => r.direction === direction)?.ratio;
    results.push([
      ratio === undefined ? undefined : ratio >= 1.25,
      `tree ${direction} >= 1.25x sftp: ` +
      (tree === undefined
        ? "not measured (--tree 0)"
        : ratio === undefined
        ? "not measured (no sftp)"
        : `${tree.source.digest.files} files of ${formatSize(TREE_FILE_SIZE)} ` +
          `${ratio.toFixed(2)}x`),
    ]);
  }
  for (const direction of ["download", "upload"] as const) {
    const mine = ratios.filter((r) => r.direction === direction);
    const text = mine.map((r) => `${formatSize(r.size)} ${r.ratio.toFixed(2)}x`).join(", ");
    results.push([
      mine.length ? mine.every((r) => r.ratio >= 1.25) : undefined,
      `single-file ${direction} >= 1.25x sftp MB/s: ${text || "not measured (no sftp)"}`,
    ]);
  }
  results.push([
    cpuCosts.length ? cpuCosts.every((c) => c.ferry <= c.sftp) : undefined,
    `busy CPU s/GiB <= sftp (ferry vs sftp): ${
      cpuCosts.map((c) =>
        `${c.direction} ${formatSize(c.size)} ${c.ferry.toFixed(2)} vs ${c.sftp.toFixed(2)}`
      ).join(", ") || "not measured"
    }`,
  ]);
  const limit = 80e6;
  const peakClient = Math.max(peak.client, treeSummary?.peakClient ?? 0);
  const peakServer = Math.max(peak.server, treeSummary?.peakServer ?? 0);
  results.push([
    peakClient <= limit && peakServer <= limit,
    `peak RSS <= 80 MB per process: client ${formatMB(peakClient)}, server ` +
    `${formatMB(peakServer)} (files ${[...new Set(options.sizes)].map(formatSize).join(", ")}` +
    `${tree ? ` and the tree` : ""})`,
  ]);
  results.push([
    latencyMedian < 50,
    `handshake + first listing < 50 ms: median ${latencyMedian.toFixed(1)} ms`,
  ]);
  results.push([
    manySpeed >= oneSpeed,
    `${options.clients} concurrent downloads >= one: ${manySpeed.toFixed(0)} vs ` +
    `${oneSpeed.toFixed(0)} MB/s`,
  ]);
  const notes = [
    ...(options.tree === 5000 ? [] : [`tree of ${options.tree} files, the issue asks for 5000`]),
    ...(options.clients === 16 ? [] : [`${options.clients} clients, the issue asks for 16`]),
  ];
  console.log(`\nspeed targets${notes.length ? ` (${notes.join("; ")})` : ""}:`);
  for (const [passed, text] of results) {
    console.log(`${passed === undefined ? "SKIP" : passed ? "PASS" : "FAIL"}  ${text}`);
  }
  const failed = results.some(([passed]) => passed === false);
  return options.strict && failed ? 1 : 0;
}

if (import.meta.main) {
  let options: Options | undefined;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n\n${HELP}`);
    Deno.exit(2);
  }
  if (!options) {
    console.log(HELP);
    Deno.exit(0);
  }
  try {
    Deno.exit(await run(options));
  } catch (error) {
    console.error(`\nbench FAILED: ${(error as Error).stack ?? error}`);
    Deno.exit(1);
  }
}
