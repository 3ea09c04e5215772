/**
 * Real networks on this machine, for the relay and LAN discovery tests: Linux network namespaces
 * joined by veth pairs and bridges, routers that masquerade with iptables (real NAT), and programs
 * run inside them with `ip netns exec`.
 *
 * Each {@link Lab} names its namespaces `fy<pid>-<n>-<name>`, so parallel runs never collide, and
 * tears everything down when disposed (`await using`), failing test or not: it kills the
 * processes it started, then deletes its namespaces (which deletes their links). Namespaces left
 * by a run that was killed are removed by the next run, which finds their process gone.
 *
 * This needs root, `ip` (iproute2) and `iptables`; {@link NETNS} says whether they are there, and
 * why not when they are not, so the tests can skip with that reason.
 *
 * @module
 */

/** Whether network namespaces can be made here, and why not. */
export interface NetnsSupport {
  available: boolean;
  /** Why the namespace tests skip (when not available). */
  reason?: string;
}

/** A command's result. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Runs `command args...` to completion; a missing program is `code: 127`. */
async function run(command: string, args: string[]): Promise<Output> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${command}: not found` };
    }
    throw error;
  }
}

/** Runs a command that must succeed; throws with its output otherwise. */
async function must(command: string, args: string[]): Promise<Output> {
  const output = await run(command, args);
  if (output.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${output.code}): ${output.stderr.trim()}`,
    );
  }
  return output;
}

let counter = 0;
const PREFIX = `fy${Deno.pid}-`;

/** Deletes namespaces named by a lab whose process is gone (a run killed before its cleanup). */
async function removeStale(): Promise<void> {
  const listed = await run("ip", ["netns", "list"]);
  for (const line of listed.stdout.split("\n")) {
    const name = line.split(" ", 1)[0]!;
    const pid = /^fy(\d+)-/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === Deno.pid) continue;
    const alive = await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
    if (!alive) await run("ip", ["netns", "delete", name]);
  }
}

/** Finds out once whether namespaces, veth pairs and NAT rules can be made here. */
async function probe(): Promise<NetnsSupport> {
  if (Deno.build.os !== "linux") return { available: false, reason: "not Linux" };
  const ip = await run("ip", ["-V"]);
  if (ip.code === 127) {
    return { available: false, reason: "`ip` (iproute2) is not installed" };
  }
  const iptables = await run("iptables", ["--version"]);
  if (iptables.code === 127) {
    return {
      available: false,
      reason: "`iptables` is not installed (apt-get install iptables; .ci/run does)",
    };
  }
  const name = `${PREFIX}probe`;
  const made = await run("ip", ["netns", "add", name]);
  if (made.code !== 0) {
    return {
      available: false,
      reason: `cannot create a network namespace (root needed): ${made.stderr.trim()}`,
    };
  }
  try {
    const nat = await run("ip", [
      "netns",
      "exec",
      name,
      "iptables",
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-j",
      "MASQUERADE",
    ]);
    if (nat.code !== 0) {
      return {
        available: false,
        reason: `iptables cannot add a NAT rule in a namespace: ${nat.stderr.trim()}`,
      };
    }
    const veth = await run("ip", [
      "-n",
      name,
      "link",
      "add",
      "name",
      "probe0",
      "type",
      "veth",
      "peer",
      "name",
      "probe1",
    ]);
    if (veth.code !== 0) {
      return { available: false, reason: `cannot create veth pairs: ${veth.stderr.trim()}` };
    }
  } finally {
    await run("ip", ["netns", "delete", name]);
  }
  await removeStale();
  return { available: true };
}

/** Whether the namespace tests can run here; probed once per process. */
export const NETNS: NetnsSupport = await probe().catch((error) => ({
  available: false,
  reason: `probing failed: ${error instanceof Error ? error.message : error}`,
}));

if (!NETNS.available) {
  console.error(`network namespace tests skipped: ${NETNS.reason}`);
}

/** A process started in a namespace, its output collected line by line. */
export class LabProcess {
  readonly child: Deno.ChildProcess;
  readonly name: string;
  #stdout = "";
  #stderr = "";
  #waiters: { test: () => boolean; resolve(): void }[] = [];
  readonly done: Promise<Deno.CommandStatus>;

  constructor(name: string, child: Deno.ChildProcess) {
    this.name = name;
    this.child = child;
    const read = async (stream: ReadableStream<Uint8Array>, stdout: boolean) => {
      const streamDecoder = new TextDecoder();
      for await (const chunk of stream) {
        const text = streamDecoder.decode(chunk, { stream: true });
        if (stdout) this.#stdout += text;
        else this.#stderr += text;
        this.#wake();
      }
    };
    this.done = Promise.all([
      read(child.stdout, true),
      read(child.stderr, false),
    ]).then(() => child.status).finally(() => this.#wake());
  }

  /** Everything written to stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Everything written to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The JSON objects printed one per line on stdout so far. */
  get events(): Record<string, unknown>[] {
    return this.#stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
      JSON.parse(line)
    );
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.test()) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves with the first event on stdout with `event === name` (already printed or to come). */
  async event(name: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const find = () => this.events.find((event) => event.event === name);
    await this.#until(() => find() !== undefined, `the event ${name}`, timeoutMs);
    return find()!;
  }

  /** Resolves once stderr matches `pattern`. */
  async stderrMatches(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    await this.#until(() => pattern.test(this.#stderr), `stderr matching ${pattern}`, timeoutMs);
  }

  #until(test: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (test()) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      reject(
        new Error(
          `${this.name}: no ${what} within ${timeoutMs} ms\nstdout: ${this.#stdout}\nstderr: ${this.#stderr}`,
        ),
      );
    }, timeoutMs);
    void this.done.then(() => {
      if (!test()) {
        clearTimeout(timer);
        reject(
          new Error(
            `${this.name} exited before ${what}\nstdout: ${this.#stdout}\nstderr: ${this.#stderr}`,
          ),
        );
      }
    });
    this.#waiters.push({
      test,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
    return promise;
  }

  /** Waits for the process to end; returns its exit code. */
  async exit(timeoutMs = 30_000): Promise<number> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      return (await this.done).code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` if it still runs. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // gone already
    }
  }
}

/** A set of namespaces for one test, removed with everything in them when disposed. */
export class Lab implements AsyncDisposable {
  readonly prefix: string;
  #namespaces: string[] = [];
  #processes: LabProcess[] = [];

  constructor() {
    this.prefix = `${PREFIX}${++counter}-`;
  }

  /** The full name of the lab's namespace `name`. */
  ns(name: string): string {
    return this.prefix + name;
  }

  /** Creates namespace `name` with its loopback up. */
  async namespace(name: string): Promise<string> {
    const full = this.ns(name);
    await must("ip", ["netns", "add", full]);
    this.#namespaces.push(full);
    await must("ip", ["-n", full, "link", "set", "lo", "up"]);
    return full;
  }

  /** Runs `ip -n NS args...` (must succeed). */
  ip(name: string, ...args: string[]): Promise<Output> {
    return must("ip", ["-n", this.ns(name), ...args]);
  }

  /** Runs `command args...` inside namespace `name` to completion. */
  exec(name: string, command: string, ...args: string[]): Promise<Output> {
    return run("ip", ["netns", "exec", this.ns(name), command, ...args]);
  }

  /**
   * Joins namespaces `a` and `b` with a veth pair (`ifA` in `a` with `addressA`, `ifB` in `b`
   * with `addressB`; CIDR notation), both up.
   */
  async link(
    a: string,
    ifA: string,
    addressA: string,
    b: string,
    ifB: string,
    addressB: string,
  ): Promise<void> {
    await this.ip(
      a,
      "link",
      "add",
      "name",
      ifA,
      "type",
      "veth",
      "peer",
      "name",
      ifB,
      "netns",
      this.ns(b),
    );
    await this.ip(a, "addr", "add", addressA, "dev", ifA);
    await this.ip(b, "addr", "add", addressB, "dev", ifB);
    await this.ip(a, "link", "set", ifA, "up");
    await this.ip(b, "link", "set", ifB, "up");
  }

  /** Turns namespace `name` into a router: it forwards between its links. */
  async forward(name: string): Promise<void> {
    const done = await this.exec(name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
    if (done.code !== 0) throw new Error(`sysctl in ${name}: ${done.stderr}`);
  }

  /** Masquerades what namespace `name` forwards out of `outside` (NAT, as a home router does). */
  async masquerade(name: string, outside: string): Promise<void> {
    const done = await this.exec(
      name,
      "iptables",
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      outside,
      "-j",
      "MASQUERADE",
    );
    if (done.code !== 0) throw new Error(`iptables in ${name}: ${done.stderr}`);
  }

  /** Starts `command args...` inside namespace `name`; it is killed when the lab is disposed. */
  spawn(name: string, command: string, args: string[], label = name): LabProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns(name), command, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const process = new LabProcess(label, child);
    this.#processes.push(process);
    return process;
  }

  /** Kills every process the lab started, then deletes its namespaces. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const process of this.#processes) process.kill("SIGKILL");
    await Promise.allSettled(this.#processes.map((process) => process.done));
    for (const name of this.#namespaces.reverse()) await run("ip", ["netns", "delete", name]);
  }
}

/**
 * Two private networks behind two NATs, and a public network between them:
 *
 * ```
 *  server 10.1.0.2 ── 10.1.0.1 natA 100.64.1.2 ─┐
 *                                                ├─ public 100.64.1.1 / 100.64.2.1 (relay)
 *  client 10.2.0.2 ── 10.2.0.1 natB 100.64.2.2 ─┘
 * ```
 *
 * `public` routes between the two NATs' outer addresses (as the internet would) but knows no
 * route to either private network, and each NAT masquerades its private network behind its outer
 * address: the client and server can each reach the public network, and neither can reach the
 * other.
 */
export async function natLab(): Promise<Lab> {
  const lab = new Lab();
  try {
    for (const name of ["public", "natA", "server", "natB", "client"]) await lab.namespace(name);
    await lab.link("public", "toA", "100.64.1.1/24", "natA", "wan", "100.64.1.2/24");
    await lab.link("public", "toB", "100.64.2.1/24", "natB", "wan", "100.64.2.2/24");
    await lab.link("natA", "lan", "10.1.0.1/24", "server", "eth0", "10.1.0.2/24");
    await lab.link("natB", "lan", "10.2.0.1/24", "client", "eth0", "10.2.0.2/24");
    await lab.forward("public");
    for (const nat of ["natA", "natB"]) {
      await lab.forward(nat);
      await lab.ip(
        nat,
        "route",
        "add",
        "default",
        "via",
        nat === "natA" ? "100.64.1.1" : "100.64.2.1",
      );
      await lab.masquerade(nat, "wan");
    }
    await lab.ip("server", "route", "add", "default", "via", "10.1.0.1");
    await lab.ip("client", "route", "add", "default", "via", "10.2.0.1");
    return lab;
  } catch (error) {
    await lab[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * A local network: `hosts` namespaces (`h1`, `h2`, ...) at 10.9.0.1, 10.9.0.2, ... on one bridge
 * (in a namespace of its own, `switch`), as machines on one home network.
 */
export async function lanLab(hosts: number): Promise<Lab> {
  const lab = new Lab();
  try {
    await lab.namespace("switch");
    await lab.ip("switch", "link", "add", "name", "br0", "type", "bridge");
    await lab.ip("switch", "link", "set", "br0", "up");
    for (let index = 1; index <= hosts; index++) {
      const host = `h${index}`;
      await lab.namespace(host);
      await lab.ip(
        "switch",
        "link",
        "add",
        `p${index}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        lab.ns(host),
      );
      await lab.ip("switch", "link", "set", `p${index}`, "master", "br0");
      await lab.ip("switch", "link", "set", `p${index}`, "up");
      await lab.ip(host, "addr", "add", `10.9.0.${index}/24`, "dev", "eth0");
      await lab.ip(host, "link", "set", "eth0", "up");
    }
    return lab;
  } catch (error) {
    await lab[Symbol.asyncDispose]();
    throw error;
  }
}
