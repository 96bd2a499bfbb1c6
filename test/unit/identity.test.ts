import { describe, expect, it } from "vitest";
import {
  isUnderSudo,
  resolveIdentity,
  type Identity,
  type IdentityProbe,
} from "../../src/audit/identity.js";
import { ExitCode, GuardError } from "../../src/errors.js";

interface User {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: string[];
}

const PASSWD: readonly User[] = [
  { name: "root", uid: 0, gid: 0, groups: ["root"] },
  { name: "alice", uid: 1001, gid: 1001, groups: ["alice", "ops", "haproxy"] },
  { name: "bob", uid: 1002, gid: 1002, groups: ["bob", "dev"] },
  { name: "haproxy", uid: 998, gid: 998, groups: ["haproxy"] },
];

const SUDO_PID = 4242;

interface FakeOptions {
  readonly uid: number;
  readonly euid?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** What runs as our parent; sudo by default when euid is 0 and SUDO_* are set. */
  readonly parent?: string | undefined;
  readonly loginuid?: number | undefined;
  readonly tty?: string | undefined;
}

/** A probe over an in-memory passwd and process table; records what it was asked. */
function fakeProbe(o: FakeOptions): IdentityProbe & { readonly asked: unknown[] } {
  const asked: unknown[] = [];
  return {
    asked,
    uid: o.uid,
    euid: o.euid ?? o.uid,
    ppid: SUDO_PID,
    env: o.env ?? {},
    lookupUser(key) {
      asked.push(key);
      const u = PASSWD.find((p) => (typeof key === "number" ? p.uid === key : p.name === key));
      return u && { name: u.name, uid: u.uid, gid: u.gid };
    },
    groupsOf(user) {
      return [...(PASSWD.find((p) => p.name === user)?.groups ?? [])];
    },
    parentProgram(ppid) {
      return ppid === SUDO_PID ? o.parent : undefined;
    },
    loginuid: () => o.loginuid,
    tty: () => o.tty,
  };
}

/** `sudo hapops ...` run by alice: euid 0, SUDO_* set by sudo, sudo is the parent. */
function sudoBy(
  user: string,
  sudoUid: string,
  over: Partial<FakeOptions> = {},
): ReturnType<typeof fakeProbe> {
  return fakeProbe({
    uid: 0,
    euid: 0,
    parent: "sudo",
    env: { SUDO_USER: user, SUDO_UID: sudoUid, SUDO_GID: sudoUid, USER: "root", LOGNAME: "root" },
    ...over,
  });
}

function guardError(fn: () => unknown): GuardError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(GuardError);
    return e as GuardError;
  }
  throw new Error("expected GuardError to be thrown");
}

describe("resolveIdentity without sudo", () => {
  it("takes the operator from the passwd name of the real uid", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002 }));
    expect(id).toEqual<Identity>({
      operator: "bob",
      uid: 1002,
      gid: 1002,
      sudo: false,
      loginuid: undefined,
      tty: undefined,
      groups: ["bob", "dev"],
    });
  });

  it("ignores LOGNAME, USER and SUDO_USER that lie (not root: sudo cannot be involved)", () => {
    const env = { LOGNAME: "alice", USER: "alice", SUDO_USER: "alice", SUDO_UID: "1001" };
    const id = resolveIdentity(fakeProbe({ uid: 1002, env, parent: "sudo" }));
    expect(id.operator).toBe("bob");
    expect(id.uid).toBe(1002);
    expect(id.sudo).toBe(false);
    expect(id.groups).toEqual(["bob", "dev"]);
  });

  it("goes by the real uid, not the effective one (setuid does not change the operator)", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002, euid: 0 }));
    expect(id).toMatchObject({ operator: "bob", uid: 1002, sudo: false });
  });

  it("names a uid that passwd does not know uid-<n>, with no groups", () => {
    const id = resolveIdentity(fakeProbe({ uid: 4321 }));
    expect(id).toMatchObject({ operator: "uid-4321", uid: 4321, sudo: false, groups: [] });
  });

  it("root without sudo is root", () => {
    expect(resolveIdentity(fakeProbe({ uid: 0 }))).toMatchObject({
      operator: "root",
      uid: 0,
      sudo: false,
      groups: ["root"],
    });
  });
});

describe("root with SUDO_* set but not started by sudo itself: fails closed", () => {
  const env = { SUDO_USER: "alice", SUDO_UID: "1001" };

  it.each([
    ["a shell (sudo -s, or a wrapper that does not exec)", "bash"],
    ["a look-alike name", "sudoedit"],
    ["an unreadable parent", undefined],
  ])("refuses when the parent is %s (exit 3), naming the variables", (_what, parent) => {
    const probe = fakeProbe({ uid: 0, euid: 0, env, parent });
    const e = guardError(() => isUnderSudo(probe));
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(
      /running as root with SUDO_USER, SUDO_UID set, but not started by sudo/,
    );
    expect(e.message).toMatch(/unset SUDO_USER SUDO_UID SUDO_GID SUDO_COMMAND/);
    guardError(() => resolveIdentity(probe));
  });

  it("refuses when SUDO_UID is missing, even with sudo as parent", () => {
    const probe = fakeProbe({ uid: 0, euid: 0, env: { SUDO_USER: "alice" }, parent: "sudo" });
    guardError(() => isUnderSudo(probe));
  });

  it("refuses when only SUDO_COMMAND is left over", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { SUDO_COMMAND: "/bin/bash" },
      parent: "bash",
    });
    guardError(() => resolveIdentity(probe));
  });

  it("root with no SUDO_* at all is plain root", () => {
    const probe = fakeProbe({ uid: 0, euid: 0, env: { USER: "alice" }, parent: "bash" });
    expect(isUnderSudo(probe)).toBe(false);
    expect(resolveIdentity(probe)).toMatchObject({ operator: "root", sudo: false });
  });
});

describe("resolveIdentity under sudo", () => {
  it("takes the operator from SUDO_USER, checked against passwd, with that user's groups", () => {
    const probe = sudoBy("alice", "1001");
    expect(isUnderSudo(probe)).toBe(true);
    expect(resolveIdentity(probe)).toEqual<Identity>({
      operator: "alice",
      uid: 1001,
      gid: 1001,
      sudo: true,
      loginuid: undefined,
      tty: undefined,
      groups: ["alice", "ops", "haproxy"],
    });
    expect(probe.asked).toContain("alice");
  });

  it("asks for the parent program of its own parent pid", () => {
    const probe = sudoBy("alice", "1001");
    const seen: number[] = [];
    const spy: IdentityProbe = {
      ...probe,
      parentProgram(ppid) {
        seen.push(ppid);
        return probe.parentProgram(ppid);
      },
    };
    expect(isUnderSudo(spy)).toBe(true);
    expect(seen).toEqual([SUDO_PID]);
  });

  it("refuses when SUDO_UID does not match passwd, naming both", () => {
    const e = guardError(() => resolveIdentity(sudoBy("alice", "1002")));
    expect(e.exitCode).toBe(ExitCode.guard);
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain("alice (SUDO_UID 1002)");
    expect(e.message).toContain("gives alice uid 1001");
    expect(e.details).toEqual({ sudoUser: "alice", sudoUid: "1002" });
  });

  it("refuses when SUDO_USER is unknown to passwd", () => {
    const e = guardError(() => resolveIdentity(sudoBy("mallory", "1001")));
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain("mallory (SUDO_UID 1001)");
    expect(e.message).toContain("has no user mallory");
  });

  it("refuses an empty SUDO_USER rather than falling back to root", () => {
    const e = guardError(() => resolveIdentity(sudoBy("", "0")));
    expect(e.message).toContain("has no user");
  });

  it("refuses a SUDO_UID that is not exactly the passwd uid (' 1001', '01001')", () => {
    guardError(() => resolveIdentity(sudoBy("alice", " 1001")));
    guardError(() => resolveIdentity(sudoBy("alice", "01001")));
  });
});

describe("loginuid and tty", () => {
  it("are carried through without sudo", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002, loginuid: 1002, tty: "/dev/pts/3" }));
    expect(id.loginuid).toBe(1002);
    expect(id.tty).toBe("/dev/pts/3");
  });

  it("are carried through under sudo (loginuid keeps the human who logged in)", () => {
    const id = resolveIdentity(sudoBy("alice", "1001", { loginuid: 1001, tty: "/dev/pts/7" }));
    expect(id).toMatchObject({ operator: "alice", sudo: true, loginuid: 1001, tty: "/dev/pts/7" });
  });

  it("stay undefined when unknown", () => {
    const id = resolveIdentity(fakeProbe({ uid: 0 }));
    expect(id.loginuid).toBeUndefined();
    expect(id.tty).toBeUndefined();
  });
});
