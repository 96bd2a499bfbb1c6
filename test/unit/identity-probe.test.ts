import { describe, expect, it } from "vitest";
import { parseIdLine, systemProbe } from "../../src/audit/identity.js";
import { runTool } from "../../src/util/tools.js";

describe("parseIdLine: one `id -- <user>` read as getent's entry and `id -Gn`'s groups", () => {
  it("reads the entry, and the groups with the primary group first, as id -Gn prints them", () => {
    expect(
      parseIdLine(
        "uid=1001(alice) gid=1001(alice) groups=1001(alice),27(sudo),998(haproxy)\n",
        1001,
      ),
    ).toEqual({ name: "alice", uid: 1001, gid: 1001, groups: ["alice", "sudo", "haproxy"] });
    // id -Gn prints the gid first and leaves it out of the rest, wherever getgrouplist put it.
    expect(
      parseIdLine("uid=5(bob) gid=50(staff) groups=7(lp),50(staff),50(staff)\n", "bob"),
    ).toEqual({ name: "bob", uid: 5, gid: 50, groups: ["staff", "lp"] });
    expect(parseIdLine("uid=0(root) gid=0(root)\n", 0)).toEqual({
      name: "root",
      uid: 0,
      gid: 0,
      groups: ["root"],
    });
  });

  it.each([
    ["another uid", "uid=1002(bob) gid=1002(bob) groups=1002(bob)\n", 1001],
    ["another name (an alias of the uid)", "uid=0(root) gid=0(root) groups=0(root)\n", "toor"],
    ["a group without a name (id -Gn fails)", "uid=1(a) gid=1(a) groups=1(a),4242\n", 1],
    ["a primary group without a name", "uid=1(a) gid=4242 groups=4242\n", 1],
    ["a user without a name", "uid=1 gid=1(a) groups=1(a)\n", 1],
    [
      "a name with a space (id -Gn splits it)",
      "uid=1(a) gid=1(a) groups=1(a),9(domain users)\n",
      1,
    ],
    ["a name with a bracket", "uid=1(a) gid=1(a) groups=1(a),9(x)y)\n", 1],
    ["anything else", "id: '1': no such user\n", 1],
  ])("leaves %s to getent and id -Gn", (_what, text, key) => {
    expect(parseIdLine(text, key)).toBeUndefined();
  });
});

/** The two helpers the probe asked before: getent passwd, then id -Gn for the name found. */
function twoHelpers(key: string | number) {
  let line: string;
  try {
    line = runTool("getent", "libc-bin", ["passwd", "--", String(key)], {
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
  const [name, , uid, gid] = line.split("\n")[0]!.split(":");
  let groups: string[];
  try {
    groups = runTool("id", "coreutils", ["-Gn", "--", name!], {
      stdio: ["ignore", "pipe", "ignore"],
    })
      .trim()
      .split(/\s+/)
      .filter(Boolean);
  } catch {
    groups = [];
  }
  return { name, uid: Number(uid), gid: Number(gid), groups };
}

describe("systemProbe on this host", () => {
  const users = runTool("getent", "libc-bin", ["passwd"])
    .trim()
    .split("\n")
    .map((l) => l.split(":"))
    .map(([name, , uid]) => ({ name: name!, uid: Number(uid) }));

  it("finds every passwd user, by uid and by name, as getent and id -Gn do", () => {
    expect(users.length).toBeGreaterThan(0);
    for (const u of users)
      for (const key of [u.uid, u.name]) {
        const probe = systemProbe({});
        const entry = probe.lookupUser(key);
        expect({ ...entry, groups: entry && probe.groupsOf(entry.name) }).toEqual(twoHelpers(key));
      }
  });

  it("finds no user where getent finds none", () => {
    const free = Math.max(...users.map((u) => u.uid).filter((u) => u < 4_000_000_000)) + 4242;
    for (const key of [free, "hapops-no-such-user", "4242x", ""])
      expect(systemProbe({}).lookupUser(key)).toEqual(twoHelpers(key));
  });
});
