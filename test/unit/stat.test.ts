import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import { parseStat, StatParser, toStatEntry, type StatEntry } from "../../src/parse/stat.js";
import { fixtureLines, VERSIONS } from "./fixtures.js";

function entries(lines: readonly string[]): Map<string, StatEntry> {
  return new Map(
    parseStat(lines).map((row) => [`${row["pxname"]}/${row["svname"]}`, toStatEntry(row)]),
  );
}

describe.each(VERSIONS)("show stat on %s", (version) => {
  const lines = fixtureLines(version, "show-stat.csv");
  const all = entries(lines);

  it("has one row per proxy and server, keyed by header name", () => {
    expect([...all.keys()]).toEqual([
      "fe/FRONTEND",
      "be_app/app1",
      "be_app/app2",
      "be_app/app3",
      "be_app/BACKEND",
      "be_api/api1",
      "be_api/BACKEND",
    ]);
    const row = all.get("be_app/app1")?.row;
    expect(row?.["pxname"]).toBe("be_app");
    expect(row?.["check_desc"]).toBe("Layer4 connection problem");
    // Empty cells and the unnamed "-" separator column are left out.
    expect(row && "-" in row).toBe(false);
    expect(row && "cookie" in row).toBe(false);
    // The trailing comma of every line names no column.
    expect(row && "" in row).toBe(false);
  });

  it("types the frontend row", () => {
    expect(all.get("fe/FRONTEND")).toMatchObject({
      proxy: "fe",
      name: "FRONTEND",
      kind: "frontend",
      status: "OPEN",
      weight: undefined,
      scur: 0,
      smax: 1,
      rate: 1,
      lastChangeSec: undefined,
      addr: "",
    });
  });

  it("types a server whose check fails", () => {
    expect(all.get("be_app/app1")).toMatchObject({
      kind: "server",
      status: "DOWN",
      scur: 0,
      stot: 0,
      checkStatus: "L4CON",
      checkDesc: "Layer4 connection problem",
      addr: "127.0.0.1:9001",
    });
  });

  it("types a server in maintenance from the config and one without checks", () => {
    expect(all.get("be_app/app3")).toMatchObject({ status: "MAINT", weight: 50, checkStatus: "" });
    expect(all.get("be_api/api1")).toMatchObject({
      status: "no check",
      weight: 1,
      addr: "127.0.0.1:9101",
    });
  });

  it("types backend rows", () => {
    expect(all.get("be_app/BACKEND")).toMatchObject({ kind: "backend", status: "DOWN", smax: 1 });
    expect(all.get("be_api/BACKEND")).toMatchObject({ kind: "backend", status: "UP", weight: 1 });
  });

  it("gives the same rows fed one line at a time", () => {
    const parser = new StatParser();
    for (const line of lines) parser.line(line);
    expect(parser.rows).toEqual(parseStat(lines));
  });
});

describe("show stat differences between versions", () => {
  it("reads 2.6 and 3.2 alike though 3.2 inserts columns before the check and h2 ones", () => {
    const header26 = fixtureLines("2.6", "show-stat.csv")[0]?.split(",") ?? [];
    const header32 = fixtureLines("3.2", "show-stat.csv")[0]?.split(",") ?? [];
    expect(header32.length).toBeGreaterThan(header26.length);
    expect(header32.indexOf("ssl_sess")).not.toBe(header26.indexOf("ssl_sess"));

    const row32 = parseStat(fixtureLines("3.2", "show-stat.csv"))[0];
    expect(row32 && "proto" in row32).toBe(false);
    expect(row32?.["h1sess"]).toBe("1");
    expect(row32?.["ssl_sess"]).toBe("0");
    expect(toStatEntry(row32 ?? {}).stot).toBe(1);
  });

  it("reads weights set at runtime on 2.6 (app1 200 of 100)", () => {
    expect(entries(fixtureLines("2.6", "show-stat.csv")).get("be_app/app1")).toMatchObject({
      weight: 200,
      lastChangeSec: 1474,
    });
  });
});

describe("show stat captured on 2.6 with every admin state", () => {
  const all = entries(fixtureLines("2.6", "captured-show-stat.csv"));

  it("shows drain, maintenance and inherited maintenance", () => {
    expect(all.get("be_app/app1")).toMatchObject({ status: "no check", weight: 50 });
    expect(all.get("be_app/app2")?.status).toBe("DRAIN");
    expect(all.get("be_app/app3")?.status).toBe("MAINT");
    expect(all.get("be_app/app4")?.status).toBe("MAINT");
    // Enabled at runtime after `disabled` in the config: serving, though CMAINT stays set.
    expect(all.get("be_app/app5")?.status).toBe("no check");
    expect(all.get("be_app/t2")?.status).toBe("MAINT (via be_app/t1)");
    expect(all.get("be_app/t2")?.row["tracked"]).toBe("be_app/t1");
    expect(all.get("be_app/t4")?.status).toBe("DRAIN 1/3");
    expect(all.get("be_fqdn/h2")).toMatchObject({ status: "MAINT (resolution)", addr: "" });
  });

  it("prints IPv6 server addresses in brackets", () => {
    expect(all.get("be_app/s6")?.addr).toBe("[::1]:9006");
    expect(all.get("be_app/s7")?.addr).toBe("[2001:db8::7]:80");
    expect(all.get("be_app/noport")?.addr).toBe("127.0.0.1:0");
  });

  it("keeps names with '.', '-', '_' and ':' whole", () => {
    expect(all.get("be.web-01_a:x/srv-1.a_b:c")).toMatchObject({
      proxy: "be.web-01_a:x",
      name: "srv-1.a_b:c",
      kind: "server",
      addr: "127.0.0.1:9101",
    });
  });

  it("lists a backend without servers", () => {
    expect(all.get("be_empty/BACKEND")).toMatchObject({ kind: "backend", weight: 0, scur: 0 });
  });
});

describe("StatParser edge cases", () => {
  const header = "# pxname,svname,scur,status,check_desc,type,";

  it("decodes quoted cells with commas and doubled quotes", () => {
    const rows = parseStat([header, 'be,s1,3,DOWN,"Layer7 wrong status, ""503""",2,']);
    expect(toStatEntry(rows[0] ?? {})).toMatchObject({
      scur: 3,
      checkDesc: 'Layer7 wrong status, "503"',
      kind: "server",
    });
  });

  it("ignores cells beyond the header", () => {
    const rows = parseStat(["# pxname,svname,", "be,s1,extra,more,"]);
    expect(rows[0]).toStrictEqual({ pxname: "be", svname: "s1" });
  });

  it("refuses a row before the header", () => {
    expect(() => parseStat(["be,s1,0,"])).toThrow(ProtocolError);
  });

  it("refuses a counter that is not a number rather than reading it as 0", () => {
    const rows = parseStat([header, "be,s1,many,UP,,2,"]);
    expect(() => toStatEntry(rows[0] ?? {})).toThrow(ProtocolError);
  });

  it("tells aggregate rows apart by svname when the type column is missing", () => {
    const rows = parseStat(["# pxname,svname,", "fe,FRONTEND,", "be,BACKEND,", "be,s1,"]);
    expect(rows.map((r) => toStatEntry(r).kind)).toEqual(["frontend", "backend", "server"]);
  });

  it("reads type 3 as a listener", () => {
    const rows = parseStat([header, "fe,sock-1,0,OPEN,,3,"]);
    expect(toStatEntry(rows[0] ?? {}).kind).toBe("listener");
  });
});

describe("check status", () => {
  it('drops the "* " HAProxy puts before the status while a check is running', () => {
    const header = "# pxname,svname,status,check_status,type,";
    const [row] = parseStat([header, "be,s1,UP,* L7OK,2,"]);
    expect(toStatEntry(row!).checkStatus).toBe("L7OK");
  });
});
