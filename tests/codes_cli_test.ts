/**
 * The README's flow of issue 14 over the real CLI: one `ferry serve`, three codes handed out with
 * different rights (read-only, upload-only, read-write limited to a folder), each right tried with
 * `ls`, `get` and `put` (of a file, and of a folder, which makes folders), `ferry code list`, and
 * one code revoked while its holder's session is open: that session is closed, its code fails as a
 * wrong code, and the others keep working.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { normaliseCode } from "../lib/code.ts";
import { codeStorePath } from "../lib/code_store.ts";
import { CODE_CHECK_INTERVAL_MS } from "../lib/server/server.ts";
import {
  DENO,
  exists,
  MAIN,
  runFerry,
  type RunResult,
  startServe,
  tempDir,
  until,
} from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** A `ferry connect` whose commands are written to it one by one, as a script. */
function shell(address: string, codeFile: string) {
  const child = new Deno.Command(DENO, {
    args: ["run", "--no-prompt", "-A", MAIN, "connect", address, "--code-file", codeFile],
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  let stdout = "";
  let stderr = "";
  const decoder = new TextDecoder();
  const reading = Promise.all([
    child.stdout.pipeTo(
      new WritableStream({ write: (chunk) => void (stdout += decoder.decode(chunk)) }),
    ),
    child.stderr.pipeTo(
      new WritableStream({ write: (chunk) => void (stderr += decoder.decode(chunk)) }),
    ),
  ]);
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    run: (line: string) => writer.write(new TextEncoder().encode(`${line}\n`)).catch(() => {}),
    async end(): Promise<Deno.CommandStatus> {
      await writer.close().catch(() => {});
      const status = await child.status;
      await reading;
      return status;
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await writer.close().catch(() => {});
      await child.status;
      await reading.catch(() => {});
    },
  };
}

Deno.test("one server, three codes with their own rights: each right over the CLI, `ferry code list`, and one revoked while the others work", async (t) => {
  await using served = await tempDir("ferry-served-");
  await using keys = await tempDir("ferry-keys-");
  await using local = await tempDir("ferry-local-");
  const root = served.path;
  await Deno.mkdir(join(root, "projects", "alice"), { recursive: true });
  await Deno.writeTextFile(join(root, "readme.txt"), "hello");
  await Deno.writeTextFile(join(root, "projects", "alice", "plan.txt"), "alice's plan");
  await Deno.mkdir(join(local.path, "album", "2024"), { recursive: true });
  await Deno.writeTextFile(join(local.path, "album", "2024", "a.jpg"), "a photo");
  await Deno.writeTextFile(join(local.path, "note.txt"), "a note");

  // The owner's default code, and two named codes, before the server starts.
  const codeFile = join(keys.path, "code");
  const owner = ["--file", codeFile];
  const made = await runFerry(["code", ...owner]);
  assert.equal(made.code, 0, show(made));
  const add = async (...args: string[]) => {
    const result = await runFerry(["code", "add", ...args, ...owner]);
    assert.equal(result.code, 0, show(result));
    return result.stdout.trim();
  };
  const codes: Record<string, string> = {
    client: await add("client", "--read-only"),
    class: await add("class", "--upload-only", "--expires", "7d"),
  };
  await using serve = await startServe(root, { codeFile });
  // The third one while the server runs: no restart.
  codes.alice = await add("alice", "--scope", "projects/alice");

  // Each holder stores the code they were given, as the README says.
  const held: Record<string, string> = {};
  for (const [name, code] of Object.entries(codes)) {
    held[name] = join(local.path, `${name}.code`);
    const saved = await runFerry(["code", "--save", "--file", held[name]!], { stdin: code });
    assert.equal(saved.code, 0, show(saved));
  }
  const as = (name: string, ...args: string[]) =>
    runFerry([...args, "--code-file", held[name]!], { cwd: local.path });

  await t.step(
    "a read-only code lists and downloads; uploads and folders are refused",
    async () => {
      const listed = await as("client", "ls", serve.address);
      assert.equal(listed.code, 0, show(listed));
      assert.match(listed.stdout, /readme\.txt/);
      const got = await as("client", "get", serve.address, "readme.txt", "-o", "client-out");
      assert.equal(got.code, 0, show(got));
      assert.equal(await Deno.readTextFile(join(local.path, "client-out", "readme.txt")), "hello");
      for (const what of ["note.txt", "album"]) {
        const put = await as("client", "put", serve.address, what);
        assert.equal(put.code, 1, show(put));
        assert.match(put.stderr, /This code is read-only: uploads are refused/);
      }
      assert.ok(!await exists(join(root, "uploaded_note.txt")));
      assert.ok(!await exists(join(root, "uploaded_album")));
      // The shell's help says so too.
      const help = await runFerry(["connect", serve.address, "--code-file", held.client!], {
        stdin: "help\n",
      });
      assert.equal(help.code, 0, show(help));
      assert.match(help.stdout, /^Here you may list and download; uploads \(put\) are refused/m);
    },
  );

  await t.step(
    "an upload-only code uploads files and folders; listing and downloading are refused",
    async () => {
      for (const args of [["ls", serve.address], ["get", serve.address, "readme.txt"]]) {
        const refused = await as("class", ...args);
        assert.equal(refused.code, 1, show(refused));
        assert.match(
          refused.stderr,
          /This code is upload-only \(a drop box\): listing and downloading/,
        );
      }
      const put = await as("class", "put", serve.address, "note.txt");
      assert.equal(put.code, 0, show(put));
      const folder = await as("class", "put", serve.address, "album");
      assert.equal(folder.code, 0, show(folder));
      assert.equal(await Deno.readTextFile(join(root, "uploaded_note.txt")), "a note");
      assert.equal(
        await Deno.readTextFile(join(root, "uploaded_album", "2024", "a.jpg")),
        "a photo",
      );
    },
  );

  await t.step(
    "a code limited to a folder sees only it, and cannot name anything above",
    async () => {
      const listed = await as("alice", "ls", serve.address);
      assert.equal(listed.code, 0, show(listed));
      assert.deepEqual(
        listed.stdout.trim().split("\n").map((line) => line.split(/\s+/).at(-1)),
        ["plan.txt"],
      );
      const got = await as("alice", "get", serve.address, "plan.txt", "-o", "alice-out");
      assert.equal(got.code, 0, show(got));
      assert.equal(
        await Deno.readTextFile(join(local.path, "alice-out", "plan.txt")),
        "alice's plan",
      );
      const above = await as("alice", "get", serve.address, "readme.txt", "-o", "alice-out");
      assert.equal(above.code, 1, show(above));
      assert.match(above.stderr, /Cannot find "readme\.txt": no such file or folder/);
      const escape = await as("alice", "get", serve.address, "../readme.txt");
      assert.equal(escape.code, 2, show(escape));
      const put = await as("alice", "put", serve.address, "note.txt");
      assert.equal(put.code, 0, show(put));
      const folder = await as("alice", "put", serve.address, "album");
      assert.equal(folder.code, 0, show(folder));
      const inside = join(root, "projects", "alice");
      assert.equal(await Deno.readTextFile(join(inside, "uploaded_note.txt")), "a note");
      assert.ok(await exists(join(inside, "uploaded_album", "2024", "a.jpg")));
    },
  );

  await t.step(
    "`ferry code list` shows every code's rights, folder and expiry, never a secret",
    async () => {
      const listed = await runFerry(["code", "list", ...owner]);
      assert.equal(listed.code, 0, show(listed));
      const rows = listed.stdout.trim().split("\n").slice(1).map((line) => line.split(/\s{2,}/));
      assert.deepEqual(rows.map((row) => row.slice(0, 4)), [
        ["default", "-", "(server's mode)", "/"],
        ["client", normaliseCode(codes.client!).slice(0, 4), "read-only", "/"],
        ["class", normaliseCode(codes.class!).slice(0, 4), "upload-only", "/"],
        ["alice", normaliseCode(codes.alice!).slice(0, 4), "read-write", "projects/alice"],
      ]);
      assert.match(rows[2]![4]!, /^\d{4}-\d\d-\d\d \d\d:\d\d$/, "class expires");
      for (const code of Object.values(codes)) {
        assert.ok(!listed.stdout.includes(normaliseCode(code).slice(4)));
      }
    },
  );

  await t.step(
    "`ferry code revoke` while its holder is connected: the session is closed, the code fails as a wrong one, the others keep working",
    async () => {
      await using session = shell(serve.address, held.client!);
      await session.run("ls");
      await until(() => session.stdout().includes("readme.txt"), "the shell's first listing");
      const revoked = await runFerry(["code", "revoke", "client", ...owner]);
      assert.equal(revoked.code, 0, show(revoked));
      await until(
        () => / code=client closed: code "client" was revoked/.test(serve.log()),
        "the server to close the revoked code's session",
        CODE_CHECK_INTERVAL_MS * 5,
      );
      await session.run("ls");
      const status = await session.end();
      assert.equal(status.code, 1, `${session.stdout()}\n${session.stderr()}`);
      const again = await as("client", "ls", serve.address);
      assert.equal(again.code, 3, show(again));
      assert.match(again.stderr, /Wrong connection code/);
      await Deno.writeTextFile(join(local.path, "later.txt"), "later");
      const dropped = await as("class", "put", serve.address, "later.txt");
      assert.equal(dropped.code, 0, show(dropped));
      const listed = await as("alice", "ls", serve.address);
      assert.equal(listed.code, 0, show(listed));
      assert.match(listed.stdout, /uploaded_note\.txt/);
    },
  );

  await t.step("the server's log names the code of every connection and request", () => {
    const log = serve.log();
    for (const name of ["client", "class", "alice"]) {
      assert.match(log, new RegExp(` code=${name} authenticated$`, "m"));
    }
    assert.match(log, / code=client get readme\.txt: 5 bytes sent$/m);
    assert.match(log, / code=class put uploaded_note\.txt: 6 bytes received$/m);
    assert.match(log, / code=alice put uploaded_note\.txt: 6 bytes received$/m);
    assert.match(log, / code=client put refused: This code is read-only/);
    for (const code of Object.values(codes)) {
      assert.ok(!log.includes(normaliseCode(code).slice(4)), "no secret in the log");
    }
  });
});

Deno.test("`ferry serve` with its code file and code store inside the served folder serves neither", async () => {
  await using served = await tempDir("ferry-served-");
  const codeFile = join(served.path, ".connection_code");
  await Deno.writeTextFile(join(served.path, "shared.txt"), "hello");
  const made = await runFerry(["code", "--file", codeFile]);
  assert.equal(made.code, 0, show(made));
  const added = await runFerry(["code", "add", "colleague", "--file", codeFile]);
  assert.equal(added.code, 0, show(added));
  await using serve = await startServe(served.path, {
    codeFile,
    args: ["--upload-prefix", ""],
    permissions: [
      "--allow-net=127.0.0.1:0",
      `--allow-read=${served.path}`,
      `--allow-write=${served.path}`,
    ],
  });
  await using local = await tempDir("ferry-local-");
  const held = join(local.path, "held.code");
  await runFerry(["code", "--save", "--file", held], { stdin: added.stdout });
  const as = (...args: string[]) => runFerry([...args, "--code-file", held], { cwd: local.path });
  const listed = await as("ls", serve.address, "-R");
  assert.equal(listed.code, 0, show(listed));
  assert.doesNotMatch(listed.stdout, /connection_code/);
  assert.match(listed.stdout, /shared\.txt/);
  const store = codeStorePath(codeFile);
  for (const name of [".connection_code", ".connection_codes", ".connection_codes.used"]) {
    // Refused by name on both sides, whether the file is there or not (secret_files_test.ts).
    const got = await as("get", serve.address, name);
    assert.equal(got.code, 2, show(got));
    assert.match(got.stderr, /holds a connection code/);
    await Deno.writeTextFile(join(local.path, name), "{}");
    const put = await as("put", serve.address, `./${name}`, "--force");
    assert.equal(put.code, 2, show(put));
  }
  assert.match(await Deno.readTextFile(store), /"colleague"/, "the store is intact");
});
