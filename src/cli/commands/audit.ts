import type { AuditRecord } from "../../audit/record.js";
import type { AuditVerifyResult } from "../../audit/read.js";
import { VerificationError } from "../../errors.js";
import { colors, renderJson, renderTable } from "../output.js";

/**
 * Characters that must not reach a terminal as they are: C0, DEL and C1 controls (an escape
 * sequence can erase lines and draw a forged row), format characters such as the bidi
 * overrides U+202E and U+2066-U+2069 (they reorder what is shown), line and paragraph
 * separators, lone surrogates, and the backslash, so that an escape shown is never text that
 * only looks like one.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\\]/gu;

/** Text from the log as it may be shown on a terminal: `\x1b`, `\u202e`, `\\`. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (ch) => {
    if (ch === "\\") return "\\\\";
    if (ch === "\n") return "\\n";
    if (ch === "\r") return "\\r";
    if (ch === "\t") return "\\t";
    const cp = ch.codePointAt(0)!;
    if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, "0")}`;
    if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, "0")}`;
    return `\\u{${cp.toString(16)}}`;
  });
}

/** Characters JSON.stringify leaves raw that a terminal or a JavaScript parser may act on. */
const JSON_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * One record as a JSON line: JSON.stringify escapes C0 controls and lone surrogates, and this
 * escapes DEL, C1, format characters (bidi overrides) and U+2028/U+2029 as well. They occur
 * only inside strings, where `\uXXXX` means the same character.
 */
export function jsonLine(record: unknown): string {
  return JSON.stringify(record).replace(JSON_UNSAFE, (ch) => {
    const units: string[] = [];
    for (let i = 0; i < ch.length; i++)
      units.push(`\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`);
    return units.join("");
  });
}

/**
 * A free-text field in a table cell: one line, runs of spaces collapsed, cut to `max`. Padding
 * wide enough to wrap would otherwise draw a line of its own that passes for a record.
 */
function cell(value: unknown, max = 60): string {
  return clip(shown(value), max);
}

function clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? one.slice(0, max - 1) + "…" : one;
}

/** A field of a record as shown to people: escaped, whatever its type in the line. */
function shown(value: unknown): string {
  if (value === null || value === undefined) return "-";
  return escapeForTerminal(typeof value === "string" ? value : JSON.stringify(value));
}

export function printAuditTail(
  records: readonly AuditRecord[],
  opts: { json: boolean; color: boolean },
): string {
  if (opts.json) return records.map((r) => jsonLine(r) + "\n").join("");
  const c = colors(opts.color);
  const outcome = (r: AuditRecord) => {
    const o = shown(r.outcome);
    if (o === "ok") return c.green(o);
    if (o === "failed" || o === "unknown") return c.red(o);
    if (o === "refused") return c.yellow(o);
    return o;
  };
  const detail = (r: AuditRecord) => {
    if (r.error) {
      const message = shown(r.error.message);
      return message.length > 100 ? message.slice(0, 97) + "..." : message;
    }
    const commands: readonly unknown[] = Array.isArray(r.commands) ? r.commands : [];
    if (commands.length === 0) return "-";
    const more = commands.length > 1 ? ` (+${commands.length - 1} more)` : "";
    return shown(commands[0]) + more;
  };
  return renderTable(
    ["SEQ", "TIME (UTC)", "OPERATOR", "TARGET", "OP", "PHASE", "OUTCOME", "DETAIL", "REASON"],
    records.map((r) => [
      shown(r.seq),
      shown(r.ts).replace("T", " ").slice(0, 19),
      cell(r.operator, 32) + (r.sudo ? "" : c.dim(" (no sudo)")),
      cell(r.target, 40),
      cell(r.op, 32) +
        (r.dryRun ? c.dim(" (dry run)") : "") +
        (r.force ? c.yellow(" --force") : ""),
      shown(r.phase),
      outcome(r),
      clip(detail(r), 100),
      cell(r.reason),
    ]),
  );
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
