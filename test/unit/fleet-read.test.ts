import { describe, expect, it } from "vitest";
import {
  cut,
  FleetEntryOutput,
  fleetError,
  fleetJson,
  printFleetInfo,
  renderFleetJson,
  renderMerged,
} from "../../src/cli/commands/fleet-read.js";
import type { Reached } from "../../src/engine/fleet.js";
import type { InfoResult } from "../../src/engine/reads.js";
import { type HapopsError, PartialError, SocketError, UsageError } from "../../src/errors.js";
import { parseTableEntry, type TableEntry, type TableInfo } from "../../src/parse/table.js";

const refused = (port: number) =>
  new SocketError(
    "CONNECTION_REFUSED",
    `connection refused at tls://10.0.0.3:${port}: nothing listens there (is HAProxy's \`stats socket\` bound to this address and port?)`,
  );

function ok<T>(name: string, value: T): Reached<T> {
  return { name, ok: true, value };
}

function failed<T>(name: string, error: HapopsError): Reached<T> {
  return { name, ok: false, error };
}

const entry = (line: string): TableEntry => parseTableEntry(line)!;

describe("renderMerged", () => {
  const reached: Reached<string[][]>[] = [
    ok("lb1", [
      ["be_app/app1", "UP"],
      ["be_app/app2", "DOWN"],
    ]),
    failed("lb3", refused(9443)),
    ok("lb-two", []),
  ];

  it("puts TARGET first and says in its row why a target has none, widening no column", () => {
    const out = renderMerged(["SERVER", "STATE"], reached, (v) => v, {
      color: false,
      empty: "no servers",
    });
    expect(out.split("\n")).toEqual([
      "TARGET  SERVER       STATE",
      "lb1     be_app/app1  UP",
      "lb1     be_app/app2  DOWN",
      "lb3     not reached: connection refused at tls://10.0.0.3:9443: nothing listens…",
      "lb-two  no servers",
      "",
    ]);
  });

  it("paints a failure red on a terminal", () => {
    const out = renderMerged(["SERVER", "STATE"], reached, (v) => v, {
      color: true,
      empty: "no servers",
    });
    expect(out).toContain("lb3     \x1b[31mnot reached: ");
  });

  it("cuts a message to one line", () => {
    expect(cut("a\n  b\tc")).toBe("a b c");
    expect(cut("x".repeat(70))).toHaveLength(60);
    expect(cut("abc def", 5)).toBe("abc…");
  });
});

describe("the JSON of a fleet read", () => {
  it("is every row with its target, then every target's status, one element a line", () => {
    const reached: Reached<{ n: number }[]>[] = [
      ok("lb1", [{ n: 1 }, { n: 2 }]),
      failed("lb2", refused(1)),
    ];
    const value = fleetJson("servers", reached, (v) => v);
    expect(value).toEqual({
      servers: [
        { target: "lb1", n: 1 },
        { target: "lb1", n: 2 },
      ],
      targets: [
        { target: "lb1", ok: true },
        {
          target: "lb2",
          ok: false,
          error: { code: "CONNECTION_REFUSED", exitCode: 4, message: refused(1).message },
        },
      ],
    });
    const text = renderFleetJson(value);
    expect(JSON.parse(text)).toEqual(value);
    expect(text.split("\n").slice(0, 5)).toEqual([
      "{",
      '  "servers": [',
      '    {"target":"lb1","n":1},',
      '    {"target":"lb1","n":2}',
      "  ],",
    ]);
    expect(renderFleetJson({ servers: [], targets: [] })).toBe(
      '{\n  "servers": [],\n  "targets": []\n}\n',
    );
  });
});

describe("how a fleet read ends", () => {
  const report = () => ({ servers: [] });

  it("without an error when every target answered", () => {
    expect(fleetError([ok("lb1", 1), ok("lb2", 2)], { json: false, report })).toBeUndefined();
  });

  it("partial (exit 4) when one did not answer, naming it; silent under --json", () => {
    const e = fleetError([ok("lb1", 1), failed("lb2", refused(7)), ok("lb3", 3)], {
      json: false,
      report,
    });
    expect(e).toBeInstanceOf(PartialError);
    expect(e?.exitCode).toBe(4);
    expect(e?.message).toBe(
      `1 of 3 targets did not answer (lb2: ${refused(7).message}); the rows above are from the others`,
    );
    expect((e as PartialError).silent).toBe(false);
    const quiet = fleetError([ok("lb1", 1), failed("lb2", refused(7))], { json: true, report });
    expect((quiet as PartialError).silent).toBe(true);
  });

  it("partial when the failures differ, or when a target failed for another reason", () => {
    const mixed = fleetError(
      [failed("lb1", new UsageError("no backend named x")), failed("lb2", refused(1))],
      { json: false, report },
    );
    expect(mixed?.code).toBe("PARTIAL");
    expect(mixed?.message).toMatch(/^none of the 2 targets answered \(lb1: no backend/);
    const some = fleetError([ok("lb1", 1), failed("lb2", new UsageError("no backend named x"))], {
      json: false,
      report,
    });
    expect(some?.code).toBe("PARTIAL");
  });

  it("as one target would when every target failed alike (bad input everywhere), with the JSON", () => {
    const e = fleetError(
      [
        failed("lb1", new UsageError("no backend named x")),
        failed("lb2", new UsageError("no backend named x")),
      ],
      { json: true, report },
    );
    expect(e).toBeInstanceOf(UsageError);
    expect(e?.exitCode).toBe(2);
    expect(e?.message).toBe("no backend named x (on every target: lb1, lb2)");
    expect((e as { report?: object }).report).toEqual({ servers: [] });
  });

  it("names the one target of a fleet of one", () => {
    const e = fleetError([failed("lb3", refused(2))], { json: false, report });
    expect(e?.message).toBe(`lb3 did not answer: ${refused(2).message}`);
  });
});

describe("info over many targets", () => {
  const info = (version: string, conns: string): InfoResult => ({
    target: "x",
    info: {
      Version: version,
      Uptime: "3d 1h02m03s",
      CurrConns: conns,
      Maxconn: "4000",
      ConnRate: "12",
      CumReq: "99",
      Stopping: "0",
    },
  });

  it("is one row per target with the fields that tell them apart", () => {
    const r = printFleetInfo(
      [ok("lb1", info("2.6.12", "7")), ok("lb2", info("3.2.4", "0")), failed("lb3", refused(3))],
      { json: false, color: false, full: false },
    );
    expect(r.output.split("\n")).toEqual([
      "TARGET  VERSION  UPTIME       CONNECTIONS  CONN RATE  REQUESTS  STOPPING",
      "lb1     2.6.12   3d 1h02m03s  7/4000       12/s       99        no",
      "lb2     3.2.4    3d 1h02m03s  0/4000       12/s       99        no",
      "lb3     not reached: connection refused at tls://10.0.0.3:3: nothing listens the…",
      "",
    ]);
    expect(r.error?.code).toBe("PARTIAL");
  });

  it("prints nothing when no target answered alike, and leaves it to the error", () => {
    const bad = new UsageError("x");
    const r = printFleetInfo([failed("lb1", bad), failed("lb2", new UsageError("x"))], {
      json: true,
      color: false,
      full: false,
    });
    expect(r.output).toBe("");
    expect(r.error).toBe(bad);
  });
});

describe("table show over many targets", () => {
  const info: TableInfo = { name: "be_app", type: "ip", size: 1024, used: 1 };
  const targets = ["lb1", "lb-long-name", "lb3"];

  function output(json: boolean) {
    let text = "";
    const out = new FleetEntryOutput((t) => (text += t), "be_app", targets, {
      json,
      color: false,
    });
    return { out, text: () => text };
  }

  it("streams rows with TARGET first, a failure and an empty answer in their places", () => {
    const { out, text } = output(false);
    out.done(failed("lb1", refused(4)));
    expect(text()).toBe("");
    out.info("lb-long-name", info);
    out.entry("lb-long-name", entry("0x1: key=10.0.0.1 use=0 exp=5000 gpc0=3"));
    out.done(ok("lb-long-name", info));
    out.info("lb3", { ...info, used: 0 });
    out.done(ok("lb3", { ...info, used: 0 }));
    const error = out.end([failed("lb1", refused(4)), ok("lb-long-name", info), ok("lb3", info)]);
    expect(error?.code).toBe("PARTIAL");
    expect(text().split("\n")).toEqual([
      "TARGET        KEY       USE  EXPIRES  GPC0",
      "lb1           not reached: connection refused at tls://10.0.0.3:4: nothing listens the…",
      "lb-long-name  10.0.0.1  0    5s       3",
      "lb3           no entries",
      "lb-long-name: table be_app, type ip, 1 of 1024 entries used",
      "lb3: table be_app, type ip, 0 of 1024 entries used",
      "",
    ]);
    expect(out.count).toBe(1);
  });

  it("writes the JSON shape as it streams: entries, then tables and targets", () => {
    const { out, text } = output(true);
    out.info("lb1", info);
    out.entry("lb1", entry("0x1: key=10.0.0.1 use=0 exp=5000 gpc0=3"));
    out.done(ok("lb1", info));
    out.done(failed("lb-long-name", refused(5)));
    const error = out.end([ok("lb1", info), failed("lb-long-name", refused(5))]);
    expect((error as PartialError).silent).toBe(true);
    const value = JSON.parse(text()) as Record<string, unknown[]>;
    expect(Object.keys(value)).toEqual(["entries", "tables", "targets"]);
    expect(value["entries"]).toEqual([
      {
        target: "lb1",
        table: "be_app",
        key: "10.0.0.1",
        use: 0,
        exp: 5000,
        data: { gpc0: { value: "3" } },
      },
    ]);
    expect(value["tables"]).toEqual([{ target: "lb1", ...info }]);
  });

  it("prints nothing when every target failed alike: the error says it", () => {
    const { out, text } = output(false);
    const e = new UsageError("no stick table named be_app");
    out.done(failed("lb1", e));
    out.done(failed("lb-long-name", new UsageError("no stick table named be_app")));
    out.done(failed("lb3", new UsageError("no stick table named be_app")));
    const error = out.end([
      failed("lb1", e),
      failed("lb-long-name", new UsageError("no stick table named be_app")),
      failed("lb3", new UsageError("no stick table named be_app")),
    ]);
    expect(error).toBe(e);
    expect(text()).toBe("");
  });
});
