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
  private header: StatHeader | undefined;

  constructor(private readonly onRow?: (row: StatRow) => void) {}

  line(text: string): void {
    if (text.startsWith("# ")) {
      this.header = readHeader(text);
      return;
    }
    if (text.length === 0) return;
    const row = buildRow(headerOf(this.header, text), splitCells(text));
    if (this.onRow) this.onRow(row);
    else this.rows.push(row);
  }
}

export function parseStat(lines: readonly string[]): StatRow[] {
  const parser = new StatParser();
  for (const line of lines) parser.line(line);
  return parser.rows;
}

/** A `show stat` header, read once for all the rows under it. */
interface StatHeader {
  /** Column names; undefined for the unnamed ("" and "-") columns, whose cells are left out. */
  readonly names: readonly (string | undefined)[];
  /** Each column's `"name":` in JSON, or undefined for a column left out. */
  readonly jsonKeys: readonly (string | undefined)[];
  /** The same as bytes (names are ASCII; a header with other names has none), and their length. */
  readonly jsonKeyBytes: readonly (Uint8Array | undefined)[] | undefined;
  readonly jsonKeysLength: number;
  /**
   * Every name appears once and keeps its column's place in an object: no duplicate (its cell
   * would take the first one's place), no array index (an object lists those first) and no
   * `__proto__`. Rows under any other header are built as StatParser builds them.
   */
  readonly plain: boolean;
  /** For each column, its place in TYPED_COLUMNS, or -1. */
  readonly typedAt: readonly number[];
  /** Columns after this one hold no typed field. */
  readonly lastTyped: number;
}

/** The columns toStatEntry reads. */
const TYPED_COLUMNS = [
  "pxname",
  "svname",
  "type",
  "status",
  "weight",
  "scur",
  "smax",
  "stot",
  "rate",
  "check_status",
  "check_desc",
  "lastchg",
  "addr",
] as const;

function readHeader(text: string): StatHeader {
  const names = text
    .slice(2)
    .split(",")
    .map((n) => (n === "" || n === "-" ? undefined : n));
  const seen = new Set<string>();
  let plain = true;
  for (const n of names) {
    if (n === undefined) continue;
    if (seen.has(n) || n === "__proto__" || /^(0|[1-9]\d*)$/.test(n)) plain = false;
    seen.add(n);
  }
  const jsonKeys = names.map((n) => (n === undefined ? undefined : `${JSON.stringify(n)}:`));
  const ascii = jsonKeys.every((k) => k === undefined || !/[\u0080-\uffff]/.test(k));
  const jsonKeyBytes = ascii
    ? jsonKeys.map((k) => (k === undefined ? undefined : Buffer.from(k, "latin1")))
    : undefined;
  const jsonKeysLength = jsonKeys.reduce((n, k) => n + (k?.length ?? 0), 0);
  const typedAt = names.map((n) => (TYPED_COLUMNS as readonly (string | undefined)[]).indexOf(n));
  let lastTyped = -1;
  typedAt.forEach((t, i) => {
    if (t >= 0) lastTyped = i;
  });
  return { names, jsonKeys, jsonKeyBytes, jsonKeysLength, plain, typedAt, lastTyped };
}

/** What JSON.stringify escapes: '"', '\\', a control character, a lone surrogate. */
const JSON_ESCAPES = /["\\\p{Cc}\p{Cs}]/u;

/** Anything but ASCII from space to DEL without '"' and '\\' (JSON writes those as they are). */
const NOT_PLAIN_ASCII = /[^ !#-[\]-\u007f]/;

/** A line's bytes, for writeRowJson; grown as lines need. */
let lineBytes = Buffer.allocUnsafe(4096);

/**
 * A row's entry with its `row` made from its line when asked for (see StatEntryParser). The
 * typed fields are its own, in the order of toStatEntry; `row` is an accessor, and the line is
 * private, so that `{ row, ...typed }` takes the same fields as from toStatEntry's object.
 */
class LineStatEntry implements StatEntry {
  readonly proxy: string;
  readonly name: string;
  readonly kind: StatKind;
  readonly status: string;
  readonly weight: number | undefined;
  readonly scur: number;
  readonly smax: number;
  readonly stot: number;
  readonly rate: number;
  readonly checkStatus: string;
  readonly checkDesc: string;
  readonly lastChangeSec: number | undefined;
  readonly addr: string;
  readonly #header: StatHeader;
  readonly #line: string;
  #row: StatRow | undefined;

  constructor(header: StatHeader, line: string, typed: Omit<StatEntry, "row">) {
    this.proxy = typed.proxy;
    this.name = typed.name;
    this.kind = typed.kind;
    this.status = typed.status;
    this.weight = typed.weight;
    this.scur = typed.scur;
    this.smax = typed.smax;
    this.stot = typed.stot;
    this.rate = typed.rate;
    this.checkStatus = typed.checkStatus;
    this.checkDesc = typed.checkDesc;
    this.lastChangeSec = typed.lastChangeSec;
    this.addr = typed.addr;
    this.#header = header;
    this.#line = line;
  }

  get row(): StatRow {
    return (this.#row ??= buildRow(this.#header, splitCells(this.#line)));
  }

  set row(row: StatRow) {
    this.#row = row;
  }

  /**
   * JSON.stringify(this.row) as bytes into `buf` at `pos`; returns where they end, -1 when they
   * may not fit, and -2 when the line is not plain ASCII (see NOT_PLAIN_ASCII) or the row was
   * asked for: write rowJson() then. A string per cell and per piece of JSON was most of the
   * garbage a 10,000-server answer made.
   */
  writeRowJson(buf: Uint8Array, pos: number): number {
    const keys = this.#header.jsonKeyBytes;
    const line = this.#line;
    if (this.#row !== undefined || keys === undefined || NOT_PLAIN_ASCII.test(line)) return -2;
    const n = line.length;
    // Every key, the line, and two quotes and a comma per cell, with the braces.
    if (pos + this.#header.jsonKeysLength + n + 3 * keys.length + 2 > buf.length) return -1;
    if (lineBytes.length < n) lineBytes = Buffer.allocUnsafe(2 * n);
    const src = lineBytes;
    src.write(line, 0, "latin1");
    buf[pos++] = 0x7b;
    let first = true;
    let start = 0;
    for (let column = 0; column < keys.length; column++) {
      let end = line.indexOf(",", start);
      if (end < 0) end = n;
      const key = keys[column];
      if (key !== undefined && end > start) {
        if (!first) buf[pos++] = 0x2c;
        first = false;
        // A native copy for the name (most of the bytes), a loop for the short cell.
        buf.set(key, pos);
        pos += key.length;
        buf[pos++] = 0x22;
        for (let j = start; j < end; j++) buf[pos++] = src[j]!;
        buf[pos++] = 0x22;
      }
      if (end === n) break;
      start = end + 1;
    }
    buf[pos++] = 0x7d;
    return pos;
  }

  /** JSON.stringify(this.row), written from the line while the row was not asked for. */
  rowJson(): string {
    if (this.#row !== undefined) return JSON.stringify(this.#row);
    const { jsonKeys } = this.#header;
    const line = this.#line;
    let out = "";
    if (line.includes('"')) {
      const cells = splitCsvLine(line);
      const n = Math.min(jsonKeys.length, cells.length);
      for (let i = 0; i < n; i++) {
        const key = jsonKeys[i];
        const cell = cells[i];
        if (key === undefined || cell === undefined || cell === "") continue;
        out += (out === "" ? "{" : ",") + key + JSON.stringify(cell);
      }
      return out === "" ? "{}" : out + "}";
    }
    const escape = JSON_ESCAPES.test(line);
    let start = 0;
    for (let i = 0; i < jsonKeys.length; i++) {
      const comma = line.indexOf(",", start);
      const end = comma < 0 ? line.length : comma;
      const key = jsonKeys[i];
      if (key !== undefined && end > start) {
        const cell = line.slice(start, end);
        out += (out === "" ? "{" : ",") + key + (escape ? JSON.stringify(cell) : `"${cell}"`);
      }
      if (comma < 0) break;
      start = comma + 1;
    }
    return out === "" ? "{}" : out + "}";
  }
}

/**
 * `show stat` lines to entries, for reads that hand them on as they come (hapops stat): the same
 * entries as StatParser and toStatEntry, but only the cells of the typed fields are cut out of
 * the line; `row` is built when asked for, and statRowJson writes it from the line. A
 * 10,000-server answer has a million cells, 600,000 of them not empty: a string for each and an
 * object per row took longer than reading the socket.
 */
export class StatEntryParser {
  private header: StatHeader | undefined;
  /** The typed fields' cells of the current line, in the order of TYPED_COLUMNS. */
  private readonly typed = new Array<string | undefined>(TYPED_COLUMNS.length).fill(undefined);

  constructor(private readonly onEntry: (entry: StatEntry) => void) {}

  line(text: string): void {
    if (text.startsWith("# ")) {
      this.header = readHeader(text);
      return;
    }
    if (text.length === 0) return;
    const header = headerOf(this.header, text);
    if (!header.plain) {
      this.onEntry(toStatEntry(buildRow(header, splitCells(text))));
      return;
    }
    const typed = this.typed;
    typed.fill(undefined);
    if (text.includes('"')) {
      const cells = splitCsvLine(text);
      const n = Math.min(header.typedAt.length, cells.length);
      for (let i = 0; i < n; i++) {
        const at = header.typedAt[i]!;
        if (at >= 0 && cells[i] !== "") typed[at] = cells[i];
      }
    } else {
      let start = 0;
      for (let i = 0; i <= header.lastTyped; i++) {
        const comma = text.indexOf(",", start);
        const end = comma < 0 ? text.length : comma;
        const at = header.typedAt[i]!;
        if (at >= 0 && end > start) typed[at] = text.slice(start, end);
        if (comma < 0) break;
        start = comma + 1;
      }
    }
    this.onEntry(new LineStatEntry(header, text, typedFields(typed)));
  }
}

function headerOf(header: StatHeader | undefined, line: string): StatHeader {
  if (header !== undefined) return header;
  throw new ProtocolError('show stat answer has a row before its "# " header', {
    line: line.slice(0, 200),
  });
}

function splitCells(line: string): string[] {
  return line.includes('"') ? splitCsvLine(line) : line.split(",");
}

function buildRow(header: StatHeader, cells: readonly string[]): StatRow {
  const row: StatRow = {};
  const n = Math.min(header.names.length, cells.length);
  for (let i = 0; i < n; i++) {
    const name = header.names[i];
    const cell = cells[i];
    if (name === undefined || cell === undefined || cell === "") continue;
    row[name] = cell;
  }
  return row;
}

/**
 * `JSON.stringify(entry.row)`; for an entry of StatEntryParser whose row was not asked for, it
 * is written from the line: each column's quoted name is made once per header, and cells are
 * escaped only when their line holds something to escape.
 */
export function statRowJson(entry: StatEntry): string {
  return entry instanceof LineStatEntry ? entry.rowJson() : JSON.stringify(entry.row);
}

/**
 * statRowJson(entry) as bytes into `buf` at `pos` when it can be written so: returns where they
 * end, -1 when they may not fit in `buf`, -2 when not written so (write statRowJson then).
 */
export function writeStatRowJson(entry: StatEntry, buf: Uint8Array, pos: number): number {
  return entry instanceof LineStatEntry ? entry.writeRowJson(buf, pos) : -2;
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
  return { ...typedFields(TYPED_COLUMNS.map((name) => row[name])), row };
}

/** The typed fields of a row, from its cells of TYPED_COLUMNS in that order. */
function typedFields(cells: readonly (string | undefined)[]): Omit<StatEntry, "row"> {
  const [pxname, svname, type, status, weight, scur, smax, stot, rate, check, desc, lastchg, addr] =
    cells;
  const num = (cell: string | undefined, column: string) =>
    optionalNumber(cell, column, pxname, svname);
  return {
    proxy: pxname ?? "",
    name: svname ?? "",
    kind: kindOf(type, svname),
    status: status ?? "",
    weight: num(weight, "weight"),
    scur: num(scur, "scur") ?? 0,
    smax: num(smax, "smax") ?? 0,
    stot: num(stot, "stot") ?? 0,
    rate: num(rate, "rate") ?? 0,
    // "* L7OK": HAProxy marks a check that is running right now with "* " (stats.c); the result
    // shown is still the last one.
    checkStatus: (check ?? "").replace(/^\* /, ""),
    checkDesc: desc ?? "",
    lastChangeSec: num(lastchg, "lastchg"),
    addr: addr ?? "",
  };
}

function kindOf(type: string | undefined, svname: string | undefined): StatKind {
  const kind = KINDS[type ?? ""];
  if (kind !== undefined) return kind;
  // Without a usable `type`, the svname HAProxy gives aggregate rows still tells them apart.
  if (svname === "FRONTEND") return "frontend";
  if (svname === "BACKEND") return "backend";
  return "server";
}

/**
 * Empty means "not applicable" and reads as 0 for counters. Anything else that is not a number
 * is refused rather than read as 0: a drain that misread `scur` would finish with sessions open.
 */
function optionalNumber(
  cell: string | undefined,
  column: string,
  proxy: string | undefined,
  name: string | undefined,
): number | undefined {
  if (cell === undefined || cell === "") return undefined;
  // The common case first: a whole number printed as JavaScript prints it ("1474").
  const n = Number(cell);
  if (Number.isSafeInteger(n) && n >= 0 && String(n) === cell) return n;
  if (!/^-?\d+$/.test(cell)) {
    throw new ProtocolError(`show stat column ${column} is not a number: ${cell}`, {
      column,
      value: cell,
      proxy,
      name,
    });
  }
  return n;
}
