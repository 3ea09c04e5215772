/**
 * Where an upload or a new folder lands: server policy, not the store's. The client's `name`
 * goes below its `dir` with the server's upload prefix on its **first** component:
 * `<dir>/<prefix><first>/…/<last>`, so `photos/a.jpg` lands as `uploaded_photos/a.jpg`.
 *
 * @module
 */
import { NotFoundError, PathError } from "../errors.ts";
import {
  joinRemotePath,
  parseRemotePath,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";
import type { EntryInfo, FileStore } from "../store/store.ts";

/**
 * The remote path (relative to the served root) that an upload of `name` into the existing
 * folder `dir` takes. `dir` must be a folder (`not-found`, `invalid-path` otherwise); the name is
 * validated with the prefix on. A missing `dir` is answered in words that say the folder is the
 * server's, since the client shows them to someone who also has local folders: every path that
 * resolves to nothing (missing, or hidden such as a link leading outside) gets the same words, so
 * they tell no more than "Cannot find" did. Creating the folders on the way, and refusing an excluded target
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
  if (folder.length > 0 && (await remoteFolder(store, dir)).type !== "dir") {
    throw new PathError(
      `Cannot upload into "${sanitizeForDisplay(dir)}" on the server: it is not a folder`,
    );
  }
  const components = parseRemotePath(name);
  if (components.length === 0) throw new PathError("Refused upload: the name is empty");
  components[0] = prefix + components[0];
  validateName(components[0]!);
  return joinRemotePath([...folder, ...components]);
}

/** `store.resolve(dir)`, with a missing folder named as the server's and the fix said. */
async function remoteFolder(store: FileStore, dir: string): Promise<EntryInfo> {
  try {
    return await store.resolve(dir);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    // The cause (why a hidden path is hidden) stays for the server's log, as with "Cannot find".
    throw new NotFoundError(
      `The remote folder "${sanitizeForDisplay(dir)}" does not exist on the server: create it ` +
        "there first, or upload into a folder that exists",
      { cause: error.cause },
    );
  }
}
