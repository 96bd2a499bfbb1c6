import type { MapKind } from "../commands/builders.js";
import { ValidationError } from "../errors.js";
import { backendStatePath, type ServerConfig } from "../parse/haproxy-cfg.js";
import type { MapEntry } from "../parse/map.js";
import type { Admin, ServerState } from "../parse/servers-state.js";
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

export interface ServerInputs {
  readonly runtime: readonly ServerState[];
  /** haproxy.cfg as parsed; undefined when it could not be read (`configError` says why). */
  readonly config: ServerConfig | undefined;
  readonly configPath: string;
  readonly configError?: string | undefined;
  /** The state files the configuration points backends at, as read. */
  readonly stateFiles: ReadonlyMap<string, StateFileRead>;
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
      objects.push({
        kind: "server",
        object: name,
        status: "drift",
        runtime: side(runtime),
        disk: `not in ${input.configPath}`,
        reload: "remove it (added at runtime, or removed from the config)",
        details: { runtime: runtimeJson, config: null, stateFile: null, afterReload: null },
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
