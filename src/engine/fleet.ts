import type { Journal } from "../audit/journal.js";
import type { FleetApply, FleetMember, Settings } from "../config/settings.js";
import { ExitCode, FleetError, GuardError, isHapopsError, type HapopsError } from "../errors.js";
import { formatDuration } from "../util/duration.js";
import type { Operation, Report } from "./operation.js";
import {
  runOperation,
  type EngineContext,
  type EngineUi,
  type SessionHold,
  type WaitProgress,
} from "./run.js";
import type { Clock } from "./wait.js";

/**
 * One operation over many load balancers (DESIGN.md, "Fleet"). Reads fan out and merge; a
 * change is checked on every target first (a dry run of the same operation: read, plan,
 * policy, level, guards), and only when every target passes is it applied, in parallel or a
 * batch at a time, each target through the one engine with its own audit records under one
 * run id. Nothing about fan-out lives in a command file.
 */

/** At most this many targets are worked on at once (each holds two runtime API sessions). */
export const MAX_PARALLEL = 32;

/** A target's answer to a read, or why there is none. */
export type Reached<T> =
  | { readonly name: string; readonly ok: true; readonly value: T }
  | { readonly name: string; readonly ok: false; readonly error: HapopsError };

/**
 * `fn` on every target, at most `limit` at a time; results in the members' order. A target that
 * fails with a hapops error is a result saying so; anything else is a bug and is thrown.
 */
export async function fanOut<T>(
  members: readonly FleetMember[],
  fn: (member: FleetMember) => Promise<T>,
  limit = MAX_PARALLEL,
): Promise<Reached<T>[]> {
  const out = new Array<Reached<T>>(members.length);
  let next = 0;
  const worker = async () => {
    while (next < members.length) {
      const i = next++;
      const m = members[i]!;
      try {
        out[i] = { name: m.name, ok: true, value: await fn(m) };
      } catch (e) {
        if (!isHapopsError(e)) throw e;
        out[i] = { name: m.name, ok: false, error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, members.length) }, worker));
  return out;
}

/** How one target of a fleet change ended. */
export type TargetResult = "ok" | "noop" | "failed" | "refused" | "not-reached";

export interface TargetOutcome {
  readonly target: string;
  readonly result: TargetResult;
  /** Why, when it is not ok: the error's message, or what stopped the run before it. */
  readonly reason: string | null;
  readonly exitCode: number;
  /** The target's report (the one shape of a change), or null when it was never planned. */
  readonly report: Report | null;
}

/** The one JSON shape of a change over many targets. Fields are only ever added. */
export interface FleetReport {
  /** Shared by every audit record of this run: `hapops audit tail --run <id>`. */
  readonly run: string;
  readonly op: string;
  readonly dryRun: boolean;
  readonly mode: FleetApply["mode"];
  outcome: "ok" | "noop" | "failed" | "refused";
  exitCode: ExitCode;
  readonly targets: TargetOutcome[];
}

/** One target of a fleet change: its settings and journal, and how to build its operation. */
export interface FleetTarget {
  readonly member: FleetMember;
  readonly journal: Journal | undefined;
  /** The operation for this target (built anew for each phase: an operation may keep state). */
  build(settings: Settings): Promise<Operation>;
}

export interface FleetContext {
  readonly op: string;
  readonly run: string;
  readonly apply: FleetApply;
  readonly dryRun: boolean;
  readonly ui: EngineUi;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly authorize: EngineContext["authorize"];
}

/** Exit codes from least to most serious: the run exits with its worst target's. */
const SEVERITY: readonly number[] = [
  ExitCode.ok,
  ExitCode.waitTimeout,
  ExitCode.refusedOrUnverified,
  ExitCode.usage,
  ExitCode.guard,
  ExitCode.socket,
  ExitCode.audit,
  ExitCode.interrupted,
];

export function worstExit(codes: readonly number[]): ExitCode {
  return codes.reduce<number>(
    (w, c) => (SEVERITY.indexOf(c) > SEVERITY.indexOf(w) ? c : w),
    ExitCode.ok,
  ) as ExitCode;
}

/** A socket that could not be reached, or stopped answering: the target was not reached. */
function unreachable(e: HapopsError): boolean {
  return e.exitCode === ExitCode.socket && e.code !== "LEVEL_TOO_LOW";
}

function outcomeOf(name: string, r: Reached<Report>, dryRun: boolean): TargetOutcome {
  if (r.ok) {
    const noop = dryRun ? r.value.sent.length === 0 : r.value.outcome === "noop";
    return {
      target: name,
      result: noop ? "noop" : "ok",
      reason: null,
      exitCode: 0,
      report: r.value,
    };
  }
  const e = r.error;
  const report = (e as { report?: Report }).report ?? null;
  const result: TargetResult =
    e.exitCode === ExitCode.usage || e.exitCode === ExitCode.guard
      ? "refused"
      : unreachable(e) && (report === null || report.sent.length === 0)
        ? "not-reached"
        : "failed";
  return { target: name, result, reason: e.message, exitCode: e.exitCode, report };
}

/**
 * Lines of many targets on one terminal: each line says whose it is, and the drain waits of
 * every target share one progress line ("draining on 2 of 3 targets: 15 sessions left...").
 */
class FleetUi {
  private readonly waits = new Map<string, WaitProgress>();
  private readonly others = new Map<string, string>();
  constructor(private readonly base: EngineUi) {}

  target(name: string, buffer?: string[]): EngineUi {
    const { base } = this;
    return {
      line: (t) => {
        if (buffer) return void buffer.push(t);
        // A line under a progress line: clear it, print, draw it again.
        const shown = this.waits.size + this.others.size > 0;
        if (shown) base.endProgress();
        base.line(`${name}: ${t}`);
        if (shown) this.draw();
      },
      dim: (t) => base.dim(t),
      warn: (t) => base.warn(t),
      progress: (t, wait) => {
        if (wait) this.waits.set(name, wait);
        else this.others.set(name, t);
        this.draw();
      },
      endProgress: () => {
        this.waits.delete(name);
        this.others.delete(name);
        if (this.waits.size + this.others.size === 0) base.endProgress();
        else this.draw();
      },
    };
  }

  /** The longest any target has waited so far (it never goes back when one finishes). */
  private elapsedMs = 0;

  private draw(): void {
    const parts: string[] = [];
    if (this.waits.size > 0) {
      const all = [...this.waits.entries()];
      const total = all.reduce((n, [, w]) => n + w.sessions, 0);
      this.elapsedMs = Math.max(this.elapsedMs, ...all.map(([, w]) => w.elapsedMs));
      const busy = all.filter(([, w]) => w.sessions > 0);
      const secs = `${Math.floor(this.elapsedMs / 1000)}s elapsed`;
      parts.push(
        busy.length === 0
          ? `drained on every target waiting, ${secs}`
          : `draining on ${busy.length} target${busy.length === 1 ? "" : "s"}: ${total} session${total === 1 ? "" : "s"} left (${busy.map(([n, w]) => `${n} ${w.sessions}`).join(", ")}), ${secs}`,
      );
    }
    for (const [n, t] of this.others) parts.push(`${n}: ${t}`);
    this.base.progress(parts.join("; "));
  }
}

/**
 * A change over many targets. Every target is checked first (nothing sent, nothing recorded);
 * any refusal (guard, policy, level, bad input) refuses the run on every target before anything
 * is sent, unless --force passed the guard, and so does a target that cannot be reached unless
 * --on-error continue. A dry run stops there, with each target's plan. Then each target runs
 * the operation for real (it reads and plans again: what it does is decided on the state it
 * meets), all at once or a batch at a time; a failure stops the targets not yet started unless
 * --on-error continue. Every target has its own audit records, all under one run id.
 */
export async function runFleet(
  fc: FleetContext,
  targets: readonly FleetTarget[],
): Promise<FleetReport> {
  const ui = new FleetUi(fc.ui);
  const report: FleetReport = {
    run: fc.run,
    op: fc.op,
    dryRun: fc.dryRun,
    mode: fc.apply.mode,
    outcome: "ok",
    exitCode: 0,
    targets: [],
  };
  const byName = new Map(targets.map((t) => [t.member.name, t]));
  const members = targets.map((t) => t.member);
  const ctxFor = (
    t: FleetTarget,
    dryRun: boolean,
    quiet: boolean,
    buffer?: string[],
  ): EngineContext => ({
    settings: t.member.settings,
    journal: quiet ? undefined : t.journal,
    authorize: fc.authorize,
    dryRun,
    ui: quiet ? silentUi : ui.target(t.member.name, buffer),
    clock: fc.clock,
    signal: fc.signal,
  });

  // 1. Check every target: the same dry run the operator can ask for, recorded only when it is one.
  const buffers = new Map(members.map((m) => [m.name, [] as string[]]));
  // Applied at once right after the check, every target keeps the check's two sessions for the
  // apply (half the handshakes); a rolling run, or more targets than run at once, would leave
  // them idle past HAProxy's `stats timeout`, so it connects again.
  const reuse = !fc.dryRun && fc.apply.mode === "parallel" && members.length <= MAX_PARALLEL;
  const holds = new Map<string, SessionHold>(members.map((m) => [m.name, { keep: reuse }]));
  const checked = await fanOut(members, async (m) => {
    const t = byName.get(m.name)!;
    return runOperation(
      ctxFor(t, true, !fc.dryRun, buffers.get(m.name)),
      await t.build(m.settings),
      holds.get(m.name),
    );
  });
  /** A target's kept sessions, handed over to the run that applies (which closes them). */
  const take = (name: string) => {
    const h = holds.get(name);
    const open = h?.sessions;
    if (h) h.sessions = undefined;
    return open;
  };
  try {
    return await decideAndApply(fc, report, targets, checked, buffers, ctxFor, take);
  } finally {
    // Whatever was not applied (a refused run, targets not started) is closed here.
    await Promise.all(
      members.map(async (m) => {
        await take(m.name)
          ?.close()
          .catch(() => undefined);
      }),
    );
  }
}

async function decideAndApply(
  fc: FleetContext,
  report: FleetReport,
  targets: readonly FleetTarget[],
  checked: readonly Reached<Report>[],
  buffers: ReadonlyMap<string, string[]>,
  ctxFor: (t: FleetTarget, dryRun: boolean, quiet: boolean, buffer?: string[]) => EngineContext,
  take: (name: string) => SessionHold["sessions"],
): Promise<FleetReport> {
  const byName = new Map(targets.map((t) => [t.member.name, t]));
  const members = targets.map((t) => t.member);
  const planned = checked.map((r) => outcomeOf(r.name, r, true));
  if (fc.dryRun) {
    // A refusal was recorded by the dry run itself; a target it could not reach is recorded here.
    for (const c of checked) if (!c.ok) await byName.get(c.name)!.journal?.finish(c.error);
    for (const o of planned) {
      fc.ui.line(`${o.target}:`);
      for (const l of buffers.get(o.target) ?? []) fc.ui.line(`  ${l}`);
      if (o.result !== "ok" && o.result !== "noop")
        fc.ui.line(`  ${fc.ui.warn(`${o.result}: ${o.reason ?? ""}`)}`);
    }
    report.targets.push(...planned);
    return settle(report, fc, "would be");
  }

  // 2. The verdict, for the whole run.
  const refused = planned.filter((o) => o.result === "refused" || o.result === "failed");
  const notReached = planned.filter((o) => o.result === "not-reached");
  const blocking = [...refused, ...(fc.apply.onError === "stop" ? notReached : [])];
  if (blocking.length > 0) {
    const why = blocking.map((o) => `${o.target}: ${o.reason}`).join("; ");
    const names = (xs: readonly TargetOutcome[]) => xs.map((x) => x.target).join(", ");
    const unreached = blocking.filter((o) => o.result === "not-reached");
    // What stopped the run, as the other targets' records and rows say it.
    const cause = [
      refused.length > 0 ? `${names(refused)} refused the run` : undefined,
      unreached.length > 0
        ? `${names(unreached)} could not be reached (--on-error continue goes on without ${unreached.length === 1 ? "it" : "them"})`
        : undefined,
    ]
      .filter((x) => x !== undefined)
      .join("; ");
    for (const [i, o] of planned.entries()) {
      const t = byName.get(o.target)!;
      const own = checked[i]!;
      const error: HapopsError =
        !own.ok && blocking.includes(o) ? own.error : new GuardError(`not sent: ${cause} (${why})`);
      await t.journal?.finish(error);
      // The plan each target would have run (from the check, a dry run), with nothing sent.
      const plan = o.report && {
        ...o.report,
        dryRun: false,
        outcome: "refused" as const,
        sent: [],
        steps: o.report.steps.map((st) => ({ ...st, sent: [] })),
      };
      report.targets.push(
        blocking.includes(o)
          ? { ...o, report: plan }
          : {
              ...o,
              result: "refused",
              reason: `not sent: ${cause}`,
              exitCode: ExitCode.guard,
              report: plan,
            },
      );
    }
    report.outcome = "refused";
    report.exitCode = worstExit(blocking.map((b) => b.exitCode));
    throw new FleetError(
      `${fc.op} sent to no target: ${refused.length > 0 ? `refused on ${refused.length} of ${planned.length}` : `${unreached.length} of ${planned.length} could not be reached`} (${why})${refused.length === 0 ? "; pass --on-error continue to change the others without it" : ""}`,
      report.exitCode,
      report,
    );
  }

  // 3. Apply: every target at once, or a batch at a time.
  const results = new Map<string, TargetOutcome>();
  for (const o of notReached) {
    const t = byName.get(o.target)!;
    const own = checked.find((c) => c.name === o.target)!;
    if (!own.ok) await t.journal?.finish(own.error);
    results.set(o.target, o);
  }
  const todo = members.filter((m) => !results.has(m.name));
  let stopped: { reason: string; exitCode: number } | undefined;
  const applyOne = async (m: FleetMember): Promise<void> => {
    if (stopped !== undefined || fc.signal.aborted) {
      results.set(m.name, {
        target: m.name,
        result: "not-reached",
        reason: stopped?.reason ?? "not started: stopped by Ctrl-C",
        exitCode: stopped?.exitCode ?? ExitCode.interrupted,
        report: null,
      });
      return;
    }
    const t = byName.get(m.name)!;
    let r: Reached<Report>;
    try {
      r = {
        name: m.name,
        ok: true,
        value: await runOperation(ctxFor(t, false, false), await t.build(m.settings), {
          sessions: take(m.name),
          keep: false,
        }),
      };
    } catch (e) {
      if (!isHapopsError(e)) throw e;
      await t.journal?.finish(e).catch(() => undefined);
      r = { name: m.name, ok: false, error: e };
    }
    const o = outcomeOf(m.name, r, false);
    results.set(m.name, o);
    if (!r.ok && fc.apply.onError === "stop" && stopped === undefined)
      stopped = {
        reason: `not started: the run stopped after ${m.name} failed (--on-error continue goes on)`,
        exitCode: o.exitCode,
      };
  };
  if (fc.apply.mode === "parallel") {
    await fanOut(todo, applyOne);
  } else {
    for (let i = 0; i < todo.length; i += fc.apply.batch) {
      const batch = todo.slice(i, i + fc.apply.batch);
      if (i > 0 && stopped === undefined && fc.apply.pauseMs > 0 && !fc.signal.aborted) {
        fc.ui.line(fc.ui.dim(`pausing ${formatDuration(fc.apply.pauseMs)} before the next batch`));
        await fc.clock.sleep(fc.apply.pauseMs, fc.signal);
      }
      await fanOut(batch, applyOne);
    }
  }
  report.targets.push(...members.map((m) => results.get(m.name)!));
  return settle(report, fc, "");
}

/** The run's outcome and exit code from its targets'; thrown when not every target is ok. */
function settle(report: FleetReport, fc: FleetContext, would: string): FleetReport {
  const bad = report.targets.filter((o) => o.result !== "ok" && o.result !== "noop");
  report.exitCode = worstExit(report.targets.map((o) => o.exitCode));
  if (bad.length === 0) {
    report.outcome = report.targets.every((o) => o.result === "noop") ? "noop" : "ok";
    return report;
  }
  report.outcome = bad.every((o) => o.result === "refused") ? "refused" : "failed";
  const ok = report.targets.length - bad.length;
  const everywhere = would ? "; a real run would send nothing to any target" : "";
  const label = (r: TargetResult) => (r === "not-reached" ? "not reached" : r);
  throw new FleetError(
    `${fc.op} ${would ? `${would} ` : ""}${report.outcome} on ${bad.length} of ${report.targets.length} targets${ok > 0 ? ` (${ok} ok)` : ""}: ${bad.map((o) => `${o.target} ${label(o.result)}${o.reason ? `: ${o.reason}` : ""}`).join("; ")}${everywhere}`,
    report.exitCode,
    report,
  );
}

const silentUi: EngineUi = {
  line: () => undefined,
  dim: (t) => t,
  warn: (t) => t,
  progress: () => undefined,
  endProgress: () => undefined,
};
