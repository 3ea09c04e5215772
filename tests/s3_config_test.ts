/**
 * Where `ferry serve s3://...` finds its bucket, endpoint, region and credentials: the URL's
 * rules, and the AWS tools' precedence between the environment and the shared files. No gateway
 * needed; the sources are given as plain maps.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { UsageError } from "../lib/errors.ts";
import { ResumableSha256 } from "../lib/store/_s3_sha256.ts";
import { parseS3Url, resolveS3Settings, type SettingSources } from "../lib/store/s3_config.ts";

function sources(env: Record<string, string>, files: Record<string, string> = {}): SettingSources {
  return { env: (name) => env[name], readFile: (path) => files[path] ?? null };
}

Deno.test("`parseS3Url()` reads a bucket and a prefix, and leaves other paths alone", () => {
  deepStrictEqual(parseS3Url("s3://photos"), { bucket: "photos", prefix: [] });
  deepStrictEqual(parseS3Url("s3://photos/"), { bucket: "photos", prefix: [] });
  deepStrictEqual(parseS3Url("s3://my.bucket-1/a/b/"), {
    bucket: "my.bucket-1",
    prefix: ["a", "b"],
  });
  strictEqual(parseS3Url("./s3:/photos"), undefined);
  strictEqual(parseS3Url("/srv/share"), undefined);
});

Deno.test("`parseS3Url()` refuses a bad bucket name and a prefix the path rules refuse", () => {
  for (
    const url of ["s3://", "s3://a", "s3://-bad", "s3://a..b", "s3://sp ace", "s3://x\u001b[2J"]
  ) {
    throws(() => parseS3Url(url), UsageError, url);
  }
  for (const url of ["s3://bucket/../up", "s3://bucket/a//b", "s3://bucket/a/.ferry-partial.x"]) {
    throws(() => parseS3Url(url), UsageError, url);
  }
});

Deno.test("`resolveS3Settings()` takes endpoint, region and keys from the environment, path-style", () => {
  const settings = resolveS3Settings(sources({
    AWS_ENDPOINT_URL: "http://127.0.0.1:7480/",
    AWS_REGION: "eu-west-3",
    AWS_ACCESS_KEY_ID: "AKID",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_SESSION_TOKEN: "token",
  }));
  strictEqual(settings.endpoint.origin, "http://127.0.0.1:7480");
  strictEqual(settings.region, "eu-west-3");
  strictEqual(settings.pathStyle, true);
  deepStrictEqual(settings.credentials, {
    accessKeyId: "AKID",
    secretAccessKey: "secret",
    sessionToken: "token",
  });
});

Deno.test("`resolveS3Settings()` reads a profile from the shared files when the environment has no keys", () => {
  const files = {
    "/home/u/.aws/credentials": "[default]\naws_access_key_id = D\naws_secret_access_key = d\n" +
      "[work]\naws_access_key_id = W\naws_secret_access_key = w\n",
    "/home/u/.aws/config":
      "[profile work]\nregion = ap-south-1\nendpoint_url = https://s3.example:9000\n" +
      "s3 =\n  addressing_style = path\n",
  };
  const work = resolveS3Settings(sources({ HOME: "/home/u", AWS_PROFILE: "work" }, files));
  deepStrictEqual(work.credentials, { accessKeyId: "W", secretAccessKey: "w" });
  strictEqual(work.region, "ap-south-1");
  strictEqual(work.endpoint.origin, "https://s3.example:9000");
  const plain = resolveS3Settings(sources({ HOME: "/home/u" }, files));
  deepStrictEqual(plain.credentials, { accessKeyId: "D", secretAccessKey: "d" });
  // Environment keys win over the profile, as with the AWS CLI.
  const mixed = resolveS3Settings(
    sources({
      HOME: "/home/u",
      AWS_PROFILE: "work",
      AWS_ACCESS_KEY_ID: "E",
      AWS_SECRET_ACCESS_KEY: "e",
    }, files),
  );
  deepStrictEqual(mixed.credentials, { accessKeyId: "E", secretAccessKey: "e" });
  strictEqual(mixed.region, "ap-south-1");
});

Deno.test("`resolveS3Settings()` addresses AWS itself virtual-hosted when no endpoint is given", () => {
  const settings = resolveS3Settings(
    sources({
      AWS_DEFAULT_REGION: "us-west-2",
      AWS_ACCESS_KEY_ID: "A",
      AWS_SECRET_ACCESS_KEY: "s",
    }),
  );
  strictEqual(settings.endpoint.origin, "https://s3.us-west-2.amazonaws.com");
  strictEqual(settings.pathStyle, false);
});

Deno.test("`resolveS3Settings()` refuses missing credentials and an endpoint that is not http(s)://host[:port]", () => {
  throws(
    () => resolveS3Settings(sources({ HOME: "/home/u", AWS_PROFILE: "nope" })),
    (error: unknown) =>
      error instanceof UsageError && /profile "nope"/.test(error.message) &&
      /\/home\/u\/\.aws\/credentials/.test(error.message),
  );
  const keys = { AWS_ACCESS_KEY_ID: "A", AWS_SECRET_ACCESS_KEY: "s" };
  for (const endpoint of ["ftp://host", "http://u:p@host", "http://host/path", "not a url"]) {
    throws(() => resolveS3Settings(sources({ ...keys, AWS_ENDPOINT_URL: endpoint })), UsageError);
  }
});

Deno.test("`ResumableSha256` saved at a 64-byte boundary and restored gives node's SHA-256", () => {
  const bytes = new Uint8Array(70_000).map((_, index) => (index * 31 + 7) % 251);
  for (const cut of [0, 64, 4096, 65_536]) {
    const saved = new ResumableSha256().update(bytes.subarray(0, cut)).save();
    const restored = ResumableSha256.restore(JSON.parse(JSON.stringify(saved)));
    restored.update(bytes.subarray(cut));
    const expected = createHash("sha256").update(bytes).digest("hex");
    strictEqual(restored.hex(), expected, `cut at ${cut}`);
    // As the transfer layer continues it: copy, update, digest.
    const hash = ResumableSha256.restore(saved).asHash();
    strictEqual(
      hash.copy().digest("hex"),
      createHash("sha256").update(bytes.subarray(0, cut)).digest("hex"),
    );
    strictEqual(hash.update(bytes.subarray(cut)).digest("hex"), expected);
  }
  throws(() => new ResumableSha256().update(new Uint8Array(3)).save(), RangeError);
  throws(() => ResumableSha256.restore({ words: [1, 2, 3], length: 0 }), RangeError);
  throws(() => ResumableSha256.restore({ words: Array(8).fill(0), length: 65 }), RangeError);
});
