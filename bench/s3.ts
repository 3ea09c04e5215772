/**
 * `deno task bench:s3`: ferry serving a bucket against rclone copying the same objects straight
 * from (and to) the bucket, in the same run, against a real S3 server on this machine (Ceph's
 * RADOS Gateway, started by scripts/s3_gateway.sh on its own ports, in memory, and stopped after).
 *
 * For each size and direction it runs ferry and rclone alternately (`--runs` each, the order
 * swapped every run) and checks every copy's SHA-256 against the source:
 * - download: `ferry get` from a fresh `ferry serve s3://BUCKET/PREFIX` (bucket -> ferry server ->
 *   encrypted channel -> client) against `rclone copyto :s3:BUCKET/KEY FILE` (bucket -> rclone);
 * - upload: `ferry put` through the server against `rclone copyto FILE :s3:BUCKET/KEY`.
 * rclone runs with its defaults (4 streams for downloads past 256 MiB, 4 parts of 5 MiB at once
 * for uploads), configured only through `RCLONE_S3_*` variables (`--config /dev/null`).
 *
 * Time is the wall time of the client process, start-up included (MB = 10^6 bytes). Peak RSS:
 * the client's (ferry's client, or rclone) from GNU time, and the ferry server's `VmHWM`. It also
 * times `ferry serve s3://` until it listens, against `ferry serve DIR`.
 *
 * ```sh
 * deno task bench:s3                            # 256 MiB and 1 GiB, 3 runs each
 * deno task bench:s3 --sizes 64M --runs 1       # quick
 * ```
 *
 * Permissions: run (deno, rclone, bash, GNU time, cat, sync), read, write (/tmp), net (127.0.0.1),
 * env (TMPDIR and the FERRY_* names below).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { createHash } from "node:crypto";
import {
  DENO,
  FERRY_V8_FLAGS,
  MAIN,
  makeCodeFile,
  makeFile,
  sha256File,
  startServe,
} from "../tests/_helpers.ts";
import { AwsClient } from "../lib/deps.ts";
import { S3Client } from "../lib/store/_s3_client.ts";
import { S3Store } from "../lib/store/s3.ts";
import { AWS_ENV_NAMES, type S3Settings } from "../lib/store/s3_config.ts";
import {
  cell,
  detectRssMethod,
  expectSuccess,
  formatMB,
  formatSize,
  median,
  parseSize,
  readPeakRss,
  readProcFile,
  type RssMethod,
  runMeasured,
} from "./_process.ts";

const HELP = `deno task bench:s3 [options]: ferry serving a bucket against rclone, same objects

Options:
  --sizes LIST   Object sizes, binary units (default 256M,1G; env FERRY_BENCH_SIZES)
  --runs N       Runs per tool, size and direction (default 3; env FERRY_BENCH_RUNS)
  --tmp DIR      Where the temporary folder goes (default $TMPDIR or /tmp)
  -h, --help     Show this help`;

const BUCKET = "ferry-bench";
/** Ports of the benchmark's own gateway (the tests' gateway uses 7480 and 6789). */
const GATEWAY_PORT = 7490;
const GATEWAY_MON_PORT = 6799;

type Tool = "ferry" | "rclone";
type Direction = "download" | "upload";

interface Sample {
  tool: Tool;
  direction: Direction;
  size: number;
  seconds: number;
  clientRss: number | undefined;
  serverRss: number | undefined;
}

interface Bench {
  dir: string;
  scratch: string;
  codeFile: string;
  method: RssMethod;
  settings: S3Settings;
  env: Record<string, string>;
  client: S3Client;
  rclone: boolean;
}

function mbps(bytes: number, seconds: number): number {
  return bytes / seconds / 1e6;
}

function fileName(size: number): string {
  return `data-${formatSize(size).replace(" ", "")}.bin`;
}

/** Starts the benchmark's own gateway, sized for the objects; returns its variables. */
async function startGateway(dir: string, largest: number): Promise<Record<string, string>> {
  const memory = Math.max(2 * 2 ** 30, 4 * largest + 2 ** 30);
  const output = await new Deno.Command("bash", {
    args: ["scripts/s3_gateway.sh", "start", dir],
    env: {
      FERRY_S3_PORT: String(GATEWAY_PORT),
      FERRY_S3_MON_PORT: String(GATEWAY_MON_PORT),
      FERRY_S3_MEMORY: String(memory),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(`The gateway did not start:\n${new TextDecoder().decode(output.stderr)}`);
  }
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/^export (AWS_[A-Z_]+)=(.*)$/gm)) env[match[1]!] = match[2]!;
  return env;
}

async function stopGateway(dir: string): Promise<void> {
  await new Deno.Command("bash", {
    args: ["scripts/s3_gateway.sh", "stop", dir],
    stdout: "null",
    stderr: "null",
  }).output();
}

/** Creates the bucket (one that exists is fine). */
async function createBucket(settings: S3Settings, bucket: string): Promise<void> {
  const signer = new AwsClient({ ...settings.credentials, service: "s3", region: settings.region });
  const response = await signer.fetch(`${settings.endpoint.origin}/${bucket}`, { method: "PUT" });
  const text = await response.text();
  if (response.status !== 200 && !text.includes("BucketAlreadyOwnedByYou")) {
    throw new Error(`Cannot create bucket ${bucket}: ${response.status} ${text}`);
  }
}

/** Puts the local `path` at `key` through the S3 store's own upload (parts, lease, commit). */
async function seedObject(bench: Bench, path: string, name: string): Promise<void> {
  const store = await S3Store.open({ bucket: BUCKET, prefix: [] }, bench.settings);
  const pending = await store.beginUpload(name);
  using file = await Deno.open(path);
  const block = new Uint8Array(1024 * 1024);
  for (let count = await file.read(block); count !== null; count = await file.read(block)) {
    await pending.write(block.subarray(0, count));
  }
  await pending.commit({ force: true });
}

/** SHA-256 of the object `key`, streamed. */
async function objectSha256(bench: Bench, key: string): Promise<string> {
  const stream = await bench.client.read(key, 0);
  if (stream === null) throw new Error(`No object ${key}`);
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}

/** `ferry serve s3://ferry-bench` with the narrowest permissions that work. */
function serveBucket(bench: Bench) {
  const endpoint = new URL(bench.env.AWS_ENDPOINT_URL!);
  return startServe(`s3://${BUCKET}`, {
    codeFile: bench.codeFile,
    env: bench.env,
    permissions: [
      ...FERRY_V8_FLAGS,
      `--allow-net=127.0.0.1:0,${endpoint.host}`,
      `--allow-read=${bench.codeFile}`,
      `--allow-env=FERRY_CODE,${AWS_ENV_NAMES.join(",")}`,
    ],
  });
}

async function ferryRun(
  bench: Bench,
  direction: Direction,
  size: number,
  source: string,
): Promise<Sample> {
  const name = fileName(size);
  await using server = await serveBucket(bench);
  const received = join(bench.dir, "received");
  const common = ["run", "--no-prompt", ...FERRY_V8_FLAGS, `--allow-net=127.0.0.1:${server.port}`];
  const args = direction === "download"
    ? [
      ...common,
      `--allow-read=${bench.codeFile},${received}`,
      `--allow-write=${received}`,
      MAIN,
      "get",
      server.address,
      name,
      "-o",
      received,
      "--force",
      "--quiet",
      "--code-file",
      bench.codeFile,
    ]
    : [
      ...common,
      `--allow-read=${bench.codeFile},${source}`,
      MAIN,
      "put",
      server.address,
      source,
      "--force",
      "--quiet",
      "--code-file",
      bench.codeFile,
    ];
  const result = await runMeasured(DENO, args, {
    method: bench.method,
    scratch: bench.scratch,
    env: { NO_COLOR: "1" },
  });
  const serverRss = await readPeakRss(server.child.pid);
  await server.stop("SIGTERM");
  expectSuccess(result, `ferry ${direction} of ${name}`, server.log());
  await check(bench, direction, source, join(received, name), `uploaded_${name}`);
  return {
    tool: "ferry",
    direction,
    size,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss,
  };
}

async function rcloneRun(
  bench: Bench,
  direction: Direction,
  size: number,
  source: string,
): Promise<Sample> {
  const name = fileName(size);
  const landed = join(bench.dir, "received", name);
  const args = direction === "download"
    ? ["copyto", `:s3:${BUCKET}/${name}`, landed]
    : ["copyto", source, `:s3:${BUCKET}/rclone_${name}`];
  const result = await runMeasured("rclone", ["--config", "/dev/null", ...args], {
    method: bench.method,
    scratch: bench.scratch,
    env: {
      RCLONE_S3_PROVIDER: "Ceph",
      RCLONE_S3_ENDPOINT: bench.env.AWS_ENDPOINT_URL!,
      RCLONE_S3_ACCESS_KEY_ID: bench.env.AWS_ACCESS_KEY_ID!,
      RCLONE_S3_SECRET_ACCESS_KEY: bench.env.AWS_SECRET_ACCESS_KEY!,
      RCLONE_S3_REGION: bench.env.AWS_REGION ?? "us-east-1",
      // rclone's AWS SDK cannot use a CA bundle with its own transport; the endpoint is http.
      AWS_CA_BUNDLE: "",
    },
  });
  expectSuccess(result, `rclone ${direction} of ${name}`, "");
  await check(bench, direction, source, landed, `rclone_${name}`);
  return {
    tool: "rclone",
    direction,
    size,
    seconds: result.seconds,
    clientRss: result.peakRss,
    serverRss: undefined,
  };
}

/** Compares the copy (a local file, or an object) with the source, then removes it. */
async function check(
  bench: Bench,
  direction: Direction,
  source: string,
  localCopy: string,
  uploadedKey: string,
): Promise<void> {
  const expected = await sha256File(source);
  const actual = direction === "download"
    ? await sha256File(localCopy)
    : await objectSha256(bench, uploadedKey);
  if (direction === "download") await Deno.remove(localCopy);
  else await bench.client.delete(uploadedKey);
  if (actual !== expected) {
    throw new Error(`SHA-256 MISMATCH after ${direction}: ${actual} != ${expected}`);
  }
}

/** Median ms from spawning `ferry serve ROOT` to its "Serving" line, and its RSS then. */
async function serveStartup(
  start: () => ReturnType<typeof startServe>,
): Promise<{ ms: number; rss: number | undefined }> {
  const times: number[] = [];
  const rss: number[] = [];
  for (let index = 0; index < 6; index++) {
    const started = performance.now();
    await using server = await start();
    const elapsed = performance.now() - started;
    const peak = await readPeakRss(server.child.pid);
    await server.stop("SIGTERM");
    if (index === 0) continue; // warm-up: module cache
    times.push(elapsed);
    if (peak !== undefined) rss.push(peak);
  }
  return { ms: median(times), rss: rss.length ? median(rss) : undefined };
}

async function hasRclone(): Promise<boolean> {
  try {
    return (await new Deno.Command("rclone", { args: ["version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      sizes: { type: "string" },
      runs: { type: "string" },
      tmp: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const sizes = [
    ...new Set(
      (values.sizes ?? Deno.env.get("FERRY_BENCH_SIZES") ?? "256M,1G")
        .split(",").filter((part) => part.trim() !== "").map(parseSize),
    ),
  ];
  const runs = Number(values.runs ?? Deno.env.get("FERRY_BENCH_RUNS") ?? "3");
  if (!Number.isInteger(runs) || runs < 1) {
    throw new RangeError("--runs needs a whole number above 0");
  }
  const tmp = values.tmp ?? Deno.env.get("TMPDIR") ?? "/tmp";
  const dir = await Deno.realPath(await Deno.makeTempDir({ dir: tmp, prefix: "ferry-bench-s3-" }));
  const gatewayDir = join(dir, "gateway");
  const load = (await readProcFile("/proc/loadavg"))?.split(" ")[0] ?? "?";
  console.log(
    `ferry S3 benchmark: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, load average ${load}`,
  );
  try {
    const started = performance.now();
    const env = await startGateway(gatewayDir, Math.max(...sizes));
    console.log(
      `gateway ready on ${env.AWS_ENDPOINT_URL} in ${
        ((performance.now() - started) / 1000).toFixed(0)
      } s`,
    );
    const settings: S3Settings = {
      endpoint: new URL(env.AWS_ENDPOINT_URL!),
      region: env.AWS_REGION ?? "us-east-1",
      pathStyle: true,
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
      },
    };
    await createBucket(settings, BUCKET);
    const bench: Bench = {
      dir,
      scratch: join(dir, "scratch"),
      codeFile: join(dir, "code"),
      method: await detectRssMethod(),
      settings,
      env,
      client: new S3Client(settings, BUCKET),
      rclone: await hasRclone(),
    };
    for (const folder of [bench.scratch, join(dir, "received"), join(dir, "files")]) {
      await Deno.mkdir(folder);
    }
    await makeCodeFile(bench.codeFile);
    if (!bench.rclone) {
      console.log("rclone is missing (apt-get install rclone): measuring ferry alone");
    }

    const folder = join(dir, "files");
    const startupS3 = await serveStartup(() => serveBucket(bench));
    const startupDir = await serveStartup(() =>
      startServe(folder, {
        codeFile: bench.codeFile,
        permissions: [
          ...FERRY_V8_FLAGS,
          "--allow-net=127.0.0.1:0",
          `--allow-read=${folder},${bench.codeFile}`,
          `--allow-write=${folder}`,
        ],
      })
    );

    const samples: Sample[] = [];
    for (const [index, size] of sizes.entries()) {
      const source = join(folder, fileName(size));
      await makeFile(source, size, index + 1);
      await seedObject(bench, source, fileName(size));
      for (const direction of ["download", "upload"] as const) {
        for (let run = 0; run < runs; run++) {
          const order: Tool[] = run % 2 === 0 ? ["ferry", "rclone"] : ["rclone", "ferry"];
          for (const tool of order) {
            if (tool === "rclone" && !bench.rclone) continue;
            const sample = tool === "ferry"
              ? await ferryRun(bench, direction, size, source)
              : await rcloneRun(bench, direction, size, source);
            samples.push(sample);
            console.log(
              `  ${cell(tool, 6)} ${cell(direction, 8)} ${formatSize(size)} run ${run + 1}: ` +
                `${sample.seconds.toFixed(2)} s, ${mbps(size, sample.seconds).toFixed(0)} MB/s, ` +
                `client ${formatMB(sample.clientRss)}` +
                (tool === "ferry" ? `, server ${formatMB(sample.serverRss)}` : ""),
            );
          }
        }
      }
      await bench.client.delete(fileName(size));
      await Deno.remove(source);
    }
    report(samples, sizes, runs, startupS3, startupDir);
    return 0;
  } finally {
    await stopGateway(gatewayDir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function report(
  samples: Sample[],
  sizes: number[],
  runs: number,
  startupS3: { ms: number; rss: number | undefined },
  startupDir: { ms: number; rss: number | undefined },
): void {
  console.log(
    `\nResults: median of ${runs} runs; MB/s = 10^6 bytes per second of client wall time ` +
      `(start-up included); peak RSS = highest of the runs (MB = 10^6 bytes).`,
  );
  const widths = [6, 9, 8, 7, 9, 10, 10];
  const line = (cells: string[]) =>
    cells.map((text, index) => cell(text, widths[index]!, index >= 3)).join("  ");
  console.log(line(["tool", "direction", "size", "MB/s", "vs rclone", "client RSS", "server RSS"]));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  for (const size of sizes) {
    for (const direction of ["download", "upload"] as const) {
      const of = (tool: Tool) =>
        samples.filter((s) => s.tool === tool && s.direction === direction && s.size === size);
      const speed = (tool: Tool) => median(of(tool).map((s) => mbps(size, s.seconds)));
      const peak = (values: (number | undefined)[]) => {
        const known = values.filter((v): v is number => v !== undefined);
        return known.length ? Math.max(...known) : undefined;
      };
      for (const tool of ["ferry", "rclone"] as const) {
        if (of(tool).length === 0) continue;
        const ratio = speed(tool) / speed("rclone");
        console.log(line([
          tool,
          direction,
          formatSize(size),
          speed(tool).toFixed(0),
          Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
          formatMB(peak(of(tool).map((s) => s.clientRss))),
          tool === "ferry" ? formatMB(peak(of(tool).map((s) => s.serverRss))) : "-",
        ]));
      }
    }
  }
  console.log(
    `\nferry serve until it listens (median of 5): s3:// ${startupS3.ms.toFixed(0)} ms, ` +
      `RSS ${formatMB(startupS3.rss)}; a folder ${startupDir.ms.toFixed(0)} ms, RSS ${
        formatMB(startupDir.rss)
      }`,
  );
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`\nbench:s3 FAILED: ${(error as Error).stack ?? error}`);
    Deno.exit(1);
  }
}
