import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { AuditRecord } from "../../audit/record.js";
import { verifyLines, type VerifyResult } from "../../audit/verify.js";
import type { Settings } from "../../config/settings.js";
import { AuditError, PolicyError, UsageError, VerificationError } from "../../errors.js";
import { colors, renderJson, renderTable } from "../output.js";

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
function logPath(settings: Settings, file: string | undefined): string {
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
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (line.length === 0) continue;
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      continue;
    }
    if (filter.op !== undefined && r.op !== filter.op) continue;
    if (filter.operator !== undefined && r.operator !== filter.operator) continue;
    kept.push(r);
    if (kept.length > filter.n) kept.shift();
  }
  return kept;
}

export function printAuditTail(
  records: readonly AuditRecord[],
  opts: { json: boolean; color: boolean },
): string {
  if (opts.json) return records.map((r) => JSON.stringify(r) + "\n").join("");
  const c = colors(opts.color);
  const outcome = (r: AuditRecord) => {
    const o = r.outcome ?? "-";
    if (o === "ok") return c.green(o);
    if (o === "failed" || o === "unknown") return c.red(o);
    if (o === "refused") return c.yellow(o);
    return o;
  };
  const detail = (r: AuditRecord) => {
    if (r.error)
      return r.error.message.length > 100 ? r.error.message.slice(0, 97) + "..." : r.error.message;
    if (r.commands.length === 0) return "-";
    const more = r.commands.length > 1 ? ` (+${r.commands.length - 1} more)` : "";
    return r.commands[0] + more;
  };
  return renderTable(
    ["SEQ", "TIME (UTC)", "OPERATOR", "OP", "PHASE", "OUTCOME", "DETAIL", "REASON"],
    records.map((r) => [
      String(r.seq),
      r.ts.replace("T", " ").slice(0, 19),
      r.operator + (r.sudo ? "" : c.dim(" (no sudo)")),
      r.op + (r.dryRun ? c.dim(" (dry run)") : "") + (r.force ? c.yellow(" --force") : ""),
      r.phase,
      outcome(r),
      detail(r),
      r.reason ?? "-",
    ]),
  );
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

/** Prints OK with the record count, or throws (exit 1) naming the first broken line. */
export function printAuditVerify(v: AuditVerifyResult, opts: { json: boolean }): string {
  if (!v.result.ok) {
    const r = v.result;
    throw new VerificationError(
      `audit log ${v.path}: broken at line ${r.line} (${r.problem}): ${r.detail}`,
      {
        path: v.path,
        line: r.line,
        problem: r.problem,
        records: r.records,
      },
    );
  }
  if (opts.json) return renderJson({ path: v.path, ok: true, records: v.result.records });
  return `audit log ${v.path}: OK, ${v.result.records} record${v.result.records === 1 ? "" : "s"}, hash chain intact\n(lines cut off the end leave no trace here; compare with the syslog copy, audit.syslog)\n`;
}
