import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import {
  parseStat,
  StatEntryParser,
  StatParser,
  statRowJson,
  toStatEntry,
  writeStatRowJson,
  type StatEntry,
} from "../../src/parse/stat.js";
import { fixtureLines, toLines, VERSIONS } from "./fixtures.js";

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

/** Every captured `show stat` answer, of every version. */
function capturedStatAnswers(): [string, string[]][] {
  const root = join(import.meta.dirname, "..", "fixtures");
  return readdirSync(root)
    .filter((dir) => dir.startsWith("haproxy-"))
    .flatMap((dir) =>
      readdirSync(join(root, dir))
        .filter((file) => file.endsWith(".csv"))
        .map((file): [string, string[]] => [
          `${dir}/${file}`,
          toLines(readFileSync(join(root, dir, file), "utf8")),
        ]),
    );
}

function lineEntries(lines: readonly string[]): StatEntry[] {
  const entries: StatEntry[] = [];
  const parser = new StatEntryParser((e) => entries.push(e));
  for (const line of lines) parser.line(line);
  return entries;
}

/** What StatParser and toStatEntry give, and the JSON of each row. */
function expected(lines: readonly string[]) {
  return parseStat(lines).map((row) => ({ entry: toStatEntry(row), json: JSON.stringify(row) }));
}

describe("StatEntryParser", () => {
  it.each(capturedStatAnswers())("gives the entries of StatParser on %s", (_, lines) => {
    const want = expected(lines);
    const got = lineEntries(lines);
    expect(got.map((e) => statRowJson(e))).toEqual(want.map((w) => w.json));
    expect(got.map((e) => ({ ...e, row: e.row }))).toEqual(want.map((w) => w.entry));
  });

  const header = "# pxname,svname,scur,status,check_desc,type,addr,-,";

  it("reads quoted cells, escapes and other than ASCII as StatParser does", () => {
    const lines = [
      header,
      'be,s1,1,UP,"Layer7 wrong status, code: 503",2,127.0.0.1:80,,',
      'be,s2,0,DOWN,"he said ""no""",2,,,',
      "be,s3,0,MAINT,tab\there back\\slash,2,,,",
      "be,s4,0,UP,café ☕ 😀 \ud800,2,,,",
      'be,s5,0,UP,"never closed,2,,,',
      "be,s6,0,UP",
      "be,s7,0,UP,x,2,a,b,c,d,e",
      ",,,,,,,,",
    ];
    const want = expected(lines);
    const got = lineEntries(lines);
    expect(got.map((e) => statRowJson(e))).toEqual(want.map((w) => w.json));
    expect(got.map((e) => ({ ...e, row: e.row }))).toEqual(want.map((w) => w.entry));
    expect(got[0]?.checkDesc).toBe("Layer7 wrong status, code: 503");
  });

  it("keeps the columns' places of a header with a duplicate, an index or __proto__", () => {
    for (const odd of ["scur", "0", "__proto__"]) {
      const lines = [`# pxname,svname,scur,${odd},status,`, "be,s1,1,2,UP,"];
      expect(lineEntries(lines).map((e) => statRowJson(e))).toEqual(
        expected(lines).map((w) => w.json),
      );
    }
  });

  it("writes a row that was asked for and changed as it now is", () => {
    const [entry] = lineEntries([header, "be,s1,1,UP,ok,2,,,"]);
    entry!.row["added"] = "x";
    expect(statRowJson(entry!)).toBe(
      JSON.stringify({ ...parseStat([header, "be,s1,1,UP,ok,2,,,"])[0], added: "x" }),
    );
  });

  it("refuses what StatParser refuses", () => {
    expect(() => lineEntries(["be,s1,1,UP,"])).toThrow(ProtocolError);
    expect(() => lineEntries([header, "be,s1,x,UP,,2,,,"])).toThrow(
      /show stat column scur is not a number: x/,
    );
  });

  it("reads numbers as Number does, '007' and '-0' too", () => {
    const [a, b, c] = lineEntries([
      header,
      "be,s1,007,UP,,2,,,",
      "be,s2,-0,UP,,2,,,",
      "be,s3,-4,UP,,2,,,",
    ]);
    expect([a?.scur, b?.scur, c?.scur]).toEqual([7, -0, -4]);
  });
});

describe("writeStatRowJson", () => {
  it("writes the bytes of statRowJson for a plain ASCII line, and refuses others", () => {
    const lines = [
      "# pxname,svname,scur,status,check_desc,type,",
      "be,s1,1,UP,Layer4 check passed,2,",
      "be,s2,0,UP,café,2,",
    ];
    const [plain, other] = lineEntries(lines);
    const buf = Buffer.alloc(4096);
    const end = writeStatRowJson(plain!, buf, 3);
    expect(buf.toString("latin1", 3, end)).toBe(statRowJson(plain!));
    expect(writeStatRowJson(other!, buf, 0)).toBe(-2);
    expect(writeStatRowJson(plain!, Buffer.alloc(10), 0)).toBe(-1);
    expect(writeStatRowJson(toStatEntry(parseStat(lines)[0]!), buf, 0)).toBe(-2);
  });
});
