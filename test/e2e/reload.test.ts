import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startLab, type BackendSpec, type Lab } from "../../src/sandbox/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { haproxyBinaries } from "../helpers/versions.js";

/**
 * `hapops reload` against HAProxy in real master-worker mode (haproxy -W -S master.sock), with
 * real backends: Debian's 2.6 always, and every binary of the version matrix
 * (HAPOPS_TEST_HAPROXY_DIR; 2.4.0 has no TLS, which the lab needs), since the master CLI's
 * answers changed in 2.7 (Success=).
 */
const versions = [
  { version: "Debian's", bin: undefined as string | undefined },
  ...haproxyBinaries({ tls: true }),
];

const BACKENDS: readonly BackendSpec[] = [
  {
    name: "be_app",
    servers: [
      { name: "app1", weight: 100 },
      { name: "app2", weight: 100 },
      { name: "app3", weight: 50 },
    ],
  },
  { name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] },
];

/** One command to the master CLI (non-interactive), read to the end: what the test checks with. */
function master(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    let out = "";
    s.on("data", (d: Buffer) => (out += d.toString()));
    s.on("error", reject);
    s.on("close", () => resolve(out));
    s.end(`${line}\n`);
  });
}

interface Procs {
  master: { pid: number; reloads: number; failed: number };
  workers: number[];
  old: number[];
}

async function showProc(path: string): Promise<Procs> {
  const text = await master(path, "show proc");
  let section = "";
  const out: Procs = { master: { pid: 0, reloads: 0, failed: 0 }, workers: [], old: [] };
  for (const line of text.split("\n")) {
    if (line.startsWith("# ")) section = line.slice(2).trim();
    const m = /^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/.exec(line);
    if (!m) continue;
    if (m[2] === "master")
      out.master = { pid: Number(m[1]), reloads: Number(m[3]), failed: Number(m[4] ?? 0) };
    else if (section === "workers") out.workers.push(Number(m[1]));
    else if (section === "old workers") out.old.push(Number(m[1]));
  }
  return out;
}

/** A worker's servers, read from that worker through the master: `backend/server` -> fields. */
async function workerServers(
  path: string,
  pid: number,
): Promise<Map<string, { admin: number; weight: number }>> {
  const text = await master(path, `@!${pid} show servers state`);
  const out = new Map<string, { admin: number; weight: number }>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 9 || !/^\d+$/.test(f[0]!)) continue;
    out.set(`${f[1]}/${f[3]}`, { admin: Number(f[6]), weight: Number(f[7]) });
  }
  return out;
}

/** A GET through HAProxy; resolves with the status. */
function get(lab: Lab, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: lab.httpPort, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

interface ReloadReport {
  outcome: string;
  sent: string[];
  verified: boolean;
  previousWorkers: number[];
  newWorker: number;
  carried: string[];
  reapply: string[];
  finishing: { pid: number; sessions: number | null }[];
  stateFile: string | null;
  captured: { backend: string; server: string; admin: string; weight: number }[];
  error?: { code: string; message: string };
}

describe.each(versions)("HAProxy $version", ({ version, bin }) => {
  describe.each([
    { stateFile: true, how: "with server-state-file" },
    { stateFile: false, how: "without server-state-file" },
  ])("reload $how", ({ stateFile }) => {
    let lab: Lab;
    let dir: string;
    let config: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "hapops-reload-"));
      lab = await startLab({
        dir,
        backends: BACKENDS,
        masterWorker: true,
        serverStateFile: stateFile,
        ...(bin ? { haproxyBin: bin } : {}),
      });
      config = readFileSync(lab.configPath, "utf8");
    }, 120_000);
    afterAll(async () => {
      await lab?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    afterEach(async () => {
      writeFileSync(lab.configPath, config);
      await run(["ready", "*/*"]);
      await run(["weight", "be_app/app2", "100"]);
    });

    const run = (args: readonly string[]): Promise<CliResult> =>
      hapops(["-s", lab.sockets.admin, "--master", lab.sockets.master!, ...args], {
        timeoutMs: 60_000,
      });
    const procs = () => showProc(lab.sockets.master!);

    it("doctor sees the master CLI and its worker", async () => {
      const r = await run(["doctor"]);
      expect(r.stdout).toMatch(
        /^ok {4}master +.*master\.sock answers: master pid \d+, 1 worker\(s\)/m,
      );
    });

    it("keeps a drain and a weight change across the reload, read back from the new worker", async () => {
      expect((await run(["drain", "be_app/app1"])).code).toBe(0);
      expect((await run(["weight", "be_app/app2", "30"])).code).toBe(0);
      const before = await procs();

      const r = await run(["reload", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = json<ReloadReport>(r);
      expect(report.outcome).toBe("ok");
      expect(report.verified).toBe(true);
      expect(report.captured.map((c) => `${c.backend}/${c.server}`).sort()).toEqual([
        "be_app/app1",
        "be_app/app2",
      ]);
      expect(report.previousWorkers).toEqual(before.workers);
      expect(before.workers).not.toContain(report.newWorker);
      const after = await procs();
      expect(after.workers).toEqual([report.newWorker]);
      expect(after.master.reloads).toBe(before.master.reloads + 1);

      if (stateFile) {
        // The state file carried both: nothing re-applied, only `reload` sent.
        expect(report.stateFile).toBe(lab.stateFile);
        expect(report.sent).toEqual(["reload"]);
        expect(report.carried.sort()).toEqual(["be_app/app1", "be_app/app2"]);
        expect(readFileSync(lab.stateFile!, "utf8")).toMatch(/^1\n# be_id /);
      } else {
        expect(report.stateFile).toBeNull();
        expect(report.reapply.sort()).toEqual(["be_app/app1", "be_app/app2"]);
        expect(report.sent).toEqual([
          "reload",
          "set server be_app/app1 state drain",
          "set server be_app/app2 weight 30",
        ]);
      }
      // Read back from the new worker itself, through the master.
      const state = await workerServers(lab.sockets.master!, report.newWorker);
      expect(state.get("be_app/app1")?.admin).toBe(8); // FDRAIN
      expect(state.get("be_app/app2")?.weight).toBe(30);
      expect(state.get("be_app/app3")).toEqual({ admin: 0, weight: 50 });
      // And the worker socket reaches it.
      const info = await run(["info", "--json"]);
      expect(json<Record<string, string>>(info)["Pid"]).toBe(String(report.newWorker));
    });

    it("refuses a configuration with a syntax error: exit 2 in HAProxy's words, nothing sent, the old worker serving", async () => {
      expect((await run(["drain", "be_app/app1"])).code).toBe(0);
      appendFileSync(lab.configPath, "    bogus_keyword on\n");
      const before = await procs();
      for (const args of [["reload"], ["reload", "--dry-run"]]) {
        const r = await run(args);
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stderr).toMatch(/refusing to reload: HAProxy rejects its configuration/);
        expect(r.stderr).toMatch(/unknown keyword 'bogus_keyword'/);
        expect(r.stderr).toMatch(/nothing was sent/);
      }
      const j = await run(["reload", "--json"]);
      expect(j.code).toBe(2);
      expect(json<ReloadReport>(j)).toMatchObject({
        outcome: "refused",
        sent: [],
        error: { code: "HAPROXY_CONFIG_INVALID" },
      });
      const after = await procs();
      expect(after.master).toEqual(before.master);
      expect(after.workers).toEqual(before.workers);
      expect(await get(lab, "/")).toBe(200);
    });

    it("leaves an old worker finishing a slow request, and reports it", async () => {
      // w2 out of the way so the slow request lands on w1.
      expect((await run(["maint", "be_wait/w2"])).code).toBe(0);
      const slow = get(lab, "/wait/slow?ms=2500");
      slow.catch(() => undefined);
      await waitUntil(() => (lab.backends.get("be_wait/w1")!.inFlight === 1 ? true : undefined), {
        what: "the slow request to reach w1",
        timeoutMs: 5000,
      });
      const before = await procs();
      const r = await run(["reload", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = json<ReloadReport>(r);
      const old = before.workers[0]!;
      expect(report.finishing.map((f) => f.pid)).toContain(old);
      expect(report.finishing.find((f) => f.pid === old)?.sessions).toBeGreaterThanOrEqual(1);
      expect((await procs()).old).toContain(old);
      // The old worker finishes the request, then exits.
      expect(await slow).toBe(200);
      await waitUntil(async () => ((await procs()).old.includes(old) ? undefined : true), {
        what: `old worker ${old} to exit`,
        timeoutMs: 10_000,
      });
      // w2 was in maintenance before the reload, and still is.
      const state = await workerServers(lab.sockets.master!, report.newWorker);
      expect(state.get("be_wait/w2")?.admin).toBe(1); // FMAINT
    });

    it("--dry-run checks and plans the same, and reloads nothing", async () => {
      expect((await run(["drain", "be_app/app3"])).code).toBe(0);
      const before = await procs();
      const r = await run(["reload", "--dry-run", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = json<ReloadReport & { dryRun: boolean }>(r);
      expect(report.dryRun).toBe(true);
      expect(report.captured).toEqual([
        expect.objectContaining({ backend: "be_app", server: "app3", admin: "DRAIN" }),
      ]);
      expect(report.sent).toEqual(
        stateFile ? ["reload"] : ["reload", "set server be_app/app3 state drain"],
      );
      const after = await procs();
      expect(after.master).toEqual(before.master);
      expect(after.workers).toEqual(before.workers);
      const human = await run(["reload", "-n"]);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/be_app\/app3 {2}DRAIN \(config READY\)/);
      expect(human.stdout).toMatch(/would send \(1 line\):\n {2}reload/);
    });
    // Last: after a failed reload 3.2 and later list the serving worker under "old workers".
    it("a reload HAProxy cannot load (a port taken) exits 1 in HAProxy's words; the old worker keeps serving", async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
      try {
        const port = (blocker.address() as AddressInfo).port;
        // haproxy -c does not bind, so the check passes; the new worker cannot bind.
        appendFileSync(lab.configPath, `\nfrontend fe_taken\n    bind 127.0.0.1:${port}\n`);
        const before = await procs();
        const r = await run(["reload", "--json"]);
        expect(r.code, r.stdout + r.stderr).toBe(1);
        const report = json<ReloadReport>(r);
        expect(report.sent).toEqual(["reload"]);
        expect(report.error?.code).toBe("RELOAD_FAILED");
        if (version === "2.8.0") {
          // 2.8.0's master exits when a reload fails ("Non-recoverable mworker wait-mode
          // error, exiting", measured), taking its worker with it: hapops says so at once.
          expect(report.error?.message).toMatch(/stopped answering during the reload/);
          return;
        }
        expect(report.error?.message).toMatch(/the reload failed/);
        // 2.7+ answer Success=0 with the start-up logs; 2.6 only counts the failure.
        expect(report.error?.message).toMatch(/cannot bind socket|\[failed: \d+\]/);
        const after = await procs();
        expect(after.master.failed).toBe(before.master.failed + 1);
        expect([...after.workers, ...after.old]).toEqual(before.workers);
        expect(await get(lab, "/")).toBe(200);
      } finally {
        blocker.close();
      }
    });
  });
});
