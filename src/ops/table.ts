import { readFileSync } from "node:fs";
import {
  clearTable,
  setTable,
  showTable,
  showTables,
  type RuntimeCommand,
  type TableFilter,
  type TableSelection,
} from "../commands/builders.js";
import { levelAtLeast } from "../commands/levels.js";
import { validateName, type TableKeySpec, type TableKeyType } from "../commands/validate.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Verification } from "../engine/operation.js";
import { GuardError, LevelError, UsageError, VerificationError } from "../errors.js";
import { parseStickTables, type StickTableDef } from "../parse/haproxy-cfg.js";
import {
  parseTableList,
  TableDumpParser,
  type TableEntry,
  type TableInfo,
} from "../parse/table.js";
import type { RuntimeSession, StreamOptions } from "../runtime/session.js";
import { suggestion } from "../util/suggest.js";

const KEY_TYPES: readonly TableKeyType[] = ["ip", "ipv6", "integer", "string", "binary"];

/** Find the table in `show table` (with a "did you mean" when the name is wrong). */
export async function findTable(session: RuntimeSession, name: string): Promise<TableInfo> {
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

/**
 * The table as HAProxy's config file declares it (`len`, `store`: what `show table` does not
 * say), or undefined when the file cannot be read: then HAProxy decides.
 */
export function readTableDef(haproxyConfig: string, name: string): StickTableDef | undefined {
  let text: string;
  try {
    text = readFileSync(haproxyConfig, "utf8");
  } catch {
    return undefined;
  }
  return parseStickTables(text).get(name);
}

export function keySpec(
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

export function selection(
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

/**
 * Stream the entries `sel` picks (`takeLine`: see TableDumpParser; `opts`: see StreamOptions).
 * Below operator level HAProxy prints only the header and "# contents not dumped due to
 * insufficient privileges" (measured on 2.6).
 */
export async function streamEntries(
  session: RuntimeSession,
  target: string,
  name: string,
  sel: TableSelection,
  onEntry: (entry: TableEntry) => void,
  takeLine?: (line: string) => boolean,
  opts?: StreamOptions,
): Promise<TableDumpParser> {
  const parser = new TableDumpParser(onEntry, takeLine);
  await session.stream(showTable(name, sel), (l) => parser.line(l), opts);
  if (parser.insufficientPrivileges)
    throw new LevelError(
      `socket ${target} is below operator level, so HAProxy did not list the entries of ${name}; use a socket with \`level operator\` or higher`,
    );
  return parser;
}

export function entryJson(table: string, e: TableEntry) {
  return { table, key: e.key, use: e.use, exp: e.exp ?? null, data: e.data };
}

/** `table set` / `table clear`, parsed and checked as far as it can be without HAProxy. */
export interface TableChange {
  readonly op: "table set" | "table clear";
  readonly table: string;
  readonly key?: string | undefined;
  readonly filter?: TableFilter | undefined;
  /** `table set`: the data to store. */
  readonly data: readonly { readonly type: string; readonly value: string }[];
  /** Clearing a whole table was confirmed with --yes. */
  readonly yes: boolean;
  /**
   * How a whole-table clear without --yes is refused: in a dry run (which never asks), after a
   * "no" at the terminal, or with no terminal to ask on.
   */
  readonly asking: "dry-run" | "terminal" | "none";
  readonly target: string;
  /** HAProxy's config file, for the table's `len` and `store`. */
  readonly haproxyConfig: string;
}

/** Parse `table set|clear` arguments: every refusal here comes before anything is sent. */
export function tableChange(
  args: Omit<TableChange, "table" | "filter" | "data"> & {
    readonly table: string;
    readonly filter?: readonly string[] | undefined;
    readonly data?: readonly string[] | undefined;
  },
): TableChange {
  const table = validateName("table name", args.table);
  const filter = parseFilter(args.filter);
  const data = args.op === "table set" ? parseAssignments(args.data ?? []) : [];
  if (args.op === "table set" && args.key === undefined)
    throw new UsageError("table set needs a key");
  return { ...args, table, filter, data };
}

export interface TableState {
  readonly info: TableInfo;
  readonly def: StickTableDef | undefined;
  /**
   * `table set`: the key's entry before the change ([] when there is none), or undefined when
   * the session could not list entries (below operator: the level check refuses the run).
   */
  readonly existing: readonly TableEntry[] | undefined;
}

export interface TableBody {
  readonly table: string;
  readonly sel: TableSelection;
  readonly data: TableChange["data"];
  readonly key: string | undefined;
  readonly usedBefore: number;
}

/** Rates decay by themselves; only counters and tags are compared after a `set table`. */
function isRate(type: string): boolean {
  return type.endsWith("_rate");
}

function describeSelection(sel: TableSelection, used: number): string {
  if ("key" in sel) return `key ${sel.key.value}`;
  if ("filter" in sel)
    return `entries where data.${sel.filter.type} ${sel.filter.op} ${sel.filter.value}`;
  return `all ${used} entr${used === 1 ? "y" : "ies"}`;
}

/** The plan of a table change on the state read (pure). */
export function planTableChange(req: TableChange, state: TableState): Plan<TableBody> {
  const { info, def } = state;
  const name = req.table;
  let command: RuntimeCommand;
  let sel: TableSelection;
  let undo: RuntimeCommand[] = [];
  const guards: Guard[] = [];
  let describe: string;
  let json: Record<string, unknown>;
  if (req.op === "table set") {
    const key = keySpec(info, req.key!, def);
    const existing = state.existing ?? [];
    // What the table stores: from its config line, else from the entry itself.
    const stored = def?.store ?? (existing[0] ? Object.keys(existing[0].data) : undefined);
    command = setTable(name, key, req.data, stored);
    sel = { key };
    // HAProxy 2.6 creates the entry before it refuses a data type (measured): a refused set of
    // a new key removes it again, so the table is left as it was.
    if (existing.length === 0) undo = [clearTable(name, sel)];
    describe = `${name} ${req.key}  ${req.data.map((a) => `${a.type}=${a.value}`).join(" ")}`;
    json = {
      table: name,
      key: req.key,
      data: Object.fromEntries(req.data.map((a) => [a.type, a.value])),
      before: existing[0] ? entryJson(name, existing[0]) : null,
    };
  } else {
    sel = selection(info, req.key, req.filter, def);
    command = clearTable(name, sel);
    describe = `${name}: clear ${describeSelection(sel, info.used)}`;
    json = { table: name, selection: describeSelection(sel, info.used) };
    if (!("key" in sel) && !("filter" in sel)) {
      const why =
        req.asking === "dry-run"
          ? " (a dry run does not ask)"
          : req.asking === "terminal"
            ? " (not confirmed)"
            : " (no terminal to ask on)";
      const reason = `clearing the whole table ${name} (${info.used} entries) needs --yes`;
      guards.push({
        name: "whole-table",
        ok: req.yes,
        forced: false,
        reason: req.yes ? `--yes: clear ${describeSelection(sel, info.used)}` : reason,
        ...(req.yes ? {} : { error: new GuardError(`${reason}${why}`, { table: name }) }),
        confirm: `clear all ${info.used} entries of table ${name}? [y/N] `,
      });
    }
  }
  return {
    version: 1,
    op: req.op,
    target: req.target,
    level: "operator",
    mutates: true,
    scope: { tables: [name] },
    steps: [
      {
        kind: "send",
        op: req.op,
        commands: [command],
        ...(undo.length > 0 ? { undoOnRefusal: undo } : {}),
      },
    ],
    guards,
    describe: [describe],
    json,
    report: { table: name, usedBefore: info.used },
    detail: { table: name, type: info.type, usedBefore: info.used },
    body: { table: name, sel, data: req.data, key: req.key, usedBefore: info.used },
  };
}

/** Read the entries back: `set` compares what it stored, `clear` what is left. */
async function verifyTableChange(
  req: TableChange,
  sessions: ChangeSessions,
  plan: Plan<TableBody>,
): Promise<Verification> {
  const { table, sel, data, key, usedBefore } = plan.body;
  const after: TableEntry[] = [];
  await streamEntries(sessions.read, req.target, table, sel, (e) => after.push(e));
  const usedAfter = (await findTable(sessions.read, table)).used;
  const json = { usedAfter, entries: after.map((e) => entryJson(table, e)) };
  const summary = ["verified: read back from HAProxy"];
  if (req.op === "table set") {
    const entry = after[0];
    const wrong = data.filter((a) => !isRate(a.type) && entry?.data[a.type]?.value !== a.value);
    const mismatches = !entry
      ? [`table ${table} key ${key}: no entry after set`]
      : [
          // HAProxy cuts a string key longer than the table's len silently (without the config,
          // hapops cannot know the len before sending): the entry is not the one asked for.
          ...("key" in sel && sel.key.spec.type === "string" && entry.key !== key
            ? [
                `table ${table} stored the key as ${JSON.stringify(entry.key)}, not ${JSON.stringify(key)} (longer than the table's len; set haproxyConfig so hapops can refuse it before sending)`,
              ]
            : []),
          ...wrong.map(
            (w) =>
              `table ${table} key ${key}: ${w.type} is ${entry.data[w.type]?.value ?? "missing"}, not ${w.value}`,
          ),
        ];
    return {
      mismatches,
      ...(mismatches.length > 0
        ? { error: new VerificationError(mismatches.join("; "), { table, key }) }
        : {}),
      summary,
      json,
    };
  }
  // Entries in use by a connection (use > 0) are not removed (management.txt, clear table).
  const kept = after.filter((e) => e.use > 0).length;
  const stillThere = after.length - kept;
  const cleared = usedBefore - usedAfter;
  return {
    mismatches:
      stillThere > 0
        ? [`table ${table}: ${stillThere} matching entries are still there after clear`]
        : [],
    output: [
      `${table}: cleared ${cleared} entr${cleared === 1 ? "y" : "ies"}${kept ? `; ${kept} kept because in use` : ""} (${usedAfter} left)`,
    ],
    summary,
    json,
  };
}

/**
 * `table set` and `table clear` as an engine operation: find the table, its definition in
 * HAProxy's config and (set) the key's entry; plan a validated line; read the entries back.
 */
export function tableOperation(req: TableChange): Operation<TableState, TableBody> {
  return {
    op: req.op,
    readLevel: "operator",
    async read(sessions) {
      const info = await findTable(sessions.read, req.table);
      const def = readTableDef(req.haproxyConfig, req.table);
      if (req.op !== "table set") return { info, def, existing: undefined };
      const level = await sessions.read.level();
      if (level !== undefined && !levelAtLeast(level, "operator"))
        return { info, def, existing: undefined };
      const existing: TableEntry[] = [];
      const sel = { key: keySpec(info, req.key!, def) };
      await streamEntries(sessions.read, req.target, req.table, sel, (e) => existing.push(e));
      return { info, def, existing };
    },
    plan: (state) => planTableChange(req, state),
    verify: (sessions, plan) => verifyTableChange(req, sessions, plan),
  };
}
