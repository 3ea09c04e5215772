/**
 * Small file-system helpers shared by the client, the server and the CLI.
 *
 * @module
 */

/**
 * The entry at `path` itself (a symbolic link is not followed), or `null` when nothing is there.
 * Permission: read on `path`.
 */
export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
