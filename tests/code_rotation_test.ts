/**
 * Replacing the connection code (`ferry code --force`) while a server runs: the new code is never
 * readable through the server, it is required of new connections at once, and sessions opened
 * with the old code are closed (THREAT_MODEL.md T59).
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { basename, join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { codeSecret, generateCode, normaliseCode } from "../lib/code.ts";
import { codeFileTemporaryPath, writeCodeFile } from "../lib/code_file.ts";
import { AuthenticationError } from "../lib/errors.ts";
import { CODE_CHECK_INTERVAL_MS } from "../lib/server/server.ts";
import { LocalStore } from "../lib/store/local.ts";
import { startTestServer } from "./_hostile.ts";
import { runFerry, startServe, tempDir } from "./_helpers.ts";

const CODE_FILE = ".connection_code";

Deno.test("codeFileTemporaryPath() names a hidden partial-transfer file beside the code file", () => {
  const path = codeFileTemporaryPath("/srv/share/.connection_code");
  ok(path.startsWith("/srv/share/.ferry-partial..connection_code."), path);
  ok(path !== codeFileTemporaryPath("/srv/share/.connection_code"), "each name is fresh");
});

Deno.test("a code file's temporary file inside the served folder is never listed nor served", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "shared.txt"), "hello");
  const temporary = codeFileTemporaryPath(join(dir.path, CODE_FILE));
  await Deno.writeTextFile(temporary, `${generateCode()}\n`);
  const store = await LocalStore.open(dir.path, { exclude: [join(dir.path, CODE_FILE)] });
  deepStrictEqual((await Array.fromAsync(store.entries(""))).map((entry) => entry.name), [
    "shared.txt",
  ]);
  await rejects(store.resolve(basename(temporary)));
});

Deno.test({
  name: "a client holding the old code never sees the new code while ferry code --force runs",
  async fn() {
    await using dir = await tempDir();
    await Deno.writeTextFile(join(dir.path, "shared.txt"), "hello");
    const codeFile = join(dir.path, CODE_FILE);
    const firstCode = generateCode();
    await writeCodeFile(codeFile, firstCode);
    await using server = await startTestServer(dir.path, {
      secret: undefined,
      codeFile,
      exclude: [codeFile],
    });
    await using attacker = await FerryClient.connect({
      hostname: "127.0.0.1",
      port: server.port,
      secret: codeSecret(firstCode),
    });
    // The old code's holder lists the folder as fast as it can, and downloads anything new, while
    // the owner replaces the code again and again (each replacement goes through a temporary file
    // in the served folder). Before the fix, the temporary files showed up in about one listing in
    // ten and their content was the new code.
    const newCodes = new Set<string>();
    const seen = new Set<string>();
    let rotating = true;
    const rotations = (async () => {
      for (let round = 0; round < 150 && rotating; round++) {
        const code = generateCode();
        newCodes.add(normaliseCode(code));
        await writeCodeFile(codeFile, code, { force: true });
      }
      rotating = false;
    })();
    const stolen: string[] = [];
    try {
      while (rotating) {
        for (const entry of await attacker.list("")) {
          seen.add(entry.name);
          if (entry.name === "shared.txt" || entry.type !== "file") continue;
          await using out = await tempDir();
          await attacker.download(entry.name, out.path, "loot");
          const loot = await Deno.readTextFile(join(out.path, "loot"));
          if (newCodes.has(normaliseCode(loot.trim()))) stolen.push(entry.name);
        }
      }
    } catch {
      // The server closes the old code's session once it notices the new code: that is the goal.
    } finally {
      rotating = false;
      await rotations;
    }
    deepStrictEqual(stolen, []);
    deepStrictEqual([...seen], ["shared.txt"]);
  },
});

Deno.test("a running server takes a replaced code at once and closes the old code's sessions", async () => {
  await using dir = await tempDir();
  await using codes = await tempDir();
  await Deno.writeTextFile(join(dir.path, "shared.txt"), "hello");
  const codeFile = join(codes.path, CODE_FILE);
  const oldCode = generateCode();
  await writeCodeFile(codeFile, oldCode);
  await using server = await startTestServer(dir.path, { secret: undefined, codeFile });
  const connect = (code: string) =>
    FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret: codeSecret(code) });

  await using before = await connect(oldCode);
  strictEqual((await before.list("")).length, 1);

  const newCode = generateCode();
  await writeCodeFile(codeFile, newCode, { force: true });
  // New connections: the old code fails at once, with no wait for the periodic check.
  await rejects(connect(oldCode), AuthenticationError);
  await using after = await connect(newCode);
  strictEqual((await after.list("")).length, 1);

  // The session opened with the old code is closed within the check interval; the new one stays.
  await server.log.waitFor(/closed: the connection code was replaced/, CODE_CHECK_INTERVAL_MS * 5);
  await rejects(before.list(""));
  strictEqual((await after.list("")).length, 1);
  ok(server.log.lines.some((line) => line.includes("connection code replaced")));
});

Deno.test("a code file that goes missing or turns invalid keeps the code in force, logged once", async () => {
  await using dir = await tempDir();
  await using codes = await tempDir();
  const codeFile = join(codes.path, CODE_FILE);
  const code = generateCode();
  await writeCodeFile(codeFile, code);
  await using server = await startTestServer(dir.path, { secret: undefined, codeFile });
  const connect = () =>
    FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret: codeSecret(code) });

  await Deno.writeTextFile(codeFile, "not a code\n");
  for (let attempt = 0; attempt < 3; attempt++) {
    await using client = await connect();
    strictEqual((await client.list("")).length, 0);
  }
  const problems = server.log.lines.filter((line) => line.includes("the code in force is kept"));
  strictEqual(problems.length, 1, problems.join("\n"));
  ok(!problems[0]!.includes(normaliseCode(code)), "the log never holds the code");

  await Deno.remove(codeFile);
  await using client = await connect();
  strictEqual((await client.list("")).length, 0);
});

Deno.test("ferry serve takes the code of `ferry code --force` without a restart", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  await using serve = await startServe(dir.path);
  const oldCodeFile = join(local.path, "old-code");
  await writeCodeFile(oldCodeFile, serve.code);

  const replaced = await runFerry(["code", "--force", "--file", serve.codeFile]);
  strictEqual(replaced.code, 0, replaced.stderr);
  const refused = await runFerry(["ls", serve.address, "--code-file", oldCodeFile]);
  strictEqual(refused.code, 3, refused.stderr);
  const listed = await runFerry(["ls", serve.address, "--code-file", serve.codeFile]);
  strictEqual(listed.code, 0, listed.stderr);
  ok(serve.log().includes("connection code replaced"), serve.log());
});
