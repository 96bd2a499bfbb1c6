import { createReadStream, readFileSync } from "node:fs";
import type { Settings } from "../config/settings.js";
import { AuditError, PolicyError, UsageError } from "../errors.js";
import type { AuditRecord } from "./record.js";
import { verifyLines, type VerifyResult } from "./verify.js";

/** Reading the audit log for `audit tail` and `audit verify` (the CLI prints what they return). */

function readError(path: string, e: unknown): AuditError {
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === "ENOENT"
      ? "no such file (nothing has been recorded yet, or audit.path points elsewhere)"
      : err.code === "EACCES"
        ? "permission denied (the log is root's: use sudo hapops audit ...)"
        : err.message;
  return new AuditError(`cannot read audit log ${path}: ${why}`, { path, errno: err.code });
}

/** Under sudo, only the configured log may be read: root's power must not read other files. */
export function logPath(settings: Settings, file: string | undefined): string {
  if (file === undefined || file === settings.audit.path) return settings.audit.path;
  if (settings.sudo)
    throw new PolicyError(
      `under sudo, hapops audit reads only the configured log (${settings.audit.path})`,
    );
  return file;
}

export interface TailFilter {
  readonly n: number;
  readonly op?: string | undefined;
  readonly operator?: string | undefined;
  /** Every record of one run (all the targets of a fleet run). */
  readonly run?: string | undefined;
}

/** The last `n` records matching the filter, streamed so a large log is not held in memory. */
export async function runAuditTail(settings: Settings, filter: TailFilter): Promise<AuditRecord[]> {
  if (!Number.isInteger(filter.n) || filter.n < 1)
    throw new UsageError("-n must be a positive whole number");
  const path = settings.audit.path;
  const kept: AuditRecord[] = [];
  const stream = createReadStream(path, { encoding: "utf8" });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (e) => reject(readError(path, e)));
  });
  await opened;
  // Records end at "\n" only, as the writer and verify have it (readline would also cut at a
  // bare "\r", which no record holds but a hand-edited line might).
  let rest = "";
  const take = (line: string) => {
    if (line.length === 0) return;
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      return;
    }
    if (r === null || typeof r !== "object") return;
    if (filter.op !== undefined && r.op !== filter.op) return;
    if (filter.operator !== undefined && r.operator !== filter.operator) return;
    if (
      filter.run !== undefined &&
      !(r.run ?? r.opId).startsWith(filter.run) &&
      !r.opId.startsWith(filter.run)
    )
      return;
    kept.push(r);
    if (kept.length > filter.n) kept.shift();
  };
  for await (const chunk of stream as AsyncIterable<string>) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) take(line);
  }
  take(rest);
  return kept;
}

export interface AuditVerifyResult {
  readonly path: string;
  readonly result: VerifyResult;
}

export function runAuditVerify(settings: Settings, file: string | undefined): AuditVerifyResult {
  const path = logPath(settings, file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw readError(path, e);
  }
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lines = body.length === 0 ? [] : body.split("\n");
  return { path, result: verifyLines(lines) };
}
