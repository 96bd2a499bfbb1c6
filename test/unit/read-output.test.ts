import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { statJson, statJsonText, StatJsonWriter } from "../../src/cli/commands/stat.js";
import { EntryJsonLines } from "../../src/cli/commands/table.js";
import {
  CHUNK,
  ChunkedOutput,
  jsonNumber,
  jsonString,
  JsonArrayWriter,
} from "../../src/cli/output.js";
import { entryJson } from "../../src/ops/table.js";
import { StatEntryParser, type StatEntry } from "../../src/parse/stat.js";
import { parseTableEntry } from "../../src/parse/table.js";
import { toLines } from "./fixtures.js";

// The --json writers of stat and table show build their text by hand for speed; what they
// write must stay byte for byte what JSON.stringify of the documented objects gives.

function captured(suffix: string, named = ""): string[][] {
  const root = join(import.meta.dirname, "..", "fixtures");
  return readdirSync(root)
    .filter((dir) => dir.startsWith("haproxy-"))
    .flatMap((dir) =>
      readdirSync(join(root, dir))
        .filter((file) => file.endsWith(suffix) && file.includes(named))
        .map((file) => toLines(readFileSync(join(root, dir, file), "utf8"))),
    );
}

const STAT_EDGES = [
  "# pxname,svname,scur,status,weight,check_status,check_desc,lastchg,type,addr,-,",
  'be,s1,1,UP,10,* L7OK,"Layer7 wrong status, code: 503",5,2,127.0.0.1:80,,',
  'be,s2,0,DOWN,,L4CON,"he said ""no""",,2,[::1]:80,,',
  "be,s3,0,MAINT,1,,tab\there back\\slash,1,2,,,",
  "be,s4,0,UP,1,,café ☕ 😀 \ud800,1,2,,,",
  "be,FRONTEND,0,OPEN,,,,,0,,,",
  "be,s6,99999999999999999999,UP",
  ",,,,,,,,,,,",
];

function statEntries(lines: readonly string[]): StatEntry[] {
  const entries: StatEntry[] = [];
  const parser = new StatEntryParser((e) => entries.push(e));
  for (const line of lines) parser.line(line);
  return entries;
}

/** What `stat --json` printed before: JsonArrayWriter of statJson. */
function statArray(entries: readonly StatEntry[]): string {
  let out = "";
  const writer = new JsonArrayWriter((t) => (out += t));
  for (const e of entries) writer.push(statJson(e));
  writer.end();
  return out;
}

describe("stat --json", () => {
  const answers = [...captured(".csv"), STAT_EDGES];

  it("statJsonText is JSON.stringify(statJson(e))", () => {
    for (const lines of answers)
      for (const e of statEntries(lines)) expect(statJsonText(e)).toBe(JSON.stringify(statJson(e)));
  });

  it("StatJsonWriter writes what JsonArrayWriter wrote", () => {
    for (const lines of answers) {
      let out = "";
      const writer = new StatJsonWriter((t) => (out += t));
      for (const e of statEntries(lines)) writer.push(e);
      writer.end();
      expect(out).toBe(statArray(statEntries(lines)));
    }
    let empty = "";
    const writer = new StatJsonWriter((t) => (empty += t));
    writer.end();
    expect(empty).toBe("[]\n");
  });

  it("StatJsonWriter writes in chunks of at least CHUNK characters", () => {
    const lines = [STAT_EDGES[0]!];
    for (let i = 0; i < 2000; i++)
      lines.push(`be,s${i},${i},UP,1,L4OK,Layer4 check passed,3,2,10.0.0.1:80,,`);
    const chunks: string[] = [];
    const writer = new StatJsonWriter((t) => chunks.push(t));
    for (const e of statEntries(lines)) writer.push(e);
    writer.end();
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.slice(0, -1).every((c) => c.length >= CHUNK)).toBe(true);
    expect(chunks.join("")).toBe(statArray(statEntries(lines)));
  });
});

const TABLE_EDGES = [
  "0x1: key=10.0.0.1 use=0 exp=599816 gpc0=1 http_req_rate(10000)=0",
  "0x2: key=10.0.0.2 use=3 exp=0 gpc0= http_req_rate(10000)=a=b",
  "0x3: key=caf\\xC3\\xA9\\ au\\ lait use=0 exp=10 gpc0=1 http_req_rate(10000)=0",
  '0x4: key=say"hi" use=0 exp=10 gpc0=1 http_req_rate(10000)=0',
  "0x5: key=k use=007 exp=-0 gpc0=1 http_req_rate(10000)=0",
  "0x6: key=k use=0 exp=12345678901234567890 gpc0=1",
  "0x7: key=k use=0 gpc0=1 gpc0=2 __proto__=3 5=4 toString=5",
  "0x8: key=k",
  "0x9: key=k use=1 exp=2 shard=0 conn_rate(10000)=1 http_req_rate(10000)=1",
  "0xa: key=\\x01\\e use=0 exp=1 gpc0=é",
  "0xb: key=k use=0 exp=1 gpc0=1 http_req_rate(10000)=0",
];

describe("table show --json", () => {
  const lines = [
    ...captured(".txt", "table")
      .flat()
      .filter((l) => /^0x[0-9a-f]+: /.test(l)),
    ...TABLE_EDGES,
  ];

  it("writes JSON.stringify(entryJson(table, e)) per line, from the entry or from its line", () => {
    for (const table of ["be_app", 'odd"name']) {
      const json = new EntryJsonLines(table);
      for (const line of [...lines, ...lines]) {
        const entry = parseTableEntry(line);
        if (entry === undefined) continue;
        const want = `${JSON.stringify(entryJson(table, entry))}\n`;
        expect(json.line(entry), line).toBe(want);
        const fromLine = json.fromLine(line);
        if (fromLine !== undefined) expect(fromLine, line).toBe(want);
      }
    }
  });

  it("reads plain lines from their text, and leaves the others to be parsed", () => {
    const json = new EntryJsonLines("t");
    expect(json.fromLine(TABLE_EDGES[0]!)).toBeDefined();
    expect(json.fromLine(TABLE_EDGES[10]!)).toBeDefined();
    for (const i of [2, 3, 4, 5, 6, 9])
      expect(json.fromLine(TABLE_EDGES[i]!), TABLE_EDGES[i]).toBeUndefined();
    expect(json.fromLine("# table: t, type: ip, size:5, used:1")).toBeUndefined();
    expect(json.fromLine("0x1: use=0")).toBeUndefined();
  });
});

describe("ChunkedOutput", () => {
  it("writes what one read gave once that read is handled, without waiting for more", async () => {
    const chunks: string[] = [];
    const out = new ChunkedOutput((t) => chunks.push(t));
    out.write("a\n");
    out.write("b\n");
    expect(chunks).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(chunks).toEqual(["a\nb\n"]);
  });

  it("writes CHUNK characters or more at a time, in order, and the rest on flush", () => {
    const chunks: string[] = [];
    const out = new ChunkedOutput((t) => chunks.push(t));
    const line = `${"x".repeat(99)}\n`;
    for (let i = 0; i < 2000; i++) out.write(line);
    expect(chunks.every((c) => c.length >= CHUNK)).toBe(true);
    out.flush();
    out.flush();
    expect(chunks.join("")).toBe(line.repeat(2000));
    expect(chunks.at(-1)!.length).toBeLessThan(CHUNK);
  });
});

describe("jsonString and jsonNumber", () => {
  it("are JSON.stringify", () => {
    for (const s of [
      "",
      "10.0.0.1",
      'a"b',
      "a\\b",
      "\u0000\u001f",
      "\u007f",
      "é",
      "😀",
      "\ud800",
      "\udfff x",
    ])
      expect(jsonString(s)).toBe(JSON.stringify(s));
    for (const n of [0, -0, 7, -3, 1.5, 1e21, 2 ** 53 + 2, NaN, Infinity, -Infinity])
      expect(jsonNumber(n)).toBe(JSON.stringify(n));
  });
});
