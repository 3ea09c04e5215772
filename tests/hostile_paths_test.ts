/**
 * The server's own path checks, reached with hand-built requests (the real client refuses these
 * paths before sending them): every hostile spelling in a list, get, put or mkdir is answered
 * with an `invalid-path` error, nothing outside the served folder is read or written, and the
 * connection stays usable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { FerryError, PathError, UsageError } from "../lib/errors.ts";
import { assertStillServes, manualSession, startTestServer } from "./_hostile.ts";
import { tempDir } from "./_helpers.ts";

/**
 * Hostile on every platform. Names only Windows refuses (`CON`, `nul.txt`, `c:x`) are ordinary on
 * Linux, where these tests run; remote_path_test.ts and names_test.ts cover them.
 */
const HOSTILE_PATHS = [
  "..",
  "../",
  "../outside.txt",
  "a/../../outside.txt",
  "/etc/passwd",
  "//etc/passwd",
  "\\..\\outside.txt",
  "a\\..\\..\\outside.txt",
  "C:\\Windows",
  "x\u0000y",
  "\u001b[2J",
  "a\nb",
  "a//b",
  "./../outside.txt",
  "\u2215etc\u2215passwd",
  "\uff0e\uff0e/outside.txt",
  ".ferry-partial.secret",
  "escape",
  "escape/outside.txt",
  "link-to-outside.txt",
];

Deno.test("hostile client: every hostile path in list, get, put and mkdir is refused by the server", async () => {
  await using parent = await tempDir();
  const root = join(parent.path, "served");
  const outside = join(parent.path, "outside");
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(parent.path, "outside.txt"), "secret");
  await Deno.writeTextFile(join(outside, "outside.txt"), "secret");
  await Deno.symlink(outside, join(root, "escape"));
  await Deno.symlink(join(outside, "outside.txt"), join(root, "link-to-outside.txt"));
  await Deno.writeTextFile(join(root, ".ferry-partial.secret"), "partial");
  await using server = await startTestServer(root, { uploadPrefix: "" });
  await using session = await manualSession(server.port, server.secret);

  for (const path of HOSTILE_PATHS) {
    const shown = JSON.stringify(path);
    await session.send({ t: "list", path, recursive: false });
    const listed = await session.next();
    assert.equal(listed?.t, "error", `list ${shown} must be refused`);
    assert.ok(listed?.t === "error" && /invalid-path|not-found/.test(listed.code), `list ${shown}`);

    await session.send({ t: "get", path, offset: 0, prefixSha256: "" });
    const got = await session.next();
    assert.equal(got?.t, "error", `get ${shown} must be refused`);

    await session.send({
      t: "put",
      dir: path,
      name: "x.txt",
      size: 1,
      mode: 0o644,
      mtime: 0,
      force: true,
    });
    const putDir = await session.next();
    assert.equal(putDir?.t, "error", `put into ${shown} must be refused`);

    await session.send({
      t: "put",
      dir: "",
      name: path,
      size: 1,
      mode: 0o644,
      mtime: 0,
      force: true,
    });
    const putName = await session.next();
    assert.equal(putName?.t, "error", `put named ${shown} must be refused`);

    await session.send({ t: "mkdir", dir: "", name: path, mode: 0o755, mtime: 0 });
    const made = await session.next();
    assert.equal(made?.t, "error", `mkdir ${shown} must be refused`);
  }

  assert.equal(await Deno.readTextFile(join(parent.path, "outside.txt")), "secret");
  assert.equal(await Deno.readTextFile(join(outside, "outside.txt")), "secret");
  const outsideNames = [];
  for await (const entry of Deno.readDir(outside)) outsideNames.push(entry.name);
  assert.deepEqual(outsideNames, ["outside.txt"], "nothing was written outside");
  await assertStillServes(server.port, server.secret);
});

Deno.test("`FerryClient.mkdir()` refuses hostile paths before sending anything", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer(dir.path);
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  for (
    const [remoteDir, name] of [["../x", "a"], ["", "../a"], ["/etc", "a"], ["", "a\0b"], ["", ""]]
  ) {
    await assert.rejects(client.mkdir(remoteDir!, name!), (error) => error instanceof FerryError);
  }
  assert.equal(server.log.count(/mkdir/), 0, "nothing reached the server");
  assert.deepEqual([...Deno.readDirSync(dir.path)], []);
});

Deno.test("`FerryClient.upload()` of something that is not a regular file is a path error, not 'exists'", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  await using server = await startTestServer(dir.path);
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  await assert.rejects(
    client.upload(local.path, "", "folder"),
    (error) => error instanceof PathError && /not a regular file/.test(error.message),
  );
  await assert.rejects(client.upload(join(local.path, "x"), "", ""), UsageError);
});
