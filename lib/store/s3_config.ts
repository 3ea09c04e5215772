/**
 * Where an S3 store is and how to sign in to it: {@link parseS3Url} reads `s3://BUCKET[/PREFIX]`,
 * {@link resolveS3Settings} finds the endpoint, region and credentials the way the AWS tools do,
 * from the environment and the shared AWS files, never from the command line (where other users
 * of the machine could read a secret in the process list).
 *
 * Precedence, as the AWS CLI's:
 * - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); else the
 *   profile (`AWS_PROFILE`, default `default`) in the credentials file, then in the config file.
 * - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`; else `us-east-1`.
 * - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`; else AWS
 *   itself (`https://s3.REGION.amazonaws.com`).
 * - addressing: path-style (`ENDPOINT/BUCKET/KEY`, what most self-hosted stores need) for any
 *   endpoint given; virtual-hosted (`BUCKET.s3.REGION.amazonaws.com/KEY`) for AWS itself.
 *
 * The files are `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and `AWS_CONFIG_FILE`
 * (default `~/.aws/config`).
 *
 * @example
 * ```ts
 * import { parseS3Url, resolveS3Settings } from "./s3_config.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(parseS3Url("s3://photos/2024/"), { bucket: "photos", prefix: ["2024"] });
 * const env: Record<string, string> = {
 *   AWS_ENDPOINT_URL: "http://127.0.0.1:7480",
 *   AWS_ACCESS_KEY_ID: "AKID",
 *   AWS_SECRET_ACCESS_KEY: "secret",
 * };
 * const settings = resolveS3Settings({ env: (name) => env[name], readFile: () => null });
 * strictEqual(settings.endpoint.host, "127.0.0.1:7480");
 * strictEqual(settings.pathStyle, true);
 * strictEqual(settings.region, "us-east-1");
 * ```
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseRemotePath, sanitizeForDisplay } from "../protocol/remote_path.ts";

/** What `s3://BUCKET[/PREFIX]` names. */
export interface S3Target {
  /** The bucket's name. */
  bucket: string;
  /** The served folder inside the bucket, as validated path components (`[]`: the whole bucket). */
  prefix: string[];
}

/** Credentials of one access key. */
export interface S3Credentials {
  /** The access key id (not secret; shown in the store's logs of the server side only). */
  accessKeyId: string;
  /** The secret access key. */
  secretAccessKey: string;
  /** The session token of temporary credentials, if any. */
  sessionToken?: string;
}

/** Everything needed to talk to the store. */
export interface S3Settings {
  /** Scheme, host and port of the S3 API (no path). */
  endpoint: URL;
  /** Region the requests are signed for. */
  region: string;
  /** Path-style addressing (`ENDPOINT/BUCKET/KEY`) rather than virtual-hosted. */
  pathStyle: boolean;
  /** The access key. */
  credentials: S3Credentials;
}

/**
 * Every environment variable {@link resolveS3Settings} may read: `--allow-env` for `ferry serve
 * s3://...` names these and nothing else.
 */
export const AWS_ENV_NAMES: readonly string[] = [
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
  "HOME",
];

/** Bucket names as S3 and Ceph accept them (3 to 63 characters, no slash). */
const BUCKET_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$/;

/**
 * `s3://BUCKET[/PREFIX]` as a bucket and a validated prefix; `undefined` when `text` does not
 * start with `s3://` (a folder on disk). {@link UsageError} for a bad bucket name or a prefix that
 * the path rules refuse (`..`, control characters, ...).
 */
export function parseS3Url(text: string): S3Target | undefined {
  if (!/^s3:\/\//i.test(text)) return undefined;
  const rest = text.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefixText = slash < 0 ? "" : rest.slice(slash + 1);
  if (!BUCKET_NAME.test(bucket) || bucket.includes("..")) {
    throw new UsageError(
      `Invalid bucket name "${sanitizeForDisplay(bucket)}" in ${sanitizeForDisplay(text)}: ` +
        "3 to 63 letters, digits, dots, hyphens or underscores",
    );
  }
  let prefix: string[];
  try {
    prefix = parseRemotePath(prefixText);
  } catch (error) {
    throw new UsageError(
      `Invalid prefix in ${sanitizeForDisplay(text)}: ${(error as Error).message}`,
    );
  }
  return { bucket, prefix };
}

/** How {@link resolveS3Settings} reads its sources (injected, so tests need no real files). */
export interface SettingSources {
  /** The value of an environment variable (one of {@link AWS_ENV_NAMES}), if set. */
  env: (name: string) => string | undefined;
  /** The text of a file, or `null` when it does not exist (or may not be read). */
  readFile: (path: string) => string | null;
}

/** The shared AWS files {@link resolveS3Settings} reads, given the environment. */
export function awsFiles(env: SettingSources["env"]): { credentials: string; config: string } {
  const home = env("HOME") ?? "";
  return {
    credentials: env("AWS_SHARED_CREDENTIALS_FILE") || `${home}/.aws/credentials`,
    config: env("AWS_CONFIG_FILE") || `${home}/.aws/config`,
  };
}

/**
 * The endpoint, region, addressing and credentials (see the module's text for the precedence).
 * {@link UsageError} when no credentials are found, or an endpoint is not an `http(s)://host[:port]`
 * URL.
 */
export function resolveS3Settings(sources: SettingSources): S3Settings {
  const env = (name: string) => nonEmpty(sources.env(name));
  const profile = env("AWS_PROFILE") ?? "default";
  const files = awsFiles(env);
  const credentialsFile = parseIni(sources.readFile(files.credentials) ?? "");
  const configFile = parseIni(sources.readFile(files.config) ?? "");
  const inConfig = configFile.get(profile === "default" ? "default" : `profile ${profile}`) ??
    configFile.get(profile);
  const inCredentials = credentialsFile.get(profile);
  const fromProfile = (key: string) => nonEmpty(inCredentials?.get(key) ?? inConfig?.get(key));

  let credentials: S3Credentials;
  const envKey = env("AWS_ACCESS_KEY_ID");
  const envSecret = env("AWS_SECRET_ACCESS_KEY");
  if (envKey !== undefined && envSecret !== undefined) {
    credentials = { accessKeyId: envKey, secretAccessKey: envSecret };
    const token = env("AWS_SESSION_TOKEN");
    if (token !== undefined) credentials.sessionToken = token;
  } else {
    const accessKeyId = fromProfile("aws_access_key_id");
    const secretAccessKey = fromProfile("aws_secret_access_key");
    if (accessKeyId === undefined || secretAccessKey === undefined) {
      throw new UsageError(
        `No credentials for the object store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ` +
          `or give profile "${sanitizeForDisplay(profile)}" aws_access_key_id and ` +
          `aws_secret_access_key in ${sanitizeForDisplay(files.credentials)}`,
      );
    }
    credentials = { accessKeyId, secretAccessKey };
    const token = fromProfile("aws_session_token");
    if (token !== undefined) credentials.sessionToken = token;
  }

  const region = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ??
    nonEmpty(inConfig?.get("region")) ?? "us-east-1";
  const endpointText = env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ??
    nonEmpty(inConfig?.get("endpoint_url"));
  if (endpointText === undefined) {
    return {
      endpoint: new URL(`https://s3.${region}.amazonaws.com`),
      region,
      pathStyle: false,
      credentials,
    };
  }
  return { endpoint: parseEndpoint(endpointText), region, pathStyle: true, credentials };
}

/** `http(s)://host[:port]` (a trailing `/` allowed); {@link UsageError} otherwise. */
function parseEndpoint(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`Invalid object store endpoint "${sanitizeForDisplay(text)}"`);
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") || url.username !== "" ||
    url.password !== "" || (url.pathname !== "/" && url.pathname !== "") || url.search !== "" ||
    url.hash !== ""
  ) {
    throw new UsageError(
      `Invalid object store endpoint "${sanitizeForDisplay(text)}": give http(s)://HOST[:PORT]`,
    );
  }
  return new URL(url.origin);
}

function nonEmpty(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

/**
 * The sections of an AWS-style INI file (`[name]`, `key = value`, `#` or `;` comments). Nested
 * settings (indented lines under `s3 =`) are skipped.
 */
function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(line)) continue;
    const section = /^\s*\[\s*([^\]]+?)\s*\]\s*$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    if (/^\s/.test(line)) continue; // a nested setting
    const pair = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (pair && current) current.set(pair[1]!.trim().toLowerCase(), pair[2]!.trim());
  }
  return sections;
}
