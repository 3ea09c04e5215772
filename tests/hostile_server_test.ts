/**
 * The client treats the server as untrusted too: a server that stalls, lies about sizes or
 * sends garbage gets a clear error, never a hang or a corrupt file under its final name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryClient } from "../lib/client/client.ts";
import { MAX_LISTING_ENTRIES } from "../lib/protocol/constants.ts";
import { codeSecret, generateCode } from "../lib/code.ts";
import { ConnectionError, ProtocolError, RemoteError } from "../lib/errors.ts";
import { RecordType } from "../lib/protocol/framing.ts";
import { decodeClientMessage } from "../lib/protocol/messages.ts";
import { PARTIAL_PREFIX } from "../lib/protocol/remote_path.ts";
import { tempDir } from "./_helpers.ts";
import { fakeServer } from "./_fake_server.ts";

Deno.test("hostile server: one that stops answering is hung up on with a clear error", async () => {
  const secret = codeSecret(generateCode());
  const release = Promise.withResolvers<void>();
  await using server = fakeServer(secret, async ({ reader }) => {
    await reader.next(); // the request, never answered
    await release.promise;
  });
  const client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
    idleTimeoutMs: 300,
  });
  await assert.rejects(
    () => client.list(""),
    (error) => error instanceof ConnectionError && /stopped responding/.test(error.message),
  );
  release.resolve();
  await client.close();
});

Deno.test("hostile server: more bytes than the announced size end the download, nothing is kept under the final name", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    const request = decodeClientMessage((await reader.next()).payload);
    assert.equal(request.t, "get");
    await send({ t: "file", size: 4, mtime: 0, mode: 0o644, offset: 0 });
    await writer.send(RecordType.data, new TextEncoder().encode("too many bytes"));
    await reader.next().catch(() => {});
  });
  await using out = await tempDir();
  const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
  await assert.rejects(
    () => client.download("x.bin", out.path, "x.bin"),
    (error) =>
      error instanceof ProtocolError &&
      /sent more than the \d+ bytes announced/.test(error.message),
  );
  await client.close();
  const names = [];
  for await (const entry of Deno.readDir(out.path)) names.push(entry.name);
  assert.ok(!names.includes("x.bin"), "no file under the final name");
});

Deno.test("hostile server: a wrong SHA-256 at the end keeps nothing, not even the partial file", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    await reader.next();
    await send({ t: "file", size: 5, mtime: 0, mode: 0o644, offset: 0 });
    await writer.send(RecordType.data, new TextEncoder().encode("hello"));
    await send({ t: "file-end", sha256: "0".repeat(64) });
    await reader.next().catch(() => {});
  });
  await using out = await tempDir();
  const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
  await assert.rejects(() => client.download("x.bin", out.path, "x.bin"), /does not match/);
  await client.close();
  await assert.rejects(() => Deno.lstat(join(out.path, "x.bin")), Deno.errors.NotFound);
  await assert.rejects(
    () => Deno.lstat(join(out.path, PARTIAL_PREFIX + "x.bin")),
    Deno.errors.NotFound,
  );
});

Deno.test("hostile server: an endless listing is cut off at MAX_LISTING_ENTRIES", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader }, send) => {
    await reader.next();
    const entries = Array.from({ length: 256 }, (_, index) => ({
      name: `f${index}`,
      type: "file" as const,
      size: 0,
      mtime: 0,
      mode: 0o644,
    }));
    try {
      while (true) await send({ t: "listing", entries, done: false });
    } catch {
      // the client hung up, as it should
    }
  });
  const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
  await assert.rejects(
    () => client.list(""),
    (error) =>
      error instanceof ProtocolError && error.message.includes(String(MAX_LISTING_ENTRIES)),
  );
  await client.close();
});

Deno.test("hostile server: control characters in its error text are escaped, never sent to the terminal", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader }, send) => {
    await reader.next();
    await send({
      t: "error",
      code: "not-found",
      message: "gone\u001b[2J\u001b]0;pwned\u0007\u202e",
    });
    await reader.next().catch(() => {});
  });
  const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
  const error = await client.list("").catch((error) => error);
  await client.close();
  assert.ok(error instanceof RemoteError);
  assert.equal(error.code, "not-found");
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f\u202e]/);
  assert.match(error.message, /\\x1b\[2J/);
});

Deno.test("hostile server: an error code the client does not know ends only that request, as `error`", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    // A newer server's code, then one of the client's own codes passed off as the server's.
    for (const code of ["quota-exceeded", "auth"]) {
      await reader.next();
      const raw = JSON.stringify({ t: "error", code, message: "refused" });
      await writer.send(RecordType.control, new TextEncoder().encode(raw));
    }
    await reader.next();
    await send({ t: "listing", entries: [], done: true });
    await reader.next().catch(() => {});
  });
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
  });
  for (let attempt = 0; attempt < 2; attempt++) {
    const error = await client.list("").catch((error) => error);
    assert.ok(error instanceof RemoteError, String(error));
    assert.equal(error.code, "error");
    assert.equal(error.message, "refused");
  }
  assert.deepEqual(await client.list(""), []);
});

Deno.test("hostile server: fewer bytes than announced, or an offset nobody asked for, end the download", async () => {
  const secret = codeSecret(generateCode());
  await using out = await tempDir();
  {
    await using server = fakeServer(secret, async ({ reader, writer }, send) => {
      await reader.next();
      await send({ t: "file", size: 10, mtime: 0, mode: 0o644, offset: 0 });
      await writer.send(RecordType.data, new TextEncoder().encode("short"));
      await send({ t: "file-end", sha256: "0".repeat(64) });
      await reader.next().catch(() => {});
    });
    const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
    await assert.rejects(
      () => client.download("x.bin", out.path, "x.bin"),
      (error) => error instanceof ProtocolError && /sent 5 of 10 bytes/.test(error.message),
    );
    await client.close();
  }
  {
    await using server = fakeServer(secret, async ({ reader }, send) => {
      await reader.next();
      await send({ t: "file", size: 10, mtime: 0, mode: 0o644, offset: 7 });
      await reader.next().catch(() => {});
    });
    const client = await FerryClient.connect({ hostname: "127.0.0.1", port: server.port, secret });
    await assert.rejects(
      () => client.download("y.bin", out.path, "y.bin"),
      (error) => error instanceof ProtocolError && /offset/.test(error.message),
    );
    await client.close();
  }
  await assert.rejects(() => Deno.lstat(join(out.path, "x.bin")), Deno.errors.NotFound);
  await assert.rejects(() => Deno.lstat(join(out.path, "y.bin")), Deno.errors.NotFound);
});

Deno.test("hostile server: empty data records forever are no progress: the download is ended as stalled", async () => {
  const secret = codeSecret(generateCode());
  await using server = fakeServer(secret, async ({ reader, writer }, send) => {
    const request = decodeClientMessage((await reader.next()).payload);
    assert.equal(request.t, "get");
    await send({ t: "file", size: 10, mtime: 0, mode: 0o644, offset: 0 });
    const until = performance.now() + 10_000;
    while (performance.now() < until) {
      await writer.send(RecordType.data, new Uint8Array(0));
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
  });
  await using out = await tempDir();
  await using client = await FerryClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    secret,
    idleTimeoutMs: 400,
  });
  await assert.rejects(
    () => client.download("x.bin", out.path, "x.bin"),
    (error) => error instanceof ConnectionError && /stopped responding/.test(error.message),
  );
});
