/**
 * A fake ferry server for client tests: it runs the real handshake and welcome, then does
 * whatever the test scripts, byte by byte if need be (hostile answers, answers held back).
 *
 * @module
 */
import { RecordType } from "../lib/protocol/framing.ts";
import { type SecureChannel, serverHandshake } from "../lib/protocol/handshake.ts";
import { encodeMessage, type ServerMessage } from "../lib/protocol/messages.ts";

/** A one-connection fake server that runs the real handshake, then `behave`. */
export function fakeServer(
  secret: Uint8Array,
  behave: (
    channel: SecureChannel,
    send: (message: ServerMessage) => Promise<void>,
  ) => Promise<void>,
): { port: number; done: Promise<void> } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    try {
      const channel = await serverHandshake(conn, secret);
      const send = (message: ServerMessage) =>
        channel.writer.send(RecordType.control, encodeMessage(message));
      await send({ t: "welcome", server: "fake", mode: "read-write", maxUpload: -1 });
      await behave(channel, send);
    } catch {
      // the client hung up
    } finally {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    done,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done;
    },
  };
}
