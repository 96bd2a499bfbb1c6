import { GENESIS, hashLine } from "./record.js";

export type Problem = "edited" | "inserted" | "deleted" | "reordered" | "malformed";

export type VerifyResult =
  | { readonly ok: true; readonly records: number }
  | {
      readonly ok: false;
      readonly records: number;
      /** 1-based number of the first line that breaks the chain. */
      readonly line: number;
      readonly problem: Problem;
      readonly detail: string;
    };

interface Parsed {
  readonly seq: number;
  readonly prev: string;
}

function parse(line: string): Parsed | undefined {
  try {
    const r = JSON.parse(line) as { seq?: unknown; prev?: unknown };
    if (typeof r.seq !== "number" || typeof r.prev !== "string") return undefined;
    return { seq: r.seq, prev: r.prev };
  } catch {
    return undefined;
  }
}

/**
 * Check the hash chain and the sequence numbers, and name the first broken line and why. The
 * chain says *that* something changed; `seq` (1, 2, 3, ...) says *what*: a gap is a deletion, a
 * repeat an insertion, a seq out of order a move, and a right seq with a wrong hash an edit.
 * What this cannot see: the newest lines cut off or edited at the very end (nothing follows to
 * disagree), or the whole file rewritten with a fresh chain. The syslog copy catches those.
 */
export function verifyLines(lines: readonly string[]): VerifyResult {
  const hashes = lines.map(hashLine);
  const lineOfSeq = new Map<number, number>();
  const broken = (line: number, problem: Problem, detail: string): VerifyResult => ({
    ok: false,
    records: lines.length,
    line,
    problem,
    detail,
  });
  let prevSeq = 0;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const rec = parse(lines[i]!);
    if (!rec)
      return broken(n, "malformed", `line ${n} is not an audit record (not JSON, or no seq/prev)`);
    const expectedPrev = i === 0 ? GENESIS : hashes[i - 1]!;
    if (rec.seq === prevSeq + 1 && rec.prev === expectedPrev) {
      lineOfSeq.set(rec.seq, i);
      prevSeq = rec.seq;
      continue;
    }
    const j = lineOfSeq.get(rec.seq);
    if (j !== undefined) {
      // The next line chains past this one: this line is the one slipped in.
      const next = i + 1 < lines.length ? parse(lines[i + 1]!) : undefined;
      if (next && next.seq === prevSeq + 1 && next.prev === expectedPrev)
        return broken(
          n,
          "inserted",
          `line ${n} was inserted: it repeats seq ${rec.seq} (line ${j + 1}), and line ${n + 1} chains from line ${i}`,
        );
      // This line chains from the line before j: the lines from j to i-1 were slipped in.
      if (rec.prev === (j === 0 ? GENESIS : hashes[j - 1]))
        return broken(
          j + 1,
          "inserted",
          `line ${j + 1} was inserted: line ${n} (seq ${rec.seq}) chains from line ${j}, not from line ${i}`,
        );
      return broken(
        n,
        "reordered",
        `line ${n} has seq ${rec.seq}, already used by line ${j + 1}: lines were moved`,
      );
    }
    if (rec.seq > prevSeq + 1) {
      const due = prevSeq + 1;
      const comesLater = lines.slice(i + 1).some((l) => parse(l)?.seq === due);
      if (comesLater)
        return broken(
          n,
          "reordered",
          `line ${n} has seq ${rec.seq} where ${due} was due, and ${due} comes later: lines were moved`,
        );
      const missing = rec.seq - due;
      return broken(
        n,
        "deleted",
        `${missing} line${missing === 1 ? " was" : "s were"} deleted before line ${n} (seq ${prevSeq} is followed by ${rec.seq})`,
      );
    }
    if (rec.seq <= prevSeq)
      return broken(
        n,
        "reordered",
        `line ${n} has seq ${rec.seq} after seq ${prevSeq}: lines were moved`,
      );
    // The seq is right but the hash is not: the bytes of the line before changed (or, less
    // likely, this line's prev did). Name the line whose content changed.
    if (i === 0)
      return broken(1, "edited", "line 1 was edited: its prev is not the start of the chain");
    return broken(i, "edited", `line ${i} was edited: its hash no longer matches line ${n}'s prev`);
  }
  return { ok: true, records: lines.length };
}
