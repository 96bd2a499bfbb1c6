import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/record.js";
import type { FleetReport } from "../../src/engine/fleet.js";
import { waitUntil } from "../../src/util/wait.js";
import { cliEnv, HAPOPS, hapops, json, type CliResult } from "../helpers/cli.js";
import { useFleet } from "../helpers/fleet.js";

/**
 * One change over several real HAProxy instances, each reached over its own mTLS listener:
 * planned on every target first, refused everywhere when one target refuses, applied in
 * parallel or a batch at a time, recorded per target under one run id.
 */
const fleet = useFleet(3, {
  backends: [
    {
      name: "be_app",
      servers: [
        { name: "app1", weight: 100, host: "127.0.0.5" },
        { name: "app2", weight: 100 },
        { name: "app3", weight: 50 },
      ],
    },
  ],
});

const run = (args: readonly string[], timeoutMs = 60_000) =>
  hapops(["-c", fleet().config, ...args], { timeoutMs });

interface Row {
  server: string;
  admin: string;
  weight: number;
}

/** What one instance reports, read over its own unix socket (not through the fleet path). */
async function server(lb: string, name: string): Promise<Row> {
  const r = await hapops(["-s", fleet().lab(lb).sockets.admin, "servers", "be_app", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  const row = json<Row[]>(r).find((x) => x.server === name);
  if (!row) throw new Error(`no ${name} on ${lb}`);
  return row;
}

async function admins(name: string): Promise<string[]> {
  return Promise.all(fleet().names.map(async (lb) => (await server(lb, name)).admin));
}

function records(): AuditRecord[] {
  return readFileSync(fleet().audit, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as AuditRecord);
}

function report(r: CliResult): FleetReport {
  return json<FleetReport>(r);
}

describe("a change over a fleet", () => {
  it("drains a server by its address on every target of a group, recorded per target under one run id", async () => {
    const r = await run(["-g", "all", "drain", "--addr", "127.0.0.5", "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rep = report(r);
    expect(rep.outcome).toBe("ok");
    expect(rep.targets.map((t) => [t.target, t.result])).toEqual([
      ["lb1", "ok"],
      ["lb2", "ok"],
      ["lb3", "ok"],
    ]);
    for (const t of rep.targets)
      expect(t.report?.sent).toEqual(["set server be_app/app1 state drain"]);
    expect(await admins("app1")).toEqual(["DRAIN", "DRAIN", "DRAIN"]);

    // One intent and one result per target, all under the run id the report gave.
    const mine = records().filter((x) => x.run === rep.run);
    expect(mine.map((x) => [x.target.split(" ")[0], x.phase, x.outcome])).toEqual(
      expect.arrayContaining([
        ["lb1", "intent", null],
        ["lb1", "result", "ok"],
        ["lb2", "intent", null],
        ["lb2", "result", "ok"],
        ["lb3", "intent", null],
        ["lb3", "result", "ok"],
      ]),
    );
    expect(mine).toHaveLength(6);
    expect(new Set(mine.map((x) => x.opId)).size).toBe(3);

    const tail = await run(["audit", "tail", "--run", rep.run.slice(0, 8), "--json"]);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout.trim().split("\n")).toHaveLength(6);

    // People see every target and a summary.
    const back = await run(["-g", "all", "ready", "--addr", "127.0.0.5"]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/^lb2: be_app\/app1 +DRAIN -> READY/m);
    expect(back.stdout).toMatch(/^TARGET +RESULT +DETAIL$/m);
    expect(back.stdout).toMatch(/^lb3 +ok +1 line sent, verified$/m);
    expect(await admins("app1")).toEqual(["READY", "READY", "READY"]);

    // Already so everywhere: nothing sent, exit 0.
    const again = await run(["-g", "all", "ready", "--addr", "127.0.0.5", "--json"]);
    expect(again.code).toBe(0);
    expect(report(again).outcome).toBe("noop");
    expect(report(again).targets.every((t) => t.result === "noop")).toBe(true);
  });

  it("sends every target's records to syslog with the run id, so a central log can join them", async () => {
    const udp = createSocket("udp4");
    const got: string[] = [];
    udp.on("message", (m) => got.push(m.toString()));
    await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
    try {
      const cfg = join(fleet().dir, "with-syslog.yaml");
      writeFileSync(
        cfg,
        readFileSync(fleet().config, "utf8").replace(
          /^audit:\n/,
          `audit:\n  syslog: udp://127.0.0.1:${udp.address().port}\n`,
        ),
      );
      const r = await hapops(["-c", cfg, "-t", "lb1,lb3", "weight", "be_app/app3", "40", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const id = report(r).run;
      await waitUntil(() => (got.length >= 4 ? true : undefined), {
        what: "four syslog datagrams",
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      const mine = got.filter((g) => g.includes(`"run":"${id}"`));
      expect(mine).toHaveLength(4);
      expect(mine.filter((g) => g.includes('"target":"lb1 '))).toHaveLength(2);
      expect(mine.filter((g) => g.includes('"target":"lb3 '))).toHaveLength(2);
      expect((await hapops(["-c", cfg, "-t", "lb1,lb3", "weight", "be_app/app3", "50"])).code).toBe(
        0,
      );
    } finally {
      udp.close();
    }
  });

  it("shows the plan of every target in a dry run and sends nothing", async () => {
    const r = await run(["--all", "maint", "be_app/app2", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    for (const lb of ["lb1", "lb2", "lb3"]) expect(r.stdout).toMatch(new RegExp(`^${lb}:$`, "m"));
    expect(r.stdout.match(/set server be_app\/app2 state maint/g)).toHaveLength(3);
    expect(r.stdout).toMatch(/^lb1 +ok +1 line would be sent$/m);
    expect(await admins("app2")).toEqual(["READY", "READY", "READY"]);
  });

  it("refuses the run on every target, with nothing sent, when a guard refuses on one", async () => {
    // lb2 has only app1 left serving be_app: draining it there would empty the backend.
    const lb2 = fleet().lab("lb2").sockets.admin;
    for (const s of ["app2", "app3"]) {
      const m = await hapops(["-s", lb2, "maint", `be_app/${s}`]);
      expect(m.code, m.stderr).toBe(0);
    }
    try {
      const r = await run(["-g", "all", "drain", "be_app/app1", "--json"]);
      expect(r.code).toBe(3);
      const rep = report(r);
      expect(rep.outcome).toBe("refused");
      expect(rep.targets.map((t) => t.result)).toEqual(["refused", "refused", "refused"]);
      expect(rep.targets[1]!.reason).toMatch(/be_app would have no server/);
      expect(rep.targets[0]!.reason).toMatch(/not sent: lb2 refused the run/);
      expect(rep.targets.every((t) => (t.report?.sent ?? []).length === 0)).toBe(true);
      expect(await admins("app1")).toEqual(["READY", "READY", "READY"]);
      // Each target has its refusal on record, under one run id, and no intent.
      const mine = records().filter((x) => x.run === rep.run);
      expect(mine.map((x) => [x.target.split(" ")[0], x.phase, x.outcome])).toEqual([
        ["lb1", "result", "refused"],
        ["lb2", "result", "refused"],
        ["lb3", "result", "refused"],
      ]);
      // A dry run gives the same verdict.
      const dry = await run(["-g", "all", "drain", "be_app/app1", "-n"]);
      expect(dry.code).toBe(3);
      expect(dry.stderr).toMatch(/lb2 refused/);

      // --force passes the guard everywhere (recorded).
      const forced = await run(["-g", "all", "drain", "be_app/app1", "--force", "--json"]);
      expect(forced.code, forced.stdout).toBe(0);
      expect(await admins("app1")).toEqual(["DRAIN", "DRAIN", "DRAIN"]);
    } finally {
      for (const s of ["app1", "app2", "app3"])
        expect((await hapops(["-s", lb2, "ready", `be_app/${s}`])).code).toBe(0);
      expect((await run(["-g", "all", "ready", "be_app/app1"])).code).toBe(0);
    }
  });

  it("waits for the sessions of every target in one drain --wait", async () => {
    const r = await run(["-g", "pair", "drain", "be_app/app3", "--wait", "--wait-timeout", "30s"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^lb1: drained: no sessions left/m);
    expect(r.stdout).toMatch(/^lb2: drained: no sessions left/m);
    expect((await server("lb3", "app3")).admin).toBe("READY");
    expect((await run(["-g", "pair", "ready", "be_app/app3"])).code).toBe(0);
  });

  it("refuses flags that do not fit: -s with -t, an unknown target or group, --batch without --rolling", async () => {
    const cases: [string[], RegExp][] = [
      [["-s", "/tmp/x.sock", "-t", "lb1", "ready", "be_app/app1"], /both choose targets/],
      [["-t", "lb9", "ready", "be_app/app1"], /no target named lb9 .*targets: lb1, lb2, lb3/],
      [["-g", "edge", "ready", "be_app/app1"], /no group named edge .*groups: all, pair/],
      [["-g", "all", "--batch", "2", "ready", "be_app/app1"], /--batch needs --rolling/],
      [["-g", "all", "--on-error", "maybe", "ready", "be_app/app1"], /stop or continue/],
      [["--rolling", "ready", "be_app/app1"], /add -t <names>, -g <group> or --all/],
      [["-g", "all", "shell"], /works on one target/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  // The last tests stop lb2 for good.
  it("stops a rolling run at the batch that fails: targets after it are not started", async () => {
    const before = records().length;
    const child = spawn(
      process.execPath,
      [
        HAPOPS,
        "-c",
        fleet().config,
        "-g",
        "all",
        "--rolling",
        "--batch",
        "1",
        "--pause",
        "4s",
        "weight",
        "be_app/app3",
        "20",
        "--json",
      ],
      { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    // lb1 is done (its result is on record): stop lb2 during the pause.
    await waitUntil(
      () =>
        records()
          .slice(before)
          .some((x) => x.op === "weight" && x.target.startsWith("lb1 ") && x.phase === "result")
          ? true
          : undefined,
      { what: "lb1's weight change on record", timeoutMs: 30_000, intervalMs: 50 },
    );
    await fleet().lab("lb2").stop();
    const code = await exited;
    expect(code, stdout).toBe(4);
    const rep = json<FleetReport>({ code, stdout, stderr: "" });
    expect(rep.mode).toBe("rolling");
    expect(rep.targets.map((t) => t.result)).toEqual(["ok", "not-reached", "not-reached"]);
    expect(rep.targets[2]!.reason).toMatch(/not started: the run stopped after lb2 failed/);
    expect((await server("lb1", "app3")).weight).toBe(20);
    expect((await server("lb3", "app3")).weight).toBe(50);
  }, 60_000);

  it("with a target down: --on-error stop sends nothing anywhere, --on-error continue changes the others", async () => {
    const stop = await run(["-g", "all", "maint", "be_app/app2", "--json"]);
    expect(stop.code).toBe(4);
    const rs = report(stop);
    expect(rs.targets.map((t) => t.result)).toEqual(["refused", "not-reached", "refused"]);
    expect(stop.stdout).toMatch(/--on-error continue/);
    expect((await server("lb1", "app2")).admin).toBe("READY");

    const cont = await run(["-g", "all", "--on-error", "continue", "maint", "be_app/app2"]);
    expect(cont.code).toBe(4);
    expect(cont.stdout).toMatch(/^lb2 +not reached +/m);
    expect(cont.stdout).toMatch(/^lb1 +ok /m);
    expect(cont.stdout).toMatch(/^lb3 +ok /m);
    expect(cont.stderr).toMatch(/failed on 1 of 3 targets \(2 ok\): lb2 not reached/);
    expect((await server("lb1", "app2")).admin).toBe("MAINT");
    expect((await server("lb3", "app2")).admin).toBe("MAINT");
  });
});
