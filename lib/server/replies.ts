/**
 * How a failed request is told to the client: {@link RequestError} for a refusal the server
 * decides itself, and {@link replyFor}, the one mapping from any error to an `error` reply (the
 * codes of docs/PROTOCOL.md §4.2, `WIRE_ERROR_CODES`). Nothing here ever puts a path of the
 * server's disk, the code or a key in a reply: operating-system errors become a fixed message with
 * the error's name.
 *
 * @module
 */
import { FerryError, NotFoundError, PathError } from "../errors.ts";
import type { ErrorReply } from "../protocol/messages.ts";
import { toWireErrorCode, type WireErrorCode } from "../protocol/wire_errors.ts";

/** An error that is reported to the client and ends only the current request. */
export class RequestError extends FerryError {
  /** The reply's code (`exists`, `read-only`, ...). */
  override readonly code: WireErrorCode;
  /** A refusal with the reply code `code` and the message shown to the client. */
  constructor(code: WireErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The `error` reply that tells the client why its request failed with `error`. */
export function replyFor(error: unknown): ErrorReply {
  const [code, message]: [WireErrorCode, string] = error instanceof FerryError
    ? [toWireErrorCode(error.code), error.message]
    : error instanceof Deno.errors.NotFound
    ? ["not-found", "Not found"]
    : error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
    ? ["permission", "The server has no permission for that"]
    : isDiskFull(error)
    ? ["disk-full", "The server's disk is full (or its quota is used up): nothing was kept"]
    : ["io", `The server could not complete the request (${errorName(error)})`];
  return { t: "error", code, message };
}

/** One line describing `error` for the server's log (never a stack). */
export function describe(error: unknown): string {
  if (error instanceof FerryError) {
    // A path refused for what it leads to is answered as missing; the log says why.
    const why = error instanceof NotFoundError && error.cause instanceof PathError
      ? ` (${error.cause.message})`
      : "";
    return error.message + why;
  }
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n", 1)[0]}`;
  return String(error);
}

function isDiskFull(error: unknown): boolean {
  const errno = (error as { code?: unknown } | null)?.code;
  return errno === "ENOSPC" || errno === "EDQUOT";
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "Error";
}
