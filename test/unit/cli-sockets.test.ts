import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import { parseCliSockets } from "../../src/parse/cli-sockets.js";
import { fixtureLines } from "./fixtures.js";

describe("parseCliSockets", () => {
  it("reads the sockets on 2.6", () => {
    expect(parseCliSockets(fixtureLines("2.6", "show-cli-sockets.txt"))).toEqual([
      { address: "unix@/srv/demo/admin.sock", level: "admin", processes: "all" },
      { address: "unix@/srv/demo/user.sock", level: "user", processes: "all" },
      { address: "unix@/srv/demo/oper.sock", level: "operator", processes: "all" },
      { address: "ipv4@127.0.0.1:9999", level: "admin", processes: "all" },
    ]);
  });

  it("reads the sockets on 3.2", () => {
    expect(parseCliSockets(fixtureLines("3.2", "show-cli-sockets.txt"))).toEqual([
      { address: "unix@/srv/demo32/admin.sock", level: "admin", processes: "all" },
      { address: "unix@/srv/demo32/user.sock", level: "user", processes: "all" },
      { address: "unix@/srv/demo32/oper.sock", level: "operator", processes: "all" },
      { address: "ipv4@127.0.0.1:9998", level: "admin", processes: "all" },
    ]);
  });

  it("reads columns by header name", () => {
    expect(parseCliSockets(["# lvl socket extra processes", "user [::1]:9999 x 2,3"])).toEqual([
      { address: "[::1]:9999", level: "user", processes: "2,3" },
    ]);
  });

  it("refuses rows before the header", () => {
    expect(() => parseCliSockets(["/tmp/sock admin all"])).toThrow(ProtocolError);
  });
});
