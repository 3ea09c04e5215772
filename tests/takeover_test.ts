/**
 * An upload whose sender went quiet (a network cut without a FIN: the server cannot tell) is
 * taken over by the same upload run again, which resumes from its partial file; an upload that
 * is still moving is not (issue 12, item 11).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { RemoteError } from "../lib/errors.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { UploadClaims } from "../lib/server/upload_claims.ts";
import { makeFile, sha256File, tempDir } from "./_helpers.ts";
import { manualSession, partialFiles, startTestServer } from "./_hostile.ts";

const SIZE = 1024 * 1024;
const SENT_BEFORE_THE_CUT = 256 * 1024;
const TAKEOVER_MS = 400;

/** Starts an upload of the first bytes of `local` by hand, then stops sending (no FIN). */
async function cutUpload(port: number, secret: Uint8Array, local: string) {
  const session = await manualSession(port, secret);
  const bytes = await Deno.readFile(local);
  await session.send({
    t: "put",
    dir: "",
    name: "big.bin",
    size: SIZE,
    mode: 0o644,
    mtime: Date.now(),
    force: false,
    verify: false,
  });
  assert.equal((await session.next())?.t, "put-ready");
  await session.send({ t: "put-start", offset: 0 });
  for (let at = 0; at < SENT_BEFORE_THE_CUT; at += 64 * 1024) {
    await session.record(RecordType.data, bytes.subarray(at, at + 64 * 1024));
  }
  return session;
}

async function connect(port: number, secret: Uint8Array): Promise<FerryClient> {
  return await FerryClient.connect({ hostname: "127.0.0.1", port, secret });
}

Deno.test("an upload whose sender went quiet is taken over by the same upload run again, which resumes from its partial file", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const source = join(local.path, "big.bin");
  await makeFile(source, SIZE, 7);
  await using server = await startTestServer(served.path, { uploadTakeoverMs: TAKEOVER_MS });
  await using quiet = await cutUpload(server.port, server.secret, source);
  await server.log.waitFor(/./); // the server is reading the upload
  await new Promise((resolve) => setTimeout(resolve, TAKEOVER_MS + 200));

  await using client = await connect(server.port, server.secret);
  const result = await client.upload(source, "", "big.bin");
  assert.equal(result.size, SIZE);
  assert.ok(result.resumedFrom > 0, "resumed from the quiet upload's partial file");
  assert.ok(result.resumedFrom <= SENT_BEFORE_THE_CUT);
  assert.equal(
    await sha256File(join(served.path, "uploaded_big.bin")),
    await sha256File(source),
  );
  assert.deepEqual(await partialFiles(served.path), []);
  // The quiet session was closed, saying why.
  await assert.rejects(quiet.next());
  await server.log.waitFor(/taken over by a new one/);
});

Deno.test("an upload that is still moving is not taken over: the same upload beside it is `busy`", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const source = join(local.path, "big.bin");
  await makeFile(source, SIZE, 8);
  await using server = await startTestServer(served.path, { uploadTakeoverMs: TAKEOVER_MS });
  await using slow = await cutUpload(server.port, server.secret, source);
  // A slow sender: a record every 100 ms, for longer than the takeover silence.
  const bytes = await Deno.readFile(source);
  for (let at = SENT_BEFORE_THE_CUT; at < SENT_BEFORE_THE_CUT + 8 * 1024; at += 1024) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await slow.record(RecordType.data, bytes.subarray(at, at + 1024));
  }
  await using client = await connect(server.port, server.secret);
  await assert.rejects(
    client.upload(source, "", "big.bin"),
    (error) =>
      error instanceof RemoteError &&
      /being uploaded by another client; if that upload was cut, run the command again in \d s/
        .test(error.message),
  );
});

Deno.test("`UploadClaims`: quiet is measured from the last sign of life, plus the grace given for hashing", async () => {
  let now = 0;
  const claims = new UploadClaims(15_000, () => now);
  const ended: string[] = [];
  const first = await claims.claim("a.bin", (reason) => ended.push(reason));
  now = 14_000;
  await assert.rejects(claims.claim("a.bin", () => {}), /run the command again in 1 s/);
  first.heard(60_000); // its sender hashes a kept prefix first
  now = 14_000 + 70_000;
  await assert.rejects(claims.claim("a.bin", () => {}), /being uploaded by another client/);
  now = 14_000 + 75_000;
  const taking = claims.claim("a.bin", () => {});
  first.release(); // the quiet session lets go once it is closed
  const second = await taking;
  assert.equal(ended.length, 1);
  assert.match(ended[0]!, /a\.bin was taken over/);
  assert.ok(claims.has("a.bin"));
  first.release(); // a late release of the old claim does not free the new one
  assert.ok(claims.has("a.bin"));
  second.release();
  assert.equal(claims.size, 0);
});
