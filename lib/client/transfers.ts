/**
 * Many-file transfers: several paths per command, folders recursively, local checks first.
 *
 * Shared by the one-shot commands and the interactive shell, so both behave the same. Local
 * arguments are checked (and folders walked) before anything is sent; names that come from the
 * server are validated, and local folders are created one component at a time without following
 * symlinks, so a hostile server cannot make a download land outside the output folder.
 *
 * @module
 */
import { basename, join, relative, resolve } from "node:path";
import { lstatOrNull } from "../_fs.ts";
import type { FerryClient, TransferResult } from "./client.ts";
import { ExistsError, PathError, RemoteError, UsageError } from "../errors.ts";
import { DEFAULT_CODE_FILE } from "../code.ts";
import {
  parseRemotePath,
  PARTIAL_PREFIX,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";
import { WireError } from "../protocol/wire_errors.ts";

/** One event of a transfer, as printed by `--json` (one object per line). */
export type TransferEvent =
  | { event: "start"; direction: "get" | "put"; name: string; size: number; offset: number }
  | { event: "progress"; direction: "get" | "put"; name: string; bytes: number; size: number }
  | {
    event: "done";
    direction: "get" | "put";
    name: string;
    size: number;
    transferred: number;
    resumedFrom: number;
    seconds: number;
    sha256: string;
    /** Present (true) when the target already held exactly these bytes and nothing moved. */
    skipped?: true;
    /** For `put`: the name the server gave the file (with its upload prefix). */
    remote?: string;
  }
  | { event: "mkdir"; direction: "get" | "put"; name: string };

/** Options of {@link getPaths}. */
export interface GetOptions {
  /** Local folder that receives the downloads (must exist). */
  outputDir: string;
  /** Replace existing local files (atomically). */
  force: boolean;
  /** Receives every {@link TransferEvent}. */
  onEvent?: (event: TransferEvent) => void;
}

/** Options of {@link putPaths}. */
export interface PutOptions {
  /** Remote folder, relative to the served folder, that receives the uploads. */
  remoteDir: string;
  /** Replace existing remote files (atomically). */
  force: boolean;
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

/** Final component of a remote path, or a usage error for the root itself. */
function remoteBaseName(remotePath: string): string {
  const components = parseRemotePath(remotePath);
  const last = components.at(-1);
  if (last === undefined) {
    throw new UsageError("Name a file or folder to download, not the served folder itself");
  }
  return last;
}

/**
 * Checks, before connecting, that downloads can land: the output folder exists and nothing but a
 * folder or a regular file is in the way (unless `force`). An existing regular file is compared
 * with the remote one by {@link getPaths} before anything moves. Permission: read on `outputDir`.
 */
export async function checkDownloadTargets(
  remotePaths: readonly string[],
  outputDir: string,
  force: boolean,
): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(outputDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Output folder ${outputDir} does not exist`);
    }
    throw error;
  }
  if (!info.isDirectory) throw new UsageError(`Output ${outputDir} is not a folder`);
  for (const remotePath of remotePaths) {
    const name = remoteBaseName(remotePath);
    const target = join(outputDir, name);
    const existing = await lstatOrNull(target);
    if (existing && !existing.isDirectory && !existing.isFile && !force) {
      throw new ExistsError(`${target} already exists: use --force to replace it`);
    }
  }
}

/**
 * Leaves an existing local file that already holds exactly the remote file's bytes (same size and
 * SHA-256, as after a re-run of a cut command) and reports it as `done` with `skipped: true`.
 * Returns `undefined` when there is no such file; a file that differs is refused as before.
 */
async function skipIfIdentical(
  client: FerryClient,
  remotePath: string,
  target: string,
  remoteSize: number | undefined,
  options: GetOptions,
): Promise<TransferResult | undefined> {
  const existing = await lstatOrNull(target);
  if (!existing?.isFile || existing.size !== remoteSize) return undefined;
  const started = performance.now();
  const check = await client.isIdentical(remotePath, target);
  if (!check.identical) return undefined;
  const result: TransferResult = {
    name: target,
    size: check.size,
    resumedFrom: check.size,
    transferred: 0,
    sha256: check.sha256,
    seconds: (performance.now() - started) / 1000,
    skipped: true,
  };
  options.onEvent?.({
    event: "done",
    direction: "get",
    name: sanitizeForDisplay(remotePath),
    size: result.size,
    transferred: 0,
    resumedFrom: result.resumedFrom,
    seconds: result.seconds,
    sha256: result.sha256,
    skipped: true,
  });
  return result;
}

/** Size of the remote file `remotePath`, or `undefined` when it is not a file. */
async function remoteFileSize(
  client: FerryClient,
  remotePath: string,
): Promise<number | undefined> {
  const entries = await client.list(remotePath);
  const entry = entries.length === 1 ? entries[0]! : undefined;
  return entry?.type === "file" && entry.name === remoteBaseName(remotePath)
    ? entry.size
    : undefined;
}

/**
 * Downloads each remote path (files, or folders recursively) into `options.outputDir`.
 * Permission: net to the server; read and write on the output folder.
 */
export async function getPaths(
  client: FerryClient,
  remotePaths: readonly string[],
  options: GetOptions,
): Promise<TransferResult[]> {
  // Local files in the way are compared with the remote ones before anything moves: identical
  // ones (a re-run after a cut) are skipped, any other stops the command here.
  const skipped = new Map<string, TransferResult>();
  for (const remotePath of options.force ? [] : remotePaths) {
    const target = join(options.outputDir, remoteBaseName(remotePath));
    const existing = await lstatOrNull(target);
    if (existing === null || existing.isDirectory) continue;
    const size = existing.isFile ? await remoteFileSize(client, remotePath) : undefined;
    const result = await skipIfIdentical(client, remotePath, target, size, options);
    if (!result) throw new ExistsError(`${target} already exists: use --force to replace it`);
    skipped.set(remotePath, result);
  }
  const results: TransferResult[] = [];
  for (const remotePath of remotePaths) {
    const name = remoteBaseName(remotePath);
    const skip = skipped.get(remotePath);
    if (skip) {
      results.push(skip);
      continue;
    }
    if ((await lstatOrNull(join(options.outputDir, name)))?.isDirectory) {
      // The folder of an earlier, perhaps cut, run: continue it.
      results.push(...await downloadFolder(client, remotePath, name, options));
      continue;
    }
    try {
      results.push(await downloadFile(client, remotePath, options.outputDir, name, options));
    } catch (error) {
      if (!(error instanceof RemoteError && error.code === WireError.isDir)) throw error;
      results.push(...await downloadFolder(client, remotePath, name, options));
    }
  }
  return results;
}

function downloadFile(
  client: FerryClient,
  remotePath: string,
  localDir: string,
  name: string,
  options: GetOptions,
): Promise<TransferResult> {
  const shown = sanitizeForDisplay(remotePath);
  return client.download(remotePath, localDir, name, {
    force: options.force,
    onStart: ({ size, offset }) =>
      options.onEvent?.({ event: "start", direction: "get", name: shown, size, offset }),
    onProgress: ({ bytes, size }) =>
      options.onEvent?.({ event: "progress", direction: "get", name: shown, bytes, size }),
  }).then((result) => {
    options.onEvent?.({
      event: "done",
      direction: "get",
      name: shown,
      size: result.size,
      transferred: result.transferred,
      resumedFrom: result.resumedFrom,
      seconds: result.seconds,
      sha256: result.sha256,
    });
    return result;
  });
}

async function downloadFolder(
  client: FerryClient,
  remotePath: string,
  name: string,
  options: GetOptions,
): Promise<TransferResult[]> {
  const remoteRoot = parseRemotePath(remotePath);
  const entries = await client.list(remotePath, { recursive: true });
  if (entries.length === 1 && entries[0]!.name === "") {
    // The remote path is a file, and a local folder has its name.
    throw new ExistsError(
      `${sanitizeForDisplay(join(options.outputDir, name))} exists and is a folder`,
    );
  }
  await ensureLocalFolder(options.outputDir, [name]);
  options.onEvent?.({ event: "mkdir", direction: "get", name: sanitizeForDisplay(name) });
  const results: TransferResult[] = [];
  for (const entry of entries) {
    const components = parseRemotePath(entry.name);
    if (components.length === 0) continue;
    if (entry.type === "dir") {
      await ensureLocalFolder(options.outputDir, [name, ...components]);
      options.onEvent?.({
        event: "mkdir",
        direction: "get",
        name: sanitizeForDisplay([name, ...components].join("/")),
      });
      continue;
    }
    const fileName = components.pop()!;
    const folder = await ensureLocalFolder(options.outputDir, [name, ...components]);
    const path = [...remoteRoot, ...components, fileName].join("/");
    const skipped = options.force
      ? undefined
      : await skipIfIdentical(client, path, join(folder, fileName), entry.size, options);
    results.push(skipped ?? await downloadFile(client, path, folder, fileName, options));
  }
  // Folders get their modification times last (writing files inside changes them), deepest first.
  for (const entry of entries.filter((entry) => entry.type === "dir").reverse()) {
    const path = join(options.outputDir, name, ...parseRemotePath(entry.name));
    const time = new Date(entry.mtime);
    await Deno.utime(path, time, time);
  }
  return results;
}

/**
 * Creates `base/components...` one folder at a time. Each component must be a valid name, and an
 * existing component must be a real folder: a symlink (which could lead anywhere) is refused.
 * Returns the folder's path. Permission: read and write on `base`.
 */
export async function ensureLocalFolder(
  base: string,
  components: readonly string[],
): Promise<string> {
  let current = base;
  for (const component of components) {
    validateName(component);
    current = join(current, component);
    const info = await lstatOrNull(current);
    if (info === null) {
      try {
        await Deno.mkdir(current);
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      const created = await Deno.lstat(current);
      if (!created.isDirectory) {
        throw new PathError(`${sanitizeForDisplay(current)} is not a folder`);
      }
    } else if (info.isSymlink) {
      throw new PathError(`Refusing to write through the symlink ${sanitizeForDisplay(current)}`);
    } else if (!info.isDirectory) {
      throw new ExistsError(`${sanitizeForDisplay(current)} exists and is not a folder`);
    }
  }
  return current;
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
      sha256: result.sha256,
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
