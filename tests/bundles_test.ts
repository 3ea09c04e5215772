/**
 * The `bundle` feature between a real client and server (issue 11): the server offers it in its
 * welcome, the client takes it up, and from then on the small records of a folder transfer travel
 * sealed together, so that a file costs a fraction of a cipher call instead of three; a client
 * that does not take it up (an older one) gets none, and one that sends a bundle anyway is refused.
 * The connection is tapped below the record layer: record headers are in the clear, so every
 * record's type can be counted.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { getPaths } from "../lib/client/get_paths.ts";
import { planUpload, putPaths } from "../lib/client/put_paths.ts";
import type { Dial } from "../lib/net/dial.ts";
import { BUNDLE_FEATURE } from "../lib/protocol/constants.ts";
import { MAX_RECORD_PLAINTEXT, RECORD_HEADER_BYTES, RecordType } from "../lib/protocol/framing.ts";
import { encodeMessage } from "../lib/protocol/messages.ts";
import { makeFile, sha256File, tempDir } from "./_helpers.ts";
import { assertStillServes, manualSession, startTestServer } from "./_hostile.ts";

/** Bytes of the handshake before the first record, each way (PROTOCOL.md section 2.1). */
const HANDSHAKE_FROM_SERVER = 22 + 97;
const HANDSHAKE_FROM_CLIENT = 52 + 64;
const FILES = 60;

/** Every byte a connection carried each way. */
interface Tap {
  fromServer: Uint8Array[];
  fromClient: Uint8Array[];
}

/** A dial that copies every byte read and written into `tap`. */
function tappingDial(tap: Tap): Dial {
  return async ({ hostname, port }) => {
    const conn = await Deno.connect({ hostname, port });
    return {
      async read(buffer: Uint8Array) {
        const count = await conn.read(buffer);
        if (count !== null) tap.fromServer.push(buffer.slice(0, count));
        return count;
      },
      async write(buffer: Uint8Array) {
        const count = await conn.write(buffer);
        tap.fromClient.push(buffer.slice(0, count));
        return count;
      },
      close: () => conn.close(),
      setNoDelay: (noDelay: boolean) => conn.setNoDelay(noDelay),
    };
  };
}

/** How many records of each type follow the handshake in `chunks`. */
function recordTypes(chunks: Uint8Array[], handshakeBytes: number): Map<number, number> {
  const stream = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let filled = 0;
  for (const chunk of chunks) {
    stream.set(chunk, filled);
    filled += chunk.length;
  }
  const counts = new Map<number, number>();
  const view = new DataView(stream.buffer);
  for (let offset = handshakeBytes; offset + RECORD_HEADER_BYTES <= stream.length;) {
    const type = stream[offset]!;
    counts.set(type, (counts.get(type) ?? 0) + 1);
    offset += RECORD_HEADER_BYTES + view.getUint32(offset + 1);
  }
  return counts;
}

/** All records counted in `counts`. */
function total(counts: Map<number, number>): number {
  return [...counts.values()].reduce((sum, count) => sum + count, 0);
}

/** `FILES` small files in `root/tree`; their contents by name. */
async function smallTree(root: string): Promise<Map<string, string>> {
  const contents = new Map<string, string>();
  await Deno.mkdir(join(root, "tree"), { recursive: true });
  for (let index = 0; index < FILES; index++) {
    const name = `file-${String(index).padStart(3, "0")}.txt`;
    const text = `small file ${index}\n`.repeat(index % 7 + 1);
    contents.set(name, text);
    await Deno.writeTextFile(join(root, "tree", name), text);
  }
  return contents;
}

/** A client of `server` whose connection is tapped; disposing closes it. */
async function tappedClient(server: { port: number; secret: Uint8Array }) {
  const tap: Tap = { fromServer: [], fromClient: [] };
  const client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret: server.secret,
    dial: tappingDial(tap),
  });
  return { client, tap, [Symbol.asyncDispose]: () => client[Symbol.asyncDispose]() };
}

/** Every file of `contents` is in `folder`, byte for byte. */
async function assertSame(folder: string, contents: Map<string, string>): Promise<void> {
  for (const [name, text] of contents) {
    strictEqual(await Deno.readTextFile(join(folder, name)), text, name);
  }
}

Deno.test("the server offers bundles in its welcome, and a folder download comes in bundles: far fewer records than files", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const contents = await smallTree(served.path);
  await using server = await startTestServer(served.path);
  await using tapped = await tappedClient(server);
  const { client, tap } = tapped;
  deepStrictEqual(client.welcome.features, [BUNDLE_FEATURE]);
  const results = await getPaths(client, ["tree"], { outputDir: local.path, force: false });
  strictEqual(results.length, FILES);
  await assertSame(join(local.path, "tree"), contents);

  const fromServer = recordTypes(tap.fromServer, HANDSHAKE_FROM_SERVER);
  ok((fromServer.get(RecordType.bundle) ?? 0) > 0, "the server sent bundles");
  // Without bundles: the welcome, `is-dir`, the listing, and three records per file.
  ok(total(fromServer) < FILES / 2, `${total(fromServer)} records from the server`);
});

Deno.test("a folder upload goes in bundles: the client's three records per file and the server's answers travel sealed together", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const contents = await smallTree(local.path);
  await using server = await startTestServer(served.path);
  await using tapped = await tappedClient(server);
  const { client, tap } = tapped;
  const plan = await planUpload([join(local.path, "tree")]);
  const results = await putPaths(client, plan, { remoteDir: "", force: false });
  strictEqual(results.length, FILES);
  await assertSame(join(served.path, "uploaded_tree"), contents);

  const fromClient = recordTypes(tap.fromClient, HANDSHAKE_FROM_CLIENT);
  const fromServer = recordTypes(tap.fromServer, HANDSHAKE_FROM_SERVER);
  ok((fromClient.get(RecordType.bundle) ?? 0) > 0, "the client sent bundles");
  ok((fromServer.get(RecordType.bundle) ?? 0) > 0, "the server sent bundles");
  // Without bundles: `put`, the data and `put-end` per file, and one answer per file back.
  ok(total(fromClient) < FILES * 1.5, `${total(fromClient)} records from the client`);
  ok(total(fromServer) < FILES / 2, `${total(fromServer)} records from the server`);
});

Deno.test("a single large file travels record by record, as without bundles: only small files' records are gathered", async () => {
  await using served = await tempDir();
  await using local = await tempDir();
  const size = 2 * MAX_RECORD_PLAINTEXT + 1000; // three data records, the last a small one
  await makeFile(join(served.path, "big.bin"), size, 3);
  await using server = await startTestServer(served.path);
  await using tapped = await tappedClient(server);
  const result = await tapped.client.download("big.bin", local.path, "big.bin");
  strictEqual(result.size, size);
  strictEqual(
    await sha256File(join(local.path, "big.bin")),
    await sha256File(join(served.path, "big.bin")),
  );
  const fromServer = recordTypes(tapped.tap.fromServer, HANDSHAKE_FROM_SERVER);
  // `welcome`, `file`, the three data records, `file-end`: each its own record.
  deepStrictEqual(
    [...fromServer.entries()].sort(),
    [[RecordType.control, 3], [RecordType.data, 3]],
  );
});

Deno.test("a client that does not take up bundles (an older one) gets records one by one", async () => {
  await using served = await tempDir();
  await smallTree(served.path);
  await using server = await startTestServer(served.path);
  await using session = await manualSession(server.port, server.secret);
  // Several requests at once, so that answers are finished together.
  for (let index = 0; index < 10; index++) {
    const path = `tree/file-${String(index).padStart(3, "0")}.txt`;
    const get = { t: "get", path, offset: 0, prefixSha256: "", verify: false } as const;
    await session.channel.writer.write(RecordType.control, encodeMessage(get));
  }
  await session.channel.writer.flush();
  const types: string[] = [];
  for (let index = 0; index < 10; index++) {
    types.push((await session.next())?.t ?? "data", (await session.next())?.t ?? "data");
    types.push((await session.next())?.t ?? "data");
  }
  // A bundle would have failed there: this session's reader never agreed to them.
  deepStrictEqual(types, Array(10).fill(["file", "data", "file-end"]).flat());
});

Deno.test("hostile client: a bundle sent without taking up the feature ends that connection only", async () => {
  await using served = await tempDir();
  await using server = await startTestServer(served.path);
  await using session = await manualSession(server.port, server.secret);
  session.channel.writer.useBundles(); // without taking them up in its first request
  const gather = { gather: true };
  await session.channel.writer.write(
    RecordType.control,
    new TextEncoder().encode('{"t":"list","path":"","recursive":false}'),
    gather,
  );
  await session.channel.writer.write(
    RecordType.control,
    new TextEncoder().encode('{"t":"keepalive"}'),
    gather,
  );
  await session.channel.writer.flush();
  await server.log.waitFor(/closed: Unknown record type 4/);
  await assertStillServes(server.port, server.secret);
});
