import type { StatEntry } from "../../parse/stat.js";
import { colors, colorStatus, renderTable, type Colors } from "../output.js";

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

export const STAT_HEADERS = [
  "NAME",
  "TYPE",
  "STATUS",
  "WEIGHT",
  "SCUR",
  "SMAX",
  "STOT",
  "RATE",
  "CHECK",
  "LASTCHG",
] as const;

/** One row of the `stat` table, under STAT_HEADERS. */
export function statCells(e: StatEntry, c: Colors): string[] {
  return [
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
  ];
}

export function printStat(entries: readonly StatEntry[], opts: { color: boolean }): string {
  const c = colors(opts.color);
  return renderTable(
    STAT_HEADERS,
    entries.map((e) => statCells(e, c)),
  );
}
