import { describe, expect, it } from "vitest";
import {
  isUnderSudo,
  resolveIdentity,
  sudoMode,
  type Identity,
  type IdentityProbe,
} from "../../src/audit/identity.js";
import { fileCredentials, policyRequestFor } from "../../src/engine/run-context.js";
import { ExitCode, GuardError, PolicyError } from "../../src/errors.js";
import { decide, enforcePolicy, type Policy } from "../../src/policy/policy.js";

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
      operatorFrom: "uid",
      sudoUser: undefined,
      loginuid: undefined,
      tty: undefined,
      groups: ["bob", "dev"],
      account: { name: "bob", uid: 1002, gid: 1002, groups: ["bob", "dev"] },
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

describe("root with SUDO_* set, not started by sudo itself, and no login uid: fails closed", () => {
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
    expect(e.message).toMatch(/no login uid \(pam_loginuid sets one at SSH login/);
    expect(e.message).toMatch(/unset SUDO_USER SUDO_UID SUDO_GID SUDO_COMMAND/);
    expect(e.message).not.toContain("\n");
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
      operatorFrom: "sudo",
      sudoUser: "alice",
      loginuid: undefined,
      tty: undefined,
      groups: ["alice", "ops", "haproxy"],
      account: { name: "alice", uid: 1001, gid: 1001, groups: ["alice", "ops", "haproxy"] },
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
    expect(id).toMatchObject({
      operator: "alice",
      sudo: true,
      operatorFrom: "loginuid",
      sudoUser: "alice",
      loginuid: 1001,
      tty: "/dev/pts/7",
    });
  });

  it("stay undefined when unknown", () => {
    const id = resolveIdentity(fakeProbe({ uid: 0 }));
    expect(id.loginuid).toBeUndefined();
    expect(id.tty).toBeUndefined();
  });
});

describe("the login uid names the operator", () => {
  it("without sudo, a login uid that is the real user's decides, with no second lookup", () => {
    const probe = fakeProbe({ uid: 1002, loginuid: 1002 });
    expect(resolveIdentity(probe)).toMatchObject({
      operator: "bob",
      uid: 1002,
      sudo: false,
      operatorFrom: "loginuid",
      sudoUser: undefined,
      loginuid: 1002,
      account: { name: "bob", uid: 1002 },
    });
    expect(probe.asked).toEqual([1002]);
  });

  it("without sudo, a login uid of another user names that user; the run acts through the real one", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002, loginuid: 1001 }));
    expect(id).toEqual<Identity>({
      operator: "alice",
      uid: 1001,
      gid: 1001,
      sudo: false,
      operatorFrom: "loginuid",
      sudoUser: undefined,
      loginuid: 1001,
      tty: undefined,
      groups: ["alice", "ops", "haproxy"],
      account: { name: "bob", uid: 1002, gid: 1002, groups: ["bob", "dev"] },
    });
  });

  it("root acting as itself (su - from alice's login) is recorded as alice, and is not locked down", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { USER: "root" },
      parent: "bash",
      loginuid: 1001,
    });
    expect(isUnderSudo(probe)).toBe(false);
    expect(resolveIdentity(probe)).toMatchObject({
      operator: "alice",
      uid: 1001,
      sudo: false,
      operatorFrom: "loginuid",
      account: { name: "root", uid: 0 },
    });
  });

  it("without sudo, a login uid that passwd does not know is uid-<n>, with no groups", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002, loginuid: 4321 }));
    expect(id).toMatchObject({
      operator: "uid-4321",
      uid: 4321,
      sudo: false,
      operatorFrom: "loginuid",
      groups: [],
      account: { name: "bob", uid: 1002 },
    });
  });

  it("under sudo, the login uid decides, and the user sudo authenticated is recorded beside it", () => {
    const probe = sudoBy("alice", "1001", { loginuid: 1002 });
    expect(sudoMode(probe)).toBe("direct");
    expect(resolveIdentity(probe)).toEqual<Identity>({
      operator: "bob",
      uid: 1002,
      gid: 1002,
      sudo: true,
      operatorFrom: "loginuid",
      sudoUser: "alice",
      loginuid: 1002,
      tty: undefined,
      groups: ["bob", "dev"],
      account: { name: "alice", uid: 1001, gid: 1001, groups: ["alice", "ops", "haproxy"] },
    });
  });

  it("under sudo, sudo's word must still check out when a login uid is set", () => {
    const e = guardError(() => resolveIdentity(sudoBy("alice", "1002", { loginuid: 1001 })));
    expect(e.message).toContain("alice (SUDO_UID 1002)");
  });

  it("under sudo, a login uid that passwd does not know is refused (exit 3) in one line", () => {
    const e = guardError(() => resolveIdentity(sudoBy("alice", "1001", { loginuid: 4321 })));
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(
      /^the login uid \(4321, from \/proc\/self\/loginuid\) names no user in the passwd database; refusing to act with root's rights for an operator the policy cannot be checked for$/,
    );
    expect(e.details).toEqual({ loginuid: 4321 });
  });
});

describe("SUDO_* set without sudo as the direct parent, with a login uid (ansible -b)", () => {
  // ansible -b: sudo runs sh, sh runs python, python runs hapops; SUDO_* come down the chain.
  const env = {
    SUDO_USER: "bob",
    SUDO_UID: "1002",
    SUDO_GID: "1002",
    SUDO_COMMAND: "/bin/sh -c echo BECOME-SUCCESS; /usr/bin/python3",
  };

  it.each([["sh"], ["python3"], ["bash"], [undefined]])(
    "runs locked down for the login uid's user when the parent is %s; SUDO_USER vouches for nobody",
    (parent) => {
      const probe = fakeProbe({ uid: 0, euid: 0, env, parent, loginuid: 1001 });
      expect(sudoMode(probe)).toBe("indirect");
      expect(isUnderSudo(probe)).toBe(true);
      expect(probe.asked).toEqual([]);
      expect(resolveIdentity(probe)).toEqual<Identity>({
        operator: "alice",
        uid: 1001,
        gid: 1001,
        sudo: true,
        operatorFrom: "loginuid",
        sudoUser: undefined,
        loginuid: 1001,
        tty: undefined,
        groups: ["alice", "ops", "haproxy"],
        account: { name: "alice", uid: 1001, gid: 1001, groups: ["alice", "ops", "haproxy"] },
      });
      expect(probe.asked).not.toContain("bob");
    },
  );

  it("only SUDO_COMMAND left over, with a login uid: locked down for the login uid's user", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { SUDO_COMMAND: "/bin/bash" },
      parent: "bash",
      loginuid: 1002,
    });
    expect(sudoMode(probe)).toBe("indirect");
    expect(resolveIdentity(probe)).toMatchObject({ operator: "bob", sudo: true });
  });

  it("sudo as parent without SUDO_UID is not sudo's word; the login uid names the operator", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { SUDO_USER: "bob" },
      parent: "sudo",
      loginuid: 1001,
    });
    expect(sudoMode(probe)).toBe("indirect");
    expect(resolveIdentity(probe)).toMatchObject({
      operator: "alice",
      sudo: true,
      sudoUser: undefined,
    });
  });

  it("a login uid that passwd does not know: locked down, then refused (exit 3)", () => {
    const probe = fakeProbe({ uid: 0, euid: 0, env, parent: "sh", loginuid: 4321 });
    expect(isUnderSudo(probe)).toBe(true);
    const e = guardError(() => resolveIdentity(probe));
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(/^the login uid \(4321, from \/proc\/self\/loginuid\) names no user/);
  });

  it("not root: SUDO_* and a login uid lock nothing down", () => {
    const probe = fakeProbe({ uid: 1002, env, parent: "sh", loginuid: 1001 });
    expect(sudoMode(probe)).toBe("none");
    expect(resolveIdentity(probe)).toMatchObject({
      operator: "alice",
      sudo: false,
      sudoUser: undefined,
      account: { name: "bob" },
    });
  });
});

describe("the policy and the files of a run, from its identity", () => {
  // alice (ops) may do everything; bob (dev) may only read.
  const POLICY: Policy = { ops: { allow: ["*"] }, dev: { allow: ["read"] } };
  const allowed = (id: Identity, op: string, readOnly: boolean) =>
    decide(POLICY, policyRequestFor(id, op, readOnly)!).allowed;

  it("sudo by alice from bob's login: both must allow, so bob's read-only group decides", () => {
    const id = resolveIdentity(sudoBy("alice", "1001", { loginuid: 1002 }));
    expect(policyRequestFor(id, "drain", false)).toEqual({
      operator: "bob",
      groups: ["bob", "dev"],
      op: "drain",
      readOnly: false,
      through: {
        user: "alice",
        groups: ["alice", "ops", "haproxy"],
        role: "the user sudo authenticated",
      },
    });
    expect(allowed(id, "drain", false)).toBe(false);
    expect(allowed(id, "servers", true)).toBe(true);
  });

  it("a login uid never widens what the user sudo authenticated may do", () => {
    // bob (read only) sudo's from a process whose login uid says alice (everything).
    const id = resolveIdentity(sudoBy("bob", "1002", { loginuid: 1001 }));
    expect(id.operator).toBe("alice");
    const req = policyRequestFor(id, "drain", false)!;
    let e: unknown;
    try {
      enforcePolicy(POLICY, req);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).exitCode).toBe(3);
    expect((e as PolicyError).message).toBe(
      "policy refuses drain for alice: alice's groups allow it, but it runs through bob (the user sudo authenticated), whose groups must allow it too: group dev does not allow drain",
    );
    expect(allowed(id, "servers", true)).toBe(true);
  });

  it("both allowing: allowed, and the rule names both", () => {
    const id = resolveIdentity(sudoBy("alice", "1001", { loginuid: 1001 }));
    expect(policyRequestFor(id, "drain", false)!.through).toBeUndefined();
    const both: Policy = { ops: { allow: ["*"] }, dev: { allow: ["read", "drain"] } };
    const crossed = resolveIdentity(sudoBy("alice", "1001", { loginuid: 1002 }));
    expect(decide(both, policyRequestFor(crossed, "drain", false)!)).toEqual({
      allowed: true,
      rule: "group dev allows drain, and for alice group ops allows drain",
    });
  });

  it("without sudo, a login uid of another user is checked with the real user's groups too", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1002, loginuid: 1001 }));
    expect(policyRequestFor(id, "drain", false)!.through).toEqual({
      user: "bob",
      groups: ["bob", "dev"],
      role: "the real user",
    });
    expect(allowed(id, "drain", false)).toBe(false);
  });

  it("without sudo, a login uid passwd does not know gets nothing from a policy", () => {
    const id = resolveIdentity(fakeProbe({ uid: 1001, loginuid: 4321 }));
    expect(allowed(id, "servers", true)).toBe(false);
  });

  it("ansible -b: the policy is asked for the login uid's user alone", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { SUDO_USER: "alice", SUDO_UID: "1001" },
      parent: "sh",
      loginuid: 1002,
    });
    const id = resolveIdentity(probe);
    expect(policyRequestFor(id, "drain", false)).toEqual({
      operator: "bob",
      groups: ["bob", "dev"],
      op: "drain",
      readOnly: false,
    });
    expect(allowed(id, "drain", false)).toBe(false);
  });

  it("root acting as itself is not bound by the policy, whatever its login uid", () => {
    for (const loginuid of [undefined, 1002]) {
      const id = resolveIdentity(fakeProbe({ uid: 0, loginuid }));
      expect(policyRequestFor(id, "drain", false)).toBeUndefined();
      expect(fileCredentials(id)).toBeUndefined();
    }
  });

  it("under sudo, files open with the rights of the user sudo authenticated, not the login uid's", () => {
    const id = resolveIdentity(sudoBy("alice", "1001", { loginuid: 1002 }));
    expect(fileCredentials(id)).toEqual({ user: "alice", uid: 1001, gid: 1001 });
  });

  it("ansible -b: files open with the login uid's user's rights", () => {
    const probe = fakeProbe({
      uid: 0,
      euid: 0,
      env: { SUDO_USER: "alice", SUDO_UID: "1001" },
      parent: "python3",
      loginuid: 1002,
    });
    expect(fileCredentials(resolveIdentity(probe))).toEqual({ user: "bob", uid: 1002, gid: 1002 });
  });

  it("without sudo, files open with the process's own rights", () => {
    expect(fileCredentials(resolveIdentity(fakeProbe({ uid: 1002, loginuid: 1001 })))).toBe(
      undefined,
    );
  });
});
