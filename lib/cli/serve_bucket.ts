/**
 * `ferry serve s3://BUCKET[/PREFIX]`: what serving a bucket needs before the server starts. The
 * settings are found the way the AWS tools find them (lib/store/s3_config.ts), with permissions
 * asked for in the narrowest form: env for the AWS variables, read for the AWS files only when
 * they must be read, net to the endpoint's host and port. Loaded by serve.ts only for an `s3://`
 * argument, so that no other command loads the S3 modules.
 *
 * @module
 */
import { describeError, FerryError, PermissionError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { S3Store } from "../store/s3.ts";
import { AWS_ENV_NAMES, awsFiles, parseS3Url, resolveS3Settings } from "../store/s3_config.ts";
import type { FileStore } from "../store/store.ts";
import { printError } from "./output.ts";
import { type Needed, requirePermissions } from "./permissions.ts";
import { unrefTimer } from "../_timers.ts";

/** How often `ferry serve s3://` aborts multipart uploads abandoned for a week. */
const SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/**
 * Opens the bucket `url` names, once its settings are found (the AWS variables and files) and
 * the permissions it needs are granted: env for the AWS variables, read for the AWS files it must
 * read, net to the endpoint and to listen (`listen`, checked with them so that one message names
 * every missing flag). Returns the store and `sweep`, which starts aborting abandoned multipart
 * uploads (now and every hour) and returns how to stop.
 */
export async function openBucket(
  url: string,
  listen: Needed,
): Promise<{ store: FileStore; sweep: () => () => void }> {
  const target = parseS3Url(url)!;
  const missingEnv = AWS_ENV_NAMES.find((variable) =>
    Deno.permissions.querySync({ name: "env", variable }).state !== "granted"
  );
  requirePermissions([
    listen,
    ...(missingEnv === undefined ? [] : [{
      descriptor: { name: "env" as const, variable: missingEnv },
      flag: `--allow-env=${AWS_ENV_NAMES.join(",")}`,
      why: "to find the object store and its credentials",
    }]),
  ]);
  const env = (name: string) => Deno.env.get(name);
  const unreadable: string[] = [];
  const readFile = (path: string) => {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
      unreadable.push(path);
      return null;
    }
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return null;
    }
  };
  let settings;
  try {
    settings = resolveS3Settings({ env, readFile });
  } catch (error) {
    if (unreadable.length === 0) throw error;
    const files = awsFiles(env);
    throw new PermissionError(
      `Permission denied: run deno with --allow-read=${files.credentials},${files.config} ` +
        `(to read the object store's credentials), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    );
  }
  const host = `${settings.pathStyle ? "" : `${target.bucket}.`}${settings.endpoint.hostname}:${
    settings.endpoint.port || (settings.endpoint.protocol === "https:" ? "443" : "80")
  }`;
  requirePermissions([{
    descriptor: { name: "net", host },
    flag: `--allow-net=${listen.flag.slice("--allow-net=".length)},${host}`,
    why: "to reach the object store",
  }]);
  let store: S3Store;
  try {
    store = await S3Store.open(target, settings);
  } catch (error) {
    const reason = describeError(error);
    throw new FerryError(
      `Cannot serve ${sanitizeForDisplay(url)} from ${settings.endpoint.origin}: ` +
        reason.charAt(0).toLowerCase() + reason.slice(1),
    );
  }
  const sweepOnce = () =>
    store.abortAbandonedUploads().then(
      (count: number) => {
        if (count > 0) printError(`Aborted ${count} multipart upload(s) abandoned for a week.`);
      },
      (error: unknown) =>
        printError(`ferry: could not look for abandoned uploads: ${describeError(error)}`),
    );
  const sweep = () => {
    void sweepOnce();
    const timer = setInterval(() => void sweepOnce(), SWEEP_INTERVAL_MS);
    unrefTimer(timer);
    return () => clearInterval(timer);
  };
  return { store, sweep };
}
