/**
 * Uploading many paths: the plan is built before connecting (every local path checked, folders
 * walked with their empty folders, links followed only inside the folder, the code file and
 * partial files never sent), then run file by file; folders get their times back at the end.
 * Shared by `ferry put` and the `connect` shell's `put`.
 *
 * @module
 */
import { basename, join, relative, resolve } from "node:path";
import type { FerryClient, TransferResult } from "./client.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_CODE_FILE } from "../code_file.ts";
import { PARTIAL_PREFIX, sanitizeForDisplay, validateName } from "../protocol/remote_path.ts";
import type { TransferEvent } from "./events.ts";

/** Options of {@link putPaths}. */
export interface PutOptions {
  /** Remote folder, relative to the served folder, that receives the uploads. */
  remoteDir: string;
  /** Replace existing remote files (atomically). */
  force: boolean;
  /** Hash every file on both sides and compare the digests (`--verify`). */
  verify?: boolean;
  /** Receives every {@link TransferEvent}. */
  onEvent?: (event: TransferEvent) => void;
}

/** One step of an upload plan: a folder to create or a file to send, under its remote name. */
export interface UploadItem {
  /** A folder to create, or a file to send. */
  kind: "dir" | "file";
  /** Local path to read. */
  localPath: string;
  /** Remote name relative to the target folder (POSIX, the server prefixes the first component). */
  name: string;
  /** Size in bytes (0 for folders). */
  size: number;
  /** Permission bits (`mode & 0o777`). */
  mode: number;
  /** Modification time, in milliseconds since the epoch. */
  mtime: number;
}

/**
 * Builds the upload plan before connecting: every local path must exist (else a usage error) and
 * have a name the server accepts; folders are walked depth-first with their empty folders kept.
 * Symlinks inside a folder are followed only to files inside that folder; a `.connection_code`
 * and hidden `.ferry-partial.*` files inside a folder are never sent. Permission: read on the
 * local paths.
 */
export async function planUpload(localPaths: readonly string[]): Promise<UploadItem[]> {
  if (localPaths.length === 0) throw new UsageError("Name at least one local file or folder");
  const items: UploadItem[] = [];
  for (const localPath of localPaths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(localPath);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new UsageError(`Local path ${localPath} does not exist`);
      }
      throw error;
    }
    const name = basename(resolve(localPath));
    try {
      validateName(name);
    } catch (error) {
      throw new UsageError(`Cannot upload ${localPath}: ${(error as Error).message}`);
    }
    if (info.isFile) {
      items.push(itemFor("file", localPath, name, info));
    } else if (info.isDirectory) {
      items.push(itemFor("dir", localPath, name, info));
      await walkLocal(await Deno.realPath(localPath), localPath, [name], items);
    } else {
      throw new UsageError(`Cannot upload ${localPath}: it is not a file or folder`);
    }
  }
  return items;
}

function itemFor(
  kind: "dir" | "file",
  localPath: string,
  name: string,
  info: Deno.FileInfo,
): UploadItem {
  return {
    kind,
    localPath,
    name,
    size: kind === "file" ? info.size : 0,
    mode: (info.mode ?? (kind === "dir" ? 0o755 : 0o644)) & 0o777,
    mtime: Math.max(0, Math.round(info.mtime?.getTime() ?? Date.now())),
  };
}

async function walkLocal(
  rootReal: string,
  folder: string,
  names: string[],
  items: UploadItem[],
): Promise<void> {
  const children: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(folder)) children.push(entry);
  children.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const child of children) {
    const path = join(folder, child.name);
    // Never sent from inside a folder: a connection code (a secret for some server) and the
    // hidden partial files of transfers in progress or cut.
    if (child.name === DEFAULT_CODE_FILE || child.name.startsWith(PARTIAL_PREFIX)) continue;
    try {
      validateName(child.name);
    } catch (error) {
      throw new UsageError(`Cannot upload ${path}: ${(error as Error).message}`);
    }
    const name = [...names, child.name];
    if (child.isSymlink) {
      let real: string;
      try {
        real = await Deno.realPath(path);
      } catch {
        continue; // dangling
      }
      const inside = relative(rootReal, real);
      if (inside.startsWith("..") || inside === "" || resolve(rootReal, inside) !== real) continue;
      const info = await Deno.stat(path);
      if (info.isFile) items.push(itemFor("file", path, name.join("/"), info));
      continue; // symlinked folders are not followed
    }
    const info = await Deno.lstat(path);
    if (info.isFile) {
      items.push(itemFor("file", path, name.join("/"), info));
    } else if (info.isDirectory) {
      items.push(itemFor("dir", path, name.join("/"), info));
      await walkLocal(rootReal, path, name, items);
    }
  }
}

/** Runs an upload plan. Permission: net to the server; read on the local paths. */
export async function putPaths(
  client: FerryClient,
  items: readonly UploadItem[],
  options: PutOptions,
): Promise<TransferResult[]> {
  const results: TransferResult[] = [];
  for (const item of items) {
    if (item.kind === "dir") {
      const name = await client.mkdir(options.remoteDir, item.name, item);
      options.onEvent?.({ event: "mkdir", direction: "put", name: sanitizeForDisplay(name) });
      continue;
    }
    const shown = sanitizeForDisplay(item.name);
    const result = await client.upload(item.localPath, options.remoteDir, item.name, {
      force: options.force,
      verify: options.verify,
      onStart: ({ size, offset }) =>
        options.onEvent?.({ event: "start", direction: "put", name: shown, size, offset }),
      onProgress: ({ bytes, size }) =>
        options.onEvent?.({ event: "progress", direction: "put", name: shown, bytes, size }),
    });
    options.onEvent?.({
      event: "done",
      direction: "put",
      name: shown, // as in `start` and `progress`: one file has one name in every event
      remote: sanitizeForDisplay(result.name),
      size: result.size,
      transferred: result.transferred,
      resumedFrom: result.resumedFrom,
      seconds: result.seconds,
      ...(result.sha256 ? { sha256: result.sha256 } : {}),
      ...(result.skipped ? { skipped: true as const } : {}),
    });
    results.push(result);
  }
  await restoreFolderTimes(client, items, options.remoteDir);
  return results;
}

/**
 * Gives the uploaded folders their modification times back, deepest first: uploading files into
 * a folder changes its time, so the `mkdir` that created it is sent once more after its files
 * (the server applies `mtime` to an existing folder too).
 */
async function restoreFolderTimes(
  client: FerryClient,
  items: readonly UploadItem[],
  remoteDir: string,
): Promise<void> {
  const folders = items.filter((item) => item.kind === "dir");
  const depth = (item: UploadItem) => item.name.split("/").length;
  for (const folder of folders.toSorted((a, b) => depth(b) - depth(a))) {
    await client.mkdir(remoteDir, folder.name, folder);
  }
}
