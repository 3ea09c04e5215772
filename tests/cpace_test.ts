import assert from "node:assert/strict";
import { concatBytes, sha512 } from "../lib/deps.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  calculateGenerator,
  confirmationTags,
  constantTimeEqual,
  CPACE_DSI,
  type CpaceShare,
  createShare,
  deriveTrafficKeys,
  FERRY_CI,
  ferryChannelIdentifier,
  generatorString,
  intermediateSessionKey,
  lvCat,
  oCat,
  prependLen,
  sharedSecret,
  transcriptIr,
  transcriptOc,
} from "../lib/protocol/cpace.ts";

// The draft's known answers (draft-irtf-cfrg-cpace-21, CPACE-RISTR255-SHA512), as hex strings.
interface Vectors {
  inputs: Record<
    "DSI" | "PRS" | "CI" | "sid" | "ADa" | "ADb" | "ya" | "yb",
    string
  >;
  expected: Record<
    | "generator_string"
    | "generator_string_sha512"
    | "g"
    | "Ya"
    | "Yb"
    | "K"
    | "DSI_ISK"
    | "transcript_ir"
    | "isk_hash_input_ir"
    | "ISK_IR"
    | "transcript_oc"
    | "isk_hash_input_oc"
    | "ISK_SY"
    | "sid_output_ir"
    | "sid_output_oc",
    string
  >;
  scalar_mult_valid: { s: string; X: string; "G.scalar_mult_vfy(s,X)": string };
  scalar_mult_vfy_invalid: { s: string; Y_i1: string; Y_i2: string };
  string_utils: {
    prepend_len: { in: string; out: string }[];
    lv_cat: { in: string[]; out: string }[];
    o_cat: { in: [string, string]; out: string }[];
    transcript_ir: { in: [string, string, string, string]; out: string }[];
    transcript_oc: { in: [string, string, string, string]; out: string }[];
  };
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("./vectors/cpace-ristretto255.json", import.meta.url)),
);
const { inputs, expected } = vectors;

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  assert.match(hex, /^(?:[0-9a-f]{2})*$/);
  return Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const utf8 = (text: string) => new TextEncoder().encode(text);

const prs = fromHex(inputs.PRS);
const ci = fromHex(inputs.CI);
const sid = fromHex(inputs.sid);
const ada = fromHex(inputs.ADa);
const adb = fromHex(inputs.ADb);
const ya = fromHex(expected.Ya);
const yb = fromHex(expected.Yb);

// String utilities

Deno.test("`CPACE_DSI` is the draft's DSI for ristretto255", () => {
  assert.equal(toHex(CPACE_DSI), inputs.DSI);
  assert.equal(toHex(concatBytes(CPACE_DSI, utf8("_ISK"))), expected.DSI_ISK);
});

Deno.test("`prependLen()` matches the draft's vectors", () => {
  assert.ok(vectors.string_utils.prepend_len.length >= 4);
  for (const { in: input, out } of vectors.string_utils.prepend_len) {
    assert.equal(toHex(prependLen(fromHex(input))), out);
  }
});

Deno.test("`prependLen()` encodes multi-byte LEB128 lengths", () => {
  assert.deepEqual(prependLen(new Uint8Array(300)).subarray(0, 2), Uint8Array.of(0xac, 0x02));
  assert.deepEqual(
    prependLen(new Uint8Array(16384)).subarray(0, 3),
    Uint8Array.of(0x80, 0x80, 0x01),
  );
});

Deno.test("`lvCat()` matches the draft's vector", () => {
  for (const { in: parts, out } of vectors.string_utils.lv_cat) {
    assert.equal(toHex(lvCat(...parts.map(fromHex))), out);
  }
});

Deno.test("`oCat()` matches the draft's vectors and ignores argument order", () => {
  assert.ok(vectors.string_utils.o_cat.length >= 2);
  for (const { in: [a, b], out } of vectors.string_utils.o_cat) {
    assert.equal(toHex(oCat(fromHex(a), fromHex(b))), out);
    assert.equal(toHex(oCat(fromHex(b), fromHex(a))), out);
  }
});

Deno.test("`transcriptIr()` matches the draft's vectors", () => {
  assert.ok(vectors.string_utils.transcript_ir.length >= 2);
  for (const { in: [ya, ada, yb, adb], out } of vectors.string_utils.transcript_ir) {
    assert.equal(toHex(transcriptIr(fromHex(ya), fromHex(ada), fromHex(yb), fromHex(adb))), out);
  }
  assert.equal(toHex(transcriptIr(ya, ada, yb, adb)), expected.transcript_ir);
});

Deno.test("`transcriptOc()` matches the draft's vectors", () => {
  assert.ok(vectors.string_utils.transcript_oc.length >= 2);
  for (const { in: [ya, ada, yb, adb], out } of vectors.string_utils.transcript_oc) {
    assert.equal(toHex(transcriptOc(fromHex(ya), fromHex(ada), fromHex(yb), fromHex(adb))), out);
  }
  assert.equal(toHex(transcriptOc(ya, ada, yb, adb)), expected.transcript_oc);
  assert.equal(toHex(transcriptOc(yb, adb, ya, ada)), expected.transcript_oc);
});

// Generator and shares

Deno.test("`generatorString()` matches the draft's vector", () => {
  const generator = generatorString(prs, ci, sid);
  assert.equal(toHex(generator), expected.generator_string);
  assert.equal(toHex(sha512(generator)), expected.generator_string_sha512);
});

Deno.test("`calculateGenerator()` matches the draft's vector", () => {
  assert.equal(toHex(calculateGenerator(prs, ci, sid)), expected.g);
});

Deno.test("`createShare()` with injected scalars gives the draft's Ya and Yb", () => {
  assert.equal(toHex(createShare(prs, ci, sid, fromHex(inputs.ya)).point), expected.Ya);
  assert.equal(toHex(createShare(prs, ci, sid, fromHex(inputs.yb)).point), expected.Yb);
});

Deno.test("`createShare()` rejects an injected scalar of the wrong length, zero or out of range", () => {
  assert.throws(() => createShare(prs, ci, sid, new Uint8Array(31)), RangeError);
  assert.throws(() => createShare(prs, ci, sid, new Uint8Array(32)), RangeError);
  assert.throws(() => createShare(prs, ci, sid, new Uint8Array(32).fill(0xff)), RangeError);
});

Deno.test("`createShare()` draws a different random scalar on each call", () => {
  const first = createShare(prs, ci, sid);
  const second = createShare(prs, ci, sid);
  assert.notEqual(first.scalar, second.scalar);
  assert.notEqual(toHex(first.point), toHex(second.point));
  assert.equal(first.point.length, 32);
});

// Shared secret

Deno.test("`sharedSecret()` gives the draft's K on both sides", () => {
  const a = createShare(prs, ci, sid, fromHex(inputs.ya));
  const b = createShare(prs, ci, sid, fromHex(inputs.yb));
  assert.equal(toHex(sharedSecret(a, b.point)), expected.K);
  assert.equal(toHex(sharedSecret(b, a.point)), expected.K);
});

/** A share holding the vector scalar `s` (the point is irrelevant to `sharedSecret()`). */
function shareWithScalar(s: string): CpaceShare {
  return createShare(prs, ci, sid, fromHex(s));
}

Deno.test("`sharedSecret()` matches the draft's scalar_mult_vfy valid case", () => {
  const { s, X } = vectors.scalar_mult_valid;
  assert.equal(
    toHex(sharedSecret(shareWithScalar(s), fromHex(X))),
    vectors.scalar_mult_valid["G.scalar_mult_vfy(s,X)"],
  );
});

Deno.test("`sharedSecret()` rejects a hostile peer point that does not decode (Y_i1)", () => {
  const { s, Y_i1 } = vectors.scalar_mult_vfy_invalid;
  assert.throws(() => sharedSecret(shareWithScalar(s), fromHex(Y_i1)), ProtocolError);
});

Deno.test("`sharedSecret()` rejects a hostile identity peer point (Y_i2, all zeros)", () => {
  const { s, Y_i2 } = vectors.scalar_mult_vfy_invalid;
  assert.throws(() => sharedSecret(shareWithScalar(s), fromHex(Y_i2)), ProtocolError);
});

Deno.test("`sharedSecret()` rejects a hostile peer point of the wrong length", () => {
  const share = shareWithScalar(vectors.scalar_mult_valid.s);
  const x = fromHex(vectors.scalar_mult_valid.X);
  assert.throws(() => sharedSecret(share, x.subarray(0, 31)), ProtocolError);
  assert.throws(() => sharedSecret(share, concatBytes(x, Uint8Array.of(0))), ProtocolError);
  assert.throws(() => sharedSecret(share, new Uint8Array(0)), ProtocolError);
});

// Session keys

Deno.test("`intermediateSessionKey()` matches the draft's ISK_IR", () => {
  const k = fromHex(expected.K);
  const hashInput = concatBytes(
    lvCat(concatBytes(CPACE_DSI, utf8("_ISK")), sid, k),
    transcriptIr(ya, ada, yb, adb),
  );
  assert.equal(toHex(hashInput), expected.isk_hash_input_ir);
  assert.equal(toHex(intermediateSessionKey(sid, k, ya, ada, yb, adb)), expected.ISK_IR);
});

Deno.test("the draft's ISK_SY follows from `transcriptOc()`", () => {
  const k = fromHex(expected.K);
  const hashInput = concatBytes(
    lvCat(concatBytes(CPACE_DSI, utf8("_ISK")), sid, k),
    transcriptOc(ya, ada, yb, adb),
  );
  assert.equal(toHex(hashInput), expected.isk_hash_input_oc);
  assert.equal(toHex(sha512(hashInput)), expected.ISK_SY);
});

Deno.test('the draft\'s sid_output values are SHA-512("CPaceSidOutput" || transcript)', () => {
  const label = utf8("CPaceSidOutput");
  assert.equal(
    toHex(sha512(concatBytes(label, transcriptIr(ya, ada, yb, adb)))),
    expected.sid_output_ir,
  );
  assert.equal(
    toHex(sha512(concatBytes(label, transcriptOc(ya, ada, yb, adb)))),
    expected.sid_output_oc,
  );
});

Deno.test("`confirmationTags()` follows the draft's key confirmation formulas", async () => {
  const isk = fromHex(expected.ISK_IR);
  const { ta, tb } = confirmationTags(sid, isk, ya, ada, yb, adb);
  assert.equal(ta.length, 64);
  assert.equal(tb.length, 64);
  assert.notEqual(toHex(ta), toHex(tb));
  // mac_key and HMAC-SHA512 computed independently, the HMAC through WebCrypto.
  const macKey = Uint8Array.from(sha512(concatBytes(utf8("CPaceMac"), sid, isk)));
  const key = await crypto.subtle.importKey(
    "raw",
    macKey,
    { name: "HMAC", hash: "SHA-512" },
    false,
    ["sign"],
  );
  const sign = async (data: Uint8Array) =>
    toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, Uint8Array.from(data))));
  assert.equal(toHex(ta), await sign(lvCat(ya, ada)));
  assert.equal(toHex(tb), await sign(lvCat(yb, adb)));
});

Deno.test("`deriveTrafficKeys()` gives 32-byte keys and 12-byte IVs, all distinct", () => {
  const keys = deriveTrafficKeys(fromHex(expected.ISK_IR), sid);
  assert.equal(keys.c2sKey.length, 32);
  assert.equal(keys.s2cKey.length, 32);
  assert.equal(keys.c2sIv.length, 12);
  assert.equal(keys.s2cIv.length, 12);
  const all = [keys.c2sKey, keys.s2cKey, keys.c2sIv, keys.s2cIv].map(toHex);
  assert.equal(new Set(all).size, 4);
});

Deno.test("`deriveTrafficKeys()` matches HKDF-SHA512 from WebCrypto", async () => {
  const isk = fromHex(expected.ISK_IR);
  const keys = deriveTrafficKeys(isk, sid);
  const ikm = await crypto.subtle.importKey("raw", isk, "HKDF", false, ["deriveBits"]);
  const derive = async (info: string, length: number) =>
    toHex(
      new Uint8Array(
        await crypto.subtle.deriveBits(
          { name: "HKDF", hash: "SHA-512", salt: sid, info: Uint8Array.from(utf8(info)) },
          ikm,
          length * 8,
        ),
      ),
    );
  assert.equal(toHex(keys.c2sKey), await derive("ferry/2 c2s key", 32));
  assert.equal(toHex(keys.c2sIv), await derive("ferry/2 c2s iv", 12));
  assert.equal(toHex(keys.s2cKey), await derive("ferry/2 s2c key", 32));
  assert.equal(toHex(keys.s2cIv), await derive("ferry/2 s2c iv", 12));
  // A version 1 server's labels, for the client's fallback.
  const old = deriveTrafficKeys(isk, sid, "ferry/1");
  assert.equal(toHex(old.c2sKey), await derive("ferry/1 c2s key", 32));
  assert.equal(toHex(old.s2cIv), await derive("ferry/1 s2c iv", 12));
});

Deno.test("`constantTimeEqual()` compares contents and lengths", () => {
  assert.ok(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)));
  assert.ok(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3)));
  assert.ok(!constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4)));
  assert.ok(!constantTimeEqual(Uint8Array.of(0x80, 2, 3), Uint8Array.of(0, 2, 3)));
  assert.ok(!constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2)));
  assert.ok(!constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3)));
});

Deno.test('`FERRY_CI` is lv_cat("ferry/2", "client", "server"); version 1\'s said "ferry/1"', () => {
  assert.equal(new TextDecoder().decode(FERRY_CI), "\x07ferry/2\x06client\x06server");
  assert.equal(
    new TextDecoder().decode(ferryChannelIdentifier(1)),
    "\x07ferry/1\x06client\x06server",
  );
});

// End to end

/** Runs both sides of a handshake, the client with `clientPrs`, the server with `serverPrs`. */
function handshake(clientPrs: string, serverPrs: string) {
  const sid = crypto.getRandomValues(new Uint8Array(32));
  const ad = new Uint8Array(0);
  const client = createShare(utf8(clientPrs), FERRY_CI, sid);
  const server = createShare(utf8(serverPrs), FERRY_CI, sid);
  const side = (own: CpaceShare, peer: CpaceShare, ya: Uint8Array, yb: Uint8Array) => {
    const isk = intermediateSessionKey(sid, sharedSecret(own, peer.point), ya, ad, yb, ad);
    return {
      isk,
      tags: confirmationTags(sid, isk, ya, ad, yb, ad),
      keys: deriveTrafficKeys(isk, sid),
    };
  };
  return {
    client: side(client, server, client.point, server.point),
    server: side(server, client, client.point, server.point),
  };
}

Deno.test("CPace end to end: the same code gives the same ISK, tags and traffic keys", () => {
  const { client, server } = handshake("7-purple-sausages", "7-purple-sausages");
  assert.ok(constantTimeEqual(client.isk, server.isk));
  assert.ok(constantTimeEqual(client.tags.ta, server.tags.ta));
  assert.ok(constantTimeEqual(client.tags.tb, server.tags.tb));
  assert.deepEqual(client.keys, server.keys);
});

Deno.test("CPace end to end: a different code gives different ISK and tags that do not verify", () => {
  const { client, server } = handshake("7-purple-sausages", "7-purple-sausagez");
  assert.ok(!constantTimeEqual(client.isk, server.isk));
  assert.ok(!constantTimeEqual(client.tags.ta, server.tags.ta));
  assert.ok(!constantTimeEqual(client.tags.tb, server.tags.tb));
  assert.ok(!constantTimeEqual(client.keys.c2sKey, server.keys.c2sKey));
});

Deno.test("CPace end to end: each connection gets fresh keys", () => {
  const first = handshake("7-purple-sausages", "7-purple-sausages");
  const second = handshake("7-purple-sausages", "7-purple-sausages");
  assert.ok(!constantTimeEqual(first.client.isk, second.client.isk));
});

const PUBLISHED_VECTORS = new URL("../../shared/vectors/cpace-ristretto255.json", import.meta.url);
const publishedText = await Deno.readTextFile(PUBLISHED_VECTORS).catch(() => undefined);

Deno.test({
  name: "the vectors kept in tests/vectors are the team's published copy in ../shared",
  ignore: publishedText === undefined, // a checkout without the shared folder beside it
  async fn() {
    const kept = await Deno.readTextFile(
      new URL("./vectors/cpace-ristretto255.json", import.meta.url),
    );
    assert.deepEqual(JSON.parse(kept), JSON.parse(publishedText!));
  },
});
