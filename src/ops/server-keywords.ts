import { isIP } from "node:net";
import type { ServerKeyword } from "../commands/builders.js";
import { validateFilename, validateName } from "../commands/validate.js";
import { ValidationError } from "../errors.js";
import type { HaproxyVersion } from "../parse/info.js";

/**
 * The server keywords `hapops server add` passes to `add server`, as data: from which HAProxy
 * version `add server` takes each (the lists in management.txt, "add server": 2.4's is short;
 * 2.5 to 2.8 add checks, agents, SSL and track; 3.0 adds cookie; 3.1 init-state; 3.2 and later
 * list theirs with `add server help`), and what its value must look like. A keyword the running
 * version does not take, or one this table does not know, is refused before anything is sent.
 */

type Since = readonly [major: number, minor: number];

type Value =
  | { readonly kind: "flag" }
  | { readonly kind: "int"; readonly min: number; readonly max: number }
  /** HAProxy's time format: a number with an optional unit (us, ms, s, m, h, d). */
  | { readonly kind: "time" }
  | { readonly kind: "port" }
  | { readonly kind: "ip" }
  | { readonly kind: "oneOf"; readonly values: readonly string[] }
  /** `<backend>/<server>` or `<server>` of the same backend. */
  | { readonly kind: "server" }
  | { readonly kind: "file" }
  /** A host name (verifyhost, check-sni). */
  | { readonly kind: "host" }
  /** A comma-separated protocol list (alpn, check-alpn: `h2,http/1.1`). */
  | { readonly kind: "protocols" }
  /** A sample expression without spaces (sni: `str(www.example.com)`, `req.hdr(host)`). */
  | { readonly kind: "expression" }
  /** A plain token (a cookie value, a mux name). */
  | { readonly kind: "token" };

export interface KeywordSpec {
  readonly since: Since;
  readonly value: Value;
  readonly help: string;
}

const FLAG = { kind: "flag" } as const;
const TIME = { kind: "time" } as const;
const PORT = { kind: "port" } as const;
const COUNT = { kind: "int", min: 0, max: 2_147_483_647 } as const;
const POSITIVE = { kind: "int", min: 1, max: 2_147_483_647 } as const;
const TLS_VERSIONS = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"] as const;

const V24: Since = [2, 4];
const V25: Since = [2, 5];

export const SERVER_KEYWORDS: Readonly<Record<string, KeywordSpec>> = {
  // In 2.4's list already.
  weight: { since: V24, value: { kind: "int", min: 0, max: 256 }, help: "weight 0-256" },
  maxconn: { since: V24, value: COUNT, help: "connections at once (0: no limit)" },
  maxqueue: { since: V24, value: COUNT, help: "requests queued at most" },
  minconn: { since: V24, value: COUNT, help: "dynamic maxconn floor" },
  backup: { since: V24, value: FLAG, help: "used only when no other server is up" },
  "send-proxy": { since: V24, value: FLAG, help: "PROXY protocol v1 to the server" },
  "send-proxy-v2": { since: V24, value: FLAG, help: "PROXY protocol v2 to the server" },
  id: { since: V24, value: POSITIVE, help: "the server's numeric id" },
  tfo: { since: V24, value: FLAG, help: "TCP fast open" },
  proto: { since: V24, value: { kind: "token" }, help: "multiplexer (h2, fcgi...)" },
  "pool-max-conn": {
    since: V24,
    value: { kind: "int", min: -1, max: 2_147_483_647 },
    help: "idle connections kept (-1: no limit)",
  },
  "pool-low-conn": { since: V24, value: COUNT, help: "idle connections before reuse" },
  "pool-purge-delay": { since: V24, value: TIME, help: "how often idle ones are closed" },
  // From 2.5 (management.txt 2.5 to 2.8 list the same keywords).
  check: { since: V25, value: FLAG, help: "health check (hapops enables it)" },
  inter: { since: V25, value: TIME, help: "time between checks" },
  fastinter: { since: V25, value: TIME, help: "time between checks while changing" },
  downinter: { since: V25, value: TIME, help: "time between checks while down" },
  rise: { since: V25, value: POSITIVE, help: "checks to pass to be up" },
  fall: { since: V25, value: POSITIVE, help: "checks to fail to be down" },
  port: { since: V25, value: PORT, help: "the port checks use" },
  addr: { since: V25, value: { kind: "ip" }, help: "the address checks use" },
  "check-ssl": { since: V25, value: FLAG, help: "checks over TLS" },
  "check-sni": { since: V25, value: { kind: "host" }, help: "SNI of the checks" },
  "check-alpn": { since: V25, value: { kind: "protocols" }, help: "ALPN of the checks" },
  "check-proto": { since: V25, value: { kind: "token" }, help: "multiplexer of the checks" },
  "check-send-proxy": { since: V25, value: FLAG, help: "PROXY protocol on checks" },
  "agent-check": { since: V25, value: FLAG, help: "agent check (hapops enables it)" },
  "agent-port": { since: V25, value: PORT, help: "the agent's port" },
  "agent-inter": { since: V25, value: TIME, help: "time between agent checks" },
  "agent-addr": { since: V25, value: { kind: "ip" }, help: "the agent's address" },
  slowstart: { since: V25, value: TIME, help: "ramp up traffic over this time" },
  ssl: { since: V25, value: FLAG, help: "TLS to the server" },
  sni: { since: V25, value: { kind: "expression" }, help: "SNI: a sample expression" },
  verify: { since: V25, value: { kind: "oneOf", values: ["none", "required"] }, help: "" },
  verifyhost: { since: V25, value: { kind: "host" }, help: "name the certificate must have" },
  "ca-file": { since: V25, value: { kind: "file" }, help: "CAs to verify the server with" },
  crt: { since: V25, value: { kind: "file" }, help: "client certificate" },
  alpn: { since: V25, value: { kind: "protocols" }, help: "ALPN offered to the server" },
  "ssl-min-ver": { since: V25, value: { kind: "oneOf", values: TLS_VERSIONS }, help: "" },
  "ssl-max-ver": { since: V25, value: { kind: "oneOf", values: TLS_VERSIONS }, help: "" },
  "no-ssl-reuse": { since: V25, value: FLAG, help: "no TLS session reuse" },
  "no-tls-tickets": { since: V25, value: FLAG, help: "no TLS tickets" },
  "tls-tickets": { since: V25, value: FLAG, help: "TLS tickets" },
  "send-proxy-v2-ssl": { since: V25, value: FLAG, help: "PROXY v2 with TLS details" },
  "send-proxy-v2-ssl-cn": { since: V25, value: FLAG, help: "PROXY v2 with TLS details and CN" },
  track: { since: V25, value: { kind: "server" }, help: "follow another server's checks" },
  observe: { since: V25, value: { kind: "oneOf", values: ["layer4", "layer7"] }, help: "" },
  "on-error": {
    since: V25,
    value: { kind: "oneOf", values: ["fastinter", "fail-check", "sudden-death", "mark-down"] },
    help: "",
  },
  "on-marked-down": {
    since: V25,
    value: { kind: "oneOf", values: ["shutdown-sessions"] },
    help: "",
  },
  "on-marked-up": {
    since: V25,
    value: { kind: "oneOf", values: ["shutdown-backup-sessions"] },
    help: "",
  },
  "error-limit": { since: V25, value: POSITIVE, help: "errors before on-error" },
  ws: { since: V25, value: { kind: "oneOf", values: ["auto", "h1", "h2"] }, help: "" },
  cookie: { since: [3, 0], value: { kind: "token" }, help: "persistence cookie value" },
  "init-state": {
    since: [3, 1],
    value: { kind: "oneOf", values: ["fully-up", "up", "down", "fully-down"] },
    help: "operational state before the first check",
  },
};

/**
 * Keywords HAProxy takes at runtime that hapops refuses, and why (what to use instead).
 * Everything else that is not in SERVER_KEYWORDS is refused as unknown.
 */
const REFUSED: Readonly<Record<string, string>> = {
  disabled: "hapops keeps a new server out of traffic with --maint",
  enabled: "a new server is made ready unless --maint is given",
  source: "hapops does not pass source addresses at runtime; set it in haproxy.cfg",
  usesrc: "hapops does not pass source addresses at runtime; set it in haproxy.cfg",
  "agent-send": "its value has spaces, which cannot be sent as one word on the runtime API",
  "proxy-v2-options": "hapops does not pass it; set it in haproxy.cfg",
};

export function versionAtLeast(v: HaproxyVersion | undefined, since: Since): boolean {
  if (v === undefined) return true;
  return v.major > since[0] || (v.major === since[0] && v.minor >= since[1]);
}

function describeVersion(v: HaproxyVersion): string {
  return `${v.major}.${v.minor}`;
}

const TIME_RE = /^\d{1,9}(us|ms|s|m|h|d)?$/;
const TOKEN_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9*](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*$/;
const PROTOCOLS_RE = /^[A-Za-z0-9./-]{1,32}(,[A-Za-z0-9./-]{1,32})*$/;
const EXPRESSION_RE = /^[A-Za-z0-9_.:/(),-]{1,256}$/;

/** Check one keyword's value against its kind; returns it as sent. */
function checkValue(
  name: string,
  spec: KeywordSpec,
  value: string | undefined,
): string | undefined {
  const v = spec.value;
  if (v.kind === "flag") {
    if (value !== undefined)
      throw new ValidationError(
        `server keyword ${name} takes no value (got ${JSON.stringify(value)})`,
      );
    return undefined;
  }
  if (value === undefined || value.length === 0)
    throw new ValidationError(`server keyword ${name} needs a value`);
  const bad = (what: string): never => {
    throw new ValidationError(`server keyword ${name} ${JSON.stringify(value)}: ${what}`);
  };
  switch (v.kind) {
    case "int": {
      if (!/^-?\d{1,10}$/.test(value)) bad("not a whole number");
      const n = Number(value);
      if (n < v.min || n > v.max) bad(`out of range (${v.min} to ${v.max})`);
      return String(n);
    }
    case "time":
      if (!TIME_RE.test(value)) bad("not a time (a number with us, ms, s, m, h or d, as 500ms)");
      return value;
    case "port": {
      if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535)
        bad("a port is a whole number from 1 to 65535");
      return String(Number(value));
    }
    case "ip":
      if (isIP(value) === 0)
        bad("not an IP address (HAProxy does not resolve names given at runtime)");
      return value;
    case "oneOf":
      if (!v.values.includes(value)) bad(`must be one of ${v.values.join(", ")}`);
      return value;
    case "server": {
      const parts = value.split("/");
      if (parts.length > 2) bad("expected <backend>/<server> or <server>");
      for (const [i, p] of parts.entries())
        validateName(i === 0 && parts.length === 2 ? "backend name" : "server name", p);
      return value;
    }
    case "file":
      return validateFilename(`server keyword ${name}`, value);
    case "host":
      if (!HOST_RE.test(value)) bad("not a host name");
      return value;
    case "protocols":
      if (!PROTOCOLS_RE.test(value))
        bad("expected protocol names separated by commas (h2,http/1.1)");
      return value;
    case "expression":
      if (!EXPRESSION_RE.test(value))
        bad(
          "expected a sample expression without spaces, as str(www.example.com) or req.hdr(host)",
        );
      return value;
    case "token":
      if (!TOKEN_RE.test(value)) bad("only letters, digits, '.', '_' and '-'");
      return value;
  }
}

/**
 * Check the keywords of `add server` for the running version: known to hapops, taken by this
 * HAProxy, each once, values of the right form, and the combinations HAProxy needs. Throws a
 * ValidationError (exit 2, nothing sent) naming what is wrong.
 */
export function validateServerKeywords(
  keywords: readonly ServerKeyword[],
  version: HaproxyVersion | undefined,
): ServerKeyword[] {
  const seen = new Set<string>();
  const out: ServerKeyword[] = [];
  for (const [name, value] of keywords) {
    const refused = REFUSED[name];
    if (refused) throw new ValidationError(`server keyword ${name} is refused: ${refused}`);
    const spec = SERVER_KEYWORDS[name];
    if (!spec)
      throw new ValidationError(
        `${JSON.stringify(name)} is not a server keyword hapops passes to add server; it takes: ${Object.keys(SERVER_KEYWORDS).join(", ")}`,
      );
    if (!versionAtLeast(version, spec.since))
      throw new ValidationError(
        `HAProxy ${describeVersion(version!)} does not take ${name} in add server (from ${spec.since.join(".")}; management.txt, "add server")`,
      );
    if (seen.has(name)) throw new ValidationError(`server keyword ${name} is given twice`);
    seen.add(name);
    const checked = checkValue(name, spec, value);
    out.push(checked === undefined ? [name] : [name, checked]);
  }
  const has = (k: string) => seen.has(k);
  if (has("sni") && !has("ssl"))
    throw new ValidationError("sni needs ssl: the name is sent in a TLS handshake (--ssl)");
  if (has("verifyhost") && !has("ssl")) throw new ValidationError("verifyhost needs ssl (--ssl)");
  if (has("agent-check") !== has("agent-port"))
    throw new ValidationError(
      "an agent check needs both agent-check and agent-port (--agent-port <port> sets both)",
    );
  for (const k of ["inter", "fastinter", "downinter", "rise", "fall", "port", "addr", "check-ssl"])
    if (has(k) && !has("check"))
      throw new ValidationError(`${k} tunes the health check: add --check`);
  return out;
}
