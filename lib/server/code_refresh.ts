/**
 * Reading a served code file again: the code in force for the next handshake, and the log lines
 * that say when it changed or could not be read (each problem once).
 *
 * @module
 */
import type { CodeFileWatch } from "../code_file.ts";
import type { ServerContext } from "./context.ts";

/**
 * Reads the code file `watch` again, logging a new code and (once each) a problem reading it;
 * returns the secret now in force. A file that cannot be read keeps the code in force.
 */
export async function refreshCode(
  watch: CodeFileWatch,
  context: Pick<ServerContext, "codeProblem" | "log">,
): Promise<Uint8Array> {
  const { changed, problem } = await watch.refresh();
  if (changed) {
    context.log(`${new Date().toISOString()} connection code replaced: the old code is refused`);
  }
  if (problem !== context.codeProblem) {
    context.codeProblem = problem;
    if (problem !== undefined) {
      context.log(`${new Date().toISOString()} ${problem}; the code in force is kept`);
    }
  }
  return watch.secret;
}
