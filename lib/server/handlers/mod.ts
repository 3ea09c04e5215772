/**
 * The request table: which handler answers each request a client may send between others. A new
 * request type is one handler file plus one entry here; the session's dispatch never grows.
 *
 * @module
 */
import type { ClientMessage } from "../../protocol/messages.ts";
import type { Handler, Request, RequestContext } from "../context.ts";
import { get } from "./get.ts";
import { list } from "./list.ts";
import { mkdir } from "./mkdir.ts";
import { put } from "./put.ts";

/** One handler per request type, typed by the request it answers. */
export type HandlerTable = { [T in Request["t"]]: Handler<Extract<Request, { t: T }>> };

/** The handler of every request type. */
export const HANDLERS: HandlerTable = { list, get, put, mkdir };

/**
 * The handler for `request`, bound to it, or undefined when `request` may not come first
 * (`put-start` and `put-end` belong inside a `put`).
 */
export function handlerFor(
  request: ClientMessage,
): ((context: RequestContext) => Promise<void>) | undefined {
  if (!Object.hasOwn(HANDLERS, request.t)) return undefined;
  // The table pairs each type with its handler; TypeScript cannot follow that through `t`.
  const handler = HANDLERS[request.t as Request["t"]] as Handler;
  return (context) => handler(request as Request, context);
}
