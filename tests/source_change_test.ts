/**
 * Integrity without a streaming hash (issue 11): the record layer vouches that the receiver gets
 * the bytes as read, and the sender vouches that what it read was one version of the file. A
 * source written to while it is sent is refused on both sides: nothing takes the name, no kept
 * prefix is left to resume from, and the session stays usable.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { ChangedError, RemoteError } from "../lib/errors.ts";
import { decodeClientMessage, encodeMessage } from "../lib/protocol/messages.ts";
import { exists, makeFile, names, sha256File, tempDir } from "./_helpers.ts";
import { startTestServer } from "./_hostile.ts";

const MiB = 1024 * 1024;

async function connect(port: number, secret: Uint8Array): Promise<FerryClient> {
  return await FerryClient.connect({ hostname: "127.0.0.1", port, secret });
}

Deno.test("a download whose source is written to while it is sent ends with `changed` and keeps nothing", async () => {
  await using dir = await tempDir();
  await using out = await tempDir();
  const source = join(dir.path, "live.log");
  await makeFile(source, 32 * MiB, 3);
  await using server = await startTestServer(dir.path);
  await using client = await connect(server.port, server.secret);
  await rejects(
    client.download("live.log", out.path, "live.log", {
      onStart: () => Deno.writeTextFileSync(source, "appended line\n", { append: true }),
    }),
    (error) => error instanceof RemoteError && error.code === "changed",
  );
  strictEqual((await names(out.path)).length, 0, "no file and no partial file");
  // The session goes on, and the file, now still, downloads whole.
  const again = await client.download("live.log", out.path, "live.log", { verify: true });
  strictEqual(again.resumedFrom, 0);
  strictEqual(again.sha256, await sha256File(source));
});

Deno.test("an upload whose source is written to while it is sent is withdrawn: nothing is kept on the server", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  const source = join(local.path, "live.log");
  await makeFile(source, 32 * MiB, 4);
  await using server = await startTestServer(dir.path);
  await using client = await connect(server.port, server.secret);
  let appended = false;
  await rejects(
    client.upload(source, "", "live.log", {
      onProgress: () => {
        if (appended) return;
        appended = true;
        Deno.writeTextFileSync(source, "appended line\n", { append: true });
      },
    }),
    (error) =>
      error instanceof ChangedError && /changed while it was being sent/.test(error.message),
  );
  strictEqual((await names(dir.path)).length, 0, "no file and no partial file on the server");
  ok(server.log.lines.some((line) => /put refused: .*changed/.test(line)), server.log.text());
  const again = await client.upload(source, "", "live.log", { verify: true });
  strictEqual(again.sha256, await sha256File(source));
  ok(await exists(join(dir.path, "uploaded_live.log")));
});

Deno.test("a replaced (renamed-over) source is a changed source too", async () => {
  await using dir = await tempDir();
  await using out = await tempDir();
  const source = join(dir.path, "doc.bin");
  await makeFile(source, 32 * MiB, 5);
  await makeFile(join(dir.path, "new.bin"), 32 * MiB, 6);
  await using server = await startTestServer(dir.path);
  await using client = await connect(server.port, server.secret);
  await rejects(
    client.download("doc.bin", out.path, "doc.bin", {
      onStart: () => Deno.renameSync(join(dir.path, "new.bin"), source),
    }),
    (error) => error instanceof RemoteError && error.code === "changed",
  );
  strictEqual((await names(out.path)).length, 0);
});

Deno.test("`get` and `put` without a `verify` field are verified, as before the field existed", () => {
  const get = decodeClientMessage(
    encodeMessage({ t: "get", path: "a", offset: 0, prefixSha256: "" }),
  );
  strictEqual(get.t === "get" && get.verify, true);
  const put = decodeClientMessage(
    encodeMessage({ t: "put", dir: "", name: "a", size: 1, mode: 0, mtime: 0, force: false }),
  );
  strictEqual(put.t === "put" && put.verify, true);
});
