/**
 * `ferry relay`: a meeting point for servers behind NATs and their clients, until interrupted.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { describeError, FerryError, ServerInterruptedError, UsageError } from "../errors.ts";
import { DEFAULT_RELAY_PORT, DEFAULT_TOKEN_FILE } from "../relay/wire.ts";
import { startRelay } from "../relay/relay.ts";
import { createTokenFile, readTokenFile, tokenFileWarning } from "../relay/token.ts";
import { lstatOrNull } from "../_fs.ts";
import { formatAddress } from "../net/address.ts";
import type { ParsedCommand } from "./args.ts";
import type { relaySpec } from "./specs/relay.ts";
import { formatBytes, printError } from "./output.ts";
import { type Needed, requirePermissions } from "./permissions.ts";

/**
 * Runs `ferry relay` until SIGINT or SIGTERM. Permissions: net (host:port); read on the token
 * file, and write on its folder when it must be created.
 */
export async function runRelay({ flags }: ParsedCommand<typeof relaySpec>): Promise<void> {
  const hostname = flags.host ?? "0.0.0.0";
  if (hostname === "") throw new UsageError("Option --host needs an address (ADDR)");
  const port = flags.port ?? DEFAULT_RELAY_PORT;
  const tokenFile = flags["token-file"] ?? DEFAULT_TOKEN_FILE;
  if (tokenFile === "") throw new UsageError("Option --token-file needs a path (PATH)");
  const rate = flags["rate-per-address"];
  if (rate !== undefined && (rate < 1 || !Number.isSafeInteger(rate))) {
    throw new UsageError("Invalid --rate-per-address: expected a size above 0, such as 10M");
  }
  const exists = await lstatOrNull(tokenFile) !== null;
  const needed: Needed[] = [
    {
      descriptor: { name: "net", host: `${hostname}:${port}` },
      flag: `--allow-net=${formatAddress(hostname, port)}`,
      why: "to listen",
    },
    {
      descriptor: { name: "read", path: tokenFile },
      flag: `--allow-read=${tokenFile}`,
      why: "to read the token file",
    },
  ];
  if (!exists) {
    needed.push({
      descriptor: { name: "write", path: dirname(resolve(tokenFile)) },
      flag: `--allow-write=${dirname(tokenFile)}`,
      why: "to create the token file",
    });
  }
  requirePermissions(needed);
  if (await createTokenFile(tokenFile)) {
    printError(
      `Created ${tokenFile} with a new relay token (mode 0600). Copy this file to each server that may register here; the token is never printed.`,
    );
  }
  const token = await readTokenFile(tokenFile);
  const warning = await tokenFileWarning(tokenFile);
  if (warning) printError(warning);

  const keepRelaying = (event: PromiseRejectionEvent | ErrorEvent) => {
    event.preventDefault();
    const reason = "reason" in event ? event.reason : event.error;
    printError(`ferry: internal error in one connection, still relaying: ${describeError(reason)}`);
  };
  globalThis.addEventListener("unhandledrejection", keepRelaying);
  globalThis.addEventListener("error", keepRelaying);
  const relay = await startRelay({
    hostname,
    port,
    token,
    limits: {
      maxClientsPerAddress: flags["max-clients-per-address"],
      bytesPerSecondPerAddress: rate,
      idleTimeoutMs: flags["idle-timeout"],
    },
    log: (line) => printError(line),
  }).catch((error) => {
    throw listenError(error, hostname, port);
  });
  let signalled: Deno.Signal | undefined;
  const stopOn = (signal: Deno.Signal) => () => {
    if (signalled) return;
    signalled = signal;
    printError("Stopping: relayed connections are cut (their transfers resume when run again).");
    void relay.close();
  };
  const onInterrupt = stopOn("SIGINT");
  const onTerminate = stopOn("SIGTERM");
  Deno.addSignalListener("SIGINT", onInterrupt);
  Deno.addSignalListener("SIGTERM", onTerminate);
  const limit = rate === undefined ? "" : `, ${formatBytes(rate)}/s per client address`;
  printError(
    `Relay listening on ${
      formatAddress(relay.hostname, relay.port)
    } (token file ${tokenFile}${limit}). Press Ctrl-C to stop.`,
  );
  try {
    await relay.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    Deno.removeSignalListener("SIGTERM", onTerminate);
  }
  printError("Relay stopped.");
  if (signalled === "SIGINT") throw new ServerInterruptedError("Relay stopped by Ctrl-C");
}

/** A failure to bind `hostname:port` as one line naming the address. */
function listenError(error: unknown, hostname: string, port: number): unknown {
  if (!(error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable)) {
    return error;
  }
  const reason = describeError(error).replace(/ \(os error \d+\)$/, "").toLowerCase();
  return new FerryError(`Cannot listen on ${formatAddress(hostname, port)}: ${reason}`);
}

/** `ferry relay`: its spec and its runner. */
