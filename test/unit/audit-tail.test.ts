import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/record.js";
import { runAuditTail } from "../../src/audit/read.js";
import { escapeForTerminal, jsonLine, printAuditTail } from "../../src/cli/commands/audit.js";
import type { Settings } from "../../src/config/settings.js";

function record(over: Partial<Record<keyof AuditRecord, unknown>> = {}): AuditRecord {
  return {
    v: 1,
    seq: 1,
    ts: "2025-01-02T03:04:05.678Z",
    opId: "op-1",
    step: 1,
    phase: "result",
    operator: "alice",
    uid: 1001,
    sudo: true,
    loginuid: 1001,
    tty: null,
    host: "lb1",
    pid: 123,
    pidStart: 1,
    target: "unix:/run/haproxy/admin.sock",
    op: "drain",
    args: ["drain", "be_app/app1"],
    reason: "kernel upgrade",
    dryRun: false,
    force: false,
    commands: ["set server be_app/app1 state drain"],
    outcome: "ok",
    error: null,
    prev: "0".repeat(64),
    ...over,
  } as AuditRecord;
}

/** A reason that, printed raw, erases the row above and draws a forged one. */
const FORGED = "ok\x1b[1A\x1b[2K\r2  2025-01-02 03:04:05  bob  ready  result  ok";
/** Every kind of character that must not reach the terminal raw. */
const NASTY = [
  "\x00",
  "\x07",
  "\x1b",
  "\x7f",
  "\x85",
  "\x9b",
  "\u200e",
  "\u202e",
  "\u2066",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ud800",
  "\u{e0041}",
];
const RAW = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

describe("escapeForTerminal", () => {
  it("shows C0, DEL and C1 controls as \\xHH, and \\n \\r \\t as such", () => {
    expect(escapeForTerminal("a\x1b[2Kb\x7f\x85\x9b\x00")).toBe("a\\x1b[2Kb\\x7f\\x85\\x9b\\x00");
    expect(escapeForTerminal("a\nb\rc\td")).toBe("a\\nb\\rc\\td");
  });

  it("shows bidi overrides, separators, format characters and lone surrogates as \\uHHHH", () => {
    expect(escapeForTerminal("evil\u202etxt.exe")).toBe("evil\\u202etxt.exe");
    expect(escapeForTerminal("a\u2028b\u2029c\u2066d\ufeff")).toBe(
      "a\\u2028b\\u2029c\\u2066d\\ufeff",
    );
    expect(escapeForTerminal("x\ud800y")).toBe("x\\ud800y");
    expect(escapeForTerminal("tag\u{e0041}")).toBe("tag\\u{e0041}");
  });

  it("doubles a backslash, so text that looks like an escape is told apart from one", () => {
    expect(escapeForTerminal("\\x1b")).toBe("\\\\x1b");
    expect(escapeForTerminal("\x1b")).toBe("\\x1b");
  });

  it("leaves ordinary text, accents and other scripts alone", () => {
    const text = "drain be_app/app1 — Müller 東京 ok";
    expect(escapeForTerminal(text)).toBe(text);
  });
});

describe("printAuditTail for people", () => {
  it("escapes control characters in every field it prints", () => {
    const out = printAuditTail(
      [
        record({
          reason: FORGED,
          operator: "mal\x1b]0;title\x07lory",
          op: "drain\u202e",
          phase: "result\x9b",
          ts: "2025-01-02T03:04:05\x1b[2J",
          commands: ["set server be_app/app1\u2028state drain"],
        }),
        record({
          seq: 2,
          outcome: "failed",
          error: { code: "X", message: `oops\x1b[31m${NASTY.join("")}` },
        }),
      ],
      { json: false, color: false },
    );
    // Only the table's own newlines are raw.
    expect(out.replace(/\n/g, "")).not.toMatch(RAW);
    expect(out.trimEnd().split("\n")).toHaveLength(3);
    expect(out).toContain("ok\\x1b[1A\\x1b[2K\\r2 2025-01-02 03:04:05 bob");
    expect(out).toContain("mal\\x1b]0;title\\x07lory");
    expect(out).toContain("drain\\u202e");
    expect(out).toContain("result\\x9b");
    expect(out).toContain("set server be_app/app1\\u2028state drain");
    expect(out).toContain("oops\\x1b[31m\\x00\\x07\\x1b\\x7f\\x85\\x9b\\u200e\\u202e");
  });

  it("keeps a padded reason on its own row: spaces collapsed and cut, so no forged row wraps in", () => {
    const forged = `${" ".repeat(150)}4    2026-12-02 07:54:02  bob  maint  result  ok  set server be_app/app1 state maint`;
    const out = printAuditTail([record({ reason: forged })], { json: false, color: false });
    const lines = out.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]!.length).toBeLessThan(260);
    expect(lines[1]).not.toMatch(/ {3}4 {4}2026/);
    expect(lines[1]).toMatch(/…$/);
  });

  it("survives fields of the wrong type in a hand-edited line", () => {
    const out = printAuditTail(
      [record({ operator: 7, reason: { x: "\x1b" }, commands: "nope", ts: 5 })],
      { json: false, color: false },
    );
    // Shown as its JSON text, escaped like any other text.
    expect(out).toContain('{"x":"\\\\u001b"}');
    expect(out).toMatch(/^1 +5 +7 +unix:\/run\/haproxy\/admin.sock +drain/m);
    expect(out.replace(/\n/g, "")).not.toMatch(RAW);
  });
});

describe("printAuditTail --json", () => {
  it("is one JSON record per line, the same records, with no raw C1, separators or bidi", () => {
    const records = [
      record({ reason: NASTY.join(""), args: ["drain", "x\u2028y"] }),
      record({ seq: 2, operator: "bob\u0085" }),
    ];
    const out = printAuditTail(records, { json: true, color: false });
    const lines = out.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(2);
    expect(out.replace(/\n/g, "")).not.toMatch(RAW);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(records);
    expect(out).toContain("\\u2028");
    expect(out).toContain("\\u202e");
    expect(out).toContain("\\u0085");
    expect(out).toContain("\\udb40\\udc41");
  });

  it("jsonLine leaves records with nothing to escape as JSON.stringify writes them", () => {
    const r = record();
    expect(jsonLine(r)).toBe(JSON.stringify(r));
  });
});

describe("runAuditTail", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("keeps a record whole when it holds a raw CR (JSON whitespace) or U+2028: lines end at \\n only", async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-tail-"));
    const path = join(dir, "audit.jsonl");
    const records = [
      record({ reason: "a\u2028b\u2029c\u0085d" }),
      record({ seq: 2, reason: "second" }),
    ];
    // A valid JSON line may hold a raw CR between tokens; a reader that cuts there drops it.
    const lines = records.map((r) => JSON.stringify(r).replace(',"op":', ',\r"op":'));
    writeFileSync(path, lines.map((l) => l + "\n").join(""));
    const settings = { audit: { path } } as Settings;
    expect(await runAuditTail(settings, { n: 10 })).toEqual(records);
    expect(await runAuditTail(settings, { n: 1 })).toEqual([records[1]]);
  });
});
