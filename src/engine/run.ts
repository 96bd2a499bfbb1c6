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
import { shutdownSessionsServer, waitSrvRemovable } from "../commands/builders.js";
import { readCheckResults, readServerHolds, type CheckResult, type ServerHold } from "./reads.js";
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
      ...plan.steps.flatMap((s) =>
        s.kind === "replan"
          ? [s.op, ...(s.ops ?? [])]
          : s.kind === "wait" && s.killAfterMs !== undefined && s.killOp
            ? [s.op, s.killOp]
            : [s.op],
      ),
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
            ? {
                kind: s.kind,
                op: s.op,
                until: s.until,
                servers: s.servers.map((t) => `${t.backend}/${t.server}`),
                timeoutMs: s.timeoutMs,
                ...(s.until === "removable" ? { srvRemovable: s.srvRemovable ?? false } : {}),
                ...(s.killAfterMs !== undefined
                  ? {
                      killAfterMs: Math.min(s.killAfterMs, s.timeoutMs),
                      kill: s.servers.map((t) => shutdownSessionsServer(t.backend, t.server).line),
                    }
                  : {}),
              }
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
/**
 * Sessions a caller keeps between two runs on one target: a fleet run checks every target (a dry
 * run), then applies on the same connections instead of opening new ones (each an mTLS
 * handshake). `keep`: leave them open in `sessions` after this run; otherwise they are closed.
 */
export interface SessionHold {
  sessions?: ChangeSessions | undefined;
  keep: boolean;
}

export async function runOperation(
  ctx: EngineContext,
  first: Operation,
  hold?: SessionHold,
): Promise<Report> {
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
  let sessions: ChangeSessions | undefined = hold?.sessions;
  let failed = false;
  if (hold) hold.sessions = undefined;
  try {
    sessions ??= await openChangeSessions(
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
    failed = true;
    return attach(await explainLostAnswer(ctx.settings, e), report);
  } finally {
    // A run that failed leaves nothing to reuse: its sessions may be cut or mid-answer.
    if (hold?.keep && !failed) hold.sessions = sessions;
    else await sessions?.close();
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
      return describeWait(s);
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

type WaitStepOf = Extract<Step, { kind: "wait" }>;

/** After a cut, how long the sessions have to reach 0 before the wait gives up. */
export const AFTER_KILL_MS = 5000;
/**
 * The longest `wait <ms> srv-removable` one poll asks for: it holds the write session until
 * HAProxy answers, so it stays well under the answer timeout (10 s by default).
 */
const SRV_REMOVABLE_CHUNK_MS = 5000;

function serverName(t: { backend: string; server: string }): string {
  return `${t.backend}/${t.server}`;
}

function nameOf(s: WaitStepOf): string {
  return s.servers.length === 1 ? serverName(s.servers[0]!) : `${s.servers.length} servers`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The dry run's line for a wait (and the plan's human description of it). */
function describeWait(s: WaitStepOf): string {
  const name = nameOf(s);
  const upTo = `up to ${formatDuration(s.timeoutMs)}`;
  const what =
    s.until === "drained"
      ? `wait ${upTo} for sessions to reach 0`
      : s.until === "removable"
        ? `wait ${upTo} until HAProxy can delete ${name}: no session or connection left (${s.srvRemovable ? "wait srv-removable" : "polling show stat and show servers conn"})`
        : `wait ${upTo} for the health check of ${name} to pass`;
  if (s.killAfterMs === undefined || s.until === "check-passed") return what;
  const at = Math.min(s.killAfterMs, s.timeoutMs);
  const lines = s.servers.map((t) => shutdownSessionsServer(t.backend, t.server).line);
  return `${what}; after ${formatDuration(at)} cut what is left (${lines.join(", ")})`;
}

/** How a wait polls, and how it names what is left. */
interface Waiter {
  poll(): Promise<ReadonlyMap<string, number>>;
  readonly intervalMs: number;
  /** What is left, for messages ("be/s has 2 sessions"). */
  describe(remaining: ReadonlyMap<string, number>): string;
  readonly unit: string;
  /**
   * Servers HAProxy says will never be removable as they are ("Failed." to wait srv-removable),
   * with its words: the wait ends for them, and `del server` then says why (and its plan can
   * put the server back).
   */
  readonly failed?: ReadonlyMap<string, string>;
}

function holdCount(h: ServerHold): number {
  return Math.max(h.sessions, h.used) + h.queued + h.idle;
}

function describeHold(key: string, h: ServerHold | undefined, n: number): string {
  if (!h) return `${key} has ${plural(n, "connection")}`;
  const parts = [
    h.sessions > 0 || (h.queued === 0 && h.idle === 0)
      ? plural(Math.max(h.sessions, h.used), "session")
      : "",
    h.queued > 0 ? `${h.queued} queued` : "",
    h.idle > 0 ? plural(h.idle, "idle connection") : "",
  ].filter(Boolean);
  return `${key} has ${parts.join(", ")}`;
}

function waiter(ctx: EngineContext, sessions: ChangeSessions, s: WaitStepOf): Waiter {
  const targets = s.servers;
  if (s.until === "drained")
    return {
      poll: () => readSessions(sessions.read, targets),
      intervalMs: s.pollMs,
      describe: describeRemaining,
      unit: "session",
    };
  if (s.until === "check-passed") {
    let last = new Map<string, CheckResult>();
    return {
      poll: async () => {
        const read = await readCheckResults(sessions.read, targets);
        // `last_chk` can read empty while the next check runs (seen on 3.2): keep what the
        // previous poll saw for the same result.
        for (const [k, c] of read) {
          const before = last.get(k);
          if (c.detail === "" && before && before.status === c.status)
            read.set(k, { ...c, detail: before.detail });
        }
        last = read;
        return new Map([...last].map(([k, c]) => [k, c.passed ? 0 : 1]));
      },
      intervalMs: s.pollMs,
      describe: (remaining) =>
        [...remaining]
          .filter(([, n]) => n > 0)
          .map(([k]) => {
            const c = last.get(k);
            if (!c?.present) return `${k} is gone`;
            if (c.status === "" || c.status === "INI") return `${k} has no check result yet`;
            const why = [c.desc, c.detail].filter(Boolean).join(": ");
            return `the check of ${k} fails: ${c.status}${why ? ` (${why})` : ""}`;
          })
          .join(", ") || "every check passed",
      unit: "check",
    };
  }
  let holds = new Map<string, ServerHold>();
  const describe = (remaining: ReadonlyMap<string, number>) =>
    [...remaining]
      .filter(([, n]) => n > 0)
      .map(([k, n]) => describeHold(k, holds.get(k), n))
      .join(", ") || "no connections left";
  if (!s.srvRemovable)
    return {
      poll: async () => {
        holds = await readServerHolds(sessions.read, targets);
        return new Map([...holds].map(([k, h]) => [k, holdCount(h)]));
      },
      intervalMs: s.pollMs,
      describe,
      unit: "connection",
    };
  // 3.0+: HAProxy itself says when `del server` would work ("Done."), or that it never will
  // ("Failed.", with the reason from 3.4 on; src/cli.c cli_release_wait()).
  const chunk = Math.max(100, Math.min(s.pollMs, SRV_REMOVABLE_CHUNK_MS));
  const failed = new Map<string, string>();
  return {
    poll: async () => {
      const out = new Map<string, number>();
      const pending: { backend: string; server: string }[] = [];
      for (const t of targets) {
        const key = serverName(t);
        out.set(key, 0);
        if (failed.has(key)) continue;
        try {
          await sessions.write.run(waitSrvRemovable(chunk, t.backend, t.server));
        } catch (e) {
          if (!(e instanceof HaproxyError)) throw e;
          if (/^Wait delay expired/.test(e.haproxyMessage)) pending.push(t);
          // Not in maintenance, gone, or pointed at by the configuration: no wait changes it.
          else failed.set(key, e.haproxyMessage);
        }
      }
      if (pending.length > 0) {
        holds = await readServerHolds(sessions.read, pending);
        for (const t of pending) {
          const h = holds.get(serverName(t));
          out.set(serverName(t), Math.max(1, h ? holdCount(h) : 1));
        }
      }
      return out;
    },
    // The `wait` itself takes up to `chunk`: no pause between polls.
    intervalMs: 0,
    describe,
    unit: "connection",
    failed,
  };
}

/**
 * `shutdown sessions server` for every server that still has sessions, recorded like any line
 * sent: an intent before, a result after.
 */
async function cutSessions(
  ctx: EngineContext,
  sessions: ChangeSessions,
  s: WaitStepOf,
  remaining: ReadonlyMap<string, number>,
  report: Report,
): Promise<string[]> {
  const busy = s.servers.filter((t) => (remaining.get(serverName(t)) ?? 0) > 0);
  const commands = busy.map((t) => shutdownSessionsServer(t.backend, t.server));
  const lines = commands.map((c) => c.line);
  const journal = journalOf(ctx);
  const intent = await journal.intent(lines, { cut: Object.fromEntries(remaining) });
  const sent: string[] = [];
  const step = report.steps.at(-1);
  try {
    await sendStep(sessions, { kind: "send", op: s.killOp ?? s.op, commands }, sent);
  } catch (e) {
    report.sent.push(...sent);
    step?.sent.push(...sent);
    await journal.result(intent, "failed", sent, e as HapopsError);
    throw e;
  }
  report.sent.push(...sent);
  step?.sent.push(...sent);
  await journal.result(intent, "ok", sent);
  return lines;
}

async function waitStep(
  ctx: EngineContext,
  sessions: ChangeSessions,
  s: WaitStepOf,
  report: Report,
): Promise<void> {
  const name = nameOf(s);
  const w = waiter(ctx, sessions, s);
  const drainLike = s.until !== "check-passed";
  const leaves =
    s.leaves ??
    (s.until === "drained"
      ? `the server${s.servers.length === 1 ? " stays" : "s stay"} DRAIN`
      : `${name} ${s.servers.length === 1 ? "stays" : "stay"} as ${s.servers.length === 1 ? "it is" : "they are"}`);
  const killAt =
    drainLike && s.killAfterMs !== undefined ? Math.min(s.killAfterMs, s.timeoutMs) : undefined;
  const doing =
    s.until === "drained"
      ? `waiting for ${name} to drain`
      : s.until === "removable"
        ? `waiting until ${name} can be deleted`
        : `waiting for the health check of ${name} to pass`;
  const once = (timeoutMs: number, offsetMs: number) =>
    waitForDrain(() => w.poll(), {
      timeoutMs,
      intervalMs: w.intervalMs,
      clock: ctx.clock,
      signal: ctx.signal,
      onProgress: (p) => {
        const elapsedMs = offsetMs + p.elapsedMs;
        const left = drainLike
          ? `${plural(p.total, w.unit)} left`
          : w.describe(p.remaining) || "waiting for a result";
        const cut =
          killAt !== undefined && offsetMs === 0 ? `, cut at ${formatDuration(killAt)}` : "";
        ctx.ui.progress(
          `${doing}: ${left}, ${Math.floor(elapsedMs / 1000)}s elapsed (timeout ${formatDuration(s.timeoutMs)}${cut})`,
          drainLike ? { sessions: p.total, elapsedMs, timeoutMs: s.timeoutMs } : undefined,
        );
      },
    }).catch((e: unknown) => {
      // wait.ts says what a drain leaves; this wait may leave something else.
      if (e instanceof InterruptedError) {
        const remaining = new Map(
          Object.entries((e.details["remaining"] ?? {}) as Record<string, number>),
        );
        const waited = offsetMs + Number(e.details["elapsedMs"] ?? 0);
        throw new InterruptedError(
          `stopped waiting after ${formatDuration(waited)} (Ctrl-C): ${w.describe(remaining)}; ${leaves}`,
          e.details,
        );
      }
      throw e;
    });

  let result;
  let cut: { lines: string[]; afterMs: number; left: string } | undefined;
  try {
    result = await once(killAt ?? s.timeoutMs, 0);
    if (!result.drained && killAt !== undefined) {
      ctx.ui.endProgress();
      const left = w.describe(result.remaining);
      const lines = await cutSessions(ctx, sessions, s, result.remaining, report);
      cut = { lines, afterMs: result.elapsedMs, left };
      ctx.ui.line(
        `cut after ${formatDuration(result.elapsedMs)}: ${left}; sent ${lines.join(", ")}`,
      );
      const after = await once(AFTER_KILL_MS, result.elapsedMs);
      result = { ...after, elapsedMs: result.elapsedMs + after.elapsedMs, waited: true };
    }
  } finally {
    ctx.ui.endProgress();
  }
  report.wait = {
    until: s.until,
    drained: result.drained,
    elapsedMs: result.elapsedMs,
    remaining: Object.fromEntries(result.remaining),
    ...(cut ? { cut: { afterMs: cut.afterMs, sent: cut.lines } } : {}),
    ...(w.failed && w.failed.size > 0 ? { failed: Object.fromEntries(w.failed) } : {}),
  };
  if (!result.drained) {
    const label =
      s.until === "drained"
        ? "drain wait"
        : s.until === "removable"
          ? `the wait until ${name} can be deleted`
          : `the wait for the health check of ${name}`;
    const next =
      s.onTimeout ??
      (s.until === "drained"
        ? `raise --wait-timeout, add --kill-after <dur> to cut what is left, or cut it now with hapops sessions kill ${s.servers.length === 1 ? name : "<sel>"}`
        : "raise --wait-timeout");
    throw new WaitTimeoutError(
      cut
        ? `${label}: the sessions were cut after ${formatDuration(cut.afterMs)} (${cut.lines.join(", ")}), but ${formatDuration(AFTER_KILL_MS)} later ${w.describe(result.remaining)}; ${leaves}`
        : `${label} timed out after ${formatDuration(result.elapsedMs)}: ${w.describe(result.remaining)}; ${leaves}; ${next}`,
      { remaining: Object.fromEntries(result.remaining) },
    );
  }
  const after = result.waited ? ` after ${formatDuration(result.elapsedMs)}` : "";
  for (const [k, msg] of w.failed ?? [])
    ctx.ui.line(
      `not removable: HAProxy answered "${msg}" to wait srv-removable ${k}: it cannot be deleted as it is (del server says why)`,
    );
  if (w.failed && w.failed.size === s.servers.length) return;
  ctx.ui.line(
    s.until === "drained"
      ? result.waited
        ? `drained: no sessions left${after}${cut ? " (the rest cut)" : ""}`
        : "drained: no sessions left (there were none)"
      : s.until === "removable"
        ? `removable: ${name} has no session or connection left${result.waited ? after : " (there were none)"}${cut ? " (the rest cut)" : ""}`
        : `health check passed: ${name}${after}`,
  );
}
