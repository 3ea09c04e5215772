/**
 * What the client commands share: `ferry ls`, `get` and `put` and the `connect` shell open a
 * session the same way, check remote paths typed by the user the same way, and report transfers
 * from the same flags.
 *
 * @module
 */
import { FerryClient } from "../client/client.ts";
import { ConnectionLostError, PathError, RefusedError, UsageError } from "../errors.ts";
import { RefusalStatus } from "../protocol/handshake.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { type ClientCode, clientCode } from "./common.ts";
import { type OutputOptions, printError } from "./output.ts";
import { ServerSearch, type ServerTarget } from "./target.ts";

/** How often, and after how long, a busy server is asked again (seconds): about 14 s in all. */
const BUSY_RETRY_SECONDS = [2, 4, 8];
/** A server that asks to slow down for longer than this is not waited for. */
const MAX_SLOW_DOWN_WAIT_SECONDS = 15;

/**
 * Opens a session with `target` (an address, or `@`: found by the code), with the code from
 * `--code-file`, FERRY_CODE or the default file. A server that is busy, or asks this address to
 * slow down for a short while, is asked again a few times, each wait said on stderr ("server
 * busy, retrying in 2 s"); a server shutting down, or one that keeps refusing, ends the command
 * with its reason.
 */
export async function openClient(
  target: ServerTarget,
  codeFile: string | undefined,
  wait: (seconds: number) => Promise<void> = sleepSeconds,
): Promise<FerryClient> {
  return connectClient(target, await clientCode(codeFile), wait);
}

/**
 * Opens a session with `target` with `code` (from `clientCode`), asking a busy server again as
 * {@link openClient} does. The `connect` shell reconnects with it, without reading
 * or asking for the code again.
 */
export async function connectClient(
  target: ServerTarget,
  code: ClientCode,
  wait: (seconds: number) => Promise<void> = sleepSeconds,
): Promise<FerryClient> {
  for (let attempt = 0;; attempt++) {
    try {
      return target instanceof ServerSearch
        ? await target.connect(code)
        : await FerryClient.connect({ ...target, ...code });
    } catch (error) {
      const seconds = retryAfter(error, attempt);
      if (seconds === undefined) throw error;
      const why = (error as RefusedError).status === RefusalStatus.busy
        ? "server busy"
        : "server asks to slow down";
      printError(`ferry: ${why}, retrying in ${seconds} s`);
      await wait(seconds);
    }
  }
}

/**
 * Runs the transfer of `ferry get` or `ferry put` over an open session. A connection lost during
 * it (the server stopped, or the socket failed: "Connection closed in the middle of a message")
 * becomes one line that says what happened and what to do; the partial file stays for the
 * resume. Any other error passes through.
 */
export async function transferring<T>(transfer: () => Promise<T>): Promise<T> {
  try {
    return await transfer();
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
    throw new ConnectionLostError(
      "The server closed the connection during the transfer: run the same command again to resume",
      { cause: error },
    );
  }
}

/** How long to wait before asking again after `error` on attempt `attempt`, or no retry. */
function retryAfter(error: unknown, attempt: number): number | undefined {
  if (!(error instanceof RefusedError)) return undefined;
  if (error.status === RefusalStatus.busy) return BUSY_RETRY_SECONDS[attempt];
  if (error.status !== RefusalStatus.slowDown || attempt > 0) return undefined;
  const asked = Number(/wait (\d+) s/.exec(error.reason)?.[1] ?? NaN);
  return asked > 0 && asked <= MAX_SLOW_DOWN_WAIT_SECONDS ? asked : undefined;
}

function sleepSeconds(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

/** Output options from the `--json` and `--quiet` flags. */
export function outputOptions(flags: { json: boolean; quiet: boolean }): OutputOptions {
  return {
    json: flags.json,
    quiet: flags.quiet,
    progress: Deno.stderr.isTerminal(),
  };
}

/**
 * A remote path typed on the command line, checked before connecting. A refused one (`../x`,
 * `/etc`) is a usage error (exit 2): the user's own argument is wrong, nothing was asked of the
 * server. The message names the option when `what` is one. Returns its components.
 */
export function checkRemoteArgument(path: string, what?: string): string[] {
  try {
    return parseRemotePath(path);
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(what === undefined ? error.message : `Invalid ${what}: ${error.message}`, {
      cause: error,
    });
  }
}
