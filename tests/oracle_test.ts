/**
 * No existence oracles (issue 12, item 3): what a client is refused never tells whether something
 * exists where it may not look. A link that leads outside the served folder answers the same for
 * paths that exist out there and for paths that do not; an excluded file answers like a missing
 * one; a drop box answers every probe of the owner's folders the same way and writes nowhere but
 * where uploads belong.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { FerryError } from "../lib/errors.ts";
import { exists, tempDir } from "./_helpers.ts";
import { startTestServer } from "./_hostile.ts";

/** The code and message a request was refused with, `path` put in place of the name it named. */
async function refusal(attempt: Promise<unknown>, path: string): Promise<string> {
  try {
    await attempt;
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    return `${error.code}: ${error.message.replaceAll(path, "<path>")}`;
  }
  assert.fail(`${path} was not refused`);
}

async function connect(server: { port: number; secret: Uint8Array }): Promise<FerryClient> {
  return await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
}

Deno.test("hostile client: through a link leading outside, a path that exists out there and one that does not get the same answer as a missing name", async () => {
  await using base = await tempDir();
  const served = join(base.path, "served");
  const outside = join(base.path, "outside");
  await Deno.mkdir(served);
  await Deno.mkdir(join(outside, "folder"), { recursive: true });
  await Deno.writeTextFile(join(outside, "secret.txt"), "not yours");
  await Deno.symlink(outside, join(served, "out"));
  await Deno.symlink(join(outside, "secret.txt"), join(served, "secret-link"));
  await Deno.symlink(join(outside, "missing.txt"), join(served, "dangling-link"));
  await using server = await startTestServer(served);
  await using local = await tempDir();
  await using client = await connect(server);

  const probes = [
    "out/secret.txt",
    "out/missing.txt",
    "out/folder",
    "out/missing-folder",
    "secret-link",
    "dangling-link",
    "no-such-name",
  ];
  const gets = await Promise.all(probes.map(async (path, index) => {
    await using other = await connect(server);
    return await refusal(other.download(path, local.path, `x${index}`), path);
  }));
  assert.equal(new Set(gets).size, 1, gets.join("\n"));
  assert.match(gets[0]!, /^not-found: Cannot find "<path>": no such file or folder$/);
  const lists = await Promise.all(probes.map(async (path) => {
    await using other = await connect(server);
    return await refusal(other.list(path), path);
  }));
  assert.deepEqual(new Set(lists), new Set(gets));
  // Uploading into them: one answer too, and nothing is written outside.
  const source = join(local.path, "up.txt");
  await Deno.writeTextFile(source, "upload");
  const puts = [];
  for (const dir of ["out/folder", "out/missing-folder", "secret-link", "no-such-name"]) {
    puts.push(await refusal(client.upload(source, dir, "up.txt"), dir));
  }
  assert.equal(new Set(puts).size, 1, puts.join("\n"));
  assert.ok(!(await exists(join(outside, "folder", "uploaded_up.txt"))));
  await server.log.waitFor(/leads outside the served folder/); // the owner's log says why
});

Deno.test("hostile client: the excluded code file answers exactly like a name that does not exist", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "share.code"); // --code-file may name any file
  await Deno.writeTextFile(codeFile, "K7QD");
  await using server = await startTestServer(dir.path, { exclude: [codeFile] });
  await using local = await tempDir();
  await using client = await connect(server);
  const answers = [
    await refusal(client.download("share.code", local.path, "x"), "share.code"),
    await refusal(client.download(".no_such_file", local.path, "x"), ".no_such_file"),
  ];
  assert.equal(answers[0], answers[1]);
});

Deno.test("hostile client: a secret file's name is refused the same way whether it is there or not", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "a"));
  await Deno.mkdir(join(dir.path, "b"));
  await Deno.writeTextFile(join(dir.path, "a", ".connection_code"), "K7QD");
  await using server = await startTestServer(dir.path);
  await using local = await tempDir();
  await using client = await connect(server);
  const answers = [
    await refusal(client.download("a/.connection_code", local.path, "x"), "a/.connection_code"),
    await refusal(client.download("b/.connection_code", local.path, "x"), "b/.connection_code"),
  ];
  assert.equal(answers[0], answers[1]);
  assert.match(answers[0]!, /^invalid-path: /);
});

Deno.test("hostile client: a drop box answers every probe of the owner's folders the same way, and writes only where uploads belong", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "private"));
  await Deno.writeTextFile(join(dir.path, "private", "diary.txt"), "mine");
  await Deno.writeTextFile(join(dir.path, "notes.txt"), "mine too");
  await using server = await startTestServer(dir.path, { mode: "upload-only" });
  await using local = await tempDir();
  const source = join(local.path, "drop.txt");
  await Deno.writeTextFile(source, "dropped");
  await using client = await connect(server);

  const probes = ["private", "no-such-folder", "notes.txt", "private/deeper"];
  const answers = [];
  for (const probe of probes) {
    answers.push(await refusal(client.upload(source, probe, "drop.txt"), probe));
    answers.push(await refusal(client.mkdir(probe, "sub"), probe));
  }
  assert.equal(new Set(answers).size, 1, answers.join("\n"));
  assert.match(answers[0]!, /^upload-only: /);
  assert.deepEqual(
    [...Deno.readDirSync(join(dir.path, "private"))].map((entry) => entry.name),
    ["diary.txt"],
    "nothing written into the owner's folder",
  );
  // Where uploads belong: the top folder, and folders uploaded to it.
  assert.equal((await client.upload(source, "", "drop.txt")).size, 7);
  assert.equal(await client.mkdir("", "album"), "uploaded_album");
  assert.equal((await client.upload(source, "uploaded_album", "in-album.txt")).size, 7);
  assert.ok(await exists(join(dir.path, "uploaded_drop.txt")));
  assert.ok(await exists(join(dir.path, "uploaded_album", "uploaded_in-album.txt")));
});
