import { createHash } from "node:crypto";
import type { OperatorFrom } from "./identity.js";

/** The chain's start: the first record's `prev`. */
export const GENESIS = "0".repeat(64);

export type Phase = "intent" | "result" | "outcome-unknown";
export type Outcome = "ok" | "noop" | "failed" | "refused" | "unknown";

/**
 * One line of the audit log (DESIGN.md, "Audit record"). `prev` is the lowercase hex SHA-256 of
 * the previous line's exact bytes without its newline; `seq` counts lines from 1, so a deleted,
 * inserted or reordered line shows as a gap or a repeat even where hashes alone could not tell.
 */
export interface AuditRecord {
  readonly v: 1;
  readonly seq: number;
  readonly ts: string;
  readonly opId: string;
  /**
   * The hapops run this record belongs to: one command, whatever it reaches. A fleet run (one
   * operation over many targets) has one opId per target and one run id for all of them.
   * Absent from records written before fleets.
   */
  readonly run?: string;
  /** Which step of a multi-step operation (a ramp, drain then maint); 1 for most. */
  readonly step: number;
  readonly phase: Phase;
  /** Who acted: the login uid's user, else sudo's user, else the real uid's (identity.ts). */
  readonly operator: string;
  /** The operator's uid. */
  readonly uid: number;
  /** Acting with root's rights for someone else: the lock-down applied. */
  readonly sudo: boolean;
  /** Which fact named the operator. Absent from records written before it was recorded. */
  readonly operatorFrom?: OperatorFrom;
  /**
   * SUDO_USER (checked against SUDO_UID) when sudo was the direct parent, else null. Absent
   * from records written before it was recorded.
   */
  readonly sudoUser?: string | null;
  /** The kernel's audit login uid, null when unset. */
  readonly loginuid: number | null;
  readonly tty: string | null;
  readonly host: string;
  readonly pid: number;
  /** Process start time (clock ticks since boot), so a reused pid is not taken for this run. */
  readonly pidStart: number | null;
  readonly target: string;
  readonly op: string;
  readonly args: readonly string[];
  readonly reason: string | null;
  readonly dryRun: boolean;
  readonly force: boolean;
  /** The exact lines sent (intent: about to be sent; dry run: would be sent). No payloads. */
  readonly commands: readonly string[];
  readonly outcome: Outcome | null;
  readonly error: { readonly code: string; readonly message: string } | null;
  /** Facts about the change that are not lines sent (certificate serials and fingerprints). */
  readonly detail?: Readonly<Record<string, unknown>>;
  /** For outcome-unknown: the seq of the intent it closes. */
  readonly intentSeq?: number;
  /**
   * For outcome-unknown: the run that found the intent open and closed it. The record's own
   * operator, uid, op, args, opId and pid are those of the run that died (from its intent).
   */
  readonly closedBy?: ClosedBy;
  readonly prev: string;
}

export interface ClosedBy {
  readonly operator: string;
  readonly uid: number;
  readonly sudo: boolean;
  readonly pid: number;
  readonly opId: string;
}

export function hashLine(line: string): string {
  return createHash("sha256").update(line, "utf8").digest("hex");
}

export function serialize(record: AuditRecord): string {
  return JSON.stringify(record);
}
