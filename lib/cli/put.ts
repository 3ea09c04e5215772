/**
 * `ferry put`: upload files or folders, after planning the whole upload before connecting.
 *
 * @module
 */
import { planUpload, putPaths } from "../client/put_paths.ts";
import { IncompleteError, UsageError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import type { ParsedCommand } from "./args.ts";
import type { putSpec } from "./specs/put.ts";
import { printError, TransferReporter } from "./output.ts";
import { checkRemoteArgument, openClient, outputOptions, transferring } from "./remote.ts";
import { parseServerTarget } from "./target.ts";

/** Runs `ferry put`. Permissions: net to the server; read on the code file and the local paths. */
export async function runPut(
  { positionals, flags }: ParsedCommand<typeof putSpec>,
): Promise<void> {
  const target = parseServerTarget(
    positionals[0]!,
    flags.relay,
    flags.quiet ? undefined : printError,
  );
  const remoteDir = flags.to ?? "";
  checkRemoteArgument(remoteDir, "--to"); // refuse a bad --to before reading or sending anything
  const localPaths = positionals.slice(1);
  if (localPaths.includes("")) {
    throw new UsageError("Name a local file or folder, not an empty one");
  }
  const plan = await planUpload(localPaths);
  // Two arguments with one name (`a.txt a.txt`, `a.txt ../b/a.txt`) would clash halfway.
  const sources = new Map<string, string>();
  for (const item of plan.items) {
    if (item.name.includes("/")) continue; // inside a folder: names are unique there
    const earlier = sources.get(item.name);
    if (earlier === item.localPath) throw new UsageError(`${earlier} is named twice`);
    if (earlier !== undefined) {
      throw new UsageError(
        `${earlier} and ${item.localPath} would both be uploaded as ${
          sanitizeForDisplay(item.name)
        }: upload them in separate commands`,
      );
    }
    sources.set(item.name, item.localPath);
  }
  const reporter = await TransferReporter.create({
    ...outputOptions(flags),
    many: localPaths.length > 1,
  });
  const files = plan.items.filter((item) => item.kind === "file");
  reporter.expect(files.length, files.reduce((sum, item) => sum + item.size, 0));
  await using client = await openClient(target, flags["code-file"]);
  try {
    await transferring(() =>
      putPaths(client, plan, {
        remoteDir,
        force: flags.force,
        verify: flags.verify,
        onEvent: reporter.onEvent,
      })
    );
  } catch (error) {
    // Some files were not moved (each already named): the rest did, and the summary says so.
    if (error instanceof IncompleteError) reporter.summary();
    throw error;
  } finally {
    reporter.abort();
  }
  reporter.summary();
}

/** `ferry put`: its spec and its runner. */
