import { describe, expect, it } from "vitest";
import { hapops } from "../helpers/cli.js";

describe("usage errors", () => {
  it("shows help with examples and exits 0 on --help", async () => {
    const r = await hapops(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n {2}\$ hapops servers/);
    expect(r.stdout).toMatch(/Exit codes:/);
  });

  it.each([
    [[], /Usage: hapops/],
    [["servers", "a", "b"], /too many arguments for 'servers'/],
    [["stat", "--bogus"], /unknown option '--bogus'/],
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["table"], /Usage: hapops table/],
    [["--timeout", "soon", "info"], /--timeout "soon" is not a duration/],
    [["-s", "ftp://lb:21", "info"], /unknown socket scheme "ftp:\/\/"/],
  ])("hapops %j exits 2 and says why", async (args, message) => {
    const r = await hapops(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });
});
