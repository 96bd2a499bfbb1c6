import { spawnSync } from "node:child_process";
import { chownSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/record.js";
import { hapops, HAPOPS, json, type CliResult } from "../helpers/cli.js";
import { canMakePrivateHost, privateHost, type PrivateHost } from "../helpers/host.js";
import { useLab } from "../helpers/lab.js";

/**
 * The production access pattern, for real and as a hostile operator would try it: `hapops setup`
 * installs the program, the system config and a sudoers rule; real users run it through real
 * sudo. Everything happens in a private host (a mount namespace with overlays on /etc, /var/log
 * and /usr/local), so users, groups and sudoers rules never touch the machine.
 */
const OPS = "hapops-e2e-ops"; // may use sudo hapops
const ADMINS = "hapops-e2e-admins"; // policy: everything
const APP = "hapops-e2e-app"; // policy: read, drain, ready on be_app/* only
const ALICE = "hapops-e2e-alice"; // ops + admins
const CAROL = "hapops-e2e-carol"; // ops + app
const BOB = "hapops-e2e-bob"; // none: not allowed by sudo

const SYSTEM_CONFIG = "/etc/hapops/hapops.yaml";
const SUDOERS = "/etc/sudoers.d/hapops";
const SBIN = "/usr/local/sbin/hapops";
const AUDIT_LOG = "/var/log/hapops/audit.jsonl";
/** A file only root may read, standing for /etc/shadow. */
const SECRET = "/etc/hapops-e2e-secret";
const SECRET_TEXT = "root-only-line-7f3a";
/** A root-only directory, standing for /etc/letsencrypt/live/<domain>. */
const SECRET_DIR = "/etc/hapops-e2e-live";

const lab = useLab({
  backends: [
    {
      name: "be_app",
      servers: [
        { name: "app1", weight: 100 },
        { name: "app2", weight: 100 },
      ],
    },
    { name: "be_api", servers: [{ name: "api1" }, { name: "api2" }] },
  ],
});

let host: PrivateHost;

function sh(cmd: string, ...args: string[]): string {
  const r = host.sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function uidOf(u: string): number {
  return Number(sh("id", "-u", u).trim());
}

/** The kernel's "no login uid", (uid_t)-1. */
const NO_LOGINUID = 4294967295;

/**
 * Run `cmd` in a process whose kernel login uid is the first argument: root may set it (as
 * pam_loginuid does at login), and every process below keeps it, through runuser and sudo. So
 * no test depends on how the runner itself was started (an SSH session has a login uid).
 */
const WITH_LOGINUID = [
  'cur=$(cat /proc/self/loginuid 2>/dev/null) || cur=""',
  'if [ "$cur" != "$1" ] && { [ -n "$cur" ] || [ "$1" != 4294967295 ]; }; then',
  '  echo "$1" > /proc/self/loginuid || { echo "cannot set the login uid to $1" >&2; exit 97; }',
  "fi",
  'shift; exec "$@"',
].join("\n");

/** Whether this machine lets root give a new process a login uid (CONFIG_AUDIT, not immutable). */
function canSetLoginuid(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync(
    "sh",
    ["-c", `${WITH_LOGINUID}`, "sh", "12345", "cat", "/proc/self/loginuid"],
    {
      encoding: "utf8",
    },
  );
  return r.status === 0 && r.stdout.trim() === "12345";
}

/**
 * Run a command as `user` with their groups (runuser sets them up, as a login would), from a
 * process whose login uid is `loginuid` (none unless told).
 */
function asUser(
  user: string,
  args: readonly string[],
  env: Record<string, string> = {},
  loginuid: number = NO_LOGINUID,
): Promise<CliResult> {
  return host.run("sh", [
    "-c",
    WITH_LOGINUID,
    "sh",
    String(loginuid),
    "runuser",
    "-u",
    user,
    "--",
    "env",
    "-i",
    "PATH=/usr/bin:/bin",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...args,
  ]);
}

const viaSudo = (
  user: string,
  args: readonly string[],
  env: Record<string, string> = {},
  loginuid: number = NO_LOGINUID,
) => asUser(user, ["sudo", "-n", SBIN, ...args], env, loginuid);

/**
 * As `ansible -b` runs a module: sudo runs sh, and sh runs the program (sh -c ... python3 there),
 * so sudo is not hapops' parent. sh must not exec it: a command after it keeps sh waiting.
 */
const viaSudoSh = (user: string, args: readonly string[], loginuid: number = NO_LOGINUID) =>
  asUser(
    user,
    [
      "sudo",
      "-n",
      "/bin/sh",
      "-c",
      `echo BECOME-SUCCESS >&2; ${SBIN} "$@"; exit $?`,
      "sh",
      ...args,
    ],
    {},
    loginuid,
  );

/** Root, not through sudo, with SUDO_* left in its environment (a `sudo -s` shell). */
const asRootWithSudoVars = (
  vars: Record<string, string>,
  args: readonly string[],
  loginuid: number,
) =>
  host.run("sh", [
    "-c",
    WITH_LOGINUID,
    "sh",
    String(loginuid),
    "env",
    "-i",
    "PATH=/usr/bin:/bin",
    ...Object.entries(vars).map(([k, v]) => `${k}=${v}`),
    SBIN,
    ...args,
  ]);

function records(): AuditRecord[] {
  const r = host.sh("cat", [AUDIT_LOG]);
  if (r.status !== 0) return [];
  return r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

async function adminState(server: string): Promise<string | undefined> {
  const r = await hapops(["-s", lab().sockets.admin, "servers", "--json"]);
  return json<{ backend: string; server: string; admin: string }[]>(r).find(
    (s) => `${s.backend}/${s.server}` === server,
  )?.admin;
}

function expectNoSecret(r: CliResult): void {
  expect(r.stdout + r.stderr).not.toContain(SECRET_TEXT);
}

describe.runIf(canMakePrivateHost())("the sudo access pattern, in a private host", () => {
  beforeAll(() => {
    host = privateHost();
    for (const g of [OPS, ADMINS, APP]) sh("groupadd", g);
    sh("useradd", "--no-create-home", "--shell", "/bin/sh", "-G", `${OPS},${ADMINS}`, ALICE);
    sh("useradd", "--no-create-home", "--shell", "/bin/sh", "-G", `${OPS},${APP}`, CAROL);
    sh("useradd", "--no-create-home", "--shell", "/bin/sh", BOB);
    const setup = host.sh(process.execPath, [HAPOPS, "setup", "--group", OPS]);
    if (setup.status !== 0) throw new Error(`hapops setup failed: ${setup.stderr}`);
    host.write(
      SYSTEM_CONFIG,
      [
        `socket: ${lab().sockets.admin}`,
        "targets:",
        `  lab: { socket: ${lab().sockets.admin} }`,
        `haproxyConfig: ${lab().configPath}`,
        "audit:",
        `  path: ${AUDIT_LOG}`,
        "policy:",
        "  groups:",
        `    ${ADMINS}: ["*"]`,
        `    ${APP}: { allow: [read, drain, ready], selectors: ["be_app/*"] }`,
        "",
      ].join("\n"),
      0o644,
    );
    host.write(SECRET, `${SECRET_TEXT} has a key but no value\n`, 0o600);
    host.write(join(SECRET_DIR, "fullchain.pem"), `${SECRET_TEXT}\n`, 0o600);
    host.write(join(SECRET_DIR, "privkey.pem"), `${SECRET_TEXT}\n`, 0o600);
    // The operators' scratch space: theirs, as a home directory would be.
    sh("mkdir", "-p", "/usr/local/ops");
    sh("chmod", "1777", "/usr/local/ops");
  });

  afterAll(() => host?.close());

  it("setup installed a sudoers rule that visudo accepts, and root-owned files", () => {
    expect(host.read(SUDOERS)).toContain(`%${OPS} ALL=(root) NOPASSWD: ${SBIN}`);
    expect(sh("stat", "-c", "%a", SUDOERS).trim()).toBe("440");
    expect(host.sh("visudo", ["-cf", SUDOERS]).status).toBe(0);
    for (const f of [SBIN, "/usr/local/lib/hapops/hapops.cjs"]) {
      const [uid, mode] = sh("stat", "-c", "%u %a", f).trim().split(" ");
      expect(uid).toBe("0");
      expect(Number.parseInt(mode!, 8) & 0o022).toBe(0);
    }
  });

  it("an operator drains through sudo, and the audit log names them", async () => {
    const r = await viaSudo(ALICE, ["drain", "be_api/api1", "--reason", "kernel update"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await adminState("be_api/api1")).toBe("DRAIN");
    const [intent, result] = records().filter(
      (x) => x.op === "drain" && x.reason === "kernel update",
    );
    expect(intent).toMatchObject({
      phase: "intent",
      operator: ALICE,
      uid: uidOf(ALICE),
      sudo: true,
      operatorFrom: "sudo",
      sudoUser: ALICE,
      loginuid: null,
    });
    expect(result).toMatchObject({ phase: "result", outcome: "ok", operator: ALICE });
    expect((await viaSudo(ALICE, ["ready", "be_api/api1"])).code).toBe(0);
  });

  it("spoofed SUDO_USER, USER and LOGNAME change nothing", async () => {
    const r = await viaSudo(ALICE, ["weight", "be_app/app2", "90"], {
      SUDO_USER: "root",
      SUDO_UID: "0",
      USER: "root",
      LOGNAME: BOB,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(records().at(-1)).toMatchObject({
      op: "weight",
      operator: ALICE,
      uid: uidOf(ALICE),
      sudo: true,
    });
    expect((await viaSudo(ALICE, ["weight", "be_app/app2", "100"])).code).toBe(0);
  });

  it("a user outside the operators' group is refused by sudo, and nothing changes", async () => {
    const before = records().length;
    const r = await viaSudo(BOB, ["maint", "be_app/app1"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/sudo: a password is required|not allowed/);
    expect(await adminState("be_app/app1")).toBe("READY");
    expect(records()).toHaveLength(before);
  });

  it("policy limits a team to its backends (exit 3), audited", async () => {
    const outside = await viaSudo(CAROL, ["drain", "be_api/api2"]);
    expect(outside.code).toBe(3);
    expect(outside.stderr).toMatch(
      new RegExp(
        `policy refuses drain for ${CAROL}: group ${APP} allows drain only on be_app/\\*, not be_api/api2`,
      ),
    );
    expect(await adminState("be_api/api2")).toBe("READY");
    expect(records().at(-1)).toMatchObject({ operator: CAROL, op: "drain", outcome: "refused" });

    const notAllowed = await viaSudo(CAROL, ["maint", "be_app/app1"]);
    expect(notAllowed.code).toBe(3);
    expect(notAllowed.stderr).toMatch(new RegExp(`group ${APP} does not allow maint`));

    const inside = await viaSudo(CAROL, ["drain", "be_app/app1"]);
    expect(inside.code, inside.stderr).toBe(0);
    expect((await viaSudo(CAROL, ["ready", "be_app/app1"])).code).toBe(0);
    expect((await viaSudo(CAROL, ["servers", "be_app"])).code).toBe(0);
  });

  it.each([
    [["-c", "/tmp/my-policy.yaml", "servers"], /--config is refused under sudo/],
    [
      ["-s", "/tmp/other.sock", "servers"],
      /-s \/tmp\/other\.sock is refused under sudo: use a target named in \/etc\/hapops\/hapops\.yaml \(lab\)/,
    ],
    [["-s", "constructor", "servers"], /-s constructor is refused under sudo/],
    [["-s", "__proto__", "servers"], /-s __proto__ is refused under sudo/],
    [["--insecure-tcp", "servers"], /--insecure-tcp is refused under sudo/],
    [
      ["--master", "/tmp/other-master.sock", "reload", "-n"],
      /--master \/tmp\/other-master\.sock is refused under sudo/,
    ],
    [["audit", "verify", SECRET], /under sudo, hapops audit reads only the configured log/],
  ])("under sudo, hapops %j is refused (exit 3)", async (args, message) => {
    const r = await viaSudo(ALICE, args);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/internal error|at .*\.cjs:\d+/);
    expectNoSecret(r);
  });

  it("under sudo, a named target from the system config is allowed", async () => {
    const r = await viaSudo(ALICE, ["-s", "lab", "servers", "be_app", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<unknown[]>(r)).toHaveLength(2);
  });

  it("refuses a system config that others could have written", async () => {
    sh("chmod", "666", SYSTEM_CONFIG);
    try {
      const r = await viaSudo(ALICE, ["servers"]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/must be owned by root and not writable by group or others/);
    } finally {
      sh("chmod", "644", SYSTEM_CONFIG);
    }
  });

  it("operators can read the audit trail through sudo; the chain verifies", async () => {
    const tail = await viaSudo(ALICE, ["audit", "tail", "-n", "3"]);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout).toMatch(/^SEQ\s+TIME/);
    const verify = await viaSudo(ALICE, ["audit", "verify"]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/OK, \d+ records, hash chain intact/);
    expect(sh("stat", "-c", "%a", AUDIT_LOG).trim()).toBe("600");
  });

  it("doctor sees the sudoers rule and the config, and inspects the configured haproxy.cfg", async () => {
    const r = await viaSudo(ALICE, ["doctor"]);
    expect(r.stdout).toMatch(/^ok\s+sudoers\s+\/etc\/sudoers\.d\/hapops is valid/m);
    expect(r.stdout).toMatch(/^ok\s+config\s+\/etc\/hapops\/hapops\.yaml is valid/m);
    expect(r.stdout).toMatch(/^ok\s+socket level/m);
    expect(r.stdout).toContain(lab().configPath);
  });

  describe.runIf(canSetLoginuid())(
    "who is recorded: the login uid, then sudo's user, then the uid (issue 13)",
    () => {
      const SH_RULE = "/etc/sudoers.d/hapops-e2e-sh";
      // What ansible -b needs: the operators may run a shell as root.
      beforeAll(() => host.write(SH_RULE, `%${OPS} ALL=(root) NOPASSWD: /bin/sh\n`, 0o440));
      afterAll(() => void host?.sh("rm", ["-f", SH_RULE]));

      it("through sudo sh -c (ansible -b), the login uid names the operator, locked down", async () => {
        const carol = uidOf(CAROL);
        const r = await viaSudoSh(
          CAROL,
          ["drain", "be_app/app1", "--reason", "ansible -b", "--json"],
          carol,
        );
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toContain("BECOME-SUCCESS");
        expect(await adminState("be_app/app1")).toBe("DRAIN");
        const rs = records().filter((x) => x.op === "drain" && x.reason === "ansible -b");
        expect(rs.map((x) => x.phase)).toEqual(["intent", "result"]);
        for (const x of rs)
          expect(x).toMatchObject({
            operator: CAROL,
            uid: carol,
            operatorFrom: "loginuid",
            sudo: true,
            sudoUser: null,
            loginuid: carol,
          });
        expect(rs[1]).toMatchObject({ outcome: "ok" });
        expect((await viaSudoSh(CAROL, ["ready", "be_app/app1"], carol)).code).toBe(0);
        expect(await adminState("be_app/app1")).toBe("READY");
      });

      it("through sudo sh -c, the policy and the lock-down apply to the login uid's user", async () => {
        const carol = uidOf(CAROL);
        const outside = await viaSudoSh(CAROL, ["drain", "be_api/api1", "--json"], carol);
        expect(outside.code, outside.stderr).toBe(3);
        expect(outside.stdout + outside.stderr).toMatch(
          new RegExp(
            `policy refuses drain for ${CAROL}: group ${APP} allows drain only on be_app/\\*`,
          ),
        );
        expect(await adminState("be_api/api1")).toBe("READY");
        expect(records().at(-1)).toMatchObject({
          op: "drain",
          outcome: "refused",
          operator: CAROL,
          operatorFrom: "loginuid",
          sudoUser: null,
        });
        host.write("/usr/local/ops/own.yaml", "audit:\n  path: /usr/local/ops/own.jsonl\n", 0o644);
        const ownConfig = await viaSudoSh(
          CAROL,
          ["-c", "/usr/local/ops/own.yaml", "maint", "be_api/api2"],
          carol,
        );
        expect(ownConfig.code, ownConfig.stderr).toBe(3);
        expect(ownConfig.stderr).toMatch(/--config is refused under sudo/);
        expect(await adminState("be_api/api2")).toBe("READY");
      });

      it("through sudo sh -c without a login uid, it is still refused (exit 3) and nothing changes", async () => {
        const before = records().length;
        const r = await viaSudoSh(CAROL, ["drain", "be_app/app1", "--json"]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stdout + r.stderr).toMatch(
          /running as root with SUDO_.* set, but not started by sudo itself \(parent: (sh|dash|bash)\) and with no login uid/,
        );
        expect(await adminState("be_app/app1")).toBe("READY");
        expect(records()).toHaveLength(before);
      });

      it("sudo hapops by one user from another's login: the login user is the operator, sudo's user is recorded beside", async () => {
        const alice = uidOf(ALICE);
        const r = await viaSudo(
          CAROL,
          ["drain", "be_app/app2", "--reason", "alice through carol"],
          {},
          alice,
        );
        expect(r.code, r.stderr).toBe(0);
        const rs = records().filter((x) => x.reason === "alice through carol");
        expect(rs.map((x) => x.phase)).toEqual(["intent", "result"]);
        for (const x of rs)
          expect(x).toMatchObject({
            operator: ALICE,
            uid: alice,
            operatorFrom: "loginuid",
            sudo: true,
            sudoUser: CAROL,
            loginuid: alice,
          });
        expect((await viaSudo(CAROL, ["ready", "be_app/app2"], {}, alice)).code).toBe(0);
      });

      it("a login uid never widens what sudo's user may do: a change the login user's groups allow and sudo's do not is refused", async () => {
        const alice = uidOf(ALICE);
        // ALICE (admins) may do anything; CAROL (app) may only drain and ready be_app/*.
        const maint = await viaSudo(CAROL, ["maint", "be_app/app1"], {}, alice);
        expect(maint.code, maint.stderr).toBe(3);
        expect(maint.stderr).toContain(
          `policy refuses maint for ${ALICE}: ${ALICE}'s groups allow it, but it runs through ${CAROL} (the user sudo authenticated), whose groups must allow it too: group ${APP} does not allow maint`,
        );
        expect(await adminState("be_app/app1")).toBe("READY");
        expect(records().at(-1)).toMatchObject({
          op: "maint",
          outcome: "refused",
          operator: ALICE,
          operatorFrom: "loginuid",
          sudoUser: CAROL,
        });
        const outside = await viaSudo(CAROL, ["drain", "be_api/api2"], {}, alice);
        expect(outside.code, outside.stderr).toBe(3);
        expect(outside.stderr).toMatch(
          new RegExp(
            `runs through ${CAROL} .*group ${APP} allows drain only on be_app/\\*, not be_api/api2`,
          ),
        );
        expect(await adminState("be_api/api2")).toBe("READY");
      });

      it("root with SUDO_* left in its environment and a login uid runs locked down, as the login uid's user", async () => {
        const r = await asRootWithSudoVars(
          { SUDO_USER: ALICE, SUDO_UID: String(uidOf(ALICE)) },
          ["weight", "be_app/app2", "80"],
          uidOf(CAROL),
        );
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(
          new RegExp(`policy refuses weight for ${CAROL}: group ${APP} does not allow weight`),
        );
        expect(records().at(-1)).toMatchObject({
          op: "weight",
          outcome: "refused",
          operator: CAROL,
          operatorFrom: "loginuid",
          sudo: true,
          sudoUser: null,
        });
      });

      it("a login uid that names no user is refused under sudo (exit 3)", async () => {
        const r = await viaSudo(CAROL, ["drain", "be_app/app1"], {}, 54321);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(
          /the login uid \(54321, from \/proc\/self\/loginuid\) names no user/,
        );
        expect(await adminState("be_app/app1")).toBe("READY");
      });
    },
  );

  describe("what a hostile operator tries", () => {
    it("setup through sudo is refused (exit 3), recorded, and the sudoers rule stays as it was", async () => {
      const before = host.read(SUDOERS);
      const r = await viaSudo(ALICE, ["setup", "--group", OPS, "--prefix", "/usr/local/ops/p"]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /hapops setup administers this host and is refused under sudo: an admin runs it as root directly/,
      );
      expect(host.read(SUDOERS)).toBe(before);
      expect(host.sh("test", ["-e", "/usr/local/ops/p"]).status).not.toBe(0);
      expect(records().at(-1)).toMatchObject({
        operator: ALICE,
        op: "setup",
        outcome: "refused",
        sudo: true,
      });
    });

    it("sandbox through sudo is refused (exit 3), recorded, and nothing is created or signalled", async () => {
      for (const action of ["start", "stop", "status"]) {
        const r = await viaSudo(ALICE, ["sandbox", action, "--dir", "/usr/local/ops/sb"]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(/hapops sandbox administers this host and is refused under sudo/);
        expect(records().at(-1)).toMatchObject({ op: "sandbox", outcome: "refused" });
      }
      expect(host.sh("test", ["-e", "/usr/local/ops/sb"]).status).not.toBe(0);
    });

    it("doctor --haproxy-config at a root-only file is refused (exit 3), recorded, and nothing of it is shown", async () => {
      const r = await viaSudo(ALICE, ["doctor", "--haproxy-config", SECRET]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/--haproxy-config \/etc\/hapops-e2e-secret is refused under sudo/);
      expectNoSecret(r);
      expect(records().at(-1)).toMatchObject({ op: "doctor", outcome: "refused" });
    });

    it.each([
      [["acl", "replace", "#0", "--from", SECRET, "-n", "--json"], "--from"],
      [["map", "replace", "#0", "--from", SECRET, "-n"], "--from"],
      [["rotate-cert", "example.com", "--pem", SECRET, "-n"], "--pem"],
      [["rotate-cert", "example.com", "--cert", SECRET, "--key", SECRET, "-n"], "--cert"],
      [["rotate-cert", "example.com", "--certbot-dir", SECRET_DIR, "-n"], "certbot"],
    ])(
      "a root-only file named as input is opened with the operator's rights: %j refused by name only",
      async (args, what) => {
        const r = await viaSudo(ALICE, args);
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stdout + r.stderr).toMatch(new RegExp(`cannot read ${what}.*: permission denied`));
        expectNoSecret(r);
      },
    );

    it("a FIFO named as input is refused at once instead of hanging the run", async () => {
      sh("mkfifo", "/usr/local/ops/fifo");
      sh("chown", ALICE, "/usr/local/ops/fifo");
      const r = await viaSudo(ALICE, [
        "acl",
        "replace",
        "#0",
        "--from",
        "/usr/local/ops/fifo",
        "-n",
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /cannot read --from \/usr\/local\/ops\/fifo: it is not a regular file/,
      );
    });

    it("the operator's own file (mode 0600) is read with their rights", async () => {
      host.write("/usr/local/ops/new.acl", "192.0.2.66\n198.51.100.9\n", 0o600);
      sh("chown", ALICE, "/usr/local/ops/new.acl");
      const r = await viaSudo(ALICE, [
        "acl",
        "replace",
        lab().aclFile,
        "--from",
        "/usr/local/ops/new.acl",
        "-n",
        "--json",
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("198.51.100.9");
    });

    it("--persist refuses, before anything is sent, a file in a directory the operator can write", async () => {
      host.write("/usr/local/ops/next.acl", "192.0.2.66\n203.0.113.5\n", 0o644);
      const dir = lab().dir;
      const st = statSync(dir);
      chownSync(dir, uidOf(ALICE), st.gid);
      try {
        const before = readFileSync(lab().aclFile, "utf8");
        const r = await viaSudo(ALICE, [
          "acl",
          "replace",
          lab().aclFile,
          "--from",
          "/usr/local/ops/next.acl",
          "--persist",
        ]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(
          new RegExp(`${dir} is writable by ${ALICE}, so root will not write there under sudo`),
        );
        expect(readFileSync(lab().aclFile, "utf8")).toBe(before);
        const live = await hapops([
          "-s",
          lab().sockets.admin,
          "acl",
          "show",
          lab().aclFile,
          "--json",
        ]);
        expect(live.stdout).not.toContain("203.0.113.5");
      } finally {
        chownSync(dir, st.uid, st.gid);
      }
    });

    it("--persist counts an ACL that lets the operator write the directory (mode bits alone would miss it)", async () => {
      host.write("/usr/local/ops/next2.acl", "192.0.2.66\n203.0.113.6\n", 0o644);
      const dir = lab().dir;
      expect(spawnSync("setfacl", ["-m", `u:${uidOf(ALICE)}:rwx`, dir]).status).toBe(0);
      try {
        const before = readFileSync(lab().aclFile, "utf8");
        const r = await viaSudo(ALICE, [
          "acl",
          "replace",
          lab().aclFile,
          "--from",
          "/usr/local/ops/next2.acl",
          "--persist",
        ]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(new RegExp(`${dir} is writable by ${ALICE}`));
        expect(readFileSync(lab().aclFile, "utf8")).toBe(before);
        // The probe that found it out left nothing behind.
        expect(readdirSync(dir).filter((f) => f.startsWith(".hapops-probe-"))).toEqual([]);
      } finally {
        spawnSync("setfacl", ["-b", dir]);
      }
    });

    it("helpers never come from the operator's PATH, even where sudoers keeps it", async () => {
      // A drop-in without secure_path, and an `id` and `getent` that claim the admins' group.
      host.write("/etc/sudoers.d/zz-no-secure-path", `Defaults:%${OPS} !secure_path\n`, 0o440);
      const fake = "/usr/local/ops/bin";
      sh("mkdir", "-p", fake);
      for (const t of ["id", "getent"])
        host.write(join(fake, t), `#!/bin/sh\necho ${ADMINS} ${OPS} ${APP}\n`, 0o755);
      try {
        const r = await asUser(CAROL, ["sudo", "-n", SBIN, "maint", "be_api/api1"], {
          PATH: `${fake}:/usr/bin:/bin`,
        });
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(new RegExp(`group ${APP} does not allow maint`));
        expect(await adminState("be_api/api1")).toBe("READY");
      } finally {
        sh("rm", "-f", "/etc/sudoers.d/zz-no-secure-path");
      }
    });

    it("a wrapper that does not exec hapops leaves it not knowing who acts: refused (exit 3), not plain root", async () => {
      const wrap = "/usr/local/sbin/hapops-wrap";
      host.write(wrap, `#!/bin/sh\n${SBIN} "$@"\nexit $?\n`, 0o755);
      host.write("/etc/sudoers.d/hapops-wrap", `%${OPS} ALL=(root) NOPASSWD: ${wrap}\n`, 0o440);
      host.write("/usr/local/ops/own.yaml", "audit:\n  path: /usr/local/ops/own.jsonl\n", 0o644);
      try {
        const r = await asUser(CAROL, [
          "sudo",
          "-n",
          wrap,
          "-c",
          "/usr/local/ops/own.yaml",
          "maint",
          "be_api/api2",
        ]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(
          /running as root with SUDO_USER.* set, but not started by sudo itself/,
        );
        expect(await adminState("be_api/api2")).toBe("READY");
        expect(host.sh("test", ["-e", "/usr/local/ops/own.jsonl"]).status).not.toBe(0);
      } finally {
        sh("rm", "-f", "/etc/sudoers.d/hapops-wrap");
      }
    });

    it("SIGUSR1 sent through sudo never opens a debugger in the root process", async () => {
      // sudo passes on the signals an operator sends it; node opens a debugger on SIGUSR1.
      host.write(
        "/usr/local/ops/usr1.sh",
        [
          "#!/bin/sh",
          "rm -f /usr/local/ops/f && mkfifo /usr/local/ops/f",
          "(echo 'servers be_app'; sleep 4) > /usr/local/ops/f &",
          `sudo -n ${SBIN} shell < /usr/local/ops/f > /usr/local/ops/usr1.out 2>&1 &`,
          "P=$!",
          // Once the shell has answered its first line, node is running: signal it for 2 s.
          "for i in $(seq 1 100); do grep -q SERVER /usr/local/ops/usr1.out 2>/dev/null && break; sleep 0.05; done",
          "seen=0",
          "for i in $(seq 1 40); do",
          "  kill -USR1 $P 2>/dev/null",
          "  sleep 0.05",
          "  ss -ltn 2>/dev/null | grep -q ':9229 ' && seen=1",
          "done",
          "wait $P",
          "echo listening=$seen",
          "",
        ].join("\n"),
        0o755,
      );
      const r = await asUser(ALICE, ["/usr/local/ops/usr1.sh"]);
      expect(r.stdout).toContain("listening=0");
      const out = host.read("/usr/local/ops/usr1.out");
      expect(out).toMatch(/^SERVER/m);
      expect(out).not.toMatch(/Debugger listening/);
    });

    it("hapops run under sudo without the wrapper's node flags is refused", async () => {
      host.write(
        "/etc/sudoers.d/hapops-direct",
        `%${OPS} ALL=(root) NOPASSWD: ${process.execPath} /usr/local/lib/hapops/hapops.cjs servers\n`,
        0o440,
      );
      try {
        const r = await asUser(ALICE, [
          "sudo",
          "-n",
          process.execPath,
          "/usr/local/lib/hapops/hapops.cjs",
          "servers",
        ]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(/SIGUSR1 cannot open a root debugger/);
      } finally {
        sh("rm", "-f", "/etc/sudoers.d/hapops-direct");
      }
    });

    it("root with SUDO_* left in its environment and no login uid is refused, not recorded as someone", async () => {
      const before = records().length;
      const r = await asRootWithSudoVars(
        { SUDO_USER: ALICE, SUDO_UID: "12345" },
        ["weight", "be_app/app2", "80"],
        NO_LOGINUID,
      );
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/unset SUDO_USER SUDO_UID SUDO_GID SUDO_COMMAND first/);
      expect(records()).toHaveLength(before);
    });
  });
});
