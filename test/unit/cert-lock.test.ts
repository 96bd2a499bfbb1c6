import { spawn, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { processStart } from "../../src/audit/log.js";
import {
  acquireCertLock,
  certLockDir,
  certLockPath,
  ensureCertLockDir,
  ownerAlive,
  peekCertLock,
  type CertLockOwner,
} from "../../src/engine/cert-lock.js";
import { GuardError } from "../../src/errors.js";

const base = mkdtempSync(join(tmpdir(), "hapops-cert-lock-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
/** A fresh, checked lock directory. */
function lockDir(): string {
  const d = join(base, `locks-${++n}`);
  ensureCertLockDir(d, process.getuid!());
  return d;
}

const TARGET = "/run/haproxy/admin.sock";
const req = (dir: string, extra: { pid?: number; file?: string } = {}) => ({
  dir,
  target: TARGET,
  file: extra.file ?? "/etc/haproxy/certs/example.com.pem",
  uid: process.getuid!(),
  user: "alice",
  ...(extra.pid !== undefined ? { pid: extra.pid } : {}),
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/** A real live process other than this one (to own a lock), and a way to end it. */
async function otherProcess(): Promise<{ pid: number; end(): Promise<void> }> {
  const c = spawn("sleep", ["60"], { stdio: "ignore" });
  children.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once("spawn", resolve);
    c.once("error", reject);
  });
  return {
    pid: c.pid!,
    end: () =>
      new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      }),
  };
}

describe("certLockDir", () => {
  it("is /run/hapops/locks for root, whatever the environment says", () => {
    expect(certLockDir({ euid: 0, xdgRuntimeDir: "/run/user/1000", tmpdir: "/tmp" })).toBe(
      "/run/hapops/locks",
    );
  });
  it("is $XDG_RUNTIME_DIR/hapops for a user who has one, else <tmpdir>/hapops-<uid>", () => {
    expect(certLockDir({ euid: 1000, xdgRuntimeDir: "/run/user/1000", tmpdir: "/tmp" })).toBe(
      "/run/user/1000/hapops",
    );
    expect(certLockDir({ euid: 1000, xdgRuntimeDir: undefined, tmpdir: "/tmp" })).toBe(
      "/tmp/hapops-1000",
    );
    expect(certLockDir({ euid: 1000, xdgRuntimeDir: "relative", tmpdir: "/var/tmp" })).toBe(
      "/var/tmp/hapops-1000",
    );
  });
});

describe("ensureCertLockDir", () => {
  it("creates the directory 0700, owned by the running uid", () => {
    const d = lockDir();
    const st = lstatSync(d);
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
  });

  it("refuses a symbolic link (exit 3), even to a good directory", () => {
    const real = lockDir();
    const link = join(base, `link-${++n}`);
    symlinkSync(real, link);
    const err = (() => {
      try {
        ensureCertLockDir(link, process.getuid!());
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(GuardError);
    expect((err as GuardError).exitCode).toBe(3);
    expect((err as Error).message).toMatch(
      /certificate lock directory .*link-\d+ is a symbolic link, which hapops does not follow; refusing to use it: remove it/,
    );
  });

  it("refuses a directory writable by group or others", () => {
    const d = lockDir();
    chmodSync(d, 0o777);
    expect(() => ensureCertLockDir(d, process.getuid!())).toThrow(
      /is writable by group or others \(mode 0777\); refusing to use it: chmod 700/,
    );
  });

  it.runIf(process.getuid!() === 0)("refuses a directory owned by another uid", () => {
    const d = lockDir();
    chownSync(d, 65534, 65534);
    expect(() => ensureCertLockDir(d, 0)).toThrow(
      /is owned by uid 65534, not by uid 0 that runs hapops; refusing to use it/,
    );
  });

  it("refuses a plain file where the directory should be", () => {
    const f = join(base, `file-${++n}`);
    writeFileSync(f, "");
    expect(() => ensureCertLockDir(f, process.getuid!())).toThrow(/is not a directory/);
  });
});

describe("acquireCertLock", () => {
  it("writes who holds it, and release removes it (twice is harmless)", async () => {
    const d = lockDir();
    const held = await acquireCertLock(req(d));
    expect(held.tookOver).toBeUndefined();
    expect(held.path).toBe(certLockPath(d, TARGET));
    const owner = JSON.parse(readFileSync(held.path, "utf8")) as CertLockOwner;
    expect(owner).toMatchObject({
      pid: process.pid,
      pidStart: processStart("self"),
      user: "alice",
      host: hostname(),
      target: TARGET,
      file: "/etc/haproxy/certs/example.com.pem",
    });
    expect(statSync(held.path).mode & 0o777).toBe(0o600);
    expect(peekCertLock(d, TARGET)?.token).toBe(owner.token);
    await held.release();
    await held.release();
    expect(() => statSync(held.path)).toThrow();
    expect(peekCertLock(d, TARGET)).toBeUndefined();
  });

  it("refuses while another live run holds it (exit 3, with its pid), whatever the file", async () => {
    const d = lockDir();
    const other = await otherProcess();
    await acquireCertLock(req(d, { pid: other.pid }));
    const err = await acquireCertLock(req(d, { file: "/etc/haproxy/certs/other.org.pem" })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GuardError);
    expect((err as GuardError).exitCode).toBe(3);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^another hapops run \\(pid ${other.pid}, user alice, since \\d\\d:\\d\\d:\\d\\d UTC\\) is rotating /etc/haproxy/certs/example\\.com\\.pem on /run/haproxy/admin\\.sock; HAProxy has one certificate transaction at a time, so wait for that run to finish and run again \\(nothing was sent; lock .*\\)$`,
      ),
    );
    expect((err as GuardError).details).toMatchObject({ pid: other.pid });
  });

  it("takes over the lock of a run that is gone, and says whose it was", async () => {
    const d = lockDir();
    const other = await otherProcess();
    await acquireCertLock(req(d, { pid: other.pid }));
    await other.end();
    const held = await acquireCertLock(req(d));
    expect(held.tookOver).toMatchObject({ pid: other.pid, user: "alice" });
    expect(peekCertLock(d, TARGET)?.pid).toBe(process.pid);
    await held.release();
  });

  it("a reused pid is not the owner: the process start time must match too", async () => {
    const d = lockDir();
    const stale: CertLockOwner = {
      v: 1,
      pid: process.pid,
      pidStart: (processStart("self") ?? 0) + 12345,
      uid: 0,
      user: "bob",
      host: hostname(),
      target: TARGET,
      file: "/x.pem",
      since: new Date().toISOString(),
      token: "old",
    };
    expect(ownerAlive(stale)).toBe(false);
    writeFileSync(certLockPath(d, TARGET), JSON.stringify(stale));
    const held = await acquireCertLock(req(d));
    expect(held.tookOver).toMatchObject({ user: "bob", token: "old" });
    await held.release();
  });

  it("a lock from another host cannot be checked: refused, and the message says how to clear it", async () => {
    const d = lockDir();
    const remote: CertLockOwner = {
      v: 1,
      pid: 1,
      pidStart: null,
      uid: 0,
      user: "carol",
      host: "elsewhere",
      target: TARGET,
      file: "/x.pem",
      since: "2030-01-01T10:00:00.000Z",
      token: "remote",
    };
    writeFileSync(certLockPath(d, TARGET), JSON.stringify(remote));
    await expect(acquireCertLock(req(d))).rejects.toThrow(
      /^another hapops run \(pid 1, user carol, since 10:00:00 UTC on host elsewhere, which hapops cannot check \(if that run is gone, remove the lock file\)\) is rotating \/x\.pem/,
    );
  });

  it("takes over an unreadable lock file, and never follows a symbolic link there", async () => {
    const d = lockDir();
    writeFileSync(certLockPath(d, TARGET), "garbage");
    const held = await acquireCertLock(req(d));
    expect(held.tookOver).toEqual({ unreadable: "not JSON" });
    await held.release();

    const precious = join(base, `precious-${++n}`);
    writeFileSync(precious, "do not touch\n");
    symlinkSync(precious, certLockPath(d, TARGET));
    const again = await acquireCertLock(req(d));
    expect(again.tookOver).toEqual({ unreadable: "ELOOP" });
    expect(readFileSync(precious, "utf8")).toBe("do not touch\n");
    expect(lstatSync(certLockPath(d, TARGET)).isFile()).toBe(true);
    await again.release();
    expect(readFileSync(precious, "utf8")).toBe("do not touch\n");
  });

  it("of many runs racing for one lock, exactly one gets it", async () => {
    const d = lockDir();
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () => acquireCertLock(req(d))),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(11);
    for (const l of lost) expect(l.reason).toBeInstanceOf(GuardError);
    await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
  });

  it("of many runs racing to take over one dead run's lock, exactly one gets it", async () => {
    const d = lockDir();
    const other = await otherProcess();
    await acquireCertLock(req(d, { pid: other.pid }));
    await other.end();
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () => acquireCertLock(req(d))),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("one lock per target: another socket is not blocked, a second path is", async () => {
    const d = lockDir();
    const a = await acquireCertLock(req(d));
    const b = await acquireCertLock({ ...req(d), target: "/run/haproxy/other.sock" });
    expect(a.path).not.toBe(b.path);
    expect(certLockPath(d, TARGET)).toBe(certLockPath(d, TARGET));
    expect(certLockPath(d, TARGET)).toMatch(/cert-run_haproxy_admin\.sock-[0-9a-f]{16}\.lock$/);
    await a.release();
    await b.release();
  });
});

describe("certLockTarget", () => {
  it("is the socket's real path, so two spellings of one socket share a lock", async () => {
    const { certLockTarget } = await import("../../src/engine/cert-lock.js");
    const d = join(base, `sock-${++n}`);
    mkdirSync(join(d, "real"), { recursive: true });
    writeFileSync(join(d, "real", "admin.sock"), "");
    symlinkSync(join(d, "real"), join(d, "alias"));
    expect(certLockTarget({ kind: "unix", path: join(d, "alias", "admin.sock") })).toBe(
      join(d, "real", "admin.sock"),
    );
    expect(certLockTarget({ kind: "tcp", host: "127.0.0.1", port: 9999 })).toBe(
      "tcp://127.0.0.1:9999",
    );
  });
});
