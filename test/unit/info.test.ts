import { describe, expect, it } from "vitest";
import { parseInfo, parseVersion } from "../../src/parse/info.js";
import { fixtureLines } from "./fixtures.js";

describe("parseInfo", () => {
  it("reads show info on 2.6, keys with spaces included", () => {
    const info = parseInfo(fixtureLines("2.6", "show-info.txt"));
    expect(info["Name"]).toBe("HAProxy");
    expect(info["Version"]).toBe("2.6.12-1+deb12u4");
    expect(info["Nbthread"]).toBe("2");
    expect(info["Uptime"]).toBe("0d 0h26m27s");
    expect(info["Unstoppable Jobs"]).toBe("0");
    expect(info["Build info"]).toBe("2.6.12-1+deb12u4");
    expect(info["Ulimit-n"]).toBe("20000");
    // 2.6's own spelling, fixed in later versions.
    expect(info["TotalSplicdedBytesOut"]).toBe("0");
    expect(info["Tainted"]).toBe("0");
  });

  it("keeps the fields 3.2 adds", () => {
    const info = parseInfo(fixtureLines("3.2", "show-info.txt"));
    expect(info["Version"]).toBe("3.2.0-e134140d2");
    expect(info["Unstoppable Jobs"]).toBe("0");
    expect(info["TotalSplicedBytesOut"]).toBe("0");
    expect(info["TotalWarnings"]).toBe("2");
    expect(info["BootTime_ms"]).toBe("99");
    expect(info["BlockedTrafficWarnings"]).toBe("0");
  });

  it("splits at the first ': ' only and keeps empty values", () => {
    expect(parseInfo(["Description: a: b", "node: ", "Empty:"])).toStrictEqual({
      Description: "a: b",
      node: "",
      Empty: "",
    });
  });

  it("keeps the first value of a repeated key, even one named like an Object method", () => {
    expect(parseInfo(["constructor: a", "constructor: b", "toString: c"])).toStrictEqual({
      constructor: "a",
      toString: "c",
    });
  });

  it("skips lines that are not 'Key: value'", () => {
    expect(parseInfo(["no separator here", "Pid: 42"])).toStrictEqual({ Pid: "42" });
  });
});

describe("parseVersion", () => {
  it("reads major and minor on 2.6 and 3.2", () => {
    expect(parseVersion(parseInfo(fixtureLines("2.6", "show-info.txt")))).toEqual({
      major: 2,
      minor: 6,
      text: "2.6.12-1+deb12u4",
    });
    expect(parseVersion(parseInfo(fixtureLines("3.2", "show-info.txt")))).toEqual({
      major: 3,
      minor: 2,
      text: "3.2.0-e134140d2",
    });
  });

  it("reads development versions", () => {
    expect(parseVersion({ Version: "3.3-dev5-1e8bd9f" })).toEqual({
      major: 3,
      minor: 3,
      text: "3.3-dev5-1e8bd9f",
    });
  });

  it("is undefined without a usable Version field", () => {
    expect(parseVersion({})).toBeUndefined();
    expect(parseVersion({ Version: "unknown" })).toBeUndefined();
  });
});
