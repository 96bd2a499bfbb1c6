import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import {
  ADMIN_FLAGS,
  decodeAdmin,
  decodeOperational,
  parseServersState,
  ServersStateParser,
  type ServerState,
} from "../../src/parse/servers-state.js";
import { fixtureLines, VERSIONS } from "./fixtures.js";

function byName(lines: readonly string[]): Map<string, ServerState> {
  return new Map(parseServersState(lines).map((s) => [`${s.backend}/${s.server}`, s]));
}

const HEADER =
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

describe("decodeOperational", () => {
  it("maps srv_op_state 0..3", () => {
    expect([0, 1, 2, 3].map(decodeOperational)).toEqual(["DOWN", "STARTING", "UP", "STOPPING"]);
  });

  it("refuses a code HAProxy does not define", () => {
    expect(() => decodeOperational(4)).toThrow(ProtocolError);
    expect(() => decodeOperational(-1)).toThrow(ProtocolError);
  });
});

describe("decodeAdmin", () => {
  it.each([
    [0x00, "READY", []],
    [0x01, "MAINT", ["FMAINT"]],
    [0x02, "MAINT", ["IMAINT"]],
    [0x05, "MAINT", ["FMAINT", "CMAINT"]],
    [0x08, "DRAIN", ["FDRAIN"]],
    [0x10, "DRAIN", ["IDRAIN"]],
    [0x20, "MAINT", ["RMAINT"]],
    [0x04, "READY", ["CMAINT"]],
    [0x0c, "DRAIN", ["CMAINT", "FDRAIN"]],
    [0x40, "READY", ["HMAINT"]],
    [0x48, "DRAIN", ["FDRAIN", "HMAINT"]],
    [0x09, "MAINT", ["FMAINT", "FDRAIN"]],
    [0x18, "DRAIN", ["FDRAIN", "IDRAIN"]],
    [0x7f, "MAINT", ["FMAINT", "IMAINT", "CMAINT", "FDRAIN", "IDRAIN", "RMAINT", "HMAINT"]],
  ])("decodes %i as %s %j", (bits, admin, flags) => {
    expect(decodeAdmin(bits)).toEqual({ admin, flags });
  });

  it("lists an unknown bit as hex without changing the state", () => {
    expect(decodeAdmin(0x80)).toEqual({ admin: "READY", flags: ["0x80"] });
    expect(decodeAdmin(0x88)).toEqual({ admin: "DRAIN", flags: ["FDRAIN", "0x80"] });
  });

  it("describes every bit of management.txt once", () => {
    expect(ADMIN_FLAGS.map((f) => f.bit)).toEqual([0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40]);
  });
});

describe.each(VERSIONS)("show servers state on %s", (version) => {
  const lines = fixtureLines(version, "show-servers-state.txt");
  const servers = byName(lines);

  it("reads every server of the sample config", () => {
    expect([...servers.keys()]).toEqual([
      "be_app/app1",
      "be_app/app2",
      "be_app/app3",
      "be_api/api1",
    ]);
  });

  it("decodes a server down on its check", () => {
    expect(servers.get("be_app/app1")).toMatchObject({
      backendId: 3,
      serverId: 1,
      address: "127.0.0.1",
      port: 9001,
      operational: "DOWN",
      opState: 0,
      initialWeight: 100,
      checkStatus: 8,
      fqdn: undefined,
    });
  });

  it("decodes `disabled` in the config as MAINT with CMAINT", () => {
    expect(servers.get("be_app/app3")).toMatchObject({
      port: 9003,
      admin: "MAINT",
      adminBits: 5,
      adminFlags: ["FMAINT", "CMAINT"],
      weight: 50,
      initialWeight: 50,
    });
  });

  it("decodes a server up without checks", () => {
    expect(servers.get("be_api/api1")).toMatchObject({
      backendId: 4,
      operational: "UP",
      admin: "READY",
      adminFlags: [],
      weight: 1,
      port: 9101,
    });
  });

  it("keeps every column by name", () => {
    const fields = servers.get("be_api/api1")?.fields;
    expect(fields?.["srv_check_health"]).toBe("2");
    expect(fields?.["srvrecord"]).toBe("-");
    expect(fields?.["srv_agent_port"]).toBe("0");
  });

  it("gives the same servers fed one line at a time", () => {
    const parser = new ServersStateParser();
    for (const line of lines) parser.line(line);
    parser.end();
    expect(parser.servers).toEqual(parseServersState(lines));
  });
});

describe("show servers state fixtures differ where the runtime state did", () => {
  it("2.6: app1's weight was set to 200, app2 forced into maintenance", () => {
    const servers = byName(fixtureLines("2.6", "show-servers-state.txt"));
    expect(servers.get("be_app/app1")).toMatchObject({ weight: 200, admin: "READY" });
    expect(servers.get("be_app/app2")).toMatchObject({
      admin: "MAINT",
      adminBits: 1,
      adminFlags: ["FMAINT"],
    });
  });

  it("3.2: app1 and app2 are ready", () => {
    const servers = byName(fixtureLines("3.2", "show-servers-state.txt"));
    expect(servers.get("be_app/app1")).toMatchObject({ weight: 100, admin: "READY" });
    expect(servers.get("be_app/app2")).toMatchObject({ admin: "READY", port: 9002 });
  });
});

describe("show servers state captured on 2.6 with every admin state", () => {
  const servers = byName(fixtureLines("2.6", "captured-show-servers-state.txt"));

  it("reads a weight set at runtime apart from the configured one", () => {
    expect(servers.get("be_app/app1")).toMatchObject({
      operational: "UP",
      admin: "READY",
      weight: 50,
      initialWeight: 100,
    });
  });

  it("reads `set server state drain` as DRAIN", () => {
    expect(servers.get("be_app/app2")).toMatchObject({
      operational: "UP",
      admin: "DRAIN",
      adminFlags: ["FDRAIN"],
      port: 9002,
    });
  });

  it("reads `disable server` as MAINT with FMAINT, and the server as stopped", () => {
    expect(servers.get("be_app/app3")).toMatchObject({
      operational: "DOWN",
      admin: "MAINT",
      adminFlags: ["FMAINT"],
    });
  });

  it("reads `disabled` in the config as MAINT with CMAINT", () => {
    expect(servers.get("be_app/app4")).toMatchObject({
      admin: "MAINT",
      adminFlags: ["FMAINT", "CMAINT"],
    });
  });

  it("reads a config-disabled server enabled at runtime as READY, CMAINT still set", () => {
    expect(servers.get("be_app/app5")).toMatchObject({
      operational: "UP",
      admin: "READY",
      adminBits: 4,
      adminFlags: ["CMAINT"],
    });
  });

  it("reads states inherited through `track`", () => {
    expect(servers.get("be_app/t2")).toMatchObject({ admin: "MAINT", adminFlags: ["IMAINT"] });
    expect(servers.get("be_app/t3")).toMatchObject({ admin: "DRAIN", adminFlags: ["FDRAIN"] });
    expect(servers.get("be_app/t4")).toMatchObject({ admin: "DRAIN", adminFlags: ["IDRAIN"] });
  });

  it("reads IPv6 addresses, printed without brackets", () => {
    expect(servers.get("be_app/s6")).toMatchObject({ address: "::1", port: 9006 });
    expect(servers.get("be_app/s7")).toMatchObject({ address: "2001:db8::7", port: 80 });
  });

  it("reads a server without a port as port undefined", () => {
    expect(servers.get("be_app/noport")).toMatchObject({ address: "127.0.0.1", port: undefined });
    expect(servers.get("be_app/noport")?.fields["srv_port"]).toBe("0");
  });

  it("keeps names with '.', '-', '_' and ':' whole", () => {
    expect(servers.get("be.web-01_a:x/srv-1.a_b:c")).toMatchObject({
      backendId: 4,
      backend: "be.web-01_a:x",
      server: "srv-1.a_b:c",
      port: 9101,
    });
  });

  it("reads host names, and an unresolved one as MAINT with RMAINT and address '-'", () => {
    expect(servers.get("be_fqdn/h1")).toMatchObject({
      fqdn: "localhost",
      address: "127.0.0.1",
      port: 9020,
    });
    expect(servers.get("be_fqdn/h2")).toMatchObject({
      fqdn: "example.invalid",
      address: "-",
      port: 80,
      operational: "DOWN",
      admin: "MAINT",
      adminFlags: ["RMAINT"],
    });
  });

  it("returns no servers for a backend without any", () => {
    expect(
      parseServersState(fixtureLines("2.6", "captured-show-servers-state-be_empty.txt")),
    ).toEqual([]);
  });
});

describe("parseServersState format checks", () => {
  const row = "3 be_app 1 app1 127.0.0.1 2 8 100 100 5 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0";

  it("reads columns by name, ignoring unknown ones wherever they are", () => {
    const header =
      "# srv_new_column be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_port another";
    const [server] = parseServersState([
      "1",
      header,
      "x 3 be_app 1 app1 10.0.0.1 2 8 100 100 9001 y",
    ]);
    expect(server).toMatchObject({
      backend: "be_app",
      server: "app1",
      address: "10.0.0.1",
      port: 9001,
      admin: "DRAIN",
      checkStatus: undefined,
      fqdn: undefined,
    });
    expect(server?.fields["srv_new_column"]).toBe("x");
    expect(server?.fields["another"]).toBe("y");
  });

  it("skips comment lines after the header", () => {
    expect(parseServersState(["1", HEADER, "# a comment", row])).toHaveLength(1);
  });

  it.each([
    ["an error message", ["Can't find backend."]],
    ["an empty answer", []],
    ["a version without header", ["1"]],
    ["another format version", ["2", HEADER, row]],
    ["rows without version and header", [row]],
    ["a header without a required column", ["1", "# be_id be_name srv_id srv_name", row]],
  ])("refuses %s", (_what, lines) => {
    expect(() => parseServersState(lines)).toThrow(ProtocolError);
  });

  it("refuses a row with a non-numeric state", () => {
    expect(() => parseServersState(["1", HEADER, row.replace(" 2 8 ", " up 8 ")])).toThrow(
      ProtocolError,
    );
  });

  it("refuses a row cut short", () => {
    expect(() => parseServersState(["1", HEADER, "3 be_app 1 app1"])).toThrow(ProtocolError);
  });
});
