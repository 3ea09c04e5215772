/**
 * `ferry serve s3://BUCKET/PREFIX` against the real RADOS Gateway (scripts/s3_gateway.sh), as a
 * user runs it: a subprocess with scoped permissions (net to the endpoint, env to the AWS
 * variables, read to the code file), clients as subprocesses.
 *
 * The transfer, resume and rights scenarios of transfers_test.ts run here against both stores, a
 * folder and a bucket, from one definition; the hostile-path one runs against a bucket as
 * hostile_paths_test.ts runs it against a folder. What only a bucket has follows: a server killed
 * mid-upload, and two servers on one bucket.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { writeAll } from "../lib/protocol/framing.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import { AWS_ENV_NAMES } from "../lib/store/s3_config.ts";
import {
  makeCodeFile,
  makeFile,
  names,
  partialPath,
  runFerry,
  type RunResult,
  type ServeProcess,
  sha256File,
  sizeOf,
  spawnFerry,
  startServe,
  tempDir,
} from "./_helpers.ts";
import { assertStillServes, manualSession, startTestServer } from "./_hostile.ts";
import { LoopbackRelay } from "./_relay.ts";
import { gatewayEnv, gatewaySettings, S3_SKIP, type S3Place, s3Place } from "./_s3.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Where a server serves from: a folder on disk, or a prefix of the test bucket. */
interface Place extends AsyncDisposable {
  /** `ferry serve`'s argument. */
  root: string;
  /** Starts `ferry serve` on it with the narrowest permissions that work. */
  serve(options?: { args?: string[]; codeFile?: string }): Promise<ServeProcess>;
  /** Puts a file there behind the server's back. */
  write(path: string, bytes: Uint8Array): Promise<void>;
  /** SHA-256 of the file at `path`, or `null` when there is none. */
  sha256(path: string): Promise<string | null>;
  /** Whether an upload of `name` (at the top) has landed some of its bytes (kept, not named). */
  landed(name: string): Promise<boolean>;
  /** Every name at the top, hidden ones too (a partial file, a lease). */
  rawNames(): Promise<string[]>;
}

async function folderPlace(): Promise<Place> {
  const dir = await tempDir();
  const srv = join(dir.path, "srv");
  await Deno.mkdir(srv);
  return {
    root: srv,
    serve: (options = {}) => startServe(srv, options),
    async write(path, bytes) {
      await Deno.mkdir(dirname(join(srv, path)), { recursive: true });
      await Deno.writeFile(join(srv, path), bytes);
    },
    sha256: async (path) =>
      (await sizeOf(join(srv, path))) === undefined ? null : sha256File(join(srv, path)),
    landed: async (name) => ((await sizeOf(partialPath(srv, name))) ?? 0) >= 4 * MiB,
    rawNames: () => names(srv),
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  };
}

async function bucketPlace(): Promise<Place & { open: S3Place["open"] }> {
  const place = s3Place(gatewaySettings());
  const codes = await tempDir("ferry-s3-code-");
  return {
    root: place.url,
    serve: (options = {}) =>
      serveBucket(place.url, options.codeFile ?? join(codes.path, "code"), options.args),
    write: async (path, bytes) => void await place.client.put(`${place.prefix}/${path}`, bytes),
    async sha256(path) {
      const stream = await place.client.read(`${place.prefix}/${path}`, 0);
      if (stream === null) return null;
      const { createHash } = await import("node:crypto");
      const hash = createHash("sha256");
      for await (const chunk of stream) hash.update(chunk);
      return hash.digest("hex");
    },
    // At least one part is in and recorded in the upload's lease.
    async landed(name) {
      const lease = await place.client.readSmall(`${place.prefix}/${PARTIAL_PREFIX}${name}`);
      if (lease === null) return false;
      const text = new TextDecoder().decode(lease.bytes);
      return (JSON.parse(text.slice(0, text.indexOf("\n"))).upload?.parts ?? 0) >= 1;
    },
    open: (options) => place.open(options),
    rawNames: async () =>
      [...new Set((await place.keys()).map((key) => key.split("/")[0]!))].sort(),
    async [Symbol.asyncDispose]() {
      await place[Symbol.asyncDispose]();
      await codes[Symbol.asyncDispose]();
    },
  };
}

/**
 * `ferry serve s3://...` with only what it needs: listening on 127.0.0.1, the gateway's host and
 * port, the AWS variables and FERRY_CODE, reading the code file.
 */
async function serveBucket(
  url: string,
  codeFile: string,
  args: string[] = [],
): Promise<ServeProcess> {
  if ((await sizeOf(codeFile)) === undefined) await makeCodeFile(codeFile);
  const endpoint = new URL(gatewayEnv().AWS_ENDPOINT_URL!);
  return await startServe(url, {
    codeFile,
    args,
    env: gatewayEnv(),
    permissions: [
      `--allow-net=127.0.0.1:0,${endpoint.host}`,
      // The code file's folder: the named codes of `ferry code add` live beside it.
      `--allow-read=${codeFile},${dirname(codeFile)}`,
      `--allow-env=FERRY_CODE,${AWS_ENV_NAMES.join(",")}`,
    ],
  });
}

const places: [string, () => Promise<Place>, string | undefined][] = [
  ["folder", folderPlace, undefined],
  ["bucket", bucketPlace, S3_SKIP],
];

/** Runs a client command against `serve` with its code file. */
function ferry(
  command: "ls" | "get" | "put",
  serve: { address: string; codeFile: string },
  args: string[],
): Promise<RunResult> {
  return runFerry([command, serve.address, ...args, "--code-file", serve.codeFile]);
}

/** The single `done` event of a successful one-file `--json` run. */
function doneEvent(result: RunResult): Record<string, unknown> {
  assert.equal(result.code, 0, result.stderr);
  const done = result.stdout.trim().split("\n").map((line) => JSON.parse(line))
    .filter((event) => event.event === "done");
  assert.equal(done.length, 1, result.stdout);
  return done[0];
}

/** Polls `check` (state of another process or of the bucket) until it holds. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A relay that forwards `stallAfter` bytes in one direction, then nothing until it is closed. */
class StallingRelay extends LoopbackRelay {
  readonly #direction: "up" | "down";
  readonly #stallAfter: number;
  readonly #closed = Promise.withResolvers<void>();

  constructor(targetPort: number, direction: "up" | "down", stallAfter: number) {
    super(targetPort);
    this.#direction = direction;
    this.#stallAfter = stallAfter;
  }

  protected relay(client: Deno.Conn, server: Deno.Conn): void {
    const up = this.#direction === "up" ? this.#stallAfter : Infinity;
    const down = this.#direction === "down" ? this.#stallAfter : Infinity;
    void this.#pump(client, server, up);
    void this.#pump(server, client, down);
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, limit: number): Promise<void> {
    const buffer = new Uint8Array(64 * KiB);
    let forwarded = 0;
    try {
      while (true) {
        const room = Math.min(buffer.length, limit - forwarded);
        if (room === 0) return await this.#closed.promise;
        const count = await from.read(buffer.subarray(0, room));
        if (count === null) return;
        await writeAll(to, buffer.subarray(0, count));
        forwarded += count;
      }
    } catch {
      // one side went away
    } finally {
      this.closeConn(from);
      this.closeConn(to);
    }
  }

  override async close(): Promise<void> {
    this.#closed.resolve();
    await super.close();
  }
}

for (const [kind, make, skip] of places) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${name} (${kind})`, ignore: skip !== undefined, fn });

  test("folder tree round trip: `put` then `get` keeps every byte, empty folders, file modes and mtimes", async () => {
    await using place = await make();
    await using local = await tempDir();
    const tree = join(local.path, "tree");
    await Deno.mkdir(join(tree, "sub", "deeper"), { recursive: true });
    await Deno.mkdir(join(tree, "empty"));
    await makeFile(join(tree, "sub", "big.bin"), 9 * MiB + 17, 3); // more than one S3 part
    await Deno.writeTextFile(join(tree, "sub", "deeper", "note.txt"), "note\n");
    await Deno.writeTextFile(join(tree, "a b+c%.txt"), "odd name\n");
    await Deno.chmod(join(tree, "sub", "deeper", "note.txt"), 0o640);
    const old = new Date(Date.UTC(2020, 1, 2, 3, 4, 5));
    for (
      const path of [
        "sub/big.bin",
        "sub/deeper/note.txt",
        "a b+c%.txt",
        "sub/deeper",
        "sub",
        "empty",
      ]
    ) {
      await Deno.utime(join(tree, path), old, old);
    }
    await using serve = await place.serve();
    const put = await ferry("put", serve, [tree, "--verify"]);
    assert.equal(put.code, 0, put.stderr);
    const out = join(local.path, "out");
    await Deno.mkdir(out);
    const get = await ferry("get", serve, ["uploaded_tree", "-o", out, "--verify"]);
    assert.equal(get.code, 0, get.stderr);
    const back = join(out, "uploaded_tree");
    for (const path of ["sub/big.bin", "sub/deeper/note.txt", "a b+c%.txt"]) {
      assert.equal(await sha256File(join(back, path)), await sha256File(join(tree, path)), path);
    }
    assert.equal((await Deno.stat(join(back, "sub", "deeper", "note.txt"))).mode! & 0o777, 0o640);
    for (const path of ["sub/big.bin", "sub/deeper/note.txt", "sub/deeper", "sub", "empty"]) {
      assert.equal((await Deno.stat(join(back, path))).mtime?.getTime(), old.getTime(), path);
    }
    assert.deepEqual(await names(join(back, "empty")), []);
    assert.deepEqual(await place.rawNames(), ["uploaded_tree"], "nothing left beside it");
  });

  test("`ferry put` killed mid-transfer leaves nothing under the final name and resumes with only the missing bytes", async () => {
    await using place = await make();
    await using local = await tempDir();
    const size = 24 * MiB + 321;
    const source = join(local.path, "big.bin");
    await makeFile(source, size, 8);
    await using serve = await place.serve();
    {
      await using relay = new StallingRelay(serve.port, "up", 14 * MiB);
      await using client = spawnFerry([
        "put",
        relay.address,
        source,
        "--json",
        "--code-file",
        serve.codeFile,
      ]);
      await waitFor("uploaded bytes to land", () => place.landed("uploaded_big.bin"));
      assert.equal(await place.sha256("uploaded_big.bin"), null, "nothing under the final name");
      const listing = await ferry("ls", serve, ["--json"]);
      assert.equal(listing.code, 0, listing.stderr);
      assert.deepEqual(JSON.parse(listing.stdout), []);
      client.child.kill("SIGKILL");
      assert.equal((await client.result).signal, "SIGKILL");
    }
    await waitFor("the server to drop the cut connection", () => /closed: /.test(serve.log()));
    const done = doneEvent(await ferry("put", serve, [source, "--json", "--verify"]));
    const cut = done.resumedFrom as number;
    assert.ok(cut >= 4 * MiB && cut < size, `resumed from ${cut}`);
    assert.equal(done.transferred, size - cut);
    assert.equal(done.sha256, await sha256File(source));
    assert.equal(await place.sha256("uploaded_big.bin"), await sha256File(source));
    assert.deepEqual(
      await place.rawNames(),
      ["uploaded_big.bin"],
      "no partial file nor lease left",
    );
  });

  test("`ferry get` killed mid-transfer resumes on the next run and moves only the missing bytes", async () => {
    await using place = await make();
    await using local = await tempDir();
    const size = 20 * MiB + 123;
    const source = join(local.path, "source.bin");
    await makeFile(source, size, 7);
    await place.write("big.bin", await Deno.readFile(source));
    const out = join(local.path, "out");
    await Deno.mkdir(out);
    await using serve = await place.serve();
    const partial = partialPath(out, "big.bin");
    {
      await using relay = new StallingRelay(serve.port, "down", 6 * MiB);
      await using client = spawnFerry([
        "get",
        relay.address,
        "big.bin",
        "-o",
        out,
        "--json",
        "--code-file",
        serve.codeFile,
      ]);
      await waitFor(
        "downloaded bytes to land",
        async () => ((await sizeOf(partial)) ?? 0) >= 4 * MiB,
      );
      client.child.kill("SIGKILL");
      await client.result;
    }
    const cut = (await sizeOf(partial))!;
    const done = doneEvent(await ferry("get", serve, ["big.bin", "-o", out, "--json", "--verify"]));
    assert.equal(done.resumedFrom, cut);
    assert.equal(done.transferred, size - cut);
    assert.equal(await sha256File(join(out, "big.bin")), await sha256File(source));
    await waitFor(
      "the server to log the resumed send",
      () => serve.log().includes(`${size - cut} bytes sent (resumed at ${cut})`),
    );
  });

  test("`put` refuses an existing remote file naming --force; with --force it replaces it", async () => {
    await using place = await make();
    await using local = await tempDir();
    const file = join(local.path, "f.txt");
    await Deno.writeTextFile(file, "first\n");
    await using serve = await place.serve();
    assert.equal((await ferry("put", serve, [file])).code, 0);
    await Deno.writeTextFile(file, "second\n");
    const refused = await ferry("put", serve, [file]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exists.*--force/);
    const { createHash } = await import("node:crypto");
    const sha = (text: string) => createHash("sha256").update(text).digest("hex");
    assert.equal(await place.sha256("uploaded_f.txt"), sha("first\n"));
    const forced = await ferry("put", serve, [file, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await place.sha256("uploaded_f.txt"), sha("second\n"));
  });

  test("rights: `--read-only` refuses uploads, `--upload-only` listing and downloads, `--max-upload` a larger file", async () => {
    await using place = await make();
    await using local = await tempDir();
    await place.write("a.txt", new TextEncoder().encode("a\n"));
    const up = join(local.path, "up.txt");
    await Deno.writeTextFile(up, "up\n");
    const codeFile = join(local.path, "code");
    await makeCodeFile(codeFile);
    {
      await using serve = await place.serve({ codeFile, args: ["--read-only"] });
      const put = await ferry("put", serve, [up]);
      assert.equal(put.code, 1);
      assert.match(put.stderr, /read-only/);
      const get = await ferry("get", serve, ["a.txt", "-o", local.path]);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(await Deno.readTextFile(join(local.path, "a.txt")), "a\n");
    }
    {
      await using serve = await place.serve({
        codeFile,
        args: ["--upload-only", "--max-upload", "1K"],
      });
      const ls = await ferry("ls", serve, []);
      assert.equal(ls.code, 1);
      assert.match(ls.stderr, /upload-only/);
      assert.match(
        (await ferry("get", serve, ["a.txt", "-o", join(local.path, "x")])).stderr,
        /upload-only/,
      );
      const big = join(local.path, "two.bin");
      await Deno.writeFile(big, new Uint8Array(2 * KiB));
      const refused = await ferry("put", serve, [big]);
      assert.match(
        refused.stderr,
        /Upload of 2\.00 KiB refused: the server accepts at most 1\.00 KiB/,
      );
      assert.equal((await ferry("put", serve, [up])).code, 0);
    }
    assert.deepEqual(await place.rawNames(), ["a.txt", "uploaded_up.txt"]);
  });
}

const s3Test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: S3_SKIP !== undefined, fn });

s3Test(
  "hostile client against a bucket: every hostile path in list, get, put and mkdir is refused, nothing outside the prefix is touched",
  async () => {
    await using place = s3Place(gatewaySettings());
    await using sibling = s3Place(gatewaySettings());
    const { client } = place;
    await client.put(`${sibling.prefix}/outside.txt`, "secret");
    await client.put(`${place.prefix}/${PARTIAL_PREFIX}secret`, "a lease");
    // Keys ferry never writes: an empty name, a control character.
    await client.put(`${place.prefix}/a//empty`, "x");
    await client.put(`${place.prefix}/a/bad\u0001name`, "x");
    const store = await place.open();
    await using server = await startTestServer(place.url, { store, uploadPrefix: "" });
    await using session = await manualSession(server.port, server.secret);
    const hostile = [
      "..",
      "../outside.txt",
      `../${sibling.prefix}/outside.txt`,
      "a/../../outside.txt",
      "/etc/passwd",
      "\\..\\outside.txt",
      "x\u0000y",
      "\u001b[2J",
      "a//b",
      "\uff0e\uff0e/outside.txt",
      `${PARTIAL_PREFIX}secret`,
    ];
    for (const path of hostile) {
      const shown = JSON.stringify(path);
      await session.send({ t: "list", path, recursive: false });
      assert.equal((await session.next())?.t, "error", `list ${shown}`);
      await session.send({ t: "get", path, offset: 0, prefixSha256: "" });
      assert.equal((await session.next())?.t, "error", `get ${shown}`);
      await session.send({
        t: "put",
        dir: "",
        name: path,
        size: 1,
        mode: 0o644,
        mtime: 0,
        force: true,
      });
      assert.equal((await session.next())?.t, "error", `put ${shown}`);
      await session.send({ t: "mkdir", dir: "", name: path, mode: 0o755, mtime: 0 });
      assert.equal((await session.next())?.t, "error", `mkdir ${shown}`);
    }
    // Those keys make a folder "a" whose children are left out, and said so.
    await session.send({ t: "list", path: "a", recursive: false });
    const listed = await session.next();
    assert.ok(listed?.t === "listing", JSON.stringify(listed));
    assert.deepEqual(listed.entries, []);
    assert.deepEqual(listed.skipped?.map((entry) => entry.name).sort(), ["", "bad\\x01name"]);
    assert.deepEqual(await sibling.keys(), ["outside.txt"], "nothing was written outside");
    assert.equal(
      new TextDecoder().decode((await client.readSmall(`${sibling.prefix}/outside.txt`))!.bytes),
      "secret",
    );
    await assertStillServes(server.port, server.secret);
  },
);

s3Test(
  "a server killed with SIGKILL mid-upload leaves no object under the name, and the upload resumes through another server",
  async () => {
    await using place = await bucketPlace();
    await using local = await tempDir();
    const size = 20 * MiB + 5;
    const source = join(local.path, "big.bin");
    await makeFile(source, size, 9);
    const codeFile = join(local.path, "code");
    const first = await place.serve({ codeFile });
    {
      await using relay = new StallingRelay(first.port, "up", 12 * MiB);
      await using client = spawnFerry([
        "put",
        relay.address,
        source,
        "--json",
        "--code-file",
        codeFile,
      ]);
      await waitFor("a part to land", () => place.landed("uploaded_big.bin"));
      await first.stop("SIGKILL");
      await client.result;
    }
    await first[Symbol.asyncDispose]();
    assert.equal(await place.sha256("uploaded_big.bin"), null, "no object under the final name");
    assert.deepEqual(await place.rawNames(), [`${PARTIAL_PREFIX}uploaded_big.bin`], "the lease");
    // Another server takes the dead one's lease over once it is stale: 30 s by default, 1 s for
    // this server (in this process, with the store's lease time shortened).
    const code = (await Deno.readTextFile(codeFile)).trim();
    const store = await place.open({ leaseMs: 1000 });
    await using second = await startTestServer(place.root, { store, code });
    const rerun = () =>
      runFerry([
        "put",
        `127.0.0.1:${second.port}`,
        source,
        "--json",
        "--verify",
        "--code-file",
        codeFile,
      ]);
    let result = await rerun();
    for (let attempt = 0; attempt < 10 && /being received/.test(result.stderr); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      result = await rerun();
    }
    const done = doneEvent(result);
    assert.ok((done.resumedFrom as number) >= 8 * MiB, `resumed from ${done.resumedFrom}`);
    assert.equal(await place.sha256("uploaded_big.bin"), await sha256File(source));
    assert.deepEqual(await place.rawNames(), ["uploaded_big.bin"]);
  },
);

s3Test(
  "two servers on one bucket serve the same files: an upload through one is listed and downloaded through the other, which refuses a second upload of the name naming --force",
  async () => {
    await using place = await bucketPlace();
    await using local = await tempDir();
    const codeFile = join(local.path, "code");
    await using one = await place.serve({ codeFile });
    await using two = await place.serve({ codeFile });
    const source = join(local.path, "shared.bin");
    await makeFile(source, 9 * MiB + 1, 5);
    const put = await ferry("put", one, [source]);
    assert.equal(put.code, 0, put.stderr);
    const listed = await ferry("ls", two, ["--json"]);
    assert.deepEqual(JSON.parse(listed.stdout).map((entry: { name: string }) => entry.name), [
      "uploaded_shared.bin",
    ]);
    const out = join(local.path, "out");
    await Deno.mkdir(out);
    const get = await ferry("get", two, ["uploaded_shared.bin", "-o", out, "--verify"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(await sha256File(join(out, "uploaded_shared.bin")), await sha256File(source));
    await makeFile(source, 9 * MiB + 1, 6); // another file of the same name
    const again = await ferry("put", two, [source]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists.*--force/);
    assert.equal(
      await place.sha256("uploaded_shared.bin"),
      await sha256File(join(out, "uploaded_shared.bin")),
    );
  },
);

s3Test(
  "two uploads of one name at once through two servers: the second is told it is busy, the first lands whole",
  async () => {
    await using place = await bucketPlace();
    await using local = await tempDir();
    const codeFile = join(local.path, "code");
    await using one = await place.serve({ codeFile });
    await using two = await place.serve({ codeFile });
    const source = join(local.path, "race.bin");
    await makeFile(source, 12 * MiB, 10);
    {
      await using relay = new StallingRelay(one.port, "up", 10 * MiB);
      await using slow = spawnFerry([
        "put",
        relay.address,
        source,
        "--json",
        "--code-file",
        codeFile,
      ]);
      await waitFor("the first upload to hold the name", () => place.landed("uploaded_race.bin"));
      const other = join(local.path, "other");
      await Deno.mkdir(other);
      await makeFile(join(other, "race.bin"), 3 * MiB, 11);
      const second = await ferry("put", two, [join(other, "race.bin")]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /being received by another transfer/);
      assert.equal(await place.sha256("uploaded_race.bin"), null);
      slow.child.kill("SIGKILL");
      await slow.result;
    }
    await waitFor("the first server to let go of the cut upload", () => /closed: /.test(one.log()));
    const done = doneEvent(await ferry("put", one, [source, "--json", "--verify"]));
    assert.ok((done.resumedFrom as number) > 0);
    assert.equal(await place.sha256("uploaded_race.bin"), await sha256File(source));
  },
);

Deno.test("`ferry serve s3://` names each missing permission: the AWS variables, then the endpoint", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "code");
  await makeCodeFile(codeFile);
  const serve = (permissions: string[]) =>
    runFerry([
      "serve",
      "s3://some-bucket/share",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--code-file",
      codeFile,
    ], {
      permissions: ["--allow-net=127.0.0.1:0", `--allow-read=${codeFile}`, ...permissions],
      env: {
        AWS_ENDPOINT_URL: "http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID: "AKID",
        AWS_SECRET_ACCESS_KEY: "not-a-real-secret",
      },
    });
  const noEnv = await serve(["--allow-env=FERRY_CODE"]);
  assert.equal(noEnv.code, 1);
  assert.match(noEnv.stderr, new RegExp(`--allow-env=${AWS_ENV_NAMES.join(",")}`));
  const noNet = await serve([`--allow-env=FERRY_CODE,${AWS_ENV_NAMES.join(",")}`]);
  assert.equal(noNet.code, 1);
  assert.match(
    noNet.stderr,
    /Permission denied: run deno with --allow-net=127\.0\.0\.1:0,127\.0\.0\.1:9 \(to reach the object store\)/,
  );
  assert.doesNotMatch(noNet.stderr + noEnv.stderr, /not-a-real-secret/);
  // Without the variables' keys and no readable AWS files: the read flag or the variables.
  const noKeys = await runFerry([
    "serve",
    "s3://some-bucket",
    "--port",
    "0",
    "--code-file",
    codeFile,
  ], {
    permissions: ["--allow-net=0.0.0.0:0", `--allow-read=${codeFile}`, "--allow-env"],
    env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", AWS_PROFILE: "", HOME: dir.path },
  });
  assert.equal(noKeys.code, 1);
  assert.match(noKeys.stderr, /--allow-read=.*\.aws\/credentials.*or set AWS_ACCESS_KEY_ID/);
});

for (const [kind, make, skip] of places) {
  Deno.test({
    name: `named codes with rights and a folder scope work as on a folder (${kind})`,
    ignore: skip !== undefined,
    async fn() {
      await using place = await make();
      await using codes = await tempDir("ferry-s3-codes-");
      const codeFile = join(codes.path, "code");
      await makeCodeFile(codeFile);
      await place.write("top.txt", new TextEncoder().encode("the owner's"));
      const made = await runFerry(["code", "add", "team", "--scope", "team", "--file", codeFile]);
      assert.equal(made.code, 0, made.stderr);
      const reader = await runFerry(["code", "add", "reader", "--read-only", "--file", codeFile]);
      assert.equal(reader.code, 0, reader.stderr);
      await place.write("team/plan.txt", new TextEncoder().encode("plan"));
      await using serve = await place.serve({ codeFile });
      await using local = await tempDir("ferry-s3-local-");
      const as = async (stdout: string, ...args: string[]) => {
        const held = join(local.path, `${args[0]}-${crypto.randomUUID()}.code`);
        const saved = await runFerry(["code", "--save", "--file", held], { stdin: stdout });
        assert.equal(saved.code, 0, saved.stderr);
        return await runFerry([args[0]!, serve.address, ...args.slice(1), "--code-file", held], {
          cwd: local.path,
        });
      };
      const listed = await as(made.stdout, "ls");
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /plan\.txt/);
      assert.doesNotMatch(listed.stdout, /top\.txt/);
      const above = await as(made.stdout, "get", "../top.txt");
      assert.equal(above.code, 2, above.stderr);
      await Deno.writeTextFile(join(local.path, "notes.txt"), "notes");
      const put = await as(made.stdout, "put", join(local.path, "notes.txt"));
      assert.equal(put.code, 0, put.stderr);
      assert.ok(await place.sha256("team/uploaded_notes.txt") !== null, "landed in the scope");
      const refused = await as(reader.stdout, "put", join(local.path, "notes.txt"));
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /This code is read-only/);
      const read = await as(reader.stdout, "get", "top.txt", "-o", join(local.path, "got"));
      assert.equal(read.code, 0, read.stderr);
      assert.equal(await Deno.readTextFile(join(local.path, "got", "top.txt")), "the owner's");
    },
  });
}
