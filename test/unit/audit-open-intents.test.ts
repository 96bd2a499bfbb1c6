import { describe, expect, it } from "vitest";
import { openIntents } from "../../src/audit/log.js";
import { serialize, type AuditRecord } from "../../src/audit/record.js";

/** A record in the order hapops writes one (AuditLog.appendLocked). */
function rec(seq: number, opId: string, step: number, phase: string, extra = {}): AuditRecord {
  return {
    v: 1,
    seq,
    ts: "2026-12-02T10:00:00.000Z",
    opId,
    ...(seq % 2 ? { run: opId } : {}),
    step,
    phase,
    operator: "alice",
    uid: 1001,
    sudo: false,
    host: "lb1",
    pid: 4242 + seq,
    target: "/run/haproxy/admin.sock",
    op: "drain",
    args: ["drain", "be/s1", '"opId":"fake","step":9,"phase":"intent"'],
    dryRun: false,
    force: false,
    commands: [],
    outcome: phase === "intent" ? null : "ok",
    error: null,
    ...extra,
    prev: "0".repeat(64),
  } as unknown as AuditRecord;
}

/** What the scan did before: parse every line. */
function naive(lines: readonly string[]): AuditRecord[] {
  const open = new Map<string, AuditRecord>();
  for (const line of lines) {
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      continue;
    }
    const key = `${r.opId}#${r.step}`;
    if (r.phase === "intent") open.set(key, r);
    else open.delete(key);
  }
  return [...open.values()];
}

describe("openIntents: the intents an orphan scan finds open", () => {
  it("finds the same intents as parsing every line, over records of every shape", () => {
    const lines: string[] = [];
    let seq = 0;
    for (let i = 0; i < 300; i++) {
      const op = `op-${i}`;
      lines.push(serialize(rec(++seq, op, 1, "intent")));
      if (i % 7 !== 3) lines.push(serialize(rec(++seq, op, 1, "result")));
      if (i % 11 === 0) {
        lines.push(serialize(rec(++seq, op, 2, "intent")));
        if (i % 22 === 0) lines.push(serialize(rec(++seq, op, 2, "outcome-unknown")));
      }
    }
    // Lines not in hapops' own order are parsed: another key order, a torn line, noise.
    lines.push(JSON.stringify({ phase: "intent", opId: "odd", step: 1, seq: ++seq, host: "lb1" }));
    lines.push(JSON.stringify({ phase: "result", opId: "op-3", step: 1, seq: ++seq }));
    lines.push('{"v":1,"seq":99,"ts":"x","opId":"torn","step":1,"phase":"intent","op');
    lines.push("not json at all");
    const got = openIntents(lines);
    expect(got).toEqual(naive(lines));
    expect(got.map((r) => `${r.opId}#${r.step}`)).toContain("odd#1");
    expect(got.map((r) => `${r.opId}#${r.step}`)).not.toContain("op-3#1");
    expect(got.map((r) => `${r.opId}#${r.step}`)).toContain("op-10#1");
    expect(got.length).toBeGreaterThan(40);
  });

  it("a later intent for the same step replaces the earlier one, as before", () => {
    const lines = [
      serialize(rec(1, "a", 1, "intent", { pid: 1 })),
      serialize(rec(2, "a", 1, "intent", { pid: 2 })),
    ];
    expect(openIntents(lines)).toEqual(naive(lines));
    expect(openIntents(lines).map((r) => r.pid)).toEqual([2]);
  });
});
