/**
 * Uploading many paths: the plan is built before connecting (every local path checked, folders
 * walked with their empty folders, links followed only inside the folder, the code file and
 * partial files never sent), then run file by file; folders get their times back at the end.
 * Shared by `ferry put` and the `connect` shell's `put`.
 *
 * @module
 */
import { basename, join, relative, resolve } from "node:path";
import type { FerryClient, SentUpload, TransferResult } from "./client.ts";
import { IncompleteError, RemoteError, UsageError } from "../errors.ts";
import { listShortly } from "./get_paths.ts";
import { WireError } from "../protocol/wire_errors.ts";
import { STREAMED_UPLOAD_MAX_BYTES } from "./upload_stream.ts";
import {
  isSecretFileName,
  nameProblem,
  notUtf8Problem,
  PARTIAL_PREFIX,
  sanitizeForDisplay,
  validateName,
} from "../protocol/remote_path.ts";
import {
  fileTransferOptions,
  leaveOut,
  type LeftOut,
  reportDone,
  type TransferEvent,
} from "./events.ts";

/** Options of {@link putPaths}. */
export interface PutOptions {
  /** Remote folder, relative to the served folder, that receives the uploads. */
  remoteDir: string;
  /** Replace existing remote files (atomically). */
  force: boolean;
  /** Hash every file on both sides and compare the digests (`--verify`). */
  verify?: boolean;
  /** Receives every `TransferEvent`. */
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

/** What an upload will send, and what it cannot (named, with why) and will report. */
export interface UploadPlan {
  /** The folders to create and files to send, in order. */
  items: UploadItem[];
  /**
   * Entries inside the folders that cannot be sent because of their names (a control character,
   * a name that is not valid UTF-8), escaped for display: the rest is sent, then the command
   * fails naming them.
   */
  notTransferred: { name: string; reason: string }[];
}

/**
 * Builds the upload plan before connecting: every local path must exist (else a usage error) and
 * have a name the server accepts; folders are walked depth-first with their empty folders kept,
 * and an entry inside them whose name cannot be sent is set aside in `notTransferred` rather than
 * refusing the whole folder. Symlinks inside a folder are followed only to files inside that
 * folder; a `.connection_code` and hidden `.ferry-partial.*` files inside a folder are never
 * sent. Permission: read on the local paths.
 */
export async function planUpload(localPaths: readonly string[]): Promise<UploadPlan> {
  if (localPaths.length === 0) throw new UsageError("Name at least one local file or folder");
  const items: UploadItem[] = [];
  const notTransferred: UploadPlan["notTransferred"] = [];
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
      walkLocal(Deno.realPathSync(localPath), localPath, [name], { items, notTransferred });
    } else {
      throw new UsageError(`Cannot upload ${localPath}: it is not a file or folder`);
    }
  }
  return { items, notTransferred };
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

/**
 * Adds what `folder` holds to `plan`, depth first. Every lookup is made in place: handed to Deno's
 * thread pool, each would cost about 25 µs of this thread's time against 3 µs for the lookup, per
 * file of a folder of thousands (measured), while the walk has nothing else to do meanwhile.
 */
function walkLocal(
  rootReal: string,
  folder: string,
  names: string[],
  plan: UploadPlan,
): void {
  const { items } = plan;
  const children = [...Deno.readDirSync(folder)];
  children.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const child of children) {
    const path = join(folder, child.name);
    // Never sent from inside a folder: files holding a secret (a connection code for some
    // server, a relay token) and the hidden partial files of transfers in progress or cut.
    if (isSecretFileName(child.name) || child.name.startsWith(PARTIAL_PREFIX)) continue;
    const problem = notUtf8Problem(child.name) ?? nameProblem(child.name);
    if (problem !== undefined) {
      plan.notTransferred.push({ name: sanitizeForDisplay(path), reason: problem });
      continue;
    }
    const name = [...names, child.name];
    if (child.isSymlink) {
      let real: string;
      try {
        real = Deno.realPathSync(path);
      } catch {
        continue; // dangling
      }
      const inside = relative(rootReal, real);
      if (inside.startsWith("..") || inside === "" || resolve(rootReal, inside) !== real) continue;
      const info = Deno.statSync(path);
      if (info.isFile) items.push(itemFor("file", path, name.join("/"), info));
      continue; // symlinked folders are not followed
    }
    const info = Deno.lstatSync(path);
    if (info.isFile) {
      items.push(itemFor("file", path, name.join("/"), info));
    } else if (info.isDirectory) {
      items.push(itemFor("dir", path, name.join("/"), info));
      walkLocal(rootReal, path, name, plan);
    }
  }
}

/**
 * Streamed uploads on the wire before the first answer is read, in a folder upload: as many as the
 * server works on at once (two of its commit groups, so that it reads the next files while it
 * flushes the ones before).
 */
export const UPLOADS_IN_FLIGHT = 32;

/**
 * Runs an upload plan: the folders first (parents before children), then the files. The small
 * files of a plan of several are streamed, up to {@link UPLOADS_IN_FLIGHT} ahead of their answers,
 * so no file waits a round trip; larger ones take the resumable path one at a time. A file already
 * on the server is compared (skip-identical) once the answers in flight are in. What cannot be
 * sent (the plan's `notTransferred`, and files whose names the server cannot store) is named as
 * it is met, the rest is sent, and then `IncompleteError` names them all. Permission: net to the
 * server; read on the local paths.
 */
export async function putPaths(
  client: FerryClient,
  plan: UploadPlan,
  options: PutOptions,
): Promise<TransferResult[]> {
  const { items } = plan;
  const notMoved: LeftOut[] = [];
  const notTransferred = leaveOut("put", notMoved, options);
  for (const { name, reason } of plan.notTransferred) notTransferred(name, reason);
  for (const item of items) {
    if (item.kind !== "dir") continue;
    const name = await client.mkdir(options.remoteDir, item.name, item);
    options.onEvent?.({ event: "mkdir", direction: "put", name: sanitizeForDisplay(name) });
  }
  const files = items.filter((item) => item.kind === "file").length;
  const results: TransferResult[] = [];
  const inFlight: { item: UploadItem; sent: SentUpload }[] = [];
  const thereAlready: UploadItem[] = [];
  const receiveOldest = async () => {
    const { item, sent } = inFlight.shift()!;
    try {
      const result = await client.receiveUpload(sent);
      // Reported once accepted: a refused file never shows as started.
      const shown = sanitizeForDisplay(item.name);
      options.onEvent?.({
        event: "start",
        direction: "put",
        name: shown,
        size: sent.size,
        offset: 0,
      });
      results.push(reportUpload(item, result, options));
    } catch (error) {
      if (error instanceof RemoteError && error.code === WireError.invalidPath) {
        // A name this server cannot store (on Windows, `aux.c`): named, and the rest goes on.
        notTransferred(sanitizeForDisplay(item.name), error.message);
        return;
      }
      const exists = error instanceof RemoteError && error.code === WireError.exists;
      if (!exists || options.force) throw error;
      thereAlready.push(item); // compared below, as a re-run after a cut
    }
  };
  const drain = async () => {
    while (inFlight.length > 0) await receiveOldest();
  };
  try {
    for (const item of items) {
      if (item.kind === "dir") continue;
      if (item.size > STREAMED_UPLOAD_MAX_BYTES || files < 2) {
        await drain();
        results.push(reportUpload(item, await uploadOne(client, item, options), options));
        continue;
      }
      const sent = await client.sendUpload(item.localPath, options.remoteDir, item.name, {
        force: options.force,
        verify: options.verify,
      });
      inFlight.push({ item, sent });
      if (inFlight.length >= UPLOADS_IN_FLIGHT) await receiveOldest();
    }
    await drain();
  } catch (error) {
    // Read what is still in flight (its errors dropped) so that the session stays usable.
    while (inFlight.length > 0) await receiveOldest().catch(() => {});
    throw error;
  }
  for (const item of thereAlready) {
    results.push(reportUpload(item, await uploadOne(client, item, options), options));
  }
  await restoreFolderTimes(client, items, options.remoteDir);
  if (notMoved.length > 0) {
    throw new IncompleteError(
      `${notMoved.length} of the entries to upload could not be uploaded, the rest were: ` +
        listShortly(notMoved),
    );
  }
  return results;
}

/** Uploads one file on the resumable path (with skip-identical on a re-run). */
function uploadOne(
  client: FerryClient,
  item: UploadItem,
  options: PutOptions,
): Promise<TransferResult> {
  return client.upload(
    item.localPath,
    options.remoteDir,
    item.name,
    fileTransferOptions("put", sanitizeForDisplay(item.name), options),
  );
}

/** Reports a finished upload: named as the user gave it, with the server's name as `remote`. */
function reportUpload(
  item: UploadItem,
  result: TransferResult,
  options: PutOptions,
): TransferResult {
  return reportDone(
    "put",
    sanitizeForDisplay(item.name),
    result,
    options,
    sanitizeForDisplay(result.name),
  );
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
