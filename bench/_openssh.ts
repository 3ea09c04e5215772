/**
 * The comparison point of the benchmark: a private OpenSSH server on 127.0.0.1 and the `sftp`
 * client, both configured only from files in a temporary folder (never `/etc/ssh`, never
 * `~/.ssh`).
 *
 * `sshd` runs in the foreground (`-D -e`) with `-f` pointing at its own config, its own host key
 * (`-h`), `PidFile` and `AuthorizedKeysFile` in the folder, `UsePAM no`, `StrictModes no`, only
 * public-key login for the current user, `Subsystem sftp internal-sftp` and only the
 * `aes128-gcm@openssh.com` cipher (OpenSSH's fastest on this kind of machine). The client runs
 * with `-F /dev/null`, its own known-hosts file and key, and the same cipher.
 *
 * Permissions: run (`sshd`, `ssh-keygen`, `sftp`, and `apt-get` when sshd is missing), read and
 * write (the temporary folder), net (127.0.0.1, to pick a free port).
 *
 * @module
 */
import { join } from "node:path";

const SSHD_CANDIDATES = ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"];
/** The cipher both sides are limited to. */
export const SSH_CIPHER = "aes128-gcm@openssh.com";

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function findSshd(): Promise<string | undefined> {
  for (const path of SSHD_CANDIDATES) if (await isFile(path)) return path;
  return undefined;
}

async function runLoud(command: string, args: string[], env?: Record<string, string>) {
  console.log(`$ ${[command, ...args].join(" ")}`);
  const status = await new Deno.Command(command, {
    args,
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return status.success;
}

/**
 * The absolute path of `sshd`. When it is missing, installs the `openssh-server` package with
 * `apt-get` (printing each command and its output), which needs root. Returns undefined, with the
 * reason printed, when there is still no sshd.
 */
export async function ensureSshd(): Promise<string | undefined> {
  const found = await findSshd();
  if (found) return found;
  console.log("OpenSSH server (sshd) is not installed: installing it to compare against.");
  if (Deno.uid() !== 0) {
    console.log("Not running as root, so apt-get cannot install it.");
  } else {
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    const ok = await runLoud("apt-get", ["update"], env) &&
      await runLoud("apt-get", ["install", "-y", "--no-install-recommends", "openssh-server"], env)
        .catch(() => false);
    if (!ok) console.log("apt-get failed.");
  }
  const installed = await findSshd();
  if (!installed) {
    console.log(
      "No sshd: the sftp comparison is skipped and ferry is measured alone. Install " +
        "openssh-server (apt-get install -y openssh-server) to compare.",
    );
  }
  return installed;
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function keygen(path: string): Promise<void> {
  const output = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-C", "ferry-bench", "-f", path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`ssh-keygen failed: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
}

function currentUser(): string {
  const user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME");
  if (user) return user;
  return Deno.uid() === 0 ? "root" : "nobody";
}

/** A running private sshd and what a client needs to reach it. */
export class PrivateSshd implements AsyncDisposable {
  readonly port: number;
  readonly user: string;
  readonly #dir: string;
  readonly #child: Deno.ChildProcess;
  #log: string;
  #stopped: Promise<unknown> | undefined;

  private constructor(dir: string, port: number, user: string, child: Deno.ChildProcess) {
    this.#dir = dir;
    this.port = port;
    this.user = user;
    this.#child = child;
    this.#log = "";
  }

  /** The sshd process id (its per-connection children are forks of it). */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Generates keys and a config in `dir`, starts `sshdPath` on a free port of 127.0.0.1 and
   * resolves once it says it is listening.
   */
  static async start(sshdPath: string, dir: string): Promise<PrivateSshd> {
    await Deno.mkdir(dir, { recursive: true });
    const hostKey = join(dir, "ssh_host_ed25519_key");
    const clientKey = join(dir, "client_ed25519");
    await keygen(hostKey);
    await keygen(clientKey);
    await Deno.copyFile(`${clientKey}.pub`, join(dir, "authorized_keys"));
    const user = currentUser();
    const port = freePort();
    const config = [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin yes",
      `AllowUsers ${user}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UseDNS no",
      "Compression no",
      "PrintMotd no",
      `Ciphers ${SSH_CIPHER}`,
      "Subsystem sftp internal-sftp",
      "LogLevel INFO",
      "",
    ].join("\n");
    const configPath = join(dir, "sshd_config");
    await Deno.writeTextFile(configPath, config);
    // Debian's sshd refuses to start without its privilege separation folder.
    if (Deno.uid() === 0 && !(await Deno.stat("/run/sshd").then(() => true, () => false))) {
      await runLoud("install", ["-d", "-m", "0755", "/run/sshd"]);
    }
    const child = new Deno.Command(sshdPath, {
      args: ["-D", "-e", "-f", configPath, "-h", hostKey],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const sshd = new PrivateSshd(dir, port, user, child);
    const listening = Promise.withResolvers<void>();
    const decoder = new TextDecoder();
    (async () => {
      for await (const chunk of child.stderr) {
        sshd.#log += decoder.decode(chunk, { stream: true });
        if (sshd.#log.length > 64_000) sshd.#log = sshd.#log.slice(-32_000);
        if (/Server listening on 127\.0\.0\.1 port/.test(sshd.#log)) listening.resolve();
      }
      listening.reject(new Error(`sshd exited before listening:\n${sshd.#log.trim()}`));
    })();
    const timer = setTimeout(
      () => listening.reject(new Error(`sshd did not start in 10 s:\n${sshd.#log.trim()}`)),
      10_000,
    );
    try {
      await listening.promise;
    } catch (error) {
      await sshd.stop();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return sshd;
  }

  /** The `sftp` arguments (before `-b`) that reach this server with the private config. */
  sftpArgs(): string[] {
    return [
      "-F",
      "/dev/null",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      `UserKnownHostsFile=${join(this.#dir, "known_hosts")}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "LogLevel=ERROR",
      "-i",
      join(this.#dir, "client_ed25519"),
      "-P",
      String(this.port),
      "-c",
      SSH_CIPHER,
    ];
  }

  /** Writes a batch file with `lines` and returns the full `sftp` argument list that runs it. */
  async batch(name: string, lines: string[]): Promise<string[]> {
    const path = join(this.#dir, `${name}.batch`);
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    return [...this.sftpArgs(), "-b", path, `${this.user}@127.0.0.1`];
  }

  /** What sshd logged recently (for error messages). */
  log(): string {
    return this.#log;
  }

  /** Stops sshd (SIGTERM) and waits for it. */
  stop(): Promise<unknown> {
    if (!this.#stopped) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // already gone
      }
      this.#stopped = this.#child.status;
    }
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
