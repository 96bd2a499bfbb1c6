import * as fs from "node:fs";
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
  unlinkSync,
  writeSync,
} from "node:fs";
import { randomFillSync } from "node:crypto";
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

/** What a refused record means when the caller says nothing else: nothing was sent yet. */
export const NOTHING_SENT = "refusing to act without a record (nothing was sent)";

export interface AppendOptions {
  /**
   * What it means for the run if the log cannot take these records, as the error says it
   * (default NOTHING_SENT). Only the caller knows whether anything was sent before.
   */
  readonly consequence?: string;
  /** The lines sent that these records report, kept in the error's details when they fail. */
  readonly sent?: readonly string[];
  /**
   * An intent: first make sure the reserve file holds room for the records that will follow
   * it (the result), so a disk that fills while the lines are sent cannot silence the result.
   */
  readonly reserve?: boolean;
  /**
   * A record of lines already sent: if the disk is full, release the reserve and try once more,
   * then call `onReserveUsed`.
   */
  readonly useReserve?: boolean;
  readonly onReserveUsed?: (reservePath: string) => void;
}

/** Who closes an orphaned intent: the run that found it. */
export interface Closer {
  readonly host: string;
  readonly operator: string;
  readonly uid: number;
  readonly sudo: boolean;
  readonly pid: number;
  readonly opId: string;
}

/** Per append: whether the reserve was released for it (at the lock or at the write). */
interface AppendState {
  released: boolean;
}

/** The least room the reserve holds; an intent of N bytes makes it hold RESERVE_FACTOR x N. */
export const RESERVE_MIN = 64 * 1024;
export const RESERVE_FACTOR = 4;

function fail(
  path: string,
  action: string,
  e: unknown,
  consequence: string = NOTHING_SENT,
  sent?: readonly string[],
  note?: string,
): AuditError {
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
    NOT_REGULAR: "it is not a regular file",
  };
  return new AuditError(
    `audit log ${path}: cannot ${action}: ${why[err.code ?? ""] ?? err.message}${note ? `, ${note}` : ""}; ${consequence}`,
    { path, errno: err.code, ...(sent ? { sent } : {}) },
    { cause: e },
  );
}

function diskFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT";
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
 *
 * The log never says less than what happened: before an intent is written, a reserve file
 * beside it holds room for the result, so a disk that fills while the lines are sent can still
 * take the result (the reserve is released for it). The caller says what a refused record
 * means, since only it knows whether anything was sent.
 */
export class AuditLog {
  /**
   * Beside the log (same directory, so the same file system): real bytes that hold the room the
   * result records of the running changes need. Released when a result meets a full disk.
   */
  readonly reservePath: string;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly mode: number,
    private readonly gid: number | undefined,
  ) {
    this.reservePath = `${path}.reserve`;
  }

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
    return new AuditLog(path, fd, mode, opts.group?.gid);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Append records under the lock, each chained and fsynced. */
  async append(inputs: readonly RecordInput[], opts: AppendOptions = {}): Promise<AuditRecord[]> {
    return this.locked((state) => inputs.map((i) => this.appendLocked(i, opts, state)), opts);
  }

  /**
   * Close intents of runs that died before writing their result (a kill -9, a crash, a power
   * cut): append an `outcome-unknown` record for each, so nobody reads them as still running.
   * Only intents from this host whose process is gone are closed. Each record names the run
   * that died (its operator, uid, op, args, opId and pid, copied from its intent); the run that
   * closes it is named apart, in `closedBy`.
   */
  async closeOrphans(closer: Closer): Promise<AuditRecord[]> {
    return this.locked((state) => {
      const orphans = this.findOrphans(closer.host);
      return orphans.map((o) =>
        this.appendLocked(
          {
            opId: o.opId,
            ...(o.run !== undefined ? { run: o.run } : {}),
            step: o.step,
            phase: "outcome-unknown",
            operator: o.operator,
            uid: o.uid,
            sudo: o.sudo,
            ...(o.operatorFrom !== undefined ? { operatorFrom: o.operatorFrom } : {}),
            ...(o.sudoUser !== undefined ? { sudoUser: o.sudoUser } : {}),
            loginuid: o.loginuid ?? null,
            tty: o.tty ?? null,
            host: o.host,
            pid: o.pid,
            pidStart: o.pidStart ?? null,
            target: o.target,
            op: o.op,
            args: o.args,
            reason: o.reason ?? null,
            dryRun: o.dryRun,
            force: o.force,
            commands: o.commands,
            outcome: "unknown",
            error: {
              code: "OUTCOME_UNKNOWN",
              message: `run ${o.pid} by ${o.operator} ended after its intent (seq ${o.seq}) without a result; closed by ${closer.operator} (run ${closer.pid}); check HAProxy's state`,
            },
            ...(o.detail !== undefined ? { detail: o.detail } : {}),
            intentSeq: o.seq,
            closedBy: {
              operator: closer.operator,
              uid: closer.uid,
              sudo: closer.sudo,
              pid: closer.pid,
              opId: closer.opId,
            },
          },
          {},
          state,
        ),
      );
    });
  }

  private findOrphans(host: string): AuditRecord[] {
    return openIntents(this.tailLines(1 << 20)).filter(
      (r) => r.host === host && !running(r.pid, r.pidStart),
    );
  }

  /** Appends of this process, one at a time (a fleet run writes for many targets at once). */
  private queue: Promise<unknown> = Promise.resolve();

  private locked<T>(fn: (state: AppendState) => T, opts: AppendOptions = {}): Promise<T> {
    // The file lock is between processes; within one, taking turns here is cheaper than
    // contending for it (its retries back off).
    const turn = this.queue.then(() => this.lockedNow(fn, opts));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async lockedNow<T>(fn: (state: AppendState) => T, opts: AppendOptions): Promise<T> {
    const state: AppendState = { released: false };
    // On a full disk even the lock (a directory) may find no room: a record of lines already
    // sent may use the reserve for it too.
    const mkdir = (p: string, cb: (err: NodeJS.ErrnoException | null) => void) =>
      fs.mkdir(p, (err) => {
        if (err && diskFull(err) && opts.useReserve && !state.released && this.releaseReserve()) {
          state.released = true;
          fs.mkdir(p, cb);
        } else cb(err);
      });
    let release: () => Promise<void>;
    try {
      release = await lock(this.path, {
        realpath: false,
        fs: { ...fs, mkdir },
        // The lock is held for milliseconds; one older than 5 s belongs to a run that died
        // (kill -9), and is taken over. Retries wait past that (about 11 s in all).
        stale: 5_000,
        retries: { retries: 120, minTimeout: 10, maxTimeout: 100, factor: 1.3 },
      });
    } catch (e) {
      throw fail(this.path, "lock it", e, opts.consequence, opts.sent);
    }
    try {
      return fn(state);
    } finally {
      await release().catch(() => undefined);
    }
  }

  private appendLocked(input: RecordInput, opts: AppendOptions, state: AppendState): AuditRecord {
    const consequence = opts.consequence ?? NOTHING_SENT;
    let last: string | undefined;
    try {
      last = this.lastLine();
    } catch (e) {
      if (e instanceof AuditError) throw e;
      throw fail(this.path, "read its last line", e, consequence, opts.sent);
    }
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
          `audit log ${this.path}: its last line is not a complete record; run hapops audit verify and repair it before making changes; ${consequence}`,
          { path: this.path, ...(opts.sent ? { sent: opts.sent } : {}) },
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
    if (opts.reserve)
      this.ensureReserve(Math.max(RESERVE_MIN, RESERVE_FACTOR * buf.length), consequence);
    const size = fstatSync(this.fd).size;
    const write = () => {
      try {
        let off = 0;
        while (off < buf.length) off += writeSync(this.fd, buf, off);
        fsyncSync(this.fd);
      } catch (e) {
        // Never leave half a line: it would break the chain for every later record.
        try {
          ftruncateSync(this.fd, size);
        } catch {
          // the error the caller throws says what happened
        }
        throw e;
      }
    };
    try {
      write();
    } catch (e) {
      if (!(opts.useReserve && diskFull(e)))
        throw fail(this.path, "write and sync it", e, consequence, opts.sent);
      if (!state.released) state.released = this.releaseReserve();
      if (!state.released)
        throw fail(
          this.path,
          "write and sync it",
          e,
          consequence,
          opts.sent,
          `and there was no reserve to release (${this.reservePath} is gone or empty)`,
        );
      try {
        write();
      } catch (again) {
        throw fail(
          this.path,
          "write and sync it",
          again,
          consequence,
          opts.sent,
          `even with the reserve (${this.reservePath}) released`,
        );
      }
    }
    if (state.released) opts.onReserveUsed?.(this.reservePath);
    return record;
  }

  /**
   * Make the reserve hold at least `bytes` (rounded up to 64 KiB): written with random bytes
   * (zeros could be holes or compressed away, and hold no room) and synced. It only grows; a
   * failure leaves it as it was and refuses the intent.
   */
  private ensureReserve(bytes: number, consequence: string): void {
    const want = Math.ceil(bytes / RESERVE_MIN) * RESERVE_MIN;
    const action = `reserve room for the result in ${this.reservePath}`;
    let fd: number;
    try {
      fd = openSync(
        this.reservePath,
        constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
        this.mode,
      );
    } catch (e) {
      throw fail(this.path, action, e, consequence);
    }
    let had = 0;
    try {
      const st = fstatSync(fd);
      if (!st.isFile())
        throw Object.assign(new Error("not a regular file"), { code: "NOT_REGULAR" });
      had = st.size;
      if (this.gid !== undefined && st.gid !== this.gid) fchownSync(fd, -1, this.gid);
      if ((st.mode & 0o777) !== this.mode) fchmodSync(fd, this.mode);
      let from = st.size;
      if (st.blocks * 512 < st.size) {
        // A sparse file (holes) holds no room: write it again from the start.
        ftruncateSync(fd, 0);
        from = 0;
      }
      if (from >= want) return;
      const chunk = Buffer.alloc(RESERVE_MIN);
      for (let pos = from; pos < want; pos += chunk.length) {
        randomFillSync(chunk);
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off, pos + off);
      }
      fsyncSync(fd);
    } catch (e) {
      try {
        ftruncateSync(fd, had);
      } catch {
        // the error below says what happened
      }
      throw fail(this.path, action, e, consequence);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Give the reserve's room back to the file system (for a record of lines already sent).
   * Truncated, so the room is free at once, and removed, which frees its inode too; the next
   * intent writes it again, or is refused while the disk is full. True if it freed anything.
   */
  private releaseReserve(): boolean {
    let fd: number;
    try {
      fd = openSync(
        this.reservePath,
        constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      );
    } catch {
      return false;
    }
    let freed = false;
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) return false;
      freed = st.size > 0;
      ftruncateSync(fd, 0);
      // ext4 reuses freed blocks only once its journal commits; a sync commits it.
      fsyncSync(fd);
    } catch {
      return freed;
    } finally {
      closeSync(fd);
    }
    try {
      unlinkSync(this.reservePath);
      return true;
    } catch {
      return freed;
    }
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

/**
 * The start of every record hapops writes (serialize keeps appendLocked's key order): what the
 * orphan scan needs, read without parsing the line. Any line that does not start this way (one
 * written by another version, or edited) is parsed.
 */
const RECORD_HEAD =
  /^\{"v":1,"seq":\d+,"ts":"[^"]*","opId":"([^"\\]*)",(?:"run":"[^"\\]*",)?"step":(\d+),"phase":"([a-z-]+)"/;

/**
 * Intents with no later record of the same operation step, in log order. Each change scans the
 * last MiB of the log (~3,000 records); only the intents still open are parsed, so the scan
 * costs ~0.3 µs a record instead of a JSON.parse each (~5 µs).
 */
export function openIntents(lines: readonly string[]): AuditRecord[] {
  const open = new Map<string, string | AuditRecord>();
  for (const line of lines) {
    const m = RECORD_HEAD.exec(line);
    let key: string;
    let phase: string;
    let parsed: AuditRecord | undefined;
    if (m) {
      key = `${m[1]}#${m[2]}`;
      phase = m[3]!;
    } else {
      try {
        parsed = JSON.parse(line) as AuditRecord;
      } catch {
        continue;
      }
      key = `${parsed.opId}#${parsed.step}`;
      phase = parsed.phase;
    }
    if (phase === "intent") open.set(key, parsed ?? line);
    else open.delete(key);
  }
  const out: AuditRecord[] = [];
  for (const v of open.values()) {
    if (typeof v !== "string") out.push(v);
    else
      try {
        out.push(JSON.parse(v) as AuditRecord);
      } catch {
        // not a record after all
      }
  }
  return out;
}
