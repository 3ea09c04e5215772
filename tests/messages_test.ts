/**
 * Control messages as a specification: every type round-trips, and the decoders refuse anything a
 * hostile peer could send that is not exactly one well-formed message of the right direction.
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import {
  type ClientMessage,
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ServerMessage,
} from "../lib/protocol/messages.ts";
import { MAX_CONTROL_BYTES, MAX_LISTING_BATCH } from "../lib/protocol/constants.ts";

const SHA = "0123456789abcdef".repeat(4);
const utf8 = (text: string) => new TextEncoder().encode(text);
const json = (value: unknown) => utf8(JSON.stringify(value));

const CLIENT_MESSAGES: ClientMessage[] = [
  { t: "list", path: "photos/2024", recursive: false },
  { t: "list", path: "", recursive: true },
  { t: "get", path: "a/b.txt", offset: 0, prefixSha256: "", verify: false },
  { t: "get", path: "big.iso", offset: 1_048_576, prefixSha256: SHA, verify: true },
  {
    t: "put",
    dir: "inbox",
    name: "report.pdf",
    size: Number.MAX_SAFE_INTEGER,
    mode: 0o644,
    mtime: 1_700_000_000_000,
    force: true,
    ifIdentical: "",
    verify: true,
  },
  { t: "put-start", offset: 0 },
  { t: "put-end", sha256: SHA },
  { t: "mkdir", dir: "", name: "new folder", mode: 0o755, mtime: 0 },
  {
    t: "put",
    dir: "",
    name: "again.bin",
    size: 3,
    mode: 0o600,
    mtime: 0,
    force: false,
    ifIdentical: SHA,
    verify: false,
  },
  { t: "put-end", sha256: "" },
  { t: "put-cancel" },
  { t: "keepalive" },
  { t: "get", path: "first.txt", offset: 0, prefixSha256: "", verify: false, features: ["bundle"] },
];

const SERVER_MESSAGES: ServerMessage[] = [
  { t: "welcome", server: "ferry 0.1.0", mode: "read-write", maxUpload: -1 },
  { t: "welcome", server: "ferry", mode: "read-only", maxUpload: 0 },
  { t: "welcome", server: "ferry", mode: "upload-only", maxUpload: 1e12 },
  {
    t: "listing",
    entries: [
      { name: "a.txt", type: "file", size: 12, mtime: 1_700_000_000_000, mode: 0o644 },
      { name: "sub", type: "dir", size: 0, mtime: 0, mode: 0o755 },
    ],
    done: false,
  },
  { t: "listing", entries: [], done: true },
  { t: "file", size: 100, mtime: 5, mode: 0o600, offset: 50 },
  { t: "file-end", sha256: SHA },
  { t: "put-ready", offset: 0, prefixSha256: "" },
  { t: "put-ready", offset: 4096, prefixSha256: SHA },
  { t: "put-done", name: "inbox/uploaded_report.pdf", size: 3, sha256: SHA, skipped: false },
  { t: "mkdir-done", name: "uploaded_new folder" },
  { t: "error", code: "not-found", message: "No such file: a.txt" },
  { t: "put-done", name: "uploaded_again.bin", size: 3, sha256: SHA, skipped: true },
  { t: "welcome", server: "ferry", mode: "read-write", maxUpload: -1, features: ["bundle"] },
];

type Decoder = (bytes: Uint8Array) => unknown;
const DIRECTIONS: [string, Decoder, readonly (ClientMessage | ServerMessage)[]][] = [
  ["decodeClientMessage()", decodeClientMessage, CLIENT_MESSAGES],
  ["decodeServerMessage()", decodeServerMessage, SERVER_MESSAGES],
];

function assertRefused(decode: Decoder, bytes: Uint8Array, why: string): void {
  assert.throws(() => decode(bytes), ProtocolError, why);
}

/** A copy of `message` with `key` set to `value` (or removed when `value` is `undefined`). */
function withField(message: object, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = structuredClone(message) as Record<string, unknown>;
  if (value === undefined) delete copy[key];
  else copy[key] = value;
  return copy;
}

// Round trips

Deno.test("`encodeMessage()` and `decodeClientMessage()` round-trip every client message type", () => {
  const types = new Set(CLIENT_MESSAGES.map((message) => message.t));
  assert.deepEqual([...types].sort(), [
    "get",
    "keepalive",
    "list",
    "mkdir",
    "put",
    "put-cancel",
    "put-end",
    "put-start",
  ]);
  for (const message of CLIENT_MESSAGES) {
    assert.deepEqual(decodeClientMessage(encodeMessage(message)), message);
  }
});

Deno.test("`encodeMessage()` and `decodeServerMessage()` round-trip every server message type", () => {
  const types = new Set(SERVER_MESSAGES.map((message) => message.t));
  assert.deepEqual([...types].sort(), [
    "error",
    "file",
    "file-end",
    "listing",
    "mkdir-done",
    "put-done",
    "put-ready",
    "welcome",
  ]);
  for (const message of SERVER_MESSAGES) {
    assert.deepEqual(decodeServerMessage(encodeMessage(message)), message);
  }
});

Deno.test("decoders keep only the known fields of a message", () => {
  const decoded = decodeClientMessage(
    utf8('{"t":"put-start","offset":3,"extra":"ignored","__proto__":{"polluted":true}}'),
  );
  assert.deepEqual(decoded, { t: "put-start", offset: 3 });
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("decoders accept non-ASCII names and paths", () => {
  const message: ClientMessage = { t: "list", path: "Fotos/Übersicht/日本 🎉", recursive: false };
  assert.deepEqual(decodeClientMessage(encodeMessage(message)), message);
});

// Messages that are not messages

for (const [name, decode, messages] of DIRECTIONS) {
  Deno.test(`\`${name}\` refuses bytes that are not a JSON object`, () => {
    for (
      const text of [
        "",
        " ",
        "{",
        "not json",
        '{"t":"list",}',
        "null",
        "true",
        "42",
        '"list"',
        "[]",
        '[{"t":"list","path":"","recursive":false}]',
        '{"t":"list","path":"","recursive":false}{}',
      ]
    ) {
      assertRefused(decode, utf8(text), JSON.stringify(text));
    }
  });

  Deno.test(`\`${name}\` refuses invalid UTF-8`, () => {
    const prefix = utf8('{"t":"error","code":"x","message":"');
    const suffix = utf8('"}');
    for (
      const bad of [
        [0xff],
        [0xc0, 0xaf], // overlong "/"
        [0xed, 0xa0, 0x80], // UTF-16 surrogate encoded as UTF-8
        [0xe2, 0x82], // truncated sequence
        [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      ]
    ) {
      const bytes = new Uint8Array([...prefix, ...bad, ...suffix]);
      assertRefused(decode, bytes, bad.join(","));
    }
  });

  Deno.test(`\`${name}\` refuses an unknown or missing \`t\``, () => {
    for (const t of [undefined, null, "", "LIST", "list ", "hello", 1, ["list"], { t: "list" }]) {
      assertRefused(decode, json({ t, path: "", recursive: false }), `t = ${JSON.stringify(t)}`);
    }
  });

  Deno.test(`\`${name}\` refuses a message over MAX_CONTROL_BYTES before parsing it`, () => {
    const message = utf8('{"t":"list","path":"","recursive":false}');
    const padded = new Uint8Array(MAX_CONTROL_BYTES + 1).fill(0x20);
    padded.set(message);
    assert.throws(() => decode(padded), /exceeds the maximum/);
    assertRefused(decode, padded, "one byte over");
  });

  Deno.test(`\`${name}\` refuses each message with any field missing`, () => {
    for (const message of messages) {
      // `ifIdentical`, `skipped`, `verify`, `idleTimeoutMs` and `features` may be left out (they
      // default to "", false, false, "not said" and none).
      const optional = ["t", "ifIdentical", "skipped", "verify", "idleTimeoutMs", "features"];
      for (const key of Object.keys(message).filter((key) => !optional.includes(key))) {
        assertRefused(decode, json(withField(message, key, undefined)), `${message.t} - ${key}`);
      }
    }
  });

  Deno.test(`\`${name}\` refuses each message with any field of the wrong type`, () => {
    for (const message of messages) {
      for (const [key, value] of Object.entries(message)) {
        if (key === "t") continue;
        const wrong = typeof value === "string"
          ? [1, null, true, [value], { value }]
          : typeof value === "number"
          ? [String(value), null, true, [value], { value }]
          : typeof value === "boolean"
          ? [String(value), 1, 0, null]
          : [{}, "[]", null, 1];
        for (const bad of wrong) {
          assertRefused(
            decode,
            json(withField(message, key, bad)),
            `${message.t}.${key} = ${JSON.stringify(bad)}`,
          );
        }
      }
    }
  });

  Deno.test(`\`${name}\` refuses negative, fractional and unsafe integers in every integer field`, () => {
    for (const message of messages) {
      for (const [key, value] of Object.entries(message)) {
        if (typeof value !== "number") continue;
        const low = key === "maxUpload" ? -2 : -1;
        for (const bad of [low, -1e9, 0.5, 1.5, 2 ** 53, 2 ** 64, 1e308]) {
          assertRefused(
            decode,
            json(withField(message, key, bad)),
            `${message.t}.${key} = ${bad}`,
          );
        }
        // Numbers JSON.stringify cannot write, spelled by hand.
        const text = new TextDecoder().decode(json(withField(message, key, 0)));
        for (const spelling of ["1e400", "-0.0000001", "9007199254740993"]) {
          const bytes = utf8(text.replace(`"${key}":0`, `"${key}":${spelling}`));
          assertRefused(decode, bytes, `${message.t}.${key} = ${spelling}`);
        }
      }
    }
  });
}

Deno.test("decoders refuse a message sent in the wrong direction", () => {
  for (const message of CLIENT_MESSAGES) {
    assertRefused(
      decodeServerMessage,
      encodeMessage(message),
      `client's ${message.t} read as a server message`,
    );
  }
  for (const message of SERVER_MESSAGES) {
    assertRefused(
      decodeClientMessage,
      encodeMessage(message),
      `server's ${message.t} read as a client message`,
    );
  }
});

Deno.test("decoders accept a message of exactly MAX_CONTROL_BYTES", () => {
  const message = utf8('{"t":"put-start","offset":7}');
  const padded = new Uint8Array(MAX_CONTROL_BYTES).fill(0x20);
  padded.set(message);
  assert.deepEqual(decodeClientMessage(padded), { t: "put-start", offset: 7 });
});

Deno.test("`encodeMessage()` refuses a message over MAX_CONTROL_BYTES", () => {
  const message: ServerMessage = {
    t: "listing",
    entries: Array.from({ length: 200 }, (_, i) => ({
      name: `${i}-${"x".repeat(400)}`,
      type: "file" as const,
      size: 0,
      mtime: 0,
      mode: 0o644,
    })),
    done: true,
  };
  assert.throws(() => encodeMessage(message), RangeError);
});

// Strings

Deno.test("decoders refuse oversized strings", () => {
  const cases: [Decoder, object, string, number][] = [
    [decodeClientMessage, CLIENT_MESSAGES[0]!, "path", 8192],
    [decodeClientMessage, CLIENT_MESSAGES[2]!, "path", 8192],
    [decodeClientMessage, CLIENT_MESSAGES[4]!, "dir", 8192],
    [decodeClientMessage, CLIENT_MESSAGES[4]!, "name", 8192],
    [decodeClientMessage, CLIENT_MESSAGES[7]!, "name", 8192],
    [decodeServerMessage, SERVER_MESSAGES[0]!, "server", 128],
    [decodeServerMessage, SERVER_MESSAGES[9]!, "name", 8192],
    [decodeServerMessage, SERVER_MESSAGES[10]!, "name", 8192],
    [decodeServerMessage, SERVER_MESSAGES[11]!, "code", 64],
    [decodeServerMessage, SERVER_MESSAGES[11]!, "message", 1024],
  ];
  for (const [decode, message, key, limit] of cases) {
    const at = json(withField(message, key, "x".repeat(limit)));
    assert.doesNotThrow(() => decode(at), `${key} of ${limit} characters is accepted`);
    const over = json(withField(message, key, "x".repeat(limit + 1)));
    assertRefused(decode, over, `${key} of ${limit + 1} characters`);
  }
});

Deno.test("`decodeServerMessage()` refuses a listing entry with an oversized name", () => {
  const entry = { name: "x".repeat(8193), type: "file", size: 0, mtime: 0, mode: 0 };
  assertRefused(decodeServerMessage, json({ t: "listing", entries: [entry], done: true }), "name");
});

// Listings

Deno.test("`decodeServerMessage()` accepts a listing of MAX_LISTING_BATCH entries and refuses one more", () => {
  const entry = { name: "a", type: "file", size: 0, mtime: 0, mode: 0o644 };
  const full = { t: "listing", entries: Array(MAX_LISTING_BATCH).fill(entry), done: false };
  assert.equal((decodeServerMessage(json(full)) as { entries: unknown[] }).entries.length, 256);
  const over = { ...full, entries: Array(MAX_LISTING_BATCH + 1).fill(entry) };
  assertRefused(decodeServerMessage, json(over), "257 entries");
});

Deno.test("`decodeServerMessage()` refuses malformed listing entries", () => {
  const good = { name: "a", type: "file", size: 1, mtime: 2, mode: 0o644 };
  const bad: unknown[] = [
    null,
    "a",
    1,
    [good],
    { ...good, type: "symlink" },
    { ...good, type: "FILE" },
    { ...good, type: "" },
    { ...good, size: -1 },
    { ...good, size: 1.5 },
    { ...good, mtime: 8.64e15 + 1 },
    { ...good, mode: 0o1000 },
    { ...good, name: 7 },
    withField(good, "name", undefined),
    withField(good, "type", undefined),
  ];
  for (const entry of bad) {
    const message = { t: "listing", entries: [good, entry], done: true };
    assertRefused(decodeServerMessage, json(message), JSON.stringify(entry));
  }
  for (const entries of [null, {}, "[]", { length: 1, 0: good }]) {
    assertRefused(decodeServerMessage, json({ t: "listing", entries, done: true }), "entries");
  }
});

// Field values

Deno.test("decoders refuse a SHA-256 that is not 64 lowercase hex digits", () => {
  const bad = [
    SHA.toUpperCase(),
    SHA.slice(1),
    SHA + "0",
    SHA.slice(1) + "g",
    SHA.slice(1) + " ",
    " " + SHA.slice(1),
    "0x" + SHA.slice(2),
    "",
  ];
  for (const sha of bad) {
    const why = JSON.stringify(sha);
    if (sha === "") continue; // "not hashed" (no --verify) and "no prefix" are allowed
    assertRefused(decodeClientMessage, json({ t: "put-end", sha256: sha }), `put-end ${why}`);
    assertRefused(decodeServerMessage, json({ t: "file-end", sha256: sha }), `file-end ${why}`);
    assertRefused(
      decodeServerMessage,
      json({ t: "put-done", name: "a", size: 1, sha256: sha }),
      `put-done ${why}`,
    );
    assertRefused(
      decodeClientMessage,
      json({ t: "get", path: "a", offset: 0, prefixSha256: sha }),
      `get ${why}`,
    );
    assertRefused(
      decodeServerMessage,
      json({ t: "put-ready", offset: 0, prefixSha256: sha }),
      `put-ready ${why}`,
    );
  }
});

Deno.test("`decodeServerMessage()` takes a mode it does not know as a plain word, and refuses anything else", () => {
  // A newer server may name rights this client does not know: shown as they are, not refused.
  for (const mode of ["none", "read", "admin", "write-only", "list-only-2"]) {
    const message = { t: "welcome", server: "ferry", mode, maxUpload: -1 };
    assert.deepEqual(decodeServerMessage(json(message)), message);
  }
  for (
    const mode of ["READ-ONLY", "read-write ", "", "-x", "read\u001b[31m", "a".repeat(33), 3]
  ) {
    const message = { t: "welcome", server: "ferry", mode, maxUpload: -1 };
    assertRefused(decodeServerMessage, json(message), String(mode));
  }
});

Deno.test("feature lists (`welcome.features`, a request's `features`) are at most 16 plain words; anything else is refused", () => {
  const welcome = (features: unknown) =>
    json({ t: "welcome", server: "ferry", mode: "read-write", maxUpload: -1, features });
  const requests = (features: unknown) => [
    json({ t: "list", path: "", recursive: false, features }),
    json({ t: "get", path: "a", offset: 0, prefixSha256: "", features }),
    json({ t: "put", dir: "", name: "a", size: 0, mode: 0, mtime: 0, force: false, features }),
    json({ t: "mkdir", dir: "", name: "a", mode: 0, mtime: 0, features }),
  ];
  // Words this side does not know are kept: the caller ignores them.
  const known = ["bundle", "zstd-2", ...Array.from({ length: 14 }, (_, i) => `x${i}`)];
  assert.deepEqual((decodeServerMessage(welcome(known)) as { features: string[] }).features, known);
  for (const request of requests(known)) {
    assert.deepEqual((decodeClientMessage(request) as { features: string[] }).features, known);
  }
  assert.equal(
    "features" in
      decodeServerMessage(json({ t: "welcome", server: "f", mode: "none", maxUpload: 0 })),
    false,
    "absent from an older server's welcome",
  );
  assert.equal("features" in decodeClientMessage(json(CLIENT_MESSAGES[0])), false);
  for (
    const bad of [
      "bundle",
      {},
      null,
      [1],
      ["Bundle"],
      ["bundle\u001b[31m"],
      ["a".repeat(33)],
      [...known, "one-more"],
    ]
  ) {
    assertRefused(decodeServerMessage, welcome(bad), JSON.stringify(bad));
    for (const request of requests(bad)) {
      assertRefused(decodeClientMessage, request, JSON.stringify(bad));
    }
  }
});

Deno.test("decoders refuse a file mode above 0o777", () => {
  for (const mode of [0o1000, 0o4755, 0o1777, 0o100644, -1]) {
    const why = mode.toString(8);
    assertRefused(
      decodeClientMessage,
      json({ t: "put", dir: "", name: "a", size: 0, mode, mtime: 0, force: false }),
      `put mode ${why}`,
    );
    assertRefused(
      decodeClientMessage,
      json({ t: "mkdir", dir: "", name: "a", mode, mtime: 0 }),
      `mkdir mode ${why}`,
    );
    assertRefused(
      decodeServerMessage,
      json({ t: "file", size: 0, mtime: 0, mode, offset: 0 }),
      `file mode ${why}`,
    );
  }
  const top = { t: "file", size: 0, mtime: 0, mode: 0o777, offset: 0 };
  assert.deepEqual(decodeServerMessage(json(top)), top);
});

Deno.test("decoders refuse a modification time beyond the largest JavaScript date", () => {
  const mtime = 8.64e15 + 1;
  assertRefused(
    decodeClientMessage,
    json({ t: "mkdir", dir: "", name: "a", mode: 0, mtime }),
    "mkdir",
  );
  assertRefused(
    decodeServerMessage,
    json({ t: "file", size: 0, mtime, mode: 0, offset: 0 }),
    "file",
  );
});

Deno.test("`decodeClientMessage()` takes `ifIdentical` as optional, and only as a SHA-256 or empty", () => {
  const put = { t: "put", dir: "", name: "a", size: 1, mode: 0o644, mtime: 0, force: false };
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  assert.equal((decodeClientMessage(encode(put)) as { ifIdentical?: string }).ifIdentical, "");
  const sha = "ab".repeat(32);
  assert.equal(
    (decodeClientMessage(encode({ ...put, ifIdentical: sha })) as { ifIdentical?: string })
      .ifIdentical,
    sha,
  );
  for (const bad of ["AB".repeat(32), "xyz", 5, null]) {
    assert.throws(() => decodeClientMessage(encode({ ...put, ifIdentical: bad })), ProtocolError);
  }
});

Deno.test("`decodeServerMessage()` takes `skipped` on put-done as an optional boolean", () => {
  const done = { t: "put-done", name: "a", size: 1, sha256: "cd".repeat(32) };
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  assert.equal((decodeServerMessage(encode(done)) as { skipped?: boolean }).skipped, false);
  assert.equal(
    (decodeServerMessage(encode({ ...done, skipped: true })) as { skipped?: boolean }).skipped,
    true,
  );
  assert.throws(() => decodeServerMessage(encode({ ...done, skipped: "yes" })), ProtocolError);
});
