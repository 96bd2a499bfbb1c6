import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { HapopsError } from "../errors.js";
import type { Identity } from "./identity.js";
import { processStart, type AuditLog, type RecordInput } from "./log.js";
import type { Outcome } from "./record.js";
import { sendSyslog, type SyslogTarget } from "./syslog.js";

export interface JournalContext {
  readonly identity: Identity;
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
 */
export class Journal {
  readonly opId = randomUUID();
  private steps = 0;
  private readonly open = new Set<number>();
  /** Whether this run's outcome has been written (so a final error is not written twice). */
  private settled = false;

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
    const closed = await log.closeOrphans(j.base());
    for (const r of closed) {
      warn(
        `audit: closed an intent left open by an earlier run (seq ${r.intentSeq}): outcome unknown`,
      );
      j.copy(serializeForCopy(r), r.ts);
    }
    return j;
  }

  private base() {
    const id = this.ctx.identity;
    return {
      operator: id.operator,
      uid: id.uid,
      sudo: id.sudo,
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
  ): Promise<void> {
    const { step, phase, ...rest } = input;
    const [record] = await this.log.append([
      { opId: this.opId, step, phase, ...this.base(), ...rest },
    ]);
    if (record) this.copy(serializeForCopy(record), record.ts);
  }

  private copy(line: string, ts: string): void {
    if (!this.syslog) return;
    sendSyslog(this.syslog, line, ts).catch((e: Error) =>
      this.warn(`audit: the syslog copy failed (${e.message}); the record is in the log file`),
    );
  }

  /** Before sending: on disk and synced when this resolves. Returns the step number. */
  async intent(commands: readonly string[], detail?: Record<string, unknown>): Promise<number> {
    const step = ++this.steps;
    await this.write({
      step,
      phase: "intent",
      commands,
      outcome: null,
      error: null,
      ...(detail ? { detail } : {}),
    });
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
    await this.write({
      step,
      phase: "result",
      commands,
      outcome,
      error: errorField(error),
      ...(detail ? { detail } : {}),
    });
    this.open.delete(step);
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
   * failed result, and otherwise one record says refused (exit 2 or 3) or failed.
   */
  async finish(error: HapopsError): Promise<void> {
    for (const step of [...this.open]) await this.result(step, "failed", [], error);
    if (this.settled) return;
    const outcome: Outcome = error.exitCode === 2 || error.exitCode === 3 ? "refused" : "failed";
    await this.single(outcome, [], error);
  }
}

function errorField(e: HapopsError | undefined) {
  return e ? { code: e.code, message: e.message } : null;
}

function serializeForCopy(r: object): string {
  return JSON.stringify(r);
}
