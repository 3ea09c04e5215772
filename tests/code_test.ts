import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CODE_SYMBOLS,
  codeIdentifier,
  codeSecret,
  DEFAULT_IDENTIFIER,
  formatCode,
  generateCode,
  generateIdentifier,
  generateNamedCode,
  isIdentifier,
  looksLikeCode,
  normaliseCode,
} from "../lib/code.ts";
import { DEFAULT_CODE_FILE, readCodeFile, resolveCode, writeCodeFile } from "../lib/code_file.ts";
import { ExistsError, NotFoundError, UsageError } from "../lib/errors.ts";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const FORMATTED = /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/;
const CODE = "7K3M-Q9XD-2HFR-WB6T";
const OTHER_CODE = "N4PV-0SZG-J8CE-3YQA";
const isWindows = Deno.build.os === "windows";

// Known answers: the 80 bits 0, 1, 2, ... 15 (then 16 ... 31) packed 5 bits per symbol.
const BYTES_0_TO_15 = [0x00, 0x44, 0x32, 0x14, 0xc7, 0x42, 0x54, 0xb6, 0x35, 0xcf];
const BYTES_16_TO_31 = [0x84, 0x65, 0x3a, 0x56, 0xd7, 0xc6, 0x75, 0xbe, 0x77, 0xdf];

function fixedRandom(values: number[]): (bytes: Uint8Array) => Uint8Array {
  return (bytes) => {
    bytes.set(values);
    return bytes;
  };
}

function errorFrom<E extends Error>(type: new (...args: never[]) => E, action: () => unknown): E {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, nothing was thrown`);
}

async function rejectionFrom<E extends Error>(
  type: new (...args: never[]) => E,
  action: () => Promise<unknown>,
): Promise<E> {
  try {
    await action();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, nothing was thrown`);
}

/** Asserts that `message` holds neither `input` nor its normalised form nor any of its groups. */
function assertNoCode(message: string, input: string): void {
  const upper = message.toUpperCase();
  const pieces = [input, input.replace(/[\s_-]/g, ""), ...input.split(/[\s_-]+/)];
  for (const piece of pieces.filter((piece) => piece.length >= 4)) {
    assert.ok(!upper.includes(piece.toUpperCase()), `message contains ${piece}: ${message}`);
  }
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "ferry_code_test_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function insideDir(path: string): Disposable {
  const previous = Deno.cwd();
  Deno.chdir(path);
  return { [Symbol.dispose]: () => Deno.chdir(previous) };
}

function withEnv(name: string, value: string | undefined): Disposable {
  const previous = Deno.env.get(name);
  if (value === undefined) Deno.env.delete(name);
  else Deno.env.set(name, value);
  return {
    [Symbol.dispose]: () => {
      if (previous === undefined) Deno.env.delete(name);
      else Deno.env.set(name, previous);
    },
  };
}

function fileMode(info: Deno.FileInfo): number {
  assert.ok(info.mode !== null);
  return info.mode & 0o777;
}

// generateCode()

Deno.test("generateCode() makes 16 symbols of the alphabet in four dashed groups", () => {
  const code = generateCode();
  assert.match(code, FORMATTED);
  assert.equal(code.replaceAll("-", "").length, CODE_SYMBOLS);
});

Deno.test("generateCode() asks for exactly 10 random bytes", () => {
  const requested: number[] = [];
  generateCode((bytes) => {
    requested.push(bytes.length);
    return bytes;
  });
  assert.deepEqual(requested, [10]);
});

Deno.test("generateCode() maps 5 bits to each symbol, matching known answers", () => {
  assert.equal(generateCode(fixedRandom(Array(10).fill(0x00))), "0000-0000-0000-0000");
  assert.equal(generateCode(fixedRandom(Array(10).fill(0xff))), "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
  assert.equal(generateCode(fixedRandom(BYTES_0_TO_15)), "0123-4567-89AB-CDEF");
  assert.equal(generateCode(fixedRandom(BYTES_16_TO_31)), "GHJK-MNPQ-RSTV-WXYZ");
});

Deno.test("generateCode() uses every one of the 80 random bits", () => {
  const zero = generateCode(fixedRandom(Array(10).fill(0))).replaceAll("-", "");
  for (let bit = 0; bit < 80; bit++) {
    const bytes = Array(10).fill(0);
    bytes[bit >> 3] = 0x80 >> (bit & 7);
    const code = generateCode(fixedRandom(bytes)).replaceAll("-", "");
    const changed = [...code].flatMap((symbol, index) => symbol === zero[index] ? [] : [index]);
    assert.deepEqual(changed, [Math.floor(bit / 5)], `bit ${bit}`);
  }
});

Deno.test("generateCode() rejects a random source that returns the wrong length", () => {
  errorFrom(RangeError, () => generateCode(() => new Uint8Array(9)));
});

Deno.test("generateCode() gives 1000 distinct codes using every symbol", () => {
  const codes = new Set<string>();
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const code = generateCode();
    codes.add(code);
    for (const symbol of code.replaceAll("-", "")) seen.add(symbol);
  }
  assert.equal(codes.size, 1000);
  assert.deepEqual([...seen].sort().join(""), ALPHABET);
});

// normaliseCode(), formatCode(), codeSecret()

Deno.test("normaliseCode() and formatCode() round-trip a generated code", () => {
  for (let i = 0; i < 100; i++) {
    const code = generateCode();
    assert.equal(normaliseCode(code), code.replaceAll("-", ""));
    assert.equal(formatCode(normaliseCode(code)), code);
    assert.equal(formatCode(code), code);
  }
});

Deno.test("normaliseCode() accepts lowercase", () => {
  assert.equal(normaliseCode("7k3m-q9xd-2hfr-wb6t"), "7K3MQ9XD2HFRWB6T");
});

Deno.test("normaliseCode() ignores spaces, underscores, tabs, newlines and missing dashes", () => {
  for (
    const input of [
      "7K3MQ9XD2HFRWB6T",
      "7K3M Q9XD 2HFR WB6T",
      "7K3M_Q9XD_2HFR_WB6T",
      "  7K3M--Q9XD - 2HFR\tWB6T\r\n",
      "7-K-3-M-Q-9-X-D-2-H-F-R-W-B-6-T",
    ]
  ) {
    assert.equal(normaliseCode(input), "7K3MQ9XD2HFRWB6T", JSON.stringify(input));
  }
});

Deno.test("normaliseCode() maps look-alike letters", () => {
  assert.equal(normaliseCode("IiLl-Oo00-1111-2222"), "1111000011112222");
  assert.equal(formatCode("oilo-Q9XD-2HFR-WB6T"), "0110-Q9XD-2HFR-WB6T");
});

Deno.test("normaliseCode() rejects U and says where it is", () => {
  for (const input of ["7K3M-Q9XD-2HFR-WU6T", "7k3m-q9xd-2hfr-wu6t"]) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assert.match(error.message, /character 17 is a U/);
  }
});

Deno.test("normaliseCode() rejects characters outside the alphabet, non-ASCII included", () => {
  for (
    const input of [
      "7K3M-Q9XD-2HFR-W!6T",
      "7K3M-Q9XD-2HFR-WÉ6T",
      "7K3M-Q9XD-2HFR-W\u{FF22}6T", // fullwidth B
      "7K3M-Q9XD-2HFR-W\u{1F511}6T", // emoji, one character though two UTF-16 units
      "7K3M-Q9XD-2HFR-W\u{0131}6T", // dotless i, which toUpperCase() would turn into I
      "7K3M-Q9XD-2HFR-W\u{0000}6T",
    ]
  ) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assert.match(error.message, /^Invalid connection code: character 17 is not a letter or digit/);
  }
});

Deno.test("normaliseCode() rejects a wrong length and shows the expected shape", () => {
  for (
    const [input, count] of [
      ["7K3M-Q9XD-2HFR-WB6", 15],
      ["7K3M-Q9XD-2HFR-WB6TT", 17],
      ["7K3M-Q9XD", 8],
      ["K7QD-7K3M-Q9XD-2HFR-WB6", 19],
      ["K7QD-7K3M-Q9XD-2HFR-WB6T-7", 21],
    ] as const
  ) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assert.equal(
      error.message,
      `Invalid connection code: expected 16 characters like ABCD-EFGH-JKMN-PQRS, or 20 with an identifier in front, got ${count}`,
    );
  }
});

Deno.test("normaliseCode() and formatCode() take a named code: 4 symbols of identifier, then the secret", () => {
  assert.equal(normaliseCode("k7qd 7k3m q9xd 2hfr wb6t"), "K7QD7K3MQ9XD2HFRWB6T");
  assert.equal(formatCode("K7QD7K3MQ9XD2HFRWB6T"), "K7QD-7K3M-Q9XD-2HFR-WB6T");
  assert.equal(formatCode("k7qd-oilo-q9xd-2hfr-wb6t"), "K7QD-0110-Q9XD-2HFR-WB6T");
});

Deno.test("normaliseCode() reads the default identifier 0000 in front as the default code itself", () => {
  assert.equal(normaliseCode("0000-7K3M-Q9XD-2HFR-WB6T"), "7K3MQ9XD2HFRWB6T");
  assert.equal(normaliseCode("OOOO 7K3M Q9XD 2HFR WB6T"), "7K3MQ9XD2HFRWB6T");
  assert.equal(formatCode("0000-7K3M-Q9XD-2HFR-WB6T"), CODE);
});

Deno.test("codeIdentifier() is a named code's first 4 symbols, 0000 for a default code", () => {
  assert.equal(codeIdentifier("k7qd-7k3m-q9xd-2hfr-wb6t"), "K7QD");
  assert.equal(codeIdentifier(CODE), DEFAULT_IDENTIFIER);
  assert.equal(DEFAULT_IDENTIFIER, "0000");
  errorFrom(UsageError, () => codeIdentifier("K7QD"));
});

Deno.test("codeSecret() of a named code is its 16 secret symbols, without the identifier", () => {
  assert.deepEqual(
    codeSecret("K7QD-7K3M-Q9XD-2HFR-WB6T"),
    new TextEncoder().encode("7K3MQ9XD2HFRWB6T"),
  );
});

Deno.test("generateIdentifier() draws 20 bits, never 0000 nor a taken one", () => {
  assert.equal(generateIdentifier(new Set(), fixedRandom([0x84, 0x65, 0x3a])), "GHJK");
  assert.equal(generateIdentifier(new Set(), fixedRandom([0xff, 0xff, 0xf0])), "ZZZZ");
  // Zero bits would be 0000, the default code's: drawn again.
  const draws = [[0, 0, 0], [0x84, 0x65, 0x3a]];
  const random = (bytes: Uint8Array) => {
    bytes.set(draws.shift()!);
    return bytes;
  };
  assert.equal(generateIdentifier(new Set(), random), "GHJK");
  const taken = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const identifier = generateIdentifier(taken);
    assert.ok(isIdentifier(identifier) && identifier !== DEFAULT_IDENTIFIER, identifier);
    assert.ok(!taken.has(identifier));
    taken.add(identifier);
  }
  errorFrom(
    RangeError,
    () => generateIdentifier(new Set(["GHJK"]), fixedRandom([0x84, 0x65, 0x3a])),
  );
});

Deno.test("generateNamedCode() puts the identifier in front of a fresh 80-bit secret", () => {
  const code = generateNamedCode("K7QD", fixedRandom(BYTES_0_TO_15));
  assert.equal(code, "K7QD-0123-4567-89AB-CDEF");
  assert.match(generateNamedCode("K7QD"), /^K7QD(-[0-9A-HJKMNP-TV-Z]{4}){4}$/);
  errorFrom(RangeError, () => generateNamedCode(DEFAULT_IDENTIFIER));
  errorFrom(RangeError, () => generateNamedCode("k7qd"));
});

Deno.test("looksLikeCode() recognises a named code in any spelling, and its near misses", () => {
  for (
    const word of [
      "K7QD-7K3M-Q9XD-2HFR-WB6T",
      "k7qd7k3mq9xd2hfrwb6t",
      "K7QD 7K3M Q9XD 2HFR WB6",
      "K7QD-7K3M-Q9XD-2HFR-WB6TX",
    ]
  ) {
    assert.ok(looksLikeCode(word), word);
  }
  assert.ok(!looksLikeCode("photos-2024-summer-trip"));
  assert.ok(!looksLikeCode("./K7QD7K3MQ9XD2HFRWB6T"));
});

Deno.test("normaliseCode() rejects an empty or separator-only input", () => {
  for (const input of ["", "   ", "----", "\n"]) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assert.match(error.message, /expected 16 characters .*, got 0$/);
  }
});

Deno.test("normaliseCode() recognises a legacy numeric code and advises `ferry code --force`", () => {
  for (const input of ["483920", "483 920", "12345678901234567"]) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assert.match(error.message, /^Invalid connection code: expected 16 characters/);
    assert.match(error.message, /`ferry code --force`/);
  }
  // Letters that read as digits are not a legacy code.
  const error = errorFrom(UsageError, () => normaliseCode("LOL"));
  assert.doesNotMatch(error.message, /--force/);
});

Deno.test("normaliseCode() accepts a 16-digit code as a current code", () => {
  assert.equal(normaliseCode("4839-2012-3456-7890"), "4839201234567890");
});

Deno.test("normaliseCode() error messages never contain the input", () => {
  for (
    const input of [
      "7K3M-Q9XD-2HFR-WB6",
      "7K3M-Q9XD-2HFR-WB6TT",
      "7K3M-Q9XD-2HFR-WU6T",
      "7K3M-Q9XD-2HFR-WÉ6T",
      "7k3m q9xd 2hfr wb6",
      "483920",
      "48392012",
    ]
  ) {
    const error = errorFrom(UsageError, () => normaliseCode(input));
    assertNoCode(error.message, input);
    assert.ok(!error.message.includes("\n"), "one line");
  }
});

Deno.test("formatCode() groups the canonical symbols 4-4-4-4", () => {
  assert.equal(formatCode("7k3mq9xd2hfrwb6t"), CODE);
  errorFrom(UsageError, () => formatCode("7K3M"));
});

Deno.test("codeSecret() is the UTF-8 of the normalised code, whatever the spelling", () => {
  const expected = new TextEncoder().encode("7K3MQ9XD2HFRWB6T");
  assert.deepEqual(codeSecret(CODE), expected);
  assert.deepEqual(codeSecret(" 7k3m_q9xd_2hfr_wb6t\n"), expected);
  assert.deepEqual(codeSecret("OILO-Q9XD-2HFR-WB6T"), codeSecret("0110-Q9XD-2HFR-WB6T"));
  errorFrom(UsageError, () => codeSecret("7K3M"));
});

// writeCodeFile()

Deno.test("writeCodeFile() writes the formatted code alone on one line", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  await writeCodeFile(path, "7k3m q9xd 2hfr wb6t");
  assert.equal(await Deno.readTextFile(path), `${CODE}\n`);
});

Deno.test({
  name: "writeCodeFile() creates the file with mode 0600",
  ignore: isWindows,
  async fn() {
    await using dir = await tempDir();
    const path = join(dir.path, "code");
    await writeCodeFile(path, CODE);
    assert.equal(fileMode(await Deno.stat(path)), 0o600);
  },
});

Deno.test({
  name: "writeCodeFile() with force replaces a 0644 file by a new 0600 file",
  ignore: isWindows,
  async fn() {
    await using dir = await tempDir();
    const path = join(dir.path, "code");
    await Deno.writeTextFile(path, `${OTHER_CODE}\n`, { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    await writeCodeFile(path, CODE, { force: true });
    assert.equal(fileMode(await Deno.stat(path)), 0o600);
    assert.equal(await Deno.readTextFile(path), `${CODE}\n`);
  },
});

Deno.test({
  name: "writeCodeFile() replaces by rename, never rewriting the old file in place",
  ignore: isWindows,
  async fn() {
    await using dir = await tempDir();
    const path = join(dir.path, "code");
    const oldLink = join(dir.path, "old");
    await writeCodeFile(path, OTHER_CODE);
    await Deno.link(path, oldLink);
    await writeCodeFile(path, CODE, { force: true });
    assert.equal(await Deno.readTextFile(path), `${CODE}\n`);
    // A rename leaves the old inode, still reachable through the hard link, untouched.
    assert.equal(await Deno.readTextFile(oldLink), `${OTHER_CODE}\n`);
  },
});

Deno.test("writeCodeFile() leaves no temporary file behind", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, DEFAULT_CODE_FILE);
  await writeCodeFile(path, CODE);
  await writeCodeFile(path, OTHER_CODE, { force: true });
  await rejectionFrom(ExistsError, () => writeCodeFile(path, CODE));
  const names = await Array.fromAsync(Deno.readDir(dir.path), (entry) => entry.name);
  assert.deepEqual(names, [DEFAULT_CODE_FILE]);
});

Deno.test("writeCodeFile() keeps an existing file without force and names --force", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  await Deno.writeTextFile(path, `${OTHER_CODE}\n`);
  const error = await rejectionFrom(ExistsError, () => writeCodeFile(path, CODE));
  assert.match(error.message, /--force/);
  assert.ok(error.message.includes(path));
  assertNoCode(error.message, CODE);
  assert.equal(await Deno.readTextFile(path), `${OTHER_CODE}\n`);
});

Deno.test("writeCodeFile() overwrites an existing file with force", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  await Deno.writeTextFile(path, "old contents\n");
  await writeCodeFile(path, CODE, { force: true });
  assert.equal(await Deno.readTextFile(path), `${CODE}\n`);
});

Deno.test("writeCodeFile() rejects an invalid code before touching the disk", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  const error = await rejectionFrom(UsageError, () => writeCodeFile(path, "483920"));
  assertNoCode(error.message, "483920");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
});

Deno.test("writeCodeFile() reports a missing folder or a folder in the way", async () => {
  await using dir = await tempDir();
  const missing = await rejectionFrom(
    NotFoundError,
    () => writeCodeFile(join(dir.path, "nope", "code"), CODE),
  );
  assert.ok(missing.message.includes(join(dir.path, "nope")));
  const folder = await rejectionFrom(
    UsageError,
    () => writeCodeFile(dir.path, CODE, { force: true }),
  );
  assert.match(folder.message, /is a folder/);
});

// readCodeFile()

Deno.test("readCodeFile() returns the normalised code of a valid file", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  for (
    const contents of [`${CODE}\n`, CODE, "7k3m q9xd 2hfr wb6t\r\n", `\u{FEFF}${CODE}\n`]
  ) {
    await Deno.writeTextFile(path, contents);
    assert.equal(await readCodeFile(path), "7K3MQ9XD2HFRWB6T", JSON.stringify(contents));
  }
});

Deno.test("readCodeFile() reads back what writeCodeFile() wrote", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  const code = generateCode();
  await writeCodeFile(path, code);
  assert.equal(formatCode(await readCodeFile(path)), code);
});

Deno.test({
  name: "readCodeFile() accepts a file readable by group and others",
  ignore: isWindows,
  async fn() {
    await using dir = await tempDir();
    const path = join(dir.path, "code");
    await Deno.writeTextFile(path, `${CODE}\n`);
    await Deno.chmod(path, 0o644);
    assert.equal(await readCodeFile(path), "7K3MQ9XD2HFRWB6T");
  },
});

Deno.test("readCodeFile() of a missing file is a UsageError naming the path", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "missing");
  const error = await rejectionFrom(UsageError, () => readCodeFile(path));
  assert.equal(error.message, `Cannot read code file ${path}: it does not exist`);
});

Deno.test("readCodeFile() of an invalid file names the path, never the contents", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "code");
  for (const contents of ["7K3M-Q9XD-2HFR-WB6\n", "483920\n", "7K3M-Q9XD-2HFR-WU6T\n", ""]) {
    await Deno.writeTextFile(path, contents);
    const error = await rejectionFrom(UsageError, () => readCodeFile(path));
    assert.ok(error.message.startsWith(`Invalid connection code in ${path}: `), error.message);
    assertNoCode(error.message, contents.trim());
  }
});

Deno.test("readCodeFile() rejects a folder, a large file and non-UTF-8 bytes", async () => {
  await using dir = await tempDir();
  const folder = await rejectionFrom(UsageError, () => readCodeFile(dir.path));
  assert.match(folder.message, /is a folder/);

  const large = join(dir.path, "large");
  await Deno.writeTextFile(large, `${CODE}\n`.repeat(1000));
  const tooLarge = await rejectionFrom(UsageError, () => readCodeFile(large));
  assert.match(tooLarge.message, /larger than 1024 bytes/);
  assertNoCode(tooLarge.message, CODE);

  const binary = join(dir.path, "binary");
  await Deno.writeFile(binary, new Uint8Array([0x37, 0x4b, 0xff, 0xfe]));
  const notText = await rejectionFrom(UsageError, () => readCodeFile(binary));
  assert.match(notText.message, /not UTF-8 text/);
});

// resolveCode()

Deno.test("resolveCode() prefers --code-file over FERRY_CODE and ./.connection_code", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  const path = join(dir.path, "explicit");
  await writeCodeFile(path, CODE);
  await writeCodeFile(DEFAULT_CODE_FILE, generateCode());
  const result = await resolveCode({ codeFile: path, env: () => OTHER_CODE });
  assert.deepEqual(result, {
    code: "7K3MQ9XD2HFRWB6T",
    source: `--code-file ${path}`,
    path,
  });
});

Deno.test("resolveCode() prefers FERRY_CODE over ./.connection_code", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  await writeCodeFile(DEFAULT_CODE_FILE, OTHER_CODE);
  const asked: string[] = [];
  const result = await resolveCode({
    env: (name) => {
      asked.push(name);
      return "7k3m q9xd 2hfr wb6t";
    },
  });
  assert.deepEqual(result, { code: "7K3MQ9XD2HFRWB6T", source: "FERRY_CODE" });
  assert.deepEqual(asked, ["FERRY_CODE"]);
});

Deno.test("resolveCode() falls back to ./.connection_code in the current folder", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  await writeCodeFile(DEFAULT_CODE_FILE, CODE);
  for (const value of [undefined, ""]) {
    const result = await resolveCode({ env: () => value });
    assert.deepEqual(result, {
      code: "7K3MQ9XD2HFRWB6T",
      source: "./.connection_code",
      path: "./.connection_code",
    });
  }
});

Deno.test("resolveCode() reads FERRY_CODE from the environment when permitted", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  using _env = withEnv("FERRY_CODE", CODE);
  assert.deepEqual(await resolveCode(), { code: "7K3MQ9XD2HFRWB6T", source: "FERRY_CODE" });
});

Deno.test({
  name: "resolveCode() skips FERRY_CODE without env permission, never prompting",
  permissions: { read: true, write: true, env: false },
  async fn() {
    // Here any attempt to read FERRY_CODE throws, so success shows resolveCode() did not try.
    assert.notEqual(Deno.permissions.querySync({ name: "env" }).state, "granted");
    assert.throws(() => Deno.env.get("FERRY_CODE"), Deno.errors.NotCapable);
    await using dir = await tempDir();
    using _cwd = insideDir(dir.path);
    await writeCodeFile(DEFAULT_CODE_FILE, CODE);
    assert.deepEqual(await resolveCode(), {
      code: "7K3MQ9XD2HFRWB6T",
      source: "./.connection_code",
      path: "./.connection_code",
    });
  },
});

Deno.test("resolveCode() with no source says how to get a code", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  const error = await rejectionFrom(UsageError, () => resolveCode({ env: () => undefined }));
  assert.match(error.message, /^No connection code: \.\/\.connection_code does not exist/);
  assert.match(error.message, /`ferry code --save`/);
  assert.match(error.message, /FERRY_CODE/);
});

Deno.test("resolveCode() with no source asks, if it may, and saves nothing", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  const result = await resolveCode({ env: () => undefined, ask: () => Promise.resolve(CODE) });
  assert.deepEqual(result, { code: "7K3MQ9XD2HFRWB6T", source: "the prompt" });
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
  const asked = await resolveCode({
    env: () => CODE,
    ask: () => Promise.reject(new Error("asked although FERRY_CODE is set")),
  });
  assert.equal(asked.source, "FERRY_CODE");
});

Deno.test("resolveCode() does not fall back when --code-file is missing", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  await writeCodeFile(DEFAULT_CODE_FILE, CODE);
  const path = join(dir.path, "missing");
  const error = await rejectionFrom(
    UsageError,
    () => resolveCode({ codeFile: path, env: () => OTHER_CODE }),
  );
  assert.ok(error.message.includes(path));
});

Deno.test("resolveCode() rejects an invalid FERRY_CODE, naming it but not its value", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  await writeCodeFile(DEFAULT_CODE_FILE, CODE);
  for (const value of ["483920", "7K3M-Q9XD-2HFR-WB6", "7K3M-Q9XD-2HFR-WU6T"]) {
    const error = await rejectionFrom(UsageError, () => resolveCode({ env: () => value }));
    assert.ok(error.message.startsWith("Invalid connection code in FERRY_CODE: "), error.message);
    assertNoCode(error.message, value);
  }
});

Deno.test("resolveCode() rejects an invalid ./.connection_code, naming the file", async () => {
  await using dir = await tempDir();
  using _cwd = insideDir(dir.path);
  await Deno.writeTextFile(DEFAULT_CODE_FILE, "483920\n");
  const error = await rejectionFrom(UsageError, () => resolveCode({ env: () => undefined }));
  assert.match(error.message, /^Invalid connection code in \.\/\.connection_code: /);
  assert.match(error.message, /`ferry code --force`/);
  assertNoCode(error.message, "483920");
});
