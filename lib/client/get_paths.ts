/**
 * Downloading many paths: several files and folders per command, folders recursively, local
 * targets checked before anything is fetched, files already complete skipped, local files that
 * differ kept and named while the rest still land. Names that come from the server are validated,
 * and local folders are created one component at a time without following symlinks, so a hostile
 * server cannot make a download land outside the output folder.
 * Shared by `ferry get` and the `connect` shell's `get`.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { lstatOrNull } from "../_fs.ts";
import type { FerryClient, RequestedDownload, TransferResult } from "./client.ts";
import { ExistsError, IncompleteError, PathError, RemoteError, UsageError } from "../errors.ts";
import { parseRemotePath, sanitizeForDisplay, validateLocalName } from "../protocol/remote_path.ts";
import { WireError } from "../protocol/wire_errors.ts";
import {
  fileTransferOptions,
  leaveOut,
  type LeftOut,
  reportDone,
  type TransferEvent,
} from "./events.ts";
import { CommitGroup } from "../store/commit_group.ts";

/** Options of {@link getPaths}. */
export interface GetOptions {
  /** Local folder that receives the downloads (made, with its parents, if it is missing). */
  outputDir: string;
  /** Replace existing local files (atomically). */
  force: boolean;
  /** Hash every file on both sides and compare the digests (`--verify`). */
  verify?: boolean;
  /** Receives every `TransferEvent`. */
  onEvent?: (event: TransferEvent) => void;
  /** Told the number and total size of the files of each folder, once it is listed. */
  onListed?: (files: number, bytes: number) => void;
  /**
   * Local name of the one remote path (`ferry get --as`), instead of its own last component: a
   * {@link UsageError} with several paths.
   */
  localName?: string;
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
 * The local name a download of `remotePath`, one of `remotePaths`, lands under: `localName`
 * (`--as`) when given, which names the only path, else the remote path's last component.
 */
function localNameOf(
  remotePath: string,
  remotePaths: readonly string[],
  localName: string | undefined,
): string {
  const name = remoteBaseName(remotePath);
  if (localName === undefined) return name;
  if (remotePaths.length !== 1) {
    throw new UsageError("A local name (--as) is for one remote path only");
  }
  validateLocalName(localName);
  return localName;
}

/**
 * Checks, before connecting, that downloads can land: the output folder is a folder, or is
 * missing and can be made (the nearest existing folder on its way is a folder: {@link getPaths}
 * makes the rest once connected, like `mkdir -p`), and nothing but a folder or a regular file is
 * in the way (unless `force`). An existing regular file is compared with the remote one by
 * {@link getPaths} before anything moves. Permission: read on `outputDir` and its parents.
 */
export async function checkDownloadTargets(
  remotePaths: readonly string[],
  outputDir: string,
  force: boolean,
  localName?: string,
): Promise<void> {
  const info = statOrNull(outputDir);
  if (info === null) {
    // Nothing of it can be in the way yet; a file where one of its parents should be is. Parents
    // ferry may not read (run with --allow-read=DIR only) are left to the mkdir to judge.
    const existing = nearestExisting(outputDir);
    if (existing !== undefined && !existing.info.isDirectory) {
      throw new UsageError(
        `Cannot create the local output folder ${outputDir}: ${existing.path} is not a folder`,
      );
    }
    return;
  }
  if (!info.isDirectory) throw new UsageError(`Local output ${outputDir} is not a folder`);
  for (const remotePath of remotePaths) {
    const name = localNameOf(remotePath, remotePaths, localName);
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
 * Returns `undefined` when there is no such file; the caller decides what becomes of one that
 * differs (without `--force` it is never replaced).
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
  return reportDone("get", sanitizeForDisplay(remotePath), result, options);
}

/** `Deno.statSync(path)`, or `null` when nothing is there (a dangling link, a file as a parent). */
function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return null;
    }
    throw error;
  }
}

/**
 * The nearest of `path`'s parents that exists, as an absolute path, or `undefined` when ferry may
 * not look at the parents.
 */
function nearestExisting(path: string): { path: string; info: Deno.FileInfo } | undefined {
  let current = dirname(resolve(path));
  for (;;) {
    let info: Deno.FileInfo | null;
    try {
      info = statOrNull(current);
    } catch (error) {
      if (
        error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ) {
        return undefined;
      }
      throw error;
    }
    if (info !== null) return { path: current, info };
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/**
 * Makes the output folder and its missing parents (`mkdir -p`), so that `-o new/folder` works as
 * `wget -P` does; an existing one is left as it is. Permission: write on the first missing parent.
 */
function ensureOutputFolder(outputDir: string): void {
  if (statOrNull(outputDir)?.isDirectory) return;
  Deno.mkdirSync(outputDir, { recursive: true });
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

/** Why a local file in the way of a download is left as it is (no `--force`). */
function conflictReason(remoteIsFile: boolean): string {
  return remoteIsFile
    ? "already exists locally and differs: use --force to replace it"
    : "already exists locally: use --force to replace it";
}

/**
 * Downloads each remote path (files, or folders recursively) into `options.outputDir`, made first
 * with its missing parents if need be (checked by {@link checkDownloadTargets}).
 *
 * A local file in the way that holds other bytes than the remote one is left untouched unless
 * `force`. One path given alone then fails at once ({@link ExistsError}); with several paths, or
 * inside a folder, the conflict is reported as a `not-transferred` event, the rest are still
 * downloaded, and the call ends with an {@link IncompleteError} naming each conflict.
 * Permission: net to the server; read and write on the output folder (on its first missing parent
 * if it is new).
 */
export async function getPaths(
  client: FerryClient,
  remotePaths: readonly string[],
  options: GetOptions,
): Promise<TransferResult[]> {
  ensureOutputFolder(options.outputDir);
  // Local files in the way are compared with the remote ones before anything moves: identical
  // ones (a re-run after a cut) are skipped; one that differs stops a single-path command here,
  // and is passed over, and named, among several.
  const skipped = new Map<string, TransferResult>();
  const conflicts: LeftOut[] = [];
  const conflict = leaveOut("get", conflicts, options);
  const refused = new Set<string>();
  for (const remotePath of options.force ? [] : remotePaths) {
    const target = join(options.outputDir, localNameOf(remotePath, remotePaths, options.localName));
    const existing = await lstatOrNull(target);
    if (existing === null || existing.isDirectory) continue;
    const size = existing.isFile ? await remoteFileSize(client, remotePath) : undefined;
    const result = await skipIfIdentical(client, remotePath, target, size, options);
    if (result) {
      skipped.set(remotePath, result);
      continue;
    }
    if (remotePaths.length === 1) {
      throw new ExistsError(`${target} already exists: use --force to replace it`);
    }
    conflict(sanitizeForDisplay(remotePath), conflictReason(size !== undefined));
    refused.add(remotePath);
  }
  const incomplete: IncompleteError[] = [];
  const results: TransferResult[] = [];
  for (const remotePath of remotePaths) {
    if (refused.has(remotePath)) continue;
    const name = localNameOf(remotePath, remotePaths, options.localName);
    const skip = skipped.get(remotePath);
    if (skip) {
      results.push(skip);
      continue;
    }
    try {
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
    } catch (error) {
      // A folder that landed but for some entries (each already named) lets the next path go on:
      // the session is still in step.
      if (!(error instanceof IncompleteError) || remotePaths.length === 1) throw error;
      incomplete.push(error);
    }
  }
  if (conflicts.length > 0) {
    const first = `${conflicts.length} of the ${remotePaths.length} paths could not be ` +
      `downloaded: ${listShortly(conflicts)}`;
    throw new IncompleteError([first, ...incomplete.map((error) => error.message)].join("; "));
  }
  if (incomplete.length === 1) throw incomplete[0];
  if (incomplete.length > 1) {
    throw new IncompleteError(incomplete.map((error) => error.message).join("; "));
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
  return client.download(remotePath, localDir, name, fileTransferOptions("get", shown, options))
    .then((result) => reportDone("get", shown, result, options));
}

/** Downloads asked for before the first answer is read, in a folder download. */
const REQUESTS_IN_FLIGHT = 32;
/**
 * Received files whose commits (flushed as one group, then named) run side by side before they
 * are awaited; the next group is received while one is flushed, so two groups are open at most.
 * Against one group of 32 that had to be flushed before anything more was read: 5000 files of
 * 1 KiB in 2.75 s against 2.81 s and 4.84 s against 5.70 s (medians of alternated runs, two disk
 * states), with 2 MB less memory at the peak.
 */
const COMMITS_AT_ONCE = 16;

/**
 * The files of a folder download, pipelined: up to {@link REQUESTS_IN_FLIGHT} `get`s go out before
 * the first answer is read (the server answers in order), so no file waits a round trip; received
 * files are committed {@link COMMITS_AT_ONCE} at a time, flushed as one group once all of them
 * are written, and named only then; the next group is received while one is flushed. Nothing
 * else is asked of the session until it is drained, also when one file fails: the first error is
 * thrown once the answers in flight are read.
 */
class DownloadPipeline {
  #client: FerryClient;
  #options: GetOptions;
  #inFlight: { requested: RequestedDownload; shown: string; index: number }[] = [];
  #commits: Promise<void>[] = [];
  /** The group of commits before {@link #commits}, still being flushed and named. */
  #previousGroup: Promise<void> = Promise.resolve();
  /** Received files are flushed together, once a whole group of them is written. */
  #group = new CommitGroup({ maxFiles: COMMITS_AT_ONCE });
  #results: TransferResult[] = [];
  #notTransferred: (name: string, reason: string) => void;

  /**
   * Downloads through `client`; a file the server will not send (it cannot read it, say) goes to
   * `notTransferred` with the reason, and the others go on.
   */
  constructor(
    client: FerryClient,
    options: GetOptions,
    notTransferred: (name: string, reason: string) => void,
  ) {
    this.#client = client;
    this.#options = options;
    this.#notTransferred = notTransferred;
  }

  /** Results so far, in the order the files were asked for. */
  get results(): TransferResult[] {
    return this.#results.filter((result) => result !== undefined);
  }

  /** Adds a result found without a download (a file already complete). */
  add(result: TransferResult): void {
    this.#results.push(result);
  }

  /**
   * Asks for `remotePath` into `localDir/name` (`absent`: no local file has that name, as just
   * seen); reads the oldest answer when the window is full.
   */
  async request(
    remotePath: string,
    localDir: string,
    name: string,
    absent: boolean,
  ): Promise<void> {
    const shown = sanitizeForDisplay(remotePath);
    const index = this.#results.length;
    this.#results.length++;
    const requested = await this.#client.requestDownload(
      remotePath,
      localDir,
      name,
      { ...fileTransferOptions("get", shown, this.#options), targetAbsent: absent },
    );
    this.#inFlight.push({ requested, shown, index });
    if (this.#inFlight.length >= REQUESTS_IN_FLIGHT) await this.#receiveOldest();
  }

  /** Reads every answer in flight and waits for every commit; throws the first error. */
  async drain(): Promise<void> {
    while (this.#inFlight.length > 0) await this.#receiveOldest();
    await this.#settleCommits();
  }

  /** After a failure: reads what is in flight (its errors dropped) so the session stays usable. */
  async abandon(): Promise<void> {
    while (this.#inFlight.length > 0) await this.#receiveOldest().catch(() => {});
    this.#group.flushNow();
    await Promise.allSettled([this.#previousGroup, ...this.#commits.splice(0)]);
  }

  async #receiveOldest(): Promise<void> {
    const { requested, shown, index } = this.#inFlight.shift()!;
    let commit: () => Promise<TransferResult>;
    try {
      ({ commit } = await this.#client.receiveDownload(requested));
    } catch (error) {
      // One file the server refuses (unreadable on its disk, gone, changed) is reported by name
      // at the end and does not stop the others; the session is still in step.
      if (!(error instanceof RemoteError)) throw error;
      this.#notTransferred(shown, error.message);
      return;
    }
    const partial = requested.partial;
    const flushed = this.#group.flushed(partial).catch((error) => {
      partial.close(); // the bytes stay for a re-run
      throw error;
    });
    this.#commits.push(
      flushed.then(commit).then((result) => {
        this.#results[index] = reportDone("get", shown, result, this.#options);
      }),
    );
    // This group starts flushing, and the next one is received meanwhile: only the group before
    // this one must be done first, so the disk and the network work side by side.
    if (this.#commits.length >= COMMITS_AT_ONCE) await this.#startGroup();
  }

  /** Flushes and names the current group and the one before it; throws the first error. */
  async #settleCommits(): Promise<void> {
    await this.#startGroup();
    await this.#previousGroup;
  }

  /**
   * Starts flushing and naming the current group, which becomes {@link #previousGroup}, and
   * returns the group before it, for the caller to await (its error is thrown there).
   */
  #startGroup(): Promise<void> {
    const before = this.#previousGroup;
    this.#previousGroup = this.#settleGroup();
    this.#previousGroup.catch(() => {}); // thrown where it is awaited
    return before;
  }

  /** Flushes the files of the current group together, then names them; throws the first error. */
  async #settleGroup(): Promise<void> {
    this.#group.flushNow();
    const outcomes = await Promise.allSettled(this.#commits.splice(0));
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
  }
}

async function downloadFolder(
  client: FerryClient,
  remotePath: string,
  name: string,
  options: GetOptions,
): Promise<TransferResult[]> {
  const remoteRoot = parseRemotePath(remotePath);
  // Whatever is not moved is named as it is met and again at the end, and the command fails.
  const notMoved: LeftOut[] = [];
  const notTransferred = leaveOut("get", notMoved, options);
  const shownBelow = (name: string) => sanitizeForDisplay(remotePath) + "/" + name;
  const entries = await client.list(remotePath, {
    recursive: true,
    onSkipped: (entry) => notTransferred(shownBelow(entry.name), entry.reason),
  });
  if (entries.length === 1 && entries[0]!.name === "") {
    // The remote path is a file, and a local folder has its name.
    throw new ExistsError(
      `${sanitizeForDisplay(join(options.outputDir, name))} exists and is a folder`,
    );
  }
  await ensureLocalFolder(options.outputDir, [name]);
  options.onEvent?.({ event: "mkdir", direction: "get", name: sanitizeForDisplay(name) });
  const files = entries.filter((entry) => entry.type !== "dir");
  options.onListed?.(files.length, files.reduce((sum, entry) => sum + entry.size, 0));
  // Each local folder is made (and checked) once, then found here by its remote relative path;
  // what it held is read once too, instead of looking up every file's name.
  const folders = new Map<string, string>([["", join(options.outputDir, name)]]);
  const listed = new Map<string, Set<string>>();
  const namesIn = async (folder: string): Promise<Set<string>> => {
    let names = listed.get(folder);
    if (names === undefined) {
      names = new Set();
      for await (const entry of Deno.readDir(folder)) names.add(entry.name);
      listed.set(folder, names);
    }
    return names;
  };
  const pipeline = new DownloadPipeline(client, options, notTransferred);
  try {
    for (const entry of entries) {
      const components = parseRemotePath(entry.name);
      if (components.length === 0) continue;
      if (entry.type === "dir") {
        folders.set(
          components.join("/"),
          await ensureLocalFolder(options.outputDir, [name, ...components]),
        );
        options.onEvent?.({
          event: "mkdir",
          direction: "get",
          name: sanitizeForDisplay([name, ...components].join("/")),
        });
        continue;
      }
      const fileName = components.pop()!;
      const folder = folders.get(components.join("/")) ??
        await ensureLocalFolder(options.outputDir, [name, ...components]);
      const path = [...remoteRoot, ...components, fileName].join("/");
      const present = await namesIn(folder);
      if (!options.force && present.has(fileName)) {
        // A file already there (a re-run): compared on its own, once the answers in flight are in.
        // One that differs is kept, named, and passed over: the rest of the folder still lands.
        await pipeline.drain();
        const target = join(folder, fileName);
        const existing = await lstatOrNull(target);
        if (existing !== null) {
          let skipped: TransferResult | undefined;
          try {
            skipped = await skipIfIdentical(client, path, target, entry.size, options);
          } catch (error) {
            if (!(error instanceof RemoteError)) throw error;
            notTransferred(sanitizeForDisplay(path), error.message);
            continue;
          }
          if (skipped) {
            pipeline.add(skipped);
            continue;
          }
          notTransferred(
            sanitizeForDisplay(path),
            existing.isDirectory ? "a local folder has this name" : conflictReason(existing.isFile),
          );
          continue;
        }
      }
      try {
        validateLocalName(fileName); // one this machine cannot store is skipped, and named
      } catch (error) {
        if (!(error instanceof PathError)) throw error;
        notTransferred(sanitizeForDisplay(path), error.message);
        continue;
      }
      await pipeline.request(path, folder, fileName, !present.has(fileName));
    }
    await pipeline.drain();
  } catch (error) {
    await pipeline.abandon();
    throw error;
  }
  // Folders get their modification times last (writing files inside changes them), deepest first.
  for (const entry of entries.filter((entry) => entry.type === "dir").reverse()) {
    const path = join(options.outputDir, name, ...parseRemotePath(entry.name));
    const time = new Date(entry.mtime);
    Deno.utimeSync(path, time, time);
  }
  if (notMoved.length > 0) {
    throw new IncompleteError(
      `${notMoved.length} of the entries of ${sanitizeForDisplay(remotePath)} could not be ` +
        `downloaded, the rest were: ${listShortly(notMoved)}`,
    );
  }
  return pipeline.results;
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
    validateLocalName(component);
    current = join(current, component);
    const info = await lstatOrNull(current);
    if (info === null) {
      try {
        Deno.mkdirSync(current);
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      const created = Deno.lstatSync(current);
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

/** At most this many of the entries a transfer left out are named in its final error. */
const NAMED_IN_ERROR = 20;

/** `name (reason); ...` for the first entries, then how many more (each had its own line). */
export function listShortly(entries: readonly LeftOut[]): string {
  const named = entries.slice(0, NAMED_IN_ERROR).map(({ name, reason }) => `${name} (${reason})`);
  const more = entries.length - named.length;
  return named.join("; ") + (more > 0 ? `; and ${more} more, each named above` : "");
}
