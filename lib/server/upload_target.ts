/**
 * Where an upload or a new folder lands: server policy, not the store's. The client's `name`
 * goes below its `dir` with the server's upload prefix on its **first** component:
 * `<dir>/<prefix><first>/…/<last>`, so `photos/a.jpg` lands as `uploaded_photos/a.jpg`.
 *
 * @module
 */
import { PathError } from "../errors.ts";
import {
  joinRemotePath,
  parseRemotePath,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";
import type { FileStore } from "../store/store.ts";

/**
 * The remote path (relative to the served root) that an upload of `name` into the existing
 * folder `dir` takes. `dir` must be a folder (`not-found`, `invalid-path` otherwise); the name is
 * validated with the prefix on. Creating the folders on the way, and refusing an excluded target
 * such as the code file, is the store's work when the upload begins.
 */
export async function uploadTarget(
  store: FileStore,
  prefix: string,
  dir: string,
  name: string,
): Promise<string> {
  const folder = parseRemotePath(dir);
  // The served folder itself is a folder (and looking it up costs every upload a `realpath`).
  if (folder.length > 0 && (await store.resolve(dir)).type !== "dir") {
    throw new PathError(`Cannot write into "${sanitizeForDisplay(dir)}": it is not a folder`);
  }
  const components = parseRemotePath(name);
  if (components.length === 0) throw new PathError("Refused upload: the name is empty");
  components[0] = prefix + components[0];
  validateName(components[0]!);
  return joinRemotePath([...folder, ...components]);
}
