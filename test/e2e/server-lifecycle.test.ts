import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startHttpBackend, type HttpBackend } from "../../src/sandbox/backends.js";
import { type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, json, NEUTRAL_AUDIT, type CliResult } from "../helpers/cli.js";
import { rawServersState } from "../helpers/state.js";
import { testHaproxy } from "../helpers/versions.js";

/**
 * A server's life on real HAProxy with real HTTP backends: the suite's HAProxy (Debian's 2.6, or
 * HAPOPS_TEST_HAPROXY), and every binary of the version matrix (HAPOPS_TEST_HAPROXY_DIR; 2.4.0
 * without the TLS frontend, as it has no OpenSSL). What differs by version is read from the
 * binary itself.
 */
const versions = [testHaproxy()];

interface Row {
  backend: string;
  server: string;
  address: string;
  port: number;
  operational: string;
  admin: string;
  weight: number;
}

interface Got {
  status?: number;
  body?: string;
  error?: string;
  at: number;
}

/** A GET through HAProxy's frontend: the status and body, or how the connection failed. */
function get(port: number, path: string): Promise<Got> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, at: Date.now() }));
      res.on("error", (e) => resolve({ error: e.message, at: Date.now() }));
    });
    req.on("error", (e) => resolve({ error: e.message, at: Date.now() }));
    req.end();
  });
}

/** An agent check that always answers "up ready" (configuration.txt, agent-check). */
function startAgent(): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const srv: Server = createServer((s) => {
      // HAProxy may reset an agent connection it no longer needs.
      s.on("error", () => undefined);
      s.end("up ready\n");
    });
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      resolve({
        port: a !== null && typeof a !== "string" ? a.port : 0,
        close: () => new Promise((r) => srv.close(() => r())),
      });
    });
  });
}

function auditLines(): string[] {
  try {
    return readFileSync(NEUTRAL_AUDIT, "utf8").trim().split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

describe.each(versions)("HAProxy $version", ({ version }) => {
  const [major, minor] = version.split(".").map(Number) as [number, number];
  // 2.4 takes few keywords at runtime (no check, no agent) and needs experimental-mode on.
  const v24 = major === 2 && minor < 5;
  // add server and del server only in experimental mode before 2.6.
  const experimental = major === 2 && minor < 6;
  // wait srv-removable from 3.0.
  const v3 = major >= 3;
  let lab: Lab;
  let dir: string;
  const extra: HttpBackend[] = [];
  let agent: { port: number; close: () => Promise<void> } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-lifecycle-"));
    lab = await startTestLab({
      dir,
      serverStateFile: false,
      tcpSocket: true,
      backends: [
        {
          name: "be_app",
          lines: ["balance roundrobin"],
          servers: [{ name: "app1" }, { name: "app2" }],
        },
        { name: "be_static", lines: ["balance static-rr"], servers: [{ name: "st1" }] },
        { name: "be_hash", lines: ["balance source"], servers: [{ name: "h1" }] },
        { name: "be_one", servers: [{ name: "solo" }] },
        {
          name: "be_track",
          // t2 follows t1's checks: HAProxy will not delete t1 at runtime.
          lines: ["server t2 127.0.0.1:9 track be_track/t1"],
          servers: [{ name: "t1" }, { name: "t3" }],
        },
      ],
    });
    for (const name of ["extra1", "extra2", "extra3"]) extra.push(await startHttpBackend(name));
    agent = await startAgent();
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
    await Promise.all(extra.map((b) => b.close()));
    await agent?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: readonly string[]) => hapops(["-s", lab.sockets.admin, ...args]);

  async function servers(backend: string): Promise<Map<string, Row>> {
    const r = await run(["servers", backend, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return new Map(json<Row[]>(r).map((s) => [s.server, s]));
  }

  const state = () => rawServersState(lab.sockets.user);

  /** Requests through the frontend until one is answered by `name`. */
  async function answeredBy(name: string, path = "/"): Promise<void> {
    await waitUntil(
      async () => ((await get(lab.httpPort, path)).body === `${name}\n` ? true : undefined),
      { what: `a request answered by ${name}`, timeoutMs: 20_000, intervalMs: 20 },
    );
  }

  /** A slow request in flight on `backend/server` (the others of be_app out of the way). */
  async function slowOn(
    server: string,
    http: HttpBackend,
    ms: number,
  ): Promise<{ done: Promise<Got> }> {
    const others = [...(await servers("be_app")).keys()].filter((s) => s !== server);
    for (const o of others) expect((await run(["maint", `be_app/${o}`, "--force"])).code).toBe(0);
    const before = http.inFlight;
    const done = get(lab.httpPort, `/slow?ms=${ms}`);
    await waitUntil(() => (http.inFlight > before ? true : undefined), {
      what: `the slow request to reach ${server}`,
      timeoutMs: 10_000,
    });
    for (const o of others) expect((await run(["ready", `be_app/${o}`])).code).toBe(0);
    return { done };
  }

  function expectRefusedWithNothingSent(r: CliResult, before: number, why: RegExp): void {
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(why);
    const records = auditLines()
      .slice(before)
      .map((l) => JSON.parse(l) as { commands: string[]; outcome: string });
    expect(records.length).toBeGreaterThan(0);
    for (const rec of records) {
      expect(rec.commands).toEqual([]);
      expect(rec.outcome).toBe("refused");
    }
  }

  it("adds a server, checked when the version can (--check --wait-up), and it receives requests", async () => {
    const http = extra[0]!;
    const args = v24
      ? ["server", "add", "be_app/dyn1", `127.0.0.1:${http.port}`, "--weight", "100", "--json"]
      : [
          "server",
          "add",
          "be_app/dyn1",
          `127.0.0.1:${http.port}`,
          "--weight",
          "100",
          "--check",
          "--kw",
          "inter=300ms",
          "--wait-up",
          "--poll-interval",
          "100ms",
          "--json",
        ];
    const r = await run(args);
    expect(r.code, r.stderr).toBe(0);
    const report = json<{ sent: string[]; verified: boolean; plan: { describe?: unknown } }>(r);
    expect(report.verified).toBe(true);
    if (v24) {
      // 2.4 takes add server only in experimental mode, set on the same connection first.
      expect(report.sent.slice(0, 2)).toEqual([
        "experimental-mode on",
        `add server be_app/dyn1 127.0.0.1:${http.port} weight 100`,
      ]);
    } else {
      expect(report.sent).toEqual([
        ...(experimental ? ["experimental-mode on"] : []),
        `add server be_app/dyn1 127.0.0.1:${http.port} weight 100 check inter 300ms`,
        "enable health be_app/dyn1",
        "set server be_app/dyn1 state ready",
      ]);
    }
    const dyn1 = (await servers("be_app")).get("dyn1");
    expect(dyn1).toMatchObject({ admin: "READY", operational: "UP", weight: 100, port: http.port });
    await answeredBy("extra1");
    // The human output says what a reload would do.
    const again = await run(["server", "add", "be_app/dyn1", `127.0.0.1:${http.port}`]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/be_app\/dyn1 exists already/);
  });

  it("says what it sends, and that a reload drops the server (dry run: nothing sent)", async () => {
    const before = await state();
    const r = await run(["server", "add", "be_app/dry", "127.0.0.1:9", "--maint", "-n"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/would send/);
    expect(r.stdout).toMatch(/add server be_app\/dry 127\.0\.0\.1:9/);
    if (experimental)
      expect(r.stdout).toMatch(/experimental-mode on first, for this connection only/);
    expect(await state()).toBe(before);
    const real = await run(["server", "add", "be_app/dry", "127.0.0.1:9", "--maint"]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(
      /runtime only: a reload drops be_app\/dry unless haproxy\.cfg has it/,
    );
    expect((await servers("be_app")).get("dry")?.admin).toBe("MAINT");
    const del = await run(["server", "del", "be_app/dry"]);
    expect(del.code, del.stderr).toBe(0);
    expect((await servers("be_app")).has("dry")).toBe(false);
  });

  it("set-addr moves the server's traffic to another live backend", async () => {
    const to = extra[1]!;
    const r = await run(["server", "set-addr", "be_app/dyn1", `127.0.0.1:${to.port}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`be_app/dyn1  127\\.0\\.0\\.1:${extra[0]!.port} -> 127\\.0\\.0\\.1:${to.port}`),
    );
    expect(r.stdout).toMatch(/runtime only: a reload brings back the address in haproxy\.cfg/);
    expect((await servers("be_app")).get("dyn1")).toMatchObject({ port: to.port });
    await answeredBy("extra2");
    // Nothing reaches the old address any more.
    const bodies = await Promise.all(Array.from({ length: 6 }, () => get(lab.httpPort, "/")));
    expect(bodies.map((b) => b.body)).not.toContain("extra1\n");
    const same = await run(["server", "set-addr", "be_app/dyn1", `127.0.0.1:${to.port}`]);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/already; nothing sent/);
  });

  it("deletes a server while a slow request is in flight: waits for the request, then del server", async () => {
    const http = extra[1]!;
    const { done } = await slowOn("dyn1", http, 2500);
    const started = Date.now();
    const r = await run([
      "server",
      "del",
      "be_app/dyn1",
      "--wait",
      "--poll-interval",
      "100ms",
      "--json",
    ]);
    const ended = Date.now();
    expect(r.code, r.stderr).toBe(0);
    const report = json<{
      plan: { wait: { srvRemovable: boolean } };
      sent: string[];
      wait: { drained: boolean; elapsedMs: number };
    }>(r);
    // 3.0+ asks HAProxy (wait srv-removable); before, show stat and show servers conn.
    expect(report.plan.wait.srvRemovable).toBe(v3);
    expect(report.sent).toEqual([
      "set server be_app/dyn1 state maint",
      ...(experimental ? ["experimental-mode on"] : []),
      "del server be_app/dyn1",
    ]);
    expect(report.wait.drained).toBe(true);
    const got = await done;
    expect(got.status).toBe(200);
    expect(got.body).toBe("extra2\n");
    expect(got.at).toBeGreaterThan(started);
    expect(got.at).toBeLessThanOrEqual(ended);
    expect((await servers("be_app")).has("dyn1")).toBe(false);
  });

  it("deletes with --kill-after: the sessions left are cut (recorded), the client sees it", async () => {
    const http = extra[2]!;
    const add = await run(["server", "add", "be_app/dyn2", `127.0.0.1:${http.port}`]);
    expect(add.code, add.stderr).toBe(0);
    const { done } = await slowOn("dyn2", http, 30_000);
    // Without --wait or --kill-after a server in use is refused, before anything is sent.
    const refused = await run(["server", "del", "be_app/dyn2"]);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(
      /refusing server del be_app\/dyn2: it has 1 session, and HAProxy deletes only a server with none/,
    );
    expect((await servers("be_app")).get("dyn2")?.admin).toBe("READY");
    const before = auditLines().length;
    const started = Date.now();
    const r = await run([
      "server",
      "del",
      "be_app/dyn2",
      "--kill-after",
      "1s",
      "--poll-interval",
      "100ms",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/be_app\/dyn2 {2}READY -> MAINT -> deleted {2}\(1 session\)/);
    expect(r.stdout).toMatch(
      /cut after 1s: be_app\/dyn2 has 1 session; sent shutdown sessions server be_app\/dyn2/,
    );
    expect(r.stdout).toMatch(/verified: be_app\/dyn2 is gone/);
    const got = await done;
    // HAProxy answers 502 for a response cut before it began (or the connection drops).
    expect(got.status === 502 || got.error !== undefined, JSON.stringify(got)).toBe(true);
    expect(got.at - started).toBeLessThan(20_000);
    const cut = auditLines()
      .slice(before)
      .map((l) => JSON.parse(l) as { phase: string; commands: string[]; outcome: string | null })
      .filter((x) => x.commands.includes("shutdown sessions server be_app/dyn2"));
    expect(cut.map((x) => [x.phase, x.outcome])).toEqual([
      ["intent", null],
      ["result", "ok"],
    ]);
    expect((await servers("be_app")).has("dyn2")).toBe(false);
  });

  it("drain --wait --wait-timeout 2s --kill-after 5m cuts the sessions left at the timeout and exits 0", async () => {
    const http = lab.backends.get("be_app/app1")!;
    const { done } = await slowOn("app1", http, 30_000);
    const r = await run([
      "drain",
      "be_app/app1",
      "--wait",
      "--wait-timeout",
      "2s",
      "--kill-after",
      "5m",
      "--poll-interval",
      "100ms",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const report = json<{ wait: { drained: boolean; cut: { sent: string[] } }; sent: string[] }>(r);
    expect(report.wait.drained).toBe(true);
    expect(report.wait.cut.sent).toEqual(["shutdown sessions server be_app/app1"]);
    expect(report.sent).toEqual([
      "set server be_app/app1 state drain",
      "shutdown sessions server be_app/app1",
    ]);
    const got = await done;
    expect(got.status === 502 || got.error !== undefined, JSON.stringify(got)).toBe(true);
    expect((await run(["ready", "be_app/app1"])).code).toBe(0);
  });

  it("the exit-6 hint of a drain points at --kill-after and hapops sessions kill", async () => {
    const http = lab.backends.get("be_app/app1")!;
    const { done } = await slowOn("app1", http, 3000);
    const r = await run([
      "drain",
      "be_app/app1",
      "--wait",
      "--wait-timeout",
      "500ms",
      "--poll-interval",
      "100ms",
    ]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(
      /drain wait timed out after .*be_app\/app1 has 1 session; the server stays DRAIN; raise --wait-timeout, add --kill-after <dur> to cut what is left, or cut it now with hapops sessions kill be_app\/app1/,
    );
    expect((await done).status).toBe(200);
    expect((await run(["ready", "be_app/app1"])).code).toBe(0);
  });

  it.skipIf(v24)(
    "--wait-up leaves a server whose check fails in maintenance (exit 6), saying what the check says",
    async () => {
      const r = await run([
        "server",
        "add",
        "be_app/bad1",
        "127.0.0.1:9",
        "--check",
        "--kw",
        "inter=200ms",
        "--wait-up",
        "--wait-timeout",
        "2s",
        "--poll-interval",
        "100ms",
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(6);
      expect(r.stderr).toMatch(
        /the wait for the health check of be_app\/bad1 timed out after 2s: the check of be_app\/bad1 fails: L4CON \(Layer4 connection problem(: .*refused.*)?\); be_app\/bad1 stays in maintenance \(added, checked, taking no traffic\); fix what its check says, then hapops ready be_app\/bad1; or remove it with hapops server del be_app\/bad1/,
      );
      expect((await servers("be_app")).get("bad1")?.admin).toBe("MAINT");
      // No request reached it.
      const bodies = await Promise.all(Array.from({ length: 4 }, () => get(lab.httpPort, "/")));
      expect(bodies.every((b) => b.status === 200)).toBe(true);
      const del = await run(["server", "del", "be_app/bad1"]);
      expect(del.code, del.stderr).toBe(0);
      expect((await servers("be_app")).has("bad1")).toBe(false);
    },
  );

  it("the last-serving guard refuses server del (exit 3, the dry run too), nothing sent", async () => {
    const before = await state();
    for (const args of [
      ["server", "del", "be_one/solo"],
      ["server", "del", "be_one/solo", "-n"],
    ]) {
      const r = await run(args);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /refusing server del be_one\/solo: be_one would have no server that is UP, READY and of weight > 0 \(now serving: solo\)\. Pass --force/,
      );
    }
    expect(await state()).toBe(before);
  });

  it("a backend with a static algorithm refuses add server: HAProxy's words and what to change", async () => {
    for (const be of ["be_static", "be_hash"]) {
      const r = await run(["server", "add", `${be}/x`, `127.0.0.1:${extra[0]!.port}`]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /Backend must use a dynamic load balancing to support dynamic servers\.|Backend does not support dynamic servers/,
      );
      expect(r.stderr).toMatch(
        /roundrobin, leastconn, first, random.*change balance in haproxy\.cfg and reload/,
      );
      expect((await servers(be)).has("x")).toBe(false);
    }
  });

  it("a server HAProxy will never delete is refused in its words and put back as it was", async () => {
    const r = await run(["server", "del", "be_track/t1"]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      v24
        ? /Only servers added at runtime via <add server> CLI cmd can be deleted\. — this HAProxy \(before 2\.5\) deletes only servers added with add server/
        : /This server cannot be removed at runtime due to other configuration elements pointing to it\. — something in haproxy\.cfg points at be_track\/t1/,
    );
    expect(r.stderr).toMatch(
      /it is READY again, as before \(set server be_track\/t1 state ready\)/,
    );
    expect((await servers("be_track")).get("t1")?.admin).toBe("READY");
  });

  it.skipIf(v24)(
    "disables an agent check before maintenance (an agent could lift it), then deletes",
    async () => {
      const add = await run([
        "server",
        "add",
        "be_app/ag1",
        `127.0.0.1:${extra[0]!.port}`,
        "--agent-port",
        String(agent!.port),
        "--kw",
        "agent-inter=200ms",
      ]);
      expect(add.code, add.stderr).toBe(0);
      const r = await run(["server", "del", "be_app/ag1", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      expect(json<{ sent: string[] }>(r).sent).toEqual([
        "disable agent be_app/ag1",
        "set server be_app/ag1 state maint",
        ...(experimental ? ["experimental-mode on"] : []),
        "del server be_app/ag1",
      ]);
      expect((await servers("be_app")).has("ag1")).toBe(false);
    },
  );

  it.runIf(process.getuid?.() === 0)(
    "policy: each command is its own operation, on the server's scope, and cutting sessions is sessions kill",
    async () => {
      // Policy binds non-root users: run as nobody (group nogroup), over the lab's TCP socket.
      const pdir = mkdtempSync(join(inject("runDir"), "lifecycle-policy-"));
      chmodSync(pdir, 0o755);
      const auditDir = join(pdir, "audit");
      mkdirSync(auditDir);
      chownSync(auditDir, 65534, 65534);
      const cfg = join(pdir, "hapops.yaml");
      writeFileSync(
        cfg,
        [
          `socket: ${lab.sockets.tcp}`,
          "audit:",
          `  path: ${join(auditDir, "audit.jsonl")}`,
          "policy:",
          "  groups:",
          '    nogroup: { allow: [read, drain, "server del"], scope: { servers: ["be_app/*"] } }',
          "",
        ].join("\n"),
        { mode: 0o644 },
      );
      const asNobody = (args: string[]) =>
        hapops([...args, "--json"], { env: { HAPOPS_CONFIG: cfg }, uid: 65534, gid: 65534 });
      const before = await state();
      for (const [args, why] of [
        [["drain", "be_app/app1", "--kill-after", "1s"], /sessions kill/],
        [["server", "del", "be_app/app2", "--kill-after", "1s", "-n"], /sessions kill/],
        [["server", "add", "be_app/p1", "127.0.0.1:9"], /server add/],
        [["server", "set-addr", "be_app/app1", "127.0.0.1:9"], /server set-addr/],
        [["server", "del", "be_one/solo", "-n"], /be_app\/\*.*be_one\/solo/],
      ] as const) {
        const r = await asNobody([...args]);
        expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(3);
        const report = json<{ sent: string[]; error: { code: string; message: string } }>(r);
        expect(report.error.code).toBe("POLICY");
        expect(report.error.message).toMatch(why);
        expect(report.sent).toEqual([]);
      }
      expect(await state()).toBe(before);
      // What the rule allows goes through: a dry run of server del, a drain without a cut.
      const ok = await asNobody(["server", "del", "be_app/app2", "--wait", "-n"]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    },
  );

  it("refuses bad keywords, names, addresses and ports (exit 2), with nothing sent", async () => {
    const before = await state();
    const cases: [string[], RegExp][] = [
      [
        ["server", "add", "be_app/k1", "127.0.0.1:80", "--kw", "foo=1"],
        /"foo" is not a server keyword/,
      ],
      [
        ["server", "add", "be_app/k1", "127.0.0.1:80", "--kw", "disabled"],
        /use --maint|with --maint/,
      ],
      [
        ["server", "add", "be_app/k1", "127.0.0.1:80", "--weight", "999"],
        /out of range \(0 to 256\)/,
      ],
      [["server", "add", "be_app/k1", "127.0.0.1:80", "--sni", "str(x)"], /sni needs ssl/],
      [["server", "add", "be_app/k;1", "127.0.0.1:80"], /';' \(a command separator\)/],
      [["server", "add", "be_app/k1", "app.example.com:80"], /not an IP address/],
      [
        ["server", "add", "be_app/k1", "127.0.0.1:70000"],
        /port "70000" must be a whole number from 1 to 65535/,
      ],
      [["server", "add", "be_app/k1", "127.0.0.1:0"], /port "0"/],
      [["server", "add", "be_nope/k1", "127.0.0.1:80"], /no backend named be_nope/],
      [["server", "del", "be_app/nope"], /backend be_app has no server named nope/],
      [["server", "del", "be_app/*"], /is a pattern/],
      [["server", "set-addr", "be_app/app1", "1.2.3:80"], /not an IP address/],
      [
        ["server", "del", "be_app/app1", "--kill-after", "soon"],
        /--kill-after "soon" is not a duration/,
      ],
      ...(v24
        ? ([
            [
              ["server", "add", "be_app/k1", "127.0.0.1:80", "--check"],
              /HAProxy 2\.4 does not take check in add server/,
            ],
          ] as [string[], RegExp][])
        : ([[["server", "add", "be_app/k1", "127.0.0.1:80", "--kw", "cookie=c1"], /3\.0/]] as [
            string[],
            RegExp,
          ][])),
    ];
    for (const [args, why] of cases) {
      // cookie is taken from 3.0: there it is no refusal.
      if (v3 && args.includes("cookie=c1")) continue;
      const n = auditLines().length;
      expectRefusedWithNothingSent(await run(args), n, why);
    }
    expect(await state()).toBe(before);
  });
});
