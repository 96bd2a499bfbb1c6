import { spawnSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Identity } from "../../src/audit/identity.js";
import { Journal } from "../../src/audit/journal.js";
import {
  AuditLog,
  processStart,
  RESERVE_FACTOR,
  RESERVE_MIN,
  type RecordInput,
} from "../../src/audit/log.js";
import { GENESIS, hashLine, type AuditRecord } from "../../src/audit/record.js";
import { verifyLines } from "../../src/audit/verify.js";
import { AuditError, ExitCode } from "../../src/errors.js";

let dir: string;
let logPath: string;
const opened: AuditLog[] = [];
const mounts: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hapops-audit-"));
  logPath = join(dir, "audit.jsonl");
});

afterEach(() => {
  for (const m of mounts.splice(0)) spawnSync("umount", ["-l", m]);
  for (const log of opened.splice(0)) {
    try {
      log.close();
    } catch {
      // already closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function open(opts: Partial<Parameters<typeof AuditLog.open>[0]> = {}): AuditLog {
  const log = AuditLog.open({ path: logPath, ...opts });
  opened.push(log);
  return log;
}

function input(over: Partial<RecordInput> = {}): RecordInput {
  return {
    opId: "op-1",
    step: 1,
    phase: "intent",
    operator: "alice",
    uid: 1001,
    sudo: false,
    loginuid: 1001,
    tty: "/dev/pts/1",
    host: hostname(),
    pid: process.pid,
    pidStart: processStart("self") ?? null,
    target: "unix:/run/haproxy/admin.sock",
    op: "drain",
    args: ["be_app/app1"],
    reason: "kernel upgrade",
    dryRun: false,
    force: false,
    commands: ["set server be_app/app1 state drain"],
    outcome: null,
    error: null,
    ...over,
  };
}

/** The lines of the log file, the way `hapops audit verify` reads them. */
function fileLines(path = logPath): string[] {
  const text = readFileSync(path, "utf8");
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  return body.length === 0 ? [] : body.split("\n");
}

function records(): AuditRecord[] {
  return fileLines().map((l) => JSON.parse(l) as AuditRecord);
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** A pid with no process behind it (999999 unless the machine allows and uses such pids). */
function deadPid(): number {
  let pid = 999_999;
  while (existsSync(`/proc/${pid}`)) pid++;
  return pid;
}

function auditError(fn: () => unknown): AuditError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AuditError);
    return e as AuditError;
  }
  throw new Error("expected AuditError to be thrown");
}

describe("AuditLog.open", () => {
  it("creates the log file with mode 0600", () => {
    open();
    expect(existsSync(logPath)).toBe(true);
    expect(mode(logPath)).toBe(0o600);
    expect(readFileSync(logPath, "utf8")).toBe("");
  });

  it("tightens an existing world-readable log to 0600 and keeps its content", () => {
    writeFileSync(logPath, '{"seq":1}\n');
    chmodSync(logPath, 0o644);
    open();
    expect(mode(logPath)).toBe(0o600);
    expect(readFileSync(logPath, "utf8")).toBe('{"seq":1}\n');
  });

  it("with a group, makes the log 0640 and owned by that group", () => {
    const gid = process.getgid!();
    open({ group: { name: "hapops-readers", gid } });
    expect(mode(logPath)).toBe(0o640);
    expect(statSync(logPath).gid).toBe(gid);
  });

  it("refuses a missing directory with an AuditError (exit 5) that says so", () => {
    logPath = join(dir, "missing", "audit.jsonl");
    const e = auditError(() => open());
    expect(e.exitCode).toBe(ExitCode.audit);
    expect(e.exitCode).toBe(5);
    expect(e.code).toBe("AUDIT_UNAVAILABLE");
    expect(e.message).toContain(logPath);
    expect(e.message).toContain("the directory does not exist");
    expect(e.message).toContain("nothing was sent");
    expect(existsSync(join(dir, "missing"))).toBe(false);
  });

  it("with createDir, creates the missing directories (0700) and the log", () => {
    const sub = join(dir, "state", "hapops");
    logPath = join(sub, "audit.jsonl");
    open({ createDir: true });
    expect(statSync(sub).isDirectory()).toBe(true);
    expect(mode(sub)).toBe(0o700);
    expect(mode(logPath)).toBe(0o600);
  });

  it("refuses a log path that is a symbolic link and leaves its target alone", () => {
    const target = join(dir, "elsewhere");
    writeFileSync(target, "precious\n");
    chmodSync(target, 0o644);
    symlinkSync(target, logPath);
    const e = auditError(() => open());
    expect(e.exitCode).toBe(5);
    expect(e.message).toContain("symbolic link");
    expect(readFileSync(target, "utf8")).toBe("precious\n");
    expect(mode(target)).toBe(0o644);
  });

  it("refuses a dangling symbolic link without creating its target", () => {
    const target = join(dir, "created-by-follow");
    symlinkSync(target, logPath);
    auditError(() => open());
    expect(existsSync(target)).toBe(false);
  });

  it("refuses a log path that is a directory", () => {
    mkdirSync(logPath);
    expect(auditError(() => open()).message).toContain("it is a directory");
  });

  it("refuses a directory that is a file", () => {
    writeFileSync(join(dir, "file"), "");
    logPath = join(dir, "file", "audit.jsonl");
    expect(auditError(() => open()).exitCode).toBe(5);
  });
});

describe("AuditLog.append", () => {
  it("writes records with v 1, seq from 1, a timestamp and a chained prev", async () => {
    const log = open();
    const before = Date.now();
    const written = await log.append([
      input({ phase: "intent" }),
      input({ phase: "result", outcome: "ok" }),
      input({ opId: "op-2", phase: "intent", commands: ["set weight be_app/app1 0"] }),
    ]);
    const onDisk = records();
    expect(onDisk).toEqual(written);
    expect(onDisk.map((r) => [r.v, r.seq])).toEqual([
      [1, 1],
      [1, 2],
      [1, 3],
    ]);
    for (const r of onDisk) {
      expect(r.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(r.ts)).toBeGreaterThanOrEqual(before - 1000);
    }
    const lines = fileLines();
    expect(onDisk[0]!.prev).toBe(GENESIS);
    expect(onDisk[1]!.prev).toBe(hashLine(lines[0]!));
    expect(onDisk[2]!.prev).toBe(hashLine(lines[1]!));
    expect(verifyLines(lines)).toEqual({ ok: true, records: 3 });
  });

  it("keeps the caller's fields as given", async () => {
    const log = open();
    const given = input({ sudo: true, reason: null, tty: null, force: true, dryRun: true });
    const [r] = await log.append([given]);
    expect(r).toMatchObject(given);
    expect(records()[0]).toMatchObject(given);
  });

  it("writes one line per record, each ending in a newline", async () => {
    await open().append([input(), input({ phase: "result", outcome: "ok" })]);
    const text = readFileSync(logPath, "utf8");
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.split("\n")).toHaveLength(3);
  });

  it("continues the chain across appends and across opens", async () => {
    await open().append([input()]);
    await open().append([input({ phase: "result", outcome: "ok" })]);
    const again = open();
    await again.append([input({ opId: "op-2" })]);
    expect(records().map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(verifyLines(fileLines())).toEqual({ ok: true, records: 3 });
  });

  it("an append of nothing writes nothing", async () => {
    expect(await open().append([])).toEqual([]);
    expect(readFileSync(logPath, "utf8")).toBe("");
  });

  it("20 concurrent appends from 20 separate logs leave 20 lines and a valid chain", async () => {
    const logs = Array.from({ length: 20 }, () => open());
    await Promise.all(logs.map((log, i) => log.append([input({ opId: `op-${i}` })])));
    const lines = fileLines();
    expect(lines).toHaveLength(20);
    expect(verifyLines(lines)).toEqual({ ok: true, records: 20 });
    expect(new Set(records().map((r) => r.opId)).size).toBe(20);
    expect(existsSync(`${logPath}.lock`)).toBe(false);
  });

  it("concurrent multi-record appends are not interleaved", async () => {
    const logs = Array.from({ length: 5 }, () => open());
    await Promise.all(
      logs.map((log, i) =>
        log.append([
          input({ opId: `op-${i}`, phase: "intent" }),
          input({ opId: `op-${i}`, phase: "result", outcome: "ok" }),
        ]),
      ),
    );
    const rs = records();
    expect(verifyLines(fileLines())).toEqual({ ok: true, records: 10 });
    for (let i = 0; i < rs.length; i += 2) {
      expect(rs[i + 1]!.opId).toBe(rs[i]!.opId);
      expect([rs[i]!.phase, rs[i + 1]!.phase]).toEqual(["intent", "result"]);
    }
  });

  it("refuses to append after a last line that is not JSON, and writes nothing", async () => {
    const log = open();
    await log.append([input()]);
    writeFileSync(logPath, readFileSync(logPath, "utf8") + "garbage\n");
    const before = readFileSync(logPath, "utf8");
    const err = await log.append([input({ opId: "op-2" })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditError);
    expect((err as AuditError).exitCode).toBe(5);
    expect((err as AuditError).message).toContain("last line is not a complete record");
    expect(readFileSync(logPath, "utf8")).toBe(before);
    expect(existsSync(`${logPath}.lock`)).toBe(false);
  });

  it("refuses to append after a half-written last line", async () => {
    writeFileSync(logPath, '{"v":1,"seq":1,"op":"dr');
    const log = open();
    await expect(log.append([input()])).rejects.toBeInstanceOf(AuditError);
    expect(readFileSync(logPath, "utf8")).toBe('{"v":1,"seq":1,"op":"dr');
  });

  it.each(["{}", '"x"', '{"seq":"7"}'])(
    "refuses to append after a last line that is JSON but has no numeric seq (%s)",
    async (last) => {
      writeFileSync(logPath, `${last}\n`);
      const err = await open()
        .append([input()])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditError);
      expect(readFileSync(logPath, "utf8")).toBe(`${last}\n`);
    },
  );

  it("refuses when the last record has no final newline, instead of gluing a record to it", async () => {
    await open().append([input()]);
    const whole = readFileSync(logPath, "utf8");
    writeFileSync(logPath, whole.replace(/\n$/, ""));
    const err = await open()
      .append([input({ opId: "op-2" })])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditError);
    expect((err as AuditError).message).toContain("no final newline");
    expect(readFileSync(logPath, "utf8")).toBe(whole.replace(/\n$/, ""));
  });
});

describe("AuditLog.closeOrphans", () => {
  /** The run that finds the orphans: it is named in closedBy, never as the run that died. */
  const base = (): Parameters<AuditLog["closeOrphans"]>[0] => ({
    host: hostname(),
    operator: "root",
    uid: 0,
    sudo: false,
    pid: process.pid,
    opId: "op-closer",
  });

  it("closes an intent whose process is gone with an outcome-unknown record", async () => {
    const log = open();
    const pid = deadPid();
    const [intent] = await log.append([
      input({ opId: "op-dead", step: 2, pid, pidStart: null, commands: ["disable server b/s"] }),
    ]);
    const closed = await log.closeOrphans(base());
    expect(closed).toHaveLength(1);
    const r = closed[0]!;
    expect(r).toMatchObject({
      phase: "outcome-unknown",
      outcome: "unknown",
      intentSeq: intent!.seq,
      opId: "op-dead",
      step: 2,
      commands: ["disable server b/s"],
      seq: 2,
    });
    expect(r.error?.code).toBe("OUTCOME_UNKNOWN");
    expect(r.error?.message).toContain(`run ${pid} by alice`);
    expect(r.error?.message).toContain(`seq ${intent!.seq}`);
    expect(r.error?.message).toContain(`closed by root (run ${process.pid})`);
    expect(records()).toEqual([intent, r]);
    expect(verifyLines(fileLines())).toEqual({ ok: true, records: 2 });
  });

  it("names the run that died (from its intent), and the run that closed it apart", async () => {
    const log = open();
    const pid = deadPid();
    const [intent] = await log.append([
      input({
        opId: "op-dead",
        pid,
        pidStart: 42,
        operator: "alice",
        uid: 1001,
        sudo: true,
        loginuid: 1001,
        tty: "/dev/pts/7",
        op: "maint",
        args: ["maint", "be_app/*", "--reason", "disk swap"],
        reason: "disk swap",
        force: true,
        target: "unix:/run/haproxy/admin.sock",
        detail: { note: "kept" },
      }),
    ]);
    const [r] = await log.closeOrphans(base());
    const { v, seq, ts, prev, phase, outcome, error, ...fromIntent } = intent!;
    void [v, seq, ts, prev, phase, outcome, error];
    expect(r).toMatchObject(fromIntent);
    expect(r).toMatchObject({
      operator: "alice",
      uid: 1001,
      sudo: true,
      pid,
      opId: "op-dead",
      op: "maint",
      args: ["maint", "be_app/*", "--reason", "disk swap"],
      closedBy: { operator: "root", uid: 0, sudo: false, pid: process.pid, opId: "op-closer" },
    });
    expect(verifyLines(fileLines())).toEqual({ ok: true, records: 2 });
  });

  it("closes an orphan only once", async () => {
    const log = open();
    await log.append([input({ pid: deadPid(), pidStart: null })]);
    expect(await log.closeOrphans(base())).toHaveLength(1);
    expect(await log.closeOrphans(base())).toEqual([]);
    expect(fileLines()).toHaveLength(2);
  });

  it("does not close an intent whose process is still running", async () => {
    const log = open();
    const start = processStart("self");
    expect(start).toBeDefined();
    await log.append([input({ pid: process.pid, pidStart: start ?? null })]);
    expect(await log.closeOrphans(base())).toEqual([]);
    expect(fileLines()).toHaveLength(1);
  });

  it("closes an intent whose pid was reused by another process (start time differs)", async () => {
    const log = open();
    await log.append([input({ pid: process.pid, pidStart: processStart("self")! + 1 })]);
    expect(await log.closeOrphans(base())).toHaveLength(1);
  });

  it("does not close an intent that already has its result (same opId and step)", async () => {
    const log = open();
    const pid = deadPid();
    await log.append([
      input({ opId: "op-a", step: 1, pid, pidStart: null }),
      input({ opId: "op-a", step: 1, pid, pidStart: null, phase: "result", outcome: "ok" }),
    ]);
    expect(await log.closeOrphans(base())).toEqual([]);
    expect(fileLines()).toHaveLength(2);
  });

  it("closes the step that has no result, not the one that does", async () => {
    const log = open();
    const pid = deadPid();
    await log.append([
      input({ opId: "op-r", step: 1, pid, pidStart: null }),
      input({ opId: "op-r", step: 1, pid, pidStart: null, phase: "result", outcome: "ok" }),
      input({ opId: "op-r", step: 2, pid, pidStart: null }),
      input({ opId: "op-other", step: 2, pid, pidStart: null, phase: "result", outcome: "ok" }),
    ]);
    const closed = await log.closeOrphans(base());
    expect(closed.map((r) => [r.opId, r.step, r.intentSeq])).toEqual([["op-r", 2, 3]]);
  });

  it("does not touch intents from another host", async () => {
    const log = open();
    await log.append([input({ host: `not-${hostname()}`, pid: deadPid(), pidStart: null })]);
    expect(await log.closeOrphans(base())).toEqual([]);
    expect(fileLines()).toHaveLength(1);
  });

  it("does nothing on an empty log", async () => {
    expect(await open().closeOrphans(base())).toEqual([]);
    expect(readFileSync(logPath, "utf8")).toBe("");
  });
});

describe("processStart", () => {
  it("gives this process's start time as a number of clock ticks", () => {
    const self = processStart("self");
    expect(typeof self).toBe("number");
    expect(Number.isInteger(self)).toBe(true);
    expect(self).toBeGreaterThanOrEqual(0);
    expect(processStart(process.pid)).toBe(self);
  });

  it("gives undefined for a pid with no process", () => {
    expect(processStart(deadPid())).toBeUndefined();
  });
});

describe("a lock left behind", () => {
  it("is taken over once it is older than 5 s (its run died), and the record is written", async () => {
    const log = open();
    mkdirSync(`${logPath}.lock`);
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${logPath}.lock`, old, old);
    const started = Date.now();
    await log.append([input()]);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(readFileSync(logPath, "utf8").trim().split("\n")).toHaveLength(1);
    expect(existsSync(`${logPath}.lock`)).toBe(false);
  });
});

/** Mounting needs root and a kernel that lets this sandbox mount (CI does). */
const canMount =
  process.getuid?.() === 0 &&
  (() => {
    const probe = mkdtempSync(join(tmpdir(), "hapops-mount-probe-"));
    const ok = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]).status === 0;
    if (ok) spawnSync("umount", [probe]);
    rmSync(probe, { recursive: true, force: true });
    return ok;
  })();

/** A small file system of its own for the log (tmpfs), unmounted after the test. */
function smallDisk(options = "size=512k"): void {
  const mnt = join(dir, "small");
  mkdirSync(mnt);
  expect(spawnSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", mnt]).status).toBe(0);
  mounts.push(mnt);
  logPath = join(mnt, "audit.jsonl");
}

/** Fill the file system that holds the log to the last byte. */
function fillDisk(): void {
  const fd = openSync(join(dir, "small", "filler"), "w");
  try {
    for (const size of [65536, 4096, 1]) {
      const chunk = Buffer.alloc(size, 7);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Use up every inode of the small file system. */
function fillInodes(): void {
  for (let i = 0; ; i++) {
    try {
      closeSync(openSync(join(dir, "small", `inode-${i}`), "w"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOSPC") return;
      throw e;
    }
  }
}

/** The lines of a change of `n` servers: a record far larger than a page of slack. */
function manyLines(n = 200): string[] {
  return Array.from({ length: n }, (_, i) => `set server be_big/s${i} state drain`);
}

const reservePath = () => `${logPath}.reserve`;

async function rejection(p: Promise<unknown>): Promise<AuditError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AuditError);
  return e as AuditError;
}

describe("the reserve for result records", () => {
  it("is made before an intent: beside the log, real bytes, synced, 64 KiB or 4x the intent, mode as the log", async () => {
    const log = open();
    // A record that reports nothing sent needs no room after it.
    await log.append([input({ phase: "result", outcome: "noop" })]);
    expect(existsSync(reservePath())).toBe(false);
    await log.append([input()], { reserve: true });
    let st = statSync(reservePath());
    expect(st.size).toBe(RESERVE_MIN);
    expect(st.blocks * 512).toBeGreaterThanOrEqual(st.size);
    expect(mode(reservePath())).toBe(0o600);
    // Not zeros, which a file system may store as holes or compress away.
    expect(readFileSync(reservePath()).some((b) => b !== 0)).toBe(true);

    const [big] = await log.append([input({ opId: "op-2", commands: manyLines(3000) })], {
      reserve: true,
    });
    const line = fileLines().at(-1)!;
    expect(JSON.parse(line)).toEqual(big);
    st = statSync(reservePath());
    expect(st.size).toBeGreaterThanOrEqual(RESERVE_FACTOR * (Buffer.byteLength(line) + 1));
    expect(st.size % RESERVE_MIN).toBe(0);
    expect(st.blocks * 512).toBeGreaterThanOrEqual(st.size);
  });

  it("only grows: a smaller intent leaves a larger reserve as it is", async () => {
    const log = open();
    await log.append([input({ commands: manyLines(3000) })], { reserve: true });
    const before = readFileSync(reservePath());
    await log.append([input({ opId: "op-2" })], { reserve: true });
    expect(readFileSync(reservePath()).equals(before)).toBe(true);
  });

  it("writes a sparse reserve again, since holes hold no room", async () => {
    const log = open();
    writeFileSync(reservePath(), "");
    truncateSync(reservePath(), 1 << 20);
    expect(statSync(reservePath()).blocks).toBe(0);
    await log.append([input()], { reserve: true });
    const st = statSync(reservePath());
    expect(st.size).toBe(RESERVE_MIN);
    expect(st.blocks * 512).toBeGreaterThanOrEqual(st.size);
  });

  it("with a group, is 0640 and that group's, like the log", async () => {
    const gid = process.getgid!();
    await open({ group: { name: "hapops-readers", gid } }).append([input()], { reserve: true });
    expect(mode(reservePath())).toBe(0o640);
    expect(statSync(reservePath()).gid).toBe(gid);
  });

  it("refuses a reserve that is a symbolic link before the intent is written, and leaves its target alone", async () => {
    const target = join(dir, "elsewhere");
    writeFileSync(target, "precious\n");
    symlinkSync(target, reservePath());
    const e = await rejection(open().append([input()], { reserve: true }));
    expect(e.exitCode).toBe(5);
    expect(e.message).toContain("symbolic link");
    expect(e.message).toContain("nothing was sent");
    expect(readFileSync(logPath, "utf8")).toBe("");
    expect(readFileSync(target, "utf8")).toBe("precious\n");
  });

  it("refuses a reserve that is not a regular file", async () => {
    mkdirSync(reservePath());
    const e = await rejection(open().append([input()], { reserve: true }));
    expect(e.message).toMatch(/cannot reserve room for the result/);
    expect(readFileSync(logPath, "utf8")).toBe("");
  });
});

describe.runIf(canMount)("a disk that fills after the intent", () => {
  it("gets the result written into the reserve's room, once, and says so", async () => {
    smallDisk();
    const log = open();
    const lines = manyLines();
    const [intent] = await log.append([input({ commands: lines })], { reserve: true });
    fillDisk();
    const used: string[] = [];
    const [result] = await log.append(
      [input({ phase: "result", outcome: "ok", commands: lines })],
      { useReserve: true, sent: lines, onReserveUsed: (p) => used.push(p) },
    );
    expect(used).toEqual([reservePath()]);
    expect(existsSync(reservePath())).toBe(false);
    expect(records()).toEqual([intent, result]);
    expect(verifyLines(fileLines())).toEqual({ ok: true, records: 2 });
    // The reserve is spent: the next intent cannot make one, and is refused.
    const e = await rejection(
      log.append([input({ opId: "op-2", commands: lines })], { reserve: true }),
    );
    expect(e.message).toMatch(/cannot reserve room for the result.*the disk is full/);
    expect(e.message).toContain("nothing was sent");
    expect(fileLines()).toHaveLength(2);
  });

  it("without a reserve to release, refuses with the caller's consequence and lines, and leaves no half line", async () => {
    smallDisk();
    const log = open();
    const lines = manyLines();
    await log.append([input({ commands: lines })], { reserve: true });
    unlinkSync(reservePath());
    fillDisk();
    const before = readFileSync(logPath);
    const e = await rejection(
      log.append([input({ phase: "result", outcome: "ok", commands: lines })], {
        useReserve: true,
        sent: lines,
        consequence: "applied but not recorded: the lines",
      }),
    );
    expect(e.exitCode).toBe(5);
    expect(e.message).toMatch(
      /cannot write and sync it: the disk is full, and there was no reserve to release .*; applied but not recorded/,
    );
    expect(e.message).not.toContain("nothing was sent");
    expect(e.details.sent).toEqual(lines);
    expect(readFileSync(logPath).equals(before)).toBe(true);
  });

  it("refuses an intent whose reserve cannot be made, and writes nothing", async () => {
    smallDisk();
    const log = open();
    fillDisk();
    const e = await rejection(log.append([input()], { reserve: true }));
    expect(e.message).toMatch(
      /cannot reserve room for the result.*the disk is full.*nothing was sent/,
    );
    expect(readFileSync(logPath, "utf8")).toBe("");
    expect(statSync(reservePath()).size).toBe(0);
  });

  it("uses the reserve for the lock too, when no inode is left for it", async () => {
    smallDisk("size=512k,nr_inodes=8");
    const log = open();
    await log.append([input()], { reserve: true });
    fillInodes();
    const used: string[] = [];
    const started = Date.now();
    await log.append([input({ phase: "result", outcome: "ok" })], {
      useReserve: true,
      onReserveUsed: (p) => used.push(p),
    });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(used).toHaveLength(1);
    expect(records().map((r) => r.phase)).toEqual(["intent", "result"]);
  });
});

describe.runIf(canMount)("Journal when the log refuses a record", () => {
  const identity = {
    operator: "alice",
    uid: 1001,
    gid: 1001,
    sudo: true,
    loginuid: 1001,
    tty: undefined,
    groups: [],
  } as Identity;

  async function journal(warnings: string[] = []): Promise<Journal> {
    return Journal.start(
      open(),
      {
        identity,
        target: "unix:/run/haproxy/admin.sock",
        op: "drain",
        args: ["drain", "be_big/*"],
        reason: "kernel upgrade",
        dryRun: false,
        force: false,
      },
      undefined,
      (m) => warnings.push(m),
    );
  }

  it("writes a result from the reserve after the disk fills, warns, and the next change is refused saying nothing was sent", async () => {
    smallDisk();
    const warnings: string[] = [];
    const j = await journal(warnings);
    const lines = manyLines();
    const step = await j.intent(lines);
    fillDisk();
    await j.result(step, "ok", lines);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/disk holding .* is full.*room reserved for it.*free space/);
    const rs = records();
    expect(rs.map((r) => [r.phase, r.outcome])).toEqual([
      ["intent", null],
      ["result", "ok"],
    ]);
    expect(rs[1]!.commands).toEqual(lines);

    const next = await journal();
    const e = await rejection(next.intent(["set server be_big/s0 state maint"]));
    expect(e.exitCode).toBe(5);
    expect(e.message).toMatch(
      /the disk is full; refusing to act without a record \(nothing was sent\)$/,
    );
  });

  it("says 'applied but not recorded' with every line when even the reserve cannot save the result, and writes nothing less true after it", async () => {
    smallDisk();
    const j = await journal();
    const lines = manyLines();
    const step = await j.intent(lines);
    unlinkSync(reservePath());
    fillDisk();
    const before = readFileSync(logPath);
    const e = await rejection(j.result(step, "ok", lines));
    expect(e.exitCode).toBe(5);
    expect(e.message).toContain(`applied but not recorded: ${lines.join("; ")} — `);
    expect(e.message).not.toContain("nothing was sent");
    expect(e.message).toMatch(/check HAProxy's state/);
    expect(e.details.sent).toEqual(lines);
    // A caller that records its failure with that error gets the same error back, and the end
    // of the run adds nothing: a small "failed, nothing sent" record could still fit.
    await expect(j.result(step, "failed", lines, e)).rejects.toBe(e);
    await j.finish(e);
    expect(readFileSync(logPath).equals(before)).toBe(true);
  });

  it("after lines were sent and recorded, a refused intent says nothing MORE was sent", async () => {
    smallDisk();
    const j = await journal();
    const first = ["set server be_big/s0 state drain"];
    const step = await j.intent(first);
    await j.result(step, "ok", first);
    fillDisk();
    const e = await rejection(j.intent(manyLines()));
    expect(e.message).toMatch(
      /refusing to act without a record \(nothing more was sent; the 1 line this run sent before is recorded\)$/,
    );
  });
});
