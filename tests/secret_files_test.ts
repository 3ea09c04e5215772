/**
 * Files that hold secrets never travel: a connection code (`.connection_code`), a server's named
 * codes and their last use (`.connection_codes`, `.connection_codes.used`) and a relay's token
 * (`.relay_token`). No remote path names one, a server neither lists nor serves one wherever it
 * lies in its folder (a code of another share kept in a sub-folder included), a client never sends
 * one, and a download never writes one: a hostile server could otherwise plant a code it knows
 * where `ferry serve` would later pick it up.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PathError } from "../lib/errors.ts";
import {
  isSecretFileName,
  parseRemotePath,
  SECRET_FILE_NAMES,
  validateLocalName,
  validateName,
} from "../lib/protocol/remote_path.ts";
import { DEFAULT_CODE_FILE } from "../lib/code_file.ts";
import { codeStorePath, lastUsePath } from "../lib/code_store.ts";
import { DEFAULT_TOKEN_FILE } from "../lib/relay/wire.ts";
import { LocalStore } from "../lib/store/local.ts";
import { listingRefusal } from "../lib/store/store.ts";
import { exists, makeCodeFile, names, runFerry, startServe, tempDir } from "./_helpers.ts";

Deno.test("the secret file names are the ones ferry writes: code file, code store, last use, relay token", () => {
  const store = codeStorePath(DEFAULT_CODE_FILE);
  assert.deepEqual(
    [...SECRET_FILE_NAMES].sort(),
    [DEFAULT_CODE_FILE, store, lastUsePath(store), DEFAULT_TOKEN_FILE].sort(),
  );
});

Deno.test("no remote path or local name may name a file that holds a secret, in any case", () => {
  for (const name of [...SECRET_FILE_NAMES, ".CONNECTION_CODE", ".Relay_Token"]) {
    assert.ok(isSecretFileName(name), name);
    assert.throws(() => validateName(name), PathError);
    assert.throws(() => validateLocalName(name), PathError);
    assert.throws(() => parseRemotePath(`photos/${name}`), /holds a connection code/);
  }
  for (const name of ["connection_code", ".connection_code.txt", "notes.relay_token"]) {
    assert.ok(!isSecretFileName(name), name);
    validateName(name);
  }
});

Deno.test("a served folder never lists nor serves a secret file, wherever it lies", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "project"));
  await Deno.writeTextFile(join(dir.path, "project", "notes.txt"), "hello");
  for (const name of SECRET_FILE_NAMES) {
    await Deno.writeTextFile(join(dir.path, "project", name), "SECRET");
  }
  await Deno.writeTextFile(join(dir.path, ".Relay_Token"), "SECRET");
  const store = await LocalStore.open(dir.path);
  const skipped: string[] = [];
  const listed = await Array.fromAsync(
    store.entries("project", { onSkipped: (entry) => skipped.push(entry.name) }),
  );
  assert.deepEqual(listed.map((entry) => entry.name), ["notes.txt"]);
  assert.deepEqual(skipped, [], "hidden, not reported as skipped");
  const top = (await Array.fromAsync(store.entries(""))).map((entry) => entry.name);
  assert.deepEqual(top, ["project"]);
});

Deno.test("`ferry get` of a secret file is refused before connecting; a folder download leaves it out", async () => {
  await using served = await tempDir();
  await Deno.mkdir(join(served.path, "project"));
  await Deno.writeTextFile(join(served.path, "project", "notes.txt"), "hello");
  await makeCodeFile(join(served.path, "project", DEFAULT_CODE_FILE)); // another share's code
  await using server = await startServe(served.path);
  await using out = await tempDir();
  const env = { FERRY_CODE: server.code };

  const direct = await runFerry(
    ["get", server.address, `project/${DEFAULT_CODE_FILE}`, "-o", out.path],
    { env },
  );
  assert.equal(direct.code, 2, direct.stderr);
  assert.match(direct.stderr, /holds a connection code/);

  const folder = await runFerry(["get", server.address, "project", "-o", out.path], { env });
  assert.equal(folder.code, 0, folder.stderr);
  assert.deepEqual(await names(join(out.path, "project")), ["notes.txt"]);
  assert.ok(!server.log().includes(server.code));
});

Deno.test("`ferry put` refuses a secret file named on its own, and leaves them out of a folder", async () => {
  await using served = await tempDir();
  await using server = await startServe(served.path);
  await using local = await tempDir();
  const env = { FERRY_CODE: server.code };
  await Deno.mkdir(join(local.path, "site"));
  await Deno.writeTextFile(join(local.path, "site", "index.html"), "<p>hi</p>");
  await makeCodeFile(join(local.path, "site", DEFAULT_CODE_FILE));
  await Deno.writeTextFile(join(local.path, "site", DEFAULT_TOKEN_FILE), "TOKEN");

  const direct = await runFerry([
    "put",
    server.address,
    join(local.path, "site", DEFAULT_CODE_FILE),
  ], {
    env,
  });
  assert.equal(direct.code, 2, direct.stderr);
  assert.match(direct.stderr, /holds a connection code/);

  const folder = await runFerry(["put", server.address, join(local.path, "site")], { env });
  assert.equal(folder.code, 0, folder.stderr);
  assert.deepEqual(await names(join(served.path, "uploaded_site")), ["index.html"]);
  assert.ok(!await exists(join(served.path, `uploaded_${DEFAULT_CODE_FILE}`)));
});

Deno.test("every store lists through one rule: partial files and secret files hidden, refused names reported", () => {
  for (const name of [...SECRET_FILE_NAMES, ".CONNECTION_CODE", ".ferry-partial.a.txt"]) {
    assert.equal(listingRefusal(name), "hidden", name);
  }
  assert.equal(listingRefusal("notes.txt"), undefined);
  const refused = listingRefusal("a\u0007b");
  assert.ok(refused !== undefined && refused !== "hidden", "a control character is reported");
  assert.match(refused.skipped, /^its name is refused: /);
});
