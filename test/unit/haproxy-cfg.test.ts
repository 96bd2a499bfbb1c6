import { describe, expect, it } from "vitest";
import {
  backendStatePath,
  parseServerConfig,
  parseStatsLimits,
  parseStickTables,
  stateFilePath,
} from "../../src/parse/haproxy-cfg.js";

const cfg = (...lines: string[]): string => lines.join("\n") + "\n";

describe("parseStickTables", () => {
  it("reads a backend's ip table with stored data, dropping the periods", () => {
    const tables = parseStickTables(
      cfg(
        "backend be_app",
        "    stick-table type ip size 1m expire 10m store conn_rate(10s),gpc0",
        "    server app1 127.0.0.1:8080",
      ),
    );
    expect([...tables.keys()]).toEqual(["be_app"]);
    expect(tables.get("be_app")).toEqual({
      name: "be_app",
      type: "ip",
      len: undefined,
      store: ["conn_rate", "gpc0"],
    });
  });

  it("reads a frontend's string table with its len", () => {
    const tables = parseStickTables(
      cfg(
        "frontend fe_main",
        "  bind :80",
        "  stick-table type string len 16 size 100k store http_req_rate(10s),gpt0,gpc0_rate(1m)",
      ),
    );
    expect(tables.get("fe_main")).toEqual({
      name: "fe_main",
      type: "string",
      len: 16,
      store: ["http_req_rate", "gpt0", "gpc0_rate"],
    });
  });

  it("reads a table that stores nothing", () => {
    expect(
      parseStickTables(cfg("backend st_int", "  stick-table type integer size 1k")).get("st_int"),
    ).toEqual({
      name: "st_int",
      type: "integer",
      len: undefined,
      store: [],
    });
  });

  it("reads options in any order", () => {
    expect(
      parseStickTables(
        cfg("listen li", "  stick-table size 1k store gpc0 expire 30s len 40 type binary"),
      ).get("li"),
    ).toEqual({ name: "li", type: "binary", len: 40, store: ["gpc0"] });
  });

  it("ignores comments, whole-line and trailing, and accepts tab indentation", () => {
    const tables = parseStickTables(
      [
        "# stick-table type ip size 1k",
        "backend be_tabs # main app",
        "\t# stick-table type string len 8 size 1k",
        "\tstick-table type ipv6 size 1k store gpc0 # store conn_cnt",
        "",
        "\t\tserver s1 127.0.0.1:1",
      ].join("\n"),
    );
    expect([...tables.values()]).toEqual([
      { name: "be_tabs", type: "ipv6", len: undefined, store: ["gpc0"] },
    ]);
  });

  it("reads a CRLF config", () => {
    const text = "backend be_crlf\r\n  stick-table type string len 8 size 1k store gpc0\r\n";
    expect(parseStickTables(text).get("be_crlf")).toEqual({
      name: "be_crlf",
      type: "string",
      len: 8,
      store: ["gpc0"],
    });
  });

  it("ignores a stick-table in a defaults section, named or not", () => {
    const tables = parseStickTables(
      cfg(
        "defaults",
        "  mode http",
        "  stick-table type ip size 1k store gpc0",
        "defaults named",
        "  stick-table type ip size 1k store gpc0",
        "backend be_app",
        "  server s1 127.0.0.1:1",
      ),
    );
    expect(tables.size).toBe(0);
  });

  it("ignores a stick-table line without a type", () => {
    expect(parseStickTables(cfg("backend b", "  stick-table size 1k store gpc0")).size).toBe(0);
    expect(parseStickTables(cfg("backend b", "  stick-table size 1k type")).size).toBe(0);
  });

  it("names a peers section's table <peers>/<table>", () => {
    const tables = parseStickTables(
      cfg(
        "peers mypeers",
        "  peer hap1 127.0.0.1:10000",
        "  table t1 type string len 8 size 1k store gpc0",
        "  table t2 type ip size 1k expire 1h store gpc0,http_req_rate(10s)",
      ),
    );
    expect(tables.get("mypeers/t1")).toEqual({
      name: "mypeers/t1",
      type: "string",
      len: 8,
      store: ["gpc0"],
    });
    expect(tables.get("mypeers/t2")).toEqual({
      name: "mypeers/t2",
      type: "ip",
      len: undefined,
      store: ["gpc0", "http_req_rate"],
    });
    expect(tables.has("t1")).toBe(false);
  });

  it("does not read `table` outside a peers section", () => {
    expect(parseStickTables(cfg("backend b", "  table t1 type ip size 1k")).size).toBe(0);
  });

  it("reads several sections, each table under its own name", () => {
    const tables = parseStickTables(
      cfg(
        "global",
        "  stats socket /run/haproxy.sock level admin",
        "",
        "defaults",
        "  timeout client 10s",
        "",
        "frontend fe_main",
        "  bind :80",
        "  stick-table type ip size 100k store http_req_rate(10s)",
        "  default_backend be_app",
        "",
        "backend be_app",
        "  stick-table type ip size 1m store conn_rate(10s),gpc0",
        "",
        "backend be_nostick",
        "  server s1 127.0.0.1:1",
        "",
        "peers mypeers",
        "  table t1 type string len 8 size 1k store gpc0",
        "",
        "backend st_str",
        "  stick-table type string len 32 size 1k store gpt0",
      ),
    );
    expect([...tables.keys()]).toEqual(["fe_main", "be_app", "mypeers/t1", "st_str"]);
    expect(tables.get("fe_main")?.store).toEqual(["http_req_rate"]);
    expect(tables.get("be_app")?.store).toEqual(["conn_rate", "gpc0"]);
    expect(tables.get("st_str")).toMatchObject({ type: "string", len: 32, store: ["gpt0"] });
    expect(tables.has("be_nostick")).toBe(false);
  });

  it("returns an empty map for an empty config", () => {
    expect(parseStickTables("").size).toBe(0);
  });

  it("reads array data types whose arguments contain a comma (gpc_rate(2,10s))", () => {
    const t = parseStickTables(
      "backend b\n  stick-table type ip size 1k store gpc(2),gpc_rate(2,10s),conn_cnt\n",
    );
    expect(t.get("b")?.store).toEqual(["gpc", "gpc_rate", "conn_cnt"]);
  });

  it("reads every store keyword on the line", () => {
    const t = parseStickTables("backend b\n  stick-table type ip size 1k store gpc0 store gpt0\n");
    expect(t.get("b")?.store).toEqual(["gpc0", "gpt0"]);
  });
});

describe("parseStatsLimits", () => {
  it("reads Debian's default global section: no stats maxconn, one admin socket", () => {
    expect(
      parseStatsLimits(
        cfg(
          "global",
          "\tlog /dev/log\tlocal0",
          "\tchroot /var/lib/haproxy",
          "\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners",
          "\tstats timeout 30s",
          "",
          "defaults",
          "\tmaxconn 3000",
        ),
      ),
    ).toEqual({
      maxconn: undefined,
      sockets: [{ address: "/run/haproxy/admin.sock", maxconn: undefined, level: "admin" }],
    });
  });

  it("reads stats maxconn and each socket's own maxconn, wherever the lines are", () => {
    const limits = parseStatsLimits(
      cfg(
        "global",
        "    stats socket /run/haproxy/admin.sock level admin maxconn 4",
        "    stats maxconn 50   # room for operators",
        "    stats socket ipv4@127.0.0.1:9999 level user",
      ),
    );
    expect(limits.maxconn).toBe(50);
    expect(limits.sockets).toEqual([
      { address: "/run/haproxy/admin.sock", maxconn: 4, level: "admin" },
      { address: "ipv4@127.0.0.1:9999", maxconn: undefined, level: "user" },
    ]);
  });

  it("takes the last stats maxconn, as HAProxy does", () => {
    expect(parseStatsLimits(cfg("global", "  stats maxconn 5", "  stats maxconn 40")).maxconn).toBe(
      40,
    );
  });

  it("reads only the global section, and skips commented-out lines", () => {
    const limits = parseStatsLimits(
      cfg(
        "global",
        "  # stats maxconn 100",
        "  #stats socket /old.sock",
        "",
        "listen stats",
        "  bind :8404",
        "  stats enable",
        "  stats maxconn 99",
        "  stats socket /not-global.sock",
      ),
    );
    expect(limits).toEqual({ maxconn: undefined, sockets: [] });
  });

  it("ignores a stats maxconn that is not a number", () => {
    expect(parseStatsLimits(cfg("global", "  stats maxconn lots")).maxconn).toBeUndefined();
  });
});

describe("parseServerConfig", () => {
  it("reads servers with their weight (default 1) and disabled, per backend and listen section", () => {
    const c = parseServerConfig(
      cfg(
        "global",
        "    server-state-file /var/lib/haproxy/server-state",
        "defaults",
        "    load-server-state-from-file global",
        "backend be_app",
        "    server app1 10.0.0.1:80 check weight 100",
        "    server app2 10.0.0.2:80 weight 50 check # weight 7",
        "    server app3 10.0.0.3:80 disabled",
        "listen li",
        "    server s unix@/run/x.sock",
      ),
    );
    expect(c.stateFile).toBe("/var/lib/haproxy/server-state");
    expect(c.backends.get("be_app")).toEqual({
      name: "be_app",
      loadState: "global",
      stateFileName: undefined,
      servers: [
        { name: "app1", weight: 100, disabled: false },
        { name: "app2", weight: 50, disabled: false },
        { name: "app3", weight: 1, disabled: true },
      ],
    });
    expect(c.backends.get("li")?.servers).toEqual([{ name: "s", weight: 1, disabled: false }]);
  });

  it("takes default-server from the defaults and the backend; enabled undoes disabled", () => {
    const c = parseServerConfig(
      cfg(
        "defaults",
        "    default-server weight 20 disabled",
        "backend b1",
        "    server a 127.0.0.1:1",
        "    server b 127.0.0.1:2 enabled weight 5",
        "backend b2",
        "    default-server weight 30",
        "    server c 127.0.0.1:3",
      ),
    );
    expect(c.backends.get("b1")?.servers).toEqual([
      { name: "a", weight: 20, disabled: true },
      { name: "b", weight: 5, disabled: false },
    ]);
    expect(c.backends.get("b2")?.servers).toEqual([{ name: "c", weight: 30, disabled: true }]);
  });

  it("uses the last defaults section before a proxy, or the one its `from` names", () => {
    const c = parseServerConfig(
      cfg(
        "defaults keep",
        "    load-server-state-from-file global",
        "defaults plain",
        "    mode http",
        "backend b1",
        "    server a 127.0.0.1:1",
        "backend b2 from keep",
        "    server a 127.0.0.1:1",
        "defaults local from keep",
        "    timeout connect 1s",
        "backend b3",
        "    load-server-state-from-file local",
        "    server-state-file-name b3.state",
        "    server a 127.0.0.1:1",
        "backend b4",
        "    server a 127.0.0.1:1",
      ),
    );
    expect(c.backends.get("b1")?.loadState).toBe("none");
    expect(c.backends.get("b2")?.loadState).toBe("global");
    expect(c.backends.get("b3")).toMatchObject({ loadState: "local", stateFileName: "b3.state" });
    // `defaults local from keep` inherits keep's load-server-state-from-file.
    expect(c.backends.get("b4")?.loadState).toBe("global");
  });

  it("expands server-template names", () => {
    const c = parseServerConfig(
      cfg(
        "backend b",
        "    server-template web 3 web.example.com:80 check weight 7",
        "    server-template api 5-6 api.example.com:80",
      ),
    );
    expect(c.backends.get("b")?.servers.map((s) => `${s.name}:${s.weight}`)).toEqual([
      "web1:7",
      "web2:7",
      "web3:7",
      "api5:1",
      "api6:1",
    ]);
  });

  it("reads server-state-base and crt-base, and ignores servers outside proxies", () => {
    const c = parseServerConfig(
      cfg(
        "global",
        "    server-state-base /var/lib/haproxy/",
        "    server-state-file state",
        "    crt-base /etc/ssl/private",
        "frontend fe",
        "    bind :80",
      ),
    );
    expect(c).toMatchObject({
      stateFile: "state",
      stateBase: "/var/lib/haproxy/",
      crtBase: "/etc/ssl/private",
    });
    expect(c.backends.size).toBe(0);
  });
});

describe("state file paths", () => {
  it("resolves a name as HAProxy does: absolute as is, else under server-state-base", () => {
    expect(stateFilePath("/x/state", "/base")).toBe("/x/state");
    expect(stateFilePath("state", "/base")).toBe("/base/state");
    expect(stateFilePath("state", "/base/")).toBe("/base/state");
    expect(stateFilePath("state", undefined)).toBeUndefined();
  });

  it("gives each backend the file it loads: global, local (its own name by default), or none", () => {
    const c = parseServerConfig(
      cfg(
        "global",
        "    server-state-base /s",
        "    server-state-file global.state",
        "backend g",
        "    load-server-state-from-file global",
        "    server a 127.0.0.1:1",
        "backend l",
        "    load-server-state-from-file local",
        "    server a 127.0.0.1:1",
        "backend n",
        "    server a 127.0.0.1:1",
      ),
    );
    expect(backendStatePath(c, c.backends.get("g")!)).toBe("/s/global.state");
    expect(backendStatePath(c, c.backends.get("l")!)).toBe("/s/l");
    expect(backendStatePath(c, c.backends.get("n")!)).toBeUndefined();
  });
});
