import type { RuntimeCommand } from "../commands/builders.js";
import type { Level } from "../commands/levels.js";
import type { HapopsError } from "../errors.js";
import type { Scope } from "../policy/policy.js";

export type { Scope };
import type { ChangeSessions } from "./change.js";
import type { Clock } from "./wait.js";

/**
 * The operation engine's vocabulary (DESIGN.md, "one operation engine"). An operation reads the
 * live state, turns it and a request into a Plan (pure), and says how to verify it. The engine
 * (engine/run.ts) does everything else, the same way for every kind of change: authorize the
 * plan's scope, check the level, evaluate the guards (the same verdict in a dry run), record the
 * intent, run the steps, read back, verify, record the result.
 */

/** A safety check of the plan. A failed guard refuses the run unless it was forced. */
export interface Guard {
  readonly name: string;
  readonly ok: boolean;
  /** Failed, but --force overrode it (recorded). */
  readonly forced: boolean;
  /** What overrode it when not the operator's --force, for the warning (a reload's re-apply). */
  readonly forcedBy?: string;
  readonly reason: string;
  /** The refusal when it fails unforced (a GuardError otherwise). */
  readonly error?: HapopsError;
  /**
   * A question that lets the operator pass this guard at a terminal in a real run ("clear all
   * 120 entries of table be_app? [y/N] "). Without a terminal, or in a dry run, it refuses.
   */
  readonly confirm?: string;
  /** Fields the plan's JSON keeps for this guard (the last-server guard's servers). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/**
 * What a plan does, in order. Every step names the policy operation it performs, so a run of
 * several steps (`drain --wait --then maint`) is authorized for each before anything is sent.
 */
export type Step =
  | {
      readonly kind: "send";
      readonly op: string;
      readonly commands: readonly RuntimeCommand[];
      /**
       * Sent when HAProxy refuses a command, to leave things as they were (2.6 creates the
       * entry of a refused `set table`); recorded as compensation.
       */
      readonly undoOnRefusal?: readonly RuntimeCommand[];
      /** HAProxy's answers, one per command, for an operation that shows them (raw). */
      readonly onAnswers?: (answers: readonly (readonly string[])[]) => void;
    }
  | {
      readonly kind: "transaction";
      readonly op: string;
      /** The lines of the transaction as planned (payloads are never in them). */
      readonly lines: readonly string[];
      /** What a dry run says in place of the payload ("1 certificate(s) and the key"). */
      readonly payloadNote?: string;
      /**
       * Runs the whole transaction, aborting it on failure; appends each line to `sent` as it
       * goes. May return notes for the operator (what an abort left serving). `env` has the
       * run's clock, Ctrl-C signal and progress line, for a step that waits (a reload).
       */
      run(
        sessions: ChangeSessions,
        sent: string[],
        env: StepEnv,
      ): Promise<readonly string[] | void>;
    }
  | {
      readonly kind: "wait";
      readonly op: string;
      /**
       * What to wait for, on every server of the step:
       * - drained: no sessions (`scur` 0);
       * - removable: what `del server` needs, no session, queued request, or connection in use
       *   or idle: `wait <ms> srv-removable` from 3.0 (with `srvRemovable`), else `show stat`
       *   (scur, qcur) and `show servers conn` (used_cur, idle_cur);
       * - check-passed: the last health check passed (L4OK, L6OK, L7OK...); HAProxy checks a
       *   server in maintenance too (measured on 2.6, 2.8 and 3.4).
       */
      readonly until: "drained" | "removable" | "check-passed";
      readonly servers: readonly { readonly backend: string; readonly server: string }[];
      readonly timeoutMs: number;
      readonly pollMs: number;
      /** removable: ask HAProxy with `wait <ms> srv-removable` (3.0+) instead of polling. */
      readonly srvRemovable?: boolean | undefined;
      /**
       * Cut what is left with `shutdown sessions server` once the wait has lasted this long (at
       * the latest when it times out), then wait a few seconds more for the count to reach 0.
       * The cut is recorded like any line sent: an intent before it, a result after.
       */
      readonly killAfterMs?: number | undefined;
      /** The policy operation the cut is, authorized with the plan ("sessions kill"). */
      readonly killOp?: string | undefined;
      /** What a timeout or Ctrl-C leaves ("the server stays DRAIN"). */
      readonly leaves?: string | undefined;
      /** What to do after a timeout ("raise --wait-timeout, or ..."). */
      readonly onTimeout?: string | undefined;
    }
  | {
      readonly kind: "write-file";
      readonly op: string;
      readonly path: string;
      /** Drop world access (a PEM holds a key). */
      readonly private: boolean;
      readonly payload: string;
      /**
       * A snapshot rewritten every time (the server-state file): created when missing, with no
       * backup of the old content (certs/persist.ts writeFileAtomic). Otherwise the file must
       * exist and its previous content is kept in the backup directory (persistFile).
       */
      readonly snapshot?: { readonly mode: number };
      /** What failed, for the error when the write fails ("saving the server state to F"). */
      readonly what?: string;
    }
  | {
      /** Plan again from fresh state after a pause (a ramp step, the maint after a drain). */
      readonly kind: "replan";
      readonly op: string;
      readonly afterMs: number;
      readonly label: string;
      /** What to say when Ctrl-C stops the pause before it (nothing more was sent). */
      readonly interrupted: string;
      /**
       * The next operation; `simulate` (a dry run) plans it on the state this plan leaves.
       * Undefined: nothing is left to do (a reload whose state file carried everything).
       */
      readonly next: (simulate: boolean) => Operation | undefined;
      /**
       * Policy operations the next plans may perform besides `op`, authorized with this plan
       * before anything is sent (the server changes a reload re-applies).
       */
      readonly ops?: readonly string[];
    };

/** What a step that waits gets from the run: its clock, Ctrl-C, and the progress line. */
export interface StepEnv {
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly ui: {
    line(text: string): void;
    progress(text: string): void;
    endProgress(): void;
  };
}

export interface Plan<B = unknown> {
  readonly version: 1;
  readonly op: string;
  readonly target: string;
  /** Level the socket must have for the steps. */
  readonly level: Level;
  readonly mutates: boolean;
  readonly scope: Scope;
  readonly steps: readonly Step[];
  readonly guards: readonly Guard[];
  /** Lines for people: what will change (`be_app/app1  READY -> DRAIN`). */
  readonly describe: readonly string[];
  /** The operation's own JSON fields for the plan (before/after per server, the diff...). */
  readonly json: Readonly<Record<string, unknown>>;
  /** Fields the run's report (and this step's) carries whatever happens (`selector`, `table`). */
  readonly report?: Readonly<Record<string, unknown>>;
  /** Audit detail (never key material). */
  readonly detail?: Readonly<Record<string, unknown>> | undefined;
  /** What the operation itself needs to verify the plan. */
  readonly body: B;
}

/** What verification found. Empty when HAProxy's state is what the plan expects. */
export interface Verification {
  readonly mismatches: readonly string[];
  /** Lines for people after a verified change. */
  readonly summary: readonly string[];
  /** Fields the report keeps (servers as read back, entries...). */
  readonly json: Readonly<Record<string, unknown>>;
  /** A typed error instead of the generic mismatch one (HAProxy's refusal in its words). */
  readonly error?: HapopsError;
  /** Lines printed as they are, before the summary (raw's answer, what a clear removed). */
  readonly output?: readonly string[];
  /** false: the operation cannot read its change back (raw), so the report says so. */
  readonly verified?: false;
}

/** The engine's read of HAProxy, for an operation: two sessions, read lowered below write. */
export interface Operation<S = unknown, B = unknown> {
  /** Policy operation name ("drain", "table set", "map replace", "rotate-cert", "raw"). */
  readonly op: string;
  /** The session level reads need ("operator" for tables and certificates). */
  readonly readLevel: "user" | "operator" | "admin";
  /**
   * One connection instead of two, lowered to this level (unless admin) for everything the
   * operation sends: raw, which reads nothing back, sends its line at the line's own level and
   * holds one connection like any read command.
   */
  readonly oneSession?: Level;
  /**
   * Open new sessions before reading: the process the run's sessions reached was replaced (a
   * reload), and this operation must read and change the new one.
   */
  readonly reconnect?: boolean;
  read(sessions: ChangeSessions): Promise<S>;
  plan(state: S): Plan<B>;
  /**
   * An exclusive hold (across hapops runs) taken in a real run after the guards pass and before
   * the intent, released when the run ends: one certificate transaction per HAProxy.
   */
  lock?(plan: Plan<B>): Promise<Held>;
  /** Read HAProxy's state again and compare it with the plan. */
  verify(sessions: ChangeSessions, plan: Plan<B>, sent: readonly string[]): Promise<Verification>;
}

export interface Held {
  /** Said to the operator when the hold was taken (a dead run's lock taken over). */
  readonly notice?: string | undefined;
  release(): Promise<void>;
}

export type Outcome = "ok" | "noop" | "refused" | "failed";

/** The one JSON shape of a change, for every operation. Fields are only ever added. */
export interface Report {
  op: string;
  target: string;
  dryRun: boolean;
  outcome: Outcome;
  plan: Record<string, unknown> | null;
  /** Exactly the lines sent, in order (in a dry run: the lines that would be). */
  sent: string[];
  verified: boolean;
  steps: StepReport[];
  [field: string]: unknown;
}

export interface StepReport {
  op: string;
  plan: Record<string, unknown>;
  sent: string[];
  verified: boolean;
  [field: string]: unknown;
}
