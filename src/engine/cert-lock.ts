import { createHash, randomUUID } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname, tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { lock } from "proper-lockfile";
import { processStart } from "../audit/log.js";
import { EnvironmentError, GuardError, HapopsError } from "../errors.js";
import { formatTarget, type Target } from "../transport/target.js";

/**
 * Certificate transactions are exclusive across hapops runs on one host. HAProxy has a single
 * certificate transaction slot per process, and on 2.6 a `set ssl cert` for ANY file while a
 * transaction is open updates that open transaction with the new payload ("Transaction updated
 * for certificate <the open one>!", measured on 2.6.12 with a second file and with a file that
 * is not loaded at all). So the lock is per target (socket), whatever the file: two runs on
 * different files of one HAProxy would otherwise commit each other's certificates.
 *
 * The held lock is a small JSON file naming its owner (pid and process start time, so a lock
 * left by a dead run is recognised at once and taken over). Reading, taking over and releasing
 * it happen under a short mutex (proper-lockfile, as the audit log does), so two runs can never
 * both take over the same dead lock.
 */

export interface CertLockOwner {
  readonly v: 1;
  readonly pid: number;
  /** Start time of `pid` in clock ticks since boot; tells a reused pid from the owner. */
  readonly pidStart: number | null;
  readonly uid: number;
  readonly user: string;
  readonly host: string;
  readonly target: string;
  readonly file: string;
  readonly since: string;
  readonly token: string;
}

/** Where lock files live: root-owned under /run for root, per user otherwise. */
export function certLockDir(env: {
  readonly euid: number;
  readonly xdgRuntimeDir?: string | undefined;
  readonly tmpdir: string;
}): string {
  if (env.euid === 0) return "/run/hapops/locks";
  if (env.xdgRuntimeDir && env.xdgRuntimeDir.startsWith("/"))
    return join(env.xdgRuntimeDir, "hapops");
  return join(env.tmpdir, `hapops-${env.euid}`);
}

/**
 * The lock directory and identity of this process. Under sudo hapops runs as root and the
 * directory is /run/hapops/locks whatever the environment says; XDG_RUNTIME_DIR only picks a
 * non-root user's own directory.
 */
export function certLockHere(): { dir: string; uid: number; user: string } {
  const uid = process.geteuid?.() ?? 0;
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry: the uid says who
  }
  return {
    dir: certLockDir({ euid: uid, xdgRuntimeDir: process.env.XDG_RUNTIME_DIR, tmpdir: tmpdir() }),
    uid,
    user,
  };
}

/** The directories hapops creates for `dir` (its parent too when that is /run/hapops). */
function ownedChain(dir: string): string[] {
  return dir === "/run/hapops/locks" ? ["/run/hapops", dir] : [dir];
}

/**
 * Create the lock directory 0700 (and /run/hapops for root) and check every directory hapops
 * owns there: a real directory (never a symbolic link: lstat, and mkdir does not follow one),
 * owned by the running uid, not writable by group or others. Anything else is refused.
 */
export function ensureCertLockDir(dir: string, uid: number): void {
  for (const d of ownedChain(dir)) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EEXIST")
        throw new EnvironmentError(
          `cannot create the certificate lock directory ${d}: ${code === "EACCES" ? "permission denied" : (e as Error).message}; fix it and run again (nothing was sent)`,
          { lockDir: d, errno: code },
          { cause: e },
        );
    }
    const st = lstatSync(d);
    const refuse = (why: string, fix: string) =>
      new GuardError(
        `certificate lock directory ${d} ${why}; refusing to use it: ${fix}, then run again (nothing was sent)`,
        { lockDir: d },
      );
    if (st.isSymbolicLink())
      throw refuse("is a symbolic link, which hapops does not follow", `remove it (rm ${d})`);
    if (!st.isDirectory()) throw refuse("is not a directory", `remove it (rm ${d})`);
    if (st.uid !== uid)
      throw refuse(
        `is owned by uid ${st.uid}, not by uid ${uid} that runs hapops`,
        `remove it (rm -r ${d})`,
      );
    if ((st.mode & 0o022) !== 0)
      throw refuse(
        `is writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")})`,
        `chmod 700 ${d}`,
      );
  }
}

/**
 * The key a lock is taken on: the socket's real path (so /var/run/... and /run/... are one
 * target), or the TCP/TLS address as written.
 */
export function certLockTarget(target: Target): string {
  if (target.kind !== "unix") return formatTarget(target);
  try {
    return realpathSync(target.path);
  } catch {
    return target.path;
  }
}

/** The lock file for a target: readable for people, unique by hash. */
export function certLockPath(dir: string, target: string): string {
  const hash = createHash("sha256").update(target).digest("hex").slice(0, 16);
  const slug = target
    .replace(/^\/+/, "")
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .slice(-48);
  return join(dir, `cert-${slug}-${hash}.lock`);
}

type Found =
  | { readonly kind: "none" }
  | { readonly kind: "owner"; readonly owner: CertLockOwner }
  | { readonly kind: "unreadable"; readonly why: string };

function readOwner(path: string): Found {
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "none" };
    return { kind: "unreadable", why: code ?? (e as Error).message };
  }
  try {
    const o = JSON.parse(text) as Partial<CertLockOwner>;
    if (typeof o.pid !== "number" || typeof o.token !== "string")
      return { kind: "unreadable", why: "no owner in it" };
    return { kind: "owner", owner: o as CertLockOwner };
  } catch {
    return { kind: "unreadable", why: "not JSON" };
  }
}

/**
 * Whether the run that owns a lock still runs: the same pid with the same start time. A lock
 * from another host (a shared /run would be odd) cannot be checked and counts as alive.
 */
export function ownerAlive(owner: CertLockOwner, host = hostname()): boolean {
  if (owner.host !== host) return true;
  const now = processStart(owner.pid);
  if (now === undefined) return false;
  return owner.pidStart === null || owner.pidStart === now;
}

async function withMutex<T>(path: string, fn: () => T): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lock(path, {
      realpath: false,
      lockfilePath: `${path}.mutex`,
      // Held for a few syscalls; one older than 5 s belongs to a run that died there.
      stale: 5_000,
      retries: { retries: 120, minTimeout: 10, maxTimeout: 100, factor: 1.3 },
      // Compromise of a mutex held for microseconds is not worth crashing a rotation for.
      onCompromised: () => undefined,
    });
  } catch (e) {
    throw new EnvironmentError(
      `cannot take the certificate lock ${path}: ${(e as Error).message}; check ${dirname(path)} and run again (nothing was sent)`,
      { lock: path },
      { cause: e },
    );
  }
  try {
    return fn();
  } catch (e) {
    if (e instanceof HapopsError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new EnvironmentError(
      `cannot write the certificate lock ${path}: ${code ?? (e as Error).message}; check ${dirname(path)} and run again (nothing was sent)`,
      { lock: path, errno: code },
      { cause: e },
    );
  } finally {
    await release().catch(() => undefined);
  }
}

function writeOwner(path: string, owner: CertLockOwner): void {
  const tmp = `${path}.${owner.token}.tmp`;
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeSync(fd, JSON.stringify(owner) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // rename replaces whatever is at `path` (a dead owner's file) without following it.
  renameSync(tmp, path);
}

function describeOwner(o: CertLockOwner): string {
  const since = o.since.slice(11, 19);
  return `pid ${o.pid}, user ${o.user}${since ? `, since ${since} UTC` : ""}`;
}

export interface CertLockRequest {
  /** A directory checked by ensureCertLockDir. */
  readonly dir: string;
  /** certLockTarget(settings.target). */
  readonly target: string;
  /** The certificate file this run rotates (recorded in the lock for whoever finds it). */
  readonly file: string;
  readonly uid: number;
  readonly user: string;
  /** This process unless told otherwise (tests lock on behalf of another process). */
  readonly pid?: number;
  readonly now?: () => Date;
}

export interface HeldCertLock {
  readonly path: string;
  readonly owner: CertLockOwner;
  /** The lock this run took over from a run that is gone (or a lock file it could not read). */
  readonly tookOver: CertLockOwner | { readonly unreadable: string } | undefined;
  /** Remove the lock if it is still ours; safe to call twice. */
  release(): Promise<void>;
}

/**
 * Take the certificate lock of a target. Held by a live run: GuardError (exit 3) naming that
 * run. Left by a run that is gone: taken over, and said so in `tookOver`.
 */
export async function acquireCertLock(req: CertLockRequest): Promise<HeldCertLock> {
  const path = certLockPath(req.dir, req.target);
  const pid = req.pid ?? process.pid;
  const owner: CertLockOwner = {
    v: 1,
    pid,
    pidStart: processStart(pid) ?? null,
    uid: req.uid,
    user: req.user,
    host: hostname(),
    target: req.target,
    file: req.file,
    since: (req.now?.() ?? new Date()).toISOString(),
    token: randomUUID(),
  };
  const found = await withMutex(path, (): Found & { readonly live?: true } => {
    const before = readOwner(path);
    if (before.kind === "owner" && ownerAlive(before.owner)) return { ...before, live: true };
    writeOwner(path, owner);
    return before;
  });
  if (found.kind === "owner" && found.live) throw lockRefusal(req.dir, req.target, found.owner);
  let released = false;
  return {
    path,
    owner,
    tookOver:
      found.kind === "owner"
        ? found.owner
        : found.kind === "unreadable"
          ? { unreadable: found.why }
          : undefined,
    release: async () => {
      if (released) return;
      released = true;
      await withMutex(path, () => {
        const now = readOwner(path);
        if (now.kind === "owner" && now.owner.token === owner.token) unlinkSync(path);
      });
    },
  };
}

/** The refusal for a run that finds another live run holding the target's lock. */
export function lockRefusal(dir: string, target: string, other: CertLockOwner): GuardError {
  const path = certLockPath(dir, target);
  const elsewhere =
    other.host === hostname()
      ? ""
      : ` on host ${other.host}, which hapops cannot check (if that run is gone, remove the lock file)`;
  return new GuardError(
    `another hapops run (${describeOwner(other)}${elsewhere}) is rotating ${other.file} on ${target}; HAProxy has one certificate transaction at a time, so wait for that run to finish and run again (nothing was sent; lock ${path})`,
    { lock: path, pid: other.pid, user: other.user, file: other.file, since: other.since },
  );
}

/** The run that left a target's lock and is gone (its transaction may still be open). */
export function peekDeadCertLock(dir: string, target: string): CertLockOwner | undefined {
  const found = readOwner(certLockPath(dir, target));
  return found.kind === "owner" && !ownerAlive(found.owner) ? found.owner : undefined;
}

/** The live run holding a target's certificate lock, if any (for dry runs: nothing is taken). */
export function peekCertLock(dir: string, target: string): CertLockOwner | undefined {
  const found = readOwner(certLockPath(dir, target));
  return found.kind === "owner" && ownerAlive(found.owner) ? found.owner : undefined;
}

/** How a lock left by a dead run is described to the operator. */
export function describeTakenOver(t: NonNullable<HeldCertLock["tookOver"]>): string {
  return "unreadable" in t
    ? `an unreadable lock file (${t.unreadable})`
    : `the lock of hapops run ${describeOwner(t)}, which was rotating ${t.file} and is gone`;
}
