import { describe, expect, it } from "vitest";
import { thrown } from "../helpers/thrown.js";
import { ExitCode, GuardError, UsageError, ValidationError } from "../../src/errors.js";
import {
  planTableChange,
  tableChange,
  type TableChange,
  type TableState,
} from "../../src/ops/table.js";
import type { TableEntry } from "../../src/parse/table.js";

const IP: TableState = {
  info: { name: "be_app", type: "ip", size: 1024, used: 3 },
  def: { name: "be_app", type: "ip", len: undefined, store: ["gpc0", "http_req_rate"] },
  existing: [],
};

const NAMES: TableState = {
  info: { name: "be_names", type: "string", size: 1024, used: 1 },
  def: { name: "be_names", type: "string", len: 16, store: ["gpc0"] },
  existing: [],
};

function entry(key: string, data: Record<string, string>, use = 0): TableEntry {
  return {
    id: "0x1",
    key,
    use,
    exp: 1000,
    shard: undefined,
    data: Object.fromEntries(Object.entries(data).map(([k, value]) => [k, { value }])),
  };
}

function change(over: Partial<Parameters<typeof tableChange>[0]> = {}): TableChange {
  return tableChange({
    op: "table set",
    table: "be_app",
    key: "192.0.2.10",
    data: ["data.gpc0=3"],
    yes: false,
    asking: "none",
    target: "/run/haproxy/admin.sock",
    haproxyConfig: "/etc/haproxy/haproxy.cfg",
    ...over,
  });
}

const clear = (over: Partial<Parameters<typeof tableChange>[0]> = {}) =>
  change({ op: "table clear", key: undefined, data: undefined, ...over });

function sendStep(plan: ReturnType<typeof planTableChange>) {
  const s = plan.steps[0];
  if (s?.kind !== "send") throw new Error("expected a send step");
  return s;
}

describe("tableChange: argv checked before anything is read", () => {
  it("parses data assignments and filters", () => {
    expect(change({ data: ["data.gpc0=3", "data.gpt0=1"] }).data).toEqual([
      { type: "gpc0", value: "3" },
      { type: "gpt0", value: "1" },
    ]);
    expect(clear({ filter: ["data.gpc0", "gt", "5"] }).filter).toEqual({
      type: "gpc0",
      op: "gt",
      value: "5",
    });
  });

  it.each([
    [{ data: ["gpc0=1"] }, /expected data\.<type>=<value>/],
    [{ table: "be;x" }, /table name/],
    [{ key: undefined }, /table set needs a key/],
  ])("refuses %j", (over, message) => {
    expect(() => change(over)).toThrow(message);
  });

  it("refuses a filter that is not three words", () => {
    const e = thrown(UsageError, () => clear({ filter: ["data.gpc0", "gt"] }));
    expect(e.message).toMatch(/--filter takes data\.<type> <op> <value>/);
  });
});

describe("planTableChange: table set", () => {
  it("plans one validated line at operator level, scoped to the table", () => {
    const plan = planTableChange(change(), IP);
    expect(plan).toMatchObject({
      op: "table set",
      level: "operator",
      mutates: true,
      scope: { tables: ["be_app"] },
      guards: [],
      describe: ["be_app 192.0.2.10  gpc0=3"],
      report: { table: "be_app", usedBefore: 3 },
    });
    expect(sendStep(plan).commands.map((c) => c.line)).toEqual([
      "set table be_app key 192.0.2.10 data.gpc0 3",
    ]);
  });

  it("removes a new key again if HAProxy refuses the line (2.6 creates it first)", () => {
    const undo = sendStep(planTableChange(change(), IP)).undoOnRefusal ?? [];
    expect(undo.map((c) => c.line)).toEqual(["clear table be_app key 192.0.2.10"]);
  });

  it("leaves an entry that was there before alone", () => {
    const state = { ...IP, existing: [entry("192.0.2.10", { gpc0: "1" })] };
    const plan = planTableChange(change(), state);
    expect(sendStep(plan).undoOnRefusal).toBeUndefined();
    expect(plan.json).toMatchObject({
      before: { key: "192.0.2.10", data: { gpc0: { value: "1" } } },
    });
  });

  it("compensates when the entries could not be read (below operator: the level check refuses)", () => {
    const plan = planTableChange(change(), { ...IP, existing: undefined });
    expect(sendStep(plan).undoOnRefusal).toHaveLength(1);
  });

  it("checks data types against the config's store, else against the entry's own", () => {
    expect(() => planTableChange(change({ data: ["data.gpc1=1"] }), IP)).toThrow(
      /table be_app does not store gpc1 \(it stores gpc0, http_req_rate\)/,
    );
    const fromEntry = { ...IP, def: undefined, existing: [entry("192.0.2.10", { gpt0: "0" })] };
    expect(() => planTableChange(change({ data: ["data.gpc1=1"] }), fromEntry)).toThrow(
      /does not store gpc1 \(it stores gpt0\)/,
    );
    // Nothing known: HAProxy decides.
    const unknown = { ...IP, def: undefined };
    expect(
      sendStep(planTableChange(change({ data: ["data.gpc1=1"] }), unknown)).commands,
    ).toHaveLength(1);
  });

  it("checks the key against the table's type and len", () => {
    const e = thrown(ValidationError, () => planTableChange(change({ key: "999.1.1.1" }), IP));
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.message).toMatch(/key "999\.1\.1\.1" is not valid for table be_app \(type ip\)/);
    expect(() =>
      planTableChange(change({ table: "be_names", key: "a-very-long-user-name" }), NAMES),
    ).toThrow(/longer than the table's len 16/);
    // Without the config the len is unknown: HAProxy's default is not assumed.
    const noDef = { ...NAMES, def: undefined };
    expect(() =>
      planTableChange(change({ table: "be_names", key: "a-very-long-user-name" }), noDef),
    ).not.toThrow();
  });
});

describe("planTableChange: table clear", () => {
  it("one key: no guard", () => {
    const plan = planTableChange(clear({ key: "192.0.2.30" }), IP);
    expect(plan.guards).toEqual([]);
    expect(plan.describe).toEqual(["be_app: clear key 192.0.2.30"]);
    expect(sendStep(plan).commands[0]!.line).toBe("clear table be_app key 192.0.2.30");
    expect(sendStep(plan).undoOnRefusal).toBeUndefined();
  });

  it("a filter: no guard", () => {
    const plan = planTableChange(clear({ filter: ["data.gpc0", "gt", "0"] }), IP);
    expect(plan.guards).toEqual([]);
    expect(sendStep(plan).commands[0]!.line).toBe("clear table be_app data.gpc0 gt 0");
  });

  it("refuses --key with --filter", () => {
    expect(() =>
      planTableChange(clear({ key: "192.0.2.1", filter: ["data.gpc0", "gt", "0"] }), IP),
    ).toThrow(/give --key or --filter, not both/);
  });

  it("the whole table without --yes: a failed guard that asks, or refuses with exit 3", () => {
    const plan = planTableChange(clear(), IP);
    expect(plan.describe).toEqual(["be_app: clear all 3 entries"]);
    const [g] = plan.guards;
    expect(g).toMatchObject({
      name: "whole-table",
      ok: false,
      forced: false,
      confirm: "clear all 3 entries of table be_app? [y/N] ",
    });
    expect(g!.error).toBeInstanceOf(GuardError);
    expect(g!.error!.exitCode).toBe(ExitCode.guard);
    expect(g!.error!.message).toBe(
      "clearing the whole table be_app (3 entries) needs --yes (no terminal to ask on)",
    );
  });

  it("says why it did not ask: a dry run never does, a 'no' at the terminal", () => {
    expect(planTableChange(clear({ asking: "dry-run" }), IP).guards[0]!.error!.message).toMatch(
      /needs --yes \(a dry run does not ask\)$/,
    );
    expect(planTableChange(clear({ asking: "terminal" }), IP).guards[0]!.error!.message).toMatch(
      /needs --yes \(not confirmed\)$/,
    );
  });

  it("the whole table with --yes: the guard passes", () => {
    const plan = planTableChange(clear({ yes: true }), IP);
    expect(plan.guards[0]).toMatchObject({ ok: true, forced: false });
    expect(plan.guards[0]!.error).toBeUndefined();
    expect(sendStep(plan).commands[0]!.line).toBe("clear table be_app");
  });
});
