/**
 * The codes a running server accepts, kept in step with their files: {@link ServerCodes}. The
 * default code is a fixed secret, or the code file (read again, so `ferry code --force` takes
 * effect at once); the named codes come from the code store (read again, so `ferry code add` and
 * `ferry code revoke` take effect at once), each with its rights, folder and expiry. The log says
 * when a code was added, changed, revoked, replaced or expired, and each problem reading a file
 * once. When each code was last used is kept in memory and written now and then.
 *
 * @module
 */
import { codeIdentifier, codeSecret, DEFAULT_IDENTIFIER } from "../code.ts";
import { CodeFileWatch } from "../code_file.ts";
import {
  type CodeStoreWatch,
  DEFAULT_CODE_NAME,
  type NamedCode,
  writeLastUse,
} from "../code_store.ts";
import type { ServeMode } from "../protocol/messages.ts";
import { sanitizeForDisplay } from "../protocol/remote_path.ts";

/** A code the server accepts: what a session that authenticated with it may do. */
export interface ActiveCode {
  /** Its name: `default` for the default code, else the name it was added under. */
  readonly name: string;
  /** Its public identifier (`0000` for a default code of 16 symbols). */
  readonly identifier: string;
  /** The PAKE secret (see `codeSecret`). */
  readonly secret: Uint8Array;
  /** What it allows, within the server's own mode (`read-write` for the default code). */
  readonly rights: ServeMode;
  /** The folder its holders see as the root, as a remote path; `""` for the whole folder. */
  readonly scope: string;
  /** When it stops working, in ms since the epoch (named codes only). */
  readonly expires?: number;
}

/** How often, at most, a server writes down when its codes were last used. */
export const LAST_USE_SAVE_INTERVAL_MS = 10_000;

/** Where a server's codes come from; see {@link ServerCodes}. */
export interface ServerCodesOptions {
  /** The default code: a fixed secret, or the code file that holds it; none when omitted. */
  fallback?: Uint8Array | CodeFileWatch;
  /** The store of named codes; none when omitted. */
  store?: CodeStoreWatch;
  /** Where to write when each code was last used (see `lastUsePath`); nowhere when omitted. */
  lastUseFile?: string;
  /** The clock that decides expiry (ms since the epoch); `Date.now` by default. */
  now?: () => number;
  /** Receives one line per change or problem. */
  log: (line: string) => void;
}

/** The codes one server accepts now. Create with {@link ServerCodes.open}. */
export class ServerCodes {
  #fallback: Uint8Array | CodeFileWatch | undefined;
  #store: CodeStoreWatch | undefined;
  #lastUseFile: string | undefined;
  #now: () => number;
  #log: (line: string) => void;
  #byIdentifier = new Map<string, ActiveCode>();
  #fallbackProblem: string | undefined;
  #storeProblem: string | undefined;
  #lastUseProblem: string | undefined;
  #expiredSeen = new Set<ActiveCode>();
  #refreshing: Promise<void> | undefined;
  #used = new Map<string, number>();
  #unsaved = false;
  #savedAt = 0;
  #saving: Promise<void> | undefined;

  private constructor(options: ServerCodesOptions) {
    this.#fallback = options.fallback;
    this.#store = options.store;
    this.#lastUseFile = options.lastUseFile;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
  }

  /** Reads the files once and logs the named codes in force. */
  static async open(options: ServerCodesOptions): Promise<ServerCodes> {
    const codes = new ServerCodes(options);
    await codes.#read(true);
    return codes;
  }

  /** Whether anything can change without a restart: a code file or a store to read again. */
  get watched(): boolean {
    return this.#fallback instanceof CodeFileWatch || this.#store !== undefined;
  }

  /** The codes in force now (expired ones included). */
  get all(): readonly ActiveCode[] {
    return [...this.#byIdentifier.values()];
  }

  /**
   * Reads the code file and the store again, putting what they hold in force and logging what
   * changed, and notes codes that have expired. Calls made while a read is under way share it.
   * Never throws: a file that cannot be read keeps its codes in force, logged once per problem.
   */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read(false).finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  /** The code with `identifier`, if there is one and it has not expired. */
  find(identifier: string): ActiveCode | undefined {
    const code = this.#byIdentifier.get(identifier);
    return code === undefined || this.#expired(code) ? undefined : code;
  }

  /**
   * The identifiers of the codes that work now (not expired), the default code's first: what a
   * server announces on the LAN and registers at a relay.
   */
  get identifiers(): string[] {
    return this.all.filter((code) => !this.#expired(code)).map((code) => code.identifier);
  }

  /** Whether `identifier` belongs to a code in force (expired or not). */
  has(identifier: string): boolean {
    return this.#byIdentifier.has(identifier);
  }

  /**
   * Why a session that authenticated with `code` must end now, or `undefined` while the code is
   * still in force as it was: replaced, revoked, changed, or expired.
   */
  endOf(active: ActiveCode): string | undefined {
    const current = this.#byIdentifier.get(active.identifier);
    if (active.name === DEFAULT_CODE_NAME) {
      return current === active ? undefined : "the connection code was replaced";
    }
    if (current === undefined || current.name !== active.name) {
      return `code "${active.name}" was revoked`;
    }
    if (current !== active) return `code "${active.name}" was changed`;
    if (this.#expired(active)) return `code "${active.name}" expired`;
    return undefined;
  }

  /** Notes that a session authenticated with `code` now (see {@link saveLastUse}). */
  noteUse(code: ActiveCode): void {
    this.#used.set(code.identifier, this.#now());
    this.#unsaved = true;
  }

  /**
   * Writes when each code was last used, if anything is new and the last write is at least
   * {@link LAST_USE_SAVE_INTERVAL_MS} old (or `now` is set: on shutdown). A failure is logged once
   * and tried again later.
   */
  saveLastUse(now = false): Promise<void> {
    const file = this.#lastUseFile;
    if (file === undefined || !this.#unsaved || this.#saving) {
      return this.#saving ?? Promise.resolve();
    }
    if (!now && this.#now() - this.#savedAt < LAST_USE_SAVE_INTERVAL_MS) return Promise.resolve();
    this.#unsaved = false;
    this.#savedAt = this.#now();
    const keep = new Set(this.#byIdentifier.keys());
    this.#saving = writeLastUse(file, this.#used, keep)
      .then(() => this.#lastUseProblem = undefined)
      .catch((error) => {
        this.#unsaved = true;
        const problem = error instanceof Error ? error.message : String(error);
        if (problem !== this.#lastUseProblem) {
          this.#lastUseProblem = problem;
          this.#line(`${problem}; the last use of codes is kept in memory only`);
        }
      })
      .finally(() => this.#saving = undefined);
    return this.#saving;
  }

  async #read(first: boolean): Promise<void> {
    const fallback = this.#fallback;
    if (fallback instanceof CodeFileWatch) {
      const { changed, problem } = await fallback.refresh();
      if (changed) this.#line("connection code replaced: the old code is refused");
      if (problem !== this.#fallbackProblem) {
        this.#fallbackProblem = problem;
        if (problem !== undefined) this.#line(`${problem}; the code in force is kept`);
      }
    }
    const store = this.#store;
    if (store !== undefined) {
      const { changed, before, problem } = await store.refresh();
      if (changed && !first) this.#logChanges(before ?? [], store.codes);
      if (problem !== this.#storeProblem) {
        this.#storeProblem = problem;
        if (problem !== undefined) this.#line(`${problem}; the named codes in force are kept`);
      }
    }
    this.#rebuild();
    if (first && store !== undefined && store.codes.length > 0) {
      this.#line(`named codes: ${store.codes.map(describeCode).join("; ")}`);
    }
    for (const active of this.#byIdentifier.values()) {
      if (this.#expired(active) && !this.#expiredSeen.has(active)) {
        this.#expiredSeen.add(active);
        this.#line(`code "${active.name}" expired: it is refused, and its sessions are closed`);
      }
    }
  }

  /** Puts the codes of the files in force, keeping the very objects of codes that did not change. */
  #rebuild(): void {
    const previous = this.#byIdentifier;
    const next = new Map<string, ActiveCode>();
    const keep = (code: ActiveCode) => {
      const old = previous.get(code.identifier);
      next.set(code.identifier, old !== undefined && sameCode(old, code) ? old : code);
    };
    const fallback = this.#fallback;
    if (fallback instanceof CodeFileWatch) {
      keep({
        name: DEFAULT_CODE_NAME,
        identifier: codeIdentifier(fallback.code),
        secret: codeSecret(fallback.code),
        rights: "read-write",
        scope: "",
      });
    } else if (fallback !== undefined) {
      keep({
        name: DEFAULT_CODE_NAME,
        identifier: DEFAULT_IDENTIFIER,
        secret: fallback,
        rights: "read-write",
        scope: "",
      });
    }
    for (const named of this.#store?.codes ?? []) {
      if (next.has(named.identifier)) continue; // the default code's identifier: it wins
      keep(activeOf(named));
    }
    this.#byIdentifier = next;
  }

  #logChanges(before: readonly NamedCode[], after: readonly NamedCode[]): void {
    const old = new Map(before.map((entry) => [entry.name, entry]));
    const now = new Map(after.map((entry) => [entry.name, entry]));
    for (const entry of after) {
      const was = old.get(entry.name);
      if (was === undefined) this.#line(`code "${entry.name}" added: ${describeCode(entry)}`);
      else if (!sameCode(activeOf(was), activeOf(entry))) {
        this.#line(`code "${entry.name}" changed: ${describeCode(entry)}`);
      }
    }
    for (const entry of before) {
      if (!now.has(entry.name)) {
        this.#line(`code "${entry.name}" revoked: it is refused, and its sessions are closed`);
      }
    }
  }

  #expired(code: ActiveCode): boolean {
    return code.expires !== undefined && this.#now() >= code.expires;
  }

  #line(message: string): void {
    this.#log(`${new Date().toISOString()} ${message}`);
  }
}

function activeOf(code: NamedCode): ActiveCode {
  return {
    name: code.name,
    identifier: code.identifier,
    secret: new TextEncoder().encode(code.secret),
    rights: code.rights,
    scope: code.scope,
    ...(code.expires === undefined ? {} : { expires: code.expires }),
  };
}

function sameCode(a: ActiveCode, b: ActiveCode): boolean {
  return a.name === b.name && a.identifier === b.identifier && a.rights === b.rights &&
    a.scope === b.scope && a.expires === b.expires && a.secret.length === b.secret.length &&
    a.secret.every((byte, index) => byte === b.secret[index]);
}

/** `client (K7QD, read-only, folder photos, expires 2025-06-01T00:00:00.000Z)`: never the secret. */
function describeCode(entry: NamedCode): string {
  const parts = [
    entry.identifier,
    entry.rights,
    entry.scope === "" ? "whole folder" : `folder ${sanitizeForDisplay(entry.scope)}`,
    entry.expires === undefined ? "no expiry" : `expires ${new Date(entry.expires).toISOString()}`,
  ];
  return `${entry.name} (${parts.join(", ")})`;
}
