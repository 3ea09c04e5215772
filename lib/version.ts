/**
 * ferry's version: the one place it is written (`deno.json` is checked against it in the tests).
 *
 * @module
 */

/** The version of ferry, as `ferry --version` prints it and the server's welcome names it. */
export const VERSION = "0.1.0";
