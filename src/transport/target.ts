import { isIP } from "node:net";
import { UsageError } from "../errors.js";

/** Where the runtime API listens: a unix socket, plain TCP (loopback only by default), or TLS. */
export type Target =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "tls"; readonly host: string; readonly port: number };

/**
 * Parse `/path`, `unix:/path`, `tcp://host:port` or `tls://host:port` (IPv6 hosts in brackets:
 * `tcp://[::1]:9999`).
 */
export function parseTarget(text: string): Target {
  const value = text.trim();
  if (value.length === 0) throw new UsageError("socket target is empty");
  if (value.startsWith("unix:")) {
    const path = value.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    if (!path.startsWith("/") && !path.startsWith("."))
      throw new UsageError(`unix socket path must be absolute or relative with ./: ${text}`);
    return { kind: "unix", path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(value);
  if (!scheme) {
    if (value.includes("://") || /^[a-z]+:/i.test(value))
      throw new UsageError(
        `unknown socket target ${JSON.stringify(text)}: use /path, unix:/path, tcp://host:port or tls://host:port`,
      );
    return { kind: "unix", path: value };
  }
  const kind = scheme[1]!.toLowerCase();
  if (kind !== "tcp" && kind !== "tls")
    throw new UsageError(
      `unknown socket scheme ${JSON.stringify(kind + "://")}: use /path, unix:/path, tcp://host:port or tls://host:port`,
    );
  const rest = scheme[2]!;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:/[\]]+)):(\d{1,5})$/.exec(rest);
  if (!m)
    throw new UsageError(
      `socket target ${JSON.stringify(text)} needs host:port (IPv6 in brackets: ${kind}://[::1]:9999)`,
    );
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && isIP(host) !== 6)
    throw new UsageError(`socket target ${JSON.stringify(text)}: ${host} is not an IPv6 address`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535)
    throw new UsageError(`socket target ${JSON.stringify(text)}: port must be 1-65535`);
  return { kind, host, port };
}

export function formatTarget(t: Target): string {
  if (t.kind === "unix") return t.path;
  const host = isIP(t.host) === 6 ? `[${t.host}]` : t.host;
  return `${t.kind}://${host}:${t.port}`;
}

/** True for localhost, 127.0.0.0/8 and ::1 — the only hosts plain TCP may reach by default. */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || /^::ffff:127\./i.test(host);
  return false;
}
