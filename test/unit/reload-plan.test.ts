import { describe, expect, it } from "vitest";
import {
  onWorker,
  showInfo,
  showServersState,
  setServerState,
} from "../../src/commands/builders.js";
import type { Settings } from "../../src/config/settings.js";
import type { Operation, Plan, Step } from "../../src/engine/operation.js";
import { ExitCode, HaproxyConfigError, UsageError, ValidationError } from "../../src/errors.js";
import { parseMasterArgs, validateUnit } from "../../src/host/haproxy-process.js";
import { ownFiles } from "../../src/host/input-files.js";
import type { ServerFacts, Plan as ServerPlan } from "../../src/ops/plan.js";
import {
  captureRuntimeState,
  compareAfterReload,
  planReload,
  readdCommands,
  reapplyRequests,
  runtimeOnlyGuards,
  stateFileOf,
  type Captured,
  type ReloadBody,
  type ReloadRequest,
  type ReloadState,
} from "../../src/ops/reload.js";
import type { RuntimeOnlyServer } from "../../src/ops/drift.js";
import { plainPaint } from "../../src/ops/servers.js";
import { parseServerConfig } from "../../src/parse/haproxy-cfg.js";
import { parseShowProc } from "../../src/parse/proc.js";
import { thrown } from "../helpers/thrown.js";

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

const SERVERS: readonly ServerFacts[] = [
  fact("be_app", "app1", { admin: "DRAIN", adminFlags: ["FDRAIN"] }),
  fact("be_app", "app2", { weight: 3 }),
  fact("be_app", "app3"),
  fact("be_app", "app4", { admin: "MAINT", adminFlags: ["FMAINT"], weight: 0 }),
  // `disabled` in the config and still so: as configured.
  fact("be_api", "cold", { admin: "MAINT", adminFlags: ["FMAINT", "CMAINT"] }),
  // `disabled` in the config, made ready at runtime: a reload puts it back in maintenance.
  fact("be_api", "warm", { adminFlags: ["CMAINT"] }),
  // Inherits its state through `track`: follows the tracked server, nothing of its own.
  fact("be_api", "follower", { admin: "MAINT", adminFlags: ["IMAINT"] }),
  fact("be_api", "api1"),
];

const PROCS = parseShowProc([
  "#<PID>          <type>          <reloads>       <uptime>        <version>",
  "100             master          0 [failed: 0]   0d00h00m05s     2.6.12",
  "# workers",
  "101             worker          0               0d00h00m05s     2.6.12",
]);

const CONFIG = `
global
    server-state-file /var/lib/haproxy/server-state
defaults
    load-server-state-from-file global
backend be_app
    server app1 10.0.1.1:80 weight 10
backend be_api
    load-server-state-from-file none
    server api1 10.0.1.1:80 weight 10
`;

function settings(over: Partial<Settings> = {}): Settings {
  return {
    targetText: "/run/haproxy/admin.sock",
    master: "/run/haproxy-master.sock",
    haproxyConfig: "/etc/haproxy/haproxy.cfg",
    sudo: false,
    ...over,
  } as Settings;
}

function request(over: Partial<ReloadRequest> = {}): ReloadRequest {
  return {
    settings: settings(),
    systemd: undefined,
    timeoutMs: 60_000,
    paint: plainPaint,
    files: ownFiles,
    ...over,
  };
}

function state(over: Partial<ReloadState> = {}): ReloadState {
  return {
    master: "/run/haproxy-master.sock",
    procs: PROCS,
    socketPid: 101,
    version: "2.6.12",
    configs: ["/etc/haproxy/haproxy.cfg"],
    configSource: "the master's -f, pid 100",
    check: { ok: true, command: "/usr/sbin/haproxy -c -f /etc/haproxy/haproxy.cfg", output: [] },
    servers: SERVERS,
    serverConfig: parseServerConfig(CONFIG),
    stateFileUnsafe: undefined,
    ...over,
  };
}

const names = (cs: readonly { backend: string; server: string }[]) =>
  cs.map((c) => `${c.backend}/${c.server}`);

function refusals(plan: Plan<ReloadBody>) {
  return plan.guards.filter((g) => !g.ok && !g.forced);
}

describe("captureRuntimeState", () => {
  it("takes what was set at runtime, not what the config or a tracked server says", () => {
    const c = captureRuntimeState(SERVERS);
    expect(c).toEqual<Captured[]>([
      {
        backend: "be_app",
        server: "app1",
        admin: "DRAIN",
        weight: 10,
        config: { admin: "READY", weight: 10 },
      },
      {
        backend: "be_app",
        server: "app2",
        admin: "READY",
        weight: 3,
        config: { admin: "READY", weight: 10 },
      },
      {
        backend: "be_app",
        server: "app4",
        admin: "MAINT",
        weight: 0,
        config: { admin: "READY", weight: 10 },
      },
      {
        backend: "be_api",
        server: "warm",
        admin: "READY",
        weight: 10,
        config: { admin: "MAINT", weight: 10 },
      },
    ]);
  });
});

describe("stateFileOf", () => {
  it("names the file and the backends that load it", () => {
    expect(stateFileOf(parseServerConfig(CONFIG))).toEqual({
      path: "/var/lib/haproxy/server-state",
      loadedBy: ["be_app"],
    });
    expect(stateFileOf(parseServerConfig("global\n    maxconn 10\n"))).toBeUndefined();
    expect(stateFileOf(undefined)).toBeUndefined();
  });
});

describe("planReload", () => {
  it("reloads through the master; the state file carries be_app, be_api is re-applied", () => {
    const plan = planReload(state(), request());
    expect(refusals(plan)).toEqual([]);
    expect(plan.op).toBe("reload");
    const [reload, follow] = plan.steps as [Step, Step];
    expect(reload).toMatchObject({ kind: "transaction", op: "reload", lines: ["reload"] });
    expect(follow).toMatchObject({ kind: "replan" });
    expect(follow.kind === "replan" && [...(follow.ops ?? [])].sort()).toEqual([
      "drain",
      "maint",
      "ready",
      "weight",
    ]);
    // be_api/warm is re-applied to the new worker: the write session must be admin.
    expect(plan.level).toBe("admin");
    expect(plan.scope.unnamed).toMatch(/whole HAProxy/);
    expect(plan.scope.servers).toEqual([
      "be_app/app1",
      "be_app/app2",
      "be_app/app4",
      "be_api/warm",
    ]);
    expect(plan.describe.join("\n")).toMatch(
      /server state: written to \/var\/lib\/haproxy\/server-state just before the reload/,
    );
    expect(plan.describe.join("\n")).toMatch(/then: re-apply be_api\/warm to the new worker/);
    expect(plan.report).toMatchObject({
      via: "master",
      stateFile: "/var/lib/haproxy/server-state",
    });
  });

  it("needs only user level when the state file carries everything captured", () => {
    const plan = planReload(
      state({ servers: SERVERS.filter((s) => s.backend === "be_app") }),
      request(),
    );
    expect(plan.level).toBe("user");
  });

  it("with nothing to carry, has no follow-up", () => {
    const plan = planReload(state({ servers: [fact("be_app", "app3")] }), request());
    expect(plan.steps).toHaveLength(1);
    expect(plan.describe.join("\n")).toMatch(/nothing to carry over/);
  });

  it("refuses without a master socket, saying how to enable the master CLI (exit 2)", () => {
    const plan = planReload(state({ master: undefined, procs: undefined }), request());
    const [g] = refusals(plan);
    expect(g?.name).toBe("master");
    expect(g?.error).toBeInstanceOf(UsageError);
    expect(g?.error?.exitCode).toBe(ExitCode.usage);
    expect(g?.reason).toMatch(/-W -S \/run\/haproxy-master.sock/);
    expect(g?.reason).toMatch(/EXTRAOPTS/);
    expect(g?.reason).toMatch(/--systemd/);
  });

  it("--systemd reloads with systemctl instead", () => {
    const plan = planReload(
      state({ master: undefined, procs: undefined }),
      request({ systemd: "haproxy" }),
    );
    expect(refusals(plan)).toEqual([]);
    expect(plan.steps[0]).toMatchObject({ lines: ["systemctl reload haproxy"] });
  });

  it("refuses a configuration HAProxy rejects, in its words (exit 2)", () => {
    const plan = planReload(
      state({
        check: {
          ok: false,
          command: "haproxy -c -f /etc/haproxy/haproxy.cfg",
          output: [
            "[NOTICE]   (1) : haproxy version is 2.6.12",
            "[ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg:20] : unknown keyword 'bogus' in 'backend' section",
            "[ALERT]    (1) : config : Fatal errors found in configuration.",
          ],
        },
      }),
      request(),
    );
    const [g] = refusals(plan);
    expect(g?.error).toBeInstanceOf(HaproxyConfigError);
    expect(g?.error?.exitCode).toBe(ExitCode.usage);
    expect(g?.error?.message).toMatch(/unknown keyword 'bogus'/);
    expect(g?.error?.message).not.toMatch(/NOTICE/);
    expect(g?.error?.message).toMatch(/nothing was sent/);
  });

  it("refuses when the configuration cannot be checked", () => {
    const plan = planReload(
      state({ check: { error: "cannot read /etc/haproxy/haproxy.cfg: no such file" } }),
      request(),
    );
    expect(refusals(plan)[0]?.error).toBeInstanceOf(UsageError);
  });

  it("refuses when -s and --master are not the same HAProxy", () => {
    const plan = planReload(state({ socketPid: 999 }), request());
    const [g] = refusals(plan);
    expect(g?.name).toBe("same-haproxy");
    expect(g?.reason).toMatch(
      /served by pid 999, which is not a current worker .* \(workers: 101\)/,
    );
  });

  it("the dry run plans the re-apply on the state the reload would leave", async () => {
    const plan = planReload(state({ serverConfig: undefined }), request());
    const follow = plan.steps.find((s) => s.kind === "replan");
    if (follow?.kind !== "replan") throw new Error("no replan step");
    // No state file: everything captured is re-applied, one server operation per kind.
    let op: Operation | undefined = follow.next(true);
    const plans: string[][] = [];
    while (op) {
      const sop = op as Operation<readonly ServerFacts[], ServerPlan>;
      const simulated = sop.plan(await sop.read(undefined as never));
      plans.push(
        simulated.steps.flatMap((s) => (s.kind === "send" ? s.commands.map((c) => c.line) : [])),
      );
      const next = simulated.steps.find((s) => s.kind === "replan");
      op = next?.kind === "replan" ? next.next(true) : undefined;
    }
    expect(plans).toEqual([
      ["set server be_app/app4 state maint"],
      ["set server be_app/app1 state drain"],
      ["set server be_api/warm state ready"],
      ["set server be_app/app4 weight 0"],
      ["set server be_app/app2 weight 3"],
    ]);
  });
});

describe("after the reload", () => {
  const captured = captureRuntimeState(SERVERS);

  it("compares the new worker with what was captured", () => {
    const fresh = [
      fact("be_app", "app1", { admin: "DRAIN", adminFlags: ["FDRAIN"] }),
      fact("be_app", "app2"), // weight lost
      // app4 gone from the new configuration
      fact("be_api", "warm", { admin: "MAINT", adminFlags: ["FMAINT", "CMAINT"] }),
    ];
    const cmp = compareAfterReload(captured, fresh);
    expect(names(cmp.carried)).toEqual(["be_app/app1"]);
    expect(names(cmp.lost)).toEqual(["be_app/app2", "be_api/warm"]);
    expect(names(cmp.gone)).toEqual(["be_app/app4"]);
  });

  it("leaves a weight to the new configuration when it changed there, as HAProxy's state file does", () => {
    const fresh = [fact("be_app", "app2", { weight: 20, initialWeight: 20 })];
    const c = captured.filter((x) => x.server === "app2");
    const cmp = compareAfterReload(c, fresh);
    expect(names(cmp.carried)).toEqual(["be_app/app2"]);
    expect(names(cmp.configWeight)).toEqual(["be_app/app2"]);
    expect(reapplyRequests(c, fresh)).toEqual([]);
  });

  it("re-applies one forced server change per kind, only for servers still there", () => {
    const fresh = SERVERS.map((s) => fact(s.backend, s.server)).filter((s) => s.server !== "app4");
    const reqs = reapplyRequests(captured, fresh);
    expect(reqs.map((r) => [r.op, r.selector.text, r.force])).toEqual([
      ["drain", "be_app/app1", true],
      ["ready", "be_api/warm", true],
      ["weight", "be_app/app2", true],
    ]);
  });
});

describe("parseMasterArgs", () => {
  it("finds the -f files, -C and the files after --, past -sf pids and -x", () => {
    expect(
      parseMasterArgs([
        "/usr/sbin/haproxy",
        "-sf",
        "4877",
        "4932",
        "-x",
        "sockpair@4",
        "-Ws",
        "-f",
        "/etc/haproxy/haproxy.cfg",
        "-p",
        "/run/haproxy.pid",
        "-S",
        "/run/haproxy-master.sock",
        "-C",
        "/etc/haproxy",
        "--",
        "conf.d",
        "extra.cfg",
      ]),
    ).toEqual({
      configs: ["/etc/haproxy/haproxy.cfg", "conf.d", "extra.cfg"],
      dir: "/etc/haproxy",
    });
    expect(parseMasterArgs(["haproxy", "-W", "-db"])).toEqual({ configs: [] });
  });
});

describe("validateUnit", () => {
  it("takes unit names, and under sudo only haproxy units", () => {
    expect(validateUnit("haproxy", false)).toBe("haproxy");
    expect(validateUnit("nginx.service", false)).toBe("nginx.service");
    expect(validateUnit("haproxy@edge.service", true)).toBe("haproxy@edge.service");
    expect(thrown(UsageError, () => validateUnit("sshd", true)).message).toMatch(/under sudo/);
    thrown(UsageError, () => validateUnit("a b", false));
    thrown(UsageError, () => validateUnit("--now", false));
  });
});

describe("onWorker", () => {
  it("prefixes a grammar command with @!<pid> or @<n>", () => {
    expect(onWorker({ pid: 4932 }, showServersState()).line).toBe("@!4932 show servers state");
    expect(onWorker({ relative: 1 }, showInfo()).line).toBe("@1 show info");
    // The master answers any prefix at operator level at least (measured on 3.4).
    expect(onWorker({ pid: 1 }, showInfo()).spec.level).toBe("operator");
    expect(onWorker({ pid: 1 }, setServerState("b", "s", "drain")).spec.level).toBe("admin");
  });

  it("refuses a bad pid and commands that cannot go through", () => {
    for (const pid of [0, -1, 1.5, 2 ** 31])
      thrown(ValidationError, () => onWorker({ pid }, showInfo()));
    thrown(ValidationError, () => onWorker({ pid: 1 }, onWorker({ pid: 2 }, showInfo())));
  });
});

describe("servers only in HAProxy's memory (added with add server)", () => {
  /** As runtimeOnlyServer reads one back (test/unit/drift.test.ts covers the reading). */
  function only(server: string, over: Partial<RuntimeOnlyServer> = {}): RuntimeOnlyServer {
    return {
      backend: "be_app",
      server,
      address: "10.0.1.9",
      port: 8080,
      admin: "READY",
      weight: 30,
      initialWeight: 30,
      keywords: [["weight", "30"], ["check"], ["rise", "2"], ["fall", "3"]],
      health: true,
      lost: [],
      ...over,
    };
  }
  const app9 = only("app9");
  const ssl = only("app10", {
    keywords: [["weight", "5"]],
    health: false,
    lost: ["ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime)"],
  });
  const withApp9 = [...SERVERS, fact("be_app", "app9", { weight: 30, initialWeight: 30 })];

  it("re-adds one with add server, then enables its check, its admin state and weight", () => {
    expect(readdCommands([app9], { major: 2, minor: 6 }).map((c) => c.line)).toEqual([
      "add server be_app/app9 10.0.1.9:8080 weight 30 check rise 2 fall 3",
      "enable health be_app/app9",
      "set server be_app/app9 state ready",
    ]);
    const drained = only("app9", { admin: "DRAIN", weight: 12, health: false });
    expect(readdCommands([drained], { major: 3, minor: 2 }).map((c) => c.line)).toEqual([
      "add server be_app/app9 10.0.1.9:8080 weight 30 check rise 2 fall 3",
      "set server be_app/app9 state drain",
      "set server be_app/app9 weight 12",
    ]);
    // Added in MAINT, as HAProxy creates it: nothing after add server.
    const maint = only("app9", { admin: "MAINT", health: false, keywords: [["weight", "30"]] });
    expect(readdCommands([maint], undefined).map((c) => c.line)).toEqual([
      "add server be_app/app9 10.0.1.9:8080 weight 30",
    ]);
    // IPv6 is written so that HAProxy does not take its last group for the port.
    const v6 = only("app9", { address: "2001:db8::9", health: false, keywords: [] });
    expect(readdCommands([v6], undefined)[0]?.line).toBe(
      "add server be_app/app9 ipv6@2001:db8::9:8080",
    );
  });

  it("turns experimental mode on first before 2.6 (add server needs it on 2.4 and 2.5)", () => {
    expect(readdCommands([app9], { major: 2, minor: 4 }).map((c) => c.line)[0]).toBe(
      "experimental-mode on",
    );
    expect(readdCommands([], { major: 2, minor: 4 })).toEqual([]);
  });

  it("needs no guard when the configuration did not change since HAProxy loaded it", () => {
    expect(
      runtimeOnlyGuards(
        [app9],
        { configs: ["/etc/haproxy/haproxy.cfg"], configChanged: false },
        {},
      ),
    ).toEqual([]);
  });

  it("refuses when the configuration changed since (taken out on purpose?); --force re-adds", () => {
    const [g] = runtimeOnlyGuards(
      [app9],
      { configs: ["/etc/haproxy/haproxy.cfg"], configChanged: true },
      {},
    );
    expect(g).toMatchObject({ name: "runtime-only", ok: false, forced: false });
    expect(g?.error?.exitCode).toBe(ExitCode.guard);
    expect(g?.error?.message).toBe(
      "refusing to reload: be_app/app9 is in HAProxy's memory but not in /etc/haproxy/haproxy.cfg, which changed since HAProxy loaded it: hapops cannot tell a server added at runtime (add server) from one taken out of the configuration on purpose. If it was added at runtime, add it to /etc/haproxy/haproxy.cfg, or pass --force to reload and re-add it; if it was taken out on purpose, remove it first (hapops server del be_app/app9), then reload. Nothing was sent",
    );
    const [forced] = runtimeOnlyGuards(
      [app9],
      { configs: ["/etc/haproxy/haproxy.cfg"], configChanged: undefined },
      { force: true },
    );
    expect(forced).toMatchObject({ ok: false, forced: true });
    expect(forced?.reason).toMatch(/; re-adding it$/);
  });

  it("refuses one it cannot add again as it was (ssl); --force leaves it out", () => {
    const guards = runtimeOnlyGuards(
      [app9, ssl],
      { configs: ["/etc/haproxy/haproxy.cfg"], configChanged: false },
      {},
    );
    expect(guards.map((g) => g.name)).toEqual(["runtime-only settings"]);
    expect(guards[0]?.error?.message).toBe(
      "refusing to reload: a reload drops be_app/app10, which exists only in HAProxy's memory, and hapops cannot add it again as it was (be_app/app10: ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime)). Add it to /etc/haproxy/haproxy.cfg first, or pass --force to reload without it (not re-added). Nothing was sent",
    );
    const forced = runtimeOnlyGuards(
      [app9, ssl],
      { configs: ["/etc/haproxy/haproxy.cfg"], configChanged: false },
      { force: true },
    );
    expect(forced[0]?.reason).toMatch(/; left out$/);
    expect(forced[0]?.forced).toBe(true);
  });

  it("plans the reload with the re-add: admin level, in scope, not captured, described, and a dry run plans the add server lines", () => {
    const plan = planReload(
      state({ servers: withApp9, runtimeOnly: [app9], configChanged: false }),
      request(),
    );
    expect(refusals(plan)).toEqual([]);
    expect(plan.level).toBe("admin");
    expect(plan.scope.servers).toContain("be_app/app9");
    expect(names(plan.body.captured)).not.toContain("be_app/app9");
    expect(plan.body.readd).toEqual([app9]);
    expect(plan.describe).toContain(
      "  be_app/app9  10.0.1.9:8080 weight 30 check rise 2 fall 3, health check on, READY  -> re-added on the new worker",
    );
    const follow = plan.steps.find((s) => s.kind === "replan");
    expect(follow?.kind === "replan" && follow.ops).toContain("server add");
    const next = follow?.kind === "replan" ? follow.next(true) : undefined;
    expect(next?.op).toBe("server add");
    const readd = next!.plan(withApp9.filter((f) => f.server !== "app9")) as Plan<{
      servers: readonly RuntimeOnlyServer[];
    }>;
    const send = readd.steps[0];
    expect(send?.kind === "send" ? send.commands.map((c) => c.line) : []).toEqual([
      "add server be_app/app9 10.0.1.9:8080 weight 30 check rise 2 fall 3",
      "enable health be_app/app9",
      "set server be_app/app9 state ready",
    ]);
    // The configuration has it on the new worker: nothing to send.
    const present = next!.plan(withApp9);
    expect(present.steps.filter((s) => s.kind === "send")).toEqual([]);
    expect(present.describe).toContain(
      "  be_app/app9  already there (the configuration has it now; nothing sent)",
    );
  });

  it("with --force leaves out the one it cannot re-add, and re-adds the others", () => {
    const plan = planReload(
      state({ servers: withApp9, runtimeOnly: [app9, ssl], configChanged: false }),
      request({ force: true }),
    );
    expect(refusals(plan)).toEqual([]);
    expect(plan.body.readd.map((r) => r.server)).toEqual(["app9"]);
    expect(plan.body.leftOut.map((r) => r.server)).toEqual(["app10"]);
    expect(plan.describe.join("\n")).toContain(
      "  be_app/app10  left out: hapops cannot add it again as it is (ssl",
    );
  });
});
