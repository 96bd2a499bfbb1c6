import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { showMap } from "../../src/commands/builders.js";
import { parseMapEntry } from "../../src/parse/map.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { hapops, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

const lab = useLab({
  backends: [{ name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] }],
});

let base: string | undefined;
function cfg(): string {
  if (base) return base;
  const dir = join(lab().dir, "map-cfg");
  mkdirSync(dir, { recursive: true });
  base = join(dir, "hapops.yaml");
  writeFileSync(
    base,
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\n`,
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

    const socket = await connect(
      { kind: "unix", path: lab().sockets.user },
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
    // Every snapshot is all A or all B, with all 2,000 entries.
    for (const s of seen) expect(["2000:tierA", "2000:tierB"]).toContain(s);
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
    expect(readFileSync(`${lab().mapFile}.bak`, "utf8")).toBe(onDisk);
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
});
