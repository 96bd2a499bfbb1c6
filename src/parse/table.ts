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

/** The fields every entry line has before its data, as printed by 2.6 and 3.2. */
const ENTRY_FIELDS = new Set(["key", "use", "exp", "shard"]);

/**
 * One entry line: "0x5651deb66fb8: key=127.0.0.1 use=0 exp=599816 conn_rate(10000)=1" (3.2 adds
 * "shard=0" after exp). Undefined for a line that is not an entry (a "#" line, or no "key=").
 * String keys are escaped, so a key can hold spaces and "=" ("key=has\ space"); the line is split
 * on unescaped spaces only.
 */
export function parseTableEntry(line: string): TableEntry | undefined {
  if (line.startsWith("#")) return undefined;
  const colon = line.indexOf(": ");
  if (colon <= 0) return undefined;
  const id = line.slice(0, colon);
  if (id.includes(" ")) return undefined;
  let rawKey: string | undefined;
  let use: number | undefined;
  let exp: number | undefined;
  let shard: number | undefined;
  const data: TableEntry["data"] = {};
  for (const token of splitUnescaped(line.slice(colon + 2), " ")) {
    const eq = indexOfUnescaped(token, "=");
    if (eq <= 0) continue;
    const name = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (ENTRY_FIELDS.has(name)) {
      if (name === "key") rawKey ??= value;
      else if (name === "use") use ??= entryNumber(name, value, line);
      else if (name === "exp") exp ??= entryNumber(name, value, line);
      else shard ??= entryNumber(name, value, line);
      continue;
    }
    const period = /^(.+)\((\d+)\)$/.exec(name);
    const dataName = period?.[1] ?? name;
    if (Object.hasOwn(data, dataName)) continue;
    data[dataName] = period?.[2] === undefined ? { value } : { period: Number(period[2]), value };
  }
  if (rawKey === undefined) return undefined;
  return { id, key: decodeKey(rawKey), use: use ?? 0, exp, shard, data };
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
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

function indexOfUnescaped(text: string, char: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === char) return i;
  }
  return -1;
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === separator) {
      if (i > start) parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (start < text.length) parts.push(text.slice(start));
  return parts;
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

  constructor(private readonly onEntry: (entry: TableEntry) => void) {}

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
    const entry = parseTableEntry(text);
    if (entry === undefined) {
      throw new ProtocolError("unexpected line in a show table answer", {
        line: text.slice(0, 200),
      });
    }
    this.onEntry(entry);
  }
}
