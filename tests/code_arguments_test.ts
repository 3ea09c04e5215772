/**
 * A newcomer's first mistakes with the connection code, over the real CLI: the code typed on the
 * command line (as a host, a path, an option's value, `--code`) is refused with exit status 2,
 * never echoed back, and the error says where the code goes instead (a code file, `--code-file`,
 * `FERRY_CODE`); the code file is kept out of git; and `ferry serve` warns before sharing a
 * folder that holds a git repository.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { formatCode, generateCode, normaliseCode } from "../lib/code.ts";
import { COMMANDS } from "../lib/cli/commands.ts";
import { makeFile, runFerry, type RunResult, startServe, tempDir } from "./_helpers.ts";

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** Every spelling of `code` an echo could take: as typed, dashed or not, either case. */
function spellings(typed: string): string[] {
  const forms = [typed];
  try {
    forms.push(formatCode(typed), normaliseCode(typed));
  } catch {
    // a near miss of a code: only the typed form can leak
  }
  return [...forms, ...forms.map((form) => form.toLowerCase())];
}

/**
 * Exit status 2, a one-line `ferry: ...` error first, a hint naming `--code-file` and `FERRY_CODE`,
 * and no spelling of `typed` anywhere in stdout or stderr.
 */
function assertRefusedUnshown(result: RunResult, typed: string): void {
  strictEqual(result.code, 2, show(result));
  ok(result.stderr.startsWith("ferry: "), show(result));
  ok(result.stderr.includes("--code-file"), `names --code-file\n${show(result)}`);
  ok(result.stderr.includes("FERRY_CODE"), `names FERRY_CODE\n${show(result)}`);
  ok(result.stderr.includes(".connection_code"), `names .connection_code\n${show(result)}`);
  for (const spelling of spellings(typed)) {
    ok(!result.stdout.includes(spelling), `stdout holds the code\n${show(result)}`);
    ok(!result.stderr.includes(spelling), `stderr holds the code\n${show(result)}`);
  }
}

Deno.test("a connection code typed as a host, path or option value is refused and never echoed", async () => {
  const code = generateCode();
  const lower = code.toLowerCase();
  const spaced = code.replaceAll("-", " ");
  const nearMiss = code.slice(0, -1); // one character short: still the secret, nearly
  const cases: [string, string[]][] = [
    [code, ["ls", code, "192.168.1.20"]],
    [code, ["ls", code]],
    [lower, ["ls", "192.168.1.20", lower]],
    [spaced, ["get", "192.168.1.20", spaced]],
    [code, ["get", "192.168.1.20", "notes.txt", code]],
    [normaliseCode(code), ["put", "192.168.1.20", normaliseCode(code)]],
    [code, ["connect", code]],
    [code, ["serve", code]],
    [nearMiss, ["ls", nearMiss, "192.168.1.20"]],
    [code, ["ls", "192.168.1.20", "--code-file", code]],
    [code, ["ls", "192.168.1.20", `--code-file=${code}`]],
    [code, ["ls", "192.168.1.20", `--${code}`]], // once "Unknown option --<code>"
    [code, ["ls", "192.168.1.20", "a", code]], // once "Too many arguments: <code>"
    [code, ["code", code]],
    [code, [code, "192.168.1.20"]], // once "Unknown command <code>"
    [code, ["help", code]],
  ];
  await Promise.all(cases.map(async ([typed, args]) => {
    assertRefusedUnshown(await runFerry(args, { timeoutMs: 20_000 }), typed);
  }));
});

Deno.test("--code and --code=VALUE are refused on every command without printing the value", async () => {
  const code = generateCode();
  const runs = COMMANDS.flatMap(({ spec }) => [
    [spec.name, "--code", code],
    [spec.name, `--code=${code}`],
    [spec.name, "192.168.1.20", "--code", "not-a-code-at-all"],
  ]);
  await Promise.all([...runs, ["--code", code]].map(async (args) => {
    const result = await runFerry(args, { timeoutMs: 20_000 });
    assertRefusedUnshown(result, code);
    ok(!result.stderr.includes("not-a-code-at-all"), show(result));
    ok(result.stderr.startsWith("ferry: There is no option --code"), show(result));
  }));
});

Deno.test("a file whose name looks like a code is still reached as ./NAME", async () => {
  await using dir = await tempDir();
  const name = "ABCDEFGH23456789";
  await makeFile(join(dir.path, name), 10);
  await using serve = await startServe(dir.path);
  const refused = await runFerry(["ls", serve.address, name, "--code-file", serve.codeFile]);
  assertRefusedUnshown(refused, name);
  ok(refused.stderr.includes("./NAME"), show(refused));
  const listed = await runFerry(["ls", serve.address, `./${name}`, "--code-file", serve.codeFile]);
  strictEqual(listed.code, 0, show(listed));
  ok(listed.stdout.includes(name), show(listed));
});

Deno.test("ferry serve warns on stderr before sharing a folder that holds a .git folder", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, ".git"));
  await using serve = await startServe(dir.path);
  const log = serve.log();
  const warning = log.split("\n").find((line) => line.startsWith("ferry: warning: "));
  ok(warning !== undefined, log);
  ok(warning.includes(".git folder") && warning.includes("history"), log);
  ok(log.indexOf(warning) < log.indexOf("Serving "), `warned before serving\n${log}`);
});

Deno.test("ferry serve gives no .git warning for a folder without one", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "sub", ".git"), { recursive: true }); // only below the top
  await Deno.writeTextFile(join(dir.path, ".gitignore"), "x\n");
  await using serve = await startServe(dir.path);
  ok(!serve.log().includes("warning"), serve.log());
});

Deno.test(".gitignore keeps .connection_code out of the repository, at its root and below", async () => {
  const text = await Deno.readTextFile(new URL("../.gitignore", import.meta.url));
  const lines = text.split("\n").map((line) => line.trim());
  ok(lines.includes("/.connection_code"), text);
  ok(lines.includes(".connection_code"), text);
});
