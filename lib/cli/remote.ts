/**
 * What the client commands share: `ferry ls`, `get` and `put` and the `connect` shell open a
 * session the same way, check remote paths typed by the user the same way, and report transfers
 * from the same flags.
 *
 * @module
 */
import { FerryClient } from "../client/client.ts";
import { PathError, UsageError } from "../errors.ts";
import { parseRemotePath } from "../protocol/remote_path.ts";
import { clientSecret, type HostPort } from "./common.ts";
import type { OutputOptions } from "./output.ts";

/** Opens a session with `address`, with the code from `--code-file`, FERRY_CODE or the default file. */
export async function openClient(
  address: HostPort,
  codeFile: string | undefined,
): Promise<FerryClient> {
  const secret = await clientSecret(codeFile);
  return await FerryClient.connect({ ...address, secret });
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
