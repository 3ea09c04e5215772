/**
 * Summarises a V8 `.cpuprofile` (as written by `deno run --cpu-prof`): the functions with the most
 * self time, and with the most total time (self plus callees), each as milliseconds and a share of
 * the sampled time.
 *
 * ```sh
 * deno run --allow-read bench/cpuprofile_summary.ts PROFILE.cpuprofile [--top 20]
 * ```
 *
 * Permission: read (the profile).
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

/** The parts of a `.cpuprofile` this summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of a profile. */
export interface FunctionCost {
  /** `name (file:line)`. */
  label: string;
  selfMs: number;
  totalMs: number;
}

/** A summary of a profile. */
export interface ProfileSummary {
  /** Sampled time in milliseconds. */
  sampledMs: number;
  /** Sorted by self time, highest first. */
  bySelf: FunctionCost[];
  /** Sorted by total time, highest first. */
  byTotal: FunctionCost[];
}

function labelOf(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  const file = frame.url.replace(/^file:\/\//, "")
    .replace(/^.*\/(lib|bench|tests)\//, "$1/")
    .replace(/^.*\/main\.ts$/, "main.ts")
    .replace(/^ext:/, "ext:")
    .replace(/^.*\/node_modules\/|^.*\/npm\/registry\.npmjs\.org\//, "npm:");
  return `${name} (${file}:${frame.lineNumber + 1})`;
}

/** Aggregates self and total time per function (recursion counted once per sample). */
export function summariseProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const costs = new Map<string, FunctionCost>();
  const costOf = (label: string) => {
    let cost = costs.get(label);
    if (!cost) costs.set(label, cost = { label, selfMs: 0, totalMs: 0 });
    return cost;
  };
  let sampledMs = 0;
  profile.samples.forEach((id, index) => {
    // timeDeltas[i] is the time before sample i; attribute the following interval to it.
    const deltaMs = (profile.timeDeltas[index + 1] ?? profile.timeDeltas[index] ?? 0) / 1000;
    sampledMs += deltaMs;
    const node = byId.get(id);
    if (!node) return;
    costOf(labelOf(node.callFrame)).selfMs += deltaMs;
    const seen = new Set<string>();
    for (
      let current: number | undefined = id;
      current !== undefined;
      current = parent.get(current)
    ) {
      const label = labelOf(byId.get(current)!.callFrame);
      if (label === "(root)" || seen.has(label)) continue;
      seen.add(label);
      costOf(label).totalMs += deltaMs;
    }
  });
  const all = [...costs.values()].filter((cost) => cost.label !== "(root)");
  return {
    sampledMs,
    bySelf: [...all].sort((a, b) => b.selfMs - a.selfMs),
    byTotal: [...all].sort((a, b) => b.totalMs - a.totalMs),
  };
}

/** The summary as printable lines: the top `top` by self time, then by total time. */
export function formatSummary(summary: ProfileSummary, top = 15): string[] {
  const share = (ms: number) => `${(100 * ms / summary.sampledMs).toFixed(1).padStart(5)}%`;
  const row = (ms: number, label: string) =>
    `  ${ms.toFixed(0).padStart(7)} ms ${share(ms)}  ${label}`;
  return [
    `sampled ${summary.sampledMs.toFixed(0)} ms; top ${top} by self time:`,
    ...summary.bySelf.slice(0, top).map((cost) => row(cost.selfMs, cost.label)),
    `top ${top} by total time (self + callees):`,
    ...summary.byTotal.slice(0, top).map((cost) => row(cost.totalMs, cost.label)),
  ];
}

/** Reads and summarises the profile at `path`. */
export async function summariseProfileFile(path: string, top = 15): Promise<string[]> {
  const profile = JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
  return formatSummary(summariseProfile(profile), top);
}

if (import.meta.main) {
  const args = [...Deno.args];
  let top = 20;
  const topIndex = args.indexOf("--top");
  if (topIndex >= 0) {
    top = Number(args[topIndex + 1]);
    args.splice(topIndex, 2);
  }
  if (args.length === 0 || !Number.isInteger(top) || top <= 0) {
    console.error("Usage: cpuprofile_summary.ts PROFILE.cpuprofile... [--top N]");
    Deno.exit(2);
  }
  for (const path of args) {
    console.log(path);
    for (const line of await summariseProfileFile(path, top)) console.log(line);
  }
}
