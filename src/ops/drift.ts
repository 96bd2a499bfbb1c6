import { isIP } from "node:net";
import type { MapKind, ServerKeyword } from "../commands/builders.js";
import { ValidationError } from "../errors.js";
import { backendStatePath, type ServerConfig } from "../parse/haproxy-cfg.js";
import type { MapEntry } from "../parse/map.js";
import type { Admin, ServerState } from "../parse/servers-state.js";
import type { StatRow } from "../parse/stat.js";
import type { StateFileRead, StateRow } from "../parse/state-file.js";
import { diffMaps, parseMapText } from "./map.js";

/**
 * `hapops drift` (pure): what a reload would undo, and where the disk and HAProxy's memory
 * disagree, per object. A reload loads haproxy.cfg as it is on disk now, applies the
 * server-state file to the backends that load it, reloads every certificate and map file; so
 * each runtime object is compared with what that would give. Tested on in-memory state.
 */

export type DriftKind = "server" | "cert" | "map" | "acl";

/** One object that differs. The strings are the table's cells; `details` holds the values. */
export interface DriftObject {
  readonly kind: DriftKind;
  /** `backend/server`, or the certificate, map or ACL file. */
  readonly object: string;
  /** `drift`: a reload would change it; `unknown`: hapops cannot tell (a file it cannot read). */
  readonly status: "drift" | "unknown";
  readonly runtime: string;
  readonly disk: string;
  readonly reload: string;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface DriftReport {
  readonly target: string;
  /** True when at least one object has status drift (exit 1). */
  readonly drift: boolean;
  readonly objects: readonly DriftObject[];
  /** How many objects of each kind were compared. */
  readonly checked: {
    readonly servers: number;
    readonly certs: number;
    readonly maps: number;
    readonly acls: number;
  };
  /** What was not compared, or compared with less (a file hapops could not read...). */
  readonly notes: readonly string[];
  readonly sources: {
    readonly haproxyConfig: string | null;
    readonly stateFiles: readonly string[];
  };
}

// ---- servers ------------------------------------------------------------------------------

const FMAINT = 0x01;
const CMAINT = 0x04;
const FDRAIN = 0x08;
/** Bits HAProxy drops from a state file row before checking it (recomputed, not restored). */
const RECOMPUTED = 0x02 | 0x10 | 0x20 | 0x40;
/**
 * The srv_admin_state values (once RECOMPUTED bits are dropped) HAProxy accepts in a state file;
 * any other makes it skip the whole row ("server-state application failed ... invalid
 * srv_admin_state value '9'", measured on 2.6), and the server comes back as configured.
 */
const LOADABLE = new Set([0, FMAINT, CMAINT, CMAINT | FMAINT, CMAINT | FDRAIN, FDRAIN]);
const MAX_WEIGHT = 256;

/** A server's own admin state (forced bits only): inherited and resolver states are recomputed. */
export function ownAdmin(bits: number): Admin {
  return bits & FMAINT ? "MAINT" : bits & FDRAIN ? "DRAIN" : "READY";
}

export interface ServerSide {
  readonly admin: Admin;
  readonly weight: number;
}

export interface AfterReload extends ServerSide {
  /** The state file row that was applied. */
  readonly fromFile: boolean;
  /** Why HAProxy would skip the row it has for this server. */
  readonly rowSkipped?: string;
}

/**
 * What a server is after a reload, from its configuration and its state file row (if the
 * backend loads one): srv_state_srv_update in src/server_state.c. A change of `disabled` in the
 * configuration wins over the file; otherwise forced maintenance and drain come back from the
 * file (drain only while the old configured weight was not 0, or the new one is 0); the weight
 * comes back only when the configured weight did not change.
 */
export function afterReload(
  cfg: { readonly disabled: boolean; readonly weight: number },
  row?: StateRow,
): AfterReload {
  const configured: AfterReload = {
    admin: cfg.disabled ? "MAINT" : "READY",
    weight: cfg.weight,
    fromFile: false,
  };
  if (!row) return configured;
  const bits = row.adminBits & ~RECOMPUTED;
  if (!Number.isInteger(row.adminBits) || !LOADABLE.has(bits))
    return {
      ...configured,
      rowSkipped: `its srv_admin_state ${row.adminBits} is not one HAProxy loads, so it skips the row`,
    };
  if (
    ![row.weight, row.initialWeight].every((w) => Number.isInteger(w) && w >= 0 && w <= MAX_WEIGHT)
  )
    return { ...configured, rowSkipped: "its weight is out of range, so HAProxy skips the row" };
  let maint = cfg.disabled;
  if ((bits & CMAINT) === (cfg.disabled ? CMAINT : 0)) {
    if (bits & FMAINT && !cfg.disabled) maint = true;
    else if (!(bits & FMAINT) && cfg.disabled) maint = false;
  }
  const drain = !maint && (bits & FDRAIN) !== 0 && (row.initialWeight > 0 || cfg.weight === 0);
  return {
    admin: maint ? "MAINT" : drain ? "DRAIN" : "READY",
    weight: row.initialWeight === cfg.weight ? row.weight : cfg.weight,
    fromFile: true,
  };
}

function side(s: ServerSide): string {
  return `${s.admin}, weight ${s.weight}`;
}

/** "make it READY; weight 50 -> 100": what a reload does to the runtime state. */
function reloadChange(from: ServerSide, to: ServerSide): string {
  const parts: string[] = [];
  if (from.admin !== to.admin) parts.push(`make it ${to.admin}`);
  if (from.weight !== to.weight) parts.push(`weight ${from.weight} -> ${to.weight}`);
  return parts.join("; ");
}

// ---- servers only in HAProxy's memory (added with `add server`) ----------------------------

/** `srv_check_state` / `srv_agent_state` bits (CHK_ST_* in include/haproxy/check-t.h). */
const CHK_ST_CONFIGURED = 0x02;
const CHK_ST_ENABLED = 0x04;

/**
 * A server HAProxy has that the configuration a reload loads does not: what can be read back of
 * it, to add it again after the reload (`add server`), and what cannot.
 */
export interface RuntimeOnlyServer {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number | undefined;
  /** Set on it at runtime (FMAINT, FDRAIN); a dynamic server starts in MAINT. */
  readonly admin: Admin;
  /** In effect (`srv_uweight`); `initialWeight` is the one it was added with. */
  readonly weight: number;
  readonly initialWeight: number;
  /** The `add server` keywords that give it back what HAProxy shows of it. */
  readonly keywords: readonly ServerKeyword[];
  /** Its health check is enabled (`enable health` after adding: a dynamic one starts off). */
  readonly health: boolean;
  /** What it has that hapops cannot read back, so cannot add again as it is. */
  readonly lost: readonly string[];
}

/**
 * What HAProxy shows of a server at runtime, as `add server` keywords (pure): from `show servers
 * state` the address, port, weights, admin state, whether it has a health check (CONFIGURED,
 * ENABLED) and its check port and address, SSL and an agent; from its `show stat` row (when
 * given) maxconn (slim), maxqueue (qlimit), backup (bck), track (tracked) and the check's rise
 * and fall. Measured on 2.6 to 3.4 with `add server ... check weight 30 maxconn 20 rise 2 fall 3`
 * then `enable health`: srv_check_state 6, slim 20, check_rise 2, check_fall 3. SSL (its verify,
 * ca-file, sni... are not shown anywhere), an agent check (agent-inter, agent-send are not shown)
 * and an address that is a name cannot be given back: those are `lost`.
 */
export function runtimeOnlyServer(s: ServerState, stat?: StatRow): RuntimeOnlyServer {
  const f = s.fields;
  const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : 0);
  const checkState = int(f["srv_check_state"]);
  const agentState = int(f["srv_agent_state"]);
  const check = (checkState & CHK_ST_CONFIGURED) !== 0;
  const keywords: ServerKeyword[] = [["weight", String(s.initialWeight)]];
  if (stat?.["bck"] === "1") keywords.push(["backup"]);
  if (int(stat?.["slim"]) > 0) keywords.push(["maxconn", String(int(stat?.["slim"]))]);
  if (int(stat?.["qlimit"]) > 0) keywords.push(["maxqueue", String(int(stat?.["qlimit"]))]);
  const tracked = stat?.["tracked"];
  if (tracked && /^[\w.:-]+\/[\w.:-]+$/.test(tracked)) keywords.push(["track", tracked]);
  if (check) {
    keywords.push(["check"]);
    if (int(stat?.["check_rise"]) > 0) keywords.push(["rise", String(int(stat?.["check_rise"]))]);
    if (int(stat?.["check_fall"]) > 0) keywords.push(["fall", String(int(stat?.["check_fall"]))]);
    if (int(f["srv_check_port"]) > 0) keywords.push(["port", String(int(f["srv_check_port"]))]);
    const addr = f["srv_check_addr"];
    if (addr !== undefined && isIP(addr) !== 0) keywords.push(["addr", addr]);
  }
  const lost: string[] = [];
  if (f["srv_use_ssl"] === "1")
    lost.push("ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime)");
  if ((agentState & CHK_ST_CONFIGURED) !== 0)
    lost.push("an agent check (agent-inter and agent-send are not shown at runtime)");
  if (isIP(s.address) === 0 || s.fqdn !== undefined)
    lost.push(`its address ${s.fqdn ?? s.address} (a name: hapops adds servers by IP address)`);
  return {
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port,
    admin: ownAdmin(s.adminBits),
    weight: s.weight,
    initialWeight: s.initialWeight,
    keywords,
    health: check && (checkState & CHK_ST_ENABLED) !== 0,
    lost,
  };
}

/** `127.0.0.1:8080 weight 30 check rise 2 fall 3`: the address and keywords, as `add server` takes them. */
export function runtimeOnlyWords(r: RuntimeOnlyServer): string {
  const host = r.address.includes(":") ? `[${r.address}]` : r.address;
  return [
    r.port === undefined ? host : `${host}:${r.port}`,
    ...r.keywords.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)),
  ].join(" ");
}

/**
 * Whether the configuration changed since HAProxy loaded it, to the second: when it did not, a
 * server it lacks was certainly added at runtime; when it did (or hapops cannot tell), the
 * server may as well have been removed from it on purpose.
 */
export function configChangedSince(
  newestMtimeMs: number | undefined,
  startSec: number | undefined,
): boolean {
  if (newestMtimeMs === undefined || startSec === undefined) return true;
  return Math.floor(newestMtimeMs / 1000) > startSec;
}

export interface ServerInputs {
  readonly runtime: readonly ServerState[];
  /** haproxy.cfg as parsed; undefined when it could not be read (`configError` says why). */
  readonly config: ServerConfig | undefined;
  readonly configPath: string;
  readonly configError?: string | undefined;
  /** The state files the configuration points backends at, as read. */
  readonly stateFiles: ReadonlyMap<string, StateFileRead>;
  /**
   * The configuration changed since HAProxy loaded it (configChangedSince): a server it lacks
   * may have been removed from it on purpose. Undefined counts as changed.
   */
  readonly configChanged?: boolean | undefined;
  /** Servers' `show stat` rows by `backend/server`, for what a runtime-only one has. */
  readonly stats?: ReadonlyMap<string, StatRow> | undefined;
}

export interface Compared {
  readonly objects: DriftObject[];
  readonly notes: string[];
}

/** Servers: runtime state against what a reload would give each one. */
export function compareServers(input: ServerInputs): Compared {
  const objects: DriftObject[] = [];
  const notes: string[] = [];
  const cfg = input.config;
  if (!cfg)
    notes.push(
      `${input.configError ?? `${input.configPath} was not read`}: servers are compared with the configuration HAProxy loaded (srv_iweight, disabled), not with the file on disk, and state files are not considered`,
    );
  const unknownBackends = new Set<string>();
  const fileNotes = new Map<string, string>();
  const seen = new Set<string>();
  for (const s of input.runtime) {
    const name = `${s.backend}/${s.server}`;
    seen.add(name);
    const backend = cfg?.backends.get(s.backend);
    const runtime: ServerSide = { admin: ownAdmin(s.adminBits), weight: s.weight };
    const runtimeJson = { ...runtime, adminFlags: s.adminFlags };
    if (cfg && !backend) unknownBackends.add(s.backend);
    if (!backend) {
      // What HAProxy itself loaded: srv_iweight and CMAINT record the configuration it read.
      const loaded = { disabled: (s.adminBits & CMAINT) !== 0, weight: s.initialWeight };
      const after = afterReload(loaded);
      if (after.admin !== runtime.admin || after.weight !== runtime.weight)
        objects.push({
          kind: "server",
          object: name,
          status: "drift",
          runtime: side(runtime),
          disk: `${side(after)} (as loaded)`,
          reload: reloadChange(runtime, after),
          details: {
            runtime: runtimeJson,
            config: { ...loaded, source: "loaded" },
            stateFile: null,
            afterReload: { admin: after.admin, weight: after.weight },
          },
        });
      continue;
    }
    const configured = backend.servers.find((x) => x.name === s.server);
    if (!configured) {
      const only = runtimeOnlyServer(s, input.stats?.get(name));
      const certain = input.configChanged === false;
      const keep =
        only.lost.length > 0
          ? `add it to ${input.configPath} (hapops reload cannot add it again as it is: ${only.lost.join("; ")})`
          : certain
            ? `add it to ${input.configPath} or run hapops reload, which re-adds it`
            : `if it was added at runtime, add it to ${input.configPath}, or run hapops reload --force, which re-adds it`;
      objects.push({
        kind: "server",
        object: name,
        status: "drift",
        runtime: side(runtime),
        disk: `not in ${input.configPath}`,
        reload: certain
          ? `drop it: it exists only at runtime (added with add server); ${keep}`
          : `drop it: added with add server, or removed from ${input.configPath} since HAProxy loaded it (the file changed since); ${keep}`,
        details: {
          runtime: runtimeJson,
          config: null,
          stateFile: null,
          afterReload: null,
          runtimeOnly: {
            addedAtRuntime: certain ? true : null,
            address: only.address,
            port: only.port ?? null,
            keywords: only.keywords.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)),
            lost: only.lost,
          },
        },
      });
      continue;
    }
    const path = backendStatePath(cfg!, backend);
    const file = path === undefined ? undefined : input.stateFiles.get(path);
    if (file?.problem && path) fileNotes.set(path, file.problem);
    const row = file?.rows?.find((r) => r.backend === s.backend && r.server === s.server);
    const after = afterReload(configured, row);
    const cfgSide = afterReload(configured);
    const stateJson =
      row && path
        ? {
            path,
            admin: ownAdmin(row.adminBits),
            weight: row.weight,
            applied: after.fromFile,
            ...(after.rowSkipped ? { skipped: after.rowSkipped } : {}),
          }
        : null;
    if (after.admin === runtime.admin && after.weight === runtime.weight) continue;
    // A state file hapops cannot read may keep what the configuration would undo.
    const unreadable = file?.unreadable === true;
    objects.push({
      kind: "server",
      object: name,
      status: unreadable ? "unknown" : "drift",
      runtime: side(runtime),
      disk: [
        `${side(cfgSide)} (haproxy.cfg)`,
        ...(stateJson
          ? [
              `${side(stateJson)} (state file${after.rowSkipped ? `, row skipped: ${after.rowSkipped}` : ""})`,
            ]
          : []),
      ].join("; "),
      reload: unreadable
        ? `${reloadChange(runtime, after)}, unless ${path} (unreadable) keeps it`
        : reloadChange(runtime, after),
      details: {
        runtime: runtimeJson,
        config: { disabled: configured.disabled, weight: configured.weight, source: "haproxy.cfg" },
        stateFile: stateJson,
        afterReload: { admin: after.admin, weight: after.weight },
      },
    });
  }
  if (cfg) {
    for (const b of cfg.backends.values())
      for (const c of b.servers) {
        const name = `${b.name}/${c.name}`;
        if (seen.has(name)) continue;
        const after = afterReload(c);
        objects.push({
          kind: "server",
          object: name,
          status: "drift",
          runtime: "absent",
          disk: `${side(after)} (haproxy.cfg)`,
          reload: "add it",
          details: {
            runtime: null,
            config: { disabled: c.disabled, weight: c.weight, source: "haproxy.cfg" },
            stateFile: null,
            afterReload: { admin: after.admin, weight: after.weight },
          },
        });
      }
  }
  if (unknownBackends.size > 0)
    notes.push(
      `${[...unknownBackends].join(", ")}: not in ${input.configPath} (another -f file?), so compared with the configuration HAProxy loaded`,
    );
  for (const [path, problem] of fileNotes) notes.push(`state file ${path}: ${problem}`);
  return { objects, notes };
}

// ---- certificates -------------------------------------------------------------------------

export interface CertRuntime {
  readonly file: string;
  readonly serial: string | undefined;
  readonly sha1: string | undefined;
}

/** The leaf of the file on disk, or why it cannot be read (`missing`: there is no file). */
export type CertDisk =
  | { readonly serial: string; readonly sha1: string }
  | { readonly error: string; readonly missing: boolean };

function shortSerial(serial: string): string {
  return serial.length > 16 ? `${serial.slice(0, 8)}…${serial.slice(-6)}` : serial;
}

/** Certificates: the serial (and SHA-1) HAProxy serves against the file a reload would load. */
export function compareCerts(
  runtime: readonly CertRuntime[],
  disk: ReadonlyMap<string, CertDisk>,
): Compared {
  const objects: DriftObject[] = [];
  for (const c of runtime) {
    const d = disk.get(c.file);
    const served = c.serial ? `serial ${shortSerial(c.serial)}` : "serial unknown";
    const runtimeJson = { serial: c.serial ?? null, sha1: c.sha1 ?? null };
    if (!d) continue;
    if ("error" in d) {
      objects.push({
        kind: "cert",
        object: c.file,
        status: d.missing ? "drift" : "unknown",
        runtime: served,
        disk: d.missing ? "missing" : d.error,
        reload: d.missing
          ? "fail to load it (the file is gone)"
          : "unknown: the file cannot be read",
        details: { runtime: runtimeJson, disk: null, error: d.error },
      });
      continue;
    }
    const sameSerial = c.serial === undefined || c.serial === d.serial;
    const sameSha1 = c.sha1 === undefined || c.sha1.toUpperCase() === d.sha1;
    if (sameSerial && sameSha1) continue;
    objects.push({
      kind: "cert",
      object: c.file,
      status: "drift",
      runtime: served,
      disk: `serial ${shortSerial(d.serial)}`,
      reload: `serve serial ${shortSerial(d.serial)} (the file) instead${c.serial && sameSerial ? " (same serial, another certificate)" : ""}`,
      details: { runtime: runtimeJson, disk: { serial: d.serial, sha1: d.sha1 } },
    });
  }
  return { objects, notes: [] };
}

// ---- maps and ACLs ------------------------------------------------------------------------

export interface MapRuntime {
  readonly kind: MapKind;
  readonly file: string;
  readonly entries: readonly MapEntry[];
}

function entryText(e: MapEntry): string {
  return e.value !== undefined ? `${e.key} ${e.value}` : e.key;
}

function listed(items: readonly string[]): string {
  const shown = items.slice(0, 3).join(", ");
  return items.length > 3 ? `${shown} +${items.length - 3} more` : shown;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Maps and ACLs: the live entries against the file a reload would load (parsed as `replace
 * --from` parses it). Order counts too: the first of a duplicate key wins, and map_beg/map_reg
 * match in order.
 */
export function compareMaps(
  runtime: readonly MapRuntime[],
  disk: ReadonlyMap<string, { readonly text: string } | { readonly error: string }>,
): Compared {
  const objects: DriftObject[] = [];
  for (const m of runtime) {
    const d = disk.get(m.file);
    const noun = m.kind === "map" ? ["entry", "entries"] : ["pattern", "patterns"];
    const count = (n: number) => plural(n, noun[0]!, noun[1]!);
    if (!d) continue;
    let onDisk: MapEntry[] | undefined;
    let error = "error" in d ? d.error : undefined;
    if ("text" in d)
      try {
        onDisk = parseMapText(m.kind, d.text, m.file);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        error = `cannot compare: ${e.message}`;
      }
    if (!onDisk) {
      objects.push({
        kind: m.kind,
        object: m.file,
        status: "unknown",
        runtime: count(m.entries.length),
        disk: error ?? "unreadable",
        reload:
          "text" in d
            ? "unknown: hapops cannot parse the file"
            : "unknown: the file cannot be read",
        details: { runtime: { entries: m.entries.length }, disk: null, error },
      });
      continue;
    }
    const diff = diffMaps(m.entries, onDisk);
    const size = diff.added.length + diff.removed.length + diff.changed.length;
    if (
      size === 0 &&
      m.entries.length === onDisk.length &&
      m.entries.every((e, i) => entryText(e) === entryText(onDisk[i]!))
    )
      continue;
    const parts: string[] = [];
    if (diff.removed.length > 0) parts.push(`drop ${listed(diff.removed.map(entryText))}`);
    if (diff.added.length > 0) parts.push(`restore ${listed(diff.added.map(entryText))}`);
    if (diff.changed.length > 0)
      parts.push(`reset ${listed(diff.changed.map((c) => `${c.key} to ${c.to ?? ""}`))}`);
    if (parts.length === 0) parts.push("restore the file's order");
    objects.push({
      kind: m.kind,
      object: m.file,
      status: "drift",
      runtime: count(m.entries.length),
      disk: count(onDisk.length),
      reload: parts.join("; "),
      details: {
        runtime: { entries: m.entries.length },
        disk: { entries: onDisk.length },
        // From HAProxy's memory to the file: what a reload does.
        added: diff.added,
        removed: diff.removed,
        changed: diff.changed,
      },
    });
  }
  return { objects, notes: [] };
}

// ---- the report ---------------------------------------------------------------------------

export function buildDriftReport(
  target: string,
  parts: {
    readonly servers: Compared;
    readonly certs: Compared;
    readonly maps: Compared;
    readonly checked: DriftReport["checked"];
    readonly notes: readonly string[];
    readonly sources: DriftReport["sources"];
  },
): DriftReport {
  const objects = [...parts.servers.objects, ...parts.certs.objects, ...parts.maps.objects];
  return {
    target,
    drift: objects.some((o) => o.status === "drift"),
    objects,
    checked: parts.checked,
    notes: [...parts.notes, ...parts.servers.notes, ...parts.certs.notes, ...parts.maps.notes],
    sources: parts.sources,
  };
}
