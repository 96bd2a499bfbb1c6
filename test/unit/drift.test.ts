import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  afterReload,
  buildDriftReport,
  compareCerts,
  compareMaps,
  compareServers,
  configChangedSince,
  ownAdmin,
  runtimeOnlyServer,
  runtimeOnlyWords,
  type CertDisk,
  type Compared,
  type ServerInputs,
} from "../../src/ops/drift.js";
import { parseServerConfig } from "../../src/parse/haproxy-cfg.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStat } from "../../src/parse/stat.js";
import { parseStateFile, type StateFileRead } from "../../src/parse/state-file.js";
import { toLines } from "./fixtures.js";

const HEADER =
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/** A `show servers state` row (also a state file line): admin bits, weight, configured weight. */
function line(backend: string, server: string, admin: number, weight: number, iweight: number) {
  return `3 ${backend} 1 ${server} 127.0.0.1 2 ${admin} ${weight} ${iweight} 10 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0`;
}

type Row = Parameters<typeof line>;

const runtime = (...rows: Row[]) =>
  parseServersState(["1", HEADER, ...rows.map((r) => line(...r))]);
const stateText = (...rows: Row[]) =>
  ["1", HEADER, ...rows.map((r) => line(...r))].join("\n") + "\n";

const CFG = [
  "global",
  "    server-state-file /var/lib/haproxy/server-state",
  "defaults",
  "    load-server-state-from-file global",
  "backend be_app",
  "    server app1 10.0.0.1:80 weight 100",
  "    server app2 10.0.0.2:80 weight 100",
  "    server app3 10.0.0.3:80 weight 50 disabled",
  "",
].join("\n");
const STATE = "/var/lib/haproxy/server-state";

function servers(rows: Row[], opts: { cfg?: string | null; state?: StateFileRead } = {}): Compared {
  const cfgText = opts.cfg === undefined ? CFG : opts.cfg;
  const input: ServerInputs = {
    runtime: runtime(...rows),
    config: cfgText === null ? undefined : parseServerConfig(cfgText),
    configPath: "/etc/haproxy/haproxy.cfg",
    ...(cfgText === null
      ? { configError: "cannot read /etc/haproxy/haproxy.cfg: no such file" }
      : {}),
    stateFiles: new Map(
      opts.state ? [[STATE, opts.state]] : [[STATE, { path: STATE, exists: false }]],
    ),
  };
  return compareServers(input);
}

/** The three lab servers as the config sets them up: nothing differs. */
const CLEAN: Row[] = [
  ["be_app", "app1", 0, 100, 100],
  ["be_app", "app2", 0, 100, 100],
  ["be_app", "app3", 5, 50, 50],
];

function withRow(row: Row): Row[] {
  return CLEAN.map((r) => (r[1] === row[1] ? row : r));
}

describe("afterReload (srv_state_srv_update)", () => {
  const row = (adminBits: number, weight: number, initialWeight: number) => ({
    backend: "b",
    server: "s",
    adminBits,
    weight,
    initialWeight,
  });

  it("without a state file row, the server is as configured", () => {
    expect(afterReload({ disabled: false, weight: 10 })).toMatchObject({
      admin: "READY",
      weight: 10,
      fromFile: false,
    });
    expect(afterReload({ disabled: true, weight: 10 })).toMatchObject({ admin: "MAINT" });
  });

  it("keeps forced drain and maintenance from the file, and its weight while the configured one is unchanged", () => {
    expect(afterReload({ disabled: false, weight: 10 }, row(8, 7, 10))).toMatchObject({
      admin: "DRAIN",
      weight: 7,
      fromFile: true,
    });
    expect(afterReload({ disabled: false, weight: 10 }, row(1, 10, 10))).toMatchObject({
      admin: "MAINT",
    });
    // The configured weight changed (10 -> 20): the configuration wins.
    expect(afterReload({ disabled: false, weight: 20 }, row(0, 7, 10)).weight).toBe(20);
  });

  it("lets a change of `disabled` in the configuration win over the file", () => {
    // Was enabled in the config and drained at runtime; now disabled in the config.
    expect(afterReload({ disabled: true, weight: 10 }, row(8, 10, 10)).admin).toBe("MAINT");
    // Was disabled in the config; now enabled there: READY, whatever the file's FMAINT.
    expect(afterReload({ disabled: false, weight: 10 }, row(5, 10, 10)).admin).toBe("READY");
  });

  it("brings back a config-disabled server enabled at runtime (CMAINT alone), as measured on 2.6", () => {
    expect(afterReload({ disabled: true, weight: 10 }, row(4, 7, 10))).toMatchObject({
      admin: "READY",
      weight: 7,
    });
  });

  it("drops a drain that came from a configured weight of 0 once the weight is positive", () => {
    expect(afterReload({ disabled: false, weight: 10 }, row(8, 0, 0)).admin).toBe("READY");
    expect(afterReload({ disabled: false, weight: 0 }, row(8, 0, 0)).admin).toBe("DRAIN");
  });

  it("ignores inherited and resolver bits, and skips a row whose admin state HAProxy refuses (9)", () => {
    expect(afterReload({ disabled: false, weight: 10 }, row(0x18, 10, 10)).admin).toBe("DRAIN");
    const skipped = afterReload({ disabled: false, weight: 10 }, row(9, 3, 10));
    expect(skipped).toMatchObject({ admin: "READY", weight: 10, fromFile: false });
    expect(skipped.rowSkipped).toMatch(/srv_admin_state 9/);
  });

  it("reads a server's own admin state from its forced bits", () => {
    expect([0, 1, 2, 5, 8, 0x10, 0x20].map(ownAdmin)).toEqual([
      "READY",
      "MAINT",
      "READY",
      "MAINT",
      "DRAIN",
      "READY",
      "READY",
    ]);
  });
});

describe("parseStateFile", () => {
  it("reads rows by position, skipping comments", () => {
    const f = parseStateFile(STATE, stateText(["be_app", "app1", 8, 100, 100]));
    expect(f.problem).toBeUndefined();
    expect(f.rows).toEqual([
      { backend: "be_app", server: "app1", adminBits: 8, weight: 100, initialWeight: 100 },
    ]);
  });

  it("says why HAProxy would ignore the whole file", () => {
    const good = stateText(["be_app", "app1", 8, 100, 100]);
    expect(parseStateFile(STATE, good.slice(0, -1)).problem).toMatch(/last line has no newline/);
    expect(parseStateFile(STATE, "2\n" + good.slice(2)).problem).toMatch(/format version 1/);
    expect(parseStateFile(STATE, "").problem).toMatch(/empty/);
    expect(parseStateFile(STATE, "1\n3 be_app 1 app1 127.0.0.1 2 8\n").problem).toMatch(
      /line 2 has 7 fields/,
    );
  });
});

describe("compareServers", () => {
  it("finds nothing when runtime is what the configuration sets up", () => {
    expect(servers(CLEAN)).toEqual({ objects: [], notes: [] });
  });

  it("reports a runtime drain and weight that a reload would undo", () => {
    const r = servers([
      ["be_app", "app1", 8, 100, 100],
      ["be_app", "app2", 0, 30, 100],
      ["be_app", "app3", 5, 50, 50],
    ]);
    expect(r.objects.map((o) => [o.object, o.status, o.runtime, o.disk, o.reload])).toEqual([
      [
        "be_app/app1",
        "drift",
        "DRAIN, weight 100",
        "READY, weight 100 (haproxy.cfg)",
        "make it READY",
      ],
      [
        "be_app/app2",
        "drift",
        "READY, weight 30",
        "READY, weight 100 (haproxy.cfg)",
        "weight 30 -> 100",
      ],
    ]);
    expect(r.objects[0]!.details).toEqual({
      runtime: { admin: "DRAIN", weight: 100, adminFlags: ["FDRAIN"] },
      config: { disabled: false, weight: 100, source: "haproxy.cfg" },
      stateFile: null,
      afterReload: { admin: "READY", weight: 100 },
    });
  });

  it("reports a config-disabled server that was enabled at runtime", () => {
    const r = servers(withRow(["be_app", "app3", 4, 50, 50]));
    expect(r.objects.map((o) => [o.object, o.reload])).toEqual([["be_app/app3", "make it MAINT"]]);
  });

  it("finds nothing when the state file keeps the runtime change", () => {
    const state = parseStateFile(STATE, stateText(["be_app", "app1", 8, 100, 100]));
    expect(servers(withRow(["be_app", "app1", 8, 100, 100]), { state }).objects).toEqual([]);
  });

  it("reports a stale state file: a reload would bring back what it holds", () => {
    const state = parseStateFile(STATE, stateText(["be_app", "app1", 8, 100, 100]));
    const r = servers(CLEAN, { state });
    expect(r.objects.map((o) => [o.object, o.disk, o.reload])).toEqual([
      [
        "be_app/app1",
        "READY, weight 100 (haproxy.cfg); DRAIN, weight 100 (state file)",
        "make it DRAIN",
      ],
    ]);
    expect(r.objects[0]!.details.stateFile).toEqual({
      path: STATE,
      admin: "DRAIN",
      weight: 100,
      applied: true,
    });
  });

  it("says when HAProxy would ignore the state file, and compares with the configuration", () => {
    const state = parseStateFile(STATE, stateText(["be_app", "app1", 8, 100, 100]).slice(0, -1));
    const r = servers(withRow(["be_app", "app1", 8, 100, 100]), { state });
    expect(r.objects.map((o) => o.reload)).toEqual(["make it READY"]);
    expect(r.notes).toEqual([`state file ${STATE}: ${state.problem}`]);
  });

  it("marks what a state file hapops cannot read might keep as unknown", () => {
    const state: StateFileRead = {
      path: STATE,
      exists: true,
      unreadable: true,
      problem: "hapops cannot read it (permission denied)",
    };
    const r = servers(withRow(["be_app", "app1", 8, 100, 100]), { state });
    expect(r.objects.map((o) => [o.status, o.reload])).toEqual([
      ["unknown", `make it READY, unless ${STATE} (unreadable) keeps it`],
    ]);
  });

  it("reports servers a reload would remove (added at runtime) or add (new in the config)", () => {
    const r = servers([...CLEAN.slice(0, 2), ["be_app", "app9", 0, 1, 1]]);
    expect(r.objects.map((o) => [o.object, o.runtime, o.reload])).toEqual([
      [
        "be_app/app9",
        "READY, weight 1",
        "drop it: added with add server, or removed from /etc/haproxy/haproxy.cfg since HAProxy loaded it (the file changed since); if it was added at runtime, add it to /etc/haproxy/haproxy.cfg, or run hapops reload --force, which re-adds it",
      ],
      ["be_app/app3", "absent", "add it"],
    ]);
  });

  it("a server HAProxy has and an unchanged config lacks exists only at runtime: hapops reload re-adds it", () => {
    const input: ServerInputs = {
      runtime: runtime(...CLEAN, ["be_app", "app9", 1, 30, 30]),
      config: parseServerConfig(CFG),
      configPath: "/etc/haproxy/haproxy.cfg",
      stateFiles: new Map([[STATE, { path: STATE, exists: false }]]),
      configChanged: false,
    };
    const r = compareServers(input);
    expect(r.objects).toHaveLength(1);
    expect(r.objects[0]).toMatchObject({
      object: "be_app/app9",
      status: "drift",
      runtime: "MAINT, weight 30",
      disk: "not in /etc/haproxy/haproxy.cfg",
      reload:
        "drop it: it exists only at runtime (added with add server); add it to /etc/haproxy/haproxy.cfg or run hapops reload, which re-adds it",
    });
    expect(r.objects[0]?.details["runtimeOnly"]).toEqual({
      addedAtRuntime: true,
      address: "127.0.0.1",
      port: 8080,
      keywords: ["weight 30", "check"],
      lost: [],
    });
  });

  it("says when hapops reload cannot add a runtime-only server again as it was (ssl)", () => {
    const ssl = `3 be_app 9 app9 127.0.0.1 2 0 5 5 10 15 3 4 0 0 0 0 - 8443 - 1 0 - - 0`;
    const r = compareServers({
      runtime: [...runtime(...CLEAN), ...parseServersState(["1", HEADER, ssl])],
      config: parseServerConfig(CFG),
      configPath: "/etc/haproxy/haproxy.cfg",
      stateFiles: new Map([[STATE, { path: STATE, exists: false }]]),
      configChanged: false,
    });
    expect(r.objects[0]?.reload).toBe(
      "drop it: it exists only at runtime (added with add server); add it to /etc/haproxy/haproxy.cfg (hapops reload cannot add it again as it is: ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime))",
    );
  });

  it("compares a backend the config does not have with what HAProxy loaded, and says so", () => {
    const r = servers([...CLEAN, ["be_other", "x", 8, 1, 1]]);
    expect(r.objects.map((o) => [o.object, o.disk, o.reload])).toEqual([
      ["be_other/x", "READY, weight 1 (as loaded)", "make it READY"],
    ]);
    expect(r.notes[0]).toMatch(/be_other: not in \/etc\/haproxy\/haproxy.cfg/);
  });

  it("without a readable config, compares with what HAProxy loaded (srv_iweight, CMAINT)", () => {
    const r = servers(withRow(["be_app", "app2", 0, 30, 100]), { cfg: null });
    expect(r.objects.map((o) => [o.object, o.disk])).toEqual([
      ["be_app/app2", "READY, weight 100 (as loaded)"],
    ]);
    expect(r.notes[0]).toMatch(
      /^cannot read .*: servers are compared with the configuration HAProxy loaded/,
    );
  });
});

describe("compareCerts", () => {
  const disk = (entries: [string, CertDisk][]) => new Map(entries);

  it("finds nothing when the file holds the served certificate", () => {
    expect(
      compareCerts(
        [{ file: "/c/a.pem", serial: "1A", sha1: "AB" }],
        disk([["/c/a.pem", { serial: "1A", sha1: "AB" }]]),
      ).objects,
    ).toEqual([]);
  });

  it("reports a rotated certificate the file does not hold (rotate-cert without --persist)", () => {
    const r = compareCerts(
      [{ file: "/c/a.pem", serial: "2B", sha1: "CD" }],
      disk([["/c/a.pem", { serial: "1A", sha1: "AB" }]]),
    );
    expect(r.objects.map((o) => [o.kind, o.object, o.status, o.runtime, o.disk, o.reload])).toEqual(
      [
        [
          "cert",
          "/c/a.pem",
          "drift",
          "serial 2B",
          "serial 1A",
          "serve serial 1A (the file) instead",
        ],
      ],
    );
    expect(r.objects[0]!.details).toEqual({
      runtime: { serial: "2B", sha1: "CD" },
      disk: { serial: "1A", sha1: "AB" },
    });
  });

  it("reports another certificate with the same serial by its SHA-1", () => {
    const r = compareCerts(
      [{ file: "/c/a.pem", serial: "1A", sha1: "cd" }],
      disk([["/c/a.pem", { serial: "1A", sha1: "AB" }]]),
    );
    expect(r.objects[0]?.reload).toMatch(/same serial, another certificate/);
  });

  it("reports a missing file as drift and an unreadable one as unknown", () => {
    const r = compareCerts(
      [
        { file: "/c/gone.pem", serial: "1A", sha1: undefined },
        { file: "/c/locked.pem", serial: "1A", sha1: undefined },
      ],
      disk([
        ["/c/gone.pem", { missing: true, error: "missing" }],
        ["/c/locked.pem", { missing: false, error: "cannot read it (EACCES)" }],
      ]),
    );
    expect(r.objects.map((o) => [o.object, o.status])).toEqual([
      ["/c/gone.pem", "drift"],
      ["/c/locked.pem", "unknown"],
    ]);
  });
});

describe("compareMaps", () => {
  const entries = (...pairs: [string, string?][]) => pairs.map(([key, value]) => ({ key, value }));

  it("finds nothing when the live entries are the file's, in its order", () => {
    const r = compareMaps(
      [{ kind: "map", file: "/m/hosts.map", entries: entries(["a", "1"], ["b", "2"]) }],
      new Map([["/m/hosts.map", { text: "# hosts\na 1\n\nb 2\n" }]]),
    );
    expect(r.objects).toEqual([]);
  });

  it("reports entries added, removed and changed at runtime as what a reload would undo", () => {
    const r = compareMaps(
      [
        {
          kind: "map",
          file: "/m/hosts.map",
          entries: entries(["a", "9"], ["c", "3"]),
        },
      ],
      new Map([["/m/hosts.map", { text: "a 1\nb 2\n" }]]),
    );
    expect(r.objects.map((o) => [o.kind, o.runtime, o.disk, o.reload])).toEqual([
      ["map", "2 entries", "2 entries", "drop c 3; restore b 2; reset a to 1"],
    ]);
    expect(r.objects[0]!.details).toMatchObject({
      removed: [{ key: "c", value: "3" }],
      added: [{ key: "b", value: "2" }],
      changed: [{ key: "a", from: "9", to: "1" }],
    });
  });

  it("reports the same entries in another order (map_beg and map_reg match in order)", () => {
    const r = compareMaps(
      [{ kind: "map", file: "/m/m", entries: entries(["b", "2"], ["a", "1"]) }],
      new Map([["/m/m", { text: "a 1\nb 2\n" }]]),
    );
    expect(r.objects.map((o) => o.reload)).toEqual(["restore the file's order"]);
  });

  it("compares ACL patterns, and says when a file cannot be read or compared", () => {
    const r = compareMaps(
      [
        { kind: "acl", file: "/a/blocked.acl", entries: entries(["192.0.2.66"], ["192.0.2.77"]) },
        { kind: "acl", file: "/a/gone.acl", entries: [] },
        { kind: "acl", file: "/a/regex.acl", entries: [] },
      ],
      new Map<string, { text: string } | { error: string }>([
        ["/a/blocked.acl", { text: "192.0.2.66\n" }],
        ["/a/gone.acl", { error: "missing" }],
        ["/a/regex.acl", { text: "^/a b$\n" }],
      ]),
    );
    expect(r.objects.map((o) => [o.object, o.status, o.runtime, o.reload])).toEqual([
      ["/a/blocked.acl", "drift", "2 patterns", "drop 192.0.2.77"],
      ["/a/gone.acl", "unknown", "0 patterns", "unknown: the file cannot be read"],
      ["/a/regex.acl", "unknown", "0 patterns", "unknown: hapops cannot parse the file"],
    ]);
  });
});

describe("buildDriftReport", () => {
  const none: Compared = { objects: [], notes: [] };
  const parts = (servers: Compared) => ({
    servers,
    certs: none,
    maps: none,
    checked: { servers: 3, certs: 0, maps: 0, acls: 0 },
    notes: ["n"],
    sources: { haproxyConfig: "/etc/haproxy/haproxy.cfg", stateFiles: [] },
  });

  it("says drift only when an object would change; unknown ones alone are not drift", () => {
    expect(buildDriftReport("t", parts(none))).toMatchObject({ drift: false, objects: [] });
    const unknown = compareCerts(
      [{ file: "/c/a.pem", serial: "1", sha1: undefined }],
      new Map([["/c/a.pem", { missing: false, error: "cannot read it (EACCES)" }]]),
    );
    expect(buildDriftReport("t", { ...parts(none), certs: unknown }).drift).toBe(false);
    const r = buildDriftReport("t", parts(servers(withRow(["be_app", "app1", 8, 100, 100]))));
    expect(r).toMatchObject({ target: "t", drift: true, notes: ["n"] });
    expect(Object.keys(r)).toEqual(["target", "drift", "objects", "checked", "notes", "sources"]);
  });
});

describe("servers only in HAProxy's memory (added with add server)", () => {
  const VERSIONS = ["2.6", "2.8", "3.0", "3.2", "3.4"] as const;
  const capture = (v: string, name: string) =>
    toLines(
      readFileSync(join(import.meta.dirname, "..", "fixtures", `haproxy-${v}`, name), "utf8"),
    );

  /**
   * Captured by scripts/capture-session-fixtures.mjs after `add server be_app/app9 <addr> check
   * weight 30 maxconn 20 rise 2 fall 3` + `enable health`, `add server be_app/app10 <addr> ssl
   * verify none weight 5` and `add server be_app/app11 <addr> agent-check agent-port <port>
   * agent-inter 1s`.
   */
  it.each(VERSIONS)("%s: reads back what add server was given, and what it cannot", (v) => {
    const state = parseServersState(capture(v, "show-servers-state-dynamic.txt"));
    const stats = new Map(
      parseStat(capture(v, "show-stat-dynamic.csv"))
        .filter((r) => r["svname"] !== "FRONTEND" && r["svname"] !== "BACKEND")
        .map((r) => [`${r["pxname"]}/${r["svname"]}`, r] as const),
    );
    const get = (name: string) => {
      const s = state.find((x) => x.server === name)!;
      return runtimeOnlyServer(s, stats.get(`be_app/${name}`));
    };
    const app9 = get("app9");
    expect(app9).toMatchObject({
      backend: "be_app",
      server: "app9",
      address: "127.0.0.1",
      admin: "MAINT",
      weight: 30,
      initialWeight: 30,
      health: true,
      lost: [],
    });
    expect(app9.keywords).toEqual([
      ["weight", "30"],
      ["maxconn", "20"],
      ["check"],
      ["rise", "2"],
      ["fall", "3"],
    ]);
    expect(runtimeOnlyWords(app9)).toBe(
      `127.0.0.1:${app9.port} weight 30 maxconn 20 check rise 2 fall 3`,
    );
    expect(get("app10").lost).toEqual([
      "ssl (its verify, ca-file, sni and other TLS settings are not shown at runtime)",
    ]);
    expect(get("app10").keywords).toEqual([["weight", "5"]]);
    expect(get("app11").lost).toEqual([
      "an agent check (agent-inter and agent-send are not shown at runtime)",
    ]);
    expect(get("app11").health).toBe(false);
  });

  it("knows the configuration unchanged only when it is older than the process, to the second", () => {
    expect(configChangedSince(1_000_000_500, 1_000_000)).toBe(false);
    expect(configChangedSince(1_000_000_999, 1_000_000)).toBe(false);
    expect(configChangedSince(1_000_001_000, 1_000_000)).toBe(true);
    expect(configChangedSince(undefined, 1_000_000)).toBe(true);
    expect(configChangedSince(1_000_000_500, undefined)).toBe(true);
  });
});
