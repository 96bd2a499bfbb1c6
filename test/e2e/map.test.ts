import {
  chmodSync,
  existsSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import {
  addMapVersion,
  clearMapVersion,
  prepareMap,
  showMap,
  showMaps,
  type RuntimeCommand,
} from "../../src/commands/builders.js";
import { parseMapEntry, parseMapList } from "../../src/parse/map.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { hapops, json, latestBackup, NEUTRAL_BACKUPS, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { atLeast } from "../helpers/versions.js";

const lab = useLab({
  backends: [{ name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] }],
  tcpSocket: true,
});

let base: string | undefined;
function cfg(): string {
  if (base) return base;
  const dir = join(lab().dir, "map-cfg");
  mkdirSync(dir, { recursive: true });
  base = join(dir, "hapops.yaml");
  writeFileSync(
    base,
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\nbackupDir: ${NEUTRAL_BACKUPS}\n`,
  );
  return base;
}
const run = (args: readonly string[]): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: cfg() } });

async function mapEntries(): Promise<Map<string, string>> {
  const r = await run(["map", "show", lab().mapFile, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return new Map(
    r.stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { key: string; value: string })
      .map((e) => [e.key, e.value]),
  );
}

/** Send commands one after another on a fresh admin session (what a test sets up by hand). */
async function raw(...commands: RuntimeCommand[]): Promise<string[][]> {
  const socket = await connect(
    { kind: "unix", path: lab().sockets.admin },
    { connectTimeoutMs: 2000 },
  );
  const session = RuntimeSession.start(socket, { target: "test", timeoutMs: 10_000 });
  try {
    const out: string[][] = [];
    for (const c of commands) out.push(await session.run(c));
    return out;
  } finally {
    await session.close();
  }
}

async function aclPatterns(): Promise<string[]> {
  const r = await run(["acl", "show", lab().aclFile, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { key: string }).key);
}

/** A file of new contents in the lab directory. */
function contents(name: string, text: string): string {
  const path = join(lab().dir, name);
  writeFileSync(path, text);
  return path;
}

/** The status HAProxy answers a request from 127.0.0.1 with (403 when the ACL blocks it). */
function httpStatus(): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    request({ host: "127.0.0.1", port: lab().httpPort, path: "/" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on("error", reject)
      .end(),
  );
}

const COMMON = ["op", "target", "dryRun", "outcome", "plan", "sent", "verified"];

describe("maps and ACLs", () => {
  it("gets, adds, sets and deletes single entries, read back each time", async () => {
    const get = await run(["map", "get", lab().mapFile, "example.com"]);
    expect(get.stdout).toBe("example.com -> gold\n");
    expect((await run(["map", "add", lab().mapFile, "new.example", "bronze"])).code).toBe(0);
    expect((await mapEntries()).get("new.example")).toBe("bronze");
    expect((await run(["map", "set", lab().mapFile, "new.example", "gold"])).code).toBe(0);
    expect((await mapEntries()).get("new.example")).toBe("gold");
    expect((await run(["map", "del", lab().mapFile, "new.example"])).code).toBe(0);
    expect((await mapEntries()).has("new.example")).toBe(false);
  });

  it.each([
    [["map", "add", "/etc/nope.map", "a", "b"], /HAProxy has no map \/etc\/nope\.map/],
    [["map", "add", "MAPFILE", "a;del map x", "b"], /contains ';' \(a command separator\)/],
    [
      ["map", "set", "MAPFILE", "missing.example", "x"],
      /has no key missing\.example; use hapops map add/,
    ],
    [["acl", "del", "ACLFILE", "203.0.113.9"], /has no pattern 203\.0\.113\.9/],
  ])("refuses %j (exit 2)", async (args, message) => {
    const r = await run(
      args.map((a) => (a === "MAPFILE" ? lab().mapFile : a === "ACLFILE" ? lab().aclFile : a)),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("replaces a whole map atomically: a concurrent reader never sees it half-applied", async () => {
    // Two distinct states of 2,000 entries each; a reader polls while hapops swaps them.
    const dir = join(lab().dir, "big");
    mkdirSync(dir, { recursive: true });
    const a = Array.from({ length: 2000 }, (_, i) => `host${i}.example tierA`).join("\n") + "\n";
    const b = Array.from({ length: 2000 }, (_, i) => `host${i}.example tierB`).join("\n") + "\n";
    writeFileSync(join(dir, "a.map"), a);
    writeFileSync(join(dir, "b.map"), b);
    expect((await run(["map", "replace", lab().mapFile, "--from", join(dir, "a.map")])).code).toBe(
      0,
    );

    // A read-only reader: the user socket, or admin where reads of maps need it (3.4).
    const socket = await connect(
      { kind: "unix", path: atLeast("3.4") ? lab().sockets.admin : lab().sockets.user },
      { connectTimeoutMs: 2000 },
    );
    const reader = RuntimeSession.start(socket, { target: "reader", timeoutMs: 10_000 });
    const seen = new Set<string>();
    let stop = false;
    const polling = (async () => {
      while (!stop) {
        const tiers = new Set<string>();
        let count = 0;
        await reader.stream(showMap("map", lab().mapFile), (l) => {
          const e = parseMapEntry(l, true);
          if (e) {
            tiers.add(e.value ?? "");
            count++;
          }
        });
        seen.add(`${count}:${[...tiers].sort().join(",")}`);
      }
    })();
    const r = await run([
      "map",
      "replace",
      lab().mapFile,
      "--from",
      join(dir, "b.map"),
      "--reason",
      "tier swap",
    ]);
    stop = true;
    await polling;
    await reader.close();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2000 -> 2000 entries \(0 added, 0 removed, 2000 changed\)/);
    // No snapshot ever mixes A and B. A `show map` dump is not itself atomic: one that spans
    // the commit can be cut short when the old version is freed (seen on a loaded machine as
    // "0:"), but it never shows entries of both versions.
    for (const s of seen) expect(s, [...seen].join(" ")).toMatch(/^\d+:(tierA|tierB)?$/);
    expect(seen.has("2000:tierA") || seen.has("2000:tierB")).toBe(true);
  });

  it("replace --dry-run shows the diff and sends nothing; --persist writes the file and a .bak", async () => {
    const next = join(lab().dir, "next.map");
    writeFileSync(next, "example.com platinum\nthird.example bronze\n");
    const start = join(lab().dir, "start.map");
    writeFileSync(start, "example.com gold\nother.org silver\n");
    expect((await run(["map", "replace", lab().mapFile, "--from", start])).code).toBe(0);
    const before = await mapEntries();
    const dry = await run(["map", "replace", lab().mapFile, "--from", next, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/\+ third\.example bronze/);
    expect(dry.stdout).toMatch(/~ example\.com gold -> platinum/);
    expect(dry.stdout).toMatch(/- other\.org silver/);
    expect(await mapEntries()).toEqual(before);
    const onDisk = readFileSync(lab().mapFile, "utf8");
    const r = await run(["map", "replace", lab().mapFile, "--from", next, "--persist"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(lab().mapFile, "utf8")).toBe(
      "example.com platinum\nthird.example bronze\n",
    );
    expect(readFileSync(latestBackup("hosts.map"), "utf8")).toBe(onDisk);
    expect(existsSync(`${lab().mapFile}.bak`)).toBe(false);
    expect(await mapEntries()).toEqual(
      new Map([
        ["example.com", "platinum"],
        ["third.example", "bronze"],
      ]),
    );
  });

  it("ACL patterns: add one, and a blocked client is really refused", async () => {
    expect((await run(["acl", "add", lab().aclFile, "127.0.0.1"])).code).toBe(0);
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) =>
      request({ host: "127.0.0.1", port: lab().httpPort, path: "/" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end(),
    );
    expect(status).toBe(403);
    expect((await run(["acl", "del", lab().aclFile, "127.0.0.1"])).code).toBe(0);
  });

  it("map add of a key that is there is refused (exit 3, nothing sent), in a dry run too", async () => {
    const start = contents("dup-start.map", "example.com gold\nother.org silver\n");
    expect((await run(["map", "replace", lab().mapFile, "--from", start])).code).toBe(0);
    for (const dry of [["-n"], []]) {
      const r = await run(["map", "add", lab().mapFile, "example.com", "platinum", ...dry]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/already has the key example\.com \(gold\)/);
      expect(r.stderr).toMatch(/hapops map set .*hosts\.map example\.com platinum/);
    }
    // The same value again is already so: nothing sent, exit 0, as acl add of a pattern there.
    const same = await run(["map", "add", lab().mapFile, "example.com", "gold"]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toMatch(/example\.com is already gold \(nothing sent\)/);
    const shown = await run(["map", "show", lab().mapFile, "--json"]);
    expect(shown.stdout.match(/"example\.com"/g)).toHaveLength(1);
    expect((await run(["map", "get", lab().mapFile, "example.com"])).stdout).toBe(
      "example.com -> gold\n",
    );
  });

  it("dry runs exit as the real runs do, and every --json report carries the common fields", async () => {
    const start = contents("json-start.map", "example.com gold\nother.org silver\n");
    expect((await run(["map", "replace", lab().mapFile, "--from", start])).code).toBe(0);
    const cases: [string[], number][] = [
      [["map", "add", lab().mapFile, "json.example", "bronze"], 0],
      [["map", "add", lab().mapFile, "example.com", "x"], 3],
      [["map", "set", lab().mapFile, "missing.example", "x"], 2],
      [["map", "del", lab().mapFile, "missing.example"], 2],
      [["map", "replace", lab().mapFile, "--from", contents("empty.map", "")], 3],
    ];
    for (const [args, code] of cases) {
      const dry = await run([...args, "-n", "--json"]);
      expect(dry.code, `${args.join(" ")} -n: ${dry.stderr}`).toBe(code);
      const report = json<Record<string, unknown>>(dry);
      for (const f of COMMON) expect(report, `${args.join(" ")} -n`).toHaveProperty(f);
      expect(report).toMatchObject({ dryRun: true, outcome: code === 0 ? "ok" : "refused" });
    }
    expect((await mapEntries()).has("json.example")).toBe(false);
    for (const [args, code] of cases) {
      const real = await run([...args, "--json"]);
      expect(real.code, `${args.join(" ")}: ${real.stderr}`).toBe(code);
      const report = json<Record<string, unknown>>(real);
      for (const f of COMMON) expect(report, args.join(" ")).toHaveProperty(f);
      expect(report.dryRun).toBe(false);
      if (code === 0)
        expect(report).toMatchObject({
          outcome: "ok",
          verified: true,
          sent: [`add map ${lab().mapFile} json.example bronze`],
          map: lab().mapFile,
        });
      else expect(report).toMatchObject({ outcome: "refused", sent: [], verified: false });
      if (code !== 0) expect((report.error as { exitCode: number }).exitCode).toBe(code);
    }
    expect((await mapEntries()).get("json.example")).toBe("bronze");

    // Map and ACL changes need only user level up to 3.2 (measured): both runs pass there. 3.4
    // wants admin: both refuse (exit 4), the dry run included, and nothing is sent.
    const user = (args: string[]) =>
      hapops(["-s", lab().sockets.user, ...args], { env: { HAPOPS_CONFIG: cfg() } });
    const want = atLeast("3.4") ? 4 : 0;
    expect((await user(["map", "del", lab().mapFile, "json.example", "-n"])).code).toBe(want);
    const del = await user(["map", "del", lab().mapFile, "json.example"]);
    expect(del.code, del.stderr).toBe(want);
    if (want === 4) {
      expect(del.stderr).toMatch(/needs 'admin' from HAProxy 3\.4/);
      expect((await mapEntries()).get("json.example")).toBe("bronze");
      expect((await run(["map", "del", lab().mapFile, "json.example"])).code).toBe(0);
    }
    expect((await mapEntries()).has("json.example")).toBe(false);
  });

  it("acl get says whether an address matches (match=yes), as HAProxy's own deny does", async () => {
    expect((await run(["acl", "add", lab().aclFile, "127.0.0.1"])).code).toBe(0);
    try {
      expect(await httpStatus()).toBe(403);
      const hit = await run(["acl", "get", lab().aclFile, "127.0.0.1"]);
      expect(hit.stdout).toBe("127.0.0.1: matches 127.0.0.1\n");
      expect(json(await run(["acl", "get", lab().aclFile, "127.0.0.1", "--json"]))).toMatchObject({
        acl: lab().aclFile,
        lookup: "127.0.0.1",
        found: true,
        pattern: "127.0.0.1",
      });
      expect((await run(["acl", "get", lab().aclFile, "203.0.113.50"])).stdout).toBe(
        "203.0.113.50: no match\n",
      );
    } finally {
      expect((await run(["acl", "del", lab().aclFile, "127.0.0.1"])).code).toBe(0);
    }
  });

  it("acl replace works on this HAProxy, and a refused attempt leaves no version behind", async () => {
    const blocked = contents("blocked-new.acl", "192.0.2.1\n127.0.0.0/8\n198.51.100.0/24\n");
    const r = await run(["acl", "replace", lab().aclFile, "--from", blocked]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/verified: HAProxy's acl now equals/);
    expect(await aclPatterns()).toEqual(["192.0.2.1", "127.0.0.0/8", "198.51.100.0/24"]);
    expect(await httpStatus()).toBe(403);

    // HAProxy refuses the second pattern: nothing is committed and the version is cleared.
    const bad = contents("bad.acl", "192.0.2.9\nnot-an-address\n192.0.2.10\n");
    const failed = await run(["acl", "replace", lab().aclFile, "--from", bad, "--json"]);
    expect(failed.code, failed.stderr).toBe(1);
    const report = json<{
      outcome: string;
      sent: string[];
      error: { code: string; version: number; cleared: boolean; message: string };
    }>(failed);
    for (const f of COMMON) expect(report).toHaveProperty(f);
    expect(report.outcome).toBe("failed");
    // 2.4 to 3.2 empty the uncommitted version on `clear acl @ver`; 3.4.0 keeps its entries,
    // and hapops says so (they serve nothing; the next commit drops them).
    const clears = !atLeast("3.4");
    expect(report.error).toMatchObject({ code: "HAPROXY_REFUSED", cleared: clears });
    expect(report.error.message).toMatch(/not-an-address/);
    const version = report.error.version;
    expect(report.sent.at(-1)).toBe(`clear acl @${version} ${lab().aclFile}`);
    const [left] = await raw(showMap("acl", lab().aclFile, version));
    if (clears) expect(left!.filter((l) => l.startsWith("0x"))).toEqual([]);
    else
      expect(report.error.message).toMatch(
        new RegExp(
          `uncommitted version ${version} still holds ${left!.filter((l) => l.startsWith("0x")).length} entr.*the next commit of this acl \\(another replace\\) drops them`,
        ),
      );
    expect(await aclPatterns()).toEqual(["192.0.2.1", "127.0.0.0/8", "198.51.100.0/24"]);

    const back = contents("blocked-back.acl", "192.0.2.66\n");
    expect((await run(["acl", "replace", lab().aclFile, "--from", back])).code).toBe(0);
    expect(await httpStatus()).toBe(200);
  });

  it("refuses an entry HAProxy cannot take in one command, before anything is sent (exit 2)", async () => {
    const [before] = await raw(showMaps("map"));
    const big = contents("big-entry.map", `a.example 1\nbig.example ${"v".repeat(20_000)}\n`);
    for (const dry of [["-n"], []]) {
      const r = await run(["map", "replace", lab().mapFile, "--from", big, ...dry]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/big\.example makes a command of \d+ bytes.*tune\.bufsize/);
    }
    // No version was prepared: HAProxy's list of maps (with next_ver) is as it was.
    const [after] = await raw(showMaps("map"));
    expect(after).toEqual(before);
  });

  it("map show counts the live entries only, even with an uncommitted version", async () => {
    const start = contents("count-start.map", "example.com gold\nother.org silver\n");
    expect((await run(["map", "replace", lab().mapFile, "--from", start])).code).toBe(0);
    // An interrupted replace: a version prepared and filled, never committed.
    const [prepared] = await raw(prepareMap("map", lab().mapFile));
    const version = Number(/New version created: (\d+)/.exec(prepared!.join(" "))![1]);
    const pending = Array.from({ length: 40 }, (_, i) => ({ key: `p${i}.example`, value: "x" }));
    await raw(addMapVersion("map", version, lab().mapFile, pending));
    try {
      const listed = parseMapList((await raw(showMaps("map")))[0]!).find(
        (m) => m.file === lab().mapFile,
      );
      // entry_cnt counts the pending version too (2.4.0 lists no entry_cnt at all).
      if (atLeast("2.6")) expect(listed?.entries).toBeGreaterThan(2);
      const shown = json<{ file: string; entries: number }[]>(await run(["map", "show", "--json"]));
      expect(shown.find((m) => m.file === lab().mapFile)?.entries).toBe(2);
    } finally {
      await raw(clearMapVersion("map", version, lab().mapFile));
    }
  });

  it("--persist writes the file when HAProxy already serves the contents, and says so", async () => {
    const next = contents("persist-next.map", "example.com platinum\nfourth.example tin\n");
    expect((await run(["map", "replace", lab().mapFile, "--from", next])).code).toBe(0);
    writeFileSync(lab().mapFile, "example.com gold\nother.org silver\n");
    const r = await run(["map", "replace", lab().mapFile, "--from", next, "--persist"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/HAProxy already serves the 2 entries .* \(nothing sent\)/);
    expect(r.stdout).toMatch(/differs from .* on disk; write it/);
    expect(readFileSync(lab().mapFile, "utf8")).toBe("example.com platinum\nfourth.example tin\n");
    expect(readFileSync(latestBackup("hosts.map"), "utf8")).toBe(
      "example.com gold\nother.org silver\n",
    );
    // Once the file holds it too, there is nothing left to do.
    const again = await run([
      "map",
      "replace",
      lab().mapFile,
      "--from",
      next,
      "--persist",
      "--json",
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(json(again)).toMatchObject({ outcome: "noop", sent: [], persisted: null });
  });

  it("a --persist that fails after the commit is a typed error with its report; a second --persist brings the file in line", async () => {
    const startText = "example.com gold\nother.org silver\n";
    writeFileSync(lab().mapFile, startText);
    const start = contents("pf-start.map", startText);
    expect((await run(["map", "replace", lab().mapFile, "--from", start])).code).toBe(0);
    const next = contents("pf-next.map", "example.com bronze\n");
    // A backup directory that is a file: the write fails even for root, after the commit.
    const dir = join(lab().dir, "pf-cfg");
    mkdirSync(dir, { recursive: true });
    const bak = join(dir, "backups");
    writeFileSync(bak, "not a directory\n");
    writeFileSync(
      join(dir, "hapops.yaml"),
      `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\nbackupDir: ${bak}\n`,
    );
    try {
      const r = await hapops(
        ["map", "replace", lab().mapFile, "--from", next, "--persist", "--json"],
        { env: { HAPOPS_CONFIG: join(dir, "hapops.yaml") } },
      );
      expect(r.code, r.stdout).toBe(1);
      const report = json<{
        outcome: string;
        sent: string[];
        error: { code: string; message: string };
      }>(r);
      for (const f of COMMON) expect(report).toHaveProperty(f);
      expect(report.outcome).toBe("failed");
      expect(report.error.code).toBe("ENVIRONMENT");
      expect(report.error.message).toMatch(
        /HAProxy took the change, but writing .*hosts\.map failed/,
      );
      expect(report.sent.some((l) => l.startsWith("commit map @"))).toBe(true);
      expect(await mapEntries()).toEqual(new Map([["example.com", "bronze"]]));
      expect(readFileSync(lab().mapFile, "utf8")).toBe(startText);
    } finally {
      rmSync(bak, { recursive: true, force: true });
    }
    const again = await run(["map", "replace", lab().mapFile, "--from", next, "--persist"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already serves .* \(nothing sent\)/);
    expect(readFileSync(lab().mapFile, "utf8")).toBe("example.com bronze\n");
  });

  it("--persist onto a symbolic link is refused before anything is sent (exit 3)", async () => {
    const real = join(lab().dir, "hosts.real.map");
    renameSync(lab().mapFile, real);
    symlinkSync(real, lab().mapFile);
    try {
      const [before] = await raw(showMaps("map"));
      const next = contents("link-next.map", "example.com tin\n");
      for (const dry of [["-n"], []]) {
        const r = await run(["map", "replace", lab().mapFile, "--from", next, "--persist", ...dry]);
        expect(r.code, r.stderr).toBe(3);
        expect(r.stderr).toMatch(/--persist target .*hosts\.map is a symbolic link/);
      }
      expect((await raw(showMaps("map")))[0]).toEqual(before);
    } finally {
      rmSync(lab().mapFile);
      renameSync(real, lab().mapFile);
    }
  });

  it.runIf(process.getuid?.() === 0)(
    "a group limited to */hosts.map changes that map, and is refused (exit 3, nothing sent) on the ACL",
    async () => {
      // Policy binds non-root users: run as nobody, over the lab's loopback TCP socket.
      const dir = mkdtempSync(join(inject("runDir"), "map-policy-"));
      chmodSync(dir, 0o755);
      const auditDir = join(dir, "audit");
      mkdirSync(auditDir);
      chownSync(auditDir, 65534, 65534);
      const config = join(dir, "hapops.yaml");
      writeFileSync(
        config,
        [
          `socket: ${lab().sockets.tcp}`,
          "audit:",
          `  path: ${join(auditDir, "audit.jsonl")}`,
          "policy:",
          "  groups:",
          "    nogroup:",
          '      allow: ["*"]',
          '      scope: { maps: ["*/hosts.map"] }',
          "",
        ].join("\n"),
        { mode: 0o644 },
      );
      // --from is read with the operator's rights: it must be readable by nobody.
      const policyAcl = join(dir, "policy.acl");
      writeFileSync(policyAcl, "203.0.113.77\n", { mode: 0o644 });
      const asNobody = (args: string[]) =>
        hapops(args, { env: { HAPOPS_CONFIG: config }, uid: 65534, gid: 65534 });
      const acl = JSON.stringify(await aclPatterns());
      const aclId = parseMapList((await raw(showMaps("acl")))[0]!).find(
        (m) => m.file === lab().aclFile,
      )!.id;
      const refused: string[][] = [
        ["acl", "add", lab().aclFile, "203.0.113.77"],
        ["acl", "add", `#${aclId}`, "203.0.113.77"],
        ["acl", "replace", lab().aclFile, "--from", policyAcl],
      ];
      for (const args of refused)
        for (const dry of [["-n"], []]) {
          const r = await asNobody([...args, ...dry, "--json"]);
          expect(r.code, `${args.join(" ")} ${dry.join(" ")}: ${r.stderr}${r.stdout}`).toBe(3);
          const report = json<{ sent: string[]; error: { code: string; message: string } }>(r);
          expect(report.error.code).toBe("POLICY");
          expect(report.error.message).toMatch(/only on \*\/hosts\.map, not .*blocked\.acl/);
          expect(report.sent).toEqual([]);
        }
      expect(JSON.stringify(await aclPatterns())).toBe(acl);

      const ok = await asNobody(["map", "add", lab().mapFile, "scoped.example", "team"]);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await mapEntries()).get("scoped.example")).toBe("team");
      expect((await run(["map", "del", lab().mapFile, "scoped.example"])).code).toBe(0);
      const audit = readFileSync(join(auditDir, "audit.jsonl"), "utf8");
      expect(audit).toMatch(/"operator":"nobody"/);
      expect(audit).toMatch(/"outcome":"refused"/);
    },
  );
});
