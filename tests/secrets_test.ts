/**
 * No log line, message or output ever holds the connection code or key material (as croc's
 * `TestClientErrorsRedactSharedCodeAndDerivedSecrets`): a real `ferry serve` and real clients go
 * through success, a wrong code and hostile input, and every line they print is searched. A
 * static pass over `lib/` then looks for code that could print a secret in the first place.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join, relative } from "node:path";
import { codeSecret, formatCode, normaliseCode } from "../lib/code.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import {
  makeCodeFile,
  makeFile,
  runFerry,
  type RunResult,
  sha256File,
  startServe,
  tempDir,
} from "./_helpers.ts";
import { manualSession, rawConnect, readUntilClosed, writeRaw } from "./_hostile.ts";

/** Every spelling of `code` a leak could take: dashed or not, upper or lower case. */
function spellings(code: string): string[] {
  const forms = [formatCode(code), normaliseCode(code), formatCode(code).replaceAll("-", " ")];
  return [...forms, ...forms.map((form) => form.toLowerCase())];
}

/**
 * Blobs that look like 32 bytes or more of key material: runs of 32+ hex digits, or 40+ base64
 * characters mixing upper case, lower case and digits. `allowed` lists known harmless hex values
 * (SHA-256 of file contents).
 */
function keyLikeBlobs(text: string, allowed: ReadonlySet<string>): string[] {
  const hex = [...text.matchAll(/[0-9a-fA-F]{32,}/g)].map((match) => match[0])
    .filter((blob) => !allowed.has(blob.toLowerCase()));
  const base64 = [...text.matchAll(/[A-Za-z0-9+/_-]{40,}={0,2}/g)].map((match) => match[0])
    .filter((blob) => /[A-Z]/.test(blob) && /[a-z]/.test(blob) && /[0-9]/.test(blob));
  return [...hex, ...base64];
}

Deno.test("no log line or output of server and clients holds the code or key material", async () => {
  await using dir = await tempDir();
  await using local = await tempDir();
  await using out = await tempDir();
  await makeFile(join(dir.path, "a.bin"), 300_000, 1);
  await makeFile(join(local.path, "up.bin"), 200_000, 2);
  const wrongCodeFile = join(local.path, "wrong-code");
  const wrongCode = await makeCodeFile(wrongCodeFile);
  await using serve = await startServe(dir.path);
  const runs: RunResult[] = [];
  const run = async (args: string[], expected: number) => {
    const result = await runFerry(args, { cwd: local.path });
    strictEqual(result.code, expected, `ferry ${args.join(" ")}: ${result.stderr}`);
    runs.push(result);
  };
  const withCode = ["--code-file", serve.codeFile];

  // Success, in text and JSON.
  await run(["ls", serve.address, ...withCode], 0);
  await run(["ls", serve.address, "--json", ...withCode], 0);
  await run(["get", serve.address, "a.bin", "-o", out.path, "--json", ...withCode], 0);
  await run(["put", serve.address, join(local.path, "up.bin"), ...withCode], 0);
  await run(
    ["put", serve.address, join(local.path, "up.bin"), "--json", "--force", ...withCode],
    0,
  );
  // Failures of requests: missing file, existing target.
  await run(["get", serve.address, "missing.bin", "-o", out.path, ...withCode], 1);
  // The same bytes again are skipped as already there; different ones are refused.
  await run(["put", serve.address, join(local.path, "up.bin"), ...withCode], 0);
  await Deno.mkdir(join(local.path, "other"));
  await makeFile(join(local.path, "other", "up.bin"), 200_000, 3);
  await run(["put", serve.address, join(local.path, "other", "up.bin"), ...withCode], 1);
  // A wrong code, in text and JSON (the second is still within the free failures).
  await run(["ls", serve.address, "--code-file", wrongCodeFile], 3);
  await run(["ls", serve.address, "--json", "--code-file", wrongCodeFile], 3);
  // Hostile input: garbage instead of a handshake; a bit-flipped and an oversized record after it.
  const garbage = await rawConnect(serve.port);
  await writeRaw(garbage, crypto.getRandomValues(new Uint8Array(4096))).catch(() => {});
  await readUntilClosed(garbage);
  {
    await using session = await manualSession(serve.port, codeSecret(serve.code));
    session.alter = (bytes) => bytes.map((byte, index) => index === 9 ? byte ^ 1 : byte);
    await session.send({ t: "list", path: "", recursive: false });
    await readUntilClosed(session.conn);
  }
  {
    await using session = await manualSession(serve.port, codeSecret(serve.code));
    await writeRaw(session.conn, Uint8Array.of(RecordType.control, 0x7f, 0, 0, 0));
    await readUntilClosed(session.conn);
  }
  await run(["ls", serve.address, ...withCode], 0);
  strictEqual((await serve.stop("SIGTERM")).code, 0);

  const log = serve.log();
  ok(/authentication failed/.test(log) && /Record failed authentication/.test(log), log);
  const texts = [log, ...runs.flatMap((result) => [result.stdout, result.stderr])];
  const allowed = new Set([
    await sha256File(join(dir.path, "a.bin")),
    await sha256File(join(local.path, "up.bin")),
  ]);
  for (const text of texts) {
    for (const code of [serve.code, wrongCode]) {
      for (const spelling of spellings(code)) {
        ok(!text.includes(spelling), `a code appears in:\n${text}`);
      }
    }
    deepStrictEqual(keyLikeBlobs(text, allowed), [], `key-like material in:\n${text}`);
  }
});

/**
 * Places in `lib/` that interpolate or print a value named like a secret, each with the reason it
 * is harmless. A new match fails the test until it is fixed or added here with its reason.
 */
const ALLOWED_MENTIONS: Record<string, string> = {
  "lib/code_file.ts: ${formatCode(code)}": "writes the code file, which is its purpose",
  "lib/cli/code.ts: printLine(code)": "`ferry code` prints the new code for its owner",
  "lib/cli/serve.ts: ${code}": "`ferry serve` shows a code it has just created, once, to its owner",
  "lib/protocol/_fields.ts: ${key}": "the name of a JSON field",
};

/** Names that may hold the code or a key. */
const SECRET_NAME = "(?:code|secret|secrets|key|keys|isk|prs|password|sessionKey|k)";

Deno.test("no source in lib/ prints or interpolates a variable named code, secret, key or isk", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const patterns = [
    // `${code}`, `${formatCode(code)}`, but not `${error.code}`.
    new RegExp(`\\$\\{[^}]*?(?<![\\w.$#])${SECRET_NAME}(?![\\w$])[^}]*\\}`, "g"),
    // printLine(code), console.log(secret, ...), this.#log(isk)
    new RegExp(`\\b(?:console\\.\\w+|print\\w*|log|warn|error)\\(\\s*${SECRET_NAME}\\s*[,)]`, "g"),
    // "..." + code
    new RegExp(`["'\`]\\s*\\+\\s*${SECRET_NAME}\\b(?![.\\w])`, "g"),
  ];
  const found: string[] = [];
  const walk = async (folder: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        for (const pattern of patterns) {
          for (const match of text.matchAll(pattern)) {
            found.push(`${relative(root, path)}: ${match[0]}`);
          }
        }
      }
    }
  };
  await walk(join(root, "lib"));
  const unexplained = [...new Set(found)].filter((mention) => !(mention in ALLOWED_MENTIONS));
  deepStrictEqual(unexplained, []);
  // The allow-list stays honest: every entry still matches something.
  const stale = Object.keys(ALLOWED_MENTIONS).filter((mention) => !found.includes(mention));
  deepStrictEqual(stale, []);
});
