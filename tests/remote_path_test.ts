import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { PathError } from "../lib/errors.ts";
import {
  joinRemotePath,
  MAX_NAME_BYTES,
  parseRemotePath,
  PARTIAL_PREFIX,
  partialNameFor,
  sanitizeForDisplay,
  validateLocalName,
  validateName,
  windowsNameProblem,
} from "../lib/protocol/remote_path.ts";

/** Hostile spellings a peer may send, each with what makes it hostile. */
const refused: [description: string, path: string][] = [
  ["a parent component", ".."],
  ["a parent component", "../x"],
  ["a parent component", "a/.."],
  ["a parent component", "a/../../x"],
  ["a parent component after a name", "a/b/../../../etc/passwd"],
  ["a parent component with a trailing slash", "../"],
  ["an absolute path", "/etc/passwd"],
  ["an absolute path", "/"],
  ["a UNC path", "//host/share"],
  ["a backslash traversal", "\\..\\x"],
  ["a backslash", "a\\b"],
  ["a Windows drive with a backslash", "C:\\x"],
  ["a NUL character", "x\u0000y"],
  ["an escape sequence", "\u001b[31m"],
  ["a newline", "a\nb"],
  ["a carriage return", "a\rb"],
  ["a tab", "a\tb"],
  ["a DEL character", "a\u007fb"],
  ["a C1 control (CSI)", "a\u009bb"],
  ["a partial file", ".ferry-partial.x"],
  ["a partial file in a folder", "a/.ferry-partial.b"],
  ["a partial file in another case", ".FERRY-PARTIAL.x"],
  ["a division slash", "\u2215etc"],
  ["a fraction slash", "a\u2044b"],
  ["a fullwidth solidus", "\uFF0Fetc"],
  ["a fullwidth reverse solidus", "a\uFF3Cb"],
  ["one dot leaders that look like a parent", "\u2024\u2024"],
  ["a two dot leader that looks like a parent", "\u2025/x"],
  ["fullwidth full stops that look like a parent", "\uFF0E\uFF0E/x"],
  ["a right-to-left override", "\u202Eexe.txt"],
  ["a left-to-right isolate", "a\u2066b"],
  ["a line separator", "a\u2028b"],
  ["a lone high surrogate", "\uD800"],
  ["a lone low surrogate", "a/\uDC00b"],
  ["a name of 300 characters", "n".repeat(300)],
  ["a name of 128 two-byte characters (256 bytes)", "\u00e9".repeat(128)],
  ["a path of 5000 characters", "a/".repeat(2500)],
  ["an empty component", "a//b"],
  ["an empty component after dots", "....//"],
  ['a "." component', "a/./b"],
  ['a second "./"', "././a"],
  ['a trailing "/."', "a/."],
];

/**
 * Names that only Windows cannot store: ordinary names on Linux and macOS (real source trees have
 * `aux.c`), so they travel, and a receiver on Windows refuses them (`validateLocalName`).
 */
const windowsOnly: [description: string, path: string][] = [
  ["a bare Windows drive", "c:"],
  ["a drive-relative Windows path", "C:foo"],
  ["a drive in a later component", "a/D:x"],
  ["an alternate data stream", "a.txt:hidden"],
  ["a character Windows reserves", "what?.txt"],
  ["a Windows device name", "CON"],
  ["a Windows device name with an extension", "con.txt"],
  ["a source file named like a device", "aux.c"],
  ["a Windows device name in lower case", "nul"],
  ["a Windows device name in a folder", "a/aux"],
  ["a serial port device", "COM1"],
  ["a printer port device with an extension", "LPT9.log"],
  ["a superscript port device", "COM\u00b9"],
  ["a device name followed by a space and an extension", "prn .txt"],
  ["a name ending with a dot", "a./"],
  ["a name ending with a dot", "a/b."],
  ["a name ending with a space", "trailing "],
];

for (const [description, path] of windowsOnly) {
  Deno.test(
    `${description} (${JSON.stringify(path)}) travels, and only a receiver on Windows refuses it`,
    () => {
      const components = parseRemotePath(path);
      ok(components.some((name) => windowsNameProblem(name) !== undefined));
      for (const name of components) validateLocalName(name, "linux");
      for (const name of components) validateLocalName(name, "darwin");
      throws(
        () => components.forEach((name) => validateLocalName(name, "windows")),
        (error) => error instanceof PathError && /Cannot store .* on Windows/.test(error.message),
      );
    },
  );
}

for (const [description, path] of refused) {
  Deno.test(
    `\`parseRemotePath()\` refuses ${description} (${JSON.stringify(path.slice(0, 40))})`,
    () => {
      throws(() => parseRemotePath(path), PathError);
    },
  );
}

/** Spellings that must be accepted, with the components they stand for. */
const accepted: [path: string, components: string[]][] = [
  ["", []],
  [".", []],
  ["./", []],
  ["a", ["a"]],
  ["a/b", ["a", "b"]],
  ["a/b/", ["a", "b"]],
  ["./a", ["a"]],
  ["./a/b/", ["a", "b"]],
  ["dir with spaces/file (1).txt", ["dir with spaces", "file (1).txt"]],
  ["ünïcödé.txt", ["ünïcödé.txt"]],
  ["日本語", ["日本語"]],
  ["emoji 👩‍💻.png", ["emoji 👩‍💻.png"]],
  [".hidden", [".hidden"]],
  ["...", ["..."]],
  ["a..b", ["a..b"]],
  ["..a", ["..a"]],
  [" leading space", [" leading space"]],
  ["%2e%2e", ["%2e%2e"]],
  ["%2e%2e/x", ["%2e%2e", "x"]],
  ["CONSOLE", ["CONSOLE"]],
  ["com10", ["com10"]],
  ["12:30 notes.txt", ["12:30 notes.txt"]],
  [".ferry-partialx", [".ferry-partialx"]],
  ["n".repeat(MAX_NAME_BYTES), ["n".repeat(MAX_NAME_BYTES)]],
  [Array(16).fill("n".repeat(255)).join("/"), Array(16).fill("n".repeat(255))],
];

for (const [path, components] of accepted) {
  Deno.test(`\`parseRemotePath()\` accepts ${JSON.stringify(path.slice(0, 40))}`, () => {
    deepStrictEqual(parseRemotePath(path), components);
  });
}

Deno.test("`parseRemotePath()` keeps percent signs as a literal name, not an escape", () => {
  deepStrictEqual(parseRemotePath("%2e%2e/%2f"), ["%2e%2e", "%2f"]);
});

Deno.test("`parseRemotePath()` names the reason and shows the path sanitised", () => {
  throws(() => parseRemotePath("../x"), {
    name: "PathError",
    message: 'Refused path "../x": it contains a parent component ".."',
  });
  throws(() => parseRemotePath("\u001b[2J"), (error: unknown) => {
    ok(error instanceof PathError);
    strictEqual(error.message, 'Refused path "\\x1b[2J": it contains a control character (U+001B)');
    return true;
  });
  throws(() => parseRemotePath("/etc"), { message: /: it is absolute$/ });
  throws(() => parseRemotePath("a\\b"), { message: /: it contains a backslash$/ });
  throws(() => parseRemotePath("x\u202ey"), { message: /\\u202e.*\(U\+202E\)$/ });
});

Deno.test("`parseRemotePath()` keeps the message of an over-long path short", () => {
  throws(() => parseRemotePath("a".repeat(100_000)), (error: unknown) => {
    ok(error instanceof PathError);
    ok(error.message.length < 300, error.message);
    match(error.message, /longer than 4096 bytes/);
    return true;
  });
});

Deno.test("`parseRemotePath()` refuses values that are not strings", () => {
  throws(() => parseRemotePath(42 as unknown as string), PathError);
  throws(() => parseRemotePath(null as unknown as string), PathError);
});

Deno.test("`validateName()` accepts a plain name and refuses slashes and dots", () => {
  validateName("report.pdf");
  validateName("AUX.tar.gz"); // Windows-only problems are the receiver's (see above)
  for (const name of ["", ".", "..", "a/b", "a\\b", "\u0000", "\t"]) {
    throws(() => validateName(name), PathError, JSON.stringify(name));
  }
});

Deno.test("`joinRemotePath()` gives the canonical form that parses back", () => {
  strictEqual(joinRemotePath([]), "");
  strictEqual(joinRemotePath(["a", "b c", "d.txt"]), "a/b c/d.txt");
  deepStrictEqual(parseRemotePath(joinRemotePath(parseRemotePath("./a/b/"))), ["a", "b"]);
  throws(() => joinRemotePath(["a", ".."]), PathError);
  throws(() => joinRemotePath(["a/b"]), PathError);
});

Deno.test("`sanitizeForDisplay()` escapes control characters", () => {
  strictEqual(sanitizeForDisplay("\u001b[31mred\u0007"), "\\x1b[31mred\\x07");
  strictEqual(sanitizeForDisplay("a\nb\rc\td\u0000"), "a\\x0ab\\x0dc\\x09d\\x00");
  strictEqual(sanitizeForDisplay("del\u007f c1\u009b"), "del\\x7f c1\\x9b");
});

Deno.test("`sanitizeForDisplay()` escapes invisible characters, so look-alike names differ", () => {
  strictEqual(sanitizeForDisplay("report\u200b.pdf"), "report\\u200b.pdf");
  strictEqual(
    sanitizeForDisplay("a\u200cb\u2060c\ufeffd\u00ade"),
    "a\\u200cb\\u2060c\\ufeffd\\xade",
  );
  strictEqual(sanitizeForDisplay("\u3164.txt"), "\\u3164.txt", "a Hangul filler");
  strictEqual(
    sanitizeForDisplay("invoice\u{e0041}\u{e007f}.pdf"),
    "invoice\\u{e0041}\\u{e007f}.pdf",
    "tag characters",
  );
  strictEqual(
    sanitizeForDisplay("a\ufe0f.txt"),
    "a\\ufe0f.txt",
    "a variation selector after a letter",
  );
  strictEqual(sanitizeForDisplay("x\u200d.txt"), "x\\u200d.txt", "a joiner between letters");
  for (
    const name of ["report.pdf", "café.txt", "日本語.md", "❤\ufe0f.png", "👩\u200d💻 notes.txt"]
  ) {
    strictEqual(sanitizeForDisplay(name), name, "visible text and emoji stay as they are");
  }
});

Deno.test("`sanitizeForDisplay()` escapes bidi overrides and lone surrogates", () => {
  strictEqual(sanitizeForDisplay("\u202Eexe.txt"), "\\u202eexe.txt");
  strictEqual(sanitizeForDisplay("a\u2066b\u2069"), "a\\u2066b\\u2069");
  strictEqual(sanitizeForDisplay("x\u2028y"), "x\\u2028y");
  strictEqual(sanitizeForDisplay("\uD800"), "\\ud800");
});

Deno.test("`sanitizeForDisplay()` keeps ordinary text, Unicode and emoji", () => {
  for (const text of ["plain.txt", "ünïcödé 日本語", "👩‍💻 ok", "C:\\path", ""]) {
    strictEqual(sanitizeForDisplay(text), text);
  }
});

Deno.test("`partialNameFor()` prefixes a short name", () => {
  strictEqual(partialNameFor("movie.mkv"), `${PARTIAL_PREFIX}movie.mkv`);
  const fits = "n".repeat(MAX_NAME_BYTES - PARTIAL_PREFIX.length);
  strictEqual(partialNameFor(fits), PARTIAL_PREFIX + fits);
});

Deno.test("`partialNameFor()` hashes a name too long to prefix", async () => {
  const long = "n".repeat(MAX_NAME_BYTES);
  const partial = partialNameFor(long);
  match(partial, /^\.ferry-partial\.[0-9a-f]{32}$/);
  strictEqual(partialNameFor(long), partial);
  ok(partialNameFor("m".repeat(MAX_NAME_BYTES)) !== partial);
  // Cross-checked with WebCrypto: the first 32 hex digits of the name's SHA-256.
  const expected = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(long)),
  );
  strictEqual(partial, PARTIAL_PREFIX + toHex(expected).slice(0, 32));
});

Deno.test("`partialNameFor()` gives a name that listings hide and peers cannot address", () => {
  throws(() => parseRemotePath(partialNameFor("a.txt")), PathError);
  throws(() => partialNameFor("../x"), PathError);
});

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
