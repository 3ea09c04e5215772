/**
 * The `ferry connect` shell's pure parts: how a line splits into words, how a typed remote path
 * is resolved against the current remote folder, what Tab completes (against names given by a
 * stand-in for the server and the local disk), and that the help is laid out in columns. The
 * same behaviours on a real terminal are in connect_tty_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SHELL_COMMANDS, SHELL_HELP } from "../lib/cli/shell/commands.ts";
import {
  type Candidate,
  type CandidateSource,
  complete,
  MAX_COMPLETIONS,
} from "../lib/cli/shell/completion.ts";
import { displayRemoteFolder, resolveRemotePath } from "../lib/cli/shell/session.ts";
import { lastWord, type OpenQuote, quoteForWord, splitWords } from "../lib/cli/shell/words.ts";
import { UsageError } from "../lib/errors.ts";

Deno.test("splitWords() honours quotes, escapes and empty quoted words", () => {
  assert.deepEqual(splitWords(`get "my file.txt"  'it''s' a\\ b`), [
    "get",
    "my file.txt",
    "its",
    "a b",
  ]);
  assert.deepEqual(splitWords(`get "" x`), ["get", "", "x"]);
  assert.deepEqual(splitWords(`get "a\\"b"`), ["get", 'a"b']);
  assert.deepEqual(splitWords("get a\\"), ["get", "a\\"], "a final backslash stands for itself");
  assert.deepEqual(splitWords("  \t "), []);
  assert.throws(() => splitWords(`get "a`), UsageError);
});

Deno.test("quoteForWord() text reads back the same after any open quote", () => {
  const names = ["plain", "my file.txt", "it's", 'say "hi"', "back\\slash", "tab\tand\u00a0nbsp"];
  const quotes: [OpenQuote, string, string][] = [
    [undefined, "", ""],
    ["'", "'", "'"],
    ['"', '"', '"'],
  ];
  for (const name of names) {
    for (const [quote, open, close] of quotes) {
      const line = `get ${open}${quoteForWord(name, quote)}${close}`;
      assert.deepEqual(splitWords(line), ["get", name], line);
    }
  }
});

Deno.test("lastWord() finds the word under the cursor, its open quote and where it starts", () => {
  const word = lastWord(`get "photos/my fi`);
  assert.deepEqual(word.before, ["get"]);
  assert.equal(word.text, "photos/my fi");
  assert.equal(word.quote, '"');
  assert.equal(word.starts[7], `get "photos/`.length, "the name after the slash");
  const escaped = lastWord("ls my\\ ");
  assert.equal(escaped.text, "my ");
  assert.equal(escaped.quote, undefined);
  const fresh = lastWord("get a.txt ");
  assert.deepEqual(fresh.before, ["get", "a.txt"]);
  assert.equal(fresh.text, "");
  assert.equal(fresh.started, false);
});

Deno.test("resolveRemotePath() resolves ., .., / and the current folder, never above the top", () => {
  assert.deepEqual(resolveRemotePath([], "a/b"), ["a", "b"]);
  assert.deepEqual(resolveRemotePath(["a"], "b/./c/"), ["a", "b", "c"]);
  assert.deepEqual(resolveRemotePath(["a", "b"], ".."), ["a"]);
  assert.deepEqual(resolveRemotePath(["a", "b"], "/c"), ["c"]);
  assert.deepEqual(resolveRemotePath(["a"], ""), ["a"]);
  assert.deepEqual(resolveRemotePath(["a"], "//x//y"), ["x", "y"]);
  assert.throws(() => resolveRemotePath([], ".."), /leads above the served folder/);
  assert.throws(() => resolveRemotePath(["a"], "../../etc"), UsageError);
  assert.throws(() => resolveRemotePath([], "a\\b"), UsageError, "a backslash is refused");
  assert.throws(() => resolveRemotePath([], "bad\u001bname"), UsageError);
  assert.equal(displayRemoteFolder([]), "/");
  assert.equal(displayRemoteFolder(["a", "b\u001b"]), "/a/b\\x1b");
});

/** A server and a local disk made of name lists; it records which remote folders were listed. */
function fakeSource(
  remote: Record<string, Candidate[]>,
  local: Record<string, Candidate[]> = {},
): CandidateSource & { listed: string[] } {
  const listed: string[] = [];
  return {
    listed,
    remote(components) {
      listed.push(components.join("/"));
      return Promise.resolve(remote[components.join("/")]);
    },
    local(path) {
      return Promise.resolve(local[path]);
    },
  };
}

const file = (name: string): Candidate => ({ name, folder: false });
const folder = (name: string): Candidate => ({ name, folder: true });

const SERVER = fakeSource({
  "": [file("a.txt"), folder("photos"), file("my file.txt"), folder("my folder"), file(".hidden")],
  "photos": [folder("2024"), file("one.jpg"), file("two.jpg")],
  "photos/2024": [file("deep.png")],
});

/** The line after readline applies a completion (it replaces `replaced` at the end of the line). */
function applied(line: string, [hits, replaced]: [string[], string]): string {
  assert.equal(hits.length, 1, `one completion for ${line}: ${hits.join(", ")}`);
  assert.ok(line.endsWith(replaced));
  assert.ok(hits[0]!.startsWith(replaced), "readline inserts what follows the replaced part");
  return line.slice(0, line.length - replaced.length) + hits[0];
}

Deno.test("complete() completes command names at the start of the line", async () => {
  assert.equal(applied("pw", await complete("pw", [], SERVER)), "pwd ");
  const [hits] = await complete("l", [], SERVER);
  assert.deepEqual(hits.sort(), ["lcd ", "lpwd ", "ls "]);
  const [all] = await complete("", [], SERVER);
  assert.equal(all.length, SHELL_COMMANDS.length);
});

Deno.test("complete() completes remote paths, inside a subfolder too, from the current folder", async () => {
  assert.equal(applied("get ph", await complete("get ph", [], SERVER)), "get photos/");
  assert.equal(
    applied("get photos/2", await complete("get photos/2", [], SERVER)),
    "get photos/2024/",
  );
  assert.equal(
    applied("get photos/2024/", await complete("get photos/2024/", [], SERVER)),
    "get photos/2024/deep.png ",
  );
  assert.equal(applied("get o", await complete("get o", ["photos"], SERVER)), "get one.jpg ");
  assert.equal(applied("ls ../a", await complete("ls ../a", ["photos"], SERVER)), "ls ../a.txt ");
  assert.equal(
    applied("get -f /photos/t", await complete("get -f /photos/t", ["photos", "2024"], SERVER)),
    "get -f /photos/two.jpg ",
    "flags are not arguments; / is the top",
  );
});

Deno.test("complete() writes a name with a space so that it splits back as one word", async () => {
  // Both names start "my f": the shared part first, escaped, then the choice.
  const shared = applied("get my", await complete("get my", [], SERVER));
  assert.equal(shared, "get my\\ f");
  const [hits, replaced] = await complete(shared, [], SERVER);
  assert.deepEqual(hits, ["my\\ file.txt", "my\\ folder/"], "listed as they would be typed");
  assert.equal(replaced, "my\\ f");
  const line = applied("get my\\ fi", await complete("get my\\ fi", [], SERVER));
  assert.equal(line, "get my\\ file.txt ");
  assert.deepEqual(splitWords(line), ["get", "my file.txt"]);
  // Inside a quote the user opened, the quote is closed after a file.
  const quoted = applied(`get "my fi`, await complete(`get "my fi`, [], SERVER));
  assert.equal(quoted, `get "my file.txt" `);
  assert.deepEqual(splitWords(quoted), ["get", "my file.txt"]);
  // A backslash typed last escapes the first character completed.
  const pending = applied("get my\\", await complete("get my\\", [], SERVER));
  assert.equal(pending, "get my\\ f");
  const single = applied(`cd 'my`, await complete(`cd 'my`, [], SERVER));
  assert.equal(single, `cd 'my folder/`, "cd offers folders only");
});

Deno.test("complete() offers folders only where a folder is wanted, dotfiles only when typed", async () => {
  const [cd] = await complete("cd ", [], SERVER);
  assert.deepEqual(cd, ["my\\ folder/", "photos/"]);
  const [put] = await complete("put a.txt ", [], SERVER);
  assert.deepEqual(put, ["my\\ folder/", "photos/"], "put's second argument is a remote folder");
  assert.equal(applied("ls .", await complete("ls .", [], SERVER)), "ls .hidden ");
  const [none] = await complete("get a.txt x y ", [], SERVER);
  assert.deepEqual(none, [], "nothing after the last argument");
  const [unknown] = await complete("bogus ", [], SERVER);
  assert.deepEqual(unknown, []);
});

Deno.test("complete() completes local paths for put and lcd, and get's local target", async () => {
  const source = fakeSource({}, {
    "": [file("notes.txt"), folder("build")],
    "build/": [file("app.js")],
  });
  assert.equal(applied("put n", await complete("put n", [], source)), "put notes.txt ");
  assert.equal(
    applied("put build/", await complete("put build/", [], source)),
    "put build/app.js ",
  );
  assert.equal(applied("lcd b", await complete("lcd b", [], source)), "lcd build/");
  const [lcd] = await complete("lcd ", [], source);
  assert.deepEqual(lcd, ["build/"], "lcd offers folders only");
  assert.equal(
    applied("get a.txt b", await complete("get a.txt b", [], source)),
    "get a.txt build/",
  );
  assert.deepEqual(source.listed, [], "the server was not asked");
});

Deno.test("complete() never splits a character that takes two UTF-16 units", async () => {
  const source = fakeSource({ "": [file("x😀 one"), file("x😁 two")] });
  const [hits, replaced] = await complete("get x", [], source);
  assert.deepEqual(hits, ["x😀\\ one", "x😁\\ two"], "the shared part is only the x");
  assert.equal(replaced, "x");
  const escaped = applied("get x😀\\", await complete("get x😀\\", [], source));
  assert.equal(escaped, "get x😀\\ one ");
  assert.deepEqual(splitWords(escaped), ["get", "x😀 one"]);
});

Deno.test("complete() from a hostile server: names that would drive the terminal are not offered", async () => {
  const source = fakeSource({
    "": [
      file("evil\u001b[2Jname"),
      file("evil\u202etxt.exe"),
      file("evil\u200bok"),
      file("evident"),
    ],
  });
  assert.equal(applied("get evi", await complete("get evi", [], source)), "get evident ");
});

Deno.test("complete() a folder that cannot be listed, or too many matches, completes nothing", async () => {
  const failing: CandidateSource = {
    remote: () => Promise.reject(new Error("connection lost")),
    local: () => Promise.reject(new Deno.errors.NotFound("gone")),
  };
  assert.deepEqual((await complete("get a", [], failing))[0], []);
  assert.deepEqual((await complete("put a", [], failing))[0], []);
  assert.deepEqual((await complete("get ../x", [], SERVER))[0], [], "above the top");
  const many = fakeSource({
    "": Array.from({ length: MAX_COMPLETIONS + 1 }, (_, index) => file(`f${index}`)),
  });
  assert.deepEqual((await complete("get f", [], many))[0], []);
});

Deno.test("SHELL_HELP lists every command with its description in one column", () => {
  const lines = SHELL_HELP.split("\n").filter((line) => /^ {2}\S/.test(line));
  assert.equal(lines.length, SHELL_COMMANDS.length);
  const columns = lines.map((line) => /^ {2}\S.*?\S {2,}(?=\S)/.exec(line)![0].length);
  assert.equal(new Set(columns).size, 1, `descriptions start in one column:\n${lines.join("\n")}`);
  for (const command of SHELL_COMMANDS) {
    assert.ok(lines.some((line) => line.startsWith(`  ${command.usage} `)), command.usage);
  }
  assert.ok(SHELL_HELP.split("\n").every((line) => line.length <= 80), "fits 80 columns");
});
