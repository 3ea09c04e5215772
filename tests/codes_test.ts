/**
 * Several codes per server (issue 14), in one process: each code's rights against every request
 * type, a code limited to a folder against hostile paths, expiry on an injected clock, revocation
 * during a transfer, the code store never served, failed handshakes limited per identifier, and
 * a log that names the code of every line about an authenticated connection.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import {
  codeIdentifier,
  codeSecret,
  generateCode,
  generateIdentifier,
  generateNamedCode,
  normaliseCode,
} from "../lib/code.ts";
import {
  codeStorePath,
  CodeStoreWatch,
  lastUsePath,
  readCodeStore,
  readLastUse,
  updateCodeStore,
} from "../lib/code_store.ts";
import { AuthenticationError, FerryError, RefusedError } from "../lib/errors.ts";
import type { ServeMode } from "../lib/protocol/messages.ts";
import { ServerCodes } from "../lib/server/code_refresh.ts";
import { IdentifierThrottle } from "../lib/server/penalty.ts";
import { Rights } from "../lib/server/rights.ts";
import { CODE_CHECK_INTERVAL_MS } from "../lib/server/server.ts";
import { MemoryStore } from "../lib/store/memory.ts";
import { exists, makeFile, runFerry, tempDir } from "./_helpers.ts";
import { dialFrom, manualSession, startTestServer } from "./_hostile.ts";

/** Adds a named code to the store at `store`, as `ferry code add` does, and returns it. */
async function addCode(
  store: string,
  name: string,
  options: { rights?: ServeMode; scope?: string; expires?: number } = {},
): Promise<string> {
  let code = "";
  await updateCodeStore(store, (codes) => {
    const identifier = generateIdentifier(new Set(codes.map((other) => other.identifier)));
    code = generateNamedCode(identifier);
    return [...codes, {
      name,
      identifier,
      secret: normaliseCode(code).slice(4),
      rights: options.rights ?? "read-write",
      scope: options.scope ?? "",
      ...(options.expires === undefined ? {} : { expires: options.expires }),
      created: Date.now(),
    }];
  });
  return code;
}

function connect(port: number, code: string): Promise<FerryClient> {
  return FerryClient.connect({
    hostname: "127.0.0.1",
    port,
    secret: codeSecret(code),
    identifier: codeIdentifier(code),
  });
}

/** How a request ended: `ok`, or the error's code and message. */
async function outcome(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt;
    return "ok";
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    return `${error.code}: ${error.message}`;
  }
}

/** A served folder and a code store beside it (outside it), removed on dispose. */
async function sharedFolder() {
  const base = await tempDir();
  const served = join(base.path, "served");
  const codeFile = join(base.path, "code");
  await Deno.mkdir(join(served, "projects", "alice"), { recursive: true });
  await Deno.writeTextFile(join(served, "readme.txt"), "hello");
  await Deno.writeTextFile(join(served, "projects", "x.txt"), "not alice's");
  await Deno.writeTextFile(join(served, "projects", "alice", "plan.txt"), "alice's plan");
  return { base, served, codeFile, store: codeStorePath(codeFile) };
}

// Rights

Deno.test("`Rights` is the server's mode and the code's both applied, and says which one refused", () => {
  const modes: ServeMode[] = ["read-write", "read-only", "upload-only"];
  const expected: Record<string, string> = {
    "read-write/read-write": "read-write",
    "read-write/read-only": "read-only",
    "read-write/upload-only": "upload-only",
    "read-only/read-write": "read-only",
    "read-only/read-only": "read-only",
    "read-only/upload-only": "none",
    "upload-only/read-write": "upload-only",
    "upload-only/read-only": "none",
    "upload-only/upload-only": "upload-only",
  };
  for (const server of modes) {
    for (const code of modes) {
      const rights = new Rights(server).forCode(code);
      assert.equal(rights.mode, expected[`${server}/${code}`], `${server}/${code}`);
    }
  }
  const readOnlyCode = new Rights("read-write").forCode("read-only");
  assert.throws(() => readOnlyCode.requireWriting(), /^RequestError: This code is read-only/);
  const readOnlyServer = new Rights("read-only").forCode("upload-only");
  assert.throws(() => readOnlyServer.requireWriting(), /The server is in read-only mode/);
  assert.throws(() => readOnlyServer.requireReading(), /This code is upload-only/);
  const dropBox = new Rights("read-write").forCode("upload-only");
  assert.throws(() => dropBox.requireReplacing(true), /This code is a drop box/);
  assert.throws(() => dropBox.requireUploadFolder("projects", "uploaded_"), /This code is a drop/);
  dropBox.requireUploadFolder("", "uploaded_");
  assert.equal(dropBox.mayConfirmIdentical, false);
});

Deno.test("each code's rights against list, get, put and mkdir; the welcome says what the session may do", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const codes = {
    "read-write": await addCode(store, "colleague"),
    "read-only": await addCode(store, "client", { rights: "read-only" }),
    "upload-only": await addCode(store, "class", { rights: "upload-only" }),
  };
  await using server = await startTestServer(served, { codeStore: store });
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "up.txt"), "uploaded");
  const results: Record<string, string[]> = {};
  for (const [rights, code] of Object.entries(codes)) {
    await using client = await connect(server.port, code);
    assert.equal(client.welcome.mode, rights);
    results[rights] = [
      await outcome(client.list("")),
      await outcome(client.download("readme.txt", local.path, `${rights}.txt`)),
      await outcome(client.upload(join(local.path, "up.txt"), "", `${rights}.txt`)),
      await outcome(client.mkdir("", `${rights}-folder`)),
    ];
  }
  const readOnly = "read-only: This code is read-only: uploads are refused";
  const uploadOnly =
    "upload-only: This code is upload-only (a drop box): listing and downloading are refused";
  assert.deepEqual(results, {
    "read-write": ["ok", "ok", "ok", "ok"],
    "read-only": ["ok", "ok", readOnly, readOnly],
    "upload-only": [uploadOnly, uploadOnly, "ok", "ok"],
  });
  assert.ok(await exists(join(served, "uploaded_upload-only.txt")));
  assert.ok(!await exists(join(served, "uploaded_read-only.txt")));
});

Deno.test("a server's mode limits every code: an upload-only code on a read-only server may do nothing", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const dropBox = await addCode(store, "class", { rights: "upload-only" });
  await using server = await startTestServer(served, { codeStore: store, mode: "read-only" });
  await using client = await connect(server.port, dropBox);
  assert.equal(client.welcome.mode, "none");
  assert.match(await outcome(client.list("")), /^upload-only: This code is upload-only/);
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "a.txt"), "a");
  assert.match(
    await outcome(client.upload(join(local.path, "a.txt"), "", "a.txt")),
    /^read-only: The server is in read-only mode/,
  );
  // The default code may do what the server allows.
  await using owner = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
  });
  assert.equal(owner.welcome.mode, "read-only");
});

// A code limited to a folder

Deno.test("a code limited to a folder sees it as the root: listings, downloads, uploads and folders stay inside", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const alice = await addCode(store, "alice", { scope: "projects/alice" });
  await using server = await startTestServer(served, { codeStore: store });
  await using client = await connect(server.port, alice);
  assert.deepEqual((await client.list("")).map((entry) => entry.name), ["plan.txt"]);
  const recursive = await client.list("", { recursive: true });
  assert.deepEqual(recursive.map((entry) => entry.name), ["plan.txt"]);
  await using local = await tempDir();
  await client.download("plan.txt", local.path, "plan.txt");
  assert.equal(await Deno.readTextFile(join(local.path, "plan.txt")), "alice's plan");
  await Deno.writeTextFile(join(local.path, "notes.txt"), "notes");
  const result = await client.upload(join(local.path, "notes.txt"), "", "notes.txt");
  assert.equal(result.name, "uploaded_notes.txt");
  assert.equal(
    await Deno.readTextFile(join(served, "projects", "alice", "uploaded_notes.txt")),
    "notes",
  );
  assert.equal(await client.mkdir("", "drafts"), "uploaded_drafts");
  assert.ok(await exists(join(served, "projects", "alice", "uploaded_drafts")));
  // What is above it answers as what does not exist.
  assert.match(
    await outcome(client.download("readme.txt", local.path, "r.txt")),
    /^not-found: Cannot find "readme\.txt": no such file or folder$/,
  );
});

Deno.test("hostile client: a code limited to a folder cannot name anything outside it, and no answer names the folder", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const outside = join(base.path, "outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(outside, "secret.txt"), "outside the share");
  const scope = join(served, "projects", "alice");
  await Deno.symlink(join(served, "projects"), join(scope, "up-link"));
  await Deno.symlink(join(served, "readme.txt"), join(scope, "readme-link"));
  await Deno.symlink(outside, join(scope, "out-link"));
  await Deno.symlink(join(scope, "plan.txt"), join(scope, "inside-link"));
  const alice = await addCode(store, "alice", { scope: "projects/alice" });
  await using server = await startTestServer(served, { codeStore: store });
  await using session = await manualSession(
    server.port,
    codeSecret(alice),
    codeIdentifier(alice),
  );
  const answer = async () => {
    const message = await session.next();
    assert.ok(message !== undefined);
    return message;
  };
  const probes = [
    "..",
    "../x.txt",
    "../../readme.txt",
    "/etc/passwd",
    "/projects/alice/plan.txt",
    "a/../../x.txt",
    "up-link/x.txt",
    "up-link",
    "readme-link",
    "out-link/secret.txt",
    "out-link",
    "..\\x.txt",
  ];
  const seen: string[] = [];
  for (const path of probes) {
    await session.send({ t: "get", path, offset: 0, prefixSha256: "" });
    const got = await answer();
    assert.equal(got.t, "error", `get ${path}`);
    await session.send({ t: "list", path, recursive: false });
    const listed = await answer();
    assert.equal(listed.t, "error", `list ${path}`);
    await session.send({ t: "mkdir", dir: path, name: "x", mode: 0o755, mtime: 0 });
    const made = await answer();
    assert.equal(made.t, "error", `mkdir in ${path}`);
    for (const message of [got, listed, made]) {
      if (message.t !== "error") continue;
      assert.ok(["not-found", "invalid-path"].includes(message.code), message.message);
      // Nothing but the path the client sent itself: never the folder above.
      const said = message.message.replaceAll(path, "<path>");
      assert.doesNotMatch(said, /alice|projects|served|outside/, said);
      seen.push(message.code);
    }
  }
  // A link that stays inside the folder still works; the root lists only the folder's own.
  await session.send({ t: "list", path: "", recursive: true });
  const names: string[] = [];
  for (let batch = await answer(); batch.t === "listing"; batch = await answer()) {
    names.push(...batch.entries.map((entry) => entry.name));
    if (batch.done) break;
  }
  assert.deepEqual(names.sort(), ["inside-link", "plan.txt"]);
  assert.ok(!await exists(join(served, "projects", "uploaded_x")), "nothing written above");
  assert.ok(!await exists(join(outside, "uploaded_x")), "nothing written outside");
  assert.ok(seen.length === probes.length * 3);
});

Deno.test("a code whose folder is gone is refused clearly, request by request, and the session goes on", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const alice = await addCode(store, "alice", { scope: "projects/alice" });
  await using server = await startTestServer(served, { codeStore: store });
  await using client = await connect(server.port, alice);
  assert.equal((await client.list("")).length, 1);
  await Deno.rename(join(served, "projects", "alice"), join(served, "projects", "alice-old"));
  const gone =
    "not-found: The folder this code gives access to no longer exists on the server: ask its owner";
  assert.equal(await outcome(client.list("")), gone);
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "a.txt"), "a");
  // A streamed upload too: its bytes are read past, so the session stays in step.
  const sent = await client.sendUpload(join(local.path, "a.txt"), "", "a.txt");
  assert.equal(await outcome(client.receiveUpload(sent)), gone);
  await Deno.rename(join(served, "projects", "alice-old"), join(served, "projects", "alice"));
  assert.equal((await client.list("")).length, 1, "the same session, once the folder is back");
});

Deno.test("`MemoryStore.scope()` is a view of one folder with the same rules", async () => {
  const store = new MemoryStore({ exclude: ["a/secret"] });
  store.writeFile("a/b.txt", "b");
  store.writeFile("a/secret", "s");
  store.writeFile("top.txt", "t");
  const view = await store.scope("a");
  assert.deepEqual((await Array.fromAsync(view.entries(""))).map((entry) => entry.name), ["b.txt"]);
  await assert.rejects(view.resolve("secret"), /Cannot find "secret"/);
  await assert.rejects(view.resolve("../top.txt"), /parent component/);
  await assert.rejects(store.scope("top.txt"), /Cannot find "top\.txt"/);
  await assert.rejects(store.scope("missing"), /Cannot find "missing"/);
  const upload = await view.beginUpload("c.txt");
  await upload.write(new TextEncoder().encode("c"));
  await upload.commit({ force: false });
  assert.equal((await store.resolve("a/c.txt")).size, 1);
});

// Codes that change while the server runs

Deno.test("`ServerCodes` refuses a code once the injected clock passes its expiry, and says why its sessions end", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "codes");
  let now = Date.parse("2025-05-01T10:00:00Z");
  const code = await addCode(store, "visitor", { expires: now + 3_600_000 });
  const lines: string[] = [];
  const codes = await ServerCodes.open({
    store: new CodeStoreWatch(store),
    now: () => now,
    log: (line) => lines.push(line),
  });
  const found = codes.find(codeIdentifier(code));
  assert.equal(found?.name, "visitor");
  assert.equal(codes.endOf(found!), undefined);
  now += 3_600_000 - 1;
  assert.ok(codes.find(codeIdentifier(code)) !== undefined, "valid to the last millisecond");
  now += 1;
  assert.equal(codes.find(codeIdentifier(code)), undefined);
  assert.ok(codes.has(codeIdentifier(code)), "still a code's identifier");
  assert.equal(codes.endOf(found!), 'code "visitor" expired');
  await codes.refresh();
  await codes.refresh();
  assert.equal(lines.filter((line) => / code "visitor" expired: /.test(line)).length, 1);
});

Deno.test("an expired code is refused like a wrong code, and its open session is closed (injected clock)", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  let now = Date.now();
  const visitor = await addCode(store, "visitor", { expires: now + 60_000 });
  const colleague = await addCode(store, "colleague");
  await using server = await startTestServer(served, { codeStore: store, now: () => now });
  await using before = await connect(server.port, visitor);
  await using other = await connect(server.port, colleague);
  assert.equal((await before.list("")).length, 2);
  now += 61_000;
  await server.log.waitFor(
    / code=visitor closed: code "visitor" expired/,
    CODE_CHECK_INTERVAL_MS * 5,
  );
  await assert.rejects(before.list(""));
  await assert.rejects(connect(server.port, visitor), AuthenticationError);
  assert.match(
    await server.log.waitFor(/authentication failed: .*an expired code/),
    new RegExp(`identifier ${codeIdentifier(visitor)}, an expired code\\)$`),
  );
  assert.equal((await other.list("")).length, 2, "the other code keeps working");
});

Deno.test("a code revoked during a transfer: its session is closed mid-file, new connections fail as a wrong code, the others go on", async () => {
  const { base, served, codeFile, store } = await sharedFolder();
  await using _base = base;
  await makeFile(join(served, "big.bin"), 16 * 1024 * 1024, 3);
  const client = await addCode(store, "client", { rights: "read-only" });
  const colleague = await addCode(store, "colleague");
  await using server = await startTestServer(served, { codeStore: store });
  await using session = await manualSession(
    server.port,
    codeSecret(client),
    codeIdentifier(client),
  );
  await session.send({ t: "get", path: "big.bin", offset: 0, prefixSha256: "" });
  const header = await session.next();
  assert.equal(header?.t, "file");
  assert.equal(await session.next(), undefined, "the first data record came");
  // The client stops reading; the server is in the middle of the file. Revoke, as the owner does.
  const revoked = await runFerry(["code", "revoke", "client", "--file", codeFile]);
  assert.equal(revoked.code, 0, revoked.stderr);
  await server.log.waitFor(/ code "client" revoked: it is refused/, CODE_CHECK_INTERVAL_MS * 5);
  await server.log.waitFor(/ code=client closed: code "client" was revoked/);
  await assert.rejects(async () => {
    while (true) await session.next();
  });
  await assert.rejects(connect(server.port, client), AuthenticationError);
  await using still = await connect(server.port, colleague);
  assert.deepEqual((await still.list("")).map((entry) => entry.name).sort(), [
    "big.bin",
    "projects",
    "readme.txt",
  ]);
});

Deno.test("a code added while the server runs works at once, without a restart", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  await using server = await startTestServer(served, { codeStore: store });
  const late = await addCode(store, "late", { rights: "read-only" });
  await using client = await connect(server.port, late);
  assert.equal(client.welcome.mode, "read-only");
  assert.match(await server.log.waitFor(/ code "late" added: /), /late \(\S{4}, read-only/);
});

// The store is never served

Deno.test("hostile client: the code store and its last-use file inside the served folder are never listed, read nor replaced", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, ".connection_code");
  const store = codeStorePath(codeFile);
  await Deno.writeTextFile(join(dir.path, "shared.txt"), "hello");
  await Deno.writeTextFile(`${codeFile}`, `${generateCode()}\n`, { mode: 0o600 });
  const colleague = await addCode(store, "colleague");
  await using server = await startTestServer(dir.path, {
    secret: undefined,
    codeFile,
    codeStore: store,
    uploadPrefix: "",
  });
  await (await connect(server.port, colleague)).close();
  await server.server.shutdown(1000); // writes the last-use file
  const used = await readLastUse(lastUsePath(store));
  assert.ok((used.get(codeIdentifier(colleague)) ?? 0) > Date.now() - 60_000, "its last use");
  await using again = await startTestServer(dir.path, {
    secret: undefined,
    codeFile,
    codeStore: store,
    uploadPrefix: "",
  });
  await using other = await connect(again.port, colleague);
  assert.deepEqual((await other.list("", { recursive: true })).map((entry) => entry.name), [
    "shared.txt",
  ]);
  await using local = await tempDir();
  const missing = await outcome(other.download("no-such-file", local.path, "x"));
  for (const name of [".connection_code", ".connection_codes", ".connection_codes.used"]) {
    // Refused by its name alone, the same whether it is there or not (secret_files_test.ts).
    const got = await outcome(other.download(name, local.path, "x"));
    assert.match(got, /^invalid-path: .*holds a connection code/, name);
    assert.notEqual(got, missing.replace("no-such-file", name), name);
    await Deno.writeTextFile(join(local.path, "evil"), "{}");
    const put = await outcome(other.upload(join(local.path, "evil"), "", name, { force: true }));
    assert.match(put, /^(not-found|invalid-path): /, name);
  }
  assert.equal((await readCodeStore(store))[0]!.name, "colleague", "the store is intact");
});

// Failed handshakes, per identifier

Deno.test("`IdentifierThrottle` takes a token per attempt, gives it back on success, refills, and stays bounded", () => {
  let now = 0;
  const throttle = new IdentifierThrottle({ burst: 3, perSecond: 2, maxUnknown: 100 }, () => now);
  for (let attempt = 0; attempt < 3; attempt++) assert.equal(throttle.admit("K7QD", true), 0);
  assert.equal(throttle.admit("K7QD", true), 500, "a token comes back in 1/2 s");
  assert.equal(throttle.admit("M2XP", true), 0, "other codes are not slowed");
  throttle.succeed("M2XP", true);
  now += 500;
  assert.equal(throttle.admit("K7QD", true), 0);
  assert.equal(throttle.admit("K7QD", true), 500);
  // Unknown identifiers are treated alike, and a flood of them stays bounded.
  for (let attempt = 0; attempt < 3; attempt++) assert.equal(throttle.admit("ZZZZ", false), 0);
  assert.equal(throttle.admit("ZZZZ", false), 500);
  for (let index = 0; index < 10_000; index++) throttle.admit(`U${index}`, false);
  assert.ok(throttle.size <= 100 + 2, `size ${throttle.size}`);
  assert.equal(throttle.admit("K7QD", true), 500, "the flood did not reset a code's count");
});

Deno.test("hostile client: guesses at one code from many addresses are slowed for that code only; an unknown identifier gets the same answer", async () => {
  const { base, served, store } = await sharedFolder();
  await using _base = base;
  const target = await addCode(store, "target");
  const bystander = await addCode(store, "bystander");
  await using server = await startTestServer(served, {
    codeStore: store,
    identifierThrottle: { burst: 2, perSecond: 0.01 },
  });
  const guessAt = (identifier: string) => `${identifier}${normaliseCode(generateCode())}`;
  const unknown = generateIdentifier(new Set([codeIdentifier(target), codeIdentifier(bystander)]));
  const results: Record<string, string[]> = { target: [], unknown: [] };
  const tried: [string, string][] = [["target", codeIdentifier(target)], ["unknown", unknown]];
  for (const [label, identifier] of tried) {
    for (let index = 0; index < 3; index++) {
      results[label]!.push(
        await viaAddress(server.port, `127.0.0.${2 + index}`, guessAt(identifier)),
      );
    }
  }
  const slowed = "refused: too many failed attempts with this code lately, wait 100 s";
  assert.deepEqual(results.target, ["AuthenticationError", "AuthenticationError", slowed]);
  assert.deepEqual(results.unknown, results.target, "an unknown identifier is answered alike");
  // The holders of another code are not slowed, even from an address that guessed.
  assert.equal(await viaAddress(server.port, "127.0.0.2", bystander), "in");
  assert.match(
    server.log.text(),
    new RegExp(
      `refused: too many failed attempts with this code lately, wait 100 s \\(identifier ${
        codeIdentifier(target)
      }, code target\\)`,
    ),
  );
});

/** Runs a handshake with `code` from the loopback address `source`; how it ended. */
async function viaAddress(port: number, source: string, code: string): Promise<string> {
  return await FerryClient.connect({
    hostname: "127.0.0.1",
    port,
    secret: codeSecret(code),
    identifier: codeIdentifier(code),
    dial: dialFrom(source),
  }).then(async (client) => {
    await client.close();
    return "in";
  }, (error) => error instanceof RefusedError ? `refused: ${error.reason}` : error.name);
}
