import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";

/** A small HTTP server standing in for an application server behind HAProxy. */
export interface HttpBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests currently being answered (a drain waits for these). */
  readonly inFlight: number;
  /** Answer every `slow?hold=1` request held so far. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Start a backend on 127.0.0.1 (or `host`) on a free port. `GET /health` answers 200 for
 * checks; `GET .../slow?ms=N` holds the answer N ms (a long request for drain tests), and
 * `GET .../slow?hold=1` until `release()`; anything else answers with the backend's name.
 */
export function startHttpBackend(name: string, host = "127.0.0.1"): Promise<HttpBackend> {
  const sockets = new Set<Socket>();
  let inFlight = 0;
  const held = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://backend");
    if (url.pathname === "/health") {
      res.end("ok\n");
      return;
    }
    inFlight++;
    const finish = () => {
      inFlight--;
      res.end(`${name}\n`);
    };
    const ms = Number(url.searchParams.get("ms") ?? "0");
    if (url.pathname.endsWith("/slow") && url.searchParams.get("hold") === "1") held.add(finish);
    else if (url.pathname.endsWith("/slow") && ms > 0) setTimeout(finish, Math.min(ms, 3_600_000));
    else finish();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("backend has no TCP address"));
        return;
      }
      resolve({
        name,
        host,
        port: address.port,
        get inFlight() {
          return inFlight;
        },
        release: () => {
          for (const finish of held) finish();
          held.clear();
        },
        close: () =>
          new Promise<void>((done) => {
            held.clear();
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = a !== null && typeof a !== "string" ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
