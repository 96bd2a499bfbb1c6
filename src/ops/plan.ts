import {
  setServerState,
  setServerWeight,
  type RuntimeCommand,
  type ServerAdminState,
} from "../commands/builders.js";
import type { Level } from "../commands/levels.js";
import { GuardError, UsageError } from "../errors.js";
import type { Admin, Operational } from "../parse/servers-state.js";
import { selectServers, type Selector } from "./selector.js";

/**
 * Planning is a pure function of (live state, request): which servers, which commands, which
 * guards, and the state each server must be in afterwards. Nothing here does I/O; the engine
 * applies a plan and verifies it against a fresh read.
 */

/** What planning needs to know about a server. */
export interface ServerFacts {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly operational: Operational;
  readonly admin: Admin;
  readonly adminFlags: readonly string[];
  readonly weight: number;
  readonly initialWeight: number;
  /** Current sessions (`scur`), when known. */
  readonly sessions: number | undefined;
}

export type OpName = "drain" | "maint" | "ready" | "weight";

/** A weight as the operator wrote it: absolute, or a percentage of the configured weight. */
export type WeightSpec = { readonly absolute: number } | { readonly percent: number };

/** One step of a ramp: each server moves from its current weight toward `to` by at most `step`. */
export interface WeightStep {
  readonly to: WeightSpec;
  readonly step: number;
}

export type ChangeRequest =
  | {
      readonly op: "drain" | "maint" | "ready";
      readonly selector: Selector;
      readonly force: boolean;
    }
  | {
      readonly op: "weight";
      readonly selector: Selector;
      readonly weight: WeightSpec | WeightStep;
      readonly force: boolean;
    };

export interface AdminAndWeight {
  readonly admin: Admin;
  readonly weight: number;
}

export interface PlannedServer {
  readonly backend: string;
  readonly server: string;
  readonly before: AdminAndWeight & {
    readonly operational: Operational;
    readonly sessions: number | undefined;
  };
  readonly after: AdminAndWeight;
  /** Empty when the server is already as wanted. */
  readonly commands: readonly RuntimeCommand[];
}

export interface GuardResult {
  readonly backend: string;
  /** Servers that would be UP, READY and of weight > 0 after the change. */
  readonly servingAfter: readonly string[];
  readonly servingBefore: readonly string[];
  readonly ok: boolean;
  /** Set when `ok` is false and --force overrode it. */
  readonly forced: boolean;
  readonly reason: string;
}

export interface Plan {
  readonly version: 1;
  readonly op: OpName;
  readonly selector: string;
  readonly level: Level;
  readonly servers: readonly PlannedServer[];
  readonly guards: readonly GuardResult[];
}

const STATE_FOR: Record<"drain" | "maint" | "ready", { admin: Admin; cmd: ServerAdminState }> = {
  drain: { admin: "DRAIN", cmd: "drain" },
  maint: { admin: "MAINT", cmd: "maint" },
  ready: { admin: "READY", cmd: "ready" },
};

/**
 * The weight HAProxy would set for `N%`: a share of the configured weight, rounded down, at most
 * 256 (server_parse_weight_change_request(): `w = sv->iweight * w / 100`).
 */
export function resolveWeight(
  spec: WeightSpec | WeightStep,
  server: { readonly weight: number; readonly initialWeight: number },
): number {
  if ("step" in spec) {
    const target = resolveWeight(spec.to, server);
    const cur = server.weight;
    return cur < target ? Math.min(cur + spec.step, target) : Math.max(cur - spec.step, target);
  }
  if ("absolute" in spec) return spec.absolute;
  return Math.min(256, Math.floor((server.initialWeight * spec.percent) / 100));
}

/** Parse `0`-`256` or `N%` as the operator typed it. */
export function parseWeight(text: string): WeightSpec {
  // HAProxy takes any percentage of the configured weight and caps the result at 256
  // (measured on 2.6: 150% of 50 is 75, 1000% of 50 is 256).
  const pct = /^(\d{1,4})%$/.exec(text);
  if (pct) return { percent: Number(pct[1]) };
  if (!/^\d{1,3}$/.test(text) || Number(text) > 256)
    throw new UsageError(
      `weight ${JSON.stringify(text)} is not valid: use 0-256, or N% of the configured weight`,
    );
  return { absolute: Number(text) };
}

/**
 * Takes traffic: UP, or STARTING (slow start, which HAProxy's srv_is_usable() counts as usable),
 * READY, and of weight > 0.
 */
function serving(s: { operational: Operational; admin: Admin; weight: number }): boolean {
  return (
    (s.operational === "UP" || s.operational === "STARTING") && s.admin === "READY" && s.weight > 0
  );
}

/**
 * Maintenance that `set server state` cannot lift: inherited from a tracked server (IMAINT), or
 * from a failed address resolution (RMAINT). Asking for DRAIN or READY on such a server would
 * be sent and then fail verification, so refuse it up front and say what would work.
 */
function blockedBy(s: ServerFacts, wanted: Admin): string | undefined {
  const who = `${s.backend}/${s.server}`;
  if (wanted === "MAINT") return undefined;
  if (s.adminFlags.includes("IMAINT"))
    return `${who} inherits maintenance from the server it tracks (IMAINT); change that server instead`;
  if (s.adminFlags.includes("RMAINT"))
    return `${who} is in maintenance because its address did not resolve (RMAINT); fix its DNS name or address first`;
  if (wanted === "READY" && s.adminFlags.includes("IDRAIN"))
    return `${who} inherits drain from the server it tracks (IDRAIN); make that server ready instead`;
  return undefined;
}

/**
 * Already as wanted, so nothing to send. MAINT and DRAIN count only when forced on this server
 * (FMAINT, FDRAIN): one that is in maintenance only through the server it tracks would leave it
 * by itself when that server comes back, which is not what `hapops maint` promises.
 */
function alreadyAs(s: ServerFacts, wanted: Admin): boolean {
  if (wanted === "MAINT") return s.adminFlags.includes("FMAINT");
  if (wanted === "DRAIN") return s.admin === "DRAIN" && s.adminFlags.includes("FDRAIN");
  return s.admin === "READY";
}

export function planChange(state: readonly ServerFacts[], req: ChangeRequest): Plan {
  const picked = selectServers(req.selector, state);
  const servers: PlannedServer[] = picked.map((s) => {
    const before = {
      admin: s.admin,
      weight: s.weight,
      operational: s.operational,
      sessions: s.sessions,
    };
    if (req.op === "weight") {
      const w = resolveWeight(req.weight, s);
      return {
        backend: s.backend,
        server: s.server,
        before,
        after: { admin: s.admin, weight: w },
        commands: w === s.weight ? [] : [setServerWeight(s.backend, s.server, w)],
      };
    }
    const want = STATE_FOR[req.op];
    const blocked = blockedBy(s, want.admin);
    if (blocked) throw new GuardError(blocked);
    return {
      backend: s.backend,
      server: s.server,
      before,
      after: { admin: want.admin, weight: s.weight },
      commands: alreadyAs(s, want.admin) ? [] : [setServerState(s.backend, s.server, want.cmd)],
    };
  });

  const guards = checkGuards(state, servers, req.force);
  return {
    version: 1,
    op: req.op,
    selector: req.selector.text,
    level: "admin",
    servers,
    guards,
  };
}

/**
 * The last-server guard: refuse a change that leaves a backend with no server that is UP (or
 * starting), READY and of weight > 0 — unless it had none before either (the change does not make it worse) or
 * --force is given.
 */
export function checkGuards(
  state: readonly ServerFacts[],
  planned: readonly PlannedServer[],
  force: boolean,
): GuardResult[] {
  const changed = new Map(planned.map((p) => [`${p.backend}/${p.server}`, p]));
  const backends = [...new Set(planned.filter((p) => p.commands.length > 0).map((p) => p.backend))];
  return backends.map((backend) => {
    const members = state.filter((s) => s.backend === backend);
    const servingBefore = members.filter(serving).map((s) => s.server);
    const servingAfter = members
      .filter((s) => {
        const p = changed.get(`${s.backend}/${s.server}`);
        return serving({ operational: s.operational, ...(p ? p.after : s) });
      })
      .map((s) => s.server);
    const ok = servingAfter.length > 0 || servingBefore.length === 0;
    const reason = ok
      ? `${servingAfter.length} server(s) still serving: ${servingAfter.join(", ") || "none before either"}`
      : `${backend} would have no server that is UP, READY and of weight > 0 (now serving: ${servingBefore.join(", ")})`;
    return { backend, servingBefore, servingAfter, ok, forced: !ok && force, reason };
  });
}

/** Throw the guard's refusal (exit 3) unless every guard passed or was forced. */
export function enforceGuards(plan: Plan): void {
  const failed = plan.guards.filter((g) => !g.ok && !g.forced);
  if (failed.length === 0) return;
  throw new GuardError(
    `refusing ${plan.op} ${plan.selector}: ${failed.map((g) => g.reason).join("; ")}. Pass --force to do it anyway (it is recorded).`,
    { guards: failed },
  );
}

export interface Mismatch {
  readonly backend: string;
  readonly server: string;
  readonly field: "admin" | "weight" | "missing";
  readonly expected: string;
  readonly actual: string;
}

/** Compare HAProxy's state, read back after applying, with what the plan expects. */
export function verifyPlan(plan: Plan, after: readonly ServerFacts[]): Mismatch[] {
  const byName = new Map(after.map((s) => [`${s.backend}/${s.server}`, s]));
  const out: Mismatch[] = [];
  for (const p of plan.servers) {
    const s = byName.get(`${p.backend}/${p.server}`);
    if (!s) {
      out.push({
        backend: p.backend,
        server: p.server,
        field: "missing",
        expected: "present",
        actual: "gone",
      });
      continue;
    }
    if (s.admin !== p.after.admin)
      out.push({
        backend: p.backend,
        server: p.server,
        field: "admin",
        expected: p.after.admin,
        actual: s.admin,
      });
    if (s.weight !== p.after.weight)
      out.push({
        backend: p.backend,
        server: p.server,
        field: "weight",
        expected: String(p.after.weight),
        actual: String(s.weight),
      });
  }
  return out;
}
