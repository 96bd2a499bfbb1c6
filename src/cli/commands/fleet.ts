import type { FleetReport, TargetOutcome } from "../../engine/fleet.js";
import { colors, renderTable } from "../output.js";

const RESULT: Record<TargetOutcome["result"], string> = {
  ok: "ok",
  noop: "noop",
  failed: "failed",
  refused: "refused",
  "not-reached": "not reached",
};

/** One line of text, cut: a table cell must not wrap. */
function cut(text: string, max = 120): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? one.slice(0, max - 1) + "…" : one;
}

/** The summary of a change over many targets: every target, what happened there, and why. */
export function printFleetReport(report: FleetReport, opts: { color: boolean }): string {
  const c = colors(opts.color);
  const paint = (r: TargetOutcome["result"]) =>
    r === "ok"
      ? c.green(RESULT[r])
      : r === "noop"
        ? RESULT[r]
        : r === "refused"
          ? c.yellow(RESULT[r])
          : c.red(RESULT[r]);
  const detail = (o: TargetOutcome) => {
    if (o.reason) return cut(o.reason);
    const sent = o.report?.sent.length ?? 0;
    if (o.result === "noop") return "already; nothing sent";
    return `${sent} line${sent === 1 ? "" : "s"} ${report.dryRun ? "would be sent" : "sent, verified"}`;
  };
  const table = renderTable(
    ["TARGET", "RESULT", "DETAIL"],
    report.targets.map((o) => [o.target, paint(o.result), detail(o)]),
  );
  const counts = new Map<string, number>();
  for (const o of report.targets)
    counts.set(RESULT[o.result], (counts.get(RESULT[o.result]) ?? 0) + 1);
  const tally = [...counts].map(([k, n]) => `${n} ${k}`).join(", ");
  return `\n${table}${c.dim(`${report.targets.length} target${report.targets.length === 1 ? "" : "s"}: ${tally}${report.run ? `; the audit records: hapops audit tail --run ${report.run.slice(0, 8)}` : ""}`)}\n`;
}
