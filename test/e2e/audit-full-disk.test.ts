import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { request } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/record.js";
import { waitUntil } from "../../src/util/wait.js";
import { cliEnv, HAPOPS, hapops, json, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { canMountTmpfs } from "../helpers/mount.js";

/**
 * The disk under the audit log fills up while a change is under way, after its intent is on
 * disk: the result must still be recorded (from the reserve), or the operator must be told
 * exactly what was applied. Real HAProxy, real tmpfs, the built CLI as a child process.
 */
const BIG = 150;
const lab = useLab({
  backends: [
    { name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] },
    { name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] },
    {
      name: "be_big",
      servers: Array.from({ length: BIG }, (_, i) => ({ name: `s${i}`, check: false })),
    },
  ],
});

const bigLines = Array.from({ length: BIG }, (_, i) => `set server be_big/s${i} state drain`);
// Records larger than a page, so that none fits in the slack of the log's last page.
const reason = `full-disk test ${"r".repeat(1000)}`;

const canMount = canMountTmpfs();

const mounts: string[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const m of mounts.splice(0)) spawnSync("umount", ["-l", m]);
  await hapops(["-s", lab().sockets.admin, "ready", "*/*"]);
});

let n = 0;
interface Disk {
  readonly mnt: string;
  readonly log: string;
  readonly reserve: string;
  /** Config whose socket is `socket` (default the lab's admin socket), log on the small disk. */
  config(socket?: string): string;
  fill(): void;
  free(): void;
}

/** A small tmpfs for the audit log, mounted for one test. */
function smallDisk(): Disk {
  const dir = join(lab().dir, `full-disk-${++n}`);
  const mnt = join(dir, "log");
  mkdirSync(mnt, { recursive: true });
  expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]).status).toBe(0);
  mounts.push(mnt);
  const log = join(mnt, "audit.jsonl");
  const filler = join(mnt, "filler");
  let configs = 0;
  return {
    mnt,
    log,
    reserve: `${log}.reserve`,
    config: (socket = lab().sockets.admin) => {
      const cfg = join(dir, `hapops-${++configs}.yaml`);
      writeFileSync(cfg, `socket: ${socket}\naudit:\n  path: ${log}\n`);
      return cfg;
    },
    // To the last byte: big writes, then pages, then single bytes, each until ENOSPC.
    fill: () => {
      const fd = openSync(filler, "a");
      try {
        for (const size of [65536, 4096, 1]) {
          const chunk = Buffer.alloc(size, 1);
          for (;;) {
            try {
              writeSync(fd, chunk);
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === "ENOSPC") break;
              throw e;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    free: () => unlinkSync(filler),
  };
}

function records(log: string): AuditRecord[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

/** Start the CLI without waiting for it (the test acts while it runs). */
function start(args: readonly string[], cfg: string): Promise<CliResult> {
  const child = spawn(process.execPath, [HAPOPS, ...args], {
    env: { ...cliEnv(), HAPOPS_CONFIG: cfg },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A unix socket in front of HAProxy's admin socket that passes everything through, but holds
 * HAProxy's answers on a connection once `set server` lines went over it, until `answer()`:
 * HAProxy has applied the change, and hapops, waiting for the answers, has not yet written the
 * result. That is the moment a disk fills "after the intent".
 */
async function slowAnswers(path: string): Promise<{
  readonly sent: Promise<void>;
  answer(): void;
}> {
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  let seen!: () => void;
  const sent = new Promise<void>((r) => (seen = r));
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(lab().sockets.admin);
    sockets.add(client).add(up);
    let tail = "";
    let queue: Promise<void> | undefined;
    client.on("data", (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4096);
      if (!queue && /set server /.test(tail)) {
        queue = answered;
        seen();
      }
      up.write(d);
    });
    const toClient = (f: () => void): void => {
      if (queue) queue = queue.then(f);
      else f();
    };
    up.on("data", (d: Buffer) => toClient(() => void client.write(d)));
    up.on("end", () => toClient(() => void client.end()));
    client.on("end", () => up.end());
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
    client.on("close", () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => {
    answer();
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { sent, answer };
}

/** Wait until the change's lines went out; if the run ends first, fail with its output. */
async function sentBefore(relay: { sent: Promise<void> }, running: Promise<CliResult>) {
  const early = await Promise.race([relay.sent.then(() => undefined), running]);
  if (early) throw new Error(`hapops ended before sending (exit ${early.code}): ${early.stderr}`);
}

async function admins(backend: string): Promise<Map<string, string>> {
  const r = await hapops(["-s", lab().sockets.admin, "servers", backend, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  const rows = json<{ server: string; admin: string }[]>(r);
  return new Map(rows.map((s) => [s.server, s.admin]));
}

/** One runtime command straight to HAProxy's admin socket (not through hapops). */
function haproxy(line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(lab().sockets.admin);
    let out = "";
    s.on("data", (d: Buffer) => (out += d.toString()));
    s.on("end", () => resolve(out));
    s.on("error", reject);
    s.end(`${line}\n`);
  });
}

describe.runIf(canMount)("the audit disk fills after the intent", () => {
  it("records the result from the reserve, warns, exits 0; the next change is refused with nothing sent", async () => {
    const disk = smallDisk();
    const relay = await slowAnswers(join(disk.mnt, "..", "slow.sock"));
    const running = start(
      ["drain", "be_big/*", "--force", "--reason", reason],
      disk.config(join(disk.mnt, "..", "slow.sock")),
    );
    await sentBefore(relay, running);
    const [intent] = await waitUntil(
      () => {
        const rs = records(disk.log);
        return rs.length > 0 ? rs : undefined;
      },
      { what: "the intent in the log", timeoutMs: 10_000 },
    );
    expect(intent).toMatchObject({ phase: "intent", op: "drain", commands: bigLines });
    disk.fill();
    relay.answer();
    const r = await running;

    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/disk holding .*audit\.jsonl is full.*room reserved for it/);
    expect(r.stderr).toMatch(/free space there/);
    const rs = records(disk.log);
    expect(rs.map((x) => [x.phase, x.outcome])).toEqual([
      ["intent", null],
      ["result", "ok"],
    ]);
    expect(rs[1]).toMatchObject({ opId: intent!.opId, commands: bigLines });
    expect([...(await admins("be_big")).values()]).toEqual(Array(BIG).fill("DRAIN"));
    const verify = await hapops(["audit", "verify"], { env: { HAPOPS_CONFIG: disk.config() } });
    expect(verify.stdout, verify.stderr).toMatch(/OK, 2 records/);

    // The disk is still full and the reserve is spent: the next change is refused, unsent.
    const next = await hapops(["maint", "be_app/app1"], { env: { HAPOPS_CONFIG: disk.config() } });
    expect(next.code).toBe(5);
    expect(next.stderr).toMatch(
      /disk is full; refusing to act without a record \(nothing was sent\)/,
    );
    expect((await admins("be_app")).get("app1")).toBe("READY");
    expect(records(disk.log)).toHaveLength(2);
  });

  it("when even the reserve cannot save it, says 'applied but not recorded' with every line (exit 5); the next run closes the intent in the name of the run that died", async () => {
    const disk = smallDisk();
    const relay = await slowAnswers(join(disk.mnt, "..", "slow.sock"));
    const running = start(
      ["drain", "be_big/*", "--force", "--reason", reason],
      disk.config(join(disk.mnt, "..", "slow.sock")),
    );
    await sentBefore(relay, running);
    await waitUntil(() => (records(disk.log).length > 0 ? true : undefined), {
      what: "the intent in the log",
      timeoutMs: 10_000,
    });
    // Someone deletes the reserve to make room, and the room is taken at once.
    unlinkSync(disk.reserve);
    disk.fill();
    relay.answer();
    const r = await running;

    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`applied but not recorded: ${bigLines.join("; ")} — `);
    expect(r.stderr).not.toMatch(/nothing was sent/);
    expect([...(await admins("be_big")).values()]).toEqual(Array(BIG).fill("DRAIN"));
    const [intent, ...rest] = records(disk.log);
    expect(intent).toMatchObject({ phase: "intent", op: "drain" });
    expect(rest).toEqual([]);

    // Room again: the next run (another op) closes the open intent, in the dead run's name.
    disk.free();
    const next = await hapops(["ready", "be_big/*"], { env: { HAPOPS_CONFIG: disk.config() } });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/closed an intent left open by an earlier run \(seq 1\)/);
    const after = records(disk.log);
    expect(after.map((x) => [x.phase, x.op])).toEqual([
      ["intent", "drain"],
      ["outcome-unknown", "drain"],
      ["intent", "ready"],
      ["result", "ready"],
    ]);
    const unknown = after[1]!;
    expect(unknown).toMatchObject({
      opId: intent!.opId,
      pid: intent!.pid,
      pidStart: intent!.pidStart,
      operator: intent!.operator,
      uid: intent!.uid,
      args: intent!.args,
      reason,
      commands: bigLines,
      outcome: "unknown",
      intentSeq: 1,
      closedBy: { operator: "root", uid: 0, opId: after[2]!.opId, pid: after[2]!.pid },
    });
    expect(unknown.closedBy!.pid).not.toBe(intent!.pid);
    const verify = await hapops(["audit", "verify"], { env: { HAPOPS_CONFIG: disk.config() } });
    expect(verify.stdout, verify.stderr).toMatch(/OK, 4 records/);
  });

  it("drain --wait --then maint: a disk that fills during the wait stops the maint, and the error says the drain was sent", async () => {
    const disk = smallDisk();
    // A long request on one server of be_big (routed by path), which the drain then waits for.
    const slow = new Promise<void>((resolve) => {
      request({ host: "127.0.0.1", port: lab().httpPort, path: "/big/slow?ms=600000" }, (res) => {
        res.resume();
        res.on("end", resolve).on("error", () => resolve());
      })
        .on("error", () => resolve())
        .end();
    });
    const busy = await waitUntil(
      () => {
        for (const [name, b] of lab().backends)
          if (name.startsWith("be_big/") && b.inFlight === 1) return name;
        return undefined;
      },
      { what: "the slow request to reach a server of be_big", timeoutMs: 5000 },
    );

    const running = start(
      [
        "drain",
        "be_big/*",
        "--force",
        "--wait",
        "--then",
        "maint",
        "--poll-interval",
        "100ms",
        "--reason",
        reason,
      ],
      disk.config(),
    );
    await waitUntil(
      () => (records(disk.log).some((x) => x.phase === "result") ? true : undefined),
      { what: "the drain's result in the log", timeoutMs: 10_000 },
    );
    disk.fill();
    // The session ends, so the wait ends and hapops moves on to the maint, whose intent (150
    // lines, larger than a page) no longer fits.
    expect(await haproxy(`shutdown sessions server ${busy}`)).not.toMatch(/No such/);
    const r = await running;
    await slow;

    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(
      new RegExp(
        `disk is full; refusing to act without a record \\(nothing more was sent; the ${BIG} lines this run sent before are recorded\\)`,
      ),
    );
    expect(r.stderr).not.toMatch(/\(nothing was sent\)/);
    expect([...(await admins("be_big")).values()]).toEqual(Array(BIG).fill("DRAIN"));
    const rs = records(disk.log);
    expect(rs.map((x) => [x.phase, x.outcome, x.commands])).toEqual([
      ["intent", null, bigLines],
      ["result", "ok", bigLines],
    ]);
    await hapops(["-s", lab().sockets.admin, "ready", "be_big/*"]);
  });
});
