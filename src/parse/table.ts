import { ProtocolError } from "../errors.js";

export interface TableInfo {
  name: string;
  /** "ip", "ipv6", "integer", "string" or "binary". */
  type: string;
  /** Maximum number of entries. */
  size: number;
  used: number;
}

const TABLE_PREFIX = "# table:";

/**
 * "# table: be_app, type: ip, size:1048576, used:1" (2.6 and 3.2). Items are split on ", "
 * and read by name; table names are proxy names, which cannot contain spaces or commas. Unknown
 * items are ignored. Undefined when the line is not a table header.
 */
export function parseTableHeader(line: string): TableInfo | undefined {
  if (!line.startsWith(TABLE_PREFIX)) return undefined;
  const items = new Map<string, string>();
  for (const item of line.slice(2).split(", ")) {
    const colon = item.indexOf(":");
    if (colon <= 0) continue;
    const key = item.slice(0, colon).trim();
    if (!items.has(key)) items.set(key, item.slice(colon + 1).trim());
  }
  const name = items.get("table");
  const type = items.get("type");
  const size = toInt(items.get("size"));
  const used = toInt(items.get("used"));
  if (!name || !type || size === undefined || used === undefined) return undefined;
  return { name, type, size, used };
}

/** `show table` without a name: one header line per stick table. */
export function parseTableList(lines: readonly string[]): TableInfo[] {
  const tables: TableInfo[] = [];
  for (const line of lines) {
    const table = parseTableHeader(line);
    if (table !== undefined) tables.push(table);
  }
  return tables;
}

export interface TableEntry {
  /** The entry's address, as printed ("0x5651deb66fb8"); only useful to tell entries apart. */
  id: string;
  /** The key, with HAProxy's escapes decoded (see decodeKey). */
  key: string;
  /** Number of streams currently referencing the entry. */
  use: number;
  /**
   * Milliseconds until the entry expires. HAProxy prints 0 both for "now" and for tables without
   * `expire`, where entries never expire.
   */
  exp: number | undefined;
  /** 3.2 prints the shard holding the entry. */
  shard: number | undefined;
  /**
   * Stored data by type name: "gpc0", "server_id", "conn_rate" (period 10000 from
   * "conn_rate(10000)=1"). Array types print one name per element (`gpc(2)` as gpc0 and gpc1,
   * `gpc_rate(2,10s)` as gpc0_rate and gpc1_rate), indistinguishable from the legacy names.
   */
  data: Record<string, { period?: number; value: string }>;
}

/**
 * One entry line: "0x5651deb66fb8: key=127.0.0.1 use=0 exp=599816 conn_rate(10000)=1" (3.2 adds
 * "shard=0" after exp). Undefined for a line that is not an entry (a "#" line, or no "key=").
 * String keys are escaped, so a key can hold spaces and "=" ("key=has\ space"); the line is split
 * on unescaped spaces only. A million-entry dump is a million lines: a line without a backslash
 * (every line of an ip, integer or binary table) is cut with indexOf, which is several times
 * faster than looking at each character.
 */
export function parseTableEntry(line: string): TableEntry | undefined {
  if (line.startsWith("#")) return undefined;
  const colon = line.indexOf(": ");
  if (colon <= 0) return undefined;
  const id = line.slice(0, colon);
  if (id.includes(" ")) return undefined;
  const entry = new EntryBuilder(line);
  const n = line.length;
  if (line.includes("\\", colon)) {
    // A token runs from `start` to the next unescaped space; `eq` is its first unescaped "=".
    let start = colon + 2;
    let eq = -1;
    let i = start;
    while (i < n) {
      const c = line.charCodeAt(i);
      if (c === BACKSLASH) {
        i += 2;
        continue;
      }
      if (c === SPACE) {
        if (eq > start) entry.item(start, eq, i);
        start = i + 1;
        eq = -1;
      } else if (c === EQUALS && eq < 0) eq = i;
      i++;
    }
    if (start < n && eq > start) entry.item(start, eq, n);
  } else {
    for (let start = colon + 2; start < n;) {
      let end = line.indexOf(" ", start);
      if (end < 0) end = n;
      if (end > start) {
        const eq = line.indexOf("=", start);
        if (eq > start && eq < end) entry.item(start, eq, end);
      }
      start = end + 1;
    }
  }
  if (entry.rawKey === undefined) return undefined;
  return {
    id,
    key: decodeKey(entry.rawKey),
    use: entry.use ?? 0,
    exp: entry.exp,
    shard: entry.shard,
    data: entry.data,
  };
}

const BACKSLASH = 0x5c;
const SPACE = 0x20;
const EQUALS = 0x3d;

/** A data item's name as printed ("conn_rate(10000)"), read once: its type and period. */
export interface DataName {
  readonly printed: string;
  readonly name: string;
  readonly period: number | undefined;
  /**
   * An object keeps the name where it was added: not an array index (objects list those first)
   * nor `__proto__` (which sets the prototype). Every type HAProxy prints is plain.
   */
  readonly plain: boolean;
}

/**
 * The data names of the last lines. Every entry of a table prints the same few names in the
 * same order, so they are matched in place rather than cut out and looked up; the bound keeps
 * a dump with many odd names from holding their lines (a name is a slice of its line).
 */
const recentNames: DataName[] = [];

function dataName(line: string, start: number, eq: number): DataName {
  const length = eq - start;
  for (const known of recentNames)
    if (known.printed.length === length && line.startsWith(known.printed, start)) return known;
  const printed = line.slice(start, eq);
  const period = /^(.+)\((\d+)\)$/.exec(printed);
  const name = period?.[1] ?? printed;
  const read: DataName = {
    printed,
    name,
    period: period?.[2] === undefined ? undefined : Number(period[2]),
    plain: name !== "__proto__" && !/^\d+$/.test(name),
  };
  if (recentNames.length >= 16) recentNames.shift();
  recentNames.push(read);
  return read;
}

/** The items of one entry line, the first of each name kept. */
class EntryBuilder {
  rawKey: string | undefined;
  use: number | undefined;
  exp: number | undefined;
  shard: number | undefined;
  readonly data: TableEntry["data"] = {};

  constructor(private readonly line: string) {}

  /** The item `line[start, end)`, whose name ends at `eq`. */
  item(start: number, eq: number, end: number): void {
    const line = this.line;
    const length = eq - start;
    if (length === 3 && line.startsWith("key", start)) {
      this.rawKey ??= line.slice(eq + 1, end);
    } else if (length === 3 && line.startsWith("use", start)) {
      this.use ??= entryNumber("use", line.slice(eq + 1, end), line);
    } else if (length === 3 && line.startsWith("exp", start)) {
      this.exp ??= entryNumber("exp", line.slice(eq + 1, end), line);
    } else if (length === 5 && line.startsWith("shard", start)) {
      this.shard ??= entryNumber("shard", line.slice(eq + 1, end), line);
    } else {
      const { name, period } = dataName(line, start, eq);
      if (Object.hasOwn(this.data, name)) return;
      const value = line.slice(eq + 1, end);
      this.data[name] = period === undefined ? { value } : { period, value };
    }
  }
}

/**
 * An entry line's fields as printed, for a reader that copies them out (table show --json)
 * rather than building a TableEntry. `into` is reused from line to line.
 */
export interface EntryText {
  key: string;
  /** Digits as JavaScript prints the number back: no sign, no leading zero. */
  use: string | undefined;
  exp: string | undefined;
  /** Data items in the line's order, `count` of them. */
  readonly names: DataName[];
  readonly values: string[];
  count: number;
}

export function newEntryText(): EntryText {
  return {
    key: "",
    use: undefined,
    exp: undefined,
    names: [],
    values: [],
    count: 0,
  };
}

/**
 * Reads an entry line into `into` when it is the common kind, where what parseTableEntry would
 * give is the printed text itself: no escape (so the key is as printed), nothing JSON escapes,
 * numbers written as JavaScript writes them, each name once and plain. False for any other line
 * (a comment, a string key with escapes, ...): parse that one with parseTableEntry, which also
 * says what is wrong with a bad line.
 */
export function readEntryText(line: string, into: EntryText): boolean {
  if (line.startsWith("#") || ESCAPES.test(line)) return false;
  const colon = line.indexOf(": ");
  if (colon <= 0 || line.lastIndexOf(" ", colon) >= 0) return false;
  let key: string | undefined;
  let use: string | undefined;
  let exp: string | undefined;
  let shard = false;
  let count = 0;
  const n = line.length;
  for (let start = colon + 2; start < n;) {
    let end = line.indexOf(" ", start);
    if (end < 0) end = n;
    const eq = end > start ? line.indexOf("=", start) : -1;
    if (eq > start && eq < end) {
      const length = eq - start;
      if (length === 3 && line.startsWith("key", start)) {
        if (key !== undefined) return false;
        key = line.slice(eq + 1, end);
      } else if (length === 3 && line.startsWith("use", start)) {
        if (use !== undefined || !isPlainCount(line, eq + 1, end)) return false;
        use = line.slice(eq + 1, end);
      } else if (length === 3 && line.startsWith("exp", start)) {
        if (exp !== undefined || !isPlainCount(line, eq + 1, end)) return false;
        exp = line.slice(eq + 1, end);
      } else if (length === 5 && line.startsWith("shard", start)) {
        if (shard || !isPlainCount(line, eq + 1, end)) return false;
        shard = true;
      } else {
        const name = dataName(line, start, eq);
        if (!name.plain) return false;
        for (let i = 0; i < count; i++) if (into.names[i]!.name === name.name) return false;
        into.names[count] = name;
        into.values[count] = line.slice(eq + 1, end);
        count++;
      }
    }
    start = end + 1;
  }
  if (key === undefined) return false;
  into.key = key;
  into.use = use;
  into.exp = exp;
  into.count = count;
  return true;
}

/**
 * The layout of a table's entry lines. Every entry of a table prints the same items in the same
 * order ("key=... use=... exp=... gpc0=... http_req_rate(10000)=..."), so a pattern made from
 * one line reads the next ones whole, each item's text a group, in one call into the regular
 * expression engine instead of a cut per item. A line the pattern matches reads as readEntryText
 * reads it: its values are printable ASCII without '"', '\\' or space, its numbers as
 * isPlainCount wants them.
 */
export interface EntryShape {
  readonly pattern: RegExp;
  /** The groups of the key, use and exp; use and exp are undefined when the layout lacks them. */
  readonly key: number;
  readonly use: number | undefined;
  readonly exp: number | undefined;
  /** The data items in the line's order, with their groups. */
  readonly data: readonly { readonly name: DataName; readonly group: number }[];
}

/** Text needing no escape, in JSON nor as a key, without space: printable ASCII but '"', '\\'. */
const PLAIN_VALUE = "([!#-\\[\\]-~]*)";
const PLAIN_COUNT = "(0|[1-9][0-9]{0,14})";

/**
 * The shape of `line`, an entry line readEntryText took; undefined when it is laid out in a
 * way the pattern does not cover (two spaces in a row, an item without "=").
 */
export function entryShape(line: string): EntryShape | undefined {
  const text = newEntryText();
  if (!readEntryText(line, text)) return undefined;
  const items = line.slice(line.indexOf(": ") + 2).split(" ");
  const parts: string[] = [];
  let group = 0;
  let key: number | undefined;
  let use: number | undefined;
  let exp: number | undefined;
  const data: { name: DataName; group: number }[] = [];
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) return undefined;
    const printed = item.slice(0, eq);
    const quoted = printed.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
    if (printed === "shard") {
      parts.push(`shard=(?:0|[1-9][0-9]{0,14})`);
      continue;
    }
    group++;
    if (printed === "key") key = group;
    else if (printed === "use") use = group;
    else if (printed === "exp") exp = group;
    else data.push({ name: dataName(item, 0, eq), group });
    parts.push(`${quoted}=${printed === "use" || printed === "exp" ? PLAIN_COUNT : PLAIN_VALUE}`);
  }
  if (key === undefined) return undefined;
  return { pattern: new RegExp(`^(?!#)[^ ]+: ${parts.join(" ")}$`), key, use, exp, data };
}

/**
 * A backslash (an escaped key), or what JSON.stringify escapes: '"', a control character, a lone
 * surrogate.
 */
const ESCAPES = /["\\\p{Cc}\p{Cs}]/u;

/** `line[start, end)` is 0 or 1-15 digits, no leading zero: a safe integer that prints alike. */
function isPlainCount(line: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > 15) return false;
  const first = line.charCodeAt(start);
  if (first === 0x30) return length === 1;
  if (first < 0x31 || first > 0x39) return false;
  for (let i = start + 1; i < end; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function entryNumber(name: string, value: string, line: string): number {
  const n = toInt(value);
  if (n === undefined) {
    throw new ProtocolError(`stick table entry has a non-numeric ${name}: ${value}`, {
      line: line.slice(0, 200),
    });
  }
  return n;
}

function toInt(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  // The common case first: a whole number printed as JavaScript prints it ("599816").
  const n = Number(text);
  if (Number.isSafeInteger(n) && n >= 0 && String(n) === text) return n;
  if (!/^-?\d+$/.test(text)) return undefined;
  return n;
}

const C_ESCAPES: Readonly<Record<string, number>> = { t: 0x09, n: 0x0a, r: 0x0d, e: 0x1b };

/**
 * Undoes dump_text() (src/tools.c), which prints string keys with space,
 * "=" and "\" escaped by a backslash, tab, LF, CR and ESC as \t \n \r \e, and any other byte that
 * is not printable ASCII as \xHH; UTF-8 keys therefore arrive as \xHH sequences. Keys of other
 * types (addresses, integers, hex for binary) contain no backslash and come back unchanged.
 */
export function decodeKey(raw: string): string {
  if (!raw.includes("\\")) return raw;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] ?? "";
    if (c !== "\\" || i + 1 >= raw.length) {
      bytes.push(...encoder.encode(c));
      continue;
    }
    const next = raw[++i] ?? "";
    const hex = next === "x" ? /^[0-9A-Fa-f]{2}/.exec(raw.slice(i + 1, i + 3)) : null;
    if (hex !== null) {
      bytes.push(parseInt(hex[0], 16));
      i += 2;
    } else {
      bytes.push(C_ESCAPES[next] ?? next.charCodeAt(0));
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

/**
 * What `show table <name>` prints in place of the entries on a socket below operator level
 * (measured on 2.6; the header line is still printed).
 */
export const INSUFFICIENT_PRIVILEGES = "# contents not dumped due to insufficient privileges";

/**
 * `show table <name>`, one line at a time: the table's header line, then one line per entry. Each
 * entry goes to `onEntry` as soon as its line arrives and is not kept, so a table with millions of
 * entries is never held in memory. A line that is neither a comment nor an entry is a protocol
 * error.
 */
export class TableDumpParser {
  private tableHeader: TableInfo | undefined;
  private insufficient = false;

  /**
   * `takeLine`, when given, sees each entry line first and may take it as it is (true), so that
   * no TableEntry is made of it; a line it leaves (false) is parsed and goes to `onEntry`.
   */
  constructor(
    private readonly onEntry: (entry: TableEntry) => void,
    private readonly takeLine?: (line: string) => boolean,
  ) {}

  get header(): TableInfo | undefined {
    return this.tableHeader;
  }

  get insufficientPrivileges(): boolean {
    return this.insufficient;
  }

  line(text: string): void {
    if (text.length === 0) return;
    if (text.startsWith(TABLE_PREFIX)) {
      this.tableHeader ??= parseTableHeader(text);
      return;
    }
    if (text === INSUFFICIENT_PRIVILEGES) {
      this.insufficient = true;
      return;
    }
    if (text.startsWith("#")) return;
    if (this.takeLine?.(text)) return;
    const entry = parseTableEntry(text);
    if (entry === undefined) {
      throw new ProtocolError("unexpected line in a show table answer", {
        line: text.slice(0, 200),
      });
    }
    this.onEntry(entry);
  }
}
