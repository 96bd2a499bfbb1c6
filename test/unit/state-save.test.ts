import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomic } from "../../src/certs/persist.js";
import type { Settings } from "../../src/config/settings.js";
import { GuardError, PolicyError, UsageError } from "../../src/errors.js";
import { ownFiles } from "../../src/host/input-files.js";
import {
  renderStateFile,
  resolveStateTarget,
  saveStateTarget,
  stateFileChecks,
  type StateTarget,
} from "../../src/host/state-file.js";
import { planChange, type ServerFacts } from "../../src/ops/plan.js";
import { parseSelector } from "../../src/ops/selector.js";
import { keepAfterReload } from "../../src/ops/servers.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseStateFile } from "../../src/parse/state-file.js";
import {
  planStateSave,
  stateFileRefusal,
  stateSaveOperation,
  STATE_FILE_MODE,
} from "../../src/ops/state.js";

const HEADER =
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";
const LINES = [
  "1",
  HEADER,
  "3 be_app 1 app1 127.0.0.1 2 8 100 100 10 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0",
  "3 be_app 2 app2 127.0.0.1 2 0 100 100 10 15 3 4 6 0 0 0 - 8081 - 0 0 - - 0",
  "4 be_api 1 api1 127.0.0.1 2 0 1 1 10 15 3 4 6 0 0 0 - 8082 - 0 0 - - 0",
];

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hapops-state-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function settings(over: Partial<Settings> = {}): Settings {
  return {
    haproxyConfig: join(dir, "haproxy.cfg"),
    target: { kind: "unix", path: join(dir, "admin.sock") },
    targetText: join(dir, "admin.sock"),
    sudo: false,
    servers: { saveState: true },
    ...over,
  } as Settings;
}

function haproxyCfg(...lines: string[]): void {
  writeFileSync(join(dir, "haproxy.cfg"), lines.join("\n") + "\n");
}

const target = (over: Partial<StateTarget> = {}): StateTarget => ({
  path: "/var/lib/haproxy/server-state",
  source: "server-state-file in /etc/haproxy/haproxy.cfg",
  configured: "/var/lib/haproxy/server-state",
  loadedBy: ["be_app"],
  ...over,
});

describe("renderStateFile", () => {
  it("writes the answer as the file HAProxy reads: version, header, rows, a newline at the end", () => {
    const text = renderStateFile(LINES);
    expect(text).toBe(LINES.join("\n") + "\n");
    expect(parseStateFile("f", text).problem).toBeUndefined();
    expect(parseStateFile("f", text).rows).toHaveLength(3);
  });
});

describe("planStateSave", () => {
  const state = { lines: LINES, servers: parseServersState(LINES) };
  const req = { target: "/run/haproxy/admin.sock", file: target(), files: ownFiles };

  it("is one write-file step of the whole answer: where, how many servers, nothing sent", () => {
    const plan = planStateSave(state, req);
    expect(plan).toMatchObject({
      op: "state save",
      level: "user",
      mutates: true,
      scope: {},
      guards: [],
      json: {
        file: "/var/lib/haproxy/server-state",
        servers: 3,
        backends: 2,
        bytes: Buffer.byteLength(renderStateFile(LINES)),
      },
    });
    expect(plan.steps).toEqual([
      expect.objectContaining({
        kind: "write-file",
        op: "state save",
        path: "/var/lib/haproxy/server-state",
        payload: renderStateFile(LINES),
        snapshot: { mode: STATE_FILE_MODE },
      }),
    ]);
    expect(plan.describe).toEqual([
      "server state: 3 servers in 2 backends -> /var/lib/haproxy/server-state (server-state-file in /etc/haproxy/haproxy.cfg)",
    ]);
  });

  it("refuses through a guard when root must not write there (found before writing)", () => {
    const unsafe = new GuardError("server-state file /x: /x is writable by alice");
    const plan = planStateSave({ ...state, unsafe }, req);
    expect(plan.guards).toEqual([
      expect.objectContaining({ name: "state-file", ok: false, forced: false, error: unsafe }),
    ]);
  });
});

describe("the state save operation", () => {
  it("reads show servers state, and verifies the file against what it planned to write", async () => {
    const path = join(dir, "server-state");
    const op = stateSaveOperation({
      target: "t",
      file: target({ path, configured: path }),
      files: ownFiles,
    });
    const sent: string[] = [];
    const session = {
      run: (cmd: { line: string }) => {
        sent.push(cmd.line);
        return Promise.resolve(LINES);
      },
    };
    const sessions = { read: session, write: session, close: () => Promise.resolve() } as never;
    const plan = op.plan(await op.read(sessions));
    expect(sent).toEqual(["show servers state"]);
    const missing = await op.verify(sessions, plan, []);
    expect(missing.mismatches).toEqual([`${path} does not hold what was written`]);
    writeFileAtomic(path, plan.body.payload, STATE_FILE_MODE);
    const v = await op.verify(sessions, plan, []);
    expect(v.mismatches).toEqual([]);
    expect(v.summary[0]).toBe(
      `verified: ${path} holds the state of 3 servers; HAProxy applies it when it starts or reloads`,
    );
  });
});

describe("stateFileRefusal (sudo)", () => {
  it("refuses --file at a path the configuration does not name, under sudo only (exit 3)", () => {
    const other = target({ path: "/tmp/elsewhere", source: "--file", loadedBy: undefined });
    const e = stateFileRefusal(true, other);
    expect(e).toBeInstanceOf(PolicyError);
    expect(e?.exitCode).toBe(3);
    expect(e?.message).toMatch(/--file \/tmp\/elsewhere is refused under sudo/);
    expect(stateFileRefusal(false, other)).toBeUndefined();
  });

  it("lets --file name the configured file, and the configured file itself, through", () => {
    expect(stateFileRefusal(true, target({ source: "--file" }))).toBeUndefined();
    expect(stateFileRefusal(true, target())).toBeUndefined();
  });

  it("refuses --file when the configuration names no file at all", () => {
    expect(
      stateFileRefusal(
        true,
        target({ path: "/tmp/x", source: "--file", configured: undefined, loadedBy: undefined }),
      )?.message,
    ).toMatch(/it names none/);
  });
});

describe("resolveStateTarget", () => {
  it("takes the global server-state-file, under server-state-base, and who loads it", () => {
    haproxyCfg(
      "global",
      `    server-state-base ${dir}`,
      "    server-state-file state",
      "defaults",
      "    load-server-state-from-file global",
      "backend be_app",
      "    server a 127.0.0.1:1",
      "backend be_api",
      "    load-server-state-from-file none",
      "    server a 127.0.0.1:1",
    );
    expect(resolveStateTarget(settings(), undefined)).toEqual({
      path: join(dir, "state"),
      source: `server-state-file in ${join(dir, "haproxy.cfg")}`,
      configured: join(dir, "state"),
      loadedBy: ["be_app"],
    });
  });

  it("takes --file (made absolute) and still says which file the configuration names", () => {
    haproxyCfg("global", "    server-state-file /var/lib/haproxy/server-state");
    expect(resolveStateTarget(settings(), "rel/state")).toEqual({
      path: join(process.cwd(), "rel/state"),
      source: "--file",
      configured: "/var/lib/haproxy/server-state",
      loadedBy: undefined,
    });
  });

  it("refuses (exit 2) when the config names no file, cannot be read, or HAProxy is remote", () => {
    haproxyCfg("global", "    stats timeout 2m");
    expect(() => resolveStateTarget(settings(), undefined)).toThrow(
      /names no server-state-file; set one in its global section/,
    );
    expect(() =>
      resolveStateTarget(settings({ haproxyConfig: join(dir, "nope.cfg") }), undefined),
    ).toThrow(UsageError);
    expect(() =>
      resolveStateTarget(
        settings({ target: { kind: "tls", host: "10.0.0.5", port: 9999 } as Settings["target"] }),
        undefined,
      ),
    ).toThrow(/HAProxy is reached over tls:\/\/, so its server-state file is on its own host/);
    haproxyCfg("global", "    server-state-file state");
    expect(() => resolveStateTarget(settings(), undefined)).toThrow(/is relative/);
  });
});

describe("saveStateTarget (servers.saveState)", () => {
  it("is off unless configured, and says why there is no file rather than throwing", () => {
    expect(saveStateTarget(settings({ servers: { saveState: false } }))).toBeUndefined();
    haproxyCfg("global", "    stats timeout 2m");
    expect(saveStateTarget(settings())).toEqual({
      problem: `${join(dir, "haproxy.cfg")} names no server-state-file`,
    });
    haproxyCfg("global", `    server-state-file ${dir}/s`);
    expect(saveStateTarget(settings())).toEqual({ path: `${dir}/s`, loadedBy: [] });
  });
});

describe("writeFileAtomic", () => {
  const modeOf = (p: string) => statSync(p).mode & 0o7777;

  it("creates a missing file with the mode asked, whatever the umask, and leaves no temp file", () => {
    const path = join(dir, "server-state");
    expect(writeFileAtomic(path, "1\n", 0o644)).toEqual({ path, mode: 0o644, bytes: 2 });
    expect(readFileSync(path, "utf8")).toBe("1\n");
    expect(modeOf(path)).toBe(0o644);
    expect(readdirSync(dir)).toEqual(["server-state"]);
  });

  it("replaces an existing file keeping its mode, with no backup beside it", () => {
    const path = join(dir, "server-state");
    writeFileSync(path, "old\n");
    chmodSync(path, 0o600);
    writeFileAtomic(path, "new\n", 0o644);
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(modeOf(path)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["server-state"]);
  });

  it("replaces a symbolic link at the path instead of writing through it", () => {
    const elsewhere = join(dir, "elsewhere");
    writeFileSync(elsewhere, "keep\n");
    const path = join(dir, "server-state");
    symlinkSync(elsewhere, path);
    writeFileAtomic(path, "new\n", 0o644);
    expect(lstatSync(path).isFile()).toBe(true);
    expect(readFileSync(elsewhere, "utf8")).toBe("keep\n");
  });

  it("fails without leaving a temp file when the directory is missing", () => {
    expect(() => writeFileAtomic(join(dir, "no", "state"), "1\n", 0o644)).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("doctor's server-state checks", () => {
  const now = new Date();
  const checks = (text: string, saveState = false) =>
    stateFileChecks(text, "/etc/haproxy/haproxy.cfg", { saveState, now }).map((c) => [
      c.check,
      c.status,
      c.message,
    ]);

  it("warns when there is no server-state-file, or nothing loads it", () => {
    expect(checks("global\n  stats timeout 2m\nbackend b\n  server a 127.0.0.1:1\n")).toEqual([
      [
        "server state",
        "warn",
        "no server-state-file in /etc/haproxy/haproxy.cfg: runtime changes (drain, maint, weights) are lost on reload",
      ],
    ]);
    const [first] = checks(
      `global\n  server-state-file ${dir}/s\nbackend b\n  server a 127.0.0.1:1\n`,
    );
    expect(first).toEqual([
      "server state",
      "warn",
      `server-state-file ${dir}/s is set, but no backend has load-server-state-from-file: a reload ignores it, so runtime changes (drain, maint, weights) are lost on reload`,
    ]);
  });

  it("names backends that do not load it, and says when the file is writable and how old", () => {
    writeFileSync(join(dir, "s"), renderStateFile(LINES));
    const text = [
      "global",
      `  server-state-file ${dir}/s`,
      "defaults",
      "  load-server-state-from-file global",
      "backend b",
      "  server a 127.0.0.1:1",
      "backend c",
      "  load-server-state-from-file none",
      "  server a 127.0.0.1:1",
      "",
    ].join("\n");
    const got = checks(text);
    expect(got[0]).toEqual([
      "server state",
      "warn",
      "c has no load-server-state-from-file: their runtime changes are lost on reload",
    ]);
    expect(got[1]![0]).toBe("state file");
    expect(got[1]![1]).toBe("ok");
    expect(got[1]![2]).toMatch(
      new RegExp(`^${dir}/s is writable by hapops \\(uid \\d+\\): 3 servers, written \\d+s ago$`),
    );
  });

  it("fails when servers.saveState is on and the file's directory is missing", () => {
    const text = `global\n  server-state-file ${dir}/none/s\ndefaults\n  load-server-state-from-file global\nbackend b\n  server a 127.0.0.1:1\n`;
    const got = checks(text, true);
    expect(got[0]![1]).toBe("ok");
    expect(got[1]).toEqual([
      "state file",
      "fail",
      expect.stringMatching(/cannot write .*none\/s \(.*none does not exist\)/),
    ]);
  });

  it("warns about a file HAProxy would ignore", () => {
    writeFileSync(join(dir, "s"), renderStateFile(LINES).slice(0, -1));
    const text = `global\n  server-state-file ${dir}/s\ndefaults\n  load-server-state-from-file global\nbackend b\n  server a 127.0.0.1:1\n`;
    expect(checks(text)[1]).toEqual([
      "state file",
      "warn",
      `${dir}/s: its last line has no newline, so HAProxy takes it for a corrupted file and ignores all of it`,
    ]);
  });
});

describe("keepAfterReload (what a verified server change says about a reload)", () => {
  const fact = (server: string, over: Partial<ServerFacts> = {}): ServerFacts => ({
    backend: "be_app",
    server,
    address: "10.0.0.1",
    port: 80,
    operational: "UP",
    admin: "READY",
    adminFlags: [],
    weight: 10,
    initialWeight: 10,
    sessions: 0,
    ...over,
  });
  const drained = fact("app1", { admin: "DRAIN", adminFlags: ["FDRAIN"] });
  const plan = (op: "drain" | "ready", facts: ServerFacts[]) =>
    planChange(facts, { op, selector: parseSelector("be_app/app1"), force: false });
  const noSession = {} as never;

  it("says a reload undoes a change that leaves the server off its configuration", async () => {
    const k = await keepAfterReload(noSession, plan("drain", [fact("app1")]), [drained], undefined);
    expect(k.summary).toEqual([
      "runtime only: a reload undoes this unless the server state is saved first (hapops reload does; or hapops state save, or servers.saveState: true)",
    ]);
  });

  it("says nothing of a change back to the configuration (a reload does the same)", async () => {
    const k = await keepAfterReload(noSession, plan("ready", [drained]), [fact("app1")], undefined);
    expect(k.summary).toEqual([]);
  });

  it("says why servers.saveState saved nothing, without failing the change", async () => {
    const k = await keepAfterReload(noSession, plan("drain", [fact("app1")]), [drained], {
      problem: "/etc/haproxy/haproxy.cfg names no server-state-file",
    });
    expect(k).toEqual({
      summary: [
        "runtime only: servers.saveState is on, but /etc/haproxy/haproxy.cfg names no server-state-file; a reload undoes this (hapops reload keeps it)",
      ],
      json: { stateSaved: null },
    });
  });

  it("saves the state, names backends that do not load the file, and fails when it cannot write", async () => {
    const session = { run: () => Promise.resolve(LINES) } as never;
    const path = join(dir, "server-state");
    const k = await keepAfterReload(session, plan("drain", [fact("app1")]), [drained], {
      path,
      loadedBy: ["be_api"],
    });
    expect(k.summary).toEqual([
      `saved: the server state (3 servers) to ${path}, so a reload keeps this`,
      "note: be_app does not load it (load-server-state-from-file global), so a reload undoes the change there",
    ]);
    expect(k.json).toEqual({ stateSaved: { path, servers: 3 } });
    expect(readFileSync(path, "utf8")).toBe(renderStateFile(LINES));

    const bad = await keepAfterReload(session, plan("drain", [fact("app1")]), [drained], {
      path: join(dir, "missing", "server-state"),
      loadedBy: undefined,
    });
    expect(bad.error?.exitCode).toBe(1);
    expect(bad.error?.message).toMatch(
      /^drain be_app\/app1 is verified, but saving the server state to .*missing\/server-state failed \(.*\): a reload would undo it; fix that, then run hapops state save$/,
    );
  });
});
