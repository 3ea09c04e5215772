/**
 * Flushing many small files together. A file is flushed (made durable) before it takes its name,
 * so that a crash, power cut included, never leaves a half-written file under a final name. On a
 * journaling file system, flushing each small file as soon as it is written costs a journal
 * commit per file; flushing a group of files once all of them are written lets the disk do the
 * work together. Measured on this project's 2-core VM (ext4 on virtio), 5,000 files of 1 KiB:
 * 6.2 s flushed one by one as they were written (32 at a time), 1.1 s written in groups of 64 and
 * then flushed, 0.5 s never flushed.
 *
 * ```ts
 * import { CommitGroup } from "./commit_group.ts";
 * import { MemoryStore } from "./memory.ts";
 *
 * const store = new MemoryStore();
 * const group = new CommitGroup({ maxFiles: 64 });
 * const upload = await store.beginUpload("a.txt");
 * await upload.write(new TextEncoder().encode("hello"));
 * const flushed = group.flushed(upload); // joins the group
 * group.flushNow(); // nothing more is coming for now
 * await flushed;
 * await upload.commit({ force: false }); // durable already: only the naming is left
 * ```
 *
 * @module
 */
import type { PendingFile } from "./store.ts";

/** When a {@link CommitGroup} flushes by itself. */
export interface CommitGroupOptions {
  /** Flush as soon as this many files wait. */
  maxFiles: number;
  /**
   * Also flush once no file joined for this long (milliseconds), for a caller that cannot tell
   * when the files stop coming. Without it, only {@link CommitGroup.flushNow} or a full group
   * flushes.
   */
  quietMs?: number;
}

interface Waiting {
  file: PendingFile;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Files written and waiting to be flushed together (see the module documentation). */
export class CommitGroup {
  readonly #maxFiles: number;
  readonly #quietMs: number | undefined;
  #waiting: Waiting[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the last file joined (`performance.now()`), for the quiet timer. */
  #lastJoined = 0;

  constructor(options: CommitGroupOptions) {
    if (!(options.maxFiles >= 1)) throw new RangeError("A commit group holds at least one file");
    this.#maxFiles = options.maxFiles;
    this.#quietMs = options.quietMs;
  }

  /** Files waiting for the next flush. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Adds `file`, all of whose bytes are written, to the group; resolves once they are durable
   * (rejects with the file's own flush error). Write nothing more to it meanwhile.
   */
  flushed(file: PendingFile): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ file, resolve, reject });
      if (this.#waiting.length >= this.#maxFiles) this.flushNow();
      else if (this.#quietMs !== undefined) {
        this.#lastJoined = performance.now();
        // One timer per quiet period, not one per file: it looks again when it fires.
        if (this.#timer === undefined) this.#armQuietTimer(this.#quietMs);
      }
    });
  }

  /** Flushes once no file has joined for `quietMs`: waits `delayMs`, then checks. */
  #armQuietTimer(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const quietFor = performance.now() - this.#lastJoined;
      if (quietFor >= this.#quietMs!) this.flushNow();
      else this.#armQuietTimer(this.#quietMs! - quietFor);
    }, delayMs);
  }

  /** Flushes every waiting file now, side by side. */
  flushNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const { file, resolve, reject } of this.#waiting.splice(0)) {
      file.flush().then(resolve, reject);
    }
  }
}
