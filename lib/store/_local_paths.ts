/**
 * Small helpers of `LocalStore`'s confinement: how a stat becomes an {@link EntryInfo},
 * how real paths are compared, which errors mean "nothing there", and how paths are quoted in
 * messages. Private to lib/store.
 *
 * @module
 */
import { basename, dirname, join, resolve as resolvePath } from "node:path/posix";
import { NotFoundError } from "../errors.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";
import { type EntryInfo, hiddenPath, notFound } from "./store.ts";
export { hiddenPath, notFound };

/**
 * The real path of a local path that may not exist yet (then its folder's real path is used).
 * Permission: read on the path's folder.
 */
export function realPathOfLocal(path: string): string {
  const absolute = resolvePath(path);
  try {
    return Deno.realPathSync(absolute);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  try {
    return join(Deno.realPathSync(dirname(absolute)), basename(absolute));
  } catch (error) {
    if (!isMissing(error)) throw error;
    return absolute;
  }
}

/** Describes a regular file or folder; undefined for other kinds (sockets, fifos, devices). */
export function entryInfo(name: string, stat: Deno.FileInfo): EntryInfo | undefined {
  if (!stat.isFile && !stat.isDirectory) return undefined;
  return {
    name,
    type: stat.isFile ? "file" : "dir",
    size: stat.isFile ? stat.size : 0,
    mtime: stat.mtime?.getTime() ?? 0,
    mode: (stat.mode ?? 0) & 0o777,
  };
}

/** Device and inode: the identity of an entry, compared to catch one swapped after a check. */
export function fileId(stat: Deno.FileInfo): string {
  return `${stat.dev}:${stat.ino}`;
}

/** `inner` is `outer` or lies below it, compared component by component. */
export function isInside(outer: string, inner: string): boolean {
  if (outer === "/") return inner.startsWith("/");
  return inner === outer || inner.startsWith(`${outer}/`);
}

/** Whether anything, even a dangling link, is at `path`. Permission: read on its folder. */
export function lexists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

/** The order of listings: by UTF-16 code units, as on every platform. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The error means nothing is at the path (or a file stands where a folder was expected). */
export function isMissing(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory;
}

/** Errors that make one entry of a listing invisible rather than failing the whole listing. */
export function isUnreachable(error: unknown): boolean {
  return isMissing(error) || error instanceof Deno.errors.FilesystemLoop ||
    error instanceof Deno.errors.PermissionDenied;
}

/** The answer for a link loop met on the way to the remote `path` (see `hiddenPath`). */
export function linkLoop(path: string, cause: unknown): NotFoundError {
  return hiddenPath(path, "it is a symbolic link loop", cause);
}

/** `text` sanitised and in double quotes, for error messages. */
export function quote(text: string): string {
  return `"${sanitizeForDisplay(text)}"`;
}

/** Length of `text` in UTF-8 bytes. */
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
