/**
 * ferry as a library: serve a folder, or open a client and list, download and upload, from any
 * Deno program, with the same secure channel and the same checks as the `ferry` command.
 *
 * Both sides need the same connection code; {@link codeSecret} turns it into the bytes the PAKE
 * uses. Permissions: the server needs `--allow-net=<host:port>` and read/write on the folder; the
 * client needs `--allow-net=<host:port>` and read (uploads) or write (downloads) on local paths.
 *
 * @example Serve a folder and fetch a file from it
 * ```ts
 * import { codeSecret, FerryClient, generateCode, startServer } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const folder = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${folder}/hello.txt`, "hello");
 * const secret = codeSecret(generateCode());
 * const server = await startServer({
 *   root: folder,
 *   secret,
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   log: () => {},
 * });
 *
 * const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
 * const names = (await client.list("")).map((entry) => entry.name);
 * assert.deepEqual(names, ["hello.txt"]);
 *
 * const downloads = await Deno.makeTempDir();
 * const result = await client.download("hello.txt", downloads, "hello.txt");
 * assert.equal(await Deno.readTextFile(result.name), "hello");
 *
 * await client.close();
 * await server.shutdown();
 * await Deno.remove(folder, { recursive: true });
 * await Deno.remove(downloads, { recursive: true });
 * ```
 *
 * @example Upload a folder, several files at once
 * ```ts
 * import { codeSecret, FerryClient, planUpload, putPaths, startServer } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const served = await Deno.makeTempDir();
 * const local = await Deno.makeTempDir();
 * await Deno.mkdir(`${local}/photos`);
 * await Deno.writeTextFile(`${local}/photos/a.jpg`, "not really a photo");
 * const secret = codeSecret("ABCD-EFGH-JKMN-PQRS");
 * const server = await startServer({ root: served, secret, hostname: "127.0.0.1", port: 0, log: () => {} });
 *
 * await using client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
 * const plan = await planUpload([`${local}/photos`]);
 * await putPaths(client, plan, { remoteDir: "", force: false });
 * assert.equal(await Deno.readTextFile(`${served}/uploaded_photos/a.jpg`), "not really a photo");
 *
 * await client.close();
 * await server.shutdown();
 * await Deno.remove(served, { recursive: true });
 * await Deno.remove(local, { recursive: true });
 * ```
 *
 * @module
 */
export { FerryServer, startServer } from "./lib/server/server.ts";
export type { ServerOptions } from "./lib/server/server.ts";
export type { IdentifierThrottleOptions, PenaltyOptions } from "./lib/server/penalty.ts";
export type { RepeatedLogOptions } from "./lib/server/repeated_log.ts";
export type { KeptPrefix } from "./lib/transfer/resume.ts";
export type {
  CommitOptions,
  EntryInfo,
  FileStore,
  PendingFile,
  StoredFile,
  TargetKind,
  WalkOptions,
} from "./lib/store/store.ts";
export { LocalStore } from "./lib/store/local.ts";
export { MemoryStore } from "./lib/store/memory.ts";
export type { Accepted, Listen, Listener, Peer, Socket } from "./lib/net/socket.ts";
export { FerryClient } from "./lib/client/client.ts";
export type { ClientSocket, Dial } from "./lib/net/dial.ts";
export type {
  ConnectOptions,
  ListOptions,
  Progress,
  RequestedDownload,
  SentUpload,
  TransferOptions,
  TransferResult,
} from "./lib/client/client.ts";
export { checkDownloadTargets, getPaths } from "./lib/client/get_paths.ts";
export { planUpload, putPaths } from "./lib/client/put_paths.ts";
export type { GetOptions } from "./lib/client/get_paths.ts";
export type { PutOptions, UploadItem, UploadPlan } from "./lib/client/put_paths.ts";
export type { TransferEvent } from "./lib/client/events.ts";
export { codeIdentifier, codeSecret, formatCode, generateCode, normaliseCode } from "./lib/code.ts";
export { readCodeFile, resolveCode, writeCodeFile } from "./lib/code_file.ts";
export type {
  AccessMode,
  ListEntry,
  ServeMode,
  SkippedEntry,
  Welcome,
} from "./lib/protocol/messages.ts";
export { WIRE_ERROR_CODES, WireError } from "./lib/protocol/wire_errors.ts";
export type { WireErrorCode } from "./lib/protocol/wire_errors.ts";
export {
  AuthenticationError,
  ConnectionError,
  ExistsError,
  FerryError,
  IntegrityError,
  NotFoundError,
  PathError,
  ProtocolError,
  RemoteError,
  UsageError,
} from "./lib/errors.ts";
export { VERSION } from "./lib/version.ts";
