import { X509Certificate } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { certFacts } from "../../src/certs/validate.js";
import type { DriftReport } from "../../src/ops/drift.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStateFile } from "../../src/parse/state-file.js";
import { type BackendSpec } from "../../src/sandbox/lab.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { startTestLab, useLab } from "../helpers/lab.js";

/**
 * `hapops drift` and `hapops state save` against a real HAProxy whose haproxy.cfg has a
 * server-state-file and `load-server-state-from-file global` (the lab's), with real
 * certificate, map and ACL files.
 */
const BACKENDS: readonly BackendSpec[] = [
  {
    name: "be_app",
    servers: [
      { name: "app1", weight: 100 },
      { name: "app2", weight: 100 },
      { name: "app3", weight: 50, disabled: true },
    ],
  },
  { name: "be_api", servers: [{ name: "api1" }] },
];
const lab = useLab({ backends: BACKENDS });

let n = 0;
function config(extra = ""): string {
  const dir = join(lab().dir, `drift-cfg-${++n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "hapops.yaml"),
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\nbackupDir: ${join(dir, "backups")}\nhaproxyConfig: ${lab().configPath}\n${extra}`,
  );
  return join(dir, "hapops.yaml");
}

let plain: string | undefined;
const run = (args: readonly string[], cfg?: string): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: cfg ?? (plain ??= config()) } });

const STATE = () => join(lab().dir, "server-state");

async function drift(cfg?: string): Promise<{ r: CliResult; report: DriftReport }> {
  const r = await run(["drift", "--json"], cfg);
  return { r, report: json<DriftReport>(r) };
}

function stateRow(text: string, backend: string, server: string) {
  const row = parseStateFile(STATE(), text).rows?.find(
    (x) => x.backend === backend && x.server === server,
  );
  if (!row) throw new Error(`no row for ${backend}/${server} in:\n${text}`);
  return row;
}

interface Report {
  outcome: string;
  dryRun: boolean;
  sent: string[];
  verified: boolean;
  plan: Record<string, unknown>;
  file?: string;
  servers?: number;
}

describe("drift and state save on a real HAProxy", () => {
  it("reports nothing on a clean instance (exit 0), a disabled server included", async () => {
    const human = await run(["drift"]);
    expect(human.code, human.stdout + human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^no drift: HAProxy's memory and the files a reload would load agree \(4 servers, 2 certificates, 1 map, 1 ACL file compared\)$/m,
    );
    const { r, report } = await drift();
    expect(r.code).toBe(0);
    expect(report).toEqual({
      target: lab().sockets.admin,
      drift: false,
      objects: [],
      checked: { servers: 4, certs: 2, maps: 1, acls: 1 },
      notes: [],
      sources: { haproxyConfig: lab().configPath, stateFiles: [STATE()] },
    });
  });

  it("state save --dry-run says where it would write and how many servers, and writes nothing", async () => {
    const dry = await run(["state", "save", "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(
      `server state: 4 servers in 2 backends -> ${STATE()} (server-state-file in ${lab().configPath})`,
    );
    expect(dry.stdout).toContain(`then: write ${STATE()}`);
    expect(existsSync(STATE())).toBe(false);
  });

  it("state save writes, atomically, the file HAProxy's load-server-state-from-file reads; the dry run planned the same", async () => {
    const dry = json<Report>(await run(["state", "save", "--dry-run", "--json"]));
    expect(existsSync(STATE())).toBe(false);
    const cfg = config();
    const r = await run(["state", "save", "--json", "--reason", "before deploy"], cfg);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const real = json<Report>(r);
    expect(real).toMatchObject({
      outcome: "ok",
      dryRun: false,
      sent: [],
      verified: true,
      file: STATE(),
      servers: 4,
    });
    // Dry-run parity: the same plan (the byte count moves with srv_time_since_last_change).
    const withoutBytes = (plan: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(plan).filter(([k]) => k !== "bytes"));
    const realPlan = withoutBytes(real.plan);
    expect(withoutBytes(dry.plan)).toEqual(realPlan);
    expect(realPlan).toMatchObject({
      op: "state save",
      level: "user",
      steps: [{ kind: "write-file", op: "state save", path: STATE() }],
    });

    // The format HAProxy reads (srv_state_get_version, srv_state_parse_line): "1" alone, the
    // header, one row per server, every line ending in a newline.
    const text = readFileSync(STATE(), "utf8");
    const lines = text.split("\n");
    expect(lines[0]).toBe("1");
    expect(lines[1]).toMatch(
      /^# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight /,
    );
    expect(text.endsWith("\n")).toBe(true);
    expect(parseServersState(lines.slice(0, -1)).map((s) => `${s.backend}/${s.server}`)).toEqual([
      "be_app/app1",
      "be_app/app2",
      "be_app/app3",
      "be_api/api1",
    ]);
    expect(parseStateFile(STATE(), text).problem).toBeUndefined();
    expect(statSync(STATE()).mode & 0o777).toBe(0o644);
    // Atomic: a temp file beside it, renamed over it; none is left behind.
    expect(readdirSync(lab().dir).filter((f) => f.includes("hapops-"))).toEqual([]);

    // Audited like any change: an intent before the write, a result after it.
    const records = readFileSync(join(cfg, "..", "audit.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((x) => [x.op, x.phase, x.outcome, x.reason])).toEqual([
      ["state save", "intent", null, "before deploy"],
      ["state save", "result", "ok", "before deploy"],
    ]);
    expect(records[1]).toMatchObject({ commands: [], detail: { file: STATE(), servers: 4 } });

    // A clean instance with a state file that matches it: still no drift.
    expect((await drift()).report).toMatchObject({ drift: false, objects: [] });
  });

  it("reports a runtime-only drain, a rotated certificate not persisted and a map entry added at runtime (exit 1)", async () => {
    const drain = await run(["drain", "be_app/app1"]);
    expect(drain.code, drain.stderr).toBe(0);
    expect(drain.stdout).toMatch(
      /^runtime only: a reload undoes this unless the server state is saved first \(hapops reload does; or hapops state save, or servers\.saveState: true\)$/m,
    );

    const pem = join(lab().certDir, "example.com.pem");
    const old = certFacts(new X509Certificate(readFileSync(pem, "utf8"))).serial;
    const next = await lab().ca.issue({
      cn: "example.com",
      san: ["DNS:example.com", "DNS:www.example.com"],
      days: 60,
    });
    const dir = mkdtempSync(join(lab().dir, "rot-"));
    writeFileSync(join(dir, "new.crt"), next.cert, { mode: 0o600 });
    writeFileSync(join(dir, "new.key"), next.key, { mode: 0o600 });
    const rot = await run([
      "rotate-cert",
      "example.com",
      "--cert",
      join(dir, "new.crt"),
      "--key",
      join(dir, "new.key"),
    ]);
    expect(rot.code, rot.stdout + rot.stderr).toBe(0);
    const served = certFacts(new X509Certificate(next.cert)).serial;

    const add = await run(["map", "add", lab().mapFile, "new.example", "bronze"]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(
      `runtime only: a reload undoes this (HAProxy loads ${lab().mapFile} again); to keep it, write the file too: hapops map replace ${lab().mapFile} --from <file> --persist`,
    );

    const { r, report } = await drift();
    expect(r.code, r.stdout).toBe(1);
    expect(report.drift).toBe(true);
    expect(report.objects.map((o) => [o.kind, o.object, o.status])).toEqual([
      ["server", "be_app/app1", "drift"],
      ["cert", pem, "drift"],
      ["map", lab().mapFile, "drift"],
    ]);
    const [server, cert, map] = report.objects;
    expect(server!.details).toEqual({
      runtime: { admin: "DRAIN", weight: 100, adminFlags: ["FDRAIN"] },
      config: { disabled: false, weight: 100, source: "haproxy.cfg" },
      stateFile: { path: STATE(), admin: "READY", weight: 100, applied: true },
      afterReload: { admin: "READY", weight: 100 },
    });
    expect(server!.reload).toBe("make it READY");
    expect(cert!.details).toMatchObject({ runtime: { serial: served }, disk: { serial: old } });
    expect(map!.details).toMatchObject({
      removed: [{ key: "new.example", value: "bronze" }],
      added: [],
      changed: [],
    });

    const human = await run(["drift"]);
    expect(human.code).toBe(1);
    const rows = human.stdout.split("\n");
    expect(rows[0]).toMatch(/^KIND +OBJECT +RUNTIME +DISK\/CONFIG +A RELOAD WOULD$/);
    expect(rows[1]).toMatch(
      /^server +be_app\/app1 +DRAIN, weight 100 +READY, weight 100 \(haproxy\.cfg\); READY, weight 100 \(state file\) +make it READY$/,
    );
    expect(rows[2]).toMatch(
      new RegExp(
        `^cert +${pem.replace(/\./g, "\\.")} +serial \\S+ +serial \\S+ +serve serial \\S+ \\(the file\\) instead$`,
      ),
    );
    expect(rows[3]).toMatch(/^map +\S+hosts\.map +3 entries +2 entries +drop new\.example bronze$/);
    expect(human.stdout).toMatch(/^3 objects would change at a reload/m);
  });

  it("after state save a reload keeps the drain: drift no longer lists the server, and an HAProxy started on the file comes up with it DRAIN", async () => {
    const save = await run(["state", "save"]);
    expect(save.code, save.stderr).toBe(0);
    expect(stateRow(readFileSync(STATE(), "utf8"), "be_app", "app1").adminBits).toBe(8);
    const { r, report } = await drift();
    expect(r.code).toBe(1);
    expect(report.objects.map((o) => o.kind)).toEqual(["cert", "map"]);

    // What HAProxy itself makes of the file: a second HAProxy with the same backends, started
    // with this state file where its server-state-file points, loads app1 drained.
    const dir = mkdtempSync(join(tmpdir(), "hapops-test-reload-"));
    copyFileSync(STATE(), join(dir, "server-state"));
    const second = await startTestLab({ dir, backends: BACKENDS });
    try {
      const servers = await hapops(["-s", second.sockets.admin, "servers", "--json"]);
      expect(servers.code, servers.stderr).toBe(0);
      const rows =
        json<{ backend: string; server: string; admin: string; weight: number }[]>(servers);
      expect(rows.map((s) => [`${s.backend}/${s.server}`, s.admin, s.weight])).toEqual([
        ["be_app/app1", "DRAIN", 100],
        ["be_app/app2", "READY", 100],
        ["be_app/app3", "MAINT", 50],
        ["be_api/api1", "READY", 1],
      ]);
      expect(second.output()).not.toMatch(/corrupted|application failed/);
    } finally {
      await second.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("servers.saveState saves the state after each verified server change, and says a reload keeps it", async () => {
    const cfg = config("servers:\n  saveState: true\n");
    const dry = await run(["weight", "be_app/app2", "30", "--dry-run"], cfg);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`then: save the server state to ${STATE()} (servers.saveState)`);
    expect(stateRow(readFileSync(STATE(), "utf8"), "be_app", "app2").weight).toBe(100);

    const r = await run(["weight", "be_app/app2", "30", "--json"], cfg);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(json<{ stateSaved: unknown }>(r).stateSaved).toEqual({ path: STATE(), servers: 4 });
    expect(stateRow(readFileSync(STATE(), "utf8"), "be_app", "app2").weight).toBe(30);

    const ready = await run(["ready", "be_app/app1"], cfg);
    expect(ready.code, ready.stderr).toBe(0);
    expect(ready.stdout).toMatch(
      new RegExp(
        `^saved: the server state \\(4 servers\\) to ${STATE()}, so a reload keeps this$`,
        "m",
      ),
    );
    expect(ready.stdout).not.toMatch(/runtime only/);
    expect(stateRow(readFileSync(STATE(), "utf8"), "be_app", "app1").adminBits).toBe(0);
    expect(readdirSync(lab().dir).filter((f) => f.includes("hapops-"))).toEqual([]);

    // Saved: a reload keeps both, so neither server is drift.
    expect((await drift()).report.objects.filter((o) => o.kind === "server")).toEqual([]);
  });

  it("state save --file writes a copy elsewhere and says HAProxy does not read it", async () => {
    const copy = join(lab().dir, "copies", "state-copy");
    mkdirSync(join(lab().dir, "copies"));
    const r = await run(["state", "save", "--file", copy]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `note: ${copy} is not the server-state-file haproxy.cfg names (${STATE()}); HAProxy does not read it at a reload`,
    );
    expect(parseStateFile(copy, readFileSync(copy, "utf8")).rows).toHaveLength(4);
  });

  it("raw changes say that a reload undoes them", async () => {
    const r = await run(["raw", "set maxconn server be_app/app2 50"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^runtime only: a reload undoes this unless haproxy\.cfg/m);
  });

  it("lists a server added with add server (not in haproxy.cfg) as existing only at runtime, with what can be read back of it", async () => {
    const add = await run(["raw", "add server be_app/app9 127.0.0.1:9 weight 30 maxconn 7 check"]);
    expect(add.code, add.stdout + add.stderr).toBe(0);
    try {
      const { r, report } = await drift();
      expect(r.code).toBe(1);
      const app9 = report.objects.find((o) => o.object === "be_app/app9");
      expect(app9).toMatchObject({
        kind: "server",
        status: "drift",
        // A dynamic server starts in maintenance (measured on 2.6 to 3.4).
        runtime: "MAINT, weight 30",
        disk: `not in ${lab().configPath}`,
        reload: `drop it: it exists only at runtime (added with add server); add it to ${lab().configPath} or run hapops reload, which re-adds it`,
      });
      expect(app9?.details["runtimeOnly"]).toEqual({
        addedAtRuntime: true,
        address: "127.0.0.1",
        port: 9,
        keywords: ["weight 30", "maxconn 7", "check"],
        lost: [],
      });
      const human = await run(["drift"]);
      expect(human.code).toBe(1);
      expect(human.stdout).toMatch(
        /^server +be_app\/app9 +MAINT, weight 30 +not in \S+haproxy\.cfg +drop it: it exists only at runtime \(added with add server\)/m,
      );
    } finally {
      expect((await run(["raw", "del server be_app/app9"])).code).toBe(0);
    }
  });
});
