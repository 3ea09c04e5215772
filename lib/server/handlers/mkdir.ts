/**
 * `mkdir`: creates a folder (and the missing ones on the way) under the upload prefix rule, so
 * that folder uploads keep their empty folders.
 *
 * @module
 */
import { join } from "node:path";
import type { MkdirRequest } from "../../protocol/messages.ts";
import { sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { RequestContext } from "../context.ts";
import { RequestError } from "../replies.ts";
import { uploadTarget } from "../upload_target.ts";

/** Answers `mkdir` with `mkdir-done`; an existing folder is fine, anything else is `exists`. */
export async function mkdir(request: MkdirRequest, context: RequestContext): Promise<void> {
  context.rights.requireWriting();
  const { store } = context;
  const { realDir, finalName, relative } = await uploadTarget(
    store,
    context.uploadPrefix,
    request.dir,
    request.name,
  );
  const path = join(realDir, finalName);
  try {
    await Deno.mkdir(path, { mode: (request.mode & 0o777) | 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = await Deno.lstat(path);
  if (!info.isDirectory) {
    throw new RequestError("exists", `${sanitizeForDisplay(relative)} exists and is not a folder`);
  }
  await store.resolveDir(relative);
  await context.send({ t: "mkdir-done", name: relative });
  context.log(`mkdir ${sanitizeForDisplay(relative)}`);
}
