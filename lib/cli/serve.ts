/**
 * `ferry serve`: share a folder until interrupted.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { lstatOrNull } from "../_fs.ts";
import { codeSecret, generateCode } from "../code.ts";
import { DEFAULT_CODE_FILE, resolveCode, writeCodeFile } from "../code_file.ts";
import { codeStorePath, readCodeStore } from "../code_store.ts";
import { describeError, FerryError, ServerInterruptedError, UsageError } from "../errors.ts";
import type { ServeMode } from "../protocol/messages.ts";
import { validateName } from "../protocol/remote_path.ts";
import { DEFAULT_PORT, DEFAULT_UPLOAD_PREFIX } from "../protocol/constants.ts";
import { startServer } from "../server/server.ts";
import type { ParsedCommand } from "./args.ts";
import type { serveSpec } from "./specs/serve.ts";
import { warnOfReadableCodeFile } from "./common.ts";
import { formatBytes, printError } from "./output.ts";
import { type Needed, requirePermissions } from "./permissions.ts";
import { prepareReach } from "./serve_reach.ts";

/**
 * Where the server takes its default code from: the code file (created when missing), which the
 * server keeps reading so that `ferry code --force` takes effect at once; or FERRY_CODE when no
 * file is named and none exists; or nowhere, when the code store already holds named codes (then
 * the server serves only those).
 */
async function serverCode(
  codeFile: string | undefined,
  store: string | undefined,
): Promise<{ codeFile: string } | { secret: Uint8Array } | Record<never, never>> {
  const path = codeFile ?? DEFAULT_CODE_FILE;
  if (await lstatOrNull(path) !== null) {
    await warnOfReadableCodeFile(path);
    return { codeFile: path };
  }
  if (codeFile === undefined) {
    const fromEnv = await resolveCode({}).catch(() => undefined);
    if (fromEnv?.source === "FERRY_CODE") return { secret: codeSecret(fromEnv.code) };
  }
  if (store !== undefined && (await readCodeStore(store)).length > 0) {
    printError(`No ${path}: serving the named codes of ${store} only (ferry code list)`);
    return {};
  }
  const code = generateCode();
  await writeCodeFile(path, code);
  printError(`Created ${path} with a new connection code: ${code}`);
  printError("Give this code to the people who may connect.");
  return { codeFile: path };
}

/**
 * The code store that goes with the code file `codeFile`, if ferry may read the folder it is in
 * (where `ferry code add` may create it while the server runs: the server must be able to find
 * it, and to keep it out of what it serves), and whether it may note there when codes were last
 * used. Without that permission the named codes are not served, which is said once on stderr.
 * Permissions: none (queried, never prompted).
 */
function codeStoreOf(codeFile: string): { codeStore?: string; recordLastUse: boolean } {
  const codeStore = codeStorePath(codeFile);
  const folder = dirname(resolve(codeStore));
  const granted = (descriptor: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(descriptor).state === "granted";
  if (!granted({ name: "read", path: folder })) {
    printError(
      `ferry: note: no read permission for ${folder}, so the named codes of ${codeStore} are not served (--allow-read=${folder})`,
    );
    return { recordLastUse: false };
  }
  return { codeStore, recordLastUse: granted({ name: "write", path: folder }) };
}

/**
 * Warns on stderr when `root` holds a `.git` folder at its top: serving it shares the whole history,
 * including files deleted since and anything once committed by mistake. Only a warning: serving a
 * repository on purpose is allowed. Permission: read on `root`.
 */
function warnOfGitFolder(root: string): void {
  let git: Deno.FileInfo | null;
  try {
    git = lstatOrNull(join(root, ".git"));
  } catch {
    return; // unreadable: the server will say so when it must
  }
  if (!git?.isDirectory) return;
  printError(
    `ferry: warning: ${root} holds a .git folder: its whole history, and any secret ever committed, will be shared with everyone who has the code; serve a subfolder instead if that is not what you want`,
  );
}

/** A failure to bind `hostname:port` as one line naming the address ("address already in use"). */
function listenError(error: unknown, hostname: string, port: number): unknown {
  const cannotListen = error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.AddrNotAvailable ||
    (error instanceof Error &&
      /lookup address|invalid .*host|Name or service/i.test(error.message));
  if (!cannotListen) return error;
  const reason = describeError(error).replace(/ \(os error \d+\)$/, "");
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  return new FerryError(`Cannot listen on ${shown}:${port}: ${reason.toLowerCase()}`);
}

/**
 * Runs `ferry serve` until SIGINT or SIGTERM, then shuts down gracefully.
 * Permissions: net (host:port); read and write on the folder; read (and write when it must be
 * created) on the code file.
 */
export async function runServe(
  { positionals, flags }: ParsedCommand<typeof serveSpec>,
): Promise<void> {
  const root = positionals[0] ?? ".";
  // The parser has refused --read-only with --upload-only, and converted the numbers.
  const mode: ServeMode = flags["read-only"]
    ? "read-only"
    : flags["upload-only"]
    ? "upload-only"
    : "read-write";
  const port = flags.port ?? DEFAULT_PORT;
  const maxUpload = flags["max-upload"];
  const maxConnections = flags["max-connections"];
  const handshakeTimeoutMs = flags["handshake-timeout"];
  const idleTimeoutMs = flags["idle-timeout"];
  const graceMs = flags.grace ?? 10_000;
  const uploadPrefix = flags["upload-prefix"] ?? DEFAULT_UPLOAD_PREFIX;
  if (uploadPrefix !== "") {
    try {
      validateName(uploadPrefix);
    } catch (error) {
      throw new UsageError(`Invalid --upload-prefix: ${describeError(error)}`);
    }
  }
  if (flags.host === "") throw new UsageError("Option --host needs an address (ADDR)");
  if (root === "") {
    throw new UsageError("Name the folder to share (DIR), or leave it out for this one");
  }
  const codeFile = flags["code-file"];
  const hostname = flags.host ?? "0.0.0.0";
  const listen: Needed = {
    descriptor: { name: "net", host: `${hostname}:${port}` },
    flag: `--allow-net=${hostname}:${port}`,
    why: "to listen",
  };
  // A bucket is served through its own store; a folder through the server's LocalStore.
  const bucket = /^s3:\/\//i.test(root)
    ? await (await import("./serve_bucket.ts")).openBucket(root, listen)
    : undefined;
  if (bucket === undefined) await checkFolder(root, mode, listen);
  const reach = await prepareReach(flags, hostname);
  const { codeStore, recordLastUse } = codeStoreOf(codeFile ?? DEFAULT_CODE_FILE);
  if (codeStore !== undefined && await lstatOrNull(codeStore) !== null) {
    await warnOfReadableCodeFile(codeStore);
  }
  const code = await serverCode(codeFile, codeStore);
  // A safety net: a bug in one connection's handling must not stop the others. Errors that reach
  // here are logged (one line, no stack) and the server keeps serving.
  const keepServing = (event: PromiseRejectionEvent | ErrorEvent) => {
    event.preventDefault();
    const reason = "reason" in event ? event.reason : event.error;
    printError(`ferry: internal error in one connection, still serving: ${describeError(reason)}`);
  };
  globalThis.addEventListener("unhandledrejection", keepServing);
  globalThis.addEventListener("error", keepServing);
  const server = await startServer({
    root,
    store: bucket?.store,
    ...code,
    hostname,
    port,
    uploadPrefix,
    mode,
    maxUpload,
    maxConnections,
    handshakeTimeoutMs,
    idleTimeoutMs,
    codeStore,
    recordLastUse,
    // The store and its last-use file too, by the server itself (when it may read them, which
    // it may wherever it serves).
    exclude: [resolve(codeFile ?? DEFAULT_CODE_FILE), ...reach.exclude],
    listen: reach.listen,
  }).catch((error) => {
    throw listenError(error, hostname, port);
  });
  let found: string[];
  try {
    found = await reach.start(server);
  } catch (error) {
    await server.shutdown(0);
    throw error;
  }
  const limits = [mode, maxUpload !== undefined ? `uploads up to ${formatBytes(maxUpload)}` : ""]
    .filter(Boolean).join(", ");
  const uploads = mode === "read-only" ? "" : `; uploads land as ${uploadPrefix}<name>`;
  const shownHost = server.hostname.includes(":") ? `[${server.hostname}]` : server.hostname;
  let signalled: Deno.Signal | undefined;
  const stopOn = (signal: Deno.Signal) => () => {
    if (signalled) return;
    signalled = signal;
    printError("Stopping: no new connections; transfers in progress get a moment to finish.");
    void reach.close();
    void server.shutdown(graceMs);
  };
  const onInterrupt = stopOn("SIGINT");
  const onTerminate = stopOn("SIGTERM");
  Deno.addSignalListener("SIGINT", onInterrupt);
  Deno.addSignalListener("SIGTERM", onTerminate);
  // Announced only once Ctrl-C and SIGTERM are handled: a signal right after it stops gracefully.
  const also = found.map((way) => `; ${way}`).join("");
  printError(
    `Serving ${root} on ${shownHost}:${server.port} (${limits})${uploads}${also}. Press Ctrl-C to stop.`,
  );
  const stopSweeping = bucket?.sweep();
  try {
    await server.finished;
  } finally {
    stopSweeping?.();
    Deno.removeSignalListener("SIGINT", onInterrupt);
    Deno.removeSignalListener("SIGTERM", onTerminate);
    await reach.close();
  }
  printError("Server stopped.");
  // The same calm line for both signals; Ctrl-C still exits 130, as every interrupted command.
  if (signalled === "SIGINT") throw new ServerInterruptedError("Server stopped by Ctrl-C");
}

/**
 * Checks that `root` is a folder this process may serve (read, and write unless `mode` is
 * read-only) and listen for, and warns of a `.git` folder in it.
 */
async function checkFolder(root: string, mode: ServeMode, listen: Needed): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(root);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Folder ${root} does not exist`);
    }
    throw error;
  }
  if (!info.isDirectory) throw new UsageError(`${root} is not a folder`);
  requirePermissions([
    listen,
    {
      descriptor: { name: "read", path: root },
      flag: `--allow-read=${root}`,
      why: "to serve the folder",
    },
    ...(mode === "read-only" ? [] : [{
      descriptor: { name: "write" as const, path: root },
      flag: `--allow-write=${root}`,
      why: "to store uploads",
    }]),
  ]);
  warnOfGitFolder(root);
}

/** `ferry serve`: its spec and its runner. */
