/**
 * Typed errors. Library code throws these; only `main.ts` turns them into exit codes
 * (see {@link exitCodeFor}). Messages are one line, in sentence case, detail after a colon, and
 * never contain the connection code or key material.
 *
 * @module
 */
import type { WireErrorCode } from "./protocol/wire_errors.ts";

/** Base class of every error ferry raises on purpose. */
export class FerryError extends Error {
  /** Short machine-readable code, used in `--json` output and in protocol error messages. */
  readonly code: string = "error";
  /** An error with `message` (one line, sentence case) and, in `options.cause`, what led to it. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The command line was misused: unknown flag, missing argument, missing local file. Exit 2. */
export class UsageError extends FerryError {
  /** Always `usage`. */
  override readonly code: string = "usage";
}

/** The peer does not hold the same connection code (or is not a ferry peer at all). Exit 3. */
export class AuthenticationError extends FerryError {
  /** Always `auth`. */
  override readonly code: string = "auth";
}

/** The user interrupted the command (Ctrl-C). Exit 130. */
export class InterruptedError extends FerryError {
  /** Always `interrupted`. */
  override readonly code: string = "interrupted";
}

/**
 * Ctrl-C stopped `ferry serve` gracefully, and it has said "Server stopped." as for SIGTERM:
 * exit 130 with nothing more to print.
 */
export class ServerInterruptedError extends InterruptedError {}

/** A remote or received path is not acceptable (`..`, absolute, control characters, escapes the root). */
export class PathError extends FerryError {
  /** Always `invalid-path`. */
  override readonly code: string = "invalid-path";
}

/** A file was asked for where a folder is (a `get` of a folder: the client then lists it). */
export class IsFolderError extends PathError {
  /** Always `is-dir`. */
  override readonly code: string = "is-dir";
}

/** A path names nothing. */
export class NotFoundError extends FerryError {
  /** Always `not-found`. */
  override readonly code: string = "not-found";
}

/** The target exists and `--force` was not given. */
export class ExistsError extends FerryError {
  /** Always `exists`. */
  override readonly code: string = "exists";
}

/** Another transfer is writing the same file right now. */
export class BusyError extends FerryError {
  /** Always `busy`. */
  override readonly code: string = "busy";
}

/** The peer broke the protocol: bad frame, bad message, failed record authentication, early end. */
export class ProtocolError extends FerryError {
  /** Always `protocol`. */
  override readonly code: string = "protocol";
}

/** The connection could not be made or was lost. */
export class ConnectionError extends FerryError {
  /** Always `connection`. */
  override readonly code: string = "connection";
}

/**
 * A connection that was made ended without an orderly close: the peer stopped or closed it in the
 * middle of a message, or the socket failed. `main.ts` words it, during a transfer, as what to do.
 */
export class ConnectionLostError extends ConnectionError {}

/**
 * A relay turned a client away before any byte of the server's came through: no server has
 * registered that identifier there (`notFound`), or the relay or that server is at its limits
 * (`busy`: asking again later may work). `status` is the relay's answer byte (`RelayStatus` in
 * lib/relay/wire.ts).
 */
export class RelayRefusedError extends ConnectionError {
  /** The relay's status byte. */
  readonly status: number;
  /** A refusal with the relay's status byte `status`, said in `message`. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The server turned the connection away before the handshake, saying why: `status` is the hello's
 * status byte (1 busy, 2 slow down after failed attempts, 3 shutting down).
 */
export class RefusedError extends ConnectionError {
  /** The refusal's status byte (`RefusalStatus` in lib/protocol/handshake.ts). */
  readonly status: number;
  /** The server's reason, made printable. */
  readonly reason: string;
  /** A refusal with status byte `status` and the printable `reason`. */
  constructor(status: number, reason: string) {
    super(`The server refused the connection: ${reason}`);
    this.status = status;
    this.reason = reason;
  }
}

/** The data received does not match the sender's SHA-256. */
export class IntegrityError extends FerryError {
  /** Always `integrity`. */
  override readonly code: string = "integrity";
}

/** A file changed while it was being sent, so nothing was kept; running the command again helps. */
export class ChangedError extends FerryError {
  /** Always `changed`. */
  override readonly code: string = "changed";
}

/** Some files of a folder transfer could not be moved; the message names each, with why. */
export class IncompleteError extends FerryError {
  /** Always `incomplete`. */
  override readonly code: string = "incomplete";
}

/**
 * Standard output was closed (its reader went away, as `ferry get ... --json | head -2` does)
 * while a transfer was still reporting: the transfer stops there, keeping any partial file for
 * a resume, and the command fails, since it did not finish. Exit 1.
 */
export class OutputClosedError extends FerryError {
  /** Always `output-closed`. */
  override readonly code: string = "output-closed";
}

/** The server refused a request; `code` is the server's reason code (for example `read-only`). */
export class RemoteError extends FerryError {
  /** The server's reason (`docs/PROTOCOL.md` §4.2); compare it with `WireError` constants. */
  override readonly code: WireErrorCode;
  /** The server's refusal: its `code`, and its `message` already made safe to print. */
  constructor(code: WireErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The object store a server serves (an S3 bucket) failed or refused a request: unreachable, wrong
 * credentials, an error status. The message names the S3 error code, never the endpoint or bucket.
 */
export class ObjectStoreError extends FerryError {
  /** Always `io`. */
  override readonly code: string = "io";
}

/** Deno did not grant a permission the command needs; the message names the flag to add. */
export class PermissionError extends FerryError {
  /** Always `permission`. */
  override readonly code: string = "permission";
}

/** Exit statuses, documented in the README and `ferry --help`. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  interrupted: 130,
} as const;

/** Maps any thrown value to the process exit status. The single place that decides it. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof AuthenticationError) return ExitCode.auth;
  if (error instanceof InterruptedError) return ExitCode.interrupted;
  return ExitCode.failure;
}

/** One line describing `error` for a person, with no stack trace. */
export function describeError(error: unknown): string {
  if (error instanceof FerryError) return error.message;
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return explainPermission(firstLine(error.message));
  }
  if (error instanceof Error) {
    const message = firstLine(error.message);
    return explainOsError(message) ?? (message || error.name);
  }
  return String(error);
}

/**
 * Rewords Deno's "Read-only file system (os error 30): open '/out/.ferry-partial.a.txt'" as
 * "Cannot write in /out: read-only file system" (a hidden partial file stands for its folder), and
 * "No space left on device (os error 28)" as "No space left on device".
 */
function explainOsError(message: string): string | undefined {
  const match = /^(.+?) \(os error \d+\)(?:: (\w+) '([^']*)')?/.exec(message);
  if (!match) return undefined;
  const [, reason, operation, path] = match as unknown as [string, string, string?, string?];
  if (operation === undefined || path === undefined) return reason;
  const lower = reason.charAt(0).toLowerCase() + reason.slice(1);
  const slash = path.lastIndexOf("/");
  if (path.slice(slash + 1).startsWith(".ferry-partial.")) {
    return `Cannot write in ${
      slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : "."
    }: ${lower}`;
  }
  return `Cannot ${operation} ${path}: ${lower}`;
}

/** Turns Deno's "Requires read access to "x", run again with the --allow-read flag" into a hint naming the exact flag. */
function explainPermission(message: string): string {
  const match = /Requires (\w+) access to "?([^",]+)"?/.exec(message);
  if (!match) return `Permission denied: ${message}`;
  const [, kind, target] = match;
  const flag = kind === "sys" || kind === "run" || kind === "ffi"
    ? `--allow-${kind}`
    : `--allow-${kind}=${target}`;
  return `Permission denied: ferry needs ${kind} access to ${target}; run deno with ${flag}`;
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
}
