/**
 * The real S3 server the S3 tests run against: the RADOS Gateway that `scripts/s3_gateway.sh
 * start` runs on 127.0.0.1 (never a mock). The tests find it through the `env` file the script
 * writes (`FERRY_S3_GATEWAY_ENV`, default `${TMPDIR:-/tmp}/ferry-s3-gateway/env`); without a gateway
 * that answers, they are skipped with the reason printed once, unless `FERRY_S3_REQUIRED=1` (set
 * by CI), which makes a missing gateway a failure.
 *
 * Each test gets its own prefix in one shared bucket (`ferry-tests`), emptied when it ends.
 *
 * @module
 */
import { S3Client } from "../lib/store/_s3_client.ts";
import { S3Store, type S3StoreOptions } from "../lib/store/s3.ts";
import type { S3Settings } from "../lib/store/s3_config.ts";

/** The bucket every S3 test works in. */
export const TEST_BUCKET = "ferry-tests";

/** The gateway's `AWS_*` variables, or why there is none. */
export type Gateway = { env: Record<string, string>; settings: S3Settings } | { skip: string };

/** Finds the gateway (see the module's text). Permission: read the env file, net 127.0.0.1. */
export async function findGateway(): Promise<Gateway> {
  const envFile = Deno.env.get("FERRY_S3_GATEWAY_ENV") ??
    `${Deno.env.get("TMPDIR") ?? "/tmp"}/ferry-s3-gateway/env`;
  let text: string;
  try {
    text = await Deno.readTextFile(envFile);
  } catch {
    return missing(`no ${envFile}: start one with scripts/s3_gateway.sh start`);
  }
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/^export (AWS_[A-Z_]+)=(.*)$/gm)) env[match[1]!] = match[2]!;
  const endpoint = env.AWS_ENDPOINT_URL;
  if (!endpoint || !env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) {
    return missing(`${envFile} does not name an endpoint and keys`);
  }
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(3000) });
    await response.body?.cancel();
  } catch {
    return missing(
      `the gateway at ${endpoint} does not answer: start it with scripts/s3_gateway.sh start`,
    );
  }
  const settings: S3Settings = {
    endpoint: new URL(endpoint),
    region: env.AWS_REGION ?? "us-east-1",
    pathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  };
  await createBucket(settings, TEST_BUCKET);
  return { env, settings };
}

function missing(reason: string): Gateway {
  if (Deno.env.get("FERRY_S3_REQUIRED") === "1") {
    throw new Error(`FERRY_S3_REQUIRED=1 but there is no S3 gateway: ${reason}`);
  }
  return { skip: reason };
}

/** Creates `bucket` (one that exists is fine). */
export async function createBucket(settings: S3Settings, bucket: string): Promise<void> {
  const { AwsClient } = await import("../lib/deps.ts");
  const signer = new AwsClient({ ...settings.credentials, service: "s3", region: settings.region });
  const response = await signer.fetch(`${settings.endpoint.origin}/${bucket}`, { method: "PUT" });
  const text = await response.text();
  if (response.status !== 200 && !text.includes("BucketAlreadyOwnedByYou")) {
    throw new Error(`Cannot create bucket ${bucket}: ${response.status} ${text}`);
  }
}

/** One test's prefix of the test bucket, with raw access to it; emptied on dispose. */
export interface S3Place extends AsyncDisposable {
  /** The prefix (no trailing slash), unique to this test. */
  prefix: string;
  /** `s3://ferry-tests/<prefix>`. */
  url: string;
  /** A raw client of the bucket, for planting and checking objects behind the store's back. */
  client: S3Client;
  /** Opens an `S3Store` on the prefix. */
  open(options?: S3StoreOptions): Promise<S3Store>;
  /** Every key below the prefix (hidden ones too), relative to it, in key order. */
  keys(): Promise<string[]>;
  /** The multipart uploads in progress below the prefix, by key relative to it. */
  uploads(): Promise<string[]>;
}

/** A fresh prefix of the test bucket at the gateway `settings`. */
export function s3Place(settings: S3Settings): S3Place {
  const prefix = `t-${crypto.randomUUID().slice(0, 13)}`;
  const client = new S3Client(settings, TEST_BUCKET);
  const keys = async () => {
    const found: string[] = [];
    let continuation: string | undefined;
    do {
      const page = await client.list(`${prefix}/`, { continuation });
      found.push(...page.objects.map((object) => object.key.slice(prefix.length + 1)));
      continuation = page.next;
    } while (continuation !== undefined);
    return found;
  };
  const uploads = async () => {
    const found: string[] = [];
    for await (const upload of client.uploads(`${prefix}/`)) {
      found.push(upload.key.slice(prefix.length + 1));
    }
    return found;
  };
  return {
    prefix,
    url: `s3://${TEST_BUCKET}/${prefix}`,
    client,
    open: (options) => S3Store.open({ bucket: TEST_BUCKET, prefix: [prefix] }, settings, options),
    keys,
    uploads,
    async [Symbol.asyncDispose]() {
      for await (const upload of client.uploads(`${prefix}/`)) {
        await client.abortUpload(upload.key, upload.uploadId);
      }
      for (const key of await keys()) await client.delete(`${prefix}/${key}`);
    },
  };
}

/** The gateway, found once per test module; tests use `ignore: S3_SKIP !== undefined`. */
export const GATEWAY: Gateway = await findGateway();
/** Why the S3 tests are skipped, or undefined when the gateway is up. */
export const S3_SKIP: string | undefined = "skip" in GATEWAY ? GATEWAY.skip : undefined;
if (S3_SKIP !== undefined) console.warn(`S3 tests skipped: ${S3_SKIP}`);

/** The gateway's settings (only call when {@link S3_SKIP} is undefined). */
export function gatewaySettings(): S3Settings {
  if ("skip" in GATEWAY) throw new Error(`No S3 gateway: ${GATEWAY.skip}`);
  return GATEWAY.settings;
}

/** The gateway's `AWS_*` variables, for a `ferry serve s3://` subprocess. */
export function gatewayEnv(): Record<string, string> {
  if ("skip" in GATEWAY) throw new Error(`No S3 gateway: ${GATEWAY.skip}`);
  return GATEWAY.env;
}
