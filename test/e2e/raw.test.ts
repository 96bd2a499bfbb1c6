import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";

const lab = useLab({
  backends: [{ name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] }],
});

let cfgPath: string | undefined;
let logPath = "";
function cfg(): string {
  if (cfgPath) return cfgPath;
  const dir = join(lab().dir, "raw-cfg");
  mkdirSync(dir, { recursive: true });
  logPath = join(dir, "audit.jsonl");
  cfgPath = join(dir, "hapops.yaml");
  writeFileSync(cfgPath, `socket: ${lab().sockets.admin}\naudit:\n  path: ${logPath}\n`);
  return cfgPath;
}

const run = (args: readonly string[], socket?: string): Promise<CliResult> =>
  hapops([...(socket ? ["-s", socket] : []), ...args], { env: { HAPOPS_CONFIG: cfg() } });

async function maxconn(): Promise<string | undefined> {
  const r = await run(["stat", "be_app/app1", "--json"]);
  return (JSON.parse(r.stdout) as { fields: Record<string, string> }[])[0]?.fields["slim"];
}

describe("raw", () => {
  it("sends a known command and prints HAProxy's answer, audited", async () => {
    const r = await run(["raw", "show servers state be_app", "--reason", "look"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("1");
    expect(r.stdout).toMatch(/be_app 1 app1 127\.0\.0\.1/);
    const recs = readFileSync(logPath, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { op: string; phase: string; commands: string[] });
    expect(recs.slice(-2).map((x) => [x.op, x.phase, x.commands[0]])).toEqual([
      ["raw", "intent", "show servers state be_app"],
      ["raw", "result", "show servers state be_app"],
    ]);
  });

  it("changes state with a command from the table", async () => {
    const r = await run(["raw", "set maxconn server be_app/app1 42"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/raw changes are not verified/);
    expect(await maxconn()).toBe("42");
  });

  it.each([
    ["show stat;disable server be_app/app1", /one command: ';' would start a second one/],
    ["show info\ndisable server be_app/app1", /a newline would start a second one/],
    ["add map #0 <<", /payload commands \(<<\) are refused/],
    ["expert-mode on", /raw refuses "expert-mode"/],
    ["experimental-mode on", /raw refuses "experimental-mode"/],
    ["debug dev exit", /raw refuses "debug"/],
    ["prompt", /raw refuses "prompt"/],
    ["@1 show info", /master CLI prefixes/],
    ["@!1234 disable server be_app/app1", /master CLI prefixes/],
    ["frobnicate now", /raw does not know "frobnicate now"/],
    ["set server be_app/app1 state\\ maint", /contains a backslash/],
    ["show info é", /non-ASCII character/],
  ])("refuses %j (exit 2), sending nothing", async (text, message) => {
    const before = await run(["servers", "be_app", "--json"]);
    const r = await run(["raw", text]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect((await run(["servers", "be_app", "--json"])).stdout).toBe(before.stdout);
  });

  it("checks the level before sending (exit 4)", async () => {
    const r = await run(["raw", "disable server be_app/app1"], lab().sockets.operator);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is at level 'operator'; .*needs 'admin'/);
    const s = await run(["servers", "be_app", "--json"]);
    expect(s.stdout).not.toMatch(/MAINT/);
  });

  it("reports HAProxy's refusal in its words (exit 1)", async () => {
    const r = await run(["raw", "set server be_app/nope state drain"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /HAProxy refused "set server be_app\/nope state drain": No such server\./,
    );
  });
});

/** The fields every change's --json report carries, whatever happened. */
const COMMON = ["op", "target", "dryRun", "outcome", "plan", "sent", "verified"];

function report(r: CliResult): Record<string, unknown> {
  const j = json<Record<string, unknown>>(r);
  for (const f of COMMON) expect(j, `${f} in ${r.stdout}`).toHaveProperty(f);
  return j;
}

describe("raw through the engine", () => {
  it("sends a read from a session lowered to the line's level", async () => {
    // `show cli level` needs user level: on the admin socket it answers from a user session.
    const r = await run(["raw", "show cli level"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("user\n");
  });

  it("holds one connection, like a read command", async () => {
    // `show sess` lists the runtime API sessions HAProxy holds (frontend GLOBAL), the asking one
    // included; earlier runs' connections may take a moment to go.
    await waitUntil(
      async () => {
        const r = await run(["raw", "show sess"]);
        expect(r.code, r.stderr).toBe(0);
        const held = r.stdout.split("\n").filter((l) => / fe=GLOBAL /.test(l));
        if (held.length !== 1) throw new Error(`${held.length} sessions:\n${held.join("\n")}`);
        return true;
      },
      { what: "raw show sess to hold one session", timeoutMs: 10_000, intervalMs: 100 },
    );
  });

  it("a dry run says the level and effect, sends nothing, and exits 0", async () => {
    const r = await run(["raw", "set maxconn server be_app/app2 7", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /raw: level admin, changes state\nwould send \(1 line\):\n {2}set maxconn server be_app\/app2 7\n/,
    );
    const s = await run(["stat", "be_app/app2", "--json"]);
    expect(
      (JSON.parse(s.stdout) as { fields: Record<string, string> }[])[0]?.fields["slim"],
    ).not.toBe("7");
  });

  it.each([
    ["disable server be_app/app1", "operator"],
    ["show sess", "user"],
  ])("level too low for %j: exit 4 in a dry run as in the real run", async (text, socket) => {
    const path = socket === "user" ? lab().sockets.user : lab().sockets.operator;
    const real = await run(["raw", text], path);
    const dry = await run(["raw", text, "-n"], path);
    expect(real.code).toBe(4);
    expect(dry.code).toBe(4);
    expect(dry.stderr).toMatch(/'raw' needs '(admin|operator)'/);
  });

  it("--json dry run: the plan with its scope, the line that would be sent", async () => {
    const r = await run(["raw", "disable server be_app/app2", "-n", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(report(r)).toMatchObject({
      op: "raw",
      dryRun: true,
      outcome: "ok",
      verified: false,
      sent: ["disable server be_app/app2"],
      command: "disable server be_app/app2",
      level: "admin",
      mutates: true,
      plan: { level: "admin", mutates: true, scope: { servers: ["be_app/app2"] } },
    });
    expect((await run(["servers", "be_app", "--json"])).stdout).not.toMatch(/MAINT/);
  });

  it("--json success: HAProxy's answer, and a change is not verified", async () => {
    const read = await run(["raw", "get weight be_app/app1", "--json"]);
    expect(read.code, read.stderr).toBe(0);
    expect(report(read)).toMatchObject({
      op: "raw",
      dryRun: false,
      outcome: "ok",
      sent: ["get weight be_app/app1"],
      mutates: false,
      answer: [expect.stringMatching(/^\d+ \(initial \d+\)$/)],
    });
    const change = await run(["raw", "set maxconn server be_app/app1 43", "--json"]);
    expect(change.code, change.stderr).toBe(0);
    expect(report(change)).toMatchObject({
      outcome: "ok",
      verified: false,
      sent: ["set maxconn server be_app/app1 43"],
      answer: [],
    });
    expect(await maxconn()).toBe("43");
  });

  it("--json refusal of the level: the report beside the error, nothing sent (exit 4)", async () => {
    const r = await run(["raw", "disable server be_app/app1", "--json"], lab().sockets.operator);
    expect(r.code).toBe(4);
    expect(report(r)).toMatchObject({
      op: "raw",
      dryRun: false,
      verified: false,
      error: { code: "LEVEL_TOO_LOW", exitCode: 4 },
    });
    expect((await run(["servers", "be_app", "--json"])).stdout).not.toMatch(/MAINT/);
  });

  it("--json failure: HAProxy's refusal in its words, with what was sent (exit 1)", async () => {
    const r = await run(["raw", "set server be_app/nope state drain", "--json"]);
    expect(r.code).toBe(1);
    expect(report(r)).toMatchObject({
      op: "raw",
      outcome: "failed",
      verified: false,
      sent: ["set server be_app/nope state drain"],
      error: { code: "HAPROXY_REFUSED", haproxyMessage: "No such server." },
    });
  });
});
