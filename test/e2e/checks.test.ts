import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { showInfo, showServersState, showStat } from "../../src/commands/builders.js";
import { type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { parseInfo } from "../../src/parse/info.js";
import { checkStateOf } from "../../src/parse/check-state.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStat, toStatEntry } from "../../src/parse/stat.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { testHaproxy } from "../helpers/versions.js";

/**
 * health|agent enable|disable and maxconn against a real HAProxy with real HTTP backends and a
 * real agent (a TCP server answering "up"): Debian's 2.6 always, and every binary of the version
 * matrix (HAPOPS_TEST_HAPROXY_DIR; 2.4.0 has no TLS, which the lab needs). Everything is read
 * back from HAProxy directly, not only from hapops' own report.
 */
const versions = [testHaproxy()];

/** A load-balancer agent (agent-check): answers every connection with one line and closes. */
function startAgent(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => {
      s.on("error", () => undefined);
      s.end("up\n");
    });
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ server, port: a !== null && typeof a !== "string" ? a.port : 0 });
    });
  });
}

/** One runtime command over its own connection to the user socket: what HAProxy says now. */
async function ask(lab: Lab, cmd: Parameters<RuntimeSession["run"]>[0]): Promise<string[]> {
  const socket = await connect(
    { kind: "unix", path: lab.sockets.user },
    { connectTimeoutMs: 2000 },
  );
  const s = RuntimeSession.start(socket, { target: "test", timeoutMs: 5000 });
  try {
    return await s.run(cmd);
  } finally {
    await s.close();
  }
}

/** Each server's health and agent check state, as `show servers state` has it. */
async function checks(lab: Lab): Promise<Record<string, { health: string; agent: string }>> {
  const out: Record<string, { health: string; agent: string }> = {};
  for (const s of parseServersState(await ask(lab, showServersState())))
    out[`${s.backend}/${s.server}`] = {
      health: checkStateOf(s.fields, "health").status,
      agent: checkStateOf(s.fields, "agent").status,
    };
  return out;
}

/** Everything these commands change: check states, server and frontend limits, global maxconn. */
async function snapshot(lab: Lab): Promise<string> {
  const stat = parseStat(await ask(lab, showStat())).map(toStatEntry);
  const info = parseInfo(await ask(lab, showInfo()));
  return JSON.stringify({
    checks: await checks(lab),
    slim: stat
      .filter((e) => e.kind === "server" || e.kind === "frontend")
      .map((e) => `${e.proxy}/${e.name}=${e.row["slim"] ?? "-"}`),
    maxconn: info["Maxconn"],
  });
}

/** A GET through HAProxy's HTTP frontend; resolves with the status and the body. */
function get(lab: Lab, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: lab.httpPort, path, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on("error", reject)
      .end();
  });
}

interface Report {
  outcome: string;
  dryRun: boolean;
  sent: string[];
  verified: boolean;
  plan: {
    op: string;
    scope: Record<string, unknown>;
    guards: { name: string; ok: boolean }[];
  } | null;
  servers?: { backend: string; server: string; health?: string; agent?: string; status: string }[];
  items?: { name: string; maxconn: number | null }[];
}

describe.each(versions)("HAProxy $version", () => {
  let lab: Lab;
  let dir: string;
  let agent: { server: Server; port: number };
  let version = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-checks-"));
    agent = await startAgent();
    lab = await startTestLab({
      dir,
      tcpSocket: true,
      backends: [
        {
          name: "be_app",
          servers: [{ name: "app1" }, { name: "app2" }, { name: "bare", check: false }],
        },
        {
          name: "be_agent",
          lines: [`default-server agent-check agent-port ${agent.port} agent-inter 300ms`],
          servers: [{ name: "a1" }, { name: "a2" }],
        },
      ],
    });
    version = parseInfo(await ask(lab, showInfo()))["Version"] ?? "";
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
    await new Promise((r) => agent?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    // Every test starts with every check on and the limits of the config.
    await run(["health", "enable", "be_app/app1"]);
    await run(["health", "enable", "be_app/app2"]);
    await run(["agent", "enable", "be_agent/*"]);
    await run(["maxconn", "*/*", "0"]);
    await run(["maxconn", "global", "0"]);
    await run(["maxconn", "frontend", "fe_http", "2000"]);
  });

  const run = (args: readonly string[]): Promise<CliResult> =>
    hapops(["-s", lab.sockets.admin, ...args], { timeoutMs: 60_000 });

  const serversJson = async () => {
    const r = await run(["servers", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return new Map(
      json<{ backend: string; server: string; check: string | null; operational: string }[]>(r).map(
        (s) => [`${s.backend}/${s.server}`, s],
      ),
    );
  };

  it("health disable shows in servers (CHECK -, check null) and health enable brings it back", async () => {
    const r = await run(["health", "disable", "be_app/app1", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = json<Report>(r);
    expect(report).toMatchObject({
      outcome: "ok",
      verified: true,
      sent: ["disable health be_app/app1"],
    });
    expect(report.plan).toMatchObject({
      op: "health disable",
      scope: { servers: ["be_app/app1"] },
    });
    expect(report.servers).toEqual([
      expect.objectContaining({ server: "app1", health: "disabled", status: "no check" }),
    ]);
    expect((await checks(lab))["be_app/app1"]!.health).toBe("disabled");
    expect((await serversJson()).get("be_app/app1")).toMatchObject({
      check: null,
      operational: "UP",
    });
    const table = await run(["servers", "be_app"]);
    expect(table.stdout).toMatch(/be_app\/app1 .* UP .* READY .* -\s*$/m);
    // Still UP and in traffic, unchecked.
    expect((await get(lab, "/")).status).toBe(200);

    const human = await run(["health", "enable", "be_app/app1"]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^be_app\/app1 {2}health disabled -> enabled$/m);
    expect(human.stdout).toMatch(
      /^verified: HAProxy reports the health check enabled on be_app\/app1/m,
    );
    expect((await checks(lab))["be_app/app1"]!.health).toBe("enabled");
    await waitUntil(
      async () => ((await serversJson()).get("be_app/app1")?.check === "L7OK" ? true : undefined),
      { what: "app1's check to show in hapops servers again", timeoutMs: 15_000 },
    );
  });

  it("says what disabling means, that a reload undoes it, and a second run sends nothing", async () => {
    const first = await run(["health", "disable", "be_app/app2"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      /^be_app\/app2 {2}health enabled -> disabled {2}\(UP: it stays in traffic, unchecked, until health enable\)$/m,
    );
    expect(first.stdout).toMatch(/^runtime only: a reload enables the health check again/m);
    const before = await snapshot(lab);
    const again = await run(["health", "disable", "be_app/app2", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(json<Report>(again)).toMatchObject({ outcome: "noop", sent: [] });
    const human = await run(["health", "disable", "be_app/app2"]);
    expect(human.stdout).toMatch(/^be_app\/app2 {2}health disabled {2}\(already; nothing sent\)$/m);
    expect(await snapshot(lab)).toBe(before);
  });

  it("a dry run shows every line, sends none, and skips a server without a check", async () => {
    const before = await snapshot(lab);
    const r = await run(["health", "disable", "be_app/*", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("dry run: nothing that changes state is sent");
    expect(r.stdout).toMatch(
      /^be_app\/bare {2}no health check configured {2}\(nothing to disable; nothing sent\)$/m,
    );
    expect(r.stdout).toMatch(
      /would send \(2 lines\):\n {2}disable health be_app\/app1\n {2}disable health be_app\/app2/,
    );
    expect(await snapshot(lab)).toBe(before);
  });

  it("refuses to enable a check a server does not have (exit 2), with nothing sent", async () => {
    const before = await snapshot(lab);
    const r = await run(["health", "enable", "be_app/bare", "--json"]);
    expect(r.code).toBe(2);
    expect(json<{ error: { message: string } }>(r).error.message).toMatch(
      /be_app\/bare has no health check configured \(add "check" to its server line in haproxy.cfg, then reload\)/,
    );
    expect(json<Report>(r)).toMatchObject({ outcome: "refused", sent: [] });
    const agentless = await run(["agent", "enable", "be_app/app1"]);
    expect(agentless.code).toBe(2);
    expect(agentless.stderr).toMatch(/be_app\/app1 has no agent check configured/);
    expect(await snapshot(lab)).toBe(before);
  });

  it("agent disable and enable on servers with a real agent, seen in show stat's agent_status", async () => {
    const agentStatus = async (server: string) =>
      parseStat(await ask(lab, showStat("be_agent")))
        .map(toStatEntry)
        .find((e) => e.name === server)?.row["agent_status"];
    await waitUntil(async () => ((await agentStatus("a1")) ? true : undefined), {
      what: "the agent of a1 to answer once",
      timeoutMs: 15_000,
    });
    const r = await run(["agent", "disable", "be_agent/a1", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<Report>(r)).toMatchObject({
      outcome: "ok",
      verified: true,
      sent: ["disable agent be_agent/a1"],
      plan: { op: "agent disable" },
    });
    expect(await checks(lab)).toMatchObject({
      "be_agent/a1": { health: "enabled", agent: "disabled" },
      "be_agent/a2": { health: "enabled", agent: "enabled" },
    });
    expect(await agentStatus("a1")).toBeUndefined();
    const all = await run(["agent", "enable", "be_agent/*"]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^be_agent\/a1 {2}agent disabled -> enabled$/m);
    expect(all.stdout).toMatch(/^be_agent\/a2 {2}agent enabled {2}\(already; nothing sent\)$/m);
    expect((await checks(lab))["be_agent/a1"]!.agent).toBe("enabled");
    await waitUntil(async () => ((await agentStatus("a1")) ? true : undefined), {
      what: "a1's agent status to show again",
      timeoutMs: 15_000,
    });
  });

  it("maxconn on a server is read back from hapops stat --json; 0 is no limit and traffic flows", async () => {
    const slim = async (server: string) => {
      const r = await run(["stat", `be_app/${server}`, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      return json<{ fields: Record<string, string> }[]>(r)[0]?.fields["slim"];
    };
    const r = await run(["maxconn", "be_app/app1", "7", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<Report>(r)).toMatchObject({
      outcome: "ok",
      verified: true,
      sent: ["set maxconn server be_app/app1 7"],
      items: [{ name: "be_app/app1", maxconn: 7 }],
    });
    expect(await slim("app1")).toBe("7");
    const zero = await run(["maxconn", "be_app/app1", "0"]);
    expect(zero.code, zero.stderr).toBe(0);
    expect(zero.stdout).toMatch(
      /^be_app\/app1 {2}maxconn 7 -> no limit {2}\(0: no limit for a server\)$/m,
    );
    expect(zero.stdout).toMatch(/^runtime only: a reload brings back the maxconn in haproxy.cfg/m);
    expect(await slim("app1")).toBeUndefined();
    for (let i = 0; i < 4; i++) expect((await get(lab, "/")).status).toBe(200);
  });

  it("maxconn frontend is read back from the FRONTEND row; 0 is refused (exit 3) with nothing sent", async () => {
    const feSlim = async () => {
      const r = await run(["stat", "fe_http", "--json"]);
      return json<{ kind: string; fields: Record<string, string> }[]>(r).find(
        (e) => e.kind === "frontend",
      )?.fields["slim"];
    };
    const configured = await feSlim();
    const r = await run(["maxconn", "frontend", "fe_http", "1500", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<Report>(r)).toMatchObject({
      verified: true,
      sent: ["set maxconn frontend fe_http 1500"],
      plan: {
        op: "maxconn frontend",
        scope: { unnamed: "changes a frontend, which no scope names" },
      },
    });
    expect(await feSlim()).toBe("1500");
    const before = await snapshot(lab);
    const dry = await run(["maxconn", "frontend", "fe_http", "0", "-n"]);
    const real = await run(["maxconn", "frontend", "fe_http", "0"]);
    expect(dry.code).toBe(3);
    expect(real.code).toBe(3);
    expect(real.stderr).toMatch(/a frontend with maxconn 0 accepts no new connection at all/);
    expect(await snapshot(lab)).toBe(before);
    expect((await run(["maxconn", "frontend", "fe_http", configured!])).code).toBe(0);
  });

  it("on a full frontend: refused before 3.1 (the deadlock kills HAProxy), done from 3.1; HAProxy lives", async () => {
    const fixed = !/^(2\.|3\.0\.)/.test(version);
    expect((await run(["maxconn", "frontend", "fe_http", "1"])).code).toBe(0);
    // One slow request fills it: 1 connection of 1.
    const slow = get(lab, "/slow?ms=2500");
    await waitUntil(
      () => ([...lab.backends.values()].some((b) => b.inFlight > 0) ? true : undefined),
      { what: "the slow request to reach a backend", timeoutMs: 5000 },
    );
    const r = await run(["maxconn", "frontend", "fe_http", "100"]);
    if (fixed) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^fe_http {2}maxconn 1 -> 100$/m);
    } else {
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/it is at its limit \(1 of 1 connections\).*haproxy issue #2726/);
    }
    expect((await slow).status).toBe(200);
    await waitUntil(
      async () =>
        parseStat(await ask(lab, showStat("fe_http")))
          .map(toStatEntry)
          .find((e) => e.kind === "frontend")?.scur === 0
          ? true
          : undefined,
      { what: "fe_http to have no connection left", timeoutMs: 10_000 },
    );
    // Once it has room, raising it is safe on every version, and HAProxy is still there.
    const after = await run(["maxconn", "frontend", "fe_http", "2000"]);
    expect(after.code, after.stderr).toBe(0);
    expect(parseInfo(await ask(lab, showInfo()))["Version"]).toBe(version);
    expect((await get(lab, "/")).status).toBe(200);
  });

  it("maxconn global is read back from show info; above Hard_maxconn refused (exit 2), 0 restores it", async () => {
    const info = async () => parseInfo(await ask(lab, showInfo()));
    const hard = Number((await info())["Hard_maxconn"]);
    const r = await run(["maxconn", "global", String(hard - 10), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<Report>(r)).toMatchObject({
      verified: true,
      plan: { op: "maxconn global", scope: { unnamed: "changes the whole process" } },
      items: [{ name: "global", maxconn: hard - 10 }],
    });
    expect((await info())["Maxconn"]).toBe(String(hard - 10));
    const before = await snapshot(lab);
    const above = await run(["maxconn", "global", String(hard + 1)]);
    expect(above.code).toBe(2);
    expect(above.stderr).toMatch(/is above \d+, the most this HAProxy allows \(Hard_maxconn/);
    expect(await snapshot(lab)).toBe(before);
    const zero = await run(["maxconn", "global", "0"]);
    expect(zero.code, zero.stderr).toBe(0);
    expect(zero.stdout).toMatch(/\(0: back to the maxconn HAProxy started with, \d+\)/);
    expect((await info())["Maxconn"]).toBe(String(hard));
  });

  it.runIf(process.getuid?.() === 0)(
    "a policy scopes maxconn and health to servers, and keeps maxconn frontend|global to whom it names",
    async () => {
      // Policy binds non-root users: run as nobody (group nogroup), over the lab's TCP socket.
      const pdir = mkdtempSync(join(inject("runDir"), "checks-policy-"));
      chmodSync(pdir, 0o755);
      const auditDir = join(pdir, "audit");
      mkdirSync(auditDir);
      chownSync(auditDir, 65534, 65534);
      const config = (rule: string) => {
        const path = join(pdir, `hapops-${Math.random().toString(36).slice(2)}.yaml`);
        writeFileSync(
          path,
          [
            `socket: ${lab.sockets.tcp}`,
            "audit:",
            `  path: ${join(auditDir, "audit.jsonl")}`,
            "policy:",
            "  groups:",
            `    nogroup: ${rule}`,
            "",
          ].join("\n"),
          { mode: 0o644 },
        );
        return path;
      };
      const asNobody = (cfg: string, args: string[]) =>
        hapops([...args, "--json"], { env: { HAPOPS_CONFIG: cfg }, uid: 65534, gid: 65534 });
      const scoped = config(
        '{ allow: [read, maxconn, "maxconn frontend", "maxconn global", "health disable"], scope: { servers: ["be_app/*"] } }',
      );
      const before = await snapshot(lab);
      for (const [args, why] of [
        [["maxconn", "global", "100"], /changes the whole process/],
        [["maxconn", "frontend", "fe_http", "100"], /changes a frontend, which no scope names/],
        [["health", "disable", "be_agent/a1"], /only on be_app\/\*, not be_agent\/a1/],
        [["health", "enable", "be_app/app1"], /does not allow health enable/],
        [["maxconn", "*/*", "5", "-n"], /not be_agent\/a1/],
      ] as const) {
        const r = await asNobody(scoped, [...args]);
        expect(r.code, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(3);
        const report = json<{ sent: string[]; error: { code: string; message: string } }>(r);
        expect(report.error.code).toBe("POLICY");
        expect(report.error.message).toMatch(why);
        expect(report.sent).toEqual([]);
      }
      expect(await snapshot(lab)).toBe(before);
      const ok = await asNobody(scoped, ["maxconn", "be_app/app1", "5"]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      // Unscoped, "maxconn" does not include "maxconn global": each is its own operation.
      const servers = config("[read, maxconn]");
      const global = await asNobody(servers, ["maxconn", "global", "100"]);
      expect(global.code).toBe(3);
      expect(json<{ error: { message: string } }>(global).error.message).toMatch(
        /group nogroup does not allow maxconn global/,
      );
      const admins = config('[read, "maxconn global"]');
      expect((await asNobody(admins, ["maxconn", "global", "100", "-n"])).code).toBe(0);
    },
  );

  it.each([
    [["health", "off", "be_app/app1"], /say health enable or health disable/],
    [["health", "disable"], /needs a selector/],
    [["health", "disable", "be_app/app9"], /no server named app9 in backend be_app/],
    [["agent", "disable", "be_nope/*"], /no backend named be_nope/],
    [["maxconn", "be_app/app1", "abc"], /maxconn "abc" is not a whole number/],
    [["maxconn", "be_app/app1", "-5"], /is not a whole number/],
    [["maxconn", "be_app/app1"], /maxconn needs a number/],
    [["maxconn", "be;x/app1", "5"], /command separator/],
    [["maxconn", "frontend", "fe_htp", "5"], /no frontend named fe_htp; did you mean fe_http/],
    [["maxconn", "frontend", "be_app", "5"], /be_app is a backend, not a frontend/],
    [["maxconn", "global", "99999999999"], /is not a whole number from 0 to 2147483647/],
    [["maxconn", "global", "5", "6"], /unexpected argument 6/],
  ])("hapops %j is refused (exit 2) with nothing sent", async (args, message) => {
    const before = await snapshot(lab);
    const r = await run(args);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await snapshot(lab)).toBe(before);
  });
});
