import { chownSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

const lab = useLab({
  // Reachable by an unprivileged user (the unix sockets are root's): the policy tests.
  tcpSocket: true,
  backends: [
    {
      name: "be_app",
      lines: ["stick-table type ip size 1k expire 10m store gpc0,http_req_rate(10s)"],
      servers: [{ name: "app1" }, { name: "app2" }],
    },
    {
      name: "be_names",
      lines: ["stick-table type string len 16 size 1k expire 10m store gpc0"],
      servers: [{ name: "n1", check: false }],
    },
  ],
});

let n = 0;
function config(withHaproxyConfig = true): { cfg: string; log: string } {
  const dir = join(lab().dir, `tcfg-${++n}`);
  mkdirSync(dir, { recursive: true });
  const log = join(dir, "audit.jsonl");
  const cfg = join(dir, "hapops.yaml");
  writeFileSync(
    cfg,
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${log}\n${withHaproxyConfig ? `haproxyConfig: ${lab().configPath}\n` : ""}`,
  );
  return { cfg, log };
}

let base: string | undefined;
/** Runs share one config unless a test needs its own (created once the lab is up). */
const run = (args: readonly string[], cfg?: string): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: cfg ?? (base ??= config().cfg) } });

interface Entry {
  table: string;
  key: string;
  data: Record<string, { value: string }>;
}

async function entries(table: string, ...extra: string[]): Promise<Entry[]> {
  const r = await run(["table", "show", table, "--json", ...extra]);
  // A --key that is not there answers nothing and exits 1 (like grep), saying so on stderr.
  if (r.code === 1) expect(r.stderr).toMatch(/has no entry for key/);
  else expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Entry);
}

describe("stick tables", () => {
  it("sets an entry, shows it by key, and records it", async () => {
    const { cfg, log } = config();
    const r = await run(
      ["table", "set", "be_app", "192.0.2.10", "data.gpc0=3", "--reason", "scraper"],
      cfg,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/be_app 192\.0\.2\.10 {2}gpc0=3\nverified/);
    const [e] = await entries("be_app", "--key", "192.0.2.10");
    expect(e).toMatchObject({ key: "192.0.2.10", data: { gpc0: { value: "3" } } });
    const recs = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { phase: string; commands: string[] });
    expect(recs.map((x) => x.phase)).toEqual(["intent", "result"]);
    expect(recs[0]!.commands).toEqual(["set table be_app key 192.0.2.10 data.gpc0 3"]);
  });

  it("prints entries for people: a summary line, then aligned columns per stored type", async () => {
    expect((await run(["table", "set", "be_app", "192.0.2.11", "data.gpc0=3"])).code).toBe(0);
    const r = await run(["table", "show", "be_app", "--key", "192.0.2.11"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^table be_app: type ip, \d+ of 1024 entries used$/);
    expect(lines[1]).toMatch(/^KEY\s+USE\s+EXPIRES\s+GPC0\s+HTTP_REQ_RATE\(10S\)$/);
    expect(lines[2]).toMatch(/^192\.0\.2\.11\s+0\s+\d+s\s+3\s+0$/);
    expect(lines[2]!.indexOf(" 3 ") + 1).toBe(lines[1]!.indexOf("GPC0"));
  });

  it("filters entries by data", async () => {
    expect((await run(["table", "set", "be_app", "192.0.2.21", "data.gpc0=1"])).code).toBe(0);
    expect((await run(["table", "set", "be_app", "192.0.2.25", "data.gpc0=5"])).code).toBe(0);
    const hot = await entries("be_app", "--filter", "data.gpc0", "gt", "4");
    expect(hot.map((e) => e.key)).toEqual(["192.0.2.25"]);
  });

  it("clears one key", async () => {
    expect((await run(["table", "set", "be_app", "192.0.2.30", "data.gpc0=1"])).code).toBe(0);
    const r = await run(["table", "clear", "be_app", "--key", "192.0.2.30"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await entries("be_app", "--key", "192.0.2.30")).toEqual([]);
  });

  it("refuses to clear a whole table without --yes when there is no terminal (exit 3), clears with it", async () => {
    expect((await run(["table", "set", "be_names", "alice", "data.gpc0=1"])).code).toBe(0);
    const refused = await run(["table", "clear", "be_names"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(
      /clearing the whole table be_names \(1 entries\) needs --yes \(no terminal to ask on\)/,
    );
    expect(await entries("be_names")).toHaveLength(1);
    const ok = await run(["-y", "table", "clear", "be_names"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await entries("be_names")).toEqual([]);
  });

  it.each([
    [
      ["table", "set", "be_app", "999.1.1.1", "data.gpc0=1"],
      /key "999\.1\.1\.1" is not valid for table be_app \(type ip\)/,
    ],
    [
      ["table", "set", "be_app", "2001:db8::1", "data.gpc0=1"],
      /not valid for table be_app \(type ip\): expected an IPv4 address/,
    ],
    [
      ["table", "set", "be_names", "a-very-long-user-name", "data.gpc0=1"],
      /not valid for table be_names \(type string\): it is longer than the table's len 16/,
    ],
    [
      ["table", "set", "be_names", "bob;clear table be_app", "data.gpc0=1"],
      /contains ';' \(a command separator\)/,
    ],
    [
      ["table", "set", "be_app", "192.0.2.40", "data.gpc1=1"],
      /table be_app does not store gpc1 \(it stores gpc0, http_req_rate\)/,
    ],
    [
      ["table", "set", "be_app", "192.0.2.40", "data.gpc0=abc"],
      /data\.gpc0 value "abc" must be a non-negative whole number/,
    ],
    [["table", "set", "be_app", "192.0.2.40", "gpc0=1"], /expected data\.<type>=<value>/],
    [
      ["table", "show", "be_app", "--filter", "data.gpc0", "like", "1"],
      /filter operator "like" must be one of eq, ne, le, ge, lt, gt/,
    ],
    [
      ["table", "clear", "be_nope", "--key", "1.2.3.4"],
      /no stick table named be_nope; did you mean be_app, be_names\?/,
    ],
  ])("refuses %j (exit 2) and sends nothing", async (args, message) => {
    const before = (await entries("be_app")).length + (await entries("be_names")).length;
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect((await entries("be_app")).length + (await entries("be_names")).length).toBe(before);
  });

  it("reports HAProxy's refusal and leaves no half-made entry behind (exit 1)", async () => {
    // Without haproxy.cfg hapops cannot know what the table stores, so HAProxy decides; 2.6
    // creates the entry before it refuses the data type, and hapops removes it again.
    const { cfg } = config(false);
    const r = await run(["table", "set", "be_app", "192.0.2.50", "data.gpc1=1"], cfg);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /HAProxy refused "set table be_app key 192\.0\.2\.50 data\.gpc1 1": Data type not stored in this table/,
    );
    expect(await entries("be_app", "--key", "192.0.2.50")).toEqual([]);
  });

  it("--dry-run shows the line and sends nothing", async () => {
    const r = await run(["table", "set", "be_app", "192.0.2.60", "data.gpc0=9", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("set table be_app key 192.0.2.60 data.gpc0 9");
    expect(await entries("be_app", "--key", "192.0.2.60")).toEqual([]);
  });

  it("needs operator level to change a table (exit 4 from a user socket)", async () => {
    const r = await hapops([
      "-s",
      lab().sockets.user,
      "table",
      "set",
      "be_app",
      "192.0.2.70",
      "data.gpc0=1",
    ]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is at level 'user'; 'table set' needs 'operator'/);
    const ok = await hapops([
      "-s",
      lab().sockets.operator,
      "table",
      "set",
      "be_app",
      "192.0.2.70",
      "data.gpc0=1",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

/** The fields every change's --json report carries, whatever happened. */
const COMMON = ["op", "target", "dryRun", "outcome", "plan", "sent", "verified"];

interface Report {
  op: string;
  dryRun: boolean;
  outcome: string;
  sent: string[];
  verified: boolean;
  plan: { level: string; scope: unknown; steps: unknown[] } | null;
  error?: { code: string; exitCode: number };
  [field: string]: unknown;
}

function report(r: CliResult): Report {
  const j = json<Report>(r);
  for (const f of COMMON) expect(j, `${f} in ${r.stdout}`).toHaveProperty(f);
  return j;
}

describe("stick tables: a dry run gets the real run's verdict", () => {
  it("clearing a whole table without --yes exits 3 in a dry run too, and with --yes plans it", async () => {
    expect((await run(["table", "set", "be_names", "carol", "data.gpc0=1"])).code).toBe(0);
    const real = await run(["table", "clear", "be_names"]);
    const dry = await run(["table", "clear", "be_names", "-n"]);
    expect(real.code).toBe(3);
    expect(dry.code).toBe(real.code);
    expect(dry.stderr).toMatch(/clearing the whole table be_names \(\d+ entries\) needs --yes/);
    const planned = await run(["-y", "table", "clear", "be_names", "-n"]);
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toMatch(/would send \(1 line\):\n {2}clear table be_names\n/);
    expect((await entries("be_names")).map((e) => e.key)).toContain("carol");
  });

  it("a socket below operator level exits 4 in a dry run as in the real run, nothing sent", async () => {
    const args = ["table", "set", "be_app", "192.0.2.71", "data.gpc0=1"];
    const real = await hapops(["-s", lab().sockets.user, ...args]);
    const dry = await hapops(["-s", lab().sockets.user, ...args, "--dry-run"]);
    expect(real.code).toBe(4);
    expect(dry.code).toBe(4);
    expect(dry.stderr).toMatch(/is at level 'user'; 'table set' needs 'operator'/);
    expect(await entries("be_app", "--key", "192.0.2.71")).toEqual([]);
  });
});

describe("stick tables: --json reports", () => {
  it("dry run: the plan and the line it would send, nothing sent", async () => {
    const r = await run(["table", "set", "be_app", "192.0.2.90", "data.gpc0=4", "-n", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = report(r);
    expect(j).toMatchObject({
      op: "table set",
      dryRun: true,
      outcome: "ok",
      verified: false,
      table: "be_app",
      sent: ["set table be_app key 192.0.2.90 data.gpc0 4"],
      plan: { level: "operator", scope: { tables: ["be_app"] } },
    });
    expect(typeof j.usedBefore).toBe("number");
    expect(j).not.toHaveProperty("wouldSend");
    expect(await entries("be_app", "--key", "192.0.2.90")).toEqual([]);
  });

  it("success: what was sent and the entries read back", async () => {
    const r = await run(["table", "set", "be_app", "192.0.2.91", "data.gpc0=5", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = report(r);
    expect(j).toMatchObject({
      op: "table set",
      dryRun: false,
      outcome: "ok",
      verified: true,
      table: "be_app",
      sent: ["set table be_app key 192.0.2.91 data.gpc0 5"],
      entries: [{ table: "be_app", key: "192.0.2.91", data: { gpc0: { value: "5" } } }],
    });
    expect(j.usedAfter).toBe((j.usedBefore as number) + 1);

    const c = await run(["table", "clear", "be_app", "--key", "192.0.2.91", "--json"]);
    expect(c.code, c.stderr).toBe(0);
    expect(report(c)).toMatchObject({
      op: "table clear",
      outcome: "ok",
      verified: true,
      sent: ["clear table be_app key 192.0.2.91"],
      entries: [],
    });
  });

  it("refusal: the guard's error beside the report, nothing sent (exit 3)", async () => {
    const r = await run(["table", "clear", "be_app", "--json"]);
    expect(r.code).toBe(3);
    const j = report(r);
    expect(j).toMatchObject({ op: "table clear", outcome: "refused", dryRun: false, sent: [] });
    expect(j.error).toMatchObject({ code: "GUARD", exitCode: 3 });
  });

  it("failure: HAProxy's refusal, with the compensation it sent (exit 1)", async () => {
    const { cfg } = config(false);
    const r = await run(["table", "set", "be_app", "192.0.2.92", "data.gpc1=1", "--json"], cfg);
    expect(r.code).toBe(1);
    const j = report(r);
    expect(j).toMatchObject({
      op: "table set",
      outcome: "failed",
      verified: false,
      sent: ["set table be_app key 192.0.2.92 data.gpc1 1", "clear table be_app key 192.0.2.92"],
    });
    expect(j.error).toMatchObject({ code: "HAPROXY_REFUSED", exitCode: 1 });
    expect(await entries("be_app", "--key", "192.0.2.92")).toEqual([]);
  });
});

/**
 * Policy binds operators, not root acting directly: these runs are `nobody` (group nogroup)
 * over the loopback TCP socket, with a config whose policy limits nogroup to table be_app.
 */
describe.runIf(process.getuid?.() === 0)("stick tables: policy scope", () => {
  const NOBODY = 65534;
  let dir: string | undefined;
  function scoped(): string {
    if (dir) return join(dir, "hapops.yaml");
    dir = mkdtempSync(join(inject("runDir"), "policy-"));
    chownSync(dir, NOBODY, NOBODY);
    const cfg = join(dir, "hapops.yaml");
    writeFileSync(
      cfg,
      [
        `socket: ${lab().sockets.tcp}`,
        "audit:",
        `  path: ${join(dir, "audit.jsonl")}`,
        "policy:",
        "  groups:",
        "    nogroup:",
        '      allow: ["*"]',
        "      scope: { tables: [be_app] }",
        "",
      ].join("\n"),
      { mode: 0o644 },
    );
    return cfg;
  }
  const asNobody = (args: readonly string[]) =>
    hapops(args, { uid: NOBODY, gid: NOBODY, env: { HAPOPS_CONFIG: scoped() } });

  it("refuses another table (exit 3, also in a dry run), nothing sent", async () => {
    for (const extra of [[], ["-n"]]) {
      const r = await asNobody(["table", "set", "be_names", "mallory", "data.gpc0=1", ...extra]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /policy refuses table set for nobody: group nogroup allows table set only on be_app, not be_names/,
      );
    }
    expect(await entries("be_names", "--key", "mallory")).toEqual([]);
  });

  it("refuses a raw line on another table, and one whose objects it cannot name", async () => {
    expect((await run(["table", "set", "be_names", "dave", "data.gpc0=1"])).code).toBe(0);
    const other = await asNobody(["raw", "clear table be_names"]);
    expect(other.code, other.stderr).toBe(3);
    expect(other.stderr).toMatch(/allows raw only on be_app, not be_names/);
    expect((await entries("be_names")).map((e) => e.key)).toContain("dave");

    const j = await asNobody(["raw", "clear table be_names", "--json"]);
    expect(j.code, j.stderr).toBe(3);
    expect(report(j)).toMatchObject({
      op: "raw",
      outcome: "refused",
      sent: [],
      plan: { scope: { tables: ["be_names"] } },
      error: { code: "POLICY", exitCode: 3 },
    });

    const unnamed = await asNobody(["raw", "shutdown session 0x1"]);
    expect(unnamed.code, unnamed.stderr).toBe(3);
    expect(unnamed.stderr).toMatch(
      /group nogroup is limited to tables, and "shutdown session" names a stream by its id/,
    );
    const servers = await asNobody(["raw", "disable server be_app/app1"]);
    expect(servers.code, servers.stderr).toBe(3);
    expect(servers.stderr).toMatch(/touches servers outside that scope/);
    const s = await run(["servers", "be_app", "--json"]);
    expect(s.stdout).not.toMatch(/MAINT/);
  });

  it("allows table set, table clear and raw inside its scope", async () => {
    const set = await asNobody(["table", "set", "be_app", "192.0.2.95", "data.gpc0=7"]);
    expect(set.code, set.stderr).toBe(0);
    expect(await entries("be_app", "--key", "192.0.2.95")).toHaveLength(1);
    const raw = await asNobody(["raw", "clear table be_app key 192.0.2.95"]);
    expect(raw.code, raw.stderr).toBe(0);
    expect(await entries("be_app", "--key", "192.0.2.95")).toEqual([]);
    const set2 = await asNobody(["table", "set", "be_app", "192.0.2.96", "data.gpc0=1"]);
    expect(set2.code, set2.stderr).toBe(0);
    const clear = await asNobody(["table", "clear", "be_app", "--key", "192.0.2.96"]);
    expect(clear.code, clear.stderr).toBe(0);
    expect(await entries("be_app", "--key", "192.0.2.96")).toEqual([]);
    const log = readFileSync(join(dir!, "audit.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { operator: string; op: string; outcome: string | null });
    expect(log.every((x) => x.operator === "nobody")).toBe(true);
    expect(log.filter((x) => x.outcome === "refused").length).toBeGreaterThanOrEqual(4);
  });
});

describe("table show --key for a key that is not there", () => {
  it("says so on stderr and exits 1, with no header that would look like an answer", async () => {
    const r = await run(["table", "show", "be_app", "--key", "198.51.100.250"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/table be_app has no entry for key 198\.51\.100\.250/);
  });
});

describe("table set without HAProxy's config", () => {
  it("fails verification (exit 1) when HAProxy cut a string key to the table's len, and says why", async () => {
    const { cfg } = config(false);
    const r = await run(
      ["table", "set", "be_names", "averyveryverylongkeyname", "data.gpc0=3"],
      cfg,
    );
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      /table be_names stored the key as "averyveryverylon", not "averyveryverylongkeyname" \(longer than the table's len; set haproxyConfig/,
    );
    expect(r.stdout).not.toMatch(/verified/);
  });
});
