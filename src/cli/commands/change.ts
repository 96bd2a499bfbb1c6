import type { Settings } from "../../config/settings.js";
import {
  applyPlan,
  checkWriteLevel,
  openChangeSessions,
  readFacts,
  readSessions,
  resultError,
  type ApplyResult,
  type ChangeSessions,
} from "../../engine/change.js";
import { describeRemaining, waitForDrain, type Clock } from "../../engine/wait.js";
import type { Journal } from "../../audit/journal.js";
import { InterruptedError, WaitTimeoutError, type HapopsError } from "../../errors.js";
import {
  enforceGuards,
  planChange,
  type ChangeRequest,
  type Plan,
  type PlannedServer,
  type ServerFacts,
  type WeightSpec,
} from "../../ops/plan.js";
import { listSelector, selectorBackend } from "../../ops/selector.js";
import { formatDuration } from "../../util/duration.js";
import { colors, colorStatus, renderJson, type Colors } from "../output.js";

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface ChangeOptions {
  readonly dryRun: boolean;
  /** drain: wait until the servers have no sessions left. */
  readonly wait: boolean;
  readonly waitTimeoutMs: number;
  readonly pollMs: number;
  /** drain: what to do once drained. */
  readonly then: "maint" | undefined;
  /** weight: move toward `to` by `step` every `everyMs`, verifying each step. */
  readonly ramp:
    { readonly to: WeightSpec; readonly step: number; readonly everyMs: number } | undefined;
  readonly signal: AbortSignal;
  readonly clock: Clock;
  /** The run's audit journal and policy check (cli/run-context.ts). */
  readonly journal: Journal;
  readonly authorize: (servers: readonly string[]) => void;
}

/** One applied (or planned) step, as --json reports it. */
export interface StepReport {
  readonly op: string;
  readonly selector: string;
  readonly plan: ReturnType<typeof planJson>;
  readonly sent: readonly string[];
  readonly verified: boolean;
  readonly servers: readonly {
    backend: string;
    server: string;
    admin: string;
    weight: number;
    operational: string;
    sessions: number | null;
  }[];
}

export interface ChangeReport {
  readonly op: string;
  readonly selector: string;
  readonly dryRun: boolean;
  readonly steps: StepReport[];
  wait?: { drained: boolean; elapsedMs: number; remaining: Record<string, number> };
}

export function planJson(plan: Plan) {
  return {
    version: plan.version,
    op: plan.op,
    selector: plan.selector,
    level: plan.level,
    servers: plan.servers.map((s) => ({
      backend: s.backend,
      server: s.server,
      before: s.before,
      after: s.after,
      commands: s.commands.map((c) => c.line),
    })),
    guards: plan.guards,
  };
}

/** Output that goes to people as it happens, and to --json at the end. */
class Reporter {
  readonly c: Colors;
  constructor(
    private readonly settings: Settings,
    private readonly io: Io,
    readonly report: ChangeReport,
  ) {
    this.c = colors(settings.color);
  }

  line(text: string): void {
    if (!this.settings.json) this.io.out(text + "\n");
  }

  progress(text: string): void {
    if (this.settings.progress) this.io.err(`\r\x1b[K${text}`);
  }

  endProgress(): void {
    if (this.settings.progress) this.io.err("\r\x1b[K");
  }

  finish(): void {
    if (this.settings.json) this.io.out(renderJson(this.report));
  }
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
function describePlan(plan: Plan, c: Colors): string[] {
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
        return `${label}  weight ${s.before.weight} -> ${c.bold(String(s.after.weight))}`;
      }
      if (noopServer) return `${label}  ${colorStatus(c, s.after.admin)}  (already; nothing sent)`;
      // Sessions matter to a drain (what it waits for) and to maint (which does not cut them).
      const sessions = s.before.sessions ?? 0;
      const note =
        plan.op === "drain" || (plan.op === "maint" && sessions > 0)
          ? sessionsNote(s.before.sessions)
          : "";
      return `${label}  ${colorStatus(c, s.before.admin)} -> ${colorStatus(c, s.after.admin)}${note}`;
    });
  if (noop.length > 5) {
    const what = plan.op === "weight" ? "at the wanted weight" : noop[0]!.after.admin;
    const names = noop.slice(0, 3).map(name).join(", ");
    lines.push(`${noop.length} more already ${what} (nothing sent): ${names}, ...`);
  }
  return lines;
}

/** "HAProxy reports 3 servers MAINT", read back after the change. */
function summarise(plan: Plan, result: ApplyResult): string {
  const changed = plan.servers.filter((s) => s.commands.length > 0).length;
  const what =
    plan.op === "weight"
      ? [...new Set(result.after.map((f) => `weight ${f.weight}`))].join(", ")
      : [...new Set(result.after.map((f) => f.admin))].join(", ");
  const n = result.after.length;
  return `HAProxy reports ${n === 1 ? "the server" : `all ${n} servers`} ${what} (${changed} changed, ${n - changed} already so)`;
}

function stepReport(plan: Plan, result: ApplyResult | undefined): StepReport {
  return {
    op: plan.op,
    selector: plan.selector,
    plan: planJson(plan),
    sent: result?.sent ?? [],
    verified: result !== undefined,
    servers: (result?.after ?? []).map((f) => ({
      backend: f.backend,
      server: f.server,
      admin: f.admin,
      weight: f.weight,
      operational: f.operational,
      sessions: f.sessions ?? null,
    })),
  };
}

function printDryRun(r: Reporter, plan: Plan): void {
  for (const l of describePlan(plan, r.c)) r.line(l);
  const lines = plan.servers.flatMap((s) => s.commands.map((c) => c.line));
  if (lines.length > 0) {
    r.line(r.c.dim(`would send (${lines.length} line${lines.length === 1 ? "" : "s"}):`));
    for (const l of lines) r.line(r.c.dim(`  ${l}`));
  }
  for (const g of plan.guards)
    r.line(
      g.ok
        ? r.c.dim(`guard ${g.backend}: ok, ${g.reason}`)
        : r.c.red(`guard ${g.backend}: ${g.reason}`),
    );
}

/**
 * Plan, check policy and guards, record the intent (fsynced), apply, verify, record the
 * result; print it and add it to the report.
 */
async function step(
  sessions: ChangeSessions,
  facts: readonly ServerFacts[],
  req: ChangeRequest,
  r: Reporter,
  opts: ChangeOptions,
): Promise<{ plan: Plan; result: ApplyResult | undefined }> {
  const plan = planChange(facts, req);
  opts.authorize(plan.servers.map(name));
  enforceGuards(plan);
  for (const g of plan.guards) if (g.forced) r.line(r.c.yellow(`warning: --force: ${g.reason}`));
  const lines = plan.servers.flatMap((s) => s.commands.map((c) => c.line));
  if (lines.length === 0) {
    await opts.journal.single("noop", []);
    for (const l of describePlan(plan, r.c)) r.line(l);
    r.report.steps.push(stepReport(plan, undefined));
    return { plan, result: undefined };
  }
  const stepNo = await opts.journal.intent(lines);
  let result: ApplyResult;
  try {
    result = await applyPlan(sessions, plan);
  } catch (e) {
    await opts.journal.result(stepNo, "failed", lines, e as HapopsError);
    throw e;
  }
  r.report.steps.push(stepReport(plan, result));
  const error = resultError(plan, result);
  await opts.journal.result(stepNo, error ? "failed" : "ok", result.sent, error);
  if (error) throw error;
  for (const l of describePlan(plan, r.c)) r.line(l);
  r.line(r.c.dim(`verified: ${summarise(plan, result)}`));
  return { plan, result };
}

export async function runChange(
  settings: Settings,
  req: ChangeRequest,
  opts: ChangeOptions,
  io: Io,
): Promise<void> {
  const report: ChangeReport = {
    op: req.op,
    selector: req.selector.text,
    dryRun: opts.dryRun,
    steps: [],
  };
  const r = new Reporter(settings, io, report);
  const sessions = await openChangeSessions(settings, `hapops ${req.op}`);
  try {
    const level = await checkWriteLevel(sessions.write, "admin", settings.targetText, req.op);
    const scope = selectorBackend(req.selector);
    const facts = await readFacts(sessions.read, scope);

    if (opts.dryRun) {
      r.line(r.c.dim("dry run: nothing that changes state is sent"));
      const plan = planChange(facts, req);
      opts.authorize(plan.servers.map(name));
      printDryRun(r, plan);
      report.steps.push(stepReport(plan, undefined));
      if (opts.ramp) dryRunRamp(facts, req, opts.ramp, r);
      if (opts.wait)
        r.line(
          r.c.dim(`then: wait up to ${formatDuration(opts.waitTimeoutMs)} for sessions to reach 0`),
        );
      if (opts.then) r.line(r.c.dim(`then: ${opts.then} once drained`));
      if (level.error) r.line(r.c.yellow(`warning: ${level.error.message}`));
      r.finish();
      let refused: HapopsError | undefined;
      try {
        enforceGuards(plan);
      } catch (e) {
        refused = e as HapopsError;
      }
      const wouldSend = plan.servers.flatMap((s) => s.commands.map((c) => c.line));
      await opts.journal.single(refused ? "refused" : "ok", wouldSend, refused);
      if (refused) throw refused;
      return;
    }
    if (level.error) throw level.error;

    if (opts.ramp) r.line(r.c.dim("step 1:"));
    const first = await step(sessions, facts, req, r, opts);
    if (req.op === "weight" && opts.ramp) {
      await ramp(sessions, req, opts, r, scope);
    }
    if (req.op === "drain" && (opts.wait || opts.then)) {
      await drainWait(sessions, first.plan, opts, r);
      if (opts.then === "maint") {
        const then = listSelector(first.plan.servers);
        await step(
          sessions,
          await readFacts(sessions.read, scope),
          { op: "maint", selector: then, force: req.force },
          r,
          opts,
        );
      }
    }
    r.finish();
  } finally {
    await sessions.close();
  }
}

async function drainWait(
  sessions: ChangeSessions,
  plan: Plan,
  opts: ChangeOptions,
  r: Reporter,
): Promise<void> {
  const targets = plan.servers;
  const result = await waitForDrain(() => readSessions(sessions.read, targets), {
    timeoutMs: opts.waitTimeoutMs,
    intervalMs: opts.pollMs,
    clock: opts.clock,
    signal: opts.signal,
    onProgress: (p) =>
      r.progress(
        `waiting for ${targets.length === 1 ? name(targets[0]!) : `${targets.length} servers`} to drain: ${p.total} session${p.total === 1 ? "" : "s"} left, ${Math.floor(p.elapsedMs / 1000)}s elapsed (timeout ${formatDuration(p.timeoutMs)})`,
      ),
  }).finally(() => r.endProgress());
  r.report.wait = {
    drained: result.drained,
    elapsedMs: result.elapsedMs,
    remaining: Object.fromEntries(result.remaining),
  };
  if (!result.drained)
    throw new WaitTimeoutError(
      `drain wait timed out after ${formatDuration(result.elapsedMs)}: ${describeRemaining(result.remaining)}; the server${targets.length === 1 ? " stays" : "s stay"} DRAIN (raise --wait-timeout, or run hapops maint to cut the sessions off)`,
      { remaining: r.report.wait.remaining },
    );
  r.line(
    result.waited
      ? `drained: no sessions left after ${formatDuration(result.elapsedMs)}`
      : "drained: no sessions left (there were none)",
  );
}

async function ramp(
  sessions: ChangeSessions,
  req: Extract<ChangeRequest, { op: "weight" }>,
  opts: ChangeOptions,
  r: Reporter,
  scope: string | undefined,
): Promise<void> {
  const spec = opts.ramp!;
  const stepReq: ChangeRequest = { ...req, weight: { to: spec.to, step: spec.step } };
  for (let n = 2; ; n++) {
    const pending = planChange(await readFacts(sessions.read, scope), stepReq);
    if (pending.servers.every((s) => s.commands.length === 0)) {
      r.line("ramp done: every server is at its target weight");
      return;
    }
    await opts.clock.sleep(spec.everyMs, opts.signal);
    if (opts.signal.aborted) {
      const at = pending.servers.map((s) => `${name(s)} ${s.before.weight}`).join(", ");
      throw new InterruptedError(
        `ramp stopped by Ctrl-C before step ${n}; weights stay where they are: ${at}`,
      );
    }
    r.line(r.c.dim(`step ${n}:`));
    await step(sessions, await readFacts(sessions.read, scope), stepReq, r, opts);
  }
}

/** The steps a ramp would take, simulated on the current facts. */
function dryRunRamp(
  facts: readonly ServerFacts[],
  req: ChangeRequest,
  spec: NonNullable<ChangeOptions["ramp"]>,
  r: Reporter,
): void {
  let state = applyAfter(facts, planChange(facts, req).servers);
  const stepReq: ChangeRequest = { ...req, op: "weight", weight: { to: spec.to, step: spec.step } };
  for (let n = 1; n <= 256; n++) {
    const plan = planChange(state, stepReq);
    if (plan.servers.every((s) => s.commands.length === 0)) return;
    r.line(r.c.dim(`step ${n} (after ${formatDuration(spec.everyMs * n)}):`));
    printDryRun(r, plan);
    r.report.steps.push(stepReport(plan, undefined));
    state = applyAfter(state, plan.servers);
  }
}

function applyAfter(
  facts: readonly ServerFacts[],
  planned: readonly PlannedServer[],
): ServerFacts[] {
  const after = new Map(planned.map((p) => [name(p), p.after]));
  return facts.map((f) => ({ ...f, ...(after.get(name(f)) ?? {}) }));
}
