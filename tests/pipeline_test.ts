/**
 * Many small files without a round trip each (issue 11): a folder download sends the next `get`s
 * before the first answer is read, and still lands every file whole, in order, under its name.
 * A fake server shows it: it holds its answers back until several requests have arrived, which a
 * client asking one file at a time would never send.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { getPaths } from "../lib/client/get_paths.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { decodeClientMessage, type ListEntry } from "../lib/protocol/messages.ts";
import { tempDir } from "./_helpers.ts";
import { fakeServer } from "./_fake_server.ts";

const FILES = 12;
/** Answers are held until this many `get`s are waiting. */
const HELD = 6;

Deno.test("a folder download asks for the next files before the first answer comes", async () => {
  const secret = codeSecret(generateCode());
  const content = (index: number) => new TextEncoder().encode(`file number ${index}\n`);
  const entries: ListEntry[] = Array.from({ length: FILES }, (_, index) => ({
    name: `f${String(index).padStart(2, "0")}.txt`,
    type: "file",
    size: content(index).length,
    mtime: 0,
    mode: 0o644,
  }));
  const mostWaiting: number[] = [];
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    // `ferry get tree` first asks for a file, and lists the folder once told it is one.
    const first = decodeClientMessage((await reader.next()).payload);
    strictEqual(first.t, "get");
    await send({ t: "error", code: "is-dir", message: "tree is a folder" });
    const list = decodeClientMessage((await reader.next()).payload);
    strictEqual(list.t, "list");
    await send({ t: "listing", entries, done: true });
    const waiting: string[] = [];
    for (let answered = 0; answered < FILES;) {
      if (waiting.length < HELD && answered + waiting.length < FILES) {
        const request = decodeClientMessage((await reader.next()).payload);
        if (request.t === "get") waiting.push(request.path);
        continue;
      }
      mostWaiting.push(waiting.length);
      const path = waiting.shift()!;
      const index = Number(path.slice(-6, -4));
      const bytes = content(index);
      await send({ t: "file", size: bytes.length, mtime: 0, mode: 0o644, offset: 0 });
      await writer.write(RecordType.data, bytes);
      await send({ t: "file-end", sha256: "" });
      answered++;
    }
    await reader.next(); // the client's end
  });
  await using out = await tempDir();
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
    timeoutMs: 5000,
    idleTimeoutMs: 5000,
  });
  const results = await getPaths(client, ["tree"], { outputDir: out.path, force: false });
  strictEqual(results.length, FILES);
  strictEqual(Math.max(...mostWaiting), HELD, "several requests were in flight at once");
  for (let index = 0; index < FILES; index++) {
    const name = `f${String(index).padStart(2, "0")}.txt`;
    deepStrictEqual(await Deno.readFile(join(out.path, "tree", name)), content(index));
  }
});
