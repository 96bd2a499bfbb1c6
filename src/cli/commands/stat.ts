import { statRowJson, writeStatRowJson, type StatEntry } from "../../parse/stat.js";
import {
  CHUNK,
  colors,
  colorStatus,
  jsonNumber,
  jsonString,
  renderTable,
  type Colors,
} from "../output.js";

/** The --json element: typed fields, plus `fields` with every non-empty column by its HAProxy name. */
export function statJson(e: StatEntry) {
  const { row, ...typed } = e;
  return { ...typed, fields: row };
}

/**
 * `JSON.stringify(statJson(e))` for an entry of runStat, written field by field (no object is
 * made, and `fields` comes straight from the line: see statRowJson). Undefined fields are left
 * out, as JSON.stringify leaves them out.
 */
export function statJsonText(e: StatEntry): string {
  return `${statJsonHead(e)}${statRowJson(e)}}`;
}

/** statJsonText up to the value of `fields`. */
function statJsonHead(e: StatEntry): string {
  return (
    `{"proxy":${jsonString(e.proxy)},"name":${jsonString(e.name)},"kind":${jsonString(e.kind)}` +
    `,"status":${jsonString(e.status)}` +
    (e.weight === undefined ? "" : `,"weight":${jsonNumber(e.weight)}`) +
    `,"scur":${jsonNumber(e.scur)},"smax":${jsonNumber(e.smax)},"stot":${jsonNumber(e.stot)}` +
    `,"rate":${jsonNumber(e.rate)},"checkStatus":${jsonString(e.checkStatus)}` +
    `,"checkDesc":${jsonString(e.checkDesc)}` +
    (e.lastChangeSec === undefined ? "" : `,"lastChangeSec":${jsonNumber(e.lastChangeSec)}`) +
    `,"addr":${jsonString(e.addr)},"fields":`
  );
}

/** A character that takes more than one byte in latin1: such text is written as it is. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;

/**
 * `stat --json`: the array JsonArrayWriter writes of statJson(e) for each entry, gathered as
 * bytes, where each row's `fields` are copied from its line (writeStatRowJson). The text goes
 * to `out` in chunks of at least CHUNK bytes (as latin1, one character per byte).
 */
export class StatJsonWriter {
  private buf = Buffer.allocUnsafe(2 * CHUNK);
  private pos = 0;
  private count = 0;

  constructor(private readonly out: (text: string) => void) {}

  push(e: StatEntry): void {
    this.text((this.count++ === 0 ? "[\n  " : ",\n  ") + statJsonHead(e));
    let end = writeStatRowJson(e, this.buf, this.pos);
    if (end === -1) {
      this.flush();
      end = writeStatRowJson(e, this.buf, this.pos);
    }
    if (end >= 0) this.pos = end;
    else this.text(statRowJson(e));
    this.text("}");
    if (this.pos >= CHUNK) this.flush();
  }

  end(): void {
    this.text(this.count === 0 ? "[]\n" : "\n]\n");
    this.flush();
  }

  private text(text: string): void {
    if (BEYOND_LATIN1.test(text)) {
      this.flush();
      this.out(text);
      return;
    }
    if (this.pos + text.length > this.buf.length) {
      this.flush();
      if (text.length > this.buf.length) this.buf = Buffer.allocUnsafe(2 * text.length);
    }
    this.pos += this.buf.write(text, this.pos, "latin1");
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.out(this.buf.toString("latin1", 0, this.pos));
    this.pos = 0;
  }
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
