import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Step } from "../../src/engine/operation.js";
import type { ServerView } from "../../src/engine/state.js";
import { ExitCode, GuardError, UsageError, ValidationError } from "../../src/errors.js";
import type { HaproxyVersion } from "../../src/parse/info.js";
import { parseServersConn } from "../../src/parse/servers-conn.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStat, toStatEntry, type StatEntry } from "../../src/parse/stat.js";
import { validateServerKeywords } from "../../src/ops/server-keywords.js";
import {
  canonicalIp,
  explainAddRefusal,
  parseKeywordFlag,
  parseServerAddress,
  parseServerRef,
  planServerAdd,
  planServerDel,
  planSetAddr,
  RELEASE_MS,
  verifyAdd,
  type AddBody,
  type ServerAddRequest,
  type ServerDelRequest,
} from "../../src/ops/server-lifecycle.js";
import { plainPaint } from "../../src/ops/servers.js";
import { thrown } from "../helpers/thrown.js";
import { toLines } from "./fixtures.js";

function fixture(version: string, name: string): string[] {
  return toLines(
    readFileSync(join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, name), "utf8"),
  );
}

/**
 * be_app as captured by scripts/capture-check-fixtures.sh on each version: app1 and app2 have
 * `check`, app2 and app4 an agent check (srv_agent_state 22), app3 neither, app5 and app6 a check
 * that fails (DOWN). Sessions are set per test.
 */
function views(version: string, scur: Record<string, number> = {}): ServerView[] {
  const byName = new Map<string, StatEntry>();
  for (const row of parseStat(fixture(version, "checks-show-stat-before.csv"))) {
    const e = toStatEntry(row);
    if (e.kind === "server") byName.set(e.name, { ...e, scur: scur[e.name] ?? 0 });
  }
  return parseServersState(fixture(version, "checks-show-servers-state-before.txt")).map((s) => ({
    ...s,
    stat: byName.get(s.server),
  }));
}

function version(text: string): HaproxyVersion {
  const [major, minor] = text.split(".").map(Number);
  return { major: major!, minor: minor!, text };
}

const V24 = version("2.4.0");
const V26 = version("2.6.12");
const V30 = version("3.0.0");

function addRequest(over: Partial<ServerAddRequest> = {}): ServerAddRequest {
  return {
    ref: { backend: "be_app", server: "app9" },
    address: { ip: "127.0.0.1", port: 8080 },
    keywords: [],
    maint: false,
    target: "/run/haproxy/admin.sock",
    paint: plainPaint,
    ...over,
  };
}

function delRequest(over: Partial<ServerDelRequest> = {}): ServerDelRequest {
  return {
    ref: { backend: "be_app", server: "app1" },
    wait: false,
    timeoutMs: 600_000,
    pollMs: 500,
    force: false,
    target: "/run/haproxy/admin.sock",
    paint: plainPaint,
    ...over,
  };
}

/** Every line a plan's first operation sends, in order. */
function lines(steps: readonly Step[]): string[] {
  return steps.flatMap((s) =>
    s.kind === "send" ? s.commands.map((c) => c.line) : s.kind === "transaction" ? s.lines : [],
  );
}

describe("arguments", () => {
  it("takes one server as <backend>/<name>, validated", () => {
    expect(parseServerRef("be_app/app9", "server add")).toEqual({
      backend: "be_app",
      server: "app9",
    });
    for (const bad of ["be_app", "be_app/", "/app9", "be_app/*", "a/b/c"])
      expect(thrown(UsageError, () => parseServerRef(bad, "server add")).exitCode).toBe(2);
    expect(
      thrown(ValidationError, () => parseServerRef("be_app/a;b", "server del")).message,
    ).toMatch(/';' \(a command separator\)/);
  });

  it("takes IPv4 and IPv6 addresses, with or without a port, and nothing else", () => {
    expect(parseServerAddress("10.0.0.5:8080")).toEqual({ ip: "10.0.0.5", port: 8080 });
    expect(parseServerAddress("10.0.0.5")).toEqual({ ip: "10.0.0.5" });
    expect(parseServerAddress("[2001:db8::5]:8443")).toEqual({ ip: "2001:db8::5", port: 8443 });
    expect(parseServerAddress("2001:db8::5")).toEqual({ ip: "2001:db8::5" });
    for (const [bad, why] of [
      ["app.example.com:80", /not an IP address.*does not resolve/],
      ["1.2.3:80", /not an IP address/],
      ["10.0.0.5:0", /port "0" must be a whole number from 1 to 65535/],
      ["10.0.0.5:70000", /port "70000"/],
      ["10.0.0.5:8080;x", /port/],
      ["[2001:db8::5]:x", /port "x"/],
    ] as const)
      expect(thrown(ValidationError, () => parseServerAddress(bad)).message).toMatch(why);
  });

  it("reads --kw as <keyword>[=<value>]", () => {
    expect(parseKeywordFlag("inter=2s")).toEqual(["inter", "2s"]);
    expect(parseKeywordFlag("backup")).toEqual(["backup"]);
    expect(parseKeywordFlag("sni=str(a=b)")).toEqual(["sni", "str(a=b)"]);
    expect(() => parseKeywordFlag("Bad kw")).toThrow(ValidationError);
  });

  it("compares IPv6 addresses however they are written", () => {
    expect(canonicalIp("2001:0db8:0:0::5")).toBe("2001:db8::5");
    expect(canonicalIp("127.0.0.1")).toBe("127.0.0.1");
  });
});

describe("server keywords (add server)", () => {
  it("takes only what the running version takes at runtime (management.txt, add server)", () => {
    // 2.4's list has no checks, TLS or track.
    expect(thrown(ValidationError, () => validateServerKeywords([["check"]], V24)).message).toBe(
      `HAProxy 2.4 does not take check in add server (from 2.5; management.txt, "add server")`,
    );
    expect(
      validateServerKeywords(
        [
          ["weight", "5"],
          ["maxconn", "20"],
        ],
        V24,
      ),
    ).toEqual([
      ["weight", "5"],
      ["maxconn", "20"],
    ]);
    // cookie from 3.0 (2.6 answers "'cookie' option is not accepted for dynamic server").
    expect(() => validateServerKeywords([["cookie", "c1"]], V26)).toThrow(/from 3\.0/);
    expect(validateServerKeywords([["cookie", "c1"]], V30)).toEqual([["cookie", "c1"]]);
  });

  it("refuses unknown keywords, values of the wrong form and combinations HAProxy needs", () => {
    const refused: [readonly (readonly [string, string?])[], RegExp][] = [
      [[["foo", "3"]], /"foo" is not a server keyword hapops passes/],
      [[["disabled"]], /refused: hapops keeps a new server out of traffic with --maint/],
      [[["source", "10.0.0.1"]], /source addresses/],
      [[["weight", "999"]], /weight "999": out of range \(0 to 256\)/],
      [[["weight", "1;x"]], /not a whole number/],
      [[["check", "yes"]], /check takes no value/],
      [[["inter", "2 s"]], /not a time/],
      [[["check"], ["inter", "fast"]], /not a time/],
      [[["agent-port", "0"], ["agent-check"]], /port is a whole number from 1 to 65535/],
      [[["sni", "str(a b)"], ["ssl"]], /without spaces/],
      [[["sni", "str(x)"]], /sni needs ssl/],
      [[["agent-check"]], /needs both agent-check and agent-port/],
      [[["rise", "3"]], /rise tunes the health check: add --check/],
      [
        [
          ["weight", "1"],
          ["weight", "2"],
        ],
        /given twice/,
      ],
      [[["track", "a/b/c"]], /<backend>\/<server>/],
      [[["ca-file", "/etc/ssl/ca.pem<<"], ["ssl"]], /contains/],
      [[["verify", "maybe"], ["ssl"]], /one of none, required/],
    ];
    for (const [kws, why] of refused) {
      const e = thrown(ValidationError, () => validateServerKeywords(kws, V26));
      expect(e.message).toMatch(why);
      expect(e.exitCode).toBe(ExitCode.usage);
    }
  });

  it("checks what does not depend on the version before the version is known", () => {
    expect(() => validateServerKeywords([["weight", "300"]], undefined)).toThrow(/out of range/);
    expect(validateServerKeywords([["cookie", "c1"]], undefined)).toEqual([["cookie", "c1"]]);
  });
});

describe("server add plans", () => {
  const state = { version: V26, servers: views("2.6") };

  it("adds, enables the checks it was given, makes it ready, in that order", () => {
    const plan = planServerAdd(
      state,
      addRequest({
        keywords: [["weight", "10"], ["check"], ["agent-check"], ["agent-port", "9999"]],
      }),
    );
    expect(lines(plan.steps)).toEqual([
      "add server be_app/app9 127.0.0.1:8080 weight 10 check agent-check agent-port 9999",
      "enable health be_app/app9",
      "enable agent be_app/app9",
      "set server be_app/app9 state ready",
    ]);
    expect(plan.op).toBe("server add");
    expect(plan.scope).toEqual({ servers: ["be_app/app9"] });
    expect(plan.level).toBe("admin");
    expect(plan.body).toMatchObject({ weight: 10, admin: "READY", check: true, agent: true });
    expect(plan.describe[0]).toBe(
      "be_app/app9  new at 127.0.0.1:8080 (weight 10, check, agent-check, agent-port 9999) -> READY",
    );
    expect(plan.describe.join("\n")).toMatch(/takes traffic at once and is checked at once/);
  });

  it("sends experimental-mode on first before 2.6, and says so", () => {
    const plan = planServerAdd({ version: V24, servers: views("2.6") }, addRequest());
    expect(lines(plan.steps)).toEqual([
      "experimental-mode on",
      "add server be_app/app9 127.0.0.1:8080",
      "set server be_app/app9 state ready",
    ]);
    expect(plan.describe.join("\n")).toMatch(
      /HAProxy 2\.4 takes add server only in experimental mode: hapops sends experimental-mode on first/,
    );
  });

  it("keeps it in maintenance with --maint", () => {
    const plan = planServerAdd(state, addRequest({ maint: true, keywords: [["check"]] }));
    expect(lines(plan.steps)).toEqual([
      "add server be_app/app9 127.0.0.1:8080 check",
      "enable health be_app/app9",
    ]);
    expect(plan.body.admin).toBe("MAINT");
  });

  it("with --wait-up: waits for the check in maintenance, then plans ready from fresh state", async () => {
    const plan = planServerAdd(
      state,
      addRequest({ keywords: [["check"]], waitUp: { timeoutMs: 60_000, pollMs: 500 } }),
    );
    expect(lines(plan.steps)).toEqual([
      "add server be_app/app9 127.0.0.1:8080 check",
      "enable health be_app/app9",
    ]);
    expect(plan.steps.map((s) => s.kind)).toEqual(["transaction", "wait", "replan"]);
    expect(plan.steps[1]).toMatchObject({
      kind: "wait",
      until: "check-passed",
      servers: [{ backend: "be_app", server: "app9" }],
      timeoutMs: 60_000,
      op: "server add",
      leaves: "be_app/app9 stays in maintenance (added, checked, taking no traffic)",
    });
    expect(plan.body).toMatchObject({ admin: "MAINT", more: true });
    // A dry run plans the ready on the state the add leaves (the new server in maintenance).
    const replan = plan.steps[2];
    if (replan?.kind !== "replan") throw new Error("no replan step");
    expect(replan.op).toBe("server add");
    const next = replan.next(true)!;
    const ready = next.plan(await next.read(undefined as never));
    expect(lines(ready.steps)).toEqual(["set server be_app/app9 state ready"]);
    expect(ready.describe).toEqual(["be_app/app9  MAINT -> READY  (its health check passed)"]);
    expect(ready.op).toBe("server add");
  });

  it("refuses what HAProxy would, before anything is sent", () => {
    expect(
      thrown(UsageError, () =>
        planServerAdd(state, addRequest({ ref: { backend: "be_app", server: "app1" } })),
      ).message,
    ).toMatch(
      /be_app\/app1 exists already \(127\.0\.0\.1:\d+, READY\); pick another name, or move it with hapops server set-addr/,
    );
    expect(
      thrown(UsageError, () =>
        planServerAdd(state, addRequest({ keywords: [["track", "nope"]] }), {
          backend: "be_app",
          server: "nope",
        }),
      ).message,
    ).toMatch(/--track be_app\/nope: backend be_app has no server named nope/);
    expect(
      thrown(UsageError, () =>
        planServerAdd(state, addRequest({ waitUp: { timeoutMs: 1000, pollMs: 100 } })),
      ).message,
    ).toMatch(/--wait-up waits for the health check to pass: add --check/);
    expect(
      thrown(UsageError, () =>
        planServerAdd(
          state,
          addRequest({
            maint: true,
            keywords: [["check"]],
            waitUp: { timeoutMs: 1000, pollMs: 100 },
          }),
        ),
      ).message,
    ).toMatch(/pick one/);
    expect(() =>
      planServerAdd({ version: V24, servers: views("2.6") }, addRequest({ keywords: [["check"]] })),
    ).toThrow(/HAProxy 2\.4 does not take check/);
  });

  it("says when the weight is HAProxy's default of 1 and the others differ", () => {
    const heavy = views("2.6").map((v) => ({ ...v, initialWeight: 100, weight: 100 }));
    const plan = planServerAdd({ version: V26, servers: heavy }, addRequest());
    expect(plan.describe.join("\n")).toMatch(
      /weight 1, HAProxy's default \(default-server does not apply to servers added at runtime\); the others in be_app have 100: --weight sets it/,
    );
    expect(planServerAdd(state, addRequest()).describe.join("\n")).not.toMatch(/weight 1/);
  });

  it("explains HAProxy's refusals in its words (static balance, 2.6 and 3.4 wording)", () => {
    const ref = { backend: "be_static", server: "dyn1" };
    for (const v of ["2.6", "3.4"]) {
      const transcript = fixture(v, "lifecycle-transcript.txt");
      const at = transcript.findIndex((l) => l.startsWith("> add server be_static/dyn1"));
      const message = transcript[at + 1]!;
      const e = explainAddRefusal("add server be_static/dyn1 127.0.0.1:80", message, ref);
      expect(e.message).toContain(message);
      expect(e.message).toMatch(/dynamic balance algorithm \(roundrobin, leastconn, first, random/);
      expect(e.message).toMatch(/change balance in haproxy\.cfg and reload/);
      expect(e.exitCode).toBe(ExitCode.refusedOrUnverified);
    }
    // Measured on 2.6: tracking a server that was itself added at runtime.
    expect(
      explainAddRefusal(
        "add server be_app/tr2 127.0.0.1:80 track be_app/tr1",
        "unable to use be_app/tr1 for tracking as it is a dynamic server.",
        { backend: "be_app", server: "tr2" },
      ).message,
    ).toMatch(/can only track one from haproxy\.cfg/);
  });
});

describe("server add verification", () => {
  const body: AddBody = {
    ref: { backend: "be_app", server: "dyn1" },
    address: { ip: "127.0.0.1" },
    keywords: [],
    weight: 7,
    admin: "MAINT",
    check: false,
    agent: false,
    more: true,
  };
  // dyn1 as 2.6 listed it right after add server (weight 7, maintenance).
  const transcript = fixture("2.6", "lifecycle-transcript.txt");
  const at = transcript.findIndex((l) => l === "> show servers state be_app");
  const state = parseServersState(transcript.slice(at + 1, at + 6)).map((s) => ({
    ...s,
    stat: undefined,
  }));

  it("reads back the address, weight and admin state", () => {
    const v = verifyAdd(state, body);
    expect(v.mismatches).toEqual([]);
    expect(v.summary[0]).toMatch(
      /^verified: HAProxy lists be_app\/dyn1 at 127\.0\.0\.1:\d+, weight 7, MAINT$/,
    );
    // The "runtime only" line waits for the plan that makes it ready.
    expect(v.summary).toHaveLength(1);
    expect(verifyAdd(state, { ...body, more: false }).summary[1]).toMatch(
      /^runtime only: a reload drops be_app\/dyn1 unless haproxy\.cfg has it/,
    );
  });

  it("names every difference", () => {
    const v = verifyAdd(state, { ...body, weight: 8, admin: "READY", check: true });
    expect(v.mismatches).toEqual([
      "be_app/dyn1 weight: expected 8, HAProxy says 7",
      "be_app/dyn1 admin state: expected READY, HAProxy says MAINT",
      "be_app/dyn1 health check: expected enabled, HAProxy says not configured",
    ]);
    expect(verifyAdd([], body).mismatches).toEqual([
      "be_app/dyn1 is not in HAProxy's show servers state",
    ]);
  });
});

describe("server del plans", () => {
  it("disables an agent first, then maintenance, waits until removable, then deletes", () => {
    const plan = planServerDel(
      { version: V26, servers: views("2.6") },
      delRequest({ ref: { backend: "be_app", server: "app2" } }),
    );
    expect(lines(plan.steps)).toEqual([
      "disable agent be_app/app2",
      "set server be_app/app2 state maint",
    ]);
    expect(plan.steps.map((s) => s.kind)).toEqual(["send", "wait", "replan"]);
    expect(plan.steps[1]).toMatchObject({
      kind: "wait",
      until: "removable",
      srvRemovable: false,
      timeoutMs: RELEASE_MS,
      killOp: "sessions kill",
      leaves: "be_app/app2 stays MAINT and is not deleted",
    });
    expect(plan.describe).toEqual([
      "be_app/app2  READY -> MAINT -> deleted",
      'agent check: disabled first (an agent answering "ready" could take be_app/app2 out of maintenance)',
    ]);
    expect(plan.guards.every((g) => g.ok)).toBe(true);
  });

  it("plans del server on the state the wait leaves (dry run), with experimental-mode before 2.6", async () => {
    for (const [v, expected] of [
      [V26, ["del server be_app/app3"]],
      [V24, ["experimental-mode on", "del server be_app/app3"]],
    ] as const) {
      const plan = planServerDel(
        { version: v, servers: views("2.6") },
        delRequest({ ref: { backend: "be_app", server: "app3" } }),
      );
      const replan = plan.steps.at(-1);
      if (replan?.kind !== "replan") throw new Error("no replan step");
      const next = replan.next(true)!;
      const del = next.plan(await next.read(undefined as never));
      expect(lines(del.steps)).toEqual(expected);
      expect(del.describe).toEqual(["be_app/app3  MAINT -> deleted"]);
    }
  });

  it("waits with wait srv-removable from 3.0, and cuts after --kill-after", () => {
    const plan = planServerDel(
      { version: V30, servers: views("3.0", { app1: 2 }) },
      delRequest({ wait: true, killAfterMs: 60_000 }),
    );
    expect(plan.steps[1]).toMatchObject({
      kind: "wait",
      srvRemovable: true,
      timeoutMs: 600_000,
      killAfterMs: 60_000,
    });
    expect(plan.describe[0]).toBe("be_app/app1  READY -> MAINT -> deleted  (2 sessions)");
    expect(plan.json).toMatchObject({
      before: { admin: "READY", sessions: 2 },
      wait: { srvRemovable: true, killAfterMs: 60_000 },
    });
  });

  it("refuses a server in use without --wait or --kill-after, even with --force (exit 3)", () => {
    const plan = planServerDel(
      { version: V26, servers: views("2.6", { app1: 3 }) },
      delRequest({ force: true }),
    );
    const g = plan.guards.find((x) => x.name === "sessions");
    expect(g).toMatchObject({ ok: false, forced: false });
    expect(g?.error).toBeInstanceOf(GuardError);
    expect(g?.error?.message).toMatch(
      /it has 3 sessions, and HAProxy deletes only a server with none\. --wait .* --kill-after <dur> .* hapops sessions kill be_app\/app1/,
    );
    for (const ok of [{ wait: true }, { killAfterMs: 0 }])
      expect(
        planServerDel(
          { version: V26, servers: views("2.6", { app1: 3 }) },
          delRequest(ok),
        ).guards.some((x) => x.name === "sessions"),
      ).toBe(false);
  });

  it("refuses to delete the last server serving a backend unless --force (the last-serving guard)", () => {
    // app1 is the only one serving once app2 and app3 are in maintenance (app5, app6 are DOWN).
    const servers = views("2.6").map((v) =>
      v.server === "app2" || v.server === "app3" || v.server === "app4"
        ? { ...v, admin: "MAINT" as const, adminFlags: ["FMAINT"] }
        : v,
    );
    const plan = planServerDel({ version: V26, servers }, delRequest());
    const g = plan.guards.find((x) => x.name === "be_app");
    expect(g).toMatchObject({ ok: false, forced: false });
    expect(g?.error?.message).toMatch(
      /^refusing server del be_app\/app1: be_app would have no server that is UP, READY and of weight > 0 \(now serving: app1\)\. Pass --force/,
    );
    expect(
      planServerDel({ version: V26, servers }, delRequest({ force: true })).guards.find(
        (x) => x.name === "be_app",
      ),
    ).toMatchObject({ ok: false, forced: true });
  });

  it("sends nothing before the wait for a server already in maintenance without an agent", () => {
    const servers = views("2.6").map((v) =>
      v.server === "app3" ? { ...v, admin: "MAINT" as const, adminFlags: ["FMAINT"] } : v,
    );
    const plan = planServerDel(
      { version: V26, servers },
      delRequest({ ref: { backend: "be_app", server: "app3" } }),
    );
    expect(plan.steps.map((s) => s.kind)).toEqual(["wait", "replan"]);
    expect(plan.describe[0]).toBe(
      "be_app/app3  MAINT  (already in maintenance; nothing to send before del server)",
    );
  });

  it("names the closest servers for one that does not exist", () => {
    expect(
      thrown(UsageError, () =>
        planServerDel(
          { version: V26, servers: views("2.6") },
          delRequest({ ref: { backend: "be_app", server: "app7" } }),
        ),
      ).message,
    ).toMatch(/^backend be_app has no server named app7; did you mean app1, app2, app3\?/);
  });
});

describe("server set-addr plans", () => {
  const servers = views("2.6");
  const app1 = servers.find((s) => s.server === "app1")!;

  it("sends set server ... addr ... port, and nothing when it is there already", () => {
    const plan = planSetAddr(servers, {
      ref: { backend: "be_app", server: "app1" },
      address: { ip: "10.0.0.21", port: 8080 },
      target: "t",
      paint: plainPaint,
    });
    expect(lines(plan.steps)).toEqual(["set server be_app/app1 addr 10.0.0.21 port 8080"]);
    expect(plan.describe[0]).toBe(`be_app/app1  127.0.0.1:${app1.port} -> 10.0.0.21:8080`);
    expect(plan.op).toBe("server set-addr");
    const same = planSetAddr(servers, {
      ref: { backend: "be_app", server: "app1" },
      address: { ip: "127.0.0.1", port: app1.port },
      target: "t",
      paint: plainPaint,
    });
    expect(same.steps).toEqual([]);
    expect(same.describe[0]).toMatch(/\(already; nothing sent\)$/);
  });

  it("keeps the server's port when none is given", () => {
    const plan = planSetAddr(servers, {
      ref: { backend: "be_app", server: "app1" },
      address: { ip: "10.0.0.21" },
      target: "t",
      paint: plainPaint,
    });
    expect(lines(plan.steps)).toEqual(["set server be_app/app1 addr 10.0.0.21"]);
    expect(plan.describe[0]).toBe(`be_app/app1  127.0.0.1:${app1.port} -> 10.0.0.21:${app1.port}`);
  });
});

describe("show servers conn", () => {
  it("reads used and idle connections by column name (3.4 adds columns; dynamic rows are shorter)", () => {
    for (const v of ["2.4", "2.6", "2.8", "3.0", "3.2", "3.4"]) {
      const rows = parseServersConn(fixture(v, "lifecycle-show-servers-conn.txt"));
      const dyn1 = rows.find((r) => r.server === "dyn1");
      expect(dyn1, v).toMatchObject({ backend: "be_app", idle: 0 });
      // 2.4.0 sent the slow request elsewhere; every later version has it on dyn1.
      if (v !== "2.4") expect(dyn1?.used, v).toBe(1);
      expect(rows.every((r) => r.backend === "be_app")).toBe(true);
    }
    const v34 = parseServersConn(fixture("3.4", "lifecycle-show-servers-conn.txt"));
    expect(v34[0]?.fields).toHaveProperty("served");
  });
});
