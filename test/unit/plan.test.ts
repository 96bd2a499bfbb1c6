import { describe, expect, it } from "vitest";
import { thrown } from "../helpers/thrown.js";
import { ExitCode, GuardError, UsageError } from "../../src/errors.js";
import {
  checkGuards,
  enforceGuards,
  parseWeight,
  planChange,
  resolveWeight,
  verifyPlan,
  type ChangeRequest,
  type Plan,
  type ServerFacts,
  type WeightSpec,
  type WeightStep,
} from "../../src/ops/plan.js";
import { listSelector, parseAddrSelector, parseSelector } from "../../src/ops/selector.js";

/** A server that is UP, READY, weight 10 of 10, with no sessions, unless told otherwise. */
function fact(backend: string, server: string, over: Partial<ServerFacts> = {}): ServerFacts {
  return {
    backend,
    server,
    address: "10.0.1.1",
    port: 80,
    operational: "UP",
    admin: "READY",
    adminFlags: [],
    weight: 10,
    initialWeight: 10,
    sessions: 0,
    ...over,
  };
}

const STATE: readonly ServerFacts[] = [
  // Three healthy servers: draining one leaves two.
  fact("be_app", "app1", { address: "10.0.0.5", sessions: 3 }),
  fact("be_app", "app2", { address: "10.0.0.6" }),
  fact("be_app", "app3", { address: "10.0.0.7" }),
  // A backend of one: the guard's favourite.
  fact("be_last", "only1", { address: "10.0.0.5", port: 9090, weight: 5, initialWeight: 5 }),
  // Nothing serves here before any change.
  fact("be_down", "d1", { operational: "DOWN" }),
  fact("be_down", "d2", { operational: "DOWN" }),
  // Only m1 serves: the others are down, weight 0, in maintenance, draining, or soft-stopping.
  fact("be_mixed", "m1"),
  fact("be_mixed", "m2", { operational: "DOWN" }),
  fact("be_mixed", "m3", { weight: 0 }),
  fact("be_mixed", "m4", { admin: "MAINT", adminFlags: ["FMAINT"] }),
  fact("be_mixed", "m5", { admin: "DRAIN", adminFlags: ["FDRAIN"], address: "10.0.0.7" }),
  fact("be_mixed", "m6", { operational: "STOPPING" }),
  // Weights for % and ramps.
  fact("be_canary", "canary", { weight: 1, initialWeight: 100 }),
  fact("be_canary", "big", { weight: 200, initialWeight: 200 }),
  // Servers that `track` another and inherit its state.
  fact("be_track", "t_maint", { admin: "MAINT", adminFlags: ["IMAINT"] }),
  fact("be_track", "t_drain", { admin: "DRAIN", adminFlags: ["IDRAIN"] }),
  fact("be_track", "t_ok"),
];

function req(
  op: "drain" | "maint" | "ready",
  selector: string,
  force = false,
): Extract<ChangeRequest, { op: "drain" | "maint" | "ready" }> {
  return { op, selector: parseSelector(selector), force };
}

function weightReq(
  selector: string,
  weight: WeightSpec | WeightStep,
  force = false,
): Extract<ChangeRequest, { op: "weight" }> {
  return { op: "weight", selector: parseSelector(selector), weight, force };
}

function lines(plan: Plan): string[] {
  return plan.servers.flatMap((s) => s.commands.map((c) => c.line));
}

describe("planChange: drain, maint, ready", () => {
  it("drain sends exactly one set server ... state drain and records before and after", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1"));
    expect(plan).toMatchObject({
      version: 1,
      op: "drain",
      selector: "be_app/app1",
      level: "admin",
    });
    expect(plan.servers).toHaveLength(1);
    const [s] = plan.servers;
    expect(s!.commands.map((c) => c.line)).toEqual(["set server be_app/app1 state drain"]);
    expect(s!.before).toEqual({ admin: "READY", weight: 10, operational: "UP", sessions: 3 });
    expect(s!.after).toEqual({ admin: "DRAIN", weight: 10 });
  });

  it("maint sends set server ... state maint", () => {
    const plan = planChange(STATE, req("maint", "be_app/app2"));
    expect(lines(plan)).toEqual(["set server be_app/app2 state maint"]);
    expect(plan.servers[0]!.after).toEqual({ admin: "MAINT", weight: 10 });
  });

  it("ready brings a MAINT or DRAIN server back", () => {
    expect(lines(planChange(STATE, req("ready", "be_mixed/m4")))).toEqual([
      "set server be_mixed/m4 state ready",
    ]);
    const plan = planChange(STATE, req("ready", "be_mixed/m5"));
    expect(lines(plan)).toEqual(["set server be_mixed/m5 state ready"]);
    expect(plan.servers[0]!.before.admin).toBe("DRAIN");
    expect(plan.servers[0]!.after).toEqual({ admin: "READY", weight: 10 });
  });

  it("drain on a server in maintenance sends drain (HAProxy clears FMAINT on drain)", () => {
    const plan = planChange(STATE, req("drain", "be_mixed/m4"));
    expect(lines(plan)).toEqual(["set server be_mixed/m4 state drain"]);
    expect(plan.servers[0]!.after.admin).toBe("DRAIN");
  });

  it.each([
    ["drain", "be_mixed/m5"],
    ["maint", "be_mixed/m4"],
    ["ready", "be_app/app1"],
  ] as const)("%s on %s, already in that state, sends nothing", (op, selector) => {
    const plan = planChange(STATE, req(op, selector));
    expect(plan.servers).toHaveLength(1);
    expect(plan.servers[0]!.commands).toEqual([]);
    expect(plan.servers[0]!.after.admin).toBe(plan.servers[0]!.before.admin);
    expect(plan.guards).toEqual([]);
  });

  it("be/* plans every server, with commands only for those that need one", () => {
    const plan = planChange(STATE, req("drain", "be_mixed/*", true));
    expect(plan.servers.map((s) => s.server)).toEqual(["m1", "m2", "m3", "m4", "m5", "m6"]);
    expect(lines(plan)).toEqual([
      "set server be_mixed/m1 state drain",
      "set server be_mixed/m2 state drain",
      "set server be_mixed/m3 state drain",
      "set server be_mixed/m4 state drain",
      "set server be_mixed/m6 state drain",
    ]);
  });

  it("--addr plans the same host in every backend", () => {
    const plan = planChange(STATE, {
      op: "maint",
      selector: parseAddrSelector("10.0.0.5"),
      force: true,
    });
    expect(plan.selector).toBe("10.0.0.5");
    expect(lines(plan)).toEqual([
      "set server be_app/app1 state maint",
      "set server be_last/only1 state maint",
    ]);
  });

  it("a selector that matches nothing is a usage error, not an empty plan", () => {
    const e = thrown(UsageError, () => planChange(STATE, req("drain", "be_app/ap1")));
    expect(e.message).toContain("did you mean app1");
  });

  it("refuses ready on a server that inherits maintenance (IMAINT), naming it", () => {
    const e = thrown(GuardError, () => planChange(STATE, req("ready", "be_track/t_maint")));
    expect(e.exitCode).toBe(ExitCode.guard);
    expect(e.message).toContain("be_track/t_maint");
    expect(e.message).toContain("IMAINT");
    expect(e.message).toContain("the server it tracks");
  });

  it("refuses ready on a server that inherits drain (IDRAIN), naming it", () => {
    const e = thrown(GuardError, () => planChange(STATE, req("ready", "be_track/t_drain")));
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain("be_track/t_drain");
    expect(e.message).toContain("IDRAIN");
  });

  it("refuses ready on a whole backend when one of its servers tracks another", () => {
    expect(() => planChange(STATE, req("ready", "be_track/*"))).toThrow(GuardError);
  });

  it("refuses ready on a server forced into maint that also inherits it", () => {
    const state = [fact("b", "s", { admin: "MAINT", adminFlags: ["FMAINT", "IMAINT"] })];
    expect(() => planChange(state, req("ready", "b/s"))).toThrow(/IMAINT/);
  });

  it("allows maint on a server that only inherits drain", () => {
    expect(lines(planChange(STATE, req("maint", "be_track/t_drain")))).toEqual([
      "set server be_track/t_drain state maint",
    ]);
  });

  it("refuses drain on a server whose maintenance is inherited (IMAINT): it could not work", () => {
    const e = thrown(GuardError, () => planChange(STATE, req("drain", "be_track/t_maint")));
    expect(e.message).toMatch(
      /be_track\/t_maint inherits maintenance .*IMAINT.*change that server/,
    );
  });

  it.each(["drain", "ready"] as const)(
    "refuses %s on a server in maintenance because its address did not resolve (RMAINT)",
    (op) => {
      const state = [
        fact("be_dns", "r1", { admin: "MAINT", adminFlags: ["RMAINT"], address: "-" }),
        fact("be_dns", "r2"),
      ];
      const e = thrown(GuardError, () => planChange(state, req(op, "be_dns/r1")));
      expect(e.message).toMatch(/be_dns\/r1 .*address did not resolve \(RMAINT\)/);
    },
  );

  it("maint on a server in maintenance only by inheritance still forces it (FMAINT)", () => {
    // Without FMAINT it would leave maintenance by itself when the tracked server comes back.
    expect(lines(planChange(STATE, req("maint", "be_track/t_maint")))).toEqual([
      "set server be_track/t_maint state maint",
    ]);
    const forced = [
      fact("be_x", "a", { admin: "MAINT", adminFlags: ["FMAINT", "IMAINT"] }),
      fact("be_x", "b"),
    ];
    expect(lines(planChange(forced, req("maint", "be_x/a")))).toEqual([]);
  });

  it("drain on a server draining only by inheritance still forces it (FDRAIN)", () => {
    const state = [
      fact("be_x", "a", { admin: "DRAIN", adminFlags: ["IDRAIN"] }),
      fact("be_x", "b"),
    ];
    expect(lines(planChange(state, req("drain", "be_x/a")))).toEqual([
      "set server be_x/a state drain",
    ]);
  });
});

describe("parseWeight", () => {
  it.each([
    ["0", { absolute: 0 }],
    ["1", { absolute: 1 }],
    ["100", { absolute: 100 }],
    ["256", { absolute: 256 }],
    ["0%", { percent: 0 }],
    ["50%", { percent: 50 }],
    ["100%", { percent: 100 }],
  ])("reads %j", (text, spec) => {
    expect(parseWeight(text)).toStrictEqual(spec);
  });

  it.each([
    "257",
    "1000",
    "-1",
    "-1%",
    "abc",
    "1.5",
    "1.5%",
    "",
    "%",
    " 5",
    "5 ",
    "50 %",
    "+5",
    "0x10",
    "1e2",
  ])("refuses %j as a usage error that quotes it", (text) => {
    const e = thrown(UsageError, () => parseWeight(text));
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.message).toContain(text);
  });

  it("takes a percentage above 100% as HAProxy does (capped at 256 when resolved)", () => {
    expect(parseWeight("150%")).toEqual({ percent: 150 });
    expect(resolveWeight({ percent: 150 }, { weight: 50, initialWeight: 50 })).toBe(75);
    expect(resolveWeight({ percent: 1000 }, { weight: 50, initialWeight: 50 })).toBe(256);
    expect(thrown(UsageError, () => parseWeight("10000%")).message).toContain("not valid");
    expect(thrown(UsageError, () => parseWeight("257")).message).toContain("0-256");
  });
});

describe("resolveWeight", () => {
  const at = (weight: number, initialWeight: number) => ({ weight, initialWeight });

  it("an absolute weight is itself, whatever the server has", () => {
    expect(resolveWeight({ absolute: 42 }, at(10, 100))).toBe(42);
    expect(resolveWeight({ absolute: 0 }, at(10, 100))).toBe(0);
  });

  it("N% is a share of the configured (initial) weight, not the current one", () => {
    expect(resolveWeight({ percent: 50 }, at(3, 100))).toBe(50);
    expect(resolveWeight({ percent: 100 }, at(0, 256))).toBe(256);
    expect(resolveWeight({ percent: 0 }, at(50, 100))).toBe(0);
  });

  it("N% rounds down, as HAProxy does", () => {
    expect(resolveWeight({ percent: 50 }, at(0, 3))).toBe(1);
    expect(resolveWeight({ percent: 33 }, at(0, 10))).toBe(3);
    expect(resolveWeight({ percent: 99 }, at(0, 1))).toBe(0);
  });

  it("N% is capped at 256", () => {
    // HAProxy's configured weight is at most 256, so this only guards against bad input.
    expect(resolveWeight({ percent: 100 }, at(0, 300))).toBe(256);
  });

  /** Apply one ramp step after another until the weight stops moving. */
  function ramp(weight: number, initialWeight: number, step: WeightStep): number[] {
    const seen = [weight];
    for (let i = 0; i < 300; i++) {
      const next = resolveWeight(step, at(weight, initialWeight));
      if (next === weight) break;
      seen.push(next);
      weight = next;
    }
    return seen;
  }

  it("a ramp step moves up by at most `step` and lands on the target", () => {
    expect(ramp(1, 100, { to: { absolute: 100 }, step: 10 })).toEqual([
      1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100,
    ]);
  });

  it("a ramp step moves down by at most `step` and lands on the target", () => {
    expect(ramp(100, 100, { to: { absolute: 0 }, step: 30 })).toEqual([100, 70, 40, 10, 0]);
  });

  it("a ramp toward N% resolves the target from the configured weight", () => {
    expect(ramp(0, 200, { to: { percent: 50 }, step: 40 })).toEqual([0, 40, 80, 100]);
    expect(ramp(150, 200, { to: { percent: 50 }, step: 40 })).toEqual([150, 110, 100]);
  });

  it("a ramp step at the target stays there", () => {
    expect(resolveWeight({ to: { absolute: 50 }, step: 10 }, at(50, 100))).toBe(50);
  });

  it("never overshoots, never moves away, never moves more than `step`", () => {
    for (const cur of [0, 1, 5, 99, 100, 101, 255, 256])
      for (const target of [0, 1, 50, 100, 256])
        for (const step of [1, 7, 100, 256]) {
          const next = resolveWeight({ to: { absolute: target }, step }, at(cur, 100));
          const where = `from ${cur} toward ${target} by ${step}: ${next}`;
          expect(next, where).toBeGreaterThanOrEqual(Math.min(cur, target));
          expect(next, where).toBeLessThanOrEqual(Math.max(cur, target));
          expect(Math.abs(next - cur), where).toBe(Math.min(step, Math.abs(target - cur)));
        }
  });
});

describe("planChange: weight", () => {
  it("sends exactly one set server ... weight N for an absolute weight", () => {
    const plan = planChange(STATE, weightReq("be_app/app2", { absolute: 5 }));
    expect(plan.op).toBe("weight");
    expect(lines(plan)).toEqual(["set server be_app/app2 weight 5"]);
    expect(plan.servers[0]!.before).toMatchObject({ admin: "READY", weight: 10 });
    expect(plan.servers[0]!.after).toEqual({ admin: "READY", weight: 5 });
  });

  it("resolves N% itself and sends the absolute weight", () => {
    const plan = planChange(STATE, weightReq("be_canary/big", parseWeight("50%")));
    expect(lines(plan)).toEqual(["set server be_canary/big weight 100"]);
  });

  it("resolves N% per server, from each one's configured weight", () => {
    const plan = planChange(STATE, weightReq("be_canary/*", parseWeight("10%")));
    expect(lines(plan)).toEqual([
      "set server be_canary/canary weight 10",
      "set server be_canary/big weight 20",
    ]);
  });

  it("sends nothing when the weight is already right", () => {
    const plan = planChange(STATE, weightReq("be_app/app1", { absolute: 10 }));
    expect(plan.servers[0]!.commands).toEqual([]);
    expect(plan.guards).toEqual([]);
  });

  it("keeps the admin state: a weight change on a draining server stays DRAIN", () => {
    const plan = planChange(STATE, weightReq("be_mixed/m5", { absolute: 3 }));
    expect(plan.servers[0]!.after).toEqual({ admin: "DRAIN", weight: 3 });
  });

  it("a ramp step plans one step, not the whole way", () => {
    const plan = planChange(
      STATE,
      weightReq("be_canary/canary", { to: { absolute: 100 }, step: 10 }),
    );
    expect(lines(plan)).toEqual(["set server be_canary/canary weight 11"]);
    expect(plan.servers[0]!.after.weight).toBe(11);
  });

  it("a ramp down plans one step down", () => {
    const plan = planChange(STATE, weightReq("be_canary/big", { to: { percent: 25 }, step: 64 }));
    expect(lines(plan)).toEqual(["set server be_canary/big weight 136"]);
  });

  it("is allowed on a tracking server, even one that inherits maintenance", () => {
    expect(lines(planChange(STATE, weightReq("be_track/t_maint", { absolute: 1 })))).toEqual([
      "set server be_track/t_maint weight 1",
    ]);
  });
});

describe("guards: the last serving server", () => {
  it.each([
    ["drain", req("drain", "be_last/only1")],
    ["maint", req("maint", "be_last/only1")],
    ["weight 0", weightReq("be_last/only1", { absolute: 0 })],
    ["weight 0%", weightReq("be_last/only1", { percent: 0 })],
    ["a ramp step to 0", weightReq("be_last/only1", { to: { absolute: 0 }, step: 256 })],
  ])("%s on the last serving server fails the guard", (_, request) => {
    const plan = planChange(STATE, request);
    expect(plan.guards).toHaveLength(1);
    const [g] = plan.guards;
    expect(g).toMatchObject({
      backend: "be_last",
      servingBefore: ["only1"],
      servingAfter: [],
      ok: false,
      forced: false,
    });
    expect(g!.reason).toContain("be_last would have no server that is UP, READY");
    expect(g!.reason).toContain("only1");

    const e = thrown(GuardError, () => enforceGuards(plan));
    expect(e.exitCode).toBe(ExitCode.guard);
    expect(e.message).toContain("be_last");
    expect(e.message).toContain("--force");
    expect(e.message).toContain(`refusing ${plan.op} be_last/only1`);
    expect(e.details).toEqual({ guards: plan.guards });
  });

  it("a ramp step that stays above 0 passes", () => {
    const plan = planChange(STATE, weightReq("be_last/only1", { to: { absolute: 0 }, step: 4 }));
    expect(lines(plan)).toEqual(["set server be_last/only1 weight 1"]);
    expect(plan.guards[0]!.ok).toBe(true);
  });

  it("draining a whole backend fails, listing what served before", () => {
    const plan = planChange(STATE, req("drain", "be_app/*"));
    expect(plan.guards).toEqual([
      expect.objectContaining({
        backend: "be_app",
        ok: false,
        servingBefore: ["app1", "app2", "app3"],
        servingAfter: [],
      }),
    ]);
    expect(plan.guards[0]!.reason).toContain("now serving: app1, app2, app3");
    expect(() => enforceGuards(plan)).toThrow(GuardError);
  });

  it("--force marks the guard forced and lets the plan through", () => {
    const plan = planChange(STATE, req("drain", "be_last/only1", true));
    expect(plan.guards).toEqual([
      expect.objectContaining({ backend: "be_last", ok: false, forced: true }),
    ]);
    expect(lines(plan)).toEqual(["set server be_last/only1 state drain"]);
    expect(() => enforceGuards(plan)).not.toThrow();
  });

  it("--force on a plan that passes anyway is not recorded as forced", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1", true));
    expect(plan.guards).toEqual([expect.objectContaining({ ok: true, forced: false })]);
  });

  it("draining one of three passes and names who is still serving", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1"));
    expect(plan.guards).toEqual([
      {
        backend: "be_app",
        servingBefore: ["app1", "app2", "app3"],
        servingAfter: ["app2", "app3"],
        ok: true,
        forced: false,
        reason: "2 server(s) still serving: app2, app3",
      },
    ]);
    expect(() => enforceGuards(plan)).not.toThrow();
  });

  it("DOWN, STOPPING, weight 0, MAINT and DRAIN servers do not count as serving", () => {
    const plan = planChange(STATE, req("maint", "be_mixed/m1"));
    expect(plan.guards).toEqual([
      expect.objectContaining({ backend: "be_mixed", servingBefore: ["m1"], ok: false }),
    ]);
  });

  it("readying a server counts it as serving afterwards", () => {
    const plan = planChange(STATE, req("ready", "be_mixed/m4"));
    expect(plan.guards).toEqual([
      expect.objectContaining({ servingBefore: ["m1"], servingAfter: ["m1", "m4"], ok: true }),
    ]);
  });

  it("raising a weight from 0 counts the server as serving afterwards", () => {
    const plan = planChange(STATE, weightReq("be_mixed/m3", { absolute: 4 }));
    expect(plan.guards[0]!.servingAfter).toEqual(["m1", "m3"]);
  });

  it("weight 0 on one server of several passes", () => {
    const plan = planChange(STATE, weightReq("be_app/app3", { absolute: 0 }));
    expect(plan.guards).toEqual([
      expect.objectContaining({ servingAfter: ["app1", "app2"], ok: true }),
    ]);
  });

  it("readying a server of an all-DOWN backend does not block: none served before", () => {
    const state = [
      fact("be_down", "d1", { operational: "DOWN", admin: "MAINT", adminFlags: ["FMAINT"] }),
      fact("be_down", "d2", { operational: "DOWN" }),
    ];
    const plan = planChange(state, req("ready", "be_down/d1"));
    expect(plan.guards).toEqual([
      {
        backend: "be_down",
        servingBefore: [],
        servingAfter: [],
        ok: true,
        forced: false,
        reason: "0 server(s) still serving: none before either",
      },
    ]);
    expect(() => enforceGuards(plan)).not.toThrow();
  });

  it("maint on a server whose backend had no serving server does not block", () => {
    const plan = planChange(STATE, req("maint", "be_down/d1"));
    expect(plan.guards).toEqual([
      expect.objectContaining({ backend: "be_down", servingBefore: [], ok: true }),
    ]);
    expect(() => enforceGuards(plan)).not.toThrow();
  });

  it("a no-op plan has no guards, even on a last server", () => {
    const plan = planChange(STATE, weightReq("be_last/only1", { absolute: 5 }));
    expect(plan.guards).toEqual([]);
    expect(() => enforceGuards(plan)).not.toThrow();
  });

  it("only backends that get a command are checked", () => {
    // 10.0.0.7 is be_app/app3 (READY: drained) and be_mixed/m5 (already DRAIN: no command).
    const plan = planChange(STATE, {
      op: "drain",
      selector: parseAddrSelector("10.0.0.7"),
      force: false,
    });
    expect(plan.servers.map((s) => `${s.backend}/${s.server}`)).toEqual([
      "be_app/app3",
      "be_mixed/m5",
    ]);
    expect(plan.guards.map((g) => g.backend)).toEqual(["be_app"]);
  });

  it("--addr across two backends checks each backend on its own", () => {
    const plan = planChange(STATE, {
      op: "drain",
      selector: parseAddrSelector("10.0.0.5"),
      force: false,
    });
    expect(plan.guards).toEqual([
      expect.objectContaining({ backend: "be_app", ok: true, servingAfter: ["app2", "app3"] }),
      expect.objectContaining({ backend: "be_last", ok: false, servingAfter: [] }),
    ]);
    const e = thrown(GuardError, () => enforceGuards(plan));
    expect(e.message).toContain("refusing drain 10.0.0.5");
    expect(e.message).toContain("be_last would have no server");
    expect(e.message).not.toContain("be_app");
    expect(e.details).toEqual({ guards: [plan.guards[1]] });
  });

  it("enforceGuards lists every failing backend", () => {
    // be_track is left out: draining its IMAINT server is refused before any guard runs.
    const plan = planChange(
      STATE.filter((s) => s.backend !== "be_track"),
      req("drain", "*/*"),
    );
    const failed = plan.guards.filter((g) => !g.ok).map((g) => g.backend);
    // be_down served nothing before, so it does not block.
    expect(failed).toEqual(["be_app", "be_last", "be_mixed", "be_canary"]);
    const e = thrown(GuardError, () => enforceGuards(plan));
    for (const b of failed) expect(e.message).toContain(`${b} would have no server`);
    expect(e.message.match(/--force/g)).toHaveLength(1);
  });

  it("checkGuards can be asked directly, with or without force", () => {
    const planned = planChange(STATE, req("drain", "be_last/only1")).servers;
    expect(checkGuards(STATE, planned, false)[0]).toMatchObject({ ok: false, forced: false });
    expect(checkGuards(STATE, planned, true)[0]).toMatchObject({ ok: false, forced: true });
    expect(checkGuards(STATE, [], false)).toEqual([]);
  });

  it("a server in slow start (STARTING) counts as serving, as in HAProxy's srv_is_usable()", () => {
    const state = [fact("be_s", "up"), fact("be_s", "warming", { operational: "STARTING" })];
    const plan = planChange(state, req("drain", "be_s/up"));
    expect(plan.guards[0]).toMatchObject({ ok: true, servingAfter: ["warming"] });
  });
});

describe("verifyPlan", () => {
  /** STATE with the changes of `patch` applied to the named servers. */
  function readBack(patch: Record<string, Partial<ServerFacts>>): ServerFacts[] {
    return STATE.map((s) => ({ ...s, ...patch[`${s.backend}/${s.server}`] }));
  }

  it("finds nothing when HAProxy's state is what the plan expects", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1"));
    expect(verifyPlan(plan, readBack({ "be_app/app1": { admin: "DRAIN" } }))).toEqual([]);
  });

  it("finds nothing for a no-op plan on unchanged state", () => {
    const plan = planChange(STATE, req("ready", "be_app/*"));
    expect(verifyPlan(plan, STATE)).toEqual([]);
  });

  it("reports an admin state that did not change", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1"));
    expect(verifyPlan(plan, STATE)).toEqual([
      { backend: "be_app", server: "app1", field: "admin", expected: "DRAIN", actual: "READY" },
    ]);
  });

  it("reports a weight that is not the planned one", () => {
    const plan = planChange(STATE, weightReq("be_app/app2", { absolute: 5 }));
    expect(verifyPlan(plan, readBack({ "be_app/app2": { weight: 7 } }))).toEqual([
      { backend: "be_app", server: "app2", field: "weight", expected: "5", actual: "7" },
    ]);
  });

  it("reports both fields when both are wrong", () => {
    const plan = planChange(STATE, req("maint", "be_app/app3"));
    const mismatches = verifyPlan(plan, readBack({ "be_app/app3": { admin: "DRAIN", weight: 1 } }));
    expect(mismatches.map((m) => [m.field, m.expected, m.actual])).toEqual([
      ["admin", "MAINT", "DRAIN"],
      ["weight", "10", "1"],
    ]);
  });

  it("reports a server that is gone after applying as missing", () => {
    const plan = planChange(STATE, req("drain", "be_app/*", true));
    const after = readBack({
      "be_app/app1": { admin: "DRAIN" },
      "be_app/app3": { admin: "DRAIN" },
    }).filter((s) => s.server !== "app2");
    expect(verifyPlan(plan, after)).toEqual([
      { backend: "be_app", server: "app2", field: "missing", expected: "present", actual: "gone" },
    ]);
  });

  it("ignores servers outside the plan", () => {
    const plan = planChange(STATE, req("drain", "be_app/app1"));
    const after = readBack({
      "be_app/app1": { admin: "DRAIN" },
      "be_app/app2": { admin: "MAINT", weight: 0 },
    });
    expect(verifyPlan(plan, after)).toEqual([]);
  });

  it("matches servers by backend and name, not by position", () => {
    const plan = planChange(STATE, req("drain", "*/app1"));
    expect(plan.servers).toHaveLength(1);
    const after = [...readBack({ "be_app/app1": { admin: "DRAIN" } })].reverse();
    expect(verifyPlan(plan, after)).toEqual([]);
  });
});

describe("planning is pure", () => {
  function frozen(state: readonly ServerFacts[]): readonly ServerFacts[] {
    return Object.freeze(
      state.map((s) => Object.freeze({ ...s, adminFlags: Object.freeze([...s.adminFlags]) })),
    );
  }

  const requests: [string, ChangeRequest][] = [
    ["drain", req("drain", "be_app/app1")],
    [
      "maint over two backends",
      { op: "maint", selector: parseAddrSelector("10.0.0.5"), force: true },
    ],
    ["ready", req("ready", "be_mixed/*")],
    ["weight %", weightReq("*/*", { percent: 50 }, true)],
    ["ramp", weightReq("be_canary/*", { to: { absolute: 100 }, step: 10 })],
    [
      "list",
      {
        op: "drain",
        selector: listSelector([{ backend: "be_app", server: "app2" }]),
        force: false,
      },
    ],
  ];

  it.each(requests)("%s: same input, deep-equal plans, input untouched", (_, request) => {
    const state = frozen(STATE);
    const snapshot = structuredClone(state);
    const a = planChange(state, request);
    const b = planChange(state, request);
    expect(b).toEqual(a);
    expect(b).not.toBe(a);
    expect(state).toEqual(snapshot);
    expect(state).toEqual(STATE);
  });

  it("a refused plan leaves the input untouched too", () => {
    const state = frozen(STATE);
    const snapshot = structuredClone(state);
    expect(() => planChange(state, req("ready", "be_track/*"))).toThrow(GuardError);
    expect(state).toEqual(snapshot);
  });

  it("verifyPlan and enforceGuards do not change the plan", () => {
    const plan = planChange(frozen(STATE), req("drain", "be_last/only1"));
    const snapshot = structuredClone(plan);
    verifyPlan(plan, STATE);
    expect(() => enforceGuards(plan)).toThrow(GuardError);
    expect(plan).toEqual(snapshot);
  });
});
