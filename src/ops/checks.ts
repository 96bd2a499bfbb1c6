import { setCheck, type RuntimeCommand } from "../commands/builders.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Operation, Plan, Verification } from "../engine/operation.js";
import { fetchServers, type ServerView } from "../engine/state.js";
import {
  EnvironmentError,
  UsageError,
  ValidationError,
  VerificationError,
  type HapopsError,
} from "../errors.js";
import {
  checkStateOf,
  type CheckKind,
  type CheckState,
  type CheckStatus,
} from "../parse/check-state.js";
import type { Admin, Operational } from "../parse/servers-state.js";
import type { RuntimeSession } from "../runtime/session.js";
import {
  parseAddrSelector,
  parseSelector,
  selectServers,
  selectorBackend,
  type Selector,
} from "./selector.js";
import { plainPaint, type Paint, type SaveStateTarget } from "./servers.js";
import { saveServerState } from "./state.js";

/**
 * `hapops health enable|disable <sel>` and `hapops agent enable|disable <sel>`: turn a server's
 * health check or agent check on or off (`enable|disable health|agent <b>/<s>`, management.txt
 * 9.3), verified by reading the check's state back from `show servers state`
 * (srv_check_state / srv_agent_state, parse/check-state.ts).
 */

export type CheckOp = "health enable" | "health disable" | "agent enable" | "agent disable";

export interface CheckRequest {
  readonly check: CheckKind;
  readonly enable: boolean;
  readonly selector: Selector;
}

const SELECTOR_WORDS = "backend/server, backend/*, */server, */*, or --addr <ip>[:port]";

/** The CLI's words as a request; bad input throws here, before anything is sent. */
export function parseCheckArgs(
  check: CheckKind,
  action: string,
  selector: string | undefined,
  addr: string | undefined,
): CheckRequest {
  if (action !== "enable" && action !== "disable")
    throw new UsageError(`${check} ${action}: say ${check} enable or ${check} disable`);
  if (addr !== undefined && selector !== undefined)
    throw new UsageError(
      `give a selector or --addr, not both (got ${selector} and --addr ${addr})`,
    );
  if (addr === undefined && selector === undefined)
    throw new UsageError(`${check} ${action} needs a selector (${SELECTOR_WORDS})`);
  return {
    check,
    enable: action === "enable",
    selector: addr !== undefined ? parseAddrSelector(addr) : parseSelector(selector!),
  };
}

/** What planning needs of a server: its two checks, and how `show stat` shows it. */
export interface CheckFacts {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly operational: Operational;
  readonly admin: Admin;
  readonly health: CheckState;
  readonly agent: CheckState;
  /** `show stat` status: "UP", "DOWN", "no check" (health check off or absent), "MAINT"... */
  readonly status: string | undefined;
  /** `check_status` / `agent_status`: empty while that check is disabled (measured, 2.6-3.4). */
  readonly checkStatus: string | undefined;
  readonly agentStatus: string | undefined;
}

export function toCheckFacts(s: ServerView): CheckFacts {
  const agentStatus = (s.stat?.row["agent_status"] ?? "").replace(/^\* /, "");
  return {
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port,
    operational: s.operational,
    admin: s.admin,
    health: checkStateOf(s.fields, "health"),
    agent: checkStateOf(s.fields, "agent"),
    status: s.stat?.status,
    checkStatus: s.stat?.checkStatus || undefined,
    agentStatus: agentStatus || undefined,
  };
}

export interface PlannedCheck {
  readonly backend: string;
  readonly server: string;
  readonly operational: Operational;
  readonly before: CheckStatus;
  readonly after: CheckStatus;
  readonly commands: readonly RuntimeCommand[];
  /** The server has no such check: nothing to disable, or (enable) skipped. */
  readonly notConfigured: boolean;
}

export interface CheckPlan {
  readonly op: CheckOp;
  readonly check: CheckKind;
  readonly enable: boolean;
  readonly selector: string;
  readonly servers: readonly PlannedCheck[];
}

/** What to add to a server line in haproxy.cfg for the check to exist. */
const HOW_TO_CONFIGURE: Readonly<Record<CheckKind, string>> = {
  health: 'add "check" to its server line in haproxy.cfg',
  agent: 'add "agent-check agent-port <port>" to its server line in haproxy.cfg',
};

/** HAProxy's refusal, in its words (server.c cli_parse_enable_health|agent; 2.4-3.4). */
const HAPROXY_REFUSAL: Readonly<Record<CheckKind, string>> = {
  health: "Health check was not configured on this server, cannot enable.",
  agent: "Agent was not configured on this server, cannot enable.",
};

function name(s: { backend: string; server: string }): string {
  return `${s.backend}/${s.server}`;
}

function checkNoun(check: CheckKind): string {
  return check === "health" ? "health check" : "agent check";
}

/** A selector that names one server exactly (`be_app/app1`), not a pattern or an address. */
function namesOneServer(sel: Selector): boolean {
  return sel.kind === "name" && sel.backend !== undefined && sel.server !== undefined;
}

/**
 * The plan (pure): which servers get `enable|disable health|agent`, which are already so. A
 * server without the check has nothing to disable. Enabling it cannot work (HAProxy refuses), so
 * it is refused before anything is sent when the selector names it alone or picks only such
 * servers; a pattern that also picks servers with the check skips it and says so.
 */
export function planCheck(facts: readonly CheckFacts[], req: CheckRequest): CheckPlan {
  const op: CheckOp = `${req.check} ${req.enable ? "enable" : "disable"}`;
  const picked = selectServers(req.selector, facts);
  const missing = picked.filter((f) => !f[req.check].configured);
  if (
    req.enable &&
    missing.length > 0 &&
    (namesOneServer(req.selector) || missing.length === picked.length)
  ) {
    const names = missing.map(name);
    const list =
      names.length <= 3
        ? names.join(", ")
        : `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
    throw new ValidationError(
      `${list} ${names.length === 1 ? "has" : "have"} no ${checkNoun(req.check)} configured (${HOW_TO_CONFIGURE[req.check]}, then reload); HAProxy cannot enable it: "${HAPROXY_REFUSAL[req.check]}"`,
      { servers: names, check: req.check },
    );
  }
  const after: CheckStatus = req.enable ? "enabled" : "disabled";
  return {
    op,
    check: req.check,
    enable: req.enable,
    selector: req.selector.text,
    servers: picked.map((f) => {
      const state = f[req.check];
      const base = {
        backend: f.backend,
        server: f.server,
        operational: f.operational,
        before: state.status,
      };
      if (!state.configured)
        return { ...base, after: state.status, commands: [], notConfigured: true };
      if (state.enabled === req.enable)
        return { ...base, after, commands: [], notConfigured: false };
      return {
        ...base,
        after,
        commands: [setCheck(req.check, req.enable, f.backend, f.server)],
        notConfigured: false,
      };
    }),
  };
}

/**
 * What a check change means for the server, when it is worth saying: with its health check off
 * a server keeps the operational state it had (measured on 2.6-3.4: an UP one stays UP whatever
 * happens to it, a DOWN one stays DOWN; management.txt's "considered UP" is not what happens).
 */
function consequence(p: PlannedCheck, check: CheckKind, paint: Paint): string {
  if (check !== "health" || p.after !== "disabled" || p.commands.length === 0) return "";
  if (p.operational === "DOWN")
    return `  (${paint.status("DOWN")}: it stays DOWN until health enable)`;
  return `  (${paint.status(p.operational)}: it stays in traffic, unchecked, until health enable)`;
}

/**
 * `be_app/app1  health enabled -> disabled  (UP: ...)`, one line per server that changes, names
 * aligned. Servers already so, or without the check, get a line each when there are few, one
 * summary line otherwise.
 */
export function describeCheckPlan(plan: CheckPlan, paint: Paint = plainPaint): string[] {
  const noun = plan.check;
  const changed = plan.servers.filter((s) => s.commands.length > 0);
  const rest = plan.servers.filter((s) => s.commands.length === 0);
  const shown = rest.length <= 5 ? rest : [];
  const width = Math.max(0, ...[...changed, ...shown].map((s) => name(s).length));
  const lines = plan.servers
    .filter((s) => s.commands.length > 0 || shown.includes(s))
    .map((s) => {
      const label = name(s).padEnd(width);
      if (s.notConfigured)
        return plan.enable
          ? `${label}  no ${checkNoun(plan.check)} configured  (skipped: ${HOW_TO_CONFIGURE[plan.check]})`
          : `${label}  no ${checkNoun(plan.check)} configured  (nothing to disable; nothing sent)`;
      if (s.commands.length === 0) return `${label}  ${noun} ${s.after}  (already; nothing sent)`;
      return `${label}  ${noun} ${s.before} -> ${paint.bold(s.after)}${consequence(s, plan.check, paint)}`;
    });
  if (rest.length > 5) {
    const already = rest.filter((s) => !s.notConfigured);
    const none = rest.filter((s) => s.notConfigured);
    if (already.length > 0)
      lines.push(
        `${already.length} more already ${noun} ${already[0]!.after} (nothing sent): ${already.slice(0, 3).map(name).join(", ")}${already.length > 3 ? ", ..." : ""}`,
      );
    if (none.length > 0)
      lines.push(
        `${none.length} more without a ${checkNoun(plan.check)} (${plan.enable ? "skipped" : "nothing to disable"}): ${none.slice(0, 3).map(name).join(", ")}${none.length > 3 ? ", ..." : ""}`,
      );
  }
  return lines;
}

/** Planned servers whose check state HAProxy should now report: every one that has the check. */
export function verifyCheckPlan(
  plan: CheckPlan,
  after: readonly CheckFacts[],
): { server: string; expected: CheckStatus; actual: CheckStatus | "gone" }[] {
  const byName = new Map(after.map((f) => [name(f), f]));
  return plan.servers
    .filter((p) => !p.notConfigured)
    .flatMap((p) => {
      const f = byName.get(name(p));
      const actual = f === undefined ? "gone" : f[plan.check].status;
      return actual === p.after ? [] : [{ server: name(p), expected: p.after, actual }];
    });
}

export interface CheckChange {
  readonly request: CheckRequest;
  readonly target: string;
  readonly paint: Paint;
  /** `servers.saveState`: save the server-state file after a verified change (it carries this). */
  readonly saveState?: SaveStateTarget | undefined;
  readonly dryRun?: boolean | undefined;
}

async function readCheckFacts(read: RuntimeSession, backend?: string): Promise<CheckFacts[]> {
  return (await fetchServers(read, backend)).map(toCheckFacts);
}

/**
 * A disabled check is carried across a reload only by the server-state file: HAProxy applies
 * "disable health|agent" from it (server_state.c, "Only case we want to apply is removing ENABLED
 * flag"), and enabled is what haproxy.cfg says anyway.
 */
async function afterReload(
  read: RuntimeSession,
  plan: CheckPlan,
  target: SaveStateTarget | undefined,
): Promise<{ summary: string[]; json: Record<string, unknown>; error?: HapopsError }> {
  const changed = plan.servers.some((s) => s.commands.length > 0);
  const undo = `runtime only: a reload enables the ${checkNoun(plan.check)} again unless the server state is saved first and loaded (hapops reload saves it; or hapops state save, or servers.saveState: true)`;
  if (target === undefined) return { summary: changed && !plan.enable ? [undo] : [], json: {} };
  if ("problem" in target)
    return {
      summary: [
        !plan.enable
          ? `runtime only: servers.saveState is on, but ${target.problem}; a reload enables the ${checkNoun(plan.check)} again`
          : `not saved: servers.saveState is on, but ${target.problem}`,
      ],
      json: { stateSaved: null },
    };
  if (!changed) return { summary: [], json: {} };
  try {
    const saved = await saveServerState(read, target.path);
    return {
      summary: [
        `saved: the server state (${saved.servers} servers) to ${saved.path}, so a reload keeps this`,
      ],
      json: { stateSaved: saved },
    };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return {
      summary: [],
      json: { stateSaved: null },
      error: new EnvironmentError(
        `${plan.op} ${plan.selector} is verified, but saving the server state to ${target.path} failed (${why}): a reload would undo it; fix that, then run hapops state save`,
        { path: target.path },
        { cause: e },
      ),
    };
  }
}

/** health|agent enable|disable as an engine operation (policy op = the command name). */
export function checkOperation(change: CheckChange): Operation<readonly CheckFacts[], CheckPlan> {
  const req = change.request;
  const backend = selectorBackend(req.selector);
  return {
    op: `${req.check} ${req.enable ? "enable" : "disable"}`,
    readLevel: "user",
    read: (sessions) => readCheckFacts(sessions.read, backend),
    plan(facts): Plan<CheckPlan> {
      const cp = planCheck(facts, req);
      const commands = cp.servers.flatMap((s) => [...s.commands]);
      return {
        version: 1,
        op: cp.op,
        target: change.target,
        level: "admin",
        mutates: true,
        scope: { servers: cp.servers.map(name) },
        steps: commands.length > 0 ? [{ kind: "send", op: cp.op, commands }] : [],
        guards: [],
        describe: [
          ...describeCheckPlan(cp, change.paint),
          ...(change.dryRun && change.saveState && "path" in change.saveState && commands.length > 0
            ? [`then: save the server state to ${change.saveState.path} (servers.saveState)`]
            : []),
        ],
        json: {
          selector: cp.selector,
          check: cp.check,
          wanted: cp.enable ? "enabled" : "disabled",
          servers: cp.servers.map((s) => ({
            backend: s.backend,
            server: s.server,
            before: s.before,
            after: s.after,
            commands: s.commands.map((c) => c.line),
          })),
        },
        report: { selector: cp.selector, check: cp.check },
        body: cp,
      };
    },
    async verify(sessions: ChangeSessions, plan: Plan<CheckPlan>): Promise<Verification> {
      const cp = plan.body;
      const facts = await readCheckFacts(sessions.read, backend);
      const wanted = new Set(cp.servers.map(name));
      const after = facts.filter((f) => wanted.has(name(f)));
      const found = verifyCheckPlan(cp, facts);
      const mismatches = found.map(
        (m) => `${m.server} ${cp.check}: expected ${m.expected}, HAProxy says ${m.actual}`,
      );
      const kept =
        found.length === 0
          ? await afterReload(sessions.read, cp, change.saveState)
          : { summary: [], json: {} };
      const checked = cp.servers.filter((s) => !s.notConfigured);
      const changed = checked.filter((s) => s.commands.length > 0).length;
      const without = cp.servers.length - checked.length;
      const noun = checkNoun(cp.check);
      const state = cp.enable ? "enabled" : "disabled";
      const one =
        checked.length === 1 ? after.find((f) => name(f) === name(checked[0]!)) : undefined;
      const shown = one
        ? cp.check === "health"
          ? ` (show stat: ${one.status ?? "-"}${one.checkStatus ? `, check ${one.checkStatus}` : ""})`
          : ` (show stat: ${one.status ?? "-"}, agent status ${one.agentStatus ?? "none"})`
        : ` (${changed} changed, ${checked.length - changed} already so${without > 0 ? `, ${without} without one` : ""})`;
      return {
        mismatches,
        ...(found.length > 0
          ? {
              error: new VerificationError(
                `${cp.op} ${cp.selector} did not take effect: ${mismatches.join("; ")}`,
                { mismatches: found },
              ),
            }
          : kept.error
            ? { error: kept.error }
            : {}),
        summary: [
          `verified: HAProxy reports the ${noun} ${state} on ${one ? name(one) : `all ${checked.length} servers`}${shown}`,
          ...kept.summary,
        ],
        json: {
          ...kept.json,
          selector: cp.selector,
          check: cp.check,
          servers: after.map((f) => ({
            backend: f.backend,
            server: f.server,
            [cp.check]: f[cp.check].status,
            operational: f.operational,
            admin: f.admin,
            status: f.status ?? null,
            checkStatus: (cp.check === "health" ? f.checkStatus : f.agentStatus) ?? null,
          })),
        },
      };
    },
  };
}
