/**
 * Every third-party import of ferry, pinned to an exact version in one place.
 *
 * Full `npm:` specifiers (not an import map) so that `main.ts` also runs straight from a URL, where
 * the importing project's `deno.json` is not read. `deno.lock` records their integrity hashes.
 *
 * @module
 */
export { ristretto255, ristretto255_hasher } from "npm:@noble/curves@2.4.0/ed25519.js";
export { sha256, sha512 } from "npm:@noble/hashes@2.4.0/sha2.js";
export { hkdf } from "npm:@noble/hashes@2.4.0/hkdf.js";
export { hmac } from "npm:@noble/hashes@2.4.0/hmac.js";
export { concatBytes } from "npm:@noble/hashes@2.4.0/utils.js";
export { _SHA256 } from "npm:@noble/hashes@2.4.0/sha2.js";
export { AwsClient, AwsV4Signer } from "npm:aws4fetch@1.0.20";
