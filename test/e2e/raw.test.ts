import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hapops, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

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
