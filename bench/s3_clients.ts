/**
 * How fast each candidate S3 client library is ready, the way `ferry serve s3://` starts: import
 * it, make a client, list the bucket once. Run it once per library in a fresh process, timed and
 * measured from outside (the README's table came from GNU time, median of 3):
 *
 * ```sh
 * source /tmp/ferry-s3-gateway/env   # scripts/s3_gateway.sh start; the bucket ferry-tests exists
 * for lib in aws4fetch aws-sdk minio; do
 *   /usr/bin/time -f "%e s %M KB" deno run -q --no-lock -A bench/s3_clients.ts $lib
 * done
 * ```
 *
 * The candidates ferry does not use are imported by computed specifiers, so that neither the type
 * check nor `deno.lock` fetches them; `--no-lock` keeps them out of the lock file when this runs.
 *
 * @module
 */

const CANDIDATES: Record<string, string> = {
  "aws4fetch": "npm:aws4fetch@1.0.20",
  "aws-sdk": "npm:@aws-sdk/client-s3@3.1175.0",
  "minio": "npm:minio@8.0.7",
};

// deno-lint-ignore no-explicit-any
type AnyModule = any;

async function ready(which: string): Promise<void> {
  const env = Deno.env.toObject();
  const endpoint = env.AWS_ENDPOINT_URL!;
  const credentials = {
    accessKeyId: env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
  };
  const specifier = CANDIDATES[which];
  if (specifier === undefined) {
    throw new Error(`Unknown library ${which}: ${Object.keys(CANDIDATES)}`);
  }
  const library: AnyModule = await import(specifier);
  if (which === "aws4fetch") {
    const client = new library.AwsClient({ ...credentials, service: "s3", region: "us-east-1" });
    await (await client.fetch(`${endpoint}/ferry-tests?list-type=2&max-keys=1`)).text();
  } else if (which === "aws-sdk") {
    const client = new library.S3Client({
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
    });
    await client.send(new library.ListObjectsV2Command({ Bucket: "ferry-tests", MaxKeys: 1 }));
  } else {
    const url = new URL(endpoint);
    const client = new library.Client({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: url.protocol === "https:",
      accessKey: credentials.accessKeyId,
      secretKey: credentials.secretAccessKey,
      pathStyle: true,
      region: "us-east-1",
    });
    for await (const _ of client.listObjectsV2("ferry-tests", "", false)) break;
  }
}

if (import.meta.main) {
  const started = performance.now();
  await ready(Deno.args[0] ?? "aws4fetch");
  console.log(
    `${Deno.args[0] ?? "aws4fetch"} ready in ${(performance.now() - started).toFixed(0)} ms`,
  );
}
