/**
 * Where an upload or a new folder lands: server policy, not the store's. The client's `name`
 * goes below its `dir` with the server's upload prefix on its **first** component:
 * `<dir>/<prefix><first>/…/<last>`, so `photos/a.jpg` lands as `uploaded_photos/a.jpg`.
 *
 * @module
 */
import { join } from "node:path";
import { PathError } from "../errors.ts";
import { joinRemotePath, parseRemotePath, validateName } from "../protocol/remote_path.ts";
import type { Store } from "../store/local.ts";

/** Where an upload lands (see {@link uploadTarget}). */
export interface UploadTarget {
  /** Real path of the folder that receives it (created when missing). */
  realDir: string;
  /** Its name in that folder. */
  finalName: string;
  /** Its path relative to the served folder, as replies name it. */
  relative: string;
}

/**
 * Resolves the target of an upload of `name` into the existing folder `dir`, creating the folders
 * on the way (`invalid-path`, `not-found` for a bad `dir`; `invalid-path` for a bad name or an
 * excluded target such as the code file).
 */
export async function uploadTarget(
  store: Store,
  prefix: string,
  dir: string,
  name: string,
): Promise<UploadTarget> {
  await store.resolveDir(dir);
  const components = parseRemotePath(name);
  if (components.length === 0) throw new PathError("Refused upload: the name is empty");
  components[0] = prefix + components[0];
  validateName(components[0]!);
  const finalName = components.pop()!;
  const folder = joinRemotePath([...parseRemotePath(dir), ...components]);
  const realDir = await store.resolveDir(folder, { create: true });
  const relative = joinRemotePath([...parseRemotePath(dir), ...components, finalName]);
  store.assertWritable(join(realDir, finalName), relative);
  return { realDir, finalName, relative };
}
