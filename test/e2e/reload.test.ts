import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startHttpBackend, type HttpBackend } from "../../src/sandbox/backends.js";
import { type BackendSpec, type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { testHaproxy } from "../helpers/versions.js";

/**
 * `hapops reload` against HAProxy in real master-worker mode (haproxy -W -S master.sock), with
 * real backends: Debian's 2.6 always, and every binary of the version matrix
 * (HAPOPS_TEST_HAPROXY_DIR; 2.4.0 has no TLS, which the lab needs), since the master CLI's
 * answers changed in 2.7 (Success=).
 */
const versions = [testHaproxy()];

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

/** A GET through HAProxy; resolves with the body (the backend's name). */
function getBody(lab: Lab, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: lab.httpPort, path, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
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

describe.each(versions)("HAProxy $version", ({ version }) => {
  describe.each([
    { stateFile: true, how: "with server-state-file" },
    { stateFile: false, how: "without server-state-file" },
  ])("reload $how", ({ stateFile }) => {
    let lab: Lab;
    let dir: string;
    let config: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "hapops-reload-"));
      lab = await startTestLab({
        dir,
        backends: BACKENDS,
        masterWorker: true,
        serverStateFile: stateFile,
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
    describe("servers only in HAProxy's memory (add server)", () => {
      let app9: HttpBackend;
      let hapopsConfig: string;
      beforeAll(async () => {
        app9 = await startHttpBackend("dyn-app9");
        // drift reads haproxy.cfg from the config (the reload reads the master's -f).
        hapopsConfig = join(dir, "hapops-dynamic.yaml");
        writeFileSync(
          hapopsConfig,
          `audit:\n  path: ${join(dir, "audit-dynamic.jsonl")}\nhaproxyConfig: ${lab.configPath}\n`,
        );
      });
      afterAll(() => app9?.close());
      // Whatever a test left, the next starts without the dynamic servers.
      afterEach(async () => {
        for (const srv of ["app9", "app10"]) {
          const present = await master(lab.sockets.master!, `@1 show servers state be_app`);
          if (!new RegExp(` ${srv} `).test(present)) continue;
          await run(["maint", `be_app/${srv}`, "--force"]);
          await run(["raw", `del server be_app/${srv}`]);
        }
      });
      const runD = (args: readonly string[]) =>
        hapops(["-s", lab.sockets.admin, "--master", lab.sockets.master!, ...args], {
          timeoutMs: 60_000,
          env: { HAPOPS_CONFIG: hapopsConfig },
        });
      /** A reload first, so that the worker is younger than haproxy.cfg (tests rewrite it). */
      const settle = async () => expect((await run(["reload"])).code).toBe(0);
      const addApp9 = async () => {
        const add = await run([
          "raw",
          `add server be_app/app9 127.0.0.1:${app9.port} check inter 500ms rise 1 fall 2 weight 30 maxconn 20`,
        ]);
        expect(add.code, add.stdout + add.stderr).toBe(0);
        expect((await run(["raw", "enable health be_app/app9"])).code).toBe(0);
        expect((await run(["ready", "be_app/app9"])).code).toBe(0);
      };
      const bodies = async (n: number) => {
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) seen.add((await getBody(lab, "/")).trim());
        return seen;
      };

      it("drift shows it as existing only at runtime; hapops reload adds it again on the new worker, which sends it traffic", async () => {
        await settle();
        await addApp9();
        await waitUntil(async () => ((await bodies(20)).has("dyn-app9") ? true : undefined), {
          what: "app9 to take requests before the reload",
          timeoutMs: 20_000,
        });

        const d = await runD(["drift", "--json"]);
        expect(d.code, d.stdout + d.stderr).toBe(1);
        const obj = json<{
          objects: { object: string; reload: string; details: Record<string, unknown> }[];
        }>(d).objects.find((o) => o.object === "be_app/app9");
        expect(obj?.reload).toBe(
          `drop it: it exists only at runtime (added with add server); add it to ${lab.configPath} or run hapops reload, which re-adds it`,
        );
        expect(obj?.details["runtimeOnly"]).toMatchObject({
          addedAtRuntime: true,
          port: app9.port,
          keywords: ["weight 30", "maxconn 20", "check", "rise 1", "fall 2"],
          lost: [],
        });

        const dry = await run(["reload", "--dry-run"]);
        expect(dry.code, dry.stdout + dry.stderr).toBe(0);
        expect(dry.stdout).toContain(
          `be_app/app9  127.0.0.1:${app9.port} weight 30 maxconn 20 check rise 1 fall 2, health check on, READY  -> re-added on the new worker`,
        );
        expect(dry.stdout).toContain(
          `add server be_app/app9 127.0.0.1:${app9.port} weight 30 maxconn 20 check rise 1 fall 2`,
        );

        const before = await procs();
        const r = await run(["reload", "--json"]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const report = json<ReloadReport & { readded?: string[] }>(r);
        expect(report.outcome).toBe("ok");
        expect(report.sent).toEqual([
          "reload",
          `add server be_app/app9 127.0.0.1:${app9.port} weight 30 maxconn 20 check rise 1 fall 2`,
          "enable health be_app/app9",
          "set server be_app/app9 state ready",
        ]);
        expect(report.readded).toEqual(["be_app/app9"]);
        expect(before.workers).not.toContain(report.newWorker);
        // Read back from the new worker itself, through the master: READY, weight 30.
        const state = await workerServers(lab.sockets.master!, report.newWorker);
        expect(state.get("be_app/app9")).toEqual({ admin: 0, weight: 30 });
        // And the new worker sends it requests once its check passes.
        await waitUntil(async () => ((await bodies(20)).has("dyn-app9") ? true : undefined), {
          what: "app9 to take requests after the reload",
          timeoutMs: 20_000,
        });
        const human = await run(["drift"]);
        expect(human.stdout).not.toContain("be_app/app9");
      });

      it("when haproxy.cfg changed since HAProxy loaded it, refuses (it may have been taken out on purpose); --force re-adds it", async () => {
        await settle();
        await addApp9();
        // Edited after the worker started: app9 may have been removed from it on purpose.
        const later = new Date(Date.now() + 5000);
        utimesSync(lab.configPath, later, later);
        const before = await procs();
        for (const args of [["reload"], ["reload", "--dry-run"]]) {
          const r = await run(args);
          expect(r.code, r.stdout + r.stderr).toBe(3);
          expect(r.stderr).toMatch(
            /refusing to reload: be_app\/app9 is in HAProxy's memory but not in .*haproxy\.cfg, which changed since HAProxy loaded it/,
          );
          expect(r.stderr).toMatch(/pass --force to reload and re-add it/);
          expect(r.stderr).toMatch(/hapops server del be_app\/app9/);
        }
        expect((await procs()).workers).toEqual(before.workers);
        const r = await run(["reload", "--force", "--json"]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const report = json<ReloadReport>(r);
        const state = await workerServers(lab.sockets.master!, report.newWorker);
        expect(state.get("be_app/app9")).toEqual({ admin: 0, weight: 30 });
      });

      it("a server with TLS it cannot read back is refused (exit 3); with --force the reload leaves it out and says so", async () => {
        await settle();
        const add = await run([
          "raw",
          `add server be_app/app10 127.0.0.1:${app9.port} ssl verify none weight 5`,
        ]);
        expect(add.code, add.stdout + add.stderr).toBe(0);
        const r = await run(["reload"]);
        expect(r.code, r.stdout + r.stderr).toBe(3);
        expect(r.stderr).toContain(
          "a reload drops be_app/app10, which exists only in HAProxy's memory, and hapops cannot add it again as it was (be_app/app10: ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime))",
        );
        const forced = await run(["reload", "--force"]);
        expect(forced.code, forced.stdout + forced.stderr).toBe(0);
        expect(forced.stdout).toMatch(/left out \(--force\): be_app\/app10 \(ssl/);
        const pid = Number(json<Record<string, string>>(await run(["info", "--json"]))["Pid"]);
        expect((await workerServers(lab.sockets.master!, pid)).has("be_app/app10")).toBe(false);
      });
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
