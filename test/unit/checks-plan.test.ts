import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { FrontendLimits, GlobalLimits } from "../../src/engine/reads.js";
import type { ServerView } from "../../src/engine/state.js";
import { ExitCode, GuardError, UsageError, ValidationError } from "../../src/errors.js";
import { checkStateOf, decodeCheckState, type CheckState } from "../../src/parse/check-state.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStat, toStatEntry, type StatEntry } from "../../src/parse/stat.js";
import {
  checkOperation,
  describeCheckPlan,
  parseCheckArgs,
  planCheck,
  toCheckFacts,
  verifyCheckPlan,
  type CheckFacts,
} from "../../src/ops/checks.js";
import {
  frontendDeadlockFixed,
  maxconnOperation,
  parseMaxconn,
  parseMaxconnArgs,
  planMaxconnFrontend,
  planMaxconnGlobal,
  planMaxconnServers,
  toMaxconnFacts,
  type MaxconnChange,
  type MaxconnRequest,
  type MaxconnServerFacts,
} from "../../src/ops/maxconn.js";
import { parseAddrSelector, parseSelector } from "../../src/ops/selector.js";
import { plainPaint } from "../../src/ops/servers.js";
import { thrown } from "../helpers/thrown.js";
import { toLines } from "./fixtures.js";

/**
 * Captured from each version with the same haproxy.cfg (scripts/capture-check-fixtures.sh):
 * be_app/app1 and app2 have `check`, app2 and app4 `agent-check`, app3 neither, app5 and app6 a
 * `check` on a port nothing listens on (DOWN). "-disabled" is after `disable health` of app1 and
 * app6 and `disable agent` of app2; maxconn-* after `set maxconn server be_app/app4 0`
 * (configured 30), `be_app/app3 7`, `frontend fe_http 150` and `global 400` (started with 500).
 */
const VERSIONS = ["2.6", "2.8", "3.0", "3.2", "3.4"] as const;

function fixture(version: string, name: string): string[] {
  return toLines(
    readFileSync(join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, name), "utf8"),
  );
}

/** What fetchServers makes of the two answers: each server's state row with its stat row. */
function views(version: string, state: string, stat: string): ServerView[] {
  const byName = new Map<string, StatEntry>();
  for (const row of parseStat(fixture(version, stat))) {
    const e = toStatEntry(row);
    if (e.kind === "server") byName.set(`${e.proxy}/${e.name}`, e);
  }
  return parseServersState(fixture(version, state)).map((s) => ({
    ...s,
    stat: byName.get(`${s.backend}/${s.server}`),
  }));
}

function status(c: CheckState): string {
  return c.status;
}

describe("check states (srv_check_state / srv_agent_state)", () => {
  it("decodes the CHK_ST_* bits HAProxy prints", () => {
    expect(decodeCheckState(6)).toMatchObject({
      configured: true,
      enabled: true,
      paused: false,
      status: "enabled",
      flags: ["CONFIGURED", "ENABLED"],
    });
    expect(decodeCheckState(2)).toMatchObject({ enabled: false, status: "disabled" });
    expect(decodeCheckState(22)).toMatchObject({
      status: "enabled",
      flags: ["CONFIGURED", "ENABLED", "AGENT"],
    });
    expect(decodeCheckState(18).status).toBe("disabled");
    expect(decodeCheckState(0)).toMatchObject({ configured: false, status: "not configured" });
    // A check running right now, and one paused while the server is in maintenance.
    expect(decodeCheckState(7)).toMatchObject({
      status: "enabled",
      flags: ["INPROGRESS", "CONFIGURED", "ENABLED"],
    });
    expect(decodeCheckState(14)).toMatchObject({ status: "enabled", paused: true });
    // ENABLED without CONFIGURED does not make a check.
    expect(decodeCheckState(4).status).toBe("not configured");
  });

  it("refuses a row without the column, or with something else than a number", () => {
    expect(() => checkStateOf({}, "health")).toThrow(/no srv_check_state column/);
    expect(() => checkStateOf({ srv_agent_state: "x" }, "agent")).toThrow(/not a number: x/);
  });

  describe.each(VERSIONS)("captured from HAProxy %s", (version) => {
    const read = (which: "before" | "disabled") =>
      new Map(
        parseServersState(fixture(version, `checks-show-servers-state-${which}.txt`)).map((s) => [
          s.server,
          {
            health: status(checkStateOf(s.fields, "health")),
            agent: status(checkStateOf(s.fields, "agent")),
          },
        ]),
      );

    it("reads each server's checks as configured", () => {
      expect(Object.fromEntries(read("before"))).toEqual({
        app1: { health: "enabled", agent: "not configured" },
        app2: { health: "enabled", agent: "enabled" },
        app3: { health: "not configured", agent: "not configured" },
        app4: { health: "not configured", agent: "enabled" },
        app5: { health: "enabled", agent: "not configured" },
        app6: { health: "enabled", agent: "not configured" },
      });
    });

    it("sees disable health and disable agent, and nothing else change", () => {
      expect(Object.fromEntries(read("disabled"))).toEqual({
        app1: { health: "disabled", agent: "not configured" },
        app2: { health: "enabled", agent: "disabled" },
        app3: { health: "not configured", agent: "not configured" },
        app4: { health: "not configured", agent: "enabled" },
        app5: { health: "enabled", agent: "not configured" },
        // Disabled on a DOWN server: it stays DOWN (srv_op_state 0), not "considered UP".
        app6: { health: "disabled", agent: "not configured" },
      });
    });

    it("joins show stat: a disabled health check shows no check_status, and UP reads 'no check'", () => {
      const facts = new Map(
        views(version, "checks-show-servers-state-disabled.txt", "checks-show-stat-disabled.csv")
          .map(toCheckFacts)
          .map((f) => [f.server, f]),
      );
      expect(facts.get("app1")).toMatchObject({
        status: "no check",
        checkStatus: undefined,
        operational: "UP",
      });
      expect(facts.get("app2")).toMatchObject({
        status: "UP",
        checkStatus: "L7OK",
        agentStatus: undefined,
      });
      expect(facts.get("app4")).toMatchObject({ status: "no check", agentStatus: "L7OK" });
      expect(facts.get("app6")).toMatchObject({
        status: "DOWN",
        checkStatus: undefined,
        operational: "DOWN",
      });
      expect(facts.get("app5")).toMatchObject({ status: "DOWN", checkStatus: "L4CON" });
    });

    it("answers enable on a server without the check with a refusal, and disable with nothing", () => {
      const text = fixture(version, "checks-answers.txt").join("\n");
      expect(text).toContain(
        "> enable health be_app/app3\nHealth check was not configured on this server, cannot enable.",
      );
      expect(text).toContain(
        "> enable agent be_app/app3\nAgent was not configured on this server, cannot enable.",
      );
      expect(text).toMatch(/> disable health be_app\/app3\n\n> /);
    });

    it("reads maxconn back from slim: 0 on a server is no limit, a frontend and global keep theirs", () => {
      const stat = parseStat(fixture(version, "maxconn-show-stat.csv")).map(toStatEntry);
      const servers = new Map(
        views(version, "checks-show-servers-state-disabled.txt", "maxconn-show-stat.csv")
          .map(toMaxconnFacts)
          .map((f) => [f.server, f.slim]),
      );
      expect(servers.get("app4")).toBeUndefined();
      expect(servers.get("app3")).toBe(7);
      expect(servers.get("app1")).toBeUndefined();
      expect(stat.find((e) => e.kind === "frontend" && e.proxy === "fe_http")?.row["slim"]).toBe(
        "150",
      );
      const info = fixture(version, "maxconn-show-info.txt").join("\n");
      expect(info).toMatch(/^Maxconn: 400$/m);
      expect(info).toMatch(/^Hard_maxconn: 500$/m);
      const answers = fixture(version, "maxconn-answers.txt").join("\n");
      expect(answers).toContain("> set maxconn global 100000\nValue out of range.");
      expect(answers).toContain("> set maxconn frontend be_app 1\nNo such frontend.");
    });
  });
});

/** A server UP with both checks configured and enabled, unless told otherwise. */
function fact(backend: string, server: string, over: Partial<CheckFacts> = {}): CheckFacts {
  return {
    backend,
    server,
    address: "10.0.1.1",
    port: 80,
    operational: "UP",
    admin: "READY",
    health: decodeCheckState(6),
    agent: decodeCheckState(22),
    status: "UP",
    checkStatus: "L7OK",
    agentStatus: "L7OK",
    ...over,
  };
}

const FACTS: readonly CheckFacts[] = [
  fact("be_app", "app1", { address: "10.0.0.5" }),
  fact("be_app", "app2", {
    health: decodeCheckState(2),
    status: "no check",
    checkStatus: undefined,
  }),
  fact("be_app", "nocheck", {
    health: decodeCheckState(0),
    agent: decodeCheckState(0),
    status: "no check",
  }),
  fact("be_app", "down", { operational: "DOWN", status: "DOWN", checkStatus: "L4CON" }),
  fact("be_other", "app1", { address: "10.0.0.5", agent: decodeCheckState(0) }),
  fact("be_bare", "b1", { health: decodeCheckState(0), agent: decodeCheckState(0) }),
  fact("be_bare", "b2", { health: decodeCheckState(0), agent: decodeCheckState(0) }),
];

const req = (check: "health" | "agent", enable: boolean, sel: string) => ({
  check,
  enable,
  selector: sel.startsWith("--addr ") ? parseAddrSelector(sel.slice(7)) : parseSelector(sel),
});

describe("planCheck", () => {
  it("disables the health check of one server with one line", () => {
    const p = planCheck(FACTS, req("health", false, "be_app/app1"));
    expect(p.op).toBe("health disable");
    expect(p.servers).toEqual([
      expect.objectContaining({ before: "enabled", after: "disabled", notConfigured: false }),
    ]);
    expect(p.servers[0]!.commands.map((c) => c.line)).toEqual(["disable health be_app/app1"]);
  });

  it("sends nothing for a server already so, or without the check, when disabling", () => {
    const p = planCheck(FACTS, req("health", false, "be_app/*"));
    const lines = p.servers.flatMap((s) => s.commands.map((c) => c.line));
    expect(lines).toEqual(["disable health be_app/app1", "disable health be_app/down"]);
    expect(p.servers.find((s) => s.server === "nocheck")).toMatchObject({
      notConfigured: true,
      before: "not configured",
      after: "not configured",
    });
  });

  it("refuses to enable a check the named server does not have (exit 2), in HAProxy's words too", () => {
    const e = thrown(ValidationError, () =>
      planCheck(FACTS, req("health", true, "be_app/nocheck")),
    );
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.message).toMatch(
      /be_app\/nocheck has no health check configured \(add "check" to its server line/,
    );
    expect(e.message).toContain("Health check was not configured on this server, cannot enable.");
    const agent = thrown(ValidationError, () =>
      planCheck(FACTS, req("agent", true, "be_other/app1")),
    );
    expect(agent.message).toMatch(
      /no agent check configured \(add "agent-check agent-port <port>"/,
    );
    expect(agent.message).toContain("Agent was not configured on this server, cannot enable.");
  });

  it("refuses a pattern that picks only servers without the check, and skips them in a wider one", () => {
    const e = thrown(ValidationError, () => planCheck(FACTS, req("health", true, "be_bare/*")));
    expect(e.message).toMatch(/^be_bare\/b1, be_bare\/b2 have no health check configured/);
    const p = planCheck(FACTS, req("health", true, "be_app/*"));
    expect(p.servers.flatMap((s) => s.commands.map((c) => c.line))).toEqual([
      "enable health be_app/app2",
    ]);
    expect(describeCheckPlan(p)).toContain(
      'be_app/nocheck  no health check configured  (skipped: add "check" to its server line in haproxy.cfg)',
    );
  });

  it("picks servers by address across backends", () => {
    const p = planCheck(FACTS, req("agent", false, "--addr 10.0.0.5"));
    expect(p.servers.map((s) => `${s.backend}/${s.server}:${s.commands.length}`)).toEqual([
      "be_app/app1:1",
      "be_other/app1:0",
    ]);
  });

  it("names the known servers when the selector matches none (exit 2)", () => {
    const e = thrown(UsageError, () => planCheck(FACTS, req("health", false, "be_app/app9")));
    expect(e.message).toMatch(/no server named app9 in backend be_app/);
  });
});

describe("describeCheckPlan", () => {
  it("says what a disabled health check means for an UP and for a DOWN server", () => {
    const lines = describeCheckPlan(planCheck(FACTS, req("health", false, "be_app/*")), plainPaint);
    expect(lines).toEqual([
      "be_app/app1     health enabled -> disabled  (UP: it stays in traffic, unchecked, until health enable)",
      "be_app/app2     health disabled  (already; nothing sent)",
      "be_app/nocheck  no health check configured  (nothing to disable; nothing sent)",
      "be_app/down     health enabled -> disabled  (DOWN: it stays DOWN until health enable)",
    ]);
  });

  it("sums up many servers already so in one line", () => {
    const many = Array.from({ length: 8 }, (_, i) =>
      fact("be_big", `s${i}`, { health: decodeCheckState(2) }),
    );
    const lines = describeCheckPlan(planCheck(many, req("health", false, "be_big/*")));
    expect(lines).toEqual([
      "8 more already health disabled (nothing sent): be_big/s0, be_big/s1, be_big/s2, ...",
    ]);
  });
});

describe("verifyCheckPlan", () => {
  const plan = planCheck(FACTS, req("health", false, "be_app/*"));
  it("is empty when HAProxy reports the wanted state on every server with the check", () => {
    const after = FACTS.map((f) =>
      f.backend === "be_app" && f.health.configured ? { ...f, health: decodeCheckState(2) } : f,
    );
    expect(verifyCheckPlan(plan, after)).toEqual([]);
  });

  it("names a server whose check is still on, and one that is gone", () => {
    const after = FACTS.filter((f) => f.server !== "down");
    expect(verifyCheckPlan(plan, after)).toEqual([
      { server: "be_app/app1", expected: "disabled", actual: "enabled" },
      { server: "be_app/down", expected: "disabled", actual: "gone" },
    ]);
  });
});

describe("checkOperation", () => {
  const op = (sel: string, enable = false, check: "health" | "agent" = "health") =>
    checkOperation({ request: req(check, enable, sel), target: "lb1", paint: plainPaint });

  it("is a send step at admin level, the policy op the command name, the scope the servers", () => {
    const plan = op("be_app/app1").plan(FACTS);
    expect(plan).toMatchObject({
      op: "health disable",
      level: "admin",
      mutates: true,
      scope: { servers: ["be_app/app1"] },
      guards: [],
      report: { selector: "be_app/app1", check: "health" },
    });
    expect(plan.steps).toEqual([expect.objectContaining({ kind: "send", op: "health disable" })]);
    expect(plan.json).toMatchObject({
      check: "health",
      wanted: "disabled",
      servers: [
        {
          backend: "be_app",
          server: "app1",
          before: "enabled",
          after: "disabled",
          commands: ["disable health be_app/app1"],
        },
      ],
    });
  });

  it("has no step when everything is already so", () => {
    const plan = op("be_app/app2").plan(FACTS);
    expect(plan.steps).toEqual([]);
    expect(plan.describe).toEqual(["be_app/app2  health disabled  (already; nothing sent)"]);
  });

  it("names agent enable and agent disable as their own policy operations", () => {
    expect(op("be_app/app1", true, "agent").op).toBe("agent enable");
    expect(op("be_app/app1", false, "agent").plan(FACTS).steps[0]).toMatchObject({
      op: "agent disable",
    });
  });
});

describe("parseCheckArgs", () => {
  it("takes enable or disable and a selector or --addr", () => {
    expect(parseCheckArgs("health", "disable", "be_app/app1", undefined)).toMatchObject({
      check: "health",
      enable: false,
      selector: { kind: "name", backend: "be_app", server: "app1" },
    });
    expect(parseCheckArgs("agent", "enable", undefined, "10.0.0.5:80").selector).toMatchObject({
      kind: "addr",
      address: "10.0.0.5",
      port: 80,
    });
  });

  it("refuses anything else (exit 2)", () => {
    expect(
      thrown(UsageError, () => parseCheckArgs("health", "off", "be/a", undefined)).message,
    ).toMatch(/say health enable or health disable/);
    expect(() => parseCheckArgs("health", "enable", undefined, undefined)).toThrow(
      /needs a selector/,
    );
    expect(() => parseCheckArgs("health", "enable", "be/a", "10.0.0.5")).toThrow(/not both/);
    expect(() => parseCheckArgs("health", "enable", "be;x/a", undefined)).toThrow(
      /command separator/,
    );
    expect(() => parseCheckArgs("health", "enable", "nobackend", undefined)).toThrow(
      /needs backend\/server/,
    );
  });
});

describe("parseMaxconn and parseMaxconnArgs", () => {
  it("takes whole numbers 0 to 2^31-1 only", () => {
    expect(parseMaxconn("0")).toBe(0);
    expect(parseMaxconn("2147483647")).toBe(2147483647);
    for (const bad of ["-1", "1.5", "abc", "2147483648", "1e3", "", " 5", "0x10"])
      expect(thrown(ValidationError, () => parseMaxconn(bad)).exitCode).toBe(ExitCode.usage);
    expect(() => parseMaxconn(undefined)).toThrow(UsageError);
  });

  it("reads the four forms", () => {
    expect(parseMaxconnArgs("be_app/app1", ["50"], undefined)).toMatchObject({
      kind: "server",
      value: 50,
      selector: { kind: "name", backend: "be_app", server: "app1" },
    });
    expect(parseMaxconnArgs("50", [], "10.0.0.5")).toMatchObject({
      kind: "server",
      value: 50,
      selector: { kind: "addr", address: "10.0.0.5" },
    });
    expect(parseMaxconnArgs("frontend", ["fe_http", "2000"], undefined)).toEqual({
      kind: "frontend",
      frontend: "fe_http",
      value: 2000,
    });
    expect(parseMaxconnArgs("global", ["20000"], undefined)).toEqual({
      kind: "global",
      value: 20000,
    });
  });

  it("refuses extra words, missing ones, bad names and --addr where it picks nothing", () => {
    expect(() => parseMaxconnArgs("global", ["5", "6"], undefined)).toThrow(
      /unexpected argument 6/,
    );
    expect(() => parseMaxconnArgs("global", [], undefined)).toThrow(/needs a number/);
    expect(() => parseMaxconnArgs("frontend", [], undefined)).toThrow(
      /needs a frontend name and a number/,
    );
    expect(() => parseMaxconnArgs("frontend", ["fe;x", "5"], undefined)).toThrow(
      /command separator/,
    );
    expect(() => parseMaxconnArgs("frontend", ["fe", "5"], "10.0.0.5")).toThrow(
      /--addr picks servers/,
    );
    expect(() => parseMaxconnArgs("be_app/app1", [], undefined)).toThrow(/maxconn needs a number/);
    expect(() => parseMaxconnArgs("be_app/app1", ["5", "x"], undefined)).toThrow(
      /unexpected argument x/,
    );
    expect(() => parseMaxconnArgs("be_app", ["5"], undefined)).toThrow(/needs backend\/server/);
  });
});

const change = (request: MaxconnRequest, force = false): MaxconnChange => ({
  request,
  target: "lb1",
  force,
  paint: plainPaint,
});

function server(name: string, over: Partial<MaxconnServerFacts> = {}): MaxconnServerFacts {
  const [backend, srv] = name.split("/") as [string, string];
  return { backend, server: srv, address: "10.0.0.1", port: 80, slim: undefined, scur: 0, ...over };
}

const SERVERS = [
  server("be_app/app1"),
  server("be_app/app2", { slim: 30, scur: 12 }),
  server("be_app/app3", { slim: 50 }),
];

describe("planMaxconnServers", () => {
  const plan = (sel: string, value: number) => {
    const r = { kind: "server" as const, selector: parseSelector(sel), value };
    return planMaxconnServers(SERVERS, r, change(r));
  };

  it("sets each server's limit, leaves alone those already at it, names them in scope", () => {
    const p = plan("be_app/*", 50);
    expect(p.steps).toEqual([expect.objectContaining({ kind: "send", op: "maxconn" })]);
    expect(p.steps[0]!.kind === "send" && p.steps[0]!.commands.map((c) => c.line)).toEqual([
      "set maxconn server be_app/app1 50",
      "set maxconn server be_app/app2 50",
    ]);
    expect(p.scope).toEqual({ servers: ["be_app/app1", "be_app/app2", "be_app/app3"] });
    expect(p.describe).toEqual([
      "be_app/app1  maxconn no limit -> 50",
      "be_app/app2  maxconn 30 -> 50",
      "be_app/app3  maxconn 50  (already; nothing sent)",
    ]);
    expect(p.op).toBe("maxconn");
    expect(p.guards).toEqual([]);
  });

  it("says 0 is no limit for a server, and that a limit under the sessions queues requests", () => {
    expect(plan("be_app/app2", 0).describe).toEqual([
      "be_app/app2  maxconn 30 -> no limit  (0: no limit for a server)",
    ]);
    expect(plan("be_app/app1", 0).steps).toEqual([]);
    expect(plan("be_app/app2", 5).describe).toEqual([
      "be_app/app2  maxconn 30 -> 5  (12 sessions now: new requests queue until it has fewer than 5)",
    ]);
  });
});

const v = (text: string) => {
  const [major, minor] = text.split(".").map(Number) as [number, number];
  return { major, minor, text };
};

function frontendState(scur: number, slim: number, version: string): FrontendLimits {
  return {
    frontends: [{ name: "fe_http", scur, slim, status: "OPEN" }],
    isBackend: false,
    version: v(version),
  };
}

describe("planMaxconnFrontend", () => {
  const plan = (state: FrontendLimits, value: number, force = false, frontend = "fe_http") => {
    const r = { kind: "frontend" as const, frontend, value };
    return planMaxconnFrontend(state, r, change(r, force));
  };
  const refused = (p: ReturnType<typeof plan>) => p.guards.filter((g) => !g.ok && !g.forced);

  it("knows which versions have the set maxconn frontend deadlock fixed", () => {
    expect(frontendDeadlockFixed(v("2.6.12-1+deb12u4"))).toBe(false);
    expect(frontendDeadlockFixed(v("3.0.0-5590ada47"))).toBe(false);
    expect(frontendDeadlockFixed(v("3.1.0"))).toBe(true);
    expect(frontendDeadlockFixed(v("3.4.0-64a335366"))).toBe(true);
    expect(frontendDeadlockFixed(undefined)).toBe(false);
  });

  it("sets a frontend with room; its scope names no object, so a scoped group cannot", () => {
    const p = plan(frontendState(10, 200, "3.2.0"), 150);
    expect(p.op).toBe("maxconn frontend");
    expect(p.scope).toEqual({ unnamed: "changes a frontend, which no scope names" });
    expect(p.steps[0]!.kind === "send" && p.steps[0]!.commands.map((c) => c.line)).toEqual([
      "set maxconn frontend fe_http 150",
    ]);
    expect(p.describe).toEqual(["fe_http  maxconn 200 -> 150"]);
    expect(p.guards).toEqual([]);
  });

  it("refuses a full frontend before 3.1 (the deadlock), not from 3.1 on, and --force passes", () => {
    const old = plan(frontendState(200, 200, "2.6.12-1+deb12u4"), 400);
    expect(refused(old).map((g) => g.name)).toEqual(["frontend-full"]);
    expect(refused(old)[0]!.error).toBeInstanceOf(GuardError);
    expect(refused(old)[0]!.error!.message).toMatch(
      /at its limit \(200 of 200 connections\).*haproxy issue #2726/,
    );
    expect(refused(plan(frontendState(200, 200, "3.2.0"), 400))).toEqual([]);
    const forced = plan(frontendState(200, 200, "3.0.0"), 400, true);
    expect(forced.guards).toEqual([
      expect.objectContaining({ name: "frontend-full", ok: false, forced: true }),
    ]);
    // With room, the guard passes and says so (a dry run prints it).
    expect(plan(frontendState(10, 200, "2.8.0"), 400).guards).toEqual([
      expect.objectContaining({ name: "frontend-full", ok: true }),
    ]);
  });

  it("refuses before 3.1 a limit the frontend is already at, which would leave it stuck", () => {
    const p = plan(frontendState(20, 200, "2.6.12"), 20);
    expect(refused(p).map((g) => g.name)).toEqual(["frontend-fills"]);
    expect(refused(p)[0]!.error!.message).toMatch(/Choose a limit above 20/);
    // Lowering, but above the connections: allowed, with a note on what a full frontend means.
    const ok = plan(frontendState(20, 200, "2.6.12"), 100);
    expect(refused(ok)).toEqual([]);
    expect(ok.describe[1]).toMatch(
      /^note: HAProxy 2\.6\.12 deadlocks if set maxconn frontend runs while fe_http is at its limit/,
    );
    // From 3.1: a warning in the plan only.
    const newer = plan(frontendState(20, 200, "3.4.0"), 10);
    expect(refused(newer)).toEqual([]);
    expect(newer.describe).toEqual([
      "fe_http  maxconn 200 -> 10  (20 connections now: new ones wait until it has fewer than 10)",
    ]);
  });

  it("refuses maxconn 0, which accepts no connection at all, on every version", () => {
    for (const version of ["2.6.12", "3.4.0"]) {
      const p = plan(frontendState(0, 200, version), 0);
      expect(refused(p).map((g) => g.name)).toContain("frontend-zero");
    }
    expect(refused(plan(frontendState(0, 200, "3.4.0"), 0, true))).toEqual([]);
  });

  it("sends nothing when the frontend is at that limit already, whatever the version", () => {
    const p = plan(frontendState(200, 200, "2.6.12"), 200);
    expect(p.steps).toEqual([]);
    expect(p.guards).toEqual([]);
    expect(p.describe).toEqual(["fe_http  maxconn 200  (already; nothing sent)"]);
  });

  it("names the frontends when the name is unknown, and says when it is a backend", () => {
    const all: FrontendLimits = {
      frontends: [
        { name: "fe_http", scur: 0, slim: 200, status: "OPEN" },
        { name: "fe_https", scur: 0, slim: 200, status: "OPEN" },
      ],
      isBackend: false,
      version: v("3.2.0"),
    };
    expect(thrown(UsageError, () => plan(all, 5, false, "fe_htp")).message).toMatch(
      /no frontend named fe_htp; did you mean fe_http/,
    );
    expect(
      thrown(UsageError, () => plan({ ...all, isBackend: true }, 5, false, "be_app")).message,
    ).toMatch(
      /be_app is a backend, not a frontend \(frontends: fe_http, fe_https\); for its servers use hapops maxconn 'be_app\/\*' <N>/,
    );
  });
});

describe("planMaxconnGlobal", () => {
  const state: GlobalLimits = {
    maxconn: 400,
    hardMaxconn: 500,
    currConns: 120,
    version: v("2.6.12"),
  };
  const plan = (value: number, s = state) => {
    const r = { kind: "global" as const, value };
    return planMaxconnGlobal(s, r, change(r));
  };

  it("refuses above Hard_maxconn before sending (HAProxy answers Value out of range.)", () => {
    const e = thrown(ValidationError, () => plan(501));
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.message).toMatch(/maxconn global 501 is above 500.*"Value out of range\."/);
    expect(plan(500).steps).toHaveLength(1);
  });

  it("plans 0 as the value HAProxy started with", () => {
    const p = plan(0);
    expect(p.describe).toEqual([
      "global  maxconn 400 -> 500  (0: back to the maxconn HAProxy started with, 500)",
    ]);
    expect(p.body.items[0]!.after).toBe(500);
    expect(p.steps[0]!.kind === "send" && p.steps[0]!.commands.map((c) => c.line)).toEqual([
      "set maxconn global 0",
    ]);
    expect(plan(0, { ...state, maxconn: 500 }).steps).toEqual([]);
  });

  it("warns when the limit is under the connections, and names the whole process in scope", () => {
    const p = plan(100);
    expect(p.describe).toEqual([
      "global  maxconn 400 -> 100  (120 connections now: new ones wait until there are fewer than 100)",
    ]);
    expect(p.op).toBe("maxconn global");
    expect(p.scope).toEqual({ unnamed: "changes the whole process" });
    expect(plan(400).steps).toEqual([]);
  });
});

describe("maxconnOperation", () => {
  it("is named by the policy operation of each form", () => {
    const op = (r: MaxconnRequest) => maxconnOperation(change(r)).op;
    expect(op({ kind: "server", selector: parseSelector("a/b"), value: 1 })).toBe("maxconn");
    expect(op({ kind: "frontend", frontend: "fe", value: 1 })).toBe("maxconn frontend");
    expect(op({ kind: "global", value: 1 })).toBe("maxconn global");
  });
});
