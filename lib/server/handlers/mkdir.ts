/**
 * `mkdir`: creates a folder (and the missing ones on the way) under the upload prefix rule, so
 * that folder uploads keep their empty folders, and gives it the time the client sent (a folder
 * upload sends it again once the folder's files are in, so the time sticks).
 *
 * @module
 */
import { ExistsError } from "../../errors.ts";
import type { MkdirRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { RequestContext } from "../context.ts";
import { RequestError } from "../replies.ts";
import { uploadTarget } from "../upload_target.ts";

/** Answers `mkdir` with `mkdir-done`; an existing folder is fine, anything else is `exists`. */
export async function mkdir(request: MkdirRequest, context: RequestContext): Promise<void> {
  context.rights.requireWriting();
  context.rights.requireUploadFolder(request.dir, context.uploadPrefix);
  const { store } = context;
  const path = await uploadTarget(store, context.uploadPrefix, request.dir, request.name);
  try {
    await store.makeFolder(path, { mode: request.mode, mtime: request.mtime });
  } catch (error) {
    if (!(error instanceof ExistsError)) throw error;
    throw new RequestError("exists", `${sanitizeForDisplay(path)} exists and is not a folder`);
  }
  await context.send({ t: "mkdir-done", name: path });
  context.log(`mkdir ${sanitizeForDisplay(path)}`);
}
