import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { lock } from "proper-lockfile";
import { AuditError } from "../errors.js";
import { GENESIS, hashLine, serialize, type AuditRecord } from "./record.js";

export interface AuditLogOptions {
  readonly path: string;
  /** Group that may read the log (mode 0640); otherwise 0600. */
  readonly group?: { readonly name: string; readonly gid: number } | undefined;
  /** Create the directory if missing (only for the per-user default location). */
  readonly createDir?: boolean;
}

/** The fields a caller provides; the log adds v, seq, ts and prev. */
export type RecordInput = Omit<AuditRecord, "v" | "seq" | "ts" | "prev">;

function fail(path: string, action: string, e: unknown): AuditError {
  const err = e as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOENT:
      "the directory does not exist (hapops setup creates it; or set audit.path in the config)",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "the file system is read-only",
    ENOSPC: "the disk is full",
    EDQUOT: "the disk quota is exhausted",
    ELOOP: "it is a symbolic link, which hapops does not follow",
    EISDIR: "it is a directory",
  };
  return new AuditError(
    `audit log ${path}: cannot ${action}: ${why[err.code ?? ""] ?? err.message}; refusing to act without a record (nothing was sent)`,
    { path, errno: err.code },
    { cause: e },
  );
}

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22). */
export function processStart(pid: number | "self"): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number, start: number | null): boolean {
  const now = processStart(pid);
  if (now === undefined) return false;
  return start === null || now === start;
}

/**
 * The append-only, hash-chained audit log. Every append takes a lock, reads the last line for
 * the chain, writes one line, and fsyncs before returning: an intent is on disk before anything
 * it announces is sent. Any failure is an AuditError (exit 5).
 */
export class AuditLog {
  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  static open(opts: AuditLogOptions): AuditLog {
    const { path } = opts;
    const dir = dirname(path);
    if (opts.createDir) {
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw fail(path, "create its directory", e);
      }
    }
    try {
      if (!statSync(dir).isDirectory())
        throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    } catch (e) {
      throw fail(path, "use its directory", e);
    }
    const mode = opts.group ? 0o640 : 0o600;
    let fd: number;
    try {
      fd = openSync(
        path,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        mode,
      );
    } catch (e) {
      throw fail(path, "open it for appending", e);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error("not a regular file"), { code: "EISDIR" });
      if (opts.group && st.gid !== opts.group.gid) fchownSync(fd, -1, opts.group.gid);
      if ((st.mode & 0o777) !== mode) fchmodSync(fd, mode);
    } catch (e) {
      closeSync(fd);
      throw fail(path, "set its owner and mode", e);
    }
    return new AuditLog(path, fd);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Append records under the lock, each chained and fsynced. */
  async append(inputs: readonly RecordInput[]): Promise<AuditRecord[]> {
    return this.locked(() => inputs.map((i) => this.appendLocked(i)));
  }

  /**
   * Close intents of runs that died before writing their result (a kill -9, a crash, a power
   * cut): append an `outcome-unknown` record for each, so nobody reads them as still running.
   * Only intents from this host whose process is gone are closed; `base` fills the new records.
   */
  async closeOrphans(
    base: Omit<RecordInput, "phase" | "outcome" | "error" | "commands" | "step" | "opId">,
  ): Promise<AuditRecord[]> {
    return this.locked(() => {
      const orphans = this.findOrphans(base.host);
      return orphans.map((o) =>
        this.appendLocked({
          ...base,
          opId: o.opId,
          step: o.step,
          phase: "outcome-unknown",
          commands: o.commands,
          outcome: "unknown",
          error: {
            code: "OUTCOME_UNKNOWN",
            message: `run ${o.pid} by ${o.operator} ended after its intent (seq ${o.seq}) without a result; check HAProxy's state`,
          },
          intentSeq: o.seq,
        }),
      );
    });
  }

  private findOrphans(host: string): AuditRecord[] {
    const open = new Map<string, AuditRecord>();
    for (const line of this.tailLines(1 << 20)) {
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
    return [...open.values()].filter((r) => r.host === host && !running(r.pid, r.pidStart));
  }

  private async locked<T>(fn: () => T): Promise<T> {
    let release: () => Promise<void>;
    try {
      release = await lock(this.path, {
        realpath: false,
        // The lock is held for milliseconds; one older than 5 s belongs to a run that died
        // (kill -9), and is taken over. Retries wait past that (about 11 s in all).
        stale: 5_000,
        retries: { retries: 120, minTimeout: 10, maxTimeout: 100, factor: 1.3 },
      });
    } catch (e) {
      throw fail(this.path, "lock it", e);
    }
    try {
      return fn();
    } finally {
      await release().catch(() => undefined);
    }
  }

  private appendLocked(input: RecordInput): AuditRecord {
    const last = this.lastLine();
    let seq = 1;
    if (last !== undefined) {
      let lastSeq: unknown;
      try {
        lastSeq = (JSON.parse(last) as { seq?: unknown }).seq;
      } catch {
        lastSeq = undefined;
      }
      if (typeof lastSeq !== "number" || !Number.isInteger(lastSeq))
        throw new AuditError(
          `audit log ${this.path}: its last line is not a complete record; run hapops audit verify and repair it before making changes`,
        );
      seq = lastSeq + 1;
    }
    const record: AuditRecord = {
      v: 1,
      seq,
      ts: new Date().toISOString(),
      ...input,
      prev: last === undefined ? GENESIS : hashLine(last),
    };
    const buf = Buffer.from(serialize(record) + "\n");
    const size = fstatSync(this.fd).size;
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd, buf, off);
      fsyncSync(this.fd);
    } catch (e) {
      // Never leave half a line: it would break the chain for every later record.
      try {
        ftruncateSync(this.fd, size);
      } catch {
        // the error below says what happened
      }
      throw fail(this.path, "write and sync it", e);
    }
    return record;
  }

  /**
   * The last line without its newline, or undefined for an empty log. A log that does not end
   * in a newline (a crash mid-write elsewhere, a hand edit) would get the next record glued to
   * its last line, so it is refused.
   */
  private lastLine(): string | undefined {
    const size = fstatSync(this.fd).size;
    if (size > 0) {
      const rfd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      const byte = Buffer.alloc(1);
      try {
        readSync(rfd, byte, 0, 1, size - 1);
      } finally {
        closeSync(rfd);
      }
      if (byte[0] !== 0x0a)
        throw new AuditError(
          `audit log ${this.path}: its last line is not a complete record (no final newline); run hapops audit verify and repair it before making changes`,
        );
    }
    const lines = this.tailLines(64 * 1024, true);
    return lines[lines.length - 1];
  }

  /**
   * Complete lines from the end of the file, reading at least `min` bytes (all of a small file);
   * with `oneLine`, reads further back until the last line is whole.
   */
  private tailLines(min: number, oneLine = false): string[] {
    const rfd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const size = fstatSync(rfd).size;
      if (size === 0) return [];
      let want = Math.min(size, min);
      for (;;) {
        const buf = Buffer.alloc(want);
        readSync(rfd, buf, 0, want, size - want);
        const text = buf.toString("utf8");
        const body = text.endsWith("\n") ? text.slice(0, -1) : text;
        const lines = body.split("\n");
        // The first piece may be the tail of an earlier line, unless we read from the start.
        if (want < size) lines.shift();
        if (!oneLine || lines.length > 0 || want === size) return lines;
        want = Math.min(size, want * 4);
      }
    } finally {
      closeSync(rfd);
    }
  }
}
