import type { StatEntry } from "../../parse/stat.js";
import { colors, colorStatus, renderTable } from "../output.js";

/** The --json element: typed fields, plus `fields` with every non-empty column by its HAProxy name. */
export function statJson(e: StatEntry) {
  const { row, ...typed } = e;
  return { ...typed, fields: row };
}

function num(n: number | undefined): string {
  return n === undefined ? "-" : String(n);
}

function ago(sec: number | undefined): string {
  if (sec === undefined) return "-";
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h`;
  return `${Math.floor(sec / 86400)}d`;
}

export function printStat(entries: readonly StatEntry[], opts: { color: boolean }): string {
  const c = colors(opts.color);
  const rows = entries.map((e) => [
    e.kind === "server" ? `${e.proxy}/${e.name}` : e.proxy,
    e.kind.toUpperCase(),
    colorStatus(c, e.status || "-"),
    num(e.weight),
    String(e.scur),
    String(e.smax),
    String(e.stot),
    String(e.rate),
    e.checkStatus ? colorStatus(c, e.checkStatus) : "-",
    ago(e.lastChangeSec),
  ]);
  return renderTable(
    ["NAME", "TYPE", "STATUS", "WEIGHT", "SCUR", "SMAX", "STOT", "RATE", "CHECK", "LASTCHG"],
    rows,
  );
}
