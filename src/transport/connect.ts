import { readFileSync, statSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import type * as Tls from "node:tls";
import type { PeerCertificate, SecureContext } from "node:tls";
import { isIP } from "node:net";
import { ConfigError, GuardError, SocketError, TimeoutError, tlsReason } from "../errors.js";
import { formatTarget, isLoopbackHost, type Target } from "./target.js";

export interface TlsFiles {
  /** Client certificate (PEM) presented to HAProxy's `verify required`. */
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  /** CA that signed HAProxy's server certificate. */
  readonly ca?: string | undefined;
  /** Name to verify in the server certificate, when it differs from the host. */
  readonly servername?: string | undefined;
}

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  readonly tls?: TlsFiles | undefined;
  /** Allow plain TCP to a non-loopback host. */
  readonly insecureTcp?: boolean;
}

function readTlsFile(what: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(`cannot read TLS ${what} file ${path}: ${(e as Error).message}`);
  }
}

/**
 * One secure context per set of TLS files, for the life of the process: a fleet run opens many
 * connections with the same client certificate, and building the context (reading and parsing
 * the key and the CA) was the largest single cost of a run over 20 targets (bench/README.md).
 */
const contexts = new Map<string, SecureContext>();

function secureContext(
  tls: typeof Tls,
  files: { cert: string; key: string; ca: string },
): SecureContext {
  const id = JSON.stringify([files.cert, files.key, files.ca]);
  let ctx = contexts.get(id);
  if (!ctx) {
    ctx = tls.createSecureContext({
      cert: readTlsFile("certificate", files.cert),
      key: readTlsFile("key", files.key),
      ca: readTlsFile("CA", files.ca),
    });
    contexts.set(id, ctx);
  }
  return ctx;
}

/**
 * Open a byte stream to the runtime API. This is the only place hapops touches sockets.
 * A unix socket whose listen backlog is full answers EAGAIN (HAProxy serves `stats maxconn`
 * sessions at once, 10 by default): that is "busy", not "down", so it is retried until the
 * connect timeout.
 */
export async function connect(target: Target, opts: ConnectOptions): Promise<Socket> {
  const deadline = Date.now() + opts.connectTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectOnce(target, {
        ...opts,
        connectTimeoutMs: Math.max(1, deadline - Date.now()),
      });
    } catch (e) {
      const busy = e instanceof SocketError && e.details["errno"] === "EAGAIN";
      if (!busy || Date.now() + 10 >= deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(10 * attempt, 100)));
    }
  }
}

async function connectOnce(target: Target, opts: ConnectOptions): Promise<Socket> {
  const where = formatTarget(target);
  if (target.kind === "tcp" && !isLoopbackHost(target.host) && !opts.insecureTcp) {
    throw new GuardError(
      `refusing plain tcp:// to ${target.host}: an unencrypted runtime socket on a network is a remote control for the load balancer; use tls:// with a client certificate, or pass --insecure-tcp if you really mean it`,
    );
  }
  let socket: Socket;
  if (target.kind === "unix") {
    socket = netConnect({ path: target.path });
  } else if (target.kind === "tcp") {
    socket = netConnect({ host: target.host, port: target.port });
  } else {
    const files = opts.tls ?? {};
    if (files.cert === undefined || files.key === undefined || files.ca === undefined) {
      throw new ConfigError(
        `tls:// needs a client certificate, key and CA: set --tls-cert, --tls-key and --tls-ca (or tls: in the config)`,
      );
    }
    const servername = files.servername ?? target.host;
    // node:tls costs a few milliseconds to load; only tls:// targets pay for it.
    const tls = await import("node:tls");
    socket = tls.connect({
      host: target.host,
      port: target.port,
      secureContext: secureContext(tls, { cert: files.cert, key: files.key, ca: files.ca }),
      ...(isIP(servername) ? {} : { servername }),
      ...(files.servername !== undefined
        ? {
            checkServerIdentity: (_host: string, cert: PeerCertificate) =>
              tls.checkServerIdentity(servername, cert),
          }
        : {}),
    });
  }
  const readyEvent = target.kind === "tls" ? "secureConnect" : "connect";
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new TimeoutError(
          `no connection to ${where} within ${opts.connectTimeoutMs} ms; is the host reachable and HAProxy listening there? (--timeout raises the limit)`,
        ),
      );
    }, opts.connectTimeoutMs);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(describeConnectError(target, err));
    });
  });
}

function pathKind(path: string): "socket" | "regular file" | "directory" | "file" {
  try {
    const st = statSync(path);
    if (st.isSocket()) return "socket";
    if (st.isDirectory()) return "directory";
    return st.isFile() ? "regular file" : "file";
  } catch {
    return "socket";
  }
}

export function describeConnectError(target: Target, err: NodeJS.ErrnoException): SocketError {
  const where = formatTarget(target);
  const details = { target: where, errno: err.code };
  switch (err.code) {
    case "ENOENT":
      return new SocketError(
        "SOCKET_NOT_FOUND",
        `no socket at ${where}: is HAProxy running, and does its \`stats socket\` line use this path? (-s/--socket or HAPOPS_SOCKET selects another)`,
        details,
        { cause: err },
      );
    case "ECONNREFUSED": {
      // A path that is a file or a directory is not a socket HAProxy left behind.
      const kind = target.kind === "unix" ? pathKind(target.path) : "socket";
      if (kind !== "socket")
        return new SocketError(
          "NOT_A_SOCKET",
          `${where} is a ${kind}, not a socket: give the path of HAProxy's \`stats socket\` (-s/--socket or HAPOPS_SOCKET)`,
          details,
          { cause: err },
        );
      return new SocketError(
        "CONNECTION_REFUSED",
        target.kind === "unix"
          ? `connection refused at ${where}: HAProxy is not running or not listening there (a stale socket file stays behind after HAProxy stops)`
          : `connection refused at ${where}: nothing listens there (is HAProxy's \`stats socket\` bound to this address and port?)`,
        details,
        { cause: err },
      );
    }
    case "EACCES":
    case "EPERM":
      return new SocketError(
        "SOCKET_PERMISSION",
        `permission denied opening ${where}: run hapops through the sudo wrapper (sudo hapops ...) instead of reaching the socket directly`,
        details,
        { cause: err },
      );
    case "EAGAIN":
      return new SocketError(
        "CONNECT_FAILED",
        `${where} is not accepting connections right now (its backlog is full: HAProxy is busy, or more clients than \`stats maxconn\` allows); try again`,
        details,
        { cause: err },
      );
    case "ENOTSOCK":
      return new SocketError("CONNECT_FAILED", `${where} exists but is not a socket`, details, {
        cause: err,
      });
    default:
      if (
        err.code?.startsWith("ERR_TLS") ||
        err.code?.includes("CERT") ||
        /SSL|TLS/.test(err.message)
      )
        return new SocketError(
          "TLS_FAILED",
          `TLS handshake with ${where} failed: ${tlsReason(err.message)} (check --tls-cert/--tls-key/--tls-ca and that the socket's \`ca-file\` trusts the client certificate)`,
          details,
          { cause: err },
        );
      return new SocketError(
        "CONNECT_FAILED",
        `cannot connect to ${where}: ${err.message}`,
        details,
        { cause: err },
      );
  }
}
