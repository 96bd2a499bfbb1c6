import { isIP } from "node:net";
import { validateName } from "../commands/validate.js";
import { UsageError, ValidationError } from "../errors.js";
import { suggestion } from "../util/suggest.js";

/** Which servers an operation applies to. `undefined` in a name part means `*`. */
export type Selector =
  | {
      readonly kind: "name";
      readonly backend?: string;
      readonly server?: string;
      readonly text: string;
    }
  | {
      readonly kind: "addr";
      readonly address: string;
      readonly port?: number;
      readonly text: string;
    }
  /** Exactly these `backend/server` names (a follow-up step on servers already chosen). */
  | { readonly kind: "list"; readonly names: readonly string[]; readonly text: string };

export interface SelectableServer {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number | undefined;
}

/** Parse `backend/server`, `backend/*`, `* /server`, `* /*` (without the space). */
export function parseSelector(text: string): Selector {
  const slash = text.indexOf("/");
  if (slash < 0)
    throw new UsageError(
      `selector ${JSON.stringify(text)} needs backend/server (or backend/*, */server, */*, or --addr <ip>)`,
    );
  const b = text.slice(0, slash);
  const s = text.slice(slash + 1);
  const part = (what: string, v: string) => (v === "*" ? undefined : validateName(what, v));
  const backend = part("backend name", b);
  const server = part("server name", s);
  return {
    kind: "name",
    text,
    ...(backend !== undefined ? { backend } : {}),
    ...(server !== undefined ? { server } : {}),
  };
}

/** Parse `--addr 10.0.0.5`, `10.0.0.5:8080`, `2001:db8::5`, `[2001:db8::5]:8080`. */
export function parseAddrSelector(text: string): Selector {
  let address = text;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    address = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const [a, p] = text.split(":");
    address = a!;
    if (!/^\d+$/.test(p!))
      throw new ValidationError(`--addr ${JSON.stringify(text)}: port must be a number`);
    port = Number(p);
  }
  if (isIP(address) === 0)
    throw new ValidationError(
      `--addr ${JSON.stringify(text)} is not an IP address (use 10.0.0.5, 10.0.0.5:8080 or [2001:db8::5]:8080)`,
    );
  if (port !== undefined && (port < 1 || port > 65535))
    throw new ValidationError(`--addr ${JSON.stringify(text)}: port must be 1-65535`);
  return { kind: "addr", text, address, ...(port !== undefined ? { port } : {}) };
}

/**
 * IPv6 addresses compare by value: `2001:db8::5`, `2001:DB8:0::5` and, for IPv4-mapped ones,
 * `::ffff:10.0.0.5` and `::ffff:a00:5` are the same host. The WHATWG URL parser canonicalises
 * IPv6 hosts, so no hand-written expansion is needed.
 */
function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  if (isIP(a) !== 6 || isIP(b) !== 6) return false;
  return canonicalIpv6(a) === canonicalIpv6(b);
}

function canonicalIpv6(a: string): string {
  return new URL(`http://[${a}]/`).hostname;
}

export function listSelector(servers: readonly { backend: string; server: string }[]): Selector {
  const names = servers.map((s) => `${s.backend}/${s.server}`);
  return { kind: "list", names, text: names.join(",") };
}

/** The one backend a selector is limited to, if any: reads can then be scoped to it. */
export function selectorBackend(sel: Selector): string | undefined {
  if (sel.kind === "name") return sel.backend;
  if (sel.kind === "list") {
    const backends = new Set(sel.names.map((n) => n.slice(0, n.indexOf("/"))));
    return backends.size === 1 ? [...backends][0] : undefined;
  }
  return undefined;
}

export function matches(sel: Selector, s: SelectableServer): boolean {
  if (sel.kind === "list") return sel.names.includes(`${s.backend}/${s.server}`);
  if (sel.kind === "addr")
    return sameAddress(sel.address, s.address) && (sel.port === undefined || sel.port === s.port);
  return (
    (sel.backend === undefined || sel.backend === s.backend) &&
    (sel.server === undefined || sel.server === s.server)
  );
}

/**
 * The servers a selector picks, in HAProxy's order. Matching nothing is a usage error that names
 * the closest existing names, so a typo never silently does nothing.
 */
export function selectServers<T extends SelectableServer>(
  sel: Selector,
  servers: readonly T[],
): T[] {
  const picked = servers.filter((s) => matches(sel, s));
  if (picked.length > 0) return picked;
  if (sel.kind === "list")
    throw new UsageError(`none of ${sel.text} exists any more (a reload?); run hapops servers`);
  if (sel.kind === "addr") {
    const ports = servers.filter((s) => sameAddress(sel.address, s.address)).map((s) => s.port);
    if (ports.length > 0)
      throw new UsageError(
        `no server has address ${sel.address} on port ${sel.port}; servers at ${sel.address} use port ${[...new Set(ports)].map((p) => p ?? "(none)").join(", ")}`,
      );
    const addrs = [...new Set(servers.map((s) => s.address))];
    throw new UsageError(`no server has address ${sel.text}; ${suggestion(sel.address, addrs)}`);
  }
  const backends = [...new Set(servers.map((s) => s.backend))];
  if (sel.backend !== undefined && !backends.includes(sel.backend))
    throw new UsageError(`no backend named ${sel.backend}; ${suggestion(sel.backend, backends)}`);
  const pool = servers.filter((s) => sel.backend === undefined || s.backend === sel.backend);
  const where = sel.backend === undefined ? "in any backend" : `in backend ${sel.backend}`;
  const names =
    sel.backend === undefined ? [...new Set(pool.map((s) => s.server))] : pool.map((s) => s.server);
  throw new UsageError(
    `no server named ${sel.server ?? "*"} ${where}; ${suggestion(sel.server ?? "", names)}`,
  );
}
