import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/record.js";
import { hapops, HAPOPS, json, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

/**
 * The production access pattern, for real: `hapops setup` installs the program, the system
 * config and a sudoers rule; real users run it through real sudo. Root only (CI runs as root);
 * the files this touches in /etc are backed up and restored.
 */
const isRoot = process.getuid?.() === 0;
const hasSudo = spawnSync("sh", ["-c", "command -v sudo && command -v runuser"]).status === 0;

const OPS = "hapops-e2e-ops"; // may use sudo hapops
const ADMINS = "hapops-e2e-admins"; // policy: everything
const APP = "hapops-e2e-app"; // policy: read, drain, ready on be_app/* only
const ALICE = "hapops-e2e-alice"; // ops + admins
const CAROL = "hapops-e2e-carol"; // ops + app
const BOB = "hapops-e2e-bob"; // none: not allowed by sudo

const SYSTEM_CONFIG = "/etc/hapops/hapops.yaml";
const SUDOERS = "/etc/sudoers.d/hapops";
const BACKUP = ".hapops-e2e-backup";

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

let work = "";
let sbin = "";
let auditLog = "";

function sh(cmd: string, args: readonly string[]): void {
  execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
}

function ensureGroup(g: string): void {
  if (spawnSync("getent", ["group", g]).status !== 0) sh("groupadd", [g]);
}

function ensureUser(u: string, groups: readonly string[]): void {
  if (spawnSync("id", [u]).status !== 0)
    sh("useradd", ["--no-create-home", "--shell", "/bin/sh", u]);
  if (groups.length > 0) sh("usermod", ["-G", groups.join(","), u]);
}

function uidOf(u: string): number {
  return Number(execFileSync("id", ["-u", u], { encoding: "utf8" }).trim());
}

/** Run a command as `user` with their groups (runuser sets them up, as a login would). */
function asUser(
  user: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(
      "runuser",
      [
        "-u",
        user,
        "--",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const viaSudo = (user: string, args: readonly string[], env: Record<string, string> = {}) =>
  asUser(user, ["sudo", "-n", sbin, ...args], env);

function records(): AuditRecord[] {
  if (!existsSync(auditLog)) return [];
  return readFileSync(auditLog, "utf8")
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

describe.runIf(isRoot && hasSudo)("the sudo access pattern", () => {
  // Directories setup creates; removed afterwards unless they were there before.
  const created = ["/etc/hapops", "/var/log/hapops"].filter((d) => !existsSync(d));

  beforeAll(() => {
    for (const f of [SYSTEM_CONFIG, SUDOERS]) if (existsSync(f)) renameSync(f, f + BACKUP);
    for (const g of [OPS, ADMINS, APP]) ensureGroup(g);
    ensureUser(ALICE, [OPS, ADMINS]);
    ensureUser(CAROL, [OPS, APP]);
    ensureUser(BOB, []);
    work = mkdtempSync(join(tmpdir(), "hapops-sudo-"));
    chmodSync(work, 0o755);
    const setup = spawnSync(
      process.execPath,
      [HAPOPS, "setup", "--group", OPS, "--prefix", join(work, "prefix")],
      {
        encoding: "utf8",
      },
    );
    if (setup.status !== 0) throw new Error(`hapops setup failed: ${setup.stderr}`);
    sbin = join(work, "prefix", "sbin", "hapops");
    const auditDir = join(work, "audit");
    mkdirSync(auditDir, { mode: 0o700 });
    auditLog = join(auditDir, "audit.jsonl");
    writeFileSync(
      SYSTEM_CONFIG,
      [
        `socket: ${lab().sockets.admin}`,
        "targets:",
        `  lab: { socket: ${lab().sockets.admin} }`,
        "audit:",
        `  path: ${auditLog}`,
        "policy:",
        "  groups:",
        `    ${ADMINS}: ["*"]`,
        `    ${APP}: { allow: [read, drain, ready], selectors: ["be_app/*"] }`,
        "",
      ].join("\n"),
      { mode: 0o644 },
    );
  });

  afterAll(() => {
    for (const f of [SYSTEM_CONFIG, SUDOERS]) {
      rmSync(f, { force: true });
      if (existsSync(f + BACKUP)) renameSync(f + BACKUP, f);
    }
    for (const u of [ALICE, CAROL, BOB]) spawnSync("userdel", [u]);
    for (const g of [OPS, ADMINS, APP]) spawnSync("groupdel", [g]);
    if (work) rmSync(work, { recursive: true, force: true });
    for (const d of created) rmSync(d, { recursive: true, force: true });
  });

  it("setup installed a sudoers rule that visudo accepts, and root-owned files", () => {
    expect(readFileSync(SUDOERS, "utf8")).toContain(`%${OPS} ALL=(root) NOPASSWD: ${sbin}`);
    expect(statSync(SUDOERS).mode & 0o777).toBe(0o440);
    expect(spawnSync("visudo", ["-cf", SUDOERS]).status).toBe(0);
    for (const f of [sbin, join(work, "prefix", "lib", "hapops", "hapops.cjs")]) {
      const st = statSync(f);
      expect(st.uid).toBe(0);
      expect(st.mode & 0o022).toBe(0);
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
    const last = records().at(-1)!;
    expect(last).toMatchObject({ op: "weight", operator: ALICE, uid: uidOf(ALICE), sudo: true });
    expect((await viaSudo(ALICE, ["weight", "be_app/app2", "100"])).code).toBe(0);
  });

  it("root without sudo is recorded as root, whatever SUDO_* says", async () => {
    const r = await hapops(["weight", "be_app/app2", "80"], {
      env: {
        HAPOPS_CONFIG: SYSTEM_CONFIG,
        SUDO_USER: ALICE,
        SUDO_UID: String(uidOf(ALICE)),
        USER: ALICE,
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(records().at(-1)).toMatchObject({ operator: "root", uid: 0, sudo: false });
    await hapops(["weight", "be_app/app2", "100"], { env: { HAPOPS_CONFIG: SYSTEM_CONFIG } });
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
    [["--insecure-tcp", "servers"], /--insecure-tcp is refused under sudo/],
    [["audit", "verify", "/etc/shadow"], /under sudo, hapops audit reads only the configured log/],
  ])("under sudo, hapops %j is refused (exit 3)", async (args, message) => {
    const r = await viaSudo(ALICE, args);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(message);
  });

  it("under sudo, a named target from the system config is allowed", async () => {
    const r = await viaSudo(ALICE, ["-s", "lab", "servers", "be_app", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<unknown[]>(r)).toHaveLength(2);
  });

  it("refuses a system config that others could have written", async () => {
    chmodSync(SYSTEM_CONFIG, 0o666);
    try {
      const r = await viaSudo(ALICE, ["servers"]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/must be owned by root and not writable by group or others/);
    } finally {
      chmodSync(SYSTEM_CONFIG, 0o644);
    }
  });

  it("operators can read the audit trail through sudo; the chain verifies", async () => {
    const tail = await viaSudo(ALICE, ["audit", "tail", "-n", "3"]);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout).toMatch(/^SEQ\s+TIME/);
    const verify = await viaSudo(ALICE, ["audit", "verify"]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/OK, \d+ records, hash chain intact/);
    expect(statSync(auditLog).mode & 0o777).toBe(0o600);
  });

  it("doctor sees the sudoers rule and the config", async () => {
    const r = await viaSudo(ALICE, ["doctor", "--haproxy-config", lab().configPath]);
    expect(r.stdout).toMatch(/^ok\s+sudoers\s+\/etc\/sudoers\.d\/hapops is valid/m);
    expect(r.stdout).toMatch(/^ok\s+config\s+\/etc\/hapops\/hapops\.yaml is valid/m);
    expect(r.stdout).toMatch(/^ok\s+socket level/m);
  });
});
