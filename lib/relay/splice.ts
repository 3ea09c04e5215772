/**
 * Splicing two connections: every byte one side sends goes to the other, unchanged, in order,
 * until both sides have ended or one fails or the pair falls idle.
 *
 * Each direction reads into one fixed buffer and writes it out whole before it reads again, so a
 * side that does not read stops the other side's bytes at the relay's door (TCP's own flow control
 * pushes back to the sender) instead of piling them up in memory: a pair holds two buffers
 * ({@link SPLICE_BUFFER_BYTES} each), whatever flows through it. An end in one direction is passed
 * on as a half close, so the other direction can still finish.
 *
 * @module
 */
import { writeAll } from "../_fs.ts";
import { Watchdog } from "../net/watchdog.ts";

/** Bytes of each direction's buffer. */
export const SPLICE_BUFFER_BYTES = 64 * 1024;

/** One side of a splice: a `Deno.TcpConn` is one. */
export interface SpliceEnd {
  read(buffer: Uint8Array): Promise<number | null>;
  write(buffer: Uint8Array): Promise<number>;
  close(): void;
  /** Ends the writing half: the peer reads the end of the stream. */
  closeWrite(): Promise<void>;
}

/** How a splice ran. */
export interface SpliceResult {
  /** Bytes from the first end to the second. */
  forward: number;
  /** Bytes from the second end to the first. */
  backward: number;
  /** Why it ended: `ended` (both sides closed in order), `idle`, `closed` (from outside) or an error. */
  reason: string;
}

/** How to splice. */
export interface SpliceOptions {
  /** No byte either way for this long closes both ends. */
  idleMs: number;
  /**
   * Called before each block is passed on, with its size; a positive result is milliseconds to
   * wait first (a byte-rate limit).
   */
  pace?: (bytes: number) => number;
  /** Aborting closes both ends. */
  signal?: AbortSignal;
}

/** Splices `first` and `second` until both ends close (or one fails, or the pair is idle). */
export async function splice(
  first: SpliceEnd,
  second: SpliceEnd,
  options: SpliceOptions,
): Promise<SpliceResult> {
  let reason: string | undefined;
  const closeBoth = (why: string) => {
    reason ??= why;
    for (const end of [first, second]) {
      try {
        end.close();
      } catch {
        // closed already
      }
    }
  };
  const watchdog = new Watchdog(closeBoth);
  watchdog.arm(options.idleMs, "idle");
  const onAbort = () => closeBoth("closed");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const pump = async (from: SpliceEnd, to: SpliceEnd): Promise<number> => {
    const buffer = new Uint8Array(SPLICE_BUFFER_BYTES);
    let moved = 0;
    try {
      while (true) {
        const count = await from.read(buffer);
        if (count === null) break;
        watchdog.touch();
        const wait = options.pace?.(count) ?? 0;
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await writeAll(to, buffer.subarray(0, count));
        watchdog.touch();
        moved += count;
      }
      await to.closeWrite();
    } catch (error) {
      closeBoth(error instanceof Error ? error.message.split("\n", 1)[0]! : String(error));
    }
    return moved;
  };
  try {
    const [forward, backward] = await Promise.all([pump(first, second), pump(second, first)]);
    return { forward, backward, reason: reason ?? "ended" };
  } finally {
    watchdog.disarm();
    options.signal?.removeEventListener("abort", onAbort);
    closeBoth("ended");
  }
}
