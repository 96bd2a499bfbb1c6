import { describe, expect, it } from "vitest";
import { GENESIS, hashLine } from "../../src/audit/record.js";
import { verifyLines, type VerifyResult } from "../../src/audit/verify.js";

/** `n` valid, chained lines: seq 1..n, each `prev` the hash of the line before. */
function chain(n: number): string[] {
  const lines: string[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const prev = seq === 1 ? GENESIS : hashLine(lines[seq - 2]!);
    lines.push(line(seq, prev, `server be_app/app${seq}`));
  }
  return lines;
}

function line(seq: number, prev: string, command: string, operator = "alice"): string {
  return JSON.stringify({ v: 1, seq, operator, op: "drain", commands: [command], prev });
}

/** Move the element at `from` so that it ends up at index `to`. */
function moved(lines: readonly string[], from: number, to: number): string[] {
  const out = [...lines];
  const [x] = out.splice(from, 1);
  out.splice(to, 0, x!);
  return out;
}

function broken(r: VerifyResult): Extract<VerifyResult, { ok: false }> {
  if (r.ok) throw new Error("expected the chain to be broken, but it verified");
  return r;
}

describe("verifyLines: intact logs", () => {
  it("accepts an empty log with 0 records", () => {
    expect(verifyLines([])).toEqual({ ok: true, records: 0 });
  });

  it("accepts a single record that starts from the genesis hash", () => {
    expect(verifyLines(chain(1))).toEqual({ ok: true, records: 1 });
  });

  it("accepts a valid chain and counts its records", () => {
    expect(verifyLines(chain(10))).toEqual({ ok: true, records: 10 });
  });

  it("the helper builds what the design describes: 64-zero genesis, lowercase hex sha256", () => {
    const lines = chain(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ seq: 1, prev: "0".repeat(64) });
    expect((JSON.parse(lines[1]!) as { prev: string }).prev).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("verifyLines: edits", () => {
  it("reports an edited middle line at that line", () => {
    const lines = chain(6);
    lines[2] = lines[2]!.replace("alice", "mallory");
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 3, problem: "edited", records: 6 });
    expect(r.detail).toContain("line 3 was edited");
  });

  it("reports an edit of line 1 at line 1", () => {
    const lines = chain(4);
    lines[0] = lines[0]!.replace("app1", "app9");
    expect(broken(verifyLines(lines))).toMatchObject({ line: 1, problem: "edited" });
  });

  it("reports line 1 whose prev is not the genesis hash as edited", () => {
    const lines = chain(3);
    lines[0] = lines[0]!.replace(GENESIS, "f".repeat(64));
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 1, problem: "edited" });
    expect(r.detail).toContain("start of the chain");
  });

  it("counts one added space as an edit: the chain covers exact bytes", () => {
    const lines = chain(3);
    lines[1] = lines[1]!.replace('{"v":1,', '{"v":1, ');
    expect(JSON.parse(lines[1])).toEqual(JSON.parse(chain(3)[1]!));
    expect(broken(verifyLines(lines))).toMatchObject({ line: 2, problem: "edited" });
  });

  it("names the first edit when several lines were edited", () => {
    const lines = chain(8);
    lines[5] = lines[5]!.replace("alice", "bob");
    lines[2] = lines[2]!.replace("alice", "bob");
    expect(broken(verifyLines(lines))).toMatchObject({ line: 3, problem: "edited" });
  });
});

describe("verifyLines: deletions", () => {
  it("reports a deleted middle line at the line that now follows the gap", () => {
    const lines = chain(6);
    lines.splice(3, 1); // seq 4 gone: line 4 now holds seq 5
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 4, problem: "deleted", records: 5 });
    expect(r.detail).toContain("1 line was deleted before line 4");
    expect(r.detail).toContain("seq 3 is followed by 5");
  });

  it("reports a deleted first line at line 1", () => {
    const lines = chain(4).slice(1);
    expect(broken(verifyLines(lines))).toMatchObject({ line: 1, problem: "deleted" });
  });

  it("reports two adjacent deleted lines as one gap of 2", () => {
    const lines = chain(7);
    lines.splice(2, 2); // seq 3 and 4 gone
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 3, problem: "deleted" });
    expect(r.detail).toContain("2 lines were deleted before line 3");
  });

  it("reports the first of two separate deletions", () => {
    const lines = chain(8);
    lines.splice(5, 1); // seq 6
    lines.splice(1, 1); // seq 2
    expect(broken(verifyLines(lines))).toMatchObject({ line: 2, problem: "deleted" });
  });
});

describe("verifyLines: insertions", () => {
  it("reports a duplicate placed right after its original as inserted", () => {
    const lines = chain(6);
    lines.splice(3, 0, lines[2]!); // line 3 repeated as line 4
    const r = broken(verifyLines(lines));
    expect(r.problem).toBe("inserted");
    // The copies are byte for byte the same, so naming either one names the inserted line.
    expect([3, 4]).toContain(r.line);
  });

  it("names a duplicate inserted far from its original (line 6), not the original (line 2)", () => {
    const lines = chain(8);
    lines.splice(5, 0, lines[1]!);
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 6, problem: "inserted" });
  });

  it("reports a fabricated line with a plausible seq and prev as inserted, naming it", () => {
    const lines = chain(6);
    // A forger who knows the format: next seq, prev chained from the line before.
    const fake = line(4, hashLine(lines[2]!), "set server be_app/app1 state maint", "alice");
    lines.splice(3, 0, fake);
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 4, problem: "inserted", records: 7 });
    expect(r.detail).toContain("line 4 was inserted");
    expect(r.detail).toContain("line 5 (seq 4) chains from line 3");
  });

  it("names a forged line that repeats the previous seq (line 4), not the genuine line 3", () => {
    const lines = chain(6);
    lines.splice(3, 0, line(3, hashLine(lines[1]!), "disable server x/y"));
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 4, problem: "inserted" });
  });

  it("reports a fabricated first line (seq 1, genesis prev) as inserted at line 1", () => {
    const lines = chain(4);
    lines.unshift(line(1, GENESIS, "shutdown sessions server be_app/app1"));
    expect(broken(verifyLines(lines))).toMatchObject({ line: 1, problem: "inserted" });
  });

  it("reports a fabricated line whose prev does not chain as an edit of the line before", () => {
    const lines = chain(5);
    lines.splice(2, 0, line(3, "a".repeat(64), "set weight be_app/app1 0"));
    // Line 3 carries the right seq but a wrong prev. Without looking ahead this reads the same
    // as an edit of line 2, which is what is reported: the operator is pointed at lines 2-3.
    expect(broken(verifyLines(lines))).toMatchObject({ line: 2, problem: "edited" });
  });
});

describe("verifyLines: reordering", () => {
  it("reports two swapped adjacent lines as reordered at the first of them", () => {
    const lines = moved(chain(6), 2, 3); // seq 1 2 4 3 5 6
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 3, problem: "reordered" });
    expect(r.detail).toContain("seq 4 where 3 was due");
  });

  it("reports swapped lines 1 and 2 as reordered at line 1", () => {
    expect(broken(verifyLines(moved(chain(4), 0, 1)))).toMatchObject({
      line: 1,
      problem: "reordered",
    });
  });

  it("reports swapped last two lines as reordered", () => {
    expect(broken(verifyLines(moved(chain(5), 3, 4)))).toMatchObject({
      line: 4,
      problem: "reordered",
    });
  });

  it("reports a line moved far later as reordered where the gap opens", () => {
    const lines = moved(chain(8), 1, 6); // seq 1 3 4 5 6 7 2 8
    expect(broken(verifyLines(lines))).toMatchObject({ line: 2, problem: "reordered" });
  });

  it("reports a line moved far earlier as reordered where it now stands", () => {
    const lines = moved(chain(8), 6, 1); // seq 1 7 2 3 4 5 6 8
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 2, problem: "reordered" });
    expect(r.detail).toContain("seq 7 where 2 was due");
  });

  it("reports the last line moved to the front as reordered at line 1", () => {
    expect(broken(verifyLines(moved(chain(5), 4, 0)))).toMatchObject({
      line: 1,
      problem: "reordered",
    });
  });
});

describe("verifyLines: malformed lines", () => {
  it("reports a line that is not JSON as malformed at that line", () => {
    const lines = chain(5);
    lines[2] = "this is not json";
    const r = broken(verifyLines(lines));
    expect(r).toMatchObject({ line: 3, problem: "malformed", records: 5 });
    expect(r.detail).toContain("line 3");
  });

  it("reports a half-written line (cut mid-record) as malformed", () => {
    const lines = chain(3);
    lines[2] = lines[2]!.slice(0, 30);
    expect(broken(verifyLines(lines))).toMatchObject({ line: 3, problem: "malformed" });
  });

  it("reports an empty line in the middle as malformed", () => {
    const lines = chain(3);
    lines.splice(1, 0, "");
    expect(broken(verifyLines(lines))).toMatchObject({ line: 2, problem: "malformed" });
  });

  it.each([
    ["no seq", JSON.stringify({ prev: GENESIS })],
    ["no prev", JSON.stringify({ seq: 1 })],
    ["seq as a string", JSON.stringify({ seq: "1", prev: GENESIS })],
    ["a JSON array", "[1,2]"],
    ["JSON null", "null"],
  ])("reports JSON that is not a record (%s) as malformed", (_what, text) => {
    expect(broken(verifyLines([text]))).toMatchObject({ line: 1, problem: "malformed" });
  });
});

describe("verifyLines: what the chain alone cannot see (documented limitation)", () => {
  // verify.ts: "the newest lines cut off or edited at the very end (nothing follows to
  // disagree), or the whole file rewritten with a fresh chain. The syslog copy catches those."
  it("does not detect the last lines cut off", () => {
    expect(verifyLines(chain(8).slice(0, 5))).toEqual({ ok: true, records: 5 });
  });

  it("does not detect an edit of the very last line", () => {
    const lines = chain(5);
    lines[4] = lines[4]!.replace("alice", "mallory");
    expect(verifyLines(lines)).toEqual({ ok: true, records: 5 });
  });

  it("does not detect a whole log rewritten with a fresh, consistent chain", () => {
    const forged: string[] = [];
    for (let seq = 1; seq <= 3; seq++)
      forged.push(line(seq, seq === 1 ? GENESIS : hashLine(forged[seq - 2]!), "show info"));
    expect(verifyLines(forged)).toEqual({ ok: true, records: 3 });
  });
});
