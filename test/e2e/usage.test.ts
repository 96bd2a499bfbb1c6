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

describe("flags before the command, and --json usage errors", () => {
  it.each([
    [["--dry-run", "drain", "be_app/app1"]],
    [["-n", "--reason", "two words", "drain", "be_app/app1"]],
    [["--force", "-n", "maint", "be_app/app1"]],
  ])("hapops %j reads its flags as if they came after the command", async (args) => {
    // No socket here: the run gets as far as connecting, past the option parsing.
    const r = await hapops(["-s", "/nonexistent/hapops.sock", ...args]);
    expect(r.stderr).not.toMatch(/unknown option/);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no socket at \/nonexistent\/hapops\.sock/);
  });

  it.each([
    [["drain", "be_app/app1", "--bogus", "--json"], /unknown option '--bogus'/],
    [["--json", "frobnicate"], /unknown command 'frobnicate'/],
    [["--json", "map", "get", "/etc/x.map"], /missing required argument/],
  ])("hapops %j prints the usage error as JSON on stdout (exit 2)", async (args, message) => {
    const r = await hapops(args);
    expect(r.code).toBe(2);
    const parsed = JSON.parse(r.stdout) as {
      error: { code: string; exitCode: number; message: string };
    };
    expect(parsed.error).toMatchObject({ code: "USAGE", exitCode: 2 });
    expect(parsed.error.message).toMatch(message);
  });
});

describe("what -s names", () => {
  it.each([
    [["-s", "/tmp", "servers"], /\/tmp is a directory, not a socket/],
    [["-s", "lb1", "servers"], /no target named lb1 .*\(targets: none defined\)/],
  ])("hapops %j says what is wrong with it", async (args, message) => {
    const r = await hapops(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});
