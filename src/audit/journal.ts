import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { isHapopsError, type HapopsError } from "../errors.js";
import type { Identity } from "./identity.js";
import { processStart, type AppendOptions, type AuditLog, type RecordInput } from "./log.js";
import type { Outcome } from "./record.js";
import { sendSyslog, type SyslogTarget } from "./syslog.js";

export interface JournalContext {
  readonly identity: Identity;
  /** The run id shared by every target of one command (the opId itself for one target). */
  readonly run?: string;
  readonly target: string;
  readonly op: string;
  readonly args: readonly string[];
  readonly reason: string | undefined;
  readonly dryRun: boolean;
  readonly force: boolean;
}

/**
 * The audit trail of one hapops run: an `intent` (fsynced) before each step that sends
 * anything, a `result` after it, and single records for dry runs, no-ops and refusals. All
 * records of a run share an opId.
 *
 * The journal knows what the run has sent, so when the log refuses a record its error says so:
 * "nothing was sent" only while that is true, and "applied but not recorded: <lines>" when the
 * result of lines already sent cannot be written even with the reserve (log.ts) released.
 */
export class Journal {
  readonly opId = randomUUID();
  private steps = 0;
  private readonly open = new Set<number>();
  /** Whether this run's outcome has been written (so a final error is not written twice). */
  private settled = false;
  /** Lines this run sent whose result is in the log. */
  private readonly recorded: string[] = [];
  /** Steps whose result the log refused, with the error that said so. */
  private readonly unrecorded = new Map<number, HapopsError>();
  /** Errors thrown because the log refused a record of this run. */
  private readonly refusals = new WeakSet<object>();

  private constructor(
    private readonly log: AuditLog,
    private readonly ctx: JournalContext,
    private readonly syslog: SyslogTarget | undefined,
    private readonly warn: (message: string) => void,
  ) {}

  /** Start a run's journal, first closing intents left open by runs that died. */
  static async start(
    log: AuditLog,
    ctx: JournalContext,
    syslog: SyslogTarget | undefined,
    warn: (message: string) => void,
  ): Promise<Journal> {
    const j = new Journal(log, ctx, syslog, warn);
    const base = j.base();
    const closed = await log.closeOrphans({
      host: base.host,
      operator: base.operator,
      uid: base.uid,
      sudo: base.sudo,
      pid: base.pid,
      opId: j.opId,
    });
    for (const r of closed) {
      warn(
        `audit: closed an intent left open by an earlier run (seq ${r.intentSeq}): outcome unknown`,
      );
      j.copy(serializeForCopy(r), r.ts);
    }
    return j;
  }

  /**
   * Another journal of the same run, for one target of a fleet run: its own opId and target,
   * the run id of this one (orphans were closed when this one started).
   */
  sibling(target: string): Journal {
    return new Journal(
      this.log,
      { ...this.ctx, target, run: this.ctx.run ?? this.opId },
      this.syslog,
      this.warn,
    );
  }

  /** The id every record of this run carries in `run`. */
  get runId(): string {
    return this.ctx.run ?? this.opId;
  }

  private base() {
    const id = this.ctx.identity;
    return {
      operator: id.operator,
      uid: id.uid,
      sudo: id.sudo,
      ...(id.operatorFrom !== undefined ? { operatorFrom: id.operatorFrom } : {}),
      sudoUser: id.sudoUser ?? null,
      loginuid: id.loginuid ?? null,
      tty: id.tty ?? null,
      host: hostname(),
      pid: process.pid,
      pidStart: processStart("self") ?? null,
      target: this.ctx.target,
      op: this.ctx.op,
      args: this.ctx.args,
      reason: this.ctx.reason ?? null,
      dryRun: this.ctx.dryRun,
      force: this.ctx.force,
    };
  }

  private async write(
    input: Omit<RecordInput, keyof ReturnType<Journal["base"]> | "opId">,
    opts: AppendOptions,
  ): Promise<void> {
    const { step, phase, ...rest } = input;
    let record;
    try {
      [record] = await this.log.append(
        [{ opId: this.opId, run: this.ctx.run ?? this.opId, step, phase, ...this.base(), ...rest }],
        opts,
      );
    } catch (e) {
      if (e instanceof Error) this.refusals.add(e);
      throw e;
    }
    if (record) this.copy(serializeForCopy(record), record.ts);
  }

  private copy(line: string, ts: string): void {
    if (!this.syslog) return;
    sendSyslog(this.syslog, line, ts).catch((e: Error) =>
      this.warn(`audit: the syslog copy failed (${e.message}); the record is in the log file`),
    );
  }

  /** What a refused record that reports nothing sent means: nothing (more) was sent. */
  private nothingMore(what = "refusing to act without a record"): string {
    const n = this.recorded.length;
    if (n === 0) return `${what} (nothing was sent)`;
    return `${what} (nothing more was sent; the ${n} line${n === 1 ? "" : "s"} this run sent before ${n === 1 ? "is" : "are"} recorded)`;
  }

  /** Before sending: on disk and synced when this resolves. Returns the step number. */
  async intent(commands: readonly string[], detail?: Record<string, unknown>): Promise<number> {
    const step = ++this.steps;
    await this.write(
      {
        step,
        phase: "intent",
        commands,
        outcome: null,
        error: null,
        ...(detail ? { detail } : {}),
      },
      { reserve: true, consequence: this.nothingMore() },
    );
    this.open.add(step);
    return step;
  }

  async result(
    step: number,
    outcome: Outcome,
    commands: readonly string[],
    error?: HapopsError,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    await this.record(step, outcome, commands, error, detail, this.nothingMore());
  }

  private async record(
    step: number,
    outcome: Outcome,
    commands: readonly string[],
    error: HapopsError | undefined,
    detail: Record<string, unknown> | undefined,
    nothingSent: string,
  ): Promise<void> {
    // The log already refused this step's result: recording it again as anything else (a
    // caller's "failed" with that very error) would say less than what happened.
    const refused = this.unrecorded.get(step);
    if (refused) throw refused;
    const afterIntent = this.open.has(step);
    const opts: AppendOptions = afterIntent
      ? {
          useReserve: true,
          sent: commands,
          consequence: notRecorded(step, outcome, commands),
          onReserveUsed: (reserve) =>
            this.warn(
              `audit: the disk holding ${this.log.path} is full; this result was written into the room reserved for it (${reserve}), which is now used up — free space there: every change is refused until then`,
            ),
        }
      : { consequence: nothingSent };
    try {
      await this.write(
        {
          step,
          phase: "result",
          commands,
          outcome,
          error: errorField(error),
          ...(detail ? { detail } : {}),
        },
        opts,
      );
    } catch (e) {
      if (afterIntent && isHapopsError(e)) this.unrecorded.set(step, e);
      throw e;
    }
    this.open.delete(step);
    if (afterIntent) this.recorded.push(...commands);
    if (outcome === "refused" || outcome === "failed") this.settled = true;
  }

  /** A step that sends nothing: a dry run, a no-op, a refusal. */
  async single(
    outcome: Outcome,
    commands: readonly string[],
    error?: HapopsError,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    // A result without an intent: nothing was (or will be) sent for it.
    await this.result(++this.steps, outcome, commands, error, detail);
  }

  /**
   * Record how the run ended when it ended in an error no step recorded: open intents get a
   * failed result, and otherwise one record says refused (exit 2 or 3) or failed. When the
   * error is the log refusing a record, nothing more is tried: that error already says what
   * was sent, and a smaller record squeezed in after it would say less.
   */
  async finish(error: HapopsError): Promise<void> {
    if (this.refusals.has(error)) return;
    const ending = this.nothingMore("the end of this run is not recorded");
    for (const step of [...this.open])
      await this.record(step, "failed", [], error, undefined, ending);
    if (this.settled) return;
    const outcome: Outcome = error.exitCode === 2 || error.exitCode === 3 ? "refused" : "failed";
    await this.record(++this.steps, outcome, [], error, undefined, ending);
  }
}

/**
 * What a refused result means once its intent is on disk: the lines were sent (applied, when
 * the outcome is ok) and the log does not say so. All of them, since nothing else records them.
 */
function notRecorded(step: number, outcome: Outcome, commands: readonly string[]): string {
  const next =
    "make the audit log writable again (the next change is refused until then) and check HAProxy's state (hapops servers)";
  if (commands.length === 0)
    return `the outcome (${outcome}) of step ${step}, whose intent is recorded, is not recorded — ${next}`;
  const what =
    outcome === "ok" ? "applied but not recorded" : `sent but not recorded (outcome ${outcome})`;
  return `${what}: ${commands.join("; ")} — ${next}`;
}

function errorField(e: HapopsError | undefined) {
  return e ? { code: e.code, message: e.message } : null;
}

function serializeForCopy(r: object): string {
  return JSON.stringify(r);
}
