/**
 * The state of a `ferry connect` shell: its connection to the server (made again when it was
 * dropped or has sat idle past the server's deadline), the current remote folder, and the
 * folder listings cached for Tab completion.
 *
 * The remote current folder lives only here: the protocol knows paths relative to the served
 * folder, so every path typed in the shell is resolved against it ({@link resolveRemotePath})
 * before it is sent.
 *
 * @module
 */
import type { FerryClient } from "../../client/client.ts";
import { listRemoteFolder } from "../../client/remote_glob.ts";
import { InterruptedError, PathError, UsageError } from "../../errors.ts";
import type { ListEntry } from "../../protocol/messages.ts";
import { parseRemotePath, sanitizeForDisplay } from "../../protocol/remote_path.ts";
import type { ClientCode } from "../common.ts";
import { connectClient } from "../remote.ts";
import type { ServerTarget } from "../target.ts";

/**
 * Reconnect before a command once the connection has been idle for this share of the server's
 * idle deadline: the server has closed it by then, or is about to.
 */
const IDLE_SHARE_BEFORE_RECONNECT = 0.8;

/**
 * The remote path (its components) that `typed` names from the folder `cwd`. A leading `/`
 * starts from the top of the served folder, `.` and empty components are skipped, `..` goes up
 * a folder; going above the top is a {@link UsageError}, and so is a name the protocol refuses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveRemotePath } from "./session.ts";
 *
 * assert.deepEqual(resolveRemotePath(["photos"], "2024/a.jpg"), ["photos", "2024", "a.jpg"]);
 * assert.deepEqual(resolveRemotePath(["photos", "2024"], "../notes.txt"), ["photos", "notes.txt"]);
 * assert.deepEqual(resolveRemotePath(["photos"], "/"), []);
 * ```
 */
export function resolveRemotePath(cwd: readonly string[], typed: string): string[] {
  const components = typed.startsWith("/") ? [] : [...cwd];
  for (const part of typed.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (components.length === 0) {
        throw new UsageError(
          `${JSON.stringify(sanitizeForDisplay(typed))} leads above the served folder`,
        );
      }
      components.pop();
      continue;
    }
    components.push(part);
  }
  try {
    parseRemotePath(components.join("/")); // each name, and the length of the whole
  } catch (error) {
    if (!(error instanceof PathError)) throw error;
    throw new UsageError(error.message, { cause: error });
  }
  return components;
}

/** A remote folder as the prompt and `pwd` show it: `/` for the top, `/photos/2024` below. */
export function displayRemoteFolder(components: readonly string[]): string {
  return "/" + components.map(sanitizeForDisplay).join("/");
}

/** One shell's connection and remote current folder. */
export class ShellSession {
  #target: ServerTarget;
  #code: ClientCode;
  #client: FerryClient | undefined;
  #mode: string;
  /** The requests of one connection, one at a time (a completion's listing, then a command). */
  #queue: Promise<unknown> = Promise.resolve();
  /** How many times the connection was dropped: what was asked before belongs to the old one. */
  #generation = 0;
  /** When the server last answered (`performance.now()`): its idle deadline runs from then. */
  #lastAnswer = performance.now();
  #cwd: string[] = [];
  #listings = new Map<string, Promise<ListEntry[] | undefined>>();

  /** A session on the open `client`; `target` and `code` make a new connection when needed. */
  constructor(client: FerryClient, target: ServerTarget, code: ClientCode) {
    this.#client = client;
    this.#mode = client.welcome.mode;
    this.#target = target;
    this.#code = code;
  }

  /**
   * What the server said this session may do, as its last `welcome` put it (`read-write`,
   * `read-only`, `upload-only`, `none`, or a word from a newer server).
   */
  get mode(): string {
    return this.#mode;
  }

  /** The current remote folder, as components (`[]` is the top of the served folder). */
  get cwd(): readonly string[] {
    return this.#cwd;
  }

  /** The wire path (relative to the served folder) that `typed` names from the current folder. */
  remotePath(typed: string): string {
    return resolveRemotePath(this.#cwd, typed).join("/");
  }

  /**
   * Makes `typed` the current remote folder, once the server confirms that it is one: a missing
   * path, or a file, is refused ({@link UsageError}) and the current folder stays.
   */
  async changeFolder(typed: string): Promise<void> {
    const target = resolveRemotePath(this.#cwd, typed);
    if (target.length > 0) {
      const entries = await this.use((client) => listRemoteFolder(client, target));
      if (entries === undefined) {
        throw new UsageError(`${displayRemoteFolder(target)} is a file, not a folder`);
      }
      this.#listings.set(target.join("/"), Promise.resolve(entries));
    }
    this.#cwd = target;
  }

  /**
   * Runs `request` with the client, after any request still under way on it. Connects again
   * first when the connection was dropped, or idled past most of the server's deadline.
   */
  use<T>(request: (client: FerryClient) => Promise<T>): Promise<T> {
    const generation = this.#generation;
    const run = async () => {
      const client = await this.#connected(generation);
      try {
        return await request(client);
      } finally {
        this.#lastAnswer = performance.now();
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * The client for a request made in `generation`: a request from before a {@link drop} (one
   * that was interrupted) never gets the connection made after it.
   */
  async #connected(generation: number): Promise<FerryClient> {
    if (generation !== this.#generation) throw new InterruptedError("Interrupted");
    const idleMs = this.#client?.welcome.idleTimeoutMs;
    if (
      this.#client && idleMs !== undefined &&
      performance.now() - this.#lastAnswer > idleMs * IDLE_SHARE_BEFORE_RECONNECT
    ) {
      this.#client.abort(); // the server has closed it, or is about to
      this.#client = undefined;
    }
    if (!this.#client) {
      const client = await connectClient(this.#target, this.#code);
      if (generation !== this.#generation) {
        client.abort(); // interrupted while it connected (a busy server is waited for)
        throw new InterruptedError("Interrupted");
      }
      this.#client = client;
      this.#mode = client.welcome.mode;
    }
    return this.#client;
  }

  /**
   * Drops the connection at once (Ctrl-C during a command, or a connection found lost): what is
   * under way on it fails, keeping partial files, and the next request connects again.
   */
  drop(): void {
    this.#generation++;
    this.#client?.abort();
    this.#client = undefined;
    this.#queue = Promise.resolve(); // requests on the old connection end by themselves
  }

  /**
   * The entries of the remote folder `components` for Tab completion, listed once per folder and
   * session (`undefined` when it is a file). A failed listing is not kept.
   */
  folderEntries(components: readonly string[]): Promise<ListEntry[] | undefined> {
    const key = components.join("/");
    let listing = this.#listings.get(key);
    if (!listing) {
      listing = this.use((client) => listRemoteFolder(client, components));
      this.#listings.set(key, listing);
      listing.catch(() => this.#listings.delete(key));
    }
    return listing;
  }

  /** Forgets the cached listings (after an upload changed what is on the server). */
  forgetListings(): void {
    this.#listings.clear();
  }

  /** Ends the session politely. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.close();
  }
}
