import { ProtocolError } from "../errors.js";

/**
 * One `show stat` line keyed by header name. Empty cells ("not applicable", most of the ~100
 * columns) are left out, which halves the memory of a 10,000-server answer.
 */
export type StatRow = Record<string, string>;

/**
 * `show stat` CSV, one line at a time. The first line is "# " and the column names
 * (management.txt 9.1); 3.2 inserts columns in the middle (srid, proto, ...), so cells are only
 * ever looked up by name. The header ends with a comma, leaving an unnamed last column that is
 * skipped. Only the column names and the parsed rows are kept, never the raw lines.
 */
export class StatParser {
  /** Rows parsed so far; stays empty when an `onRow` callback takes them instead. */
  readonly rows: StatRow[] = [];
  private columns: readonly string[] | undefined;

  constructor(private readonly onRow?: (row: StatRow) => void) {}

  line(text: string): void {
    if (text.startsWith("# ")) {
      this.columns = text.slice(2).split(",");
      return;
    }
    if (text.length === 0) return;
    const columns = this.columns;
    if (columns === undefined) {
      throw new ProtocolError('show stat answer has a row before its "# " header', {
        line: text.slice(0, 200),
      });
    }
    const cells = splitCsvLine(text);
    const row: StatRow = {};
    const n = Math.min(columns.length, cells.length);
    for (let i = 0; i < n; i++) {
      const name = columns[i];
      const cell = cells[i];
      if (name === undefined || name === "" || name === "-" || cell === undefined || cell === "")
        continue;
      row[name] = cell;
    }
    if (this.onRow) this.onRow(row);
    else this.rows.push(row);
  }
}

export function parseStat(lines: readonly string[]): StatRow[] {
  const parser = new StatParser();
  for (const line of lines) parser.line(line);
  return parser.rows;
}

/**
 * Splits one CSV line. HAProxy quotes a string cell only when it contains a comma, a double quote
 * or a line break, and doubles the quotes inside (csv_enc_append() in src/tools.c); check and
 * agent descriptions are such strings.
 */
function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let cell = "";
      i++;
      for (;;) {
        const close = line.indexOf('"', i);
        if (close < 0) {
          cell += line.slice(i);
          i = line.length;
          break;
        }
        cell += line.slice(i, close);
        i = close + 1;
        if (line[i] !== '"') break;
        cell += '"';
        i++;
      }
      cells.push(cell);
      const comma = line.indexOf(",", i);
      if (comma < 0) return cells;
      i = comma + 1;
    } else {
      const comma = line.indexOf(",", i);
      if (comma < 0) {
        cells.push(line.slice(i));
        return cells;
      }
      cells.push(line.slice(i, comma));
      i = comma + 1;
    }
  }
}

export type StatKind = "frontend" | "backend" | "server" | "listener";

/** A `show stat` row with the fields operations read, typed; `row` keeps every cell. */
export interface StatEntry {
  proxy: string;
  name: string;
  kind: StatKind;
  /** As printed: "UP", "DOWN", "MAINT", "DRAIN", "no check", "MAINT (via be/srv)", "UP 1/3"... */
  status: string;
  /** Undefined for frontends and listeners, which have no weight. */
  weight: number | undefined;
  /** Current sessions: what a drain waits on. */
  scur: number;
  smax: number;
  stot: number;
  rate: number;
  checkStatus: string;
  checkDesc: string;
  /** Seconds since the last UP/DOWN transition; undefined where HAProxy leaves it empty. */
  lastChangeSec: number | undefined;
  /** "127.0.0.1:9001", "[::1]:9006"; "" for frontends, backends and unresolved servers. */
  addr: string;
  row: StatRow;
}

/** The `type` column: 0 frontend, 1 backend, 2 server, 3 listener (management.txt 9.1). */
const KINDS: Readonly<Record<string, StatKind>> = {
  "0": "frontend",
  "1": "backend",
  "2": "server",
  "3": "listener",
};

export function toStatEntry(row: StatRow): StatEntry {
  return {
    proxy: row["pxname"] ?? "",
    name: row["svname"] ?? "",
    kind: kindOf(row),
    status: row["status"] ?? "",
    weight: optionalNumber(row, "weight"),
    scur: counter(row, "scur"),
    smax: counter(row, "smax"),
    stot: counter(row, "stot"),
    rate: counter(row, "rate"),
    // "* L7OK": HAProxy marks a check that is running right now with "* " (stats.c); the result
    // shown is still the last one.
    checkStatus: (row["check_status"] ?? "").replace(/^\* /, ""),
    checkDesc: row["check_desc"] ?? "",
    lastChangeSec: optionalNumber(row, "lastchg"),
    addr: row["addr"] ?? "",
    row,
  };
}

function kindOf(row: StatRow): StatKind {
  const kind = KINDS[row["type"] ?? ""];
  if (kind !== undefined) return kind;
  // Without a usable `type`, the svname HAProxy gives aggregate rows still tells them apart.
  if (row["svname"] === "FRONTEND") return "frontend";
  if (row["svname"] === "BACKEND") return "backend";
  return "server";
}

/**
 * Empty means "not applicable" and reads as 0 for counters. Anything else that is not a number
 * is refused rather than read as 0: a drain that misread `scur` would finish with sessions open.
 */
function counter(row: StatRow, name: string): number {
  return optionalNumber(row, name) ?? 0;
}

function optionalNumber(row: StatRow, name: string): number | undefined {
  const cell = row[name];
  if (cell === undefined || cell === "") return undefined;
  if (!/^-?\d+$/.test(cell)) {
    throw new ProtocolError(`show stat column ${name} is not a number: ${cell}`, {
      column: name,
      value: cell,
      proxy: row["pxname"],
      name: row["svname"],
    });
  }
  return Number(cell);
}
