/**
 * The numbers both sides of the conversation agree on: protocol version, default port, the
 * upload prefix, and the bounds on control messages and listings. One home, so that the client,
 * the server and the CLI never import them from each other.
 *
 * @module
 */

/**
 * The protocol version sent in the server's hello: 2 since codes have identifiers (several codes
 * per server). A client also speaks version 1 to an older server, with a code that has none.
 */
export const PROTOCOL_VERSION = 2;

/** The version before codes had identifiers, which a client still speaks with a default code. */
export const LEGACY_PROTOCOL_VERSION = 1;

/**
 * The feature a server offers in its `welcome` and a client takes up with `features`: from then on
 * small records written one after another may travel sealed together as one bundle (see
 * `framing.ts`). An older peer neither offers nor takes it up, and records go one by one.
 */
export const BUNDLE_FEATURE = "bundle";

/** Default port of `ferry serve`, and of a client address without one. */
export const DEFAULT_PORT = 7878;

/** Default prefix the server puts in front of the first component of every upload's name. */
export const DEFAULT_UPLOAD_PREFIX = "uploaded_";

/** Largest encoded control message accepted (64 KiB). */
export const MAX_CONTROL_BYTES = 64 * 1024;

/** Largest number of entries in one `listing` message. */
export const MAX_LISTING_BATCH = 256;

/** Encoded size (estimated) at which the server sends a listing batch before it is full. */
export const LISTING_BATCH_BYTES = 32 * 1024;

/** A listing longer than this is refused: a hostile server cannot fill the client's memory. */
export const MAX_LISTING_ENTRIES = 1_000_000;

/**
 * A listing whose names add up to more than this many UTF-16 code units is refused: a hostile
 * server cannot fill the client's memory with a million long names either (about 4 GB of 4 KB
 * names). 64 Mi code units: room for a million paths of 64 characters.
 */
export const MAX_LISTING_NAME_UNITS = 64 * 1024 * 1024;
