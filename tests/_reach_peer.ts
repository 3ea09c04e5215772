/**
 * A small program the namespace tests run inside their namespaces (`ip netns exec NS deno run -A
 * tests/_reach_peer.ts ROLE ...`) for what is not ferry itself: a recording TCP tap, a fake
 * announcer (an impostor ferry server announcing someone else's identifier), malformed datagrams,
 * a finder that prints what it hears, a plain TCP dial. Ferry's own servers, relay and clients in
 * those tests are the real `ferry` command.
 *
 * Each role prints one JSON object per line on stdout (`{"event": ...}`) and logs on stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { writeAll } from "../lib/_fs.ts";
import {
  ANNOUNCE_GROUP,
  ANNOUNCE_PORT,
  encodeAnnouncement,
  findServers,
  startAnnouncer,
} from "../lib/net/announce.ts";
import { startServer } from "../lib/server/server.ts";

function say(event: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ event, ...fields }));
}

function hostPort(text: string): { hostname: string; port: number } {
  const index = text.lastIndexOf(":");
  return { hostname: text.slice(0, index), port: Number(text.slice(index + 1)) };
}

const [role, ...rest] = Deno.args;
const { values, positionals } = parseArgs({
  args: rest,
  allowPositionals: true,
  options: {
    root: { type: "string" },
    identifier: { type: "string" },
    port: { type: "string" },
    listen: { type: "string" },
    target: { type: "string" },
    out: { type: "string" },
    timeout: { type: "string" },
  },
});

const stopped = new Promise<void>((resolve) => {
  Deno.addSignalListener("SIGTERM", () => resolve());
  Deno.addSignalListener("SIGINT", () => resolve());
});

switch (role) {
  case "tap": {
    // A TCP proxy from --listen to --target that writes every byte it forwards, both ways, to
    // files in --out (one per direction and connection).
    const listener = Deno.listen(hostPort(values.listen!));
    say("listening", { port: listener.addr.port });
    let count = 0;
    const pump = async (from: Deno.Conn, to: Deno.Conn, path: string) => {
      using file = await Deno.open(path, { write: true, create: true });
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const read = await from.read(buffer);
          if (read === null) break;
          await writeAll(file, buffer.subarray(0, read));
          await writeAll(to, buffer.subarray(0, read));
        }
      } catch {
        // cut
      }
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // closed
        }
      }
    };
    const serving = (async () => {
      for await (const conn of listener) {
        const index = ++count;
        const target = await Deno.connect(hostPort(values.target!)).catch(() => undefined);
        if (!target) {
          conn.close();
          continue;
        }
        void pump(conn, target, join(values.out!, `${index}-up.bin`));
        void pump(target, conn, join(values.out!, `${index}-down.bin`));
      }
    })();
    await stopped;
    listener.close();
    await serving.catch(() => {});
    break;
  }

  case "fake-announce": {
    // Announces --identifier for --port, where a ferry server with a code of its own listens:
    // an impostor. Its log says how many handshakes it was offered.
    const impostor = await startServer({
      root: values.root!,
      secret: crypto.getRandomValues(new Uint8Array(16)),
      hostname: "0.0.0.0",
      port: Number(values.port),
      log: (line) => console.error(line),
    });
    const announcer = await startAnnouncer({
      port: impostor.port,
      identifiers: () => [values.identifier!],
      intervalMs: 200,
    });
    say("listening", { port: impostor.port });
    await stopped;
    await announcer.close();
    await impostor.shutdown(0);
    break;
  }

  case "noise": {
    // Malformed and oversized datagrams to the announcement group, every 20 ms, until stopped.
    const dgram = (await import("node:dgram")).default;
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
    await new Promise<void>((resolve) => socket.bind(0, () => resolve()));
    const address =
      Deno.networkInterfaces().find(({ family, address }) =>
        family === "IPv4" && !address.startsWith("127.")
      )!.address;
    socket.setMulticastInterface(address);
    // Flawed announcements of --identifier (K7QD by default), and random bytes.
    const identifier = values.identifier ?? "K7QD";
    const valid = encodeAnnouncement(7878, [identifier]);
    // Lowercase, with a look-alike letter in front: never an identifier in canonical form.
    const misspelt = new TextEncoder().encode(`i${identifier.slice(1).toLowerCase()}`);
    const variants = [
      () => crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 1400))),
      () => Uint8Array.of(...valid.subarray(0, 9), ...misspelt),
      () => Uint8Array.of(...valid.subarray(0, 8), 200, ...valid.subarray(9)), // a lying count
      () => Uint8Array.of(...valid, ...new Uint8Array(200)), // oversized
    ];
    let sent = 0;
    const timer = setInterval(() => {
      socket.send(variants[sent++ % variants.length]!(), ANNOUNCE_PORT, ANNOUNCE_GROUP);
    }, 20);
    say("listening");
    await stopped;
    clearInterval(timer);
    socket.close();
    break;
  }

  case "find": {
    for await (
      const candidate of findServers(values.identifier!, {
        timeoutMs: Number(values.timeout ?? 2000),
      })
    ) {
      say("candidate", { ...candidate });
    }
    say("done");
    break;
  }

  case "dial": {
    // One TCP connection attempt to positionals[0], within --timeout ms.
    const signal = AbortSignal.timeout(Number(values.timeout ?? 2000));
    try {
      const conn = await Deno.connect({ ...hostPort(positionals[0]!), signal });
      conn.close();
      say("dial", { ok: true });
    } catch (error) {
      say("dial", { ok: false, error: error instanceof Error ? error.message : String(error) });
    }
    break;
  }

  default:
    console.error(`unknown role ${role}`);
    Deno.exit(2);
}
