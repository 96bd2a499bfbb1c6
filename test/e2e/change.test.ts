import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { rawServersState } from "../helpers/state.js";
import { waitUntil } from "../../src/util/wait.js";
import { cliEnv, HAPOPS, hapops, json, NEUTRAL_AUDIT, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

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
    { name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] },
    { name: "be_one", servers: [{ name: "solo" }] },
    { name: "be_h1", servers: [{ name: "h1a", host: "127.0.0.2" }, { name: "h1b" }] },
    { name: "be_h2", servers: [{ name: "h2a", host: "127.0.0.2" }, { name: "h2b" }] },
    { name: "be_hash", lines: ["balance source"], servers: [{ name: "x1" }, { name: "x2" }] },
  ],
});

interface Row {
  backend: string;
  server: string;
  admin: string;
  weight: number;
  operational: string;
  sessions: number;
}

const run = (args: readonly string[]) => hapops(["-s", lab().sockets.admin, ...args]);

async function servers(backend?: string): Promise<Map<string, Row>> {
  const r = await run(["servers", ...(backend ? [backend] : []), "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return new Map(json<Row[]>(r).map((s) => [`${s.backend}/${s.server}`, s]));
}

const rawState = () => rawServersState(lab().sockets.user);

/** A GET through HAProxy's HTTP frontend; resolves with the status and when it finished. */
function get(path: string): Promise<{ status: number; at: number }> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: lab().httpPort, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, at: Date.now() }));
    })
      .on("error", reject)
      .end();
  });
}

/** Put a slow request on be_wait/w1: w2 out of the way, request in flight, w2 back. */
async function slowRequestOnW1(ms: number | "hold") {
  expect((await run(["maint", "be_wait/w2"])).code).toBe(0);
  const pending = get(ms === "hold" ? "/wait/slow?hold=1" : `/wait/slow?ms=${ms}`);
  await waitUntil(() => (lab().backends.get("be_wait/w1")!.inFlight === 1 ? true : undefined), {
    what: "the slow request to reach w1",
    timeoutMs: 5000,
  });
  expect((await run(["ready", "be_wait/w2"])).code).toBe(0);
  // Wrapped: awaiting a bare promise here would wait for the request to finish.
  return { done: pending };
}

afterEach(async () => {
  // Every test starts from every server READY at its configured weight.
  await run(["ready", "*/*"]);
  for (const [b, w] of [
    ["be_app/app1", "100"],
    ["be_app/app2", "100"],
    ["be_app/app3", "50"],
  ] as const)
    await run(["weight", b, w]);
});

/** Audit records appended to this run's log (the neutral config's) since `from` lines. */
function auditSince(from: number): { op: string; phase: string; args: unknown }[] {
  if (!existsSync(NEUTRAL_AUDIT)) return [];
  return readFileSync(NEUTRAL_AUDIT, "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(from)
    .map((l) => JSON.parse(l) as { op: string; phase: string; args: unknown });
}

describe("drain --wait", () => {
  it("waits for a long-running request to finish, then puts the server in maintenance", async () => {
    // The request is held until the drain is recorded (its result is written just before the
    // wait's first poll), so it ends while hapops waits, however slow the machine.
    const from = auditSince(0).length;
    const req = (await slowRequestOnW1("hold")).done;
    const started = Date.now();
    const pending = run([
      "drain",
      "be_wait/w1",
      "--wait",
      "--then",
      "maint",
      "--poll-interval",
      "100ms",
    ]);
    await waitUntil(
      () =>
        auditSince(from).some((a) => a.op === "drain" && a.phase === "result") &&
        !existsSync(`${NEUTRAL_AUDIT}.lock`)
          ? true
          : undefined,
      { what: "the drain's result in the audit log", timeoutMs: 30_000 },
    );
    lab().backends.get("be_wait/w1")!.release();
    const r = await pending;
    const done = Date.now();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/be_wait\/w1 {2}READY -> DRAIN {2}\(1 session\)/);
    expect(r.stdout).toMatch(/drained: no sessions left after/);
    expect(r.stdout).toMatch(/be_wait\/w1 {2}DRAIN -> MAINT/);
    const res = await req;
    expect(res.status).toBe(200);
    // The request ended while hapops waited, not before it started.
    expect(res.at).toBeGreaterThan(started);
    expect(res.at).toBeLessThanOrEqual(done);
    expect((await servers("be_wait")).get("be_wait/w1")?.admin).toBe("MAINT");
  });

  it("gives up at --wait-timeout (exit 6), says what is left, and leaves the server DRAIN", async () => {
    const req = (await slowRequestOnW1("hold")).done;
    const r = await run([
      "drain",
      "be_wait/w1",
      "--wait",
      "--wait-timeout",
      "600ms",
      "--poll-interval",
      "100ms",
    ]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(
      /drain wait timed out after .*be_wait\/w1 has 1 session; the server stays DRAIN/,
    );
    expect((await servers("be_wait")).get("be_wait/w1")?.admin).toBe("DRAIN");
    lab().backends.get("be_wait/w1")!.release();
    expect((await req).status).toBe(200);
  });

  it("--wait-timeout and --poll-interval ask for the wait on their own (the dry run shows it)", async () => {
    for (const flag of [
      ["--wait-timeout", "10s"],
      ["--poll-interval", "200ms"],
    ]) {
      const r = await run(["drain", "be_wait/w1", ...flag, "-n"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^then: wait up to (10s|10m) for sessions to reach 0$/m);
    }
    const plain = await run(["drain", "be_wait/w1", "-n"]);
    expect(plain.stdout).not.toMatch(/then: wait/);
  });

  it("with --json, reports the plan, what was sent, the verified state and the wait", async () => {
    const r = await run(["drain", "be_wait/w1", "--wait", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = json<{
      steps: { sent: string[]; verified: boolean; servers: Row[] }[];
      wait: { drained: boolean };
    }>(r);
    expect(report.steps[0]?.sent).toEqual(["set server be_wait/w1 state drain"]);
    expect(report.steps[0]?.verified).toBe(true);
    expect(report.steps[0]?.servers[0]).toMatchObject({ server: "w1", admin: "DRAIN" });
    expect(report.wait.drained).toBe(true);
  });
});

describe("guards", () => {
  it("refuses to drain a server in maintenance (exit 3, in the dry run too): leaving it is ready's job", async () => {
    expect((await run(["maint", "be_app/app3"])).code).toBe(0);
    const before = await rawState();
    for (const args of [
      ["drain", "be_app/app3"],
      ["drain", "be_app/app3", "-n"],
      ["drain", "be_app/*"],
    ]) {
      const r = await run(args);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /be_app\/app3 is in maintenance \(MAINT\), and drain would take it out of maintenance.*hapops ready.*--force/,
      );
    }
    expect(await rawState()).toBe(before);
    const forced = await run(["drain", "be_app/app3", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await servers("be_app")).get("be_app/app3")?.admin).toBe("DRAIN");
  });

  it("judges a ramp by where it ends, before its first step is sent", async () => {
    const before = await rawState();
    const r = await run(["weight", "be_app/*", "--ramp-to", "0", "--step", "10", "--every", "1s"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/where the ramp ends, at weight 0.*be_app would have no server/);
    expect(r.stdout).not.toMatch(/verified/);
    expect(await rawState()).toBe(before);
  });

  it("takes a weight above 100% of the configured one, as HAProxy does", async () => {
    const r = await run(["weight", "be_app/app3", "150%"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/be_app\/app3 {2}weight 50 -> 75/);
  });

  it("refuses to leave a backend with no serving server (exit 3), and --force overrides", async () => {
    const r = await run(["maint", "be_one/solo"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /be_one would have no server that is UP, READY and of weight > 0.*--force/,
    );
    expect((await servers("be_one")).get("be_one/solo")?.admin).toBe("READY");

    const zero = await run(["weight", "be_one/solo", "0"]);
    expect(zero.code).toBe(3);

    const forced = await run(["maint", "be_one/solo", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/warning: --force/);
    expect((await servers("be_one")).get("be_one/solo")?.admin).toBe("MAINT");
  });

  it("counts servers that are already out: the second-to-last drain passes, the last one is refused", async () => {
    expect((await run(["drain", "be_app/app1"])).code).toBe(0);
    expect((await run(["maint", "be_app/app2"])).code).toBe(0);
    const r = await run(["drain", "be_app/app3"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/now serving: app3/);
  });
});

describe("selectors", () => {
  it("--addr takes a host out of every backend it is in", async () => {
    const r = await run(["maint", "--addr", "127.0.0.2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/be_h1\/h1a {2}READY -> MAINT/);
    expect(r.stdout).toMatch(/be_h2\/h2a {2}READY -> MAINT/);
    const all = await servers();
    expect(
      [...all.values()].filter((s) => s.admin === "MAINT").map((s) => `${s.backend}/${s.server}`),
    ).toEqual(["be_h1/h1a", "be_h2/h2a"]);
  });

  it("*/server and backend/* pick what they say", async () => {
    const r = await run(["weight", "be_app/*", "10", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const sent = json<{ steps: { sent: string[] }[] }>(r).steps[0]?.sent;
    expect(sent).toEqual([
      "set server be_app/app1 weight 10",
      "set server be_app/app2 weight 10",
      "set server be_app/app3 weight 10",
    ]);
    const dry = await run(["drain", "*/w2", "--dry-run"]);
    expect(dry.stdout).toMatch(/^be_wait\/w2 {2}READY -> DRAIN/m);
  });

  it.each([
    [["drain", "be_app/ap1"], /no server named ap1 in backend be_app; did you mean app1/],
    [["drain", "be_ap/app1"], /no backend named be_ap; did you mean be_app/],
    [["drain", "*/nope"], /no server named nope in any backend/],
    [["drain", "--addr", "10.9.9.9"], /no server has address 10\.9\.9\.9/],
    [["drain", "--addr", "300.1.1.1"], /is not an IP address/],
    [["drain", "be_app/app1;maint"], /contains ';' \(a command separator\)/],
    [["drain", "be_app"], /needs backend\/server/],
    [["drain"], /drain needs a selector/],
    [["drain", "be_app/app1", "--addr", "127.0.0.1"], /not both/],
    [["weight", "be_app/app1", "257"], /weight "257" is not valid: use 0-256, or N%/],
    [["weight", "be_app/app1", "abc"], /weight "abc" is not valid/],
    [["weight", "be_app/app1", "10000%"], /not valid: use 0-256, or N%/],
    [["weight", "be_app/app1"], /needs a weight/],
    [["maint", "be_app/app1", "--wait"], /unknown option '--wait'/],
  ])("hapops %j is refused (exit 2) with nothing sent", async (args, message) => {
    const before = await rawState();
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await rawState()).toBe(before);
  });
});

describe("dry run and idempotence", () => {
  it("--dry-run shows the exact lines and leaves show servers state identical", async () => {
    const before = await rawState();
    const r = await run(["weight", "be_app/*", "50%", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("dry run: nothing that changes state is sent");
    expect(r.stdout).toContain("  set server be_app/app1 weight 50");
    expect(r.stdout).toContain("  set server be_app/app3 weight 25");
    const drain = await run(["drain", "*/*", "--dry-run", "--force"]);
    expect(drain.code, drain.stderr).toBe(0);
    expect(await rawState()).toBe(before);
  });

  it("a dry run that would trip a guard exits 3 after showing the plan", async () => {
    const r = await run(["maint", "be_one/solo", "--dry-run"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/be_one\/solo {2}READY -> MAINT/);
    expect(r.stdout).toMatch(/guard be_one: be_one would have no server/);
  });

  it("sends nothing for a server already in the wanted state", async () => {
    expect((await run(["drain", "be_app/app1"])).code).toBe(0);
    const again = await run(["drain", "be_app/app1", "--json"]);
    expect(again.code).toBe(0);
    expect(json<{ steps: { sent: string[] }[] }>(again).steps[0]?.sent).toEqual([]);
    const human = await run(["drain", "be_app/app1"]);
    expect(human.stdout).toMatch(/be_app\/app1 {2}DRAIN {2}\(already; nothing sent\)/);
  });
});

describe("weights and ramps", () => {
  it("ramps step by step, verifying each step", async () => {
    const r = await run([
      "weight",
      "be_app/app3",
      "10",
      "--ramp-to",
      "40",
      "--step",
      "10",
      "--every",
      "100ms",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const steps = json<{ steps: { sent: string[]; verified: boolean; servers: Row[] }[] }>(r).steps;
    expect(steps.map((s) => s.sent)).toEqual([
      ["set server be_app/app3 weight 10"],
      ["set server be_app/app3 weight 20"],
      ["set server be_app/app3 weight 30"],
      ["set server be_app/app3 weight 40"],
    ]);
    expect(steps.every((s) => s.verified)).toBe(true);
    expect(steps.map((s) => s.servers[0]?.weight)).toEqual([10, 20, 30, 40]);
    expect((await servers("be_app")).get("be_app/app3")?.weight).toBe(40);
  });

  it("stops a ramp where it is on Ctrl-C and says so (exit 130)", async () => {
    const child = spawn(
      process.execPath,
      [
        HAPOPS,
        "-s",
        lab().sockets.admin,
        "weight",
        "be_app/app3",
        "--ramp-to",
        "0%",
        "--step",
        "20",
        "--every",
        "30s",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: cliEnv() },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    await waitUntil(() => (out.includes("verified:") ? true : undefined), {
      what: "the first ramp step",
      timeoutMs: 10_000,
    });
    child.kill("SIGINT");
    const code = await exited;
    expect(code).toBe(130);
    expect(out).toMatch(/be_app\/app3 {2}weight 50 -> 30/);
    expect(err).toMatch(
      /ramp stopped by Ctrl-C before step 2; weights stay where they are: be_app\/app3 30/,
    );
    expect((await servers("be_app")).get("be_app/app3")?.weight).toBe(30);
  });

  it("reports HAProxy's own refusal in its words, with what to do (exit 1)", async () => {
    const r: CliResult = await run(["weight", "be_hash/x1", "50"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /HAProxy refused "set server be_hash\/x1 weight 50": Backend is using a static LB algorithm/,
    );
    expect(r.stderr).toMatch(/only takes weights 0% and 100%/);
  });
});

describe("levels", () => {
  it("says before trying that an operator socket cannot change server state (exit 4)", async () => {
    const before = await rawState();
    const r = await hapops(["-s", lab().sockets.operator, "drain", "be_app/app1"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is at level 'operator'; 'drain' needs 'admin'/);
    expect(await rawState()).toBe(before);
    // A dry run gives the verdict the real run would get, after showing the plan.
    const dry = await hapops(["-s", lab().sockets.operator, "drain", "be_app/app1", "--dry-run"]);
    expect(dry.code).toBe(4);
    expect(dry.stdout).toMatch(/be_app\/app1 {2}READY -> DRAIN/);
    expect(dry.stderr).toMatch(/is at level 'operator'; 'drain' needs 'admin'/);
  });
});
