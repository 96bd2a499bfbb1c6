import { execFileSync, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { rawServersState } from "../helpers/state.js";
import { AuditLog } from "../../src/audit/log.js";
import type { AuditRecord } from "../../src/audit/record.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { canMountTmpfs } from "../helpers/mount.js";

const lab = useLab({
  backends: [
    {
      name: "be_app",
      servers: [
        { name: "app1", weight: 100 },
        { name: "app2", weight: 100 },
        { name: "app3", weight: 50 },
      ],
    },
    // One server per concurrent run: runs that change the same server would (rightly) see each
    // other's change when they verify.
    {
      name: "be_many",
      servers: Array.from({ length: 20 }, (_, i) => ({ name: `m${i}`, check: false })),
    },
  ],
});

let n = 0;
/** A config of its own for each test: the lab's socket and a fresh audit log. */
function config(extra = ""): { cfg: string; log: string; dir: string } {
  const dir = join(lab().dir, `audit-${++n}`);
  mkdirSync(dir, { recursive: true });
  const log = join(dir, "audit.jsonl");
  const cfg = join(dir, "hapops.yaml");
  writeFileSync(cfg, `socket: ${lab().sockets.admin}\naudit:\n  path: ${log}\n${extra}`);
  return { cfg, log, dir };
}

const run = (cfg: string, args: readonly string[]): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: cfg } });

function records(log: string): AuditRecord[] {
  return readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

const rawState = () => rawServersState(lab().sockets.user);

const canMount = canMountTmpfs();

const mounts: string[] = [];
afterEach(async () => {
  for (const m of mounts.splice(0)) spawnSync("umount", ["-l", m]);
  await hapops(["-s", lab().sockets.admin, "ready", "be_app/*"], {});
  await hapops(["-s", lab().sockets.admin, "weight", "be_app/app3", "50"], {});
});

describe("audit records", () => {
  it("writes an intent before and a result after each change, with who, why and the exact lines", async () => {
    const { cfg, log } = config();
    const r = await run(cfg, ["weight", "be_app/app3", "20", "--reason", "canary step"]);
    expect(r.code, r.stderr).toBe(0);
    const [intent, result] = records(log);
    expect(intent).toMatchObject({
      seq: 1,
      phase: "intent",
      op: "weight",
      operator: "root",
      uid: 0,
      sudo: false,
      host: hostname(),
      target: lab().sockets.admin,
      reason: "canary step",
      commands: ["set server be_app/app3 weight 20"],
      prev: "0".repeat(64),
    });
    expect(result).toMatchObject({ seq: 2, phase: "result", outcome: "ok", opId: intent!.opId });
    expect(statSync(log).mode & 0o777).toBe(0o600);
    const verify = await run(cfg, ["audit", "verify"]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/OK, 2 records, hash chain intact/);
  });

  it("records dry runs, no-ops and refusals (bad input, guard) but not reads", async () => {
    const { cfg, log } = config();
    expect((await run(cfg, ["drain", "be_app/app1", "--dry-run"])).code).toBe(0);
    expect((await run(cfg, ["ready", "be_app/app1"])).code).toBe(0);
    expect((await run(cfg, ["drain", "be_app/app1;maint be_app/app2"])).code).toBe(2);
    expect((await run(cfg, ["maint", "be_app/*"])).code).toBe(3);
    expect((await run(cfg, ["servers"])).code).toBe(0);
    const recs = records(log);
    expect(recs.map((x) => [x.op, x.dryRun, x.phase, x.outcome])).toEqual([
      ["drain", true, "result", "ok"],
      ["ready", false, "result", "noop"],
      ["drain", false, "result", "refused"],
      ["maint", false, "result", "refused"],
    ]);
    expect(recs[0]!.commands).toEqual(["set server be_app/app1 state drain"]);
    expect(recs[2]!.error?.code).toBe("INVALID_INPUT");
    expect(recs[3]!.error?.code).toBe("GUARD");
  });

  it("records reads too when audit.reads is set", async () => {
    const { cfg, log } = config("  reads: true\n");
    expect((await run(cfg, ["servers"])).code).toBe(0);
    expect(records(log).map((x) => [x.op, x.outcome])).toEqual([["servers", "ok"]]);
  });

  it("shows recent records for people, filtered", async () => {
    const { cfg } = config();
    await run(cfg, ["weight", "be_app/app3", "30", "--reason", "why not"]);
    await run(cfg, ["drain", "be_app/app1", "-n"]);
    const r = await run(cfg, ["audit", "tail", "--op", "weight"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(
      /^SEQ\s+TIME \(UTC\)\s+OPERATOR\s+TARGET\s+OP\s+PHASE\s+OUTCOME\s+DETAIL\s+REASON$/,
    );
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(
      /root \(no sudo\)\s+\S+\s+weight\s+result\s+ok\s+set server be_app\/app3 weight 30\s+why not/,
    );
    const json = await run(cfg, ["audit", "tail", "-n", "1", "--json"]);
    expect((JSON.parse(json.stdout.trim()) as AuditRecord).op).toBe("drain");
  });

  it("keeps a valid chain under 20 concurrent runs", async () => {
    const { cfg, log } = config();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => run(cfg, ["weight", `be_many/m${i}`, String(60 + i)])),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const recs = records(log);
    expect(recs).toHaveLength(40);
    expect(recs.map((x) => x.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const byOp = new Map<string, string[]>();
    for (const x of recs) byOp.set(x.opId, [...(byOp.get(x.opId) ?? []), x.phase]);
    expect([...byOp.values()].every((p) => p.join() === "intent,result")).toBe(true);
    expect((await run(cfg, ["audit", "verify"])).stdout).toMatch(/OK, 40 records/);
  });

  it("closes an intent left by a run that died, as outcome-unknown", async () => {
    const { cfg, log } = config();
    const dead = AuditLog.open({ path: log });
    await dead.append([
      {
        opId: "11111111-2222-3333-4444-555555555555",
        step: 1,
        phase: "intent",
        operator: "alice",
        uid: 1001,
        sudo: true,
        loginuid: 1001,
        tty: null,
        host: hostname(),
        pid: 2 ** 22 + 7, // above pid_max: never a live process
        pidStart: 1,
        target: lab().sockets.admin,
        op: "drain",
        args: ["drain", "be_app/app1"],
        reason: null,
        dryRun: false,
        force: false,
        commands: ["set server be_app/app1 state drain"],
        outcome: null,
        error: null,
      },
    ]);
    dead.close();
    const r = await run(cfg, ["weight", "be_app/app3", "45"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/closed an intent left open by an earlier run \(seq 1\)/);
    const recs = records(log);
    expect(recs[1]).toMatchObject({
      phase: "outcome-unknown",
      outcome: "unknown",
      opId: "11111111-2222-3333-4444-555555555555",
      intentSeq: 1,
    });
    expect(recs.slice(2).map((x) => x.phase)).toEqual(["intent", "result"]);
    expect((await run(cfg, ["audit", "verify"])).code).toBe(0);
  });

  it("sends a copy of each record to syslog over UDP (RFC 5424)", async () => {
    const udp = createSocket("udp4");
    const got: string[] = [];
    udp.on("message", (m) => got.push(m.toString()));
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
    try {
      const { cfg } = config(`  syslog: udp://127.0.0.1:${udp.address().port}\n`);
      const r = await run(cfg, ["weight", "be_app/app3", "41"]);
      expect(r.code, r.stderr).toBe(0);
      await waitUntil(() => (got.length >= 2 ? true : undefined), {
        what: "two syslog messages",
        timeoutMs: 5000,
      });
      expect(got[0]).toMatch(
        /^<37>1 \d{4}-\d\d-\d\dT\S+Z \S+ hapops \d+ audit - \{.*"phase":"intent"/,
      );
      expect(got[1]).toMatch(/"phase":"result".*"outcome":"ok"/);
    } finally {
      udp.close();
    }
  });

  it.runIf(process.getuid?.() === 0)(
    "gives a configured group read access (0640), never the world",
    async () => {
      const { cfg, log } = config("  group: adm\n");
      expect((await run(cfg, ["weight", "be_app/app3", "42"])).code).toBe(0);
      const st = statSync(log);
      expect(st.mode & 0o777).toBe(0o640);
      expect(st.gid).toBe(
        Number(execFileSync("getent", ["group", "adm"], { encoding: "utf8" }).split(":")[2]),
      );
    },
  );
});

describe("fail closed", () => {
  it("refuses a change when the audit directory is missing (exit 5), and sends nothing", async () => {
    const { cfg } = config();
    writeFileSync(
      cfg,
      `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(lab().dir, "no-such-dir", "audit.jsonl")}\n`,
    );
    const before = await rawState();
    const r = await run(cfg, ["maint", "be_app/app1"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/audit log .*no-such-dir.*directory does not exist.*nothing was sent/);
    expect(await rawState()).toBe(before);
  });

  it.runIf(canMount)("refuses on a read-only file system (exit 5), and sends nothing", async () => {
    const { cfg, dir, log } = config();
    writeFileSync(log, "");
    spawnSync("mount", ["--bind", dir, dir]);
    mounts.push(dir);
    expect(spawnSync("mount", ["-o", "remount,bind,ro", dir]).status).toBe(0);
    const before = await rawState();
    const r = await run(cfg, ["maint", "be_app/app1"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/read-only/);
    expect(await rawState()).toBe(before);
  });

  it.runIf(canMount)(
    "refuses on a full disk (exit 5), sends nothing, and leaves no half line",
    async () => {
      const { cfg, dir, log } = config();
      const small = join(dir, "small");
      mkdirSync(small);
      expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", small]).status).toBe(0);
      mounts.push(small);
      const small_log = join(small, "audit.jsonl");
      writeFileSync(cfg, `socket: ${lab().sockets.admin}\naudit:\n  path: ${small_log}\n`);
      // Fill the file system to the last byte.
      spawnSync("sh", ["-c", `cat /dev/zero > ${join(small, "filler")}`]);
      const before = await rawState();
      const r = await run(cfg, ["maint", "be_app/app1"]);
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/disk is full/);
      expect(await rawState()).toBe(before);
      expect(readFileSync(small_log, "utf8")).toBe("");
      void log;
    },
  );
});

describe("audit verify", () => {
  it.each([
    [
      "edited",
      (l: string[]) => (l[1] = l[1]!.replace('"root"', '"mallory"')),
      /broken at line 2 \(edited\)/,
    ],
    ["deleted", (l: string[]) => l.splice(2, 1), /broken at line 3 \(deleted\)/],
    // A byte-for-byte copy: either of the two identical lines is the inserted one.
    ["inserted", (l: string[]) => l.splice(2, 0, l[2]!), /broken at line [34] \(inserted\)/],
    ["reordered", (l: string[]) => l.splice(1, 2, l[2]!, l[1]!), /broken at line 2 \(reordered\)/],
  ] as const)("catches a line %s (exit 1, first broken line)", async (_kind, mutate, message) => {
    const { cfg, log, dir } = config();
    for (const w of [21, 22])
      expect((await run(cfg, ["weight", "be_app/app3", String(w)])).code).toBe(0);
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines).toHaveLength(4);
    mutate(lines);
    const bad = join(dir, "tampered.jsonl");
    writeFileSync(bad, lines.join("\n") + "\n");
    const r = await run(cfg, ["audit", "verify", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
