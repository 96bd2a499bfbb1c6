import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { useFleet } from "../helpers/fleet.js";

const fleet = useFleet(3);

/** The CLI with the fleet's config; generous: three TLS handshakes on a busy 2-core machine. */
const run = (args: readonly string[]): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: fleet().config }, timeoutMs: 60_000 });

interface TargetStatus {
  target: string;
  ok: boolean;
  error?: { code: string; exitCode: number; message: string };
}

interface ServerRow {
  target: string;
  backend: string;
  server: string;
  port: number;
  operational: string;
  admin: string;
}

/** Lines of a table whose first column is this target. */
function rowsOf(stdout: string, target: string): string[] {
  return stdout.split("\n").filter((l) => l.startsWith(`${target} `));
}

/** One request through a lab's frontend: be_app tracks the source in its stick table. */
function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

describe("reads over many targets", () => {
  it("servers -g all: one table, TARGET first, the rows of every target in order", async () => {
    const r = await run(["servers", "-g", "all"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^TARGET\s+SERVER\s+ADDRESS\s+STATE\s+ADMIN\s+WEIGHT\s+SESSIONS\s+CHECK$/,
    );
    for (const lb of ["lb1", "lb2", "lb3"]) {
      const rows = rowsOf(r.stdout, lb);
      expect(rows.length, r.stdout).toBe(8);
      // Each lab has its own backends: the port says the row came from that HAProxy.
      const port = fleet().lab(lb).backends.get("be_app/app1")!.port;
      expect(rows.find((l) => /\sbe_app\/app1\s/.test(l))).toContain(`127.0.0.1:${port}`);
    }
    const firstOf = (lb: string) => lines.findIndex((l) => l.startsWith(`${lb} `));
    expect(firstOf("lb1")).toBeLessThan(firstOf("lb2"));
    expect(firstOf("lb2")).toBeLessThan(firstOf("lb3"));
  });

  it("servers -g all --json: every row has its target, and targets says each answered", async () => {
    const r = await run(["servers", "-g", "all", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = json<{ servers: ServerRow[]; targets: TargetStatus[] }>(r);
    expect(out.targets).toEqual([
      { target: "lb1", ok: true },
      { target: "lb2", ok: true },
      { target: "lb3", ok: true },
    ]);
    expect(out.servers).toHaveLength(24);
    expect(out.servers.every((s) => ["lb1", "lb2", "lb3"].includes(s.target))).toBe(true);
    for (const lb of ["lb1", "lb2", "lb3"]) {
      const app1 = out.servers.find(
        (s) => s.target === lb && s.backend === "be_app" && s.server === "app1",
      );
      expect(app1).toMatchObject({
        port: fleet().lab(lb).backends.get("be_app/app1")!.port,
        operational: "UP",
        admin: "READY",
      });
    }
    // `target` comes first, then the row one target prints.
    expect(Object.keys(out.servers[0]!)[0]).toBe("target");
  });

  it("servers <backend> -t lb2 is a fleet of one; -s lb2 stays the single-target output", async () => {
    const many = await run(["servers", "be_api", "-t", "lb2", "--json"]);
    expect(many.code, many.stderr).toBe(0);
    const out = json<{ servers: ServerRow[] }>(many);
    expect(out.servers.map((s) => `${s.target} ${s.server}`)).toEqual([
      "lb2 api-1.blue",
      "lb2 api-2.green",
    ]);
    const one = await run(["-s", "lb2", "servers", "be_api"]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.split("\n")[0]).toMatch(/^SERVER\s+ADDRESS/);
    const oneJson = await run(["-s", "lb2", "servers", "be_api", "--json"]);
    expect(Array.isArray(json(oneJson))).toBe(true);
  });

  it("info -t lb1,lb2: one row per target", async () => {
    const r = await run(["info", "-t", "lb1,lb2"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^TARGET\s+VERSION\s+UPTIME\s+CONNECTIONS\s+CONN RATE\s+REQUESTS\s+STOPPING$/,
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^lb1\s+\d+\.\d+/);
    expect(lines[2]).toMatch(/^lb2\s+\d+\.\d+.*\sno$/);
    const j = await run(["info", "-t", "lb1,lb2", "--json"]);
    const out = json<{ info: { target: string; Version: string; Pid: string }[] }>(j);
    expect(out.info.map((i) => i.target)).toEqual(["lb1", "lb2"]);
    expect(out.info[0]!.Pid).not.toBe(out.info[1]!.Pid);
    const full = await run(["info", "-t", "lb1,lb2", "--full"]);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/^lb1:\n {2}Name:\s+HAProxy\n/);
    expect(full.stdout).toMatch(/\nlb2:\n {2}Name:/);
  });

  it("stat -g pair --json: the rows of both, each with its target", async () => {
    const r = await run(["stat", "be_app", "-g", "pair", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = json<{
      stat: { target: string; proxy: string; name: string; kind: string; fields: object }[];
      targets: TargetStatus[];
    }>(r);
    expect(out.targets.map((t) => t.target)).toEqual(["lb1", "lb2"]);
    for (const lb of ["lb1", "lb2"])
      expect(out.stat.filter((e) => e.target === lb).map((e) => `${e.kind} ${e.name}`)).toEqual([
        "server app1",
        "server app2",
        "server app3",
        "backend BACKEND",
      ]);
    const text = await run(["stat", "be_app/app2", "-g", "pair"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^TARGET\s+NAME\s+TYPE\s+STATUS/);
    expect(rowsOf(text.stdout, "lb1")).toHaveLength(1);
    expect(rowsOf(text.stdout, "lb2")[0]).toMatch(/^lb2\s+be_app\/app2\s+SERVER\s+UP/);
  });

  it("certs --all: every target's certificates; --expiring finds them on each", async () => {
    const r = await run(["certs", "--all"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^TARGET\s+FILE\s+SUBJECT\s+SANS\s+NOT AFTER\s+DAYS LEFT/);
    for (const lb of ["lb1", "lb2", "lb3"]) {
      const rows = rowsOf(r.stdout, lb);
      // The two sites and the admin listener's own certificate.
      expect(rows).toHaveLength(3);
      // Soonest expiry first, per target (other.org is issued for 20 days).
      expect(rows[0]).toContain("other.org.pem");
    }
    const soon = await run(["certs", "--all", "--expiring", "30d", "--json"]);
    expect(soon.code, soon.stderr).toBe(1);
    const out = json<{ certs: { target: string }[]; expiring: { target: string; file: string }[] }>(
      soon,
    );
    expect(out.certs).toHaveLength(9);
    expect(out.expiring.map((e) => e.target)).toEqual(["lb1", "lb2", "lb3"]);
    expect(out.expiring[0]!.file).toMatch(/other\.org\.pem$/);
  });

  it("table show be_app -g pair: rows with TARGET first, a target with none says so", async () => {
    // A request through lb1's frontend is tracked in its be_app table (not lb2's).
    expect(await get(fleet().lab("lb1").httpPort)).toBe(200);
    const r = await run(["table", "show", "be_app", "-g", "pair"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TARGET\s+KEY\s+USE\s+EXPIRES\s+/);
    expect(rowsOf(r.stdout, "lb1")[0]).toMatch(/^lb1\s+127\.0\.0\.1\s+\d+\s+\d+s/);
    expect(rowsOf(r.stdout, "lb2")).toEqual([expect.stringMatching(/^lb2\s+no entries$/)]);
    expect(r.stdout).toMatch(/\nlb1: table be_app, type ip, 1 of \d+ entries used\n/);

    const j = await run(["table", "show", "be_app", "-g", "pair", "--json"]);
    expect(j.code, j.stderr).toBe(0);
    const out = json<{
      entries: { target: string; table: string; key: string }[];
      tables: { target: string; used: number }[];
      targets: TargetStatus[];
    }>(j);
    expect(out.entries).toEqual([
      expect.objectContaining({ target: "lb1", table: "be_app", key: "127.0.0.1" }),
    ]);
    expect(out.tables.map((t) => [t.target, t.used])).toEqual([
      ["lb1", 1],
      ["lb2", 0],
    ]);
    expect(out.targets.every((t) => t.ok)).toBe(true);

    // A key one target has is an answer: exit 0; a key none has is exit 1, as for one target.
    const key = await run(["table", "show", "be_app", "-g", "pair", "--key", "127.0.0.1"]);
    expect(key.code, key.stderr).toBe(0);
    const none = await run(["table", "show", "be_app", "-g", "pair", "--key", "192.0.2.1"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/has an entry for key 192\.0\.2\.1/);
  });

  it("map show -g pair: the maps of both targets", async () => {
    const r = await run(["map", "show", "-g", "pair", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = json<{ maps: { target: string; id: number; file: string; entries: number }[] }>(r);
    expect(out.maps.map((m) => [m.target, m.file, m.entries])).toEqual([
      ["lb1", fleet().lab("lb1").mapFile, 2],
      ["lb2", fleet().lab("lb2").mapFile, 2],
    ]);
    // Each lab loads its own file; the same config gives the map the same id on both.
    const get = await run(["map", "get", `#${out.maps[0]!.id}`, "example.com", "-g", "pair"]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toMatch(
      /^TARGET\s+ANSWER\nlb1\s+example\.com -> gold\nlb2\s+example\.com -> gold\n$/,
    );
  });
});

describe("input checked once, before any target is reached", () => {
  it("-t nosuch is exit 2 and names the targets there are", async () => {
    const r = await run(["servers", "-t", "nosuch"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no target named nosuch .*\(targets: lb1, lb2, lb3\)/);
    expect(r.stdout).toBe("");
  });

  it("-s and -t both choose targets: exit 2", async () => {
    const r = await run(["-s", "x", "-t", "lb1", "servers"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/-s x and -t both choose targets/);
  });

  it("a table name that is not valid is exit 2, nothing sent", async () => {
    const r = await run(["table", "show", "be;x", "-g", "all"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/table name "be;x" contains/);
  });

  it("a backend no target has is exit 2, as for one target, with the one JSON shape", async () => {
    const r = await run(["servers", "be_nosuch", "-g", "pair"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/be_nosuch.*\(on every target: lb1, lb2\)/);
    const j = await run(["servers", "be_nosuch", "-g", "pair", "--json"]);
    expect(j.code).toBe(2);
    const out = json<{ servers: unknown[]; targets: TargetStatus[]; error: { exitCode: number } }>(
      j,
    );
    expect(out.servers).toEqual([]);
    expect(out.targets.map((t) => t.ok)).toEqual([false, false]);
    expect(out.error.exitCode).toBe(2);
  });
});

// Last: it stops lb3.
describe("a target that does not answer", () => {
  it("is a row saying so, the JSON says which, and the exit code is 4", async () => {
    await fleet().lab("lb3").stop();
    const r = await run(["servers", "-g", "all"]);
    expect(r.code).toBe(4);
    expect(rowsOf(r.stdout, "lb1")).toHaveLength(8);
    expect(rowsOf(r.stdout, "lb2")).toHaveLength(8);
    expect(rowsOf(r.stdout, "lb3")).toEqual([expect.stringMatching(/^lb3\s+not reached: \S/)]);
    expect(r.stderr).toMatch(
      /^hapops: 1 of 3 targets did not answer \(lb3: .+\); the rows above are from the others\n$/,
    );

    const j = await run(["servers", "-g", "all", "--json"]);
    expect(j.code).toBe(4);
    expect(j.stderr).toBe("");
    const out = json<{ servers: ServerRow[]; targets: TargetStatus[] }>(j);
    expect(out.servers).toHaveLength(16);
    expect(out.servers.some((s) => s.target === "lb3")).toBe(false);
    const lb3 = out.targets[2]!;
    expect([lb3.target, lb3.ok, lb3.error?.exitCode]).toEqual(["lb3", false, 4]);
    expect(lb3.error?.code).toMatch(/^[A-Z_]+$/);
    expect(r.stderr).toContain(`(lb3: ${lb3.error?.message})`);
  });

  it("4 outranks certificates found expiring (1); table show says it in its place", async () => {
    const certs = await run(["certs", "--all", "--expiring", "30d"]);
    expect(certs.code).toBe(4);
    expect(certs.stdout).toMatch(/certificate\(s\) expire within the window: lb1 /);
    expect(rowsOf(certs.stdout, "lb3")).toEqual([expect.stringMatching(/^lb3\s+not reached/)]);

    const table = await run(["table", "show", "be_app", "--all"]);
    expect(table.code).toBe(4);
    expect(rowsOf(table.stdout, "lb3")).toEqual([expect.stringMatching(/^lb3\s+not reached/)]);
    expect(table.stderr).toMatch(/1 of 3 targets did not answer \(lb3: /);

    const info = await run(["info", "-t", "lb3"]);
    expect(info.code).toBe(4);
    expect(info.stderr).toMatch(/^hapops: lb3 did not answer: /);
  });
});
