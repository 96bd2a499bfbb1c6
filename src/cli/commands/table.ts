import { showTable, showTables } from "../../commands/builders.js";
import { validateName, type TableKeyType } from "../../commands/validate.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import { LevelError, UsageError } from "../../errors.js";
import {
  parseTableList,
  TableDumpParser,
  type TableEntry,
  type TableInfo,
} from "../../parse/table.js";
import { suggestion } from "../../util/suggest.js";
import { renderTable } from "../output.js";

export interface TableShowRequest {
  readonly table: string;
  readonly key?: string | undefined;
}

const KEY_TYPES: readonly TableKeyType[] = ["ip", "ipv6", "integer", "string", "binary"];

/**
 * Show a stick table. Entries are handed to `onEntry` as they are parsed, so a table with a
 * million entries is streamed, not held. Needs operator level: below it HAProxy prints only
 * the header and "# contents not dumped due to insufficient privileges" (measured on 2.6).
 */
export async function runTableShow(
  settings: Settings,
  req: TableShowRequest,
  onEntry: (entry: TableEntry) => void,
): Promise<TableInfo> {
  const name = validateName("table name", req.table);
  return withSession(settings, "hapops table show", async (session) => {
    await session.lowerTo("operator");
    const tables = parseTableList(await session.run(showTables()));
    const info = tables.find((t) => t.name === name);
    if (!info)
      throw new UsageError(
        `no stick table named ${name}; ${suggestion(
          name,
          tables.map((t) => t.name),
        )}`,
      );
    let key: { value: string; spec: { type: TableKeyType } } | undefined;
    if (req.key !== undefined) {
      const type = KEY_TYPES.find((t) => t === info.type);
      if (!type)
        throw new UsageError(`table ${name} has key type ${info.type}, which hapops cannot check`);
      key = { value: req.key, spec: { type } };
    }
    const parser = new TableDumpParser(onEntry);
    await session.stream(showTable(name, key), (l) => parser.line(l));
    if (parser.insufficientPrivileges)
      throw new LevelError(
        `socket ${settings.targetText} is below operator level, so HAProxy did not list the entries of ${name}; use a socket with \`level operator\` or higher`,
      );
    return parser.header ?? info;
  });
}

export function entryJson(table: string, e: TableEntry) {
  return { table, key: e.key, use: e.use, exp: e.exp ?? null, data: e.data };
}

/** Human output: one aligned row per entry, with a column per stored data type. */
export function printTableEntries(info: TableInfo, entries: readonly TableEntry[]): string {
  const dataNames: string[] = [];
  for (const e of entries)
    for (const k of Object.keys(e.data)) if (!dataNames.includes(k)) dataNames.push(k);
  const label = (k: string, e?: TableEntry) => {
    const p = e?.data[k]?.period ?? entries.find((x) => x.data[k]?.period)?.data[k]?.period;
    return p !== undefined ? `${k}(${p / 1000}s)` : k;
  };
  const header = `table ${info.name}: type ${info.type}, ${info.used} of ${info.size} entries used\n`;
  if (entries.length === 0) return header;
  const rows = entries.map((e) => [
    e.key,
    String(e.use),
    e.exp === undefined ? "-" : `${Math.round(e.exp / 1000)}s`,
    ...dataNames.map((k) => e.data[k]?.value ?? "-"),
  ]);
  return (
    header +
    renderTable(["KEY", "USE", "EXPIRES", ...dataNames.map((k) => label(k).toUpperCase())], rows)
  );
}
