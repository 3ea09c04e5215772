/** ferry's version: the one place it is written (`deno.json` is checked against it in the tests). */
export const VERSION = "0.1.0";
