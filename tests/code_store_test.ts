/**
 * The store of a server's named codes (lib/code_store.ts) and `ferry code add|list|revoke` on it:
 * one file, mode 0600, written atomically and in turns; never a secret in a message or a listing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { codeIdentifier, codeSecret, normaliseCode } from "../lib/code.ts";
import {
  codeStorePath,
  CodeStoreWatch,
  formatCodeStore,
  lastUsePath,
  type NamedCode,
  normaliseScope,
  parseCodeStore,
  readCodeStore,
  readLastUse,
  updateCodeStore,
  validateCodeName,
  writeLastUse,
} from "../lib/code_store.ts";
import { parseDuration } from "../lib/cli/common.ts";
import { UsageError } from "../lib/errors.ts";
import { runFerry, type RunResult, tempDir } from "./_helpers.ts";

const CLIENT: NamedCode = {
  name: "client",
  identifier: "K7QD",
  secret: "7K3MQ9XD2HFRWB6T",
  rights: "read-only",
  scope: "",
  created: Date.parse("2025-05-01T10:00:00Z"),
};
const CLASS: NamedCode = {
  name: "class-5b",
  identifier: "M2XP",
  secret: "N4PV0SZGJ8CE3YQA",
  rights: "upload-only",
  scope: "inbox/5b",
  expires: Date.parse("2025-06-01T00:00:00Z"),
  created: Date.parse("2025-05-01T10:00:00Z"),
};

function show(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

function storeText(codes: unknown[]): string {
  return JSON.stringify({ ferry: "connection codes", version: 1, codes });
}

// The file

Deno.test("`codeStorePath()` and `lastUsePath()` put the store and its record beside the code file", () => {
  assert.equal(codeStorePath("./.connection_code"), "./.connection_codes");
  assert.equal(codeStorePath("/etc/ferry/code"), "/etc/ferry/codes");
  assert.equal(lastUsePath("./.connection_codes"), "./.connection_codes.used");
});

Deno.test("`formatCodeStore()` writes one code per line, and `parseCodeStore()` reads it back", () => {
  const text = formatCodeStore([CLIENT, CLASS]);
  assert.equal(text.split("\n").length, 5); // header, two codes, footer, final newline
  assert.deepEqual(parseCodeStore(text, "s"), [CLIENT, CLASS]);
  assert.deepEqual(parseCodeStore(formatCodeStore([]), "s"), []);
});

Deno.test("`parseCodeStore()` refuses a damaged store, naming the file and the entry, never a secret", () => {
  const entry = JSON.parse(formatCodeStore([CLIENT]).split("\n")[1]!.replace(/,$/, ""));
  const cases: [string, RegExp][] = [
    ["not json", /it is not JSON/],
    ["[]", /not a ferry code store/],
    [JSON.stringify({ ferry: "connection codes", version: 9, codes: [] }), /version 9/],
    [
      storeText([{ ...entry, secret: "7K3MQ9XD2HFRWB6" }]),
      /code 1 \("client"\) has no valid "secret"/,
    ],
    [storeText([{ ...entry, secret: "7k3mq9xd2hfrwb6t" }]), /has no valid "secret"/],
    [storeText([{ ...entry, identifier: "0000" }]), /has no valid "identifier"/],
    [storeText([{ ...entry, rights: "admin" }]), /has no valid "rights"/],
    [storeText([{ ...entry, scope: "../etc" }]), /has no valid "scope"/],
    [storeText([{ ...entry, scope: "/etc" }]), /has no valid "scope"/],
    [storeText([{ ...entry, expires: "soon" }]), /has no valid "expires"/],
    [storeText([{ ...entry, name: "default" }]), /code 1 has no valid "name"/],
    [storeText([{ ...entry, name: "a b" }]), /code 1 has no valid "name"/],
    [storeText([entry, { ...entry, identifier: "M2XP" }]), /the name "client" is there twice/],
    [storeText([entry, { ...entry, name: "other" }]), /the identifier K7QD is there twice/],
  ];
  for (const [text, problem] of cases) {
    assert.throws(
      () => parseCodeStore(text, "./.connection_codes"),
      (error: Error) => {
        assert.ok(error instanceof UsageError, String(error));
        assert.match(error.message, /^Invalid code store \.\/\.connection_codes: /);
        assert.match(error.message, problem);
        assert.ok(!error.message.includes(CLIENT.secret), error.message);
        return true;
      },
      text,
    );
  }
});

Deno.test("`parseCodeStore()` ignores fields it does not know (a newer ferry's)", () => {
  const entry = JSON.parse(formatCodeStore([CLIENT]).split("\n")[1]!.replace(/,$/, ""));
  assert.deepEqual(parseCodeStore(storeText([{ ...entry, note: "for Ann" }]), "s"), [CLIENT]);
});

Deno.test("`readCodeStore()` of a missing or empty file holds no codes", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  assert.deepEqual(await readCodeStore(path), []);
  await Deno.writeTextFile(path, "");
  assert.deepEqual(await readCodeStore(path), []);
});

Deno.test("`updateCodeStore()` writes mode 0600 through a renamed temporary file", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  await Deno.writeTextFile(path, "", { mode: 0o644 });
  Deno.chmodSync(path, 0o644);
  const before = Deno.statSync(path).ino;
  await updateCodeStore(path, () => [CLIENT]);
  assert.equal(mode(path), 0o600);
  assert.notEqual(Deno.statSync(path).ino, before, "a new file took the name");
  assert.deepEqual(await readCodeStore(path), [CLIENT]);
  assert.deepEqual([...Deno.readDirSync(dir.path)].map((entry) => entry.name), ["codes"]);
});

Deno.test("`updateCodeStore()` leaves nothing behind when its change is refused", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  await assert.rejects(
    updateCodeStore(path, () => {
      throw new UsageError("no");
    }),
    UsageError,
  );
  assert.deepEqual([...Deno.readDirSync(dir.path)], []);
  await updateCodeStore(path, () => [CLIENT]);
  const text = await Deno.readTextFile(path);
  await assert.rejects(updateCodeStore(path, () => Promise.reject(new UsageError("no"))));
  assert.equal(await Deno.readTextFile(path), text, "the store is as it was");
});

Deno.test("`updateCodeStore()` changes made at once take turns: none is lost", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  const identifiers = ["AAAA", "BBBB", "CCCC", "DDDD", "EEEE", "FFFF", "GGGG", "HHHH"];
  await Promise.all(identifiers.map((identifier, index) =>
    updateCodeStore(path, async (codes) => {
      // Widen the window between the read and the write.
      await new Promise((resolve) => setTimeout(resolve, 5));
      return [...codes, { ...CLIENT, name: `c${index}`, identifier }];
    })
  ));
  const names = (await readCodeStore(path)).map((code) => code.name).sort();
  assert.deepEqual(names, identifiers.map((_, index) => `c${index}`));
});

Deno.test("`updateCodeStore()` refuses an invalid store and leaves it as it is", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  await Deno.writeTextFile(path, "{ damaged");
  await assert.rejects(updateCodeStore(path, (codes) => codes), /Invalid code store .*not JSON/);
  assert.equal(await Deno.readTextFile(path), "{ damaged");
});

Deno.test("`readLastUse()` and `writeLastUse()` keep the later time of each code, and only codes still there", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes.used");
  assert.deepEqual(await readLastUse(path), new Map());
  const keep = new Set(["K7QD", "M2XP"]);
  await writeLastUse(path, new Map([["K7QD", 2000], ["M2XP", 5000], ["ZZZZ", 1]]), keep);
  await writeLastUse(path, new Map([["K7QD", 3000], ["M2XP", 4000]]), keep);
  assert.deepEqual(await readLastUse(path), new Map([["K7QD", 3000], ["M2XP", 5000]]));
  assert.equal(mode(path), 0o600);
  await Deno.writeTextFile(path, "damaged");
  assert.deepEqual(await readLastUse(path), new Map(), "a damaged record is no record");
});

Deno.test("`CodeStoreWatch` takes new codes, keeps the last good ones over a damaged file, and none once the file is gone", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "codes");
  const watch = new CodeStoreWatch(path);
  assert.deepEqual(await watch.refresh(), { changed: false });
  await updateCodeStore(path, () => [CLIENT]);
  const added = await watch.refresh();
  assert.equal(added.changed, true);
  assert.deepEqual(added.before, []);
  assert.deepEqual(watch.codes, [CLIENT]);
  assert.deepEqual(await watch.refresh(), { changed: false });
  await Deno.writeTextFile(path, "{");
  const damaged = await watch.refresh();
  assert.equal(damaged.changed, false);
  assert.match(damaged.problem!, /not JSON/);
  assert.deepEqual(watch.codes, [CLIENT]);
  await Deno.remove(path);
  assert.equal((await watch.refresh()).changed, true);
  assert.deepEqual(watch.codes, []);
});

// Names, scopes, durations

Deno.test("`validateCodeName()` takes short safe names, never `default`", () => {
  for (const name of ["client", "class-5b", "Ann_B", "v1.2", "a".repeat(32)]) {
    validateCodeName(name);
  }
  for (const name of ["", "-x", ".x", "a b", "a/b", "ä", "a".repeat(33), "default", "Default"]) {
    assert.throws(() => validateCodeName(name), UsageError, JSON.stringify(name));
  }
});

Deno.test("`normaliseScope()` takes a folder of the served one, relative to it, in any spelling", () => {
  assert.equal(normaliseScope("photos/2024"), "photos/2024");
  assert.equal(normaliseScope("./photos/"), "photos");
  assert.equal(normaliseScope(""), "");
  assert.equal(normaliseScope("."), "");
  for (const scope of ["/photos", "../x", "a/../b", "a\\b", "a\u0000b"]) {
    assert.throws(
      () => normaliseScope(scope),
      /^UsageError: Invalid scope: .*relative to it/,
      scope,
    );
  }
});

Deno.test("`parseDuration()` reads 90s, 30m, 12h, 7d and 2w, from one second to ten years", () => {
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("12h"), 43_200_000);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("2w"), 1_209_600_000);
  for (const text of ["", "7", "d", "0s", "1.5h", "-1d", "7 days", "3651d", "99999999999w"]) {
    assert.throws(
      () => parseDuration(text),
      /^UsageError: Invalid --expires .*30m, 12h or 7d/,
      text,
    );
  }
});

// ferry code add | list | revoke

Deno.test("`ferry code add` prints a new code with an identifier, once, and stores it with mode 0600", async () => {
  await using dir = await tempDir();
  const result = await runFerry(
    ["code", "add", "class-5b", "--upload-only", "--scope", "inbox/5b", "--expires", "7d"],
    { cwd: dir.path },
  );
  assert.equal(result.code, 0, show(result));
  const code = result.stdout.trim();
  assert.match(code, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$/);
  assert.match(
    result.stderr,
    /Added code "class-5b" \(upload-only, folder "inbox\/5b" only, expires /,
  );
  const store = join(dir.path, ".connection_codes");
  assert.equal(mode(store), 0o600);
  const [stored] = await readCodeStore(store);
  assert.equal(stored!.identifier, codeIdentifier(code));
  assert.deepEqual(new TextEncoder().encode(stored!.secret), codeSecret(code));
  assert.equal(stored!.rights, "upload-only");
  assert.equal(stored!.scope, "inbox/5b");
  const week = 7 * 86_400_000;
  assert.ok(Math.abs(stored!.expires! - (Date.now() + week)) < 60_000);
  assert.ok(!result.stderr.includes(normaliseCode(code).slice(4)), "the secret only on stdout");
});

Deno.test("`ferry code list` shows name, identifier, rights, scope, expiry and last use, never a secret", async () => {
  await using dir = await tempDir();
  const made = [
    await runFerry(["code"], { cwd: dir.path }),
    await runFerry(["code", "add", "client", "--read-only"], { cwd: dir.path }),
    await runFerry(["code", "add", "alice", "--scope", "projects/alice"], { cwd: dir.path }),
  ];
  for (const result of made) assert.equal(result.code, 0, show(result));
  const codes = made.map((result) => result.stdout.trim());
  const store = join(dir.path, ".connection_codes");
  await writeLastUse(
    lastUsePath(store),
    new Map([[codeIdentifier(codes[1]!), Date.parse("2025-05-02T08:30:00Z")]]),
    new Set([codeIdentifier(codes[1]!)]),
  );
  const listed = await runFerry(["code", "list"], { cwd: dir.path });
  assert.equal(listed.code, 0, show(listed));
  const lines = listed.stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /^NAME +IDENTIFIER +RIGHTS +SCOPE +EXPIRES +LAST USE$/);
  assert.match(lines[1]!, /^default +- +\(server's mode\) +\/ +never +never$/);
  assert.match(
    lines[2]!,
    new RegExp(`^client +${codeIdentifier(codes[1]!)} +read-only +/ +never +2025-05-02 08:30$`),
  );
  assert.match(lines[3]!, /^alice +\S{4} +read-write +projects\/alice +never +never$/);
  const json = await runFerry(["code", "list", "--json"], { cwd: dir.path });
  const rows = JSON.parse(json.stdout);
  assert.deepEqual(rows.map((row: { name: string }) => row.name), ["default", "client", "alice"]);
  assert.equal(rows[1].lastUse, "2025-05-02T08:30:00.000Z");
  assert.equal(rows[2].scope, "projects/alice");
  for (const output of [listed.stdout, listed.stderr, json.stdout]) {
    for (const code of codes) {
      assert.ok(!output.includes(normaliseCode(code).slice(-16)), `a secret in:\n${output}`);
    }
  }
});

Deno.test("`ferry code revoke` removes one code and keeps the others; mistakes are one line", async () => {
  await using dir = await tempDir();
  for (const name of ["a", "b", "c"]) {
    const added = await runFerry(["code", "add", name], { cwd: dir.path });
    assert.equal(added.code, 0, show(added));
  }
  const revoked = await runFerry(["code", "revoke", "b"], { cwd: dir.path });
  assert.equal(revoked.code, 0, show(revoked));
  assert.match(revoked.stderr, /^Revoked code "b" \(\S{4}\): a running ferry serve refuses it now/);
  const left = await readCodeStore(join(dir.path, ".connection_codes"));
  assert.deepEqual(left.map((code) => code.name), ["a", "c"]);

  const mistakes: [string[], number, RegExp][] = [
    [
      ["code", "revoke", "b"],
      1,
      /^ferry: No code named "b" in \.connection_codes: `ferry code list`/,
    ],
    [["code", "add", "a"], 1, /^ferry: A code named "a" exists already/],
    [["code", "add", "A"], 1, /^ferry: A code named "a" exists already/],
    [["code", "add"], 2, /^ferry: Missing NAME: ferry code add NAME/],
    [["code", "revoke", "default"], 2, /^ferry: The default code is the code file itself/],
    [["code", "add", "default"], 2, /^ferry: Invalid code name "default"/],
    [["code", "add", "x y"], 2, /^ferry: Invalid code name "x y"/],
    [["code", "add", "x", "--scope", "../up"], 2, /^ferry: Invalid scope: /],
    [["code", "add", "x", "--expires", "soon"], 2, /^ferry: Invalid --expires "soon"/],
    [["code", "add", "x", "--read-only", "--upload-only"], 2, /^ferry: Choose one of/],
    [["code", "list", "--read-only"], 2, /^ferry: Option --read-only is for `ferry code add`/],
    [["code", "--read-only"], 2, /^ferry: Option --read-only is for `ferry code add or list`/],
    [["code", "add", "x", "--force"], 2, /^ferry: Option --force is for plain `ferry code`/],
    [["code", "lsit"], 2, /^ferry: Unknown subcommand "lsit": .*did you mean list\?/],
  ];
  for (const [args, exit, message] of mistakes) {
    const result = await runFerry(args, { cwd: dir.path });
    assert.equal(result.code, exit, `${args.join(" ")}\n${show(result)}`);
    assert.match(result.stderr.split("\n")[0]!, message, args.join(" "));
    assert.equal(result.stdout, "", args.join(" "));
  }
  const still = await readCodeStore(join(dir.path, ".connection_codes"));
  assert.deepEqual(still.map((code) => code.name), ["a", "c"], "no mistake changed the store");
});

Deno.test("`ferry code add --file PATH` keeps its codes beside PATH, and `list` reads them there", async () => {
  await using dir = await tempDir();
  const codeFile = join(dir.path, "keys", "ferry.code");
  await Deno.mkdir(join(dir.path, "keys"));
  const added = await runFerry(["code", "add", "ann", "--file", codeFile], { cwd: dir.path });
  assert.equal(added.code, 0, show(added));
  assert.equal((await readCodeStore(`${codeFile}s`))[0]!.name, "ann");
  const listed = await runFerry(["code", "list", "--file", codeFile], { cwd: dir.path });
  assert.match(listed.stdout, /^ann /m);
  const elsewhere = await runFerry(["code", "list"], { cwd: dir.path });
  assert.match(elsewhere.stderr, /^No codes: /);
});
