import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import { validateTableDataValue, validateTableKey } from "../../src/commands/validate.js";
import {
  decodeKey,
  entryShape,
  INSUFFICIENT_PRIVILEGES,
  newEntryText,
  parseTableEntry,
  parseTableHeader,
  parseTableList,
  readEntryText,
  TableDumpParser,
  type TableEntry,
} from "../../src/parse/table.js";
import { fixtureLines, VERSIONS, type Version } from "./fixtures.js";

function dump(version: Version, name: string): { parser: TableDumpParser; entries: TableEntry[] } {
  const entries: TableEntry[] = [];
  const parser = new TableDumpParser((entry) => entries.push(entry));
  for (const line of fixtureLines(version, name)) parser.line(line);
  return { parser, entries };
}

describe.each(VERSIONS)("show table on %s", (version) => {
  it("lists the tables", () => {
    expect(parseTableList(fixtureLines(version, "show-table.txt"))).toEqual([
      { name: "be_app", type: "ip", size: 1048576, used: 1 },
    ]);
  });

  it("dumps an ip table's header and entries", () => {
    const { parser, entries } = dump(version, "show-table-be_app.txt");
    expect(parser.header).toEqual({ name: "be_app", type: "ip", size: 1048576, used: 1 });
    expect(parser.insufficientPrivileges).toBe(false);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ key: "127.0.0.1", use: 0 });
    expect(entries[0]?.data).toStrictEqual({
      conn_rate: { period: 10000, value: "1" },
      http_req_rate: { period: 10000, value: "1" },
    });
  });
});

describe("show table entry differences between versions", () => {
  it("2.6 has no shard", () => {
    const { entries } = dump("2.6", "show-table-be_app.txt");
    expect(entries[0]).toMatchObject({ id: "0x5651deb66fb8", exp: 599816, shard: undefined });
  });

  it("3.2 adds shard, which is not taken for data", () => {
    const { entries } = dump("3.2", "show-table-be_app.txt");
    expect(entries[0]).toMatchObject({ id: "0x55b191788978", exp: 599801, shard: 0 });
    expect(Object.keys(entries[0]?.data ?? {})).toEqual(["conn_rate", "http_req_rate"]);
  });
});

describe("show table captured on 2.6", () => {
  it("lists tables of every key type", () => {
    expect(parseTableList(fixtureLines("2.6", "captured-show-table.txt"))).toEqual([
      { name: "st_int", type: "integer", size: 1024, used: 1 },
      { name: "st_v6", type: "ipv6", size: 1024, used: 1 },
      { name: "st_str", type: "string", size: 1024, used: 3 },
      { name: "st_ip", type: "ip", size: 1024, used: 2 },
      { name: "st_empty", type: "ip", size: 1024, used: 0 },
    ]);
  });

  it("dumps an empty table as its header alone", () => {
    const { parser, entries } = dump("2.6", "captured-show-table-st_empty.txt");
    expect(parser.header).toEqual({ name: "st_empty", type: "ip", size: 1024, used: 0 });
    expect(entries).toEqual([]);
  });

  it("reads gpc0, server_id and gpt0 without periods", () => {
    const { entries } = dump("2.6", "captured-show-table-st_ip.txt");
    expect(entries.map((e) => e.key)).toEqual(["10.0.0.1", "192.168.1.20"]);
    expect(entries[0]?.data).toStrictEqual({
      server_id: { value: "2" },
      gpt0: { value: "7" },
      gpc0: { value: "3" },
      conn_rate: { period: 10000, value: "0" },
      http_req_rate: { period: 10000, value: "0" },
    });
  });

  it("decodes escaped string keys", () => {
    const { parser, entries } = dump("2.6", "captured-show-table-st_str.txt");
    expect(parser.header?.type).toBe("string");
    expect(entries.map((e) => e.key)).toEqual(["a=b\\c", "has space", "user@example.com"]);
    expect(entries.map((e) => e.data["gpc0"]?.value)).toEqual(["2", "1", "5"]);
  });

  it("reads IPv6 keys", () => {
    const { entries } = dump("2.6", "captured-show-table-st_v6.txt");
    expect(entries[0]).toMatchObject({ key: "2001:db8::1", data: { gpc0: { value: "2" } } });
  });

  it("reads integer keys and array data types, exp 0 in a table without expire", () => {
    const { entries } = dump("2.6", "captured-show-table-st_int.txt");
    expect(entries[0]).toMatchObject({ key: "42", use: 0, exp: 0 });
    expect(entries[0]?.data).toStrictEqual({
      bytes_in_cnt: { value: "10" },
      gpt0: { value: "1" },
      gpt1: { value: "0" },
      gpc0: { value: "2" },
      gpc1: { value: "0" },
      gpc0_rate: { period: 10000, value: "0" },
      gpc1_rate: { period: 10000, value: "0" },
    });
  });

  it("notes that a user-level socket got the header but no entries", () => {
    const { parser, entries } = dump("2.6", "captured-show-table-st_ip-user-level.txt");
    expect(parser.header).toEqual({ name: "st_ip", type: "ip", size: 1024, used: 2 });
    expect(parser.insufficientPrivileges).toBe(true);
    expect(entries).toEqual([]);
    expect(fixtureLines("2.6", "captured-show-table-st_ip-user-level.txt")).toContain(
      INSUFFICIENT_PRIVILEGES,
    );
  });
});

describe("parseTableHeader", () => {
  it("reads names with '.', '-', '_' and ':'", () => {
    expect(parseTableHeader("# table: be.web-01_a:x, type: string, size:10, used:0")).toEqual({
      name: "be.web-01_a:x",
      type: "string",
      size: 10,
      used: 0,
    });
  });

  it("ignores items it does not know", () => {
    expect(parseTableHeader("# table: t, type: ip, size:5, used:1, shards:4")).toEqual({
      name: "t",
      type: "ip",
      size: 5,
      used: 1,
    });
  });

  it("is undefined for other lines", () => {
    expect(parseTableHeader("0x1: key=a use=0 exp=0")).toBeUndefined();
    expect(parseTableHeader("# table: t, type: ip")).toBeUndefined();
    expect(parseTableHeader(INSUFFICIENT_PRIVILEGES)).toBeUndefined();
  });
});

describe("parseTableEntry", () => {
  it("is undefined for lines that are not entries", () => {
    expect(parseTableEntry("# table: t, type: ip, size:5, used:1")).toBeUndefined();
    expect(parseTableEntry("No such table")).toBeUndefined();
    expect(parseTableEntry("0x1: use=0 exp=0")).toBeUndefined();
  });

  it("refuses an entry with a non-numeric use", () => {
    expect(() => parseTableEntry("0x1: key=a use=x exp=0")).toThrow(ProtocolError);
  });

  it("keeps a key containing ': '", () => {
    expect(parseTableEntry("0x1: key=a:\\ b use=1 exp=5 gpc0=1")).toMatchObject({
      id: "0x1",
      key: "a: b",
      use: 1,
      exp: 5,
    });
  });
});

describe("decodeKey", () => {
  it("undoes dump_text escapes", () => {
    expect(decodeKey("caf\\xC3\\xA9")).toBe("café");
    expect(decodeKey("a\\tb\\nc\\rd\\ee")).toBe("a\tb\nc\rd\x1be");
    expect(decodeKey("x\\ y\\=z\\\\")).toBe("x y=z\\");
    expect(decodeKey("plain")).toBe("plain");
  });
});

describe("TableDumpParser", () => {
  it("streams entries in order without keeping them", () => {
    const keys: string[] = [];
    const parser = new TableDumpParser((entry) => keys.push(entry.key));
    parser.line("# table: t, type: string, size:5, used:2");
    parser.line("0x1: key=b use=0 exp=10 gpc0=1");
    parser.line("0x2: key=a use=0 exp=20 gpc0=2");
    expect(keys).toEqual(["b", "a"]);
    expect(parser.header?.used).toBe(2);
    expect(Object.values(parser).some((v) => Array.isArray(v))).toBe(false);
  });

  it("refuses a line that is neither comment nor entry", () => {
    const parser = new TableDumpParser(() => undefined);
    expect(() => parser.line("Unknown command")).toThrow(ProtocolError);
  });
});

describe("'<<' in a string table key", () => {
  it("is refused before anything is built (payload mode on 3.x)", () => {
    expect(() => validateTableKey("be_app", { type: "string" }, "ab<<EOF")).toThrow(
      /'<<', which would put HAProxy's CLI in payload mode/,
    );
  });
});

describe("stick-table data values are range-checked before sending", () => {
  it("refuses a 32-bit counter past 4294967295, names the limit", () => {
    expect(() => validateTableDataValue("gpc0", "99999999999")).toThrow(
      "data.gpc0 value 99999999999 is more than it can hold (4294967295); HAProxy would store it cut short",
    );
    expect(validateTableDataValue("gpc0", "4294967295")).toBe("4294967295");
  });

  it("lets the 64-bit byte counters hold more", () => {
    expect(validateTableDataValue("bytes_in_cnt", "99999999999")).toBe("99999999999");
    expect(() => validateTableDataValue("bytes_out_cnt", "18446744073709551616")).toThrow(
      /more than it can hold/,
    );
  });
});

describe("readEntryText", () => {
  const read = (line: string) => {
    const text = newEntryText();
    if (!readEntryText(line, text)) return undefined;
    const { key, use, exp, count } = text;
    const data = text.names.slice(0, count).map((n, i) => [n.name, n.period, text.values[i]]);
    return { key, use, exp, data };
  };

  it("takes a plain entry line as printed", () => {
    expect(
      read("0x1: key=10.0.0.1 use=0 exp=599816 shard=0 gpc0=1 http_req_rate(10000)=0"),
    ).toEqual({
      key: "10.0.0.1",
      use: "0",
      exp: "599816",
      data: [
        ["gpc0", undefined, "1"],
        ["http_req_rate", 10000, "0"],
      ],
    });
  });

  it("leaves to parseTableEntry what it would read otherwise", () => {
    for (const line of [
      "# table: t, type: ip, size:5, used:1",
      "0x1: key=a\\ b use=0 exp=0",
      '0x1: key=a"b use=0 exp=0',
      "0x1: key=a use=007 exp=0",
      "0x1: key=a use=-1 exp=0",
      "0x1: key=a use=12345678901234567 exp=0",
      "0x1: key=a use=0 use=1 exp=0",
      "0x1: key=a key=b use=0",
      "0x1: key=a gpc0=1 gpc0(10)=2",
      "0x1: key=a __proto__=1",
      "0x1: key=a 5=1",
      "0x1: use=0 exp=0",
      "0x1: key=a shard=x",
    ])
      expect(read(line), line).toBeUndefined();
  });
});

describe("entryShape", () => {
  it("reads lines laid out as the one it was made from, and no other", () => {
    const shape = entryShape("0x1: key=a use=0 exp=5 shard=0 gpc0=1 http_req_rate(10000)=0")!;
    const m = shape.pattern.exec("0x7f: key=b=c use=3 exp=0 shard=1 gpc0= http_req_rate(10000)=9")!;
    expect([m[shape.key], m[shape.use!], m[shape.exp!]]).toEqual(["b=c", "3", "0"]);
    expect(shape.data.map((d) => [d.name.name, d.name.period, m[d.group]])).toEqual([
      ["gpc0", undefined, ""],
      ["http_req_rate", 10000, "9"],
    ]);
    for (const other of [
      "0x1: key=a use=0 exp=5 shard=0 gpc0=1",
      "0x1: key=a\\ b use=0 exp=5 shard=0 gpc0=1 http_req_rate(10000)=0",
      '0x1: key=a use=0 exp=5 shard=0 gpc0="1" http_req_rate(10000)=0',
      "0x1: key=a use=01 exp=5 shard=0 gpc0=1 http_req_rate(10000)=0",
      "0x1: key=a use=0  exp=5 shard=0 gpc0=1 http_req_rate(10000)=0",
      "0x1 x: key=a use=0 exp=5 shard=0 gpc0=1 http_req_rate(10000)=0",
      "#x: key=a use=0 exp=5 shard=0 gpc0=1 http_req_rate(10000)=0",
    ])
      expect(shape.pattern.test(other), other).toBe(false);
  });

  it("is undefined for a line laid out otherwise", () => {
    expect(entryShape("0x1: key=a  use=0")).toBeUndefined();
    expect(entryShape("0x1: key=a use=0 junk")).toBeUndefined();
    expect(entryShape("0x1: key=a\\ b use=0")).toBeUndefined();
  });
});

describe("TableDumpParser with takeLine", () => {
  it("parses only the entry lines takeLine leaves", () => {
    const taken: string[] = [];
    const parsed: string[] = [];
    const parser = new TableDumpParser(
      (e) => parsed.push(e.key),
      (line) => {
        if (!line.includes("key=a")) return false;
        taken.push(line);
        return true;
      },
    );
    parser.line("# table: t, type: string, size:5, used:2");
    parser.line("0x1: key=a use=0 exp=10");
    parser.line("0x2: key=b use=0 exp=20");
    parser.line(INSUFFICIENT_PRIVILEGES);
    expect(taken).toEqual(["0x1: key=a use=0 exp=10"]);
    expect(parsed).toEqual(["b"]);
    expect(parser.header?.name).toBe("t");
    expect(parser.insufficientPrivileges).toBe(true);
  });
});
