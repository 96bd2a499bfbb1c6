import type { ChangeSessions } from "../engine/change.js";
import type { RuntimeSession } from "../runtime/session.js";
import { fetchServers, type ServerView } from "../engine/state.js";
import type { Guard, Operation, Plan, Step, Verification } from "../engine/operation.js";
import { EnvironmentError, GuardError, VerificationError, type HapopsError } from "../errors.js";
import { saveServerState } from "./state.js";
import {
  planChange,
  verifyPlan,
  type ChangeRequest,
  type Plan as ServerPlan,
  type PlannedServer,
  type ServerFacts,
  type WeightSpec,
} from "./plan.js";
import { formatDuration } from "../util/duration.js";
import { listSelector, selectorBackend } from "./selector.js";

/** What planning needs of a server as operators see it (`show servers state` + `scur`). */
export function toFacts(s: ServerView): ServerFacts {
  return {
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port,
    operational: s.operational,
    admin: s.admin,
    adminFlags: s.adminFlags,
    weight: s.weight,
    initialWeight: s.initialWeight,
    sessions: s.stat?.scur,
  };
}

/** Live facts for planning: `show servers state` joined with `show stat` (scur). */
async function readFacts(read: RuntimeSession, backend?: string): Promise<ServerFacts[]> {
  return (await fetchServers(read, backend)).map(toFacts);
}

/** How human lines are painted; the CLI passes colours (or none). */
export interface Paint {
  status(text: string): string;
  bold(text: string): string;
}

export const plainPaint: Paint = { status: (t) => t, bold: (t) => t };

/** drain / maint / ready / weight, with what may follow: a wait, maint once drained, a ramp. */
export interface ServerChange {
  readonly change: ChangeRequest;
  readonly wait?:
    | {
        readonly timeoutMs: number;
        readonly pollMs: number;
        /** Cut what is left (`shutdown sessions server`) after this long instead of exit 6. */
        readonly killAfterMs?: number | undefined;
      }
    | undefined;
  readonly then?: "maint" | undefined;
  readonly ramp?:
    { readonly to: WeightSpec; readonly step: number; readonly everyMs: number } | undefined;
  readonly target: string;
  readonly paint: Paint;
  /** A first line for people before the plan ("step 2:" of a ramp). */
  readonly heading?: string | undefined;
  /** Which step of a ramp this is (1 for the first). */
  readonly rampStep?: number | undefined;
  /**
   * `servers.saveState`: the server-state file to write after every verified change (what a
   * reload then keeps), or why it cannot be (no server-state-file in haproxy.cfg...).
   */
  readonly saveState?: SaveStateTarget | undefined;
  /** A dry run: the plan says what would follow the change (the state save). */
  readonly dryRun?: boolean | undefined;
}

export type SaveStateTarget =
  | {
      readonly path: string;
      /** Backends a reload loads this file into; undefined when haproxy.cfg was not read. */
      readonly loadedBy: readonly string[] | undefined;
    }
  | { readonly problem: string };

/**
 * What a reload does to a verified runtime change, in one line: undo it, unless the server state
 * is saved first (or was, by servers.saveState).
 */
export async function keepAfterReload(
  read: RuntimeSession,
  sp: ServerPlan,
  after: readonly ServerFacts[],
  target: SaveStateTarget | undefined,
): Promise<{ summary: string[]; json: Record<string, unknown>; error?: HapopsError }> {
  // The configuration HAProxy loaded is what a reload brings back (CMAINT records `disabled`,
  // initialWeight the configured weight): a change back to it is not undone.
  const changed = new Set(sp.servers.filter((s) => s.commands.length > 0).map(name));
  const offConfig = after.some(
    (f) =>
      changed.has(name(f)) &&
      (f.weight !== f.initialWeight ||
        (f.adminFlags.includes("FMAINT")
          ? "MAINT"
          : f.adminFlags.includes("FDRAIN")
            ? "DRAIN"
            : "READY") !== (f.adminFlags.includes("CMAINT") ? "MAINT" : "READY")),
  );
  const undo =
    "runtime only: a reload undoes this unless the server state is saved first (hapops reload does; or hapops state save, or servers.saveState: true)";
  if (target === undefined) return { summary: offConfig ? [undo] : [], json: {} };
  if ("problem" in target)
    return {
      summary: [
        offConfig
          ? `runtime only: servers.saveState is on, but ${target.problem}; a reload undoes this (hapops reload keeps it)`
          : `not saved: servers.saveState is on, but ${target.problem}`,
      ],
      json: { stateSaved: null },
    };
  try {
    const saved = await saveServerState(read, target.path);
    const backends = [...new Set(sp.servers.map((s) => s.backend))];
    const notLoaded =
      target.loadedBy === undefined ? [] : backends.filter((b) => !target.loadedBy!.includes(b));
    return {
      summary: [
        `saved: the server state (${saved.servers} servers) to ${saved.path}, so a reload keeps this`,
        ...(notLoaded.length > 0
          ? [
              `note: ${notLoaded.join(", ")} ${notLoaded.length === 1 ? "does" : "do"} not load it (load-server-state-from-file global), so a reload undoes the change there`,
            ]
          : []),
      ],
      json: { stateSaved: saved },
    };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return {
      summary: [],
      json: { stateSaved: null },
      error: new EnvironmentError(
        `${sp.op} ${sp.selector} is verified, but saving the server state to ${target.path} failed (${why}): a reload would undo it; fix that, then run hapops state save`,
        { path: target.path },
        { cause: e },
      ),
    };
  }
}

function describeWeight(w: WeightSpec): string {
  return "absolute" in w ? `weight ${w.absolute}` : `${w.percent}% of the configured weight`;
}

function name(s: { backend: string; server: string }): string {
  return `${s.backend}/${s.server}`;
}

function sessionsNote(n: number | undefined): string {
  return n === undefined ? "" : `  (${n} session${n === 1 ? "" : "s"})`;
}

/**
 * `be_app/app1  READY -> DRAIN  (12 sessions)`, one line per changed server, names aligned.
 * Servers already as wanted get a line each when there are few, one summary line otherwise.
 */
export function describeServerPlan(plan: ServerPlan, p: Paint): string[] {
  const changed = plan.servers.filter((s) => s.commands.length > 0);
  const noop = plan.servers.filter((s) => s.commands.length === 0);
  const shownNoop = noop.length <= 5 ? noop : [];
  const width = Math.max(...[...changed, ...shownNoop].map((s) => name(s).length), 0);
  const lines = [...changed, ...shownNoop]
    .sort((a, b) => plan.servers.indexOf(a) - plan.servers.indexOf(b))
    .map((s) => {
      const label = name(s).padEnd(width);
      const noopServer = s.commands.length === 0;
      if (plan.op === "weight") {
        if (noopServer) return `${label}  weight ${s.after.weight}  (already; nothing sent)`;
        return `${label}  weight ${s.before.weight} -> ${p.bold(String(s.after.weight))}`;
      }
      if (noopServer)
        return plan.op === "ready" && s.after.weight === 0
          ? `${label}  ${p.status(s.after.admin)}  (already; nothing sent) but weight 0: it takes no traffic (hapops weight ${name(s)} <n>)`
          : `${label}  ${p.status(s.after.admin)}  (already; nothing sent)`;
      // Sessions matter to a drain (what it waits for) and to maint (which does not cut them).
      const sessions = s.before.sessions ?? 0;
      const note =
        plan.op === "drain" || (plan.op === "maint" && sessions > 0)
          ? sessionsNote(s.before.sessions)
          : "";
      return `${label}  ${p.status(s.before.admin)} -> ${p.status(s.after.admin)}${note}`;
    });
  if (noop.length > 5) {
    const what = plan.op === "weight" ? "at the wanted weight" : noop[0]!.after.admin;
    const names = noop.slice(0, 3).map(name).join(", ");
    lines.push(`${noop.length} more already ${what} (nothing sent): ${names}, ...`);
  }
  return lines;
}

/** The state a plan leaves, for planning what follows it in a dry run. */
function applyAfter(
  facts: readonly ServerFacts[],
  planned: readonly PlannedServer[],
): ServerFacts[] {
  const after = new Map(planned.map((p) => [name(p), p.after]));
  return facts.map((f) => ({ ...f, ...(after.get(name(f)) ?? {}) }));
}

function lastServerGuards(plan: ServerPlan, label = ""): Guard[] {
  const failed = plan.guards.filter((g) => !g.ok && !g.forced);
  const error =
    failed.length > 0
      ? new GuardError(
          `refusing ${plan.op} ${plan.selector}${label}: ${failed.map((g) => g.reason).join("; ")}. Pass --force to do it anyway (it is recorded).`,
          { guards: failed },
        )
      : undefined;
  return plan.guards.map((g) => ({
    name: g.backend,
    ok: g.ok,
    forced: g.forced,
    reason: label ? `${g.reason}${label}` : g.reason,
    ...(error && !g.ok && !g.forced ? { error } : {}),
    detail: { backend: g.backend, servingBefore: g.servingBefore, servingAfter: g.servingAfter },
  }));
}

/**
 * Leaving maintenance is `ready`'s job: a drain of a server in MAINT would bring it back into
 * health checks and (once UP) into DRAIN, which no one asking for a drain means.
 */
function maintenanceGuard(plan: ServerPlan, force: boolean): Guard[] {
  if (plan.op !== "drain") return [];
  const inMaint = plan.servers.filter((s) => s.commands.length > 0 && s.before.admin === "MAINT");
  if (inMaint.length === 0) return [];
  const names = inMaint.map(name).join(", ");
  return [
    {
      name: "maintenance",
      ok: false,
      forced: force,
      reason: `${names} ${inMaint.length === 1 ? "is" : "are"} in maintenance; drain would take ${inMaint.length === 1 ? "it" : "them"} out of it`,
      error: new GuardError(
        `refusing drain ${plan.selector}: ${names} ${inMaint.length === 1 ? "is" : "are"} in maintenance (MAINT), and drain would take ${inMaint.length === 1 ? "it" : "them"} out of maintenance, back into health checks and traffic. To return a server to service use hapops ready; to drain it anyway pass --force (recorded)`,
        { servers: inMaint.map(name) },
      ),
    },
  ];
}

/**
 * A server change as an engine operation. `simulated` is the state a previous plan would leave
 * (a dry run plans the maint after a drain, or each ramp step, on it instead of reading).
 */
export function serverOperation(
  req: ServerChange,
  simulated?: readonly ServerFacts[],
): Operation<readonly ServerFacts[], ServerPlan> {
  const scope = selectorBackend(req.change.selector);
  return {
    op: req.change.op,
    readLevel: "user",
    read: (sessions) => (simulated ? Promise.resolve(simulated) : readFacts(sessions.read, scope)),
    plan(facts): Plan<ServerPlan> {
      const sp = planChange(facts, req.change);
      const commands = sp.servers.flatMap((s) => [...s.commands]);
      const steps: Step[] = [];
      if (commands.length > 0) steps.push({ kind: "send", op: sp.op, commands });
      const follow = (
        next: ServerChange,
        label: string,
        afterMs: number,
        interrupted: string,
      ): Step => ({
        kind: "replan",
        op: next.change.op,
        afterMs,
        label,
        interrupted,
        next: (simulate) =>
          serverOperation(next, simulate ? applyAfter(facts, sp.servers) : undefined),
      });
      if (req.change.op === "drain" && (req.wait || req.then)) {
        steps.push({
          kind: "wait",
          op: "drain",
          until: "drained",
          servers: sp.servers.map((s) => ({ backend: s.backend, server: s.server })),
          timeoutMs: req.wait?.timeoutMs ?? 600_000,
          pollMs: req.wait?.pollMs ?? 500,
          // Cutting sessions is `sessions kill` wherever it happens: a group allowed to drain
          // but not to cut sessions is refused --kill-after before anything is sent.
          killAfterMs: req.wait?.killAfterMs,
          killOp: "sessions kill",
          onTimeout: `raise --wait-timeout, add --kill-after <dur> to cut what is left, or cut it now with hapops sessions kill ${sp.selector}`,
        });
        if (req.then === "maint")
          steps.push(
            follow(
              {
                ...req,
                change: {
                  op: "maint",
                  selector: listSelector(sp.servers),
                  force: req.change.force,
                },
                wait: undefined,
                then: undefined,
                heading: undefined,
              },
              "maint once drained",
              0,
              "stopped by Ctrl-C before maint; the servers stay DRAIN",
            ),
          );
      }
      if (req.change.op === "weight" && req.ramp) {
        const stepReq: ChangeRequest = {
          ...req.change,
          weight: { to: req.ramp.to, step: req.ramp.step },
        };
        const after = applyAfter(facts, sp.servers);
        const more = planChange(after, stepReq).servers.some((s) => s.commands.length > 0);
        const n = (req.rampStep ?? 1) + 1;
        const at = sp.servers.map((s) => `${name(s)} ${s.after.weight}`).join(", ");
        if (more)
          steps.push(
            follow(
              {
                ...req,
                change: stepReq,
                rampStep: n,
                heading: `step ${n} (after ${formatDuration(req.ramp.everyMs)}):`,
              },
              `step ${n}`,
              req.ramp.everyMs,
              `ramp stopped by Ctrl-C before step ${n}; weights stay where they are: ${at}`,
            ),
          );
      }
      return {
        version: 1,
        op: sp.op,
        target: req.target,
        level: "admin",
        mutates: true,
        scope: { servers: sp.servers.map(name) },
        steps,
        guards: [
          ...maintenanceGuard(sp, req.change.force),
          ...lastServerGuards(sp),
          // A ramp is judged by where it ends, before its first step is sent.
          ...(req.change.op === "weight" && req.ramp
            ? lastServerGuards(
                planChange(facts, { ...req.change, weight: req.ramp.to }),
                ` (where the ramp ends, at ${describeWeight(req.ramp.to)})`,
              ).filter((g) => !g.ok)
            : []),
        ],
        describe: [
          ...((req.heading ?? (req.ramp ? "step 1:" : undefined))
            ? [req.heading ?? "step 1:"]
            : []),
          ...describeServerPlan(sp, req.paint),
          ...(req.dryRun && req.saveState && "path" in req.saveState && commands.length > 0
            ? [`then: save the server state to ${req.saveState.path} (servers.saveState)`]
            : []),
        ],
        json: {
          selector: sp.selector,
          servers: sp.servers.map((s) => ({
            backend: s.backend,
            server: s.server,
            before: s.before,
            after: s.after,
            commands: s.commands.map((c) => c.line),
          })),
        },
        report: { selector: sp.selector },
        body: sp,
      };
    },
    async verify(sessions: ChangeSessions, plan: Plan<ServerPlan>): Promise<Verification> {
      const sp = plan.body;
      const facts = await readFacts(sessions.read, scope);
      const wanted = new Set(sp.servers.map(name));
      const after = facts.filter((f) => wanted.has(name(f)));
      const found = verifyPlan(sp, facts);
      const mismatches = found.map(
        (m) =>
          `${m.backend}/${m.server} ${m.field}: expected ${m.expected}, HAProxy says ${m.actual}`,
      );
      const changed = sp.servers.filter((s) => s.commands.length > 0).length;
      const what =
        sp.op === "weight"
          ? [...new Set(after.map((f) => `weight ${f.weight}`))].join(", ")
          : [...new Set(after.map((f) => f.admin))].join(", ");
      const n = after.length;
      // Once verified: save the state (servers.saveState), and say what a reload would do. A
      // chain (drain then maint, a ramp) says it once, at its last step.
      const kept =
        found.length === 0
          ? await keepAfterReload(sessions.read, sp, after, req.saveState)
          : { summary: [], json: {} };
      const last = !plan.steps.some((s) => s.kind === "replan");
      return {
        mismatches,
        ...(found.length > 0
          ? {
              error: new VerificationError(
                `${sp.op} ${sp.selector} did not take effect: ${mismatches.join("; ")}`,
                { mismatches: found },
              ),
            }
          : kept.error
            ? { error: kept.error }
            : {}),
        summary: [
          `verified: HAProxy reports ${n === 1 ? "the server" : `all ${n} servers`} ${what} (${changed} changed, ${n - changed} already so)`,
          ...kept.summary.filter((l) => last || !l.startsWith("runtime only:")),
        ],
        json: {
          ...kept.json,
          selector: sp.selector,
          servers: after.map((f) => ({
            backend: f.backend,
            server: f.server,
            admin: f.admin,
            weight: f.weight,
            operational: f.operational,
            sessions: f.sessions ?? null,
          })),
        },
      };
    },
  };
}
