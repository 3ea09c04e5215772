/**
 * Where the `ferry connect` shell reads its lines: a terminal, with a prompt, line editing,
 * history and Tab completion from `node:readline`, where Ctrl-C clears the line at the prompt and
 * interrupts a running command; or a pipe, line by line with no prompt.
 *
 * On a terminal, readline keeps reading while a command runs, so that Ctrl-C (a key, not a signal,
 * with the terminal in raw mode) reaches {@link ShellLines.onInterrupt}; lines typed meanwhile
 * wait their turn, as in a shell, and Ctrl-C drops them.
 *
 * @module
 */
import process from "node:process";
import { createInterface, type Interface } from "node:readline";
import { printText } from "../output.ts";

/** The lines of a shell session. */
export interface ShellLines {
  /** The next line (prompting for it on a terminal), or `undefined` at the end (Ctrl-D, EOF). */
  next(): Promise<string | undefined>;
  /** Called when the user presses Ctrl-C while a command runs (set by whoever runs it). */
  onInterrupt: (() => void) | undefined;
  /** Stops reading (and gives the terminal back its normal mode). */
  close(): void;
}

/** What readline has but its types leave out: the line being edited, and a clean way to end it. */
interface EditedLine {
  line: string;
  cursor: number;
  /** Moves past the line being edited to a new one and forgets it. */
  clearLine(): void;
}

/** Lines read by `readline`, queued until they are asked for. */
class QueuedLines implements ShellLines {
  onInterrupt: (() => void) | undefined;
  protected readonly readline: Interface;
  #queue: string[] = [];
  #waiting: ((line: string | undefined) => void) | undefined;
  #ended = false;
  #closing = false;

  constructor(readline: Interface) {
    this.readline = readline;
    readline.on("line", (line) => {
      if (this.#waiting) this.#waiting(line);
      else this.#queue.push(line);
    });
    readline.on("close", () => {
      this.#ended = true;
      if (!this.#closing) this.ended();
      this.#waiting?.(undefined);
    });
  }

  /** Whether a line is being waited for (on a terminal: the prompt is showing). */
  get prompting(): boolean {
    return this.#waiting !== undefined;
  }

  /** Forgets the lines typed ahead. */
  protected dropQueued(): void {
    this.#queue.length = 0;
  }

  /** The input ended by itself (Ctrl-D, end of the pipe). */
  protected ended(): void {}

  /** Shows the prompt, on a terminal. */
  protected prompt(): void {}

  next(): Promise<string | undefined> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift());
    if (this.#ended) return Promise.resolve(undefined);
    this.prompt();
    return new Promise((resolve) => {
      this.#waiting = (line) => {
        this.#waiting = undefined;
        resolve(line);
      };
    });
  }

  close(): void {
    this.#closing = true;
    this.readline.close();
  }
}

/** A script read from a pipe or a file: no prompt, no echo. */
export function pipedLines(): ShellLines {
  return new QueuedLines(
    createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity }),
  );
}

/** The shell on a terminal: see the module documentation. */
class TerminalLines extends QueuedLines {
  #prompt: () => string;

  constructor(readline: Interface, prompt: () => string) {
    super(readline);
    this.#prompt = prompt;
    this.readline.on("SIGINT", () => {
      const edited = this.readline as unknown as EditedLine;
      if (this.prompting) {
        // As in bash: what was typed stays on screen, marked ^C, and a fresh prompt follows.
        this.readline.write(null, { ctrl: true, name: "e" });
        printText("^C");
        edited.clearLine();
        this.readline.prompt();
        return;
      }
      edited.line = "";
      edited.cursor = 0;
      this.dropQueued();
      this.onInterrupt?.();
    });
  }

  protected override prompt(): void {
    this.readline.setPrompt(this.#prompt());
    this.readline.prompt(true); // after a command, text typed meanwhile stays, cursor and all
  }

  protected override ended(): void {
    printText("\n"); // Ctrl-D leaves the prompt's line: the user's shell starts on a fresh one
  }
}

/**
 * The shell's lines on a terminal: `prompt()` is asked before each prompt (it shows the remote
 * folder), and `complete` completes the text before the cursor when Tab is pressed at the prompt.
 */
export function terminalLines(
  prompt: () => string,
  complete: (line: string) => Promise<[string[], string]>,
): ShellLines {
  const readline = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    historySize: 500,
    completer: (line: string, callback: (error: null, result: [string[], string]) => void) => {
      // While a command runs, the server is busy with it: nothing to complete.
      if (!lines.prompting) return callback(null, [[], line]);
      complete(line).then(
        (result) => callback(null, result),
        () => callback(null, [[], line]),
      );
    },
  });
  const lines = new TerminalLines(readline, prompt); // before any key can be read
  return lines;
}
