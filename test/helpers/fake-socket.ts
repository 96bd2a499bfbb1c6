import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A unix socket that misbehaves on purpose, for faults HAProxy cannot be made to produce on
 * demand (cut mid-answer, stall, garbage). `respond` sees everything received so far.
 */
export interface FakeSocket {
  readonly path: string;
  /** Every byte received, across connections. */
  received(): string;
  connections(): number;
  close(): Promise<void>;
}

export async function startFakeSocket(
  respond: (socket: Socket, receivedSoFar: string) => void,
): Promise<FakeSocket> {
  const dir = mkdtempSync(join(tmpdir(), "hapops-fake-"));
  const path = join(dir, "fake.sock");
  let received = "";
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let mine = "";
    socket.on("data", (d: Buffer) => {
      received += d.toString();
      mine += d.toString();
      respond(socket, mine);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    received: () => received,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

/** HAProxy's answers to the handshake hapops opens every session with. */
export const HANDSHAKE_REPLY = "\n> \n> [6]: admin\n\n> ";
