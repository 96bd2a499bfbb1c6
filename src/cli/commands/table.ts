import { readFileSync } from "node:fs";
import type { Journal } from "../../audit/journal.js";
import {
  clearTable,
  setTable,
  showTable,
  showTables,
  type RuntimeCommand,
  type TableFilter,
  type TableSelection,
} from "../../commands/builders.js";
import { validateName, type TableKeySpec, type TableKeyType } from "../../commands/validate.js";
import { parseStickTables, type StickTableDef } from "../../parse/haproxy-cfg.js";
import type { Settings } from "../../config/settings.js";
import { checkWriteLevel, openChangeSessions } from "../../engine/change.js";
import { withSession } from "../../engine/connect.js";
import {
  GuardError,
  HaproxyError,
  LevelError,
  UsageError,
  VerificationError,
  type HapopsError,
} from "../../errors.js";
import type { RuntimeSession } from "../../runtime/session.js";
import {
  parseTableList,
  TableDumpParser,
  type TableEntry,
  type TableInfo,
} from "../../parse/table.js";
import { suggestion } from "../../util/suggest.js";
import { renderJson } from "../output.js";
import type { Io } from "../context.js";

export interface TableShowRequest {
  readonly table: string;
  readonly key?: string | undefined;
  /** `data.<type> <op> <value>`, as three words. */
  readonly filter?: readonly string[] | undefined;
}

const KEY_TYPES: readonly TableKeyType[] = ["ip", "ipv6", "integer", "string", "binary"];

/** Find the table in `show table` (with a "did you mean" when the name is wrong). */
async function findTable(session: RuntimeSession, name: string): Promise<TableInfo> {
  const tables = parseTableList(await session.run(showTables()));
  const info = tables.find((t) => t.name === name);
  if (!info)
    throw new UsageError(
      `no stick table named ${name}; ${suggestion(
        name,
        tables.map((t) => t.name),
      )}`,
    );
  return info;
}

/** The table as HAProxy's config declares it, when the config file is readable. */
function tableDef(settings: Settings, name: string): StickTableDef | undefined {
  let text: string;
  try {
    text = readFileSync(settings.haproxyConfig, "utf8");
  } catch {
    return undefined;
  }
  return parseStickTables(text).get(name);
}

function keySpec(
  info: TableInfo,
  value: string,
  def: StickTableDef | undefined,
): { value: string; spec: TableKeySpec } {
  const type = KEY_TYPES.find((t) => t === info.type);
  if (!type)
    throw new UsageError(`table ${info.name} has key type ${info.type}, which hapops cannot check`);
  // HAProxy truncates an over-long string key silently; its default len is 32.
  const sized = type === "string" || type === "binary";
  const length = sized && def ? (def.len ?? 32) : undefined;
  return { value, spec: { type, ...(length !== undefined ? { length } : {}) } };
}

/** `--filter data.gpc0 gt 5` as the three words HAProxy takes. */
export function parseFilter(words: readonly string[] | undefined): TableFilter | undefined {
  if (words === undefined) return undefined;
  const [data, op, value] = words;
  if (words.length !== 3 || !data?.startsWith("data.") || op === undefined || value === undefined)
    throw new UsageError(
      `--filter takes data.<type> <op> <value>, e.g. --filter data.gpc0 gt 5 (got ${words.join(" ")})`,
    );
  return { type: data.slice("data.".length), op, value };
}

function selection(
  info: TableInfo,
  key: string | undefined,
  filter: TableFilter | undefined,
  def: StickTableDef | undefined,
): TableSelection {
  if (key !== undefined && filter !== undefined)
    throw new UsageError("give --key or --filter, not both");
  if (key !== undefined) return { key: keySpec(info, key, def) };
  if (filter !== undefined) return { filter };
  return {};
}

async function streamEntries(
  session: RuntimeSession,
  settings: Settings,
  name: string,
  sel: TableSelection,
  onEntry: (entry: TableEntry) => void,
): Promise<TableDumpParser> {
  const parser = new TableDumpParser(onEntry);
  await session.stream(showTable(name, sel), (l) => parser.line(l));
  if (parser.insufficientPrivileges)
    throw new LevelError(
      `socket ${settings.targetText} is below operator level, so HAProxy did not list the entries of ${name}; use a socket with \`level operator\` or higher`,
    );
  return parser;
}

/**
 * Show a stick table. Entries are handed to `onEntry` as they are parsed, so a table with a
 * million entries is streamed, not held. Needs operator level: below it HAProxy prints only
 * the header and "# contents not dumped due to insufficient privileges" (measured on 2.6).
 */
export async function runTableShow(
  settings: Settings,
  req: TableShowRequest,
  onEntry: (entry: TableEntry) => void,
  onInfo?: (info: TableInfo) => void,
): Promise<TableInfo> {
  const name = validateName("table name", req.table);
  const filter = parseFilter(req.filter);
  return withSession(settings, "hapops table show", async (session) => {
    await session.lowerTo("operator");
    const info = await findTable(session, name);
    onInfo?.(info);
    const sel = selection(info, req.key, filter, tableDef(settings, name));
    const parser = await streamEntries(session, settings, name, sel, onEntry);
    return parser.header ?? info;
  });
}

/** `data.gpc0=3` words as the operator typed them. */
export function parseAssignments(words: readonly string[]): { type: string; value: string }[] {
  return words.map((w) => {
    const m = /^data\.([a-z0-9_]+)=(.*)$/.exec(w);
    if (!m)
      throw new UsageError(
        `expected data.<type>=<value>, e.g. data.gpc0=1 (got ${JSON.stringify(w)})`,
      );
    return { type: m[1]!, value: m[2]! };
  });
}

export interface TableChangeRequest {
  readonly op: "table set" | "table clear";
  readonly table: string;
  readonly key?: string | undefined;
  readonly filter?: readonly string[] | undefined;
  readonly data?: readonly string[] | undefined;
  readonly yes: boolean;
  /** Ask before clearing a whole table (a terminal); otherwise --yes is required. */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
  readonly dryRun: boolean;
  readonly journal: Journal;
}

/** Rates decay by themselves; only counters and tags are compared after a `set table`. */
function isRate(type: string): boolean {
  return type.endsWith("_rate");
}

/**
 * `table set` and `table clear`: validate against the table (key type, stored data types),
 * record the intent, send, and read the entries back.
 */
export async function runTableChange(
  settings: Settings,
  req: TableChangeRequest,
  io: Io,
): Promise<void> {
  const name = validateName("table name", req.table);
  const filter = parseFilter(req.filter);
  const assignments = req.op === "table set" ? parseAssignments(req.data ?? []) : [];
  const out = (t: string) => {
    if (!settings.json) io.out(t + "\n");
  };
  const sessions = await openChangeSessions(settings, `hapops ${req.op}`, "operator");
  try {
    const level = await checkWriteLevel(sessions.write, "operator", settings.targetText, req.op);
    if (level.error && !req.dryRun) throw level.error;
    const info = await findTable(sessions.read, name);
    const def = tableDef(settings, name);
    let command: RuntimeCommand;
    let existed = true;
    let sel: TableSelection = {};
    if (req.op === "table set") {
      if (req.key === undefined) throw new UsageError("table set needs a key");
      const key = keySpec(info, req.key, def);
      const existing: TableEntry[] = [];
      await streamEntries(sessions.read, settings, name, { key }, (e) => existing.push(e));
      existed = existing.length > 0;
      // What the table stores: from its config line, else from the entry itself.
      const stored = def?.store ?? (existing[0] ? Object.keys(existing[0].data) : undefined);
      command = setTable(name, key, assignments, stored);
      sel = { key };
    } else {
      sel = selection(info, req.key, filter, def);
      command = clearTable(name, sel);
      if (!("key" in sel) && !("filter" in sel) && !req.dryRun && !req.yes) {
        const question = `clear all ${info.used} entries of table ${name}? [y/N] `;
        if (!req.confirm || !(await req.confirm(question)))
          throw new GuardError(
            `clearing the whole table ${name} (${info.used} entries) needs --yes${req.confirm ? "" : " (no terminal to ask on)"}`,
          );
      }
    }
    const detail = { table: name, type: info.type, usedBefore: info.used };
    if (req.dryRun) {
      out(`dry run: nothing that changes state is sent\nwould send:\n  ${command.line}`);
      if (level.error) out(`warning: ${level.error.message}`);
      await req.journal.single("ok", [command.line], undefined, detail);
      if (settings.json)
        io.out(renderJson({ dryRun: true, table: name, wouldSend: [command.line] }));
      return;
    }
    const step = await req.journal.intent([command.line], detail);
    const sent = [command.line];
    try {
      try {
        await sessions.write.run(command);
      } catch (e) {
        // HAProxy 2.6 creates the entry before it refuses a data type (measured): remove it
        // again, so a refused `set table` leaves the table as it was.
        if (e instanceof HaproxyError && req.op === "table set" && !existed && "key" in sel) {
          const undo = clearTable(name, sel);
          sent.push(undo.line);
          await sessions.write.run(undo).catch(() => undefined);
        }
        throw e;
      }
      const after: TableEntry[] = [];
      await streamEntries(sessions.read, settings, name, sel, (e) => after.push(e));
      const usedAfter = (await findTable(sessions.read, name)).used;
      if (req.op === "table set") {
        const entry = after[0];
        const wrong = assignments.filter(
          (a) => !isRate(a.type) && entry?.data[a.type]?.value !== a.value,
        );
        if (!entry || wrong.length > 0)
          throw new VerificationError(
            `table ${name} key ${req.key}: ${entry ? wrong.map((w) => `${w.type} is ${entry.data[w.type]?.value ?? "missing"}, not ${w.value}`).join(", ") : "no entry after set"}`,
          );
        out(`${name} ${req.key}  ${assignments.map((a) => `${a.type}=${a.value}`).join(" ")}`);
      } else {
        // Entries in use by a connection (use > 0) are not removed (management.txt, clear table).
        const kept = after.filter((e) => e.use > 0).length;
        const stillThere = after.length - kept;
        if (stillThere > 0)
          throw new VerificationError(
            `table ${name}: ${stillThere} matching entries are still there after clear`,
          );
        out(
          `${name}: cleared ${info.used - usedAfter} entr${info.used - usedAfter === 1 ? "y" : "ies"}${kept ? `; ${kept} kept because in use` : ""} (${usedAfter} left)`,
        );
      }
      await req.journal.result(step, "ok", [command.line], undefined, { ...detail, usedAfter });
      out(`verified: read back from HAProxy`);
      if (settings.json)
        io.out(
          renderJson({
            dryRun: false,
            table: name,
            sent: [command.line],
            usedBefore: info.used,
            usedAfter,
            entries: after.map((e) => entryJson(name, e)),
          }),
        );
    } catch (e) {
      await req.journal.result(step, "failed", sent, e as HapopsError, detail);
      throw e;
    }
  } finally {
    await sessions.close();
  }
}

export function entryJson(table: string, e: TableEntry) {
  return { table, key: e.key, use: e.use, exp: e.exp ?? null, data: e.data };
}

/**
 * Human output that streams: column widths come from the first `batch` entries, later rows are
 * printed as they arrive with the same widths (a longer cell only pushes its own line out), so a
 * table of a million entries is never held.
 */
export class EntryPrinter {
  private readonly buffer: TableEntry[] = [];
  private widths: number[] | undefined;
  private dataNames: string[] = [];

  constructor(
    private readonly out: (text: string) => void,
    private readonly batch = 500,
  ) {}

  header(info: TableInfo): void {
    this.out(`table ${info.name}: type ${info.type}, ${info.used} of ${info.size} entries used\n`);
  }

  push(e: TableEntry): void {
    if (this.widths) {
      this.out(this.line(this.cells(e)));
      return;
    }
    this.buffer.push(e);
    if (this.buffer.length >= this.batch) this.flush();
  }

  end(): void {
    if (!this.widths && this.buffer.length > 0) this.flush();
  }

  private cells(e: TableEntry): string[] {
    return [
      e.key,
      String(e.use),
      e.exp === undefined ? "-" : `${Math.round(e.exp / 1000)}s`,
      ...this.dataNames.map((k) => e.data[k]?.value ?? "-"),
    ];
  }

  private flush(): void {
    for (const e of this.buffer)
      for (const k of Object.keys(e.data)) if (!this.dataNames.includes(k)) this.dataNames.push(k);
    const label = (k: string) => {
      const p = this.buffer.find((x) => x.data[k]?.period !== undefined)?.data[k]?.period;
      return (p !== undefined ? `${k}(${p / 1000}s)` : k).toUpperCase();
    };
    const head = ["KEY", "USE", "EXPIRES", ...this.dataNames.map(label)];
    const rows = [head, ...this.buffer.map((e) => this.cells(e))];
    this.widths = head.map((_, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? "").length), 0));
    for (const r of rows) this.out(this.line(r));
    this.buffer.length = 0;
  }

  private line(cells: readonly string[]): string {
    const w = this.widths ?? [];
    return (
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((w[i] ?? 0) + 2)))
        .join("")
        .trimEnd() + "\n"
    );
  }
}
