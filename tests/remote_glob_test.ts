/**
 * The remote glob matcher of `ferry get HOST 'photos/*.jpg'` (lib/client/remote_glob.ts): shell
 * patterns matched against single names, pure, never read as regular expressions.
 *
 * @module
 */
import assert from "node:assert/strict";
import { globMatcher, hasWildcard, isRemoteGlob } from "../lib/client/remote_glob.ts";
import { PathError, UsageError } from "../lib/errors.ts";

function matches(pattern: string, names: string[]): string[] {
  const test = globMatcher(pattern);
  return names.filter(test);
}

const NAMES = [
  "a.jpg",
  "b.jpg",
  "a.png",
  ".hidden.jpg",
  "ab.jpg",
  "x[1].jpg",
  "img_7.png",
  "é.jpg",
];

Deno.test("globMatcher() * matches any run of characters but not a leading dot", () => {
  assert.deepEqual(matches("*.jpg", NAMES), ["a.jpg", "b.jpg", "ab.jpg", "x[1].jpg", "é.jpg"]);
  assert.deepEqual(matches("*", [".a", "a", ".."]), ["a"]);
});

Deno.test("globMatcher() a pattern starting with a dot matches dotfiles", () => {
  assert.deepEqual(matches(".*", NAMES), [".hidden.jpg"]);
});

Deno.test("globMatcher() ? matches exactly one character, a non-ASCII one too", () => {
  assert.deepEqual(matches("?.jpg", NAMES), ["a.jpg", "b.jpg", "é.jpg"]);
});

Deno.test("globMatcher() [...] matches one character of a set, range or negated set", () => {
  assert.deepEqual(matches("[ab].jpg", NAMES), ["a.jpg", "b.jpg"]);
  assert.deepEqual(matches("img_[0-9].png", NAMES), ["img_7.png"]);
  assert.deepEqual(matches("[!a]*.jpg", NAMES), ["b.jpg", "x[1].jpg", "é.jpg"]);
  assert.deepEqual(matches("[^a]*.jpg", NAMES), ["b.jpg", "x[1].jpg", "é.jpg"]);
  assert.deepEqual(matches("[]a]", ["]", "a", "b"]), ["]", "a"]);
  assert.deepEqual(matches("[a-]", ["a", "-", "b"]), ["a", "-"]);
  assert.deepEqual(matches("[z-a]", ["a", "z", "-"]), []);
});

Deno.test("globMatcher() an unclosed [ is an ordinary character", () => {
  assert.deepEqual(matches("x[1*", ["x[1].jpg", "x1"]), ["x[1].jpg"]);
});

Deno.test("globMatcher() regular-expression characters are taken literally", () => {
  assert.deepEqual(matches("a.(b)+$|c{1}^\\d", ["a.(b)+$|c{1}^\\d", "aX(b)+$|c{1}^\\d"]), [
    "a.(b)+$|c{1}^\\d",
  ]);
  assert.deepEqual(matches("[.]x", [".x", "ax"]), []); // a leading dot needs a literal dot
  assert.deepEqual(matches("a[.^\\-]b", ["a.b", "a^b", "a\\b", "a-b", "axb"]), [
    "a.b",
    "a^b",
    "a\\b",
    "a-b",
  ]);
});

Deno.test("hasWildcard() sees *, ? and [", () => {
  assert.deepEqual(["a*", "a?", "a[", "a]", "plain"].map(hasWildcard), [
    true,
    true,
    true,
    false,
    false,
  ]);
});

Deno.test("isRemoteGlob() allows wildcards only in the last component", () => {
  assert.equal(isRemoteGlob("photos/*.jpg"), true);
  assert.equal(isRemoteGlob("photos/a.jpg"), false);
  assert.throws(() => isRemoteGlob("a/*/b"), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /^Only the last component .*"a\/\*\/b".*--no-glob/);
    return true;
  });
  assert.throws(() => isRemoteGlob("../*.jpg"), PathError);
});
