/**
 * The wire error codes as a specification: the list in `lib/protocol/wire_errors.ts` is the one
 * `docs/PROTOCOL.md` §4.2 documents, every `FerryError` the server may reply with carries one of
 * them, and a code the client does not know decodes as the generic `error`.
 */
import assert from "node:assert/strict";
import {
  BusyError,
  ExistsError,
  FerryError,
  IntegrityError,
  NotFoundError,
  PathError,
  PermissionError,
} from "../lib/errors.ts";
import { decodeServerMessage } from "../lib/protocol/messages.ts";
import {
  FALLBACK_WIRE_ERROR_CODE,
  isWireErrorCode,
  toWireErrorCode,
  WIRE_ERROR_CODES,
  WireError,
} from "../lib/protocol/wire_errors.ts";

/** The codes in the first column of the table in `docs/PROTOCOL.md` §4.2, in order. */
async function documentedCodes(): Promise<string[]> {
  const text = await Deno.readTextFile(new URL("../docs/PROTOCOL.md", import.meta.url));
  const start = text.indexOf("\n### 4.2 ");
  assert.ok(start >= 0, "PROTOCOL.md has a section 4.2");
  const end = text.indexOf("\n#", start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\| `([^`]+)` +\|/gm)].map((match) => match[1]!);
}

const utf8 = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("`WIRE_ERROR_CODES` lists exactly the codes of docs/PROTOCOL.md §4.2, in its order", async () => {
  assert.deepEqual(await documentedCodes(), [...WIRE_ERROR_CODES]);
});

Deno.test("`WireError` names every wire error code once", () => {
  assert.deepEqual(Object.values(WireError), [...WIRE_ERROR_CODES]);
  assert.equal(new Set(WIRE_ERROR_CODES).size, WIRE_ERROR_CODES.length);
});

Deno.test("every `FerryError` a server request may end with carries a wire error code", () => {
  const errors = [
    new FerryError("x"),
    new PathError("x"),
    new NotFoundError("x"),
    new ExistsError("x"),
    new BusyError("x"),
    new IntegrityError("x"),
    new PermissionError("x"),
  ];
  for (const error of errors) assert.ok(isWireErrorCode(error.code), error.name);
});

Deno.test("`toWireErrorCode()` keeps a known code and turns any other into `error`", () => {
  for (const code of WIRE_ERROR_CODES) assert.equal(toWireErrorCode(code), code);
  for (const code of ["", "quota", "NOT-FOUND", "not-found ", "auth", "protocol", "usage"]) {
    assert.equal(toWireErrorCode(code), FALLBACK_WIRE_ERROR_CODE, JSON.stringify(code));
  }
  assert.equal(FALLBACK_WIRE_ERROR_CODE, "error");
});

Deno.test("`decodeServerMessage()` decodes an unknown error code (newer or hostile server) as `error`", () => {
  for (const code of ["quota-exceeded", "auth", "__proto__", "x".repeat(64)]) {
    assert.deepEqual(decodeServerMessage(utf8({ t: "error", code, message: "no" })), {
      t: "error",
      code: "error",
      message: "no",
    });
  }
  for (const code of WIRE_ERROR_CODES) {
    const decoded = decodeServerMessage(utf8({ t: "error", code, message: "" }));
    assert.deepEqual(decoded, { t: "error", code, message: "" });
  }
});
