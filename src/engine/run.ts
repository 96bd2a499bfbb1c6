import type { Journal } from "../audit/journal.js";
import type { Settings } from "../config/settings.js";
import { persistFile, writeFileAtomic, type PersistResult } from "../certs/persist.js";
import {
  EnvironmentError,
  GuardError,
  HaproxyError,
  InterruptedError,
  isHapopsError,
  VerificationError,
  WaitTimeoutError,
  type HapopsError,
} from "../errors.js";
import { formatDuration } from "../util/duration.js";
import {
  checkWriteLevel,
  hintFor,
  openChangeSessions,
  readSessions,
  type ChangeSessions,
} from "./change.js";
import type {
  Operation,
  Plan,
  Report,
  Scope,
  Step,
  StepReport,
  Verification,
} from "./operation.js";
import { explainLostAnswer } from "./connect.js";
import { describeRemaining, waitForDrain, type Clock } from "./wait.js";

/** How the engine talks to people; the CLI decides colour, terminals and --json. */
export interface EngineUi {
  /** A line of human output (not printed under --json). */
  line(text: string): void;
  dim(text: string): string;
  warn(text: string): string;
  /**
   * A live progress line on a terminal. `wait` carries the numbers of a drain wait, so a fleet
   * run can show every target's wait on one line.
   */
  progress(text: string, wait?: WaitProgress): void;
  endProgress(): void;
}

/** Where a drain wait stands: sessions left and time waited. */
export interface WaitProgress {
  readonly sessions: number;
  readonly elapsedMs: number;
  readonly timeoutMs: number;
}

/** Everything a run needs, resolved once by the caller (no globals). */
export interface EngineContext {
  readonly settings: Settings;
  /**
   * The run's audit trail. Undefined only for a dry run that checks a target before a fleet
   * run applies anything (its records are written by the real run that follows).
   */
  readonly journal: Journal | undefined;
  /** Refuse (PolicyError) what the operator's group may not do: each op, on the plan's scope. */
  readonly authorize: (op: string, scope: Scope) => void;
  readonly dryRun: boolean;
  readonly ui: EngineUi;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  /** Ask the operator (a terminal); undefined when there is none. Ctrl-C rejects. */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
}

/** An error with the report of what was done before it, for --json and the audit trail. */
export type ReportedError = HapopsError & { report?: Report };

function attach(e: unknown, report: Report): never {
  if (isHapopsError(e)) {
    report.outcome = e.exitCode === 2 || e.exitCode === 3 ? "refused" : "failed";
    (e as ReportedError).report = report;
  }
  throw e;
}

function linesOf(steps: readonly Step[]): string[] {
  return steps.flatMap((s) =>
    s.kind === "send"
      ? s.commands.map((c) => c.line)
      : s.kind === "transaction"
        ? [...s.lines]
        : [],
  );
}

/** Every policy operation a plan will perform, itself and its follow-ups. */
function opsOf(plan: Plan): string[] {
  return [
    ...new Set([
      plan.op,
      ...plan.steps.flatMap((s) => (s.kind === "replan" ? [s.op, ...(s.ops ?? [])] : [s.op])),
    ]),
  ];
}

/** The first guard that refuses, as its error. */
function guardVerdict(plan: Plan): HapopsError | undefined {
  const failed = plan.guards.filter((g) => !g.ok && !g.forced);
  if (failed.length === 0) return undefined;
  const own = failed.find((g) => g.error);
  if (own?.error) return own.error;
  return new GuardError(
    `refusing ${plan.op}: ${failed.map((g) => g.reason).join("; ")}. Pass --force to do it anyway (it is recorded).`,
    { guards: failed.map((g) => ({ name: g.name, reason: g.reason, ...g.detail })) },
  );
}

export function planJson(plan: Plan): Record<string, unknown> {
  return {
    version: plan.version,
    op: plan.op,
    target: plan.target,
    level: plan.level,
    mutates: plan.mutates,
    scope: plan.scope,
    steps: plan.steps.map((s) =>
      s.kind === "send"
        ? { kind: s.kind, op: s.op, commands: s.commands.map((c) => c.line) }
        : s.kind === "transaction"
          ? { kind: s.kind, op: s.op, commands: s.lines }
          : s.kind === "wait"
            ? { kind: s.kind, op: s.op, until: s.until, timeoutMs: s.timeoutMs }
            : s.kind === "write-file"
              ? { kind: s.kind, op: s.op, path: s.path }
              : { kind: s.kind, op: s.op, afterMs: s.afterMs, label: s.label },
    ),
    guards: plan.guards.map((g) => ({
      name: g.name,
      ok: g.ok,
      forced: g.forced,
      reason: g.reason,
      ...g.detail,
    })),
    ...plan.json,
  };
}

/**
 * Run one operation the way every change runs: open the two sessions, read, plan, authorize
 * every step's operation on the plan's scope, check the level, evaluate the guards, and stop
 * there on a dry run (with the verdict the real run would get); otherwise record the intent,
 * run the steps, read back, verify, and record the result. Returns the report; a failure is
 * thrown with the report attached.
 */
export async function runOperation(ctx: EngineContext, first: Operation): Promise<Report> {
  const report: Report = {
    op: first.op,
    target: ctx.settings.targetText,
    dryRun: ctx.dryRun,
    outcome: "noop",
    plan: null,
    sent: [],
    verified: false,
    steps: [],
  };
  let sessions: ChangeSessions | undefined;
  try {
    sessions = await openChangeSessions(
      ctx.settings,
      `hapops ${first.op}`,
      first.readLevel,
      first.oneSession,
    );
    let op: Operation | undefined = first;
    let n = 0;
    while (op) {
      // After a reload the sessions reach the old process: the next operation needs new ones.
      if (n > 0 && op.reconnect && !ctx.dryRun) {
        const old: ChangeSessions = sessions;
        sessions = undefined;
        await old.close().catch(() => undefined);
        sessions = await openChangeSessions(
          ctx.settings,
          `hapops ${op.op}`,
          op.readLevel,
          op.oneSession,
        );
      }
      const next: Operation | undefined = await runOne(ctx, sessions, op, report, n++);
      op = next;
    }
    return report;
  } catch (e) {
    return attach(await explainLostAnswer(ctx.settings, e), report);
  } finally {
    await sessions?.close();
  }
}

async function runOne(
  ctx: EngineContext,
  sessions: ChangeSessions,
  op: Operation,
  report: Report,
  index: number,
): Promise<Operation | undefined> {
  const { ui } = ctx;
  const state = await op.read(sessions);
  const plan = op.plan(state);
  const lines = linesOf(plan.steps);
  const step: StepReport = {
    op: plan.op,
    ...plan.report,
    plan: planJson(plan),
    sent: [],
    verified: false,
  };
  report.steps.push(step);
  if (index === 0) {
    report.plan = step.plan;
    Object.assign(report, plan.report);
  }

  // Every check below gives the same verdict in a dry run as in the real one.
  for (const o of opsOf(plan)) ctx.authorize(o, plan.scope);
  const level = await checkWriteLevel(sessions.write, plan.level, ctx.settings.targetText, plan.op);
  const refusal = level.error ?? guardVerdict(plan);

  if (ctx.dryRun) {
    if (index === 0) ui.line(ui.dim("dry run: nothing that changes state is sent"));
    for (const l of plan.describe) ui.line(l);
    if (lines.length > 0) {
      ui.line(ui.dim(`would send (${lines.length} line${lines.length === 1 ? "" : "s"}):`));
      for (const l of lines) ui.line(ui.dim(`  ${l}`));
      for (const s of plan.steps)
        if (s.kind === "transaction" && s.payloadNote)
          ui.line(ui.dim(`  <payload: ${s.payloadNote}, elided>`));
    }
    for (const g of plan.guards)
      ui.line(
        g.ok ? ui.dim(`guard ${g.name}: ok, ${g.reason}`) : ui.warn(`guard ${g.name}: ${g.reason}`),
      );
    for (const s of plan.steps)
      if (s.kind === "wait" || s.kind === "write-file") ui.line(ui.dim(`then: ${describeStep(s)}`));
    // What the real run would send: nothing, when it would be refused.
    if (!refusal) {
      report.sent.push(...lines);
      step.sent = [...lines];
    }
    await ctx.journal?.single(refusal ? "refused" : "ok", lines, refusal, plan.detail);
    if (refusal) throw refusal;
    report.outcome = "ok";
    // The follow-ups are planned too, on the state this plan would leave.
    const follow = plan.steps.find((s) => s.kind === "replan");
    return follow?.kind === "replan" ? follow.next(true) : undefined;
  }
  if (refusal && !(await confirmed(ctx, plan, level.error))) throw refusal;
  for (const g of plan.guards)
    if (g.forced) ui.line(ui.warn(`warning: ${g.forcedBy ?? "--force"}: ${g.reason}`));

  const act = plan.steps.filter((s) => s.kind !== "replan" && s.kind !== "wait");
  const held = act.length > 0 ? await op.lock?.(plan) : undefined;
  try {
    if (held?.notice) ui.line(ui.warn(held.notice));
    await applyPlan(ctx, sessions, op, plan, act, lines, step, report);
  } finally {
    await held?.release().catch(() => undefined);
  }

  // What comes after the change: a wait, then maybe another plan from fresh state.
  for (const s of plan.steps) {
    if (s.kind === "wait") await waitStep(ctx, sessions, s, report);
    if (s.kind === "replan") {
      if (s.afterMs > 0) {
        await ctx.clock.sleep(s.afterMs, ctx.signal);
        if (ctx.signal.aborted) throw new InterruptedError(s.interrupted);
      }
      return s.next(false);
    }
  }
  return undefined;
}

/** Record the intent, run the steps, verify, record the result; a no-op is recorded as one. */
async function applyPlan(
  ctx: EngineContext,
  sessions: ChangeSessions,
  op: Operation,
  plan: Plan,
  act: readonly Step[],
  lines: readonly string[],
  step: StepReport,
  report: Report,
): Promise<void> {
  const { ui } = ctx;
  if (lines.length === 0 && act.every((s) => s.kind !== "write-file")) {
    await journalOf(ctx).single("noop", [], undefined, plan.detail);
    for (const l of plan.describe) ui.line(l);
    if (report.outcome !== "ok") report.outcome = "noop";
  } else {
    const intent = await journalOf(ctx).intent(lines, plan.detail);
    const sent: string[] = [];
    let verification: Verification;
    try {
      for (const s of act) await runStep(ctx, sessions, s, sent, report);
      verification = await op.verify(sessions, plan, sent);
    } catch (e) {
      step.sent = sent;
      report.sent.push(...sent);
      await journalOf(ctx).result(intent, "failed", sent, e as HapopsError, plan.detail);
      throw e;
    }
    step.sent = sent;
    report.sent.push(...sent);
    Object.assign(step, verification.json);
    Object.assign(report, verification.json);
    const error =
      verification.error ??
      (verification.mismatches.length > 0
        ? new VerificationError(
            `${plan.op} did not take effect: ${verification.mismatches.join("; ")}`,
            {
              mismatches: verification.mismatches,
            },
          )
        : undefined);
    await journalOf(ctx).result(intent, error ? "failed" : "ok", sent, error, plan.detail);
    if (error) throw error;
    step.verified = verification.verified ?? true;
    report.verified = verification.verified ?? true;
    report.outcome = "ok";
    for (const l of plan.describe) ui.line(l);
    for (const l of verification.output ?? []) ui.line(l);
    for (const l of verification.summary) ui.line(ui.dim(l));
    const written = report.persisted as PersistResult | undefined;
    if (written)
      ui.line(
        `persisted: ${written.path} (mode ${written.mode.toString(8).padStart(4, "0")}; previous kept as ${written.backup})`,
      );
  }
}

/** Nothing is applied without an audit trail. */
function journalOf(ctx: EngineContext): Journal {
  if (!ctx.journal) throw new Error("a change was about to be applied without an audit journal");
  return ctx.journal;
}

/**
 * Whether the operator, asked at a terminal, lets every failed guard that can be confirmed pass.
 * Only when nothing else refuses; Ctrl-C at the question ends the run with nothing sent.
 */
async function confirmed(
  ctx: EngineContext,
  plan: Plan,
  levelError: HapopsError | undefined,
): Promise<boolean> {
  const failed = plan.guards.filter((g) => !g.ok && !g.forced);
  if (!ctx.confirm || levelError || failed.some((g) => g.confirm === undefined)) return false;
  for (const g of failed) {
    let yes: boolean;
    try {
      yes = await ctx.confirm(g.confirm!);
    } catch {
      throw new InterruptedError(`stopped at the question (Ctrl-C); nothing was sent`);
    }
    if (!yes) return false;
  }
  return true;
}

function describeStep(s: Step): string {
  switch (s.kind) {
    case "wait":
      return `wait up to ${formatDuration(s.timeoutMs)} for sessions to reach 0`;
    case "write-file":
      return `write ${s.path}`;
    case "replan":
      return `${s.label}${s.afterMs > 0 ? ` (after ${formatDuration(s.afterMs)})` : ""}`;
    default:
      return s.kind;
  }
}

async function runStep(
  ctx: EngineContext,
  sessions: ChangeSessions,
  s: Step,
  sent: string[],
  report: Report,
): Promise<void> {
  switch (s.kind) {
    case "send":
      return sendStep(sessions, s, sent);
    case "transaction": {
      const notes = await s.run(sessions, sent, {
        clock: ctx.clock,
        signal: ctx.signal,
        ui: ctx.ui,
      });
      for (const n of notes ?? []) ctx.ui.line(ctx.ui.warn(n));
      return;
    }
    case "write-file":
      try {
        if (s.snapshot) writeFileAtomic(s.path, s.payload, s.snapshot.mode);
        else
          report.persisted = persistFile(s.path, s.payload, {
            private: s.private,
            backupDir: ctx.settings.backupDir,
          });
      } catch (e) {
        throw new EnvironmentError(
          s.what
            ? `${s.what} failed (${(e as Error).message}); the file is as it was`
            : `HAProxy took the change, but writing ${s.path} failed (${(e as Error).message}); a reload would bring the old content back — fix the file, then run the same command with --persist again`,
          { path: s.path },
          { cause: e },
        );
      }
      return;
    default:
      return;
  }
}

/**
 * Send a step's commands pipelined. HAProxy's refusals are collected, not fatal, so one bad
 * server does not hide what happened to the others; the first one is reported in HAProxy's words.
 */
async function sendStep(
  sessions: ChangeSessions,
  s: Extract<Step, { kind: "send" }>,
  sent: string[],
): Promise<void> {
  sent.push(...s.commands.map((c) => c.line));
  const outcomes = await Promise.allSettled(s.commands.map((c) => sessions.write.run(c)));
  const refusals: { command: string; words: string; message: string }[] = [];
  outcomes.forEach((o, i) => {
    if (o.status === "fulfilled") return;
    const c = s.commands[i]!;
    if (o.reason instanceof HaproxyError)
      refusals.push({ command: c.line, words: c.spec.words, message: o.reason.haproxyMessage });
    else throw o.reason;
  });
  const first = refusals[0];
  if (!first) {
    s.onAnswers?.(outcomes.map((o) => (o.status === "fulfilled" ? o.value : [])));
    return;
  }
  for (const undo of s.undoOnRefusal ?? []) {
    sent.push(undo.line);
    await sessions.write.run(undo).catch(() => undefined);
  }
  const more = refusals.length > 1 ? ` (and ${refusals.length - 1} more refusals)` : "";
  throw new HaproxyError(
    first.command,
    first.message,
    `HAProxy refused "${first.command}": ${first.message}${more} — ${hintFor(first.message, first.words)}`,
  );
}

async function waitStep(
  ctx: EngineContext,
  sessions: ChangeSessions,
  s: Extract<Step, { kind: "wait" }>,
  report: Report,
): Promise<void> {
  const targets = s.servers;
  const name =
    targets.length === 1
      ? `${targets[0]!.backend}/${targets[0]!.server}`
      : `${targets.length} servers`;
  const result = await waitForDrain(() => readSessions(sessions.read, targets), {
    timeoutMs: s.timeoutMs,
    intervalMs: s.pollMs,
    clock: ctx.clock,
    signal: ctx.signal,
    onProgress: (p) =>
      ctx.ui.progress(
        `waiting for ${name} to drain: ${p.total} session${p.total === 1 ? "" : "s"} left, ${Math.floor(p.elapsedMs / 1000)}s elapsed (timeout ${formatDuration(p.timeoutMs)})`,
        { sessions: p.total, elapsedMs: p.elapsedMs, timeoutMs: p.timeoutMs },
      ),
  }).finally(() => ctx.ui.endProgress());
  report.wait = {
    drained: result.drained,
    elapsedMs: result.elapsedMs,
    remaining: Object.fromEntries(result.remaining),
  };
  if (!result.drained)
    throw new WaitTimeoutError(
      `drain wait timed out after ${formatDuration(result.elapsedMs)}: ${describeRemaining(result.remaining)}; the server${targets.length === 1 ? " stays" : "s stay"} DRAIN; raise --wait-timeout, or cut the sessions left with hapops raw "shutdown sessions server ${targets[0]!.backend}/${targets[0]!.server}" (maint does not cut them)`,
      { remaining: Object.fromEntries(result.remaining) },
    );
  ctx.ui.line(
    result.waited
      ? `drained: no sessions left after ${formatDuration(result.elapsedMs)}`
      : "drained: no sessions left (there were none)",
  );
}
