import { spawn, spawnSync } from "node:child_process";
import { request, type ClientRequest } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAPOPS, hapops, json, NEUTRAL_AUDIT, NEUTRAL_CONFIG } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import type { Lab } from "../../src/sandbox/lab.js";

/**
 * The Ansible module (contrib/ansible/library/hapops.py) run by a real ansible-playbook (Debian's
 * ansible-core, connection local) against two real HAProxy labs: check mode, a real run, the same
 * run again, failures (a bad selector, a drain wait that times out), a rolling play (serial: 1)
 * over both, and a fleet run (-g) from one control host once the build has the fleet.
 */

const ROOT = join(import.meta.dirname, "..", "..");
const LIBRARY = join(ROOT, "contrib", "ansible", "library");

const which = (cmd: string): string | undefined => {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const PLAYBOOK = which("ansible-playbook");
// CI installs ansible-core (.ci/run, scripts/ensure.mjs); elsewhere the file says why it skips.
const SKIPPED = "ansible-playbook is not on PATH (apt-get install ansible-core)";
const title = PLAYBOOK
  ? "the hapops Ansible module"
  : `the hapops Ansible module (SKIPPED: ${SKIPPED})`;
if (!PLAYBOOK) console.warn(`test/e2e/ansible.test.ts skipped: ${SKIPPED}`);

// The fleet (-t/-g) is tested for real once the build has it; the module's parsing of
// the fleet report is unit-checked either way (contrib/ansible/tests).
const FLEET = spawnSync(process.execPath, [HAPOPS, "--help"], { encoding: "utf8" }).stdout.includes(
  "--target",
);

/** The Python that runs ansible-playbook (its shebang), which has the ansible package. */
function ansiblePython(): string {
  const first = readFileSync(PLAYBOOK!, "utf8").split("\n", 1)[0] ?? "";
  const words = first.replace(/^#!\s*/, "").split(/\s+/);
  return (words[0]?.endsWith("/env") ? words[1] : words[0]) ?? "python3";
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /**
   * The hapops task's result per host, as the module returned it, from the tree callback's file
   * (which drops `failed` and, below -vvv, `diff`: those show in stdout).
   */
  readonly results: Map<string, TaskResult>;
}

interface TaskResult {
  changed: boolean;
  msg?: string;
  rc: number;
  cmd: string[];
  outcome?: string;
  sent?: string[] | Record<string, string[]>;
  report?: {
    dryRun: boolean;
    outcome: string;
    verified: boolean;
    error?: { message: string };
    mode?: string;
    targets?: { target: string; result: string }[];
  };
}

interface Row {
  backend: string;
  server: string;
  admin: string;
  weight: number;
}

interface AuditRecord {
  seq: number;
  target: string;
  op: string;
  phase: string;
  dryRun: boolean;
  outcome: string | null;
  commands: string[];
  reason: string | null;
}

const BACKENDS = [
  {
    name: "be_app",
    servers: [
      { name: "app1", weight: 100 },
      { name: "app2", weight: 100 },
    ],
  },
  { name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] },
];

// ansible-playbook takes a second or more to start, more on a busy machine; a test runs up to four.
describe.skipIf(!PLAYBOOK)(title, { timeout: 300_000 }, () => {
  const lb1 = useLab({ backends: BACKENDS, serverStateFile: false });
  const lb2 = useLab({ backends: BACKENDS, serverStateFile: false });
  let dir = "";
  let runs = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hapops-ansible-"));
    // hapops on PATH for the module's default (hapops: hapops), running the bundle under test.
    mkdirSync(join(dir, "bin"));
    writeFileSync(
      join(dir, "bin", "hapops"),
      `#!/bin/sh\nexec '${process.execPath}' '${HAPOPS}' "$@"\n`,
      { mode: 0o755 },
    );
    writeFileSync(
      join(dir, "ansible.cfg"),
      [
        "[defaults]",
        "callbacks_enabled = ansible.builtin.tree",
        "nocolor = true",
        "retry_files_enabled = false",
        `interpreter_python = ${ansiblePython()}`,
        `local_tmp = ${join(dir, "ansible-local")}`,
        `remote_tmp = ${join(dir, "ansible-remote")}`,
        "",
      ].join("\n"),
    );
    const local = `ansible_host=127.0.0.1 ansible_connection=local ansible_python_interpreter=${ansiblePython()}`;
    writeFileSync(
      join(dir, "inventory.ini"),
      `[lbs]\nlb1 ${local} hapops_socket=${lb1().sockets.admin}\n` +
        `lb2 ${local} hapops_socket=${lb2().sockets.admin}\n\n[control]\nctl ${local}\n`,
    );
    // For the fleet: one control host runs one hapops over both load balancers, as targets.
    writeFileSync(
      join(dir, "fleet.yaml"),
      `audit:\n  path: ${join(dir, "fleet-audit.jsonl")}\n` +
        `targets:\n  lb1:\n    socket: ${lb1().sockets.admin}\n  lb2:\n    socket: ${lb2().sockets.admin}\n` +
        `groups:\n  pair: [lb1, lb2]\n`,
    );
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Write a playbook and run it; each run gets its own tree of results. */
  function play(yaml: string, flags: readonly string[] = []): Promise<Run> {
    const n = ++runs;
    const book = join(dir, `play${n}.yml`);
    const tree = join(dir, `tree${n}`);
    writeFileSync(book, yaml);
    const env: NodeJS.ProcessEnv = {
      PATH: `${join(dir, "bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: dir,
      LC_ALL: "C.UTF-8",
      ANSIBLE_CONFIG: join(dir, "ansible.cfg"),
      ANSIBLE_LIBRARY: LIBRARY,
      ANSIBLE_CALLBACK_TREE_DIR: tree,
    };
    return new Promise((resolve, reject) => {
      const child = spawn(PLAYBOOK!, ["-i", join(dir, "inventory.ini"), ...flags, book], {
        env,
        cwd: dir,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 150_000);
      child.once("error", reject);
      child.once("close", (code) => {
        clearTimeout(timer);
        const results = new Map<string, TaskResult>();
        for (const h of ["lb1", "lb2", "ctl"]) {
          try {
            results.set(h, JSON.parse(readFileSync(join(tree, h), "utf8")) as TaskResult);
          } catch {
            // no task ran on this host
          }
        }
        resolve({ code, stdout, stderr, results });
      });
    });
  }

  /** One hapops task on some hosts. */
  const task = (hosts: string, args: string) => `
- hosts: ${hosts}
  gather_facts: false
  tasks:
    - name: hapops
      hapops:
        socket: "{{ hapops_socket }}"
        config: ${NEUTRAL_CONFIG}
        reason: ansible e2e
${args
  .trim()
  .split("\n")
  .map((l) => `        ${l.trim()}`)
  .join("\n")}
`;

  const result = (r: Run, host: string): TaskResult => {
    const got = r.results.get(host);
    if (!got) throw new Error(`no result for ${host}:\n${r.stdout}\n${r.stderr}`);
    return got;
  };
  const recap = (r: Run, host: string) => {
    const m = new RegExp(
      `^${host}\\s+: ok=(\\d+)\\s+changed=(\\d+)\\s+unreachable=\\d+\\s+failed=(\\d+)`,
      "m",
    ).exec(r.stdout);
    if (!m) throw new Error(`no recap for ${host}:\n${r.stdout}\n${r.stderr}`);
    return { ok: Number(m[1]), changed: Number(m[2]), failed: Number(m[3]) };
  };

  async function server(lab: Lab, name: string): Promise<Row> {
    const r = await hapops(["-s", lab.sockets.admin, "servers", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const row = json<Row[]>(r).find((s) => `${s.backend}/${s.server}` === name);
    if (!row) throw new Error(`no ${name} in ${r.stdout}`);
    return row;
  }

  /** The records of the audit log the module's hapops runs write to (NEUTRAL_CONFIG's). */
  const audit = (): AuditRecord[] => {
    let text = "";
    try {
      text = readFileSync(NEUTRAL_AUDIT, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as AuditRecord);
  };

  const DRAIN_APP1 = "op: drain\nselector: be_app/app1";

  it("ansible-doc reads the module's documentation", () => {
    const doc = spawnSync(join(PLAYBOOK!, "..", "ansible-doc"), ["-M", LIBRARY, "hapops"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: dir, LC_ALL: "C.UTF-8", ANSIBLE_NOCOLOR: "1" },
      timeout: 60_000,
    });
    expect(doc.status, doc.stderr).toBe(0);
    for (const option of [
      "op",
      "selector",
      "addr",
      "wait_timeout",
      "then",
      "target",
      "group",
      "hapops",
    ])
      expect(doc.stdout).toMatch(new RegExp(`^[=-] ${option}\\b`, "m"));
  });

  it("parses hapops's single and fleet reports (unit checks of the module's functions)", () => {
    const py = spawnSync(
      ansiblePython(),
      ["-m", "unittest", "discover", "-s", join(ROOT, "contrib", "ansible", "tests")],
      {
        encoding: "utf8",
        env: { PATH: process.env.PATH, LC_ALL: "C.UTF-8", PYTHONDONTWRITEBYTECODE: "1" },
        timeout: 60_000,
      },
    );
    expect(py.status, py.stderr).toBe(0);
    expect(py.stderr).toMatch(/^OK$/m);
  });

  it("check mode: changed, the plan as a diff, and nothing sent", async () => {
    const before = audit().length;
    const r = await play(task("lb1", DRAIN_APP1), ["--check", "--diff"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const res = result(r, "lb1");
    expect(res.changed).toBe(true);
    expect(res.cmd).toContain("--dry-run");
    expect(res.report?.dryRun).toBe(true);
    expect(res.sent).toEqual(["set server be_app/app1 state drain"]);
    // The default callback prints the module's diff (of a changed result) as a unified diff.
    expect(r.stdout).toMatch(
      /^--- before\n\+\+\+ after\n@@ -1 \+1 @@\n-be_app\/app1: READY weight 100\n\+be_app\/app1: DRAIN weight 100$/m,
    );
    expect(recap(r, "lb1")).toEqual({ ok: 1, changed: 1, failed: 0 });
    // HAProxy is as it was, and the audit log has the dry run only.
    expect((await server(lb1(), "be_app/app1")).admin).toBe("READY");
    const records = audit()
      .slice(before)
      .filter((a) => a.target === lb1().sockets.admin);
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((a) => a.dryRun)).toBe(true);
  });

  it("a real run: changed, and HAProxy has the server DRAIN", async () => {
    const r = await play(task("lb1", DRAIN_APP1));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const res = result(r, "lb1");
    expect(res).toMatchObject({ changed: true, rc: 0, outcome: "ok" });
    expect(res.sent).toEqual(["set server be_app/app1 state drain"]);
    expect(res.report?.verified).toBe(true);
    expect(r.stdout).not.toContain("--- before"); // no --diff
    expect(recap(r, "lb1")).toEqual({ ok: 1, changed: 1, failed: 0 });
    expect((await server(lb1(), "be_app/app1")).admin).toBe("DRAIN");
    expect((await server(lb2(), "be_app/app1")).admin).toBe("READY");
  });

  it("the same run again: ok, not changed (already; nothing sent)", async () => {
    const r = await play(task("lb1", DRAIN_APP1), ["--diff"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const res = result(r, "lb1");
    expect(res).toMatchObject({ changed: false, rc: 0, outcome: "noop", sent: [] });
    expect(r.stdout).not.toContain("--- before"); // nothing changes, so no diff
    expect(r.stdout).toMatch(/^ok: \[lb1\]$/m);
    expect(recap(r, "lb1")).toEqual({ ok: 1, changed: 0, failed: 0 });
    expect((await server(lb1(), "be_app/app1")).admin).toBe("DRAIN");
  });

  it("a selector naming no server fails the task with hapops's message and exit code", async () => {
    const r = await play(task("lb1", "op: maint\nselector: be_app/nosuch"));
    expect(r.code).toBe(2); // ansible-playbook: a host failed
    const res = result(r, "lb1");
    expect(r.stdout).toMatch(/^fatal: \[lb1\]: FAILED!/m);
    expect(res.rc).toBe(2);
    expect(res.msg).toBe("no server named nosuch in backend be_app; known: app1, app2");
    expect(res.report?.error?.message).toBe(res.msg);
    expect(r.stdout).toContain("no server named nosuch in backend be_app; known: app1, app2");
    expect(recap(r, "lb1")).toEqual({ ok: 0, changed: 0, failed: 1 });
  });

  it("a drain whose wait times out fails with hapops's message (exit 6) and is still changed", async () => {
    const lab = lb1();
    const run = (...args: string[]) => hapops(["-s", lab.sockets.admin, ...args]);
    // A long request in flight on w1: w2 out of the way while it starts, then back.
    expect((await run("maint", "be_wait/w2")).code).toBe(0);
    let req: ClientRequest | undefined;
    try {
      req = request({
        host: "127.0.0.1",
        port: lab.httpPort,
        path: "/wait/slow?ms=120000",
        agent: false,
      });
      req.on("error", () => undefined); // destroyed at the end
      req.end();
      await waitUntil(() => (lab.backends.get("be_wait/w1")!.inFlight === 1 ? true : undefined), {
        what: "the slow request to reach w1",
        timeoutMs: 10_000,
      });
      expect((await run("ready", "be_wait/w2")).code).toBe(0);

      const r = await play(
        task("lb1", "op: drain\nselector: be_wait/w1\nwait: true\nwait_timeout: 1s"),
      );
      expect(r.code).toBe(2);
      expect(r.stdout).toMatch(/^fatal: \[lb1\]: FAILED!/m);
      const res = result(r, "lb1");
      expect(res.rc).toBe(6);
      expect(res.msg).toMatch(/^drain wait timed out after .*1 session.*the server stays DRAIN/);
      // What was sent stands: the task is changed, and HAProxy has the server DRAIN.
      expect(res.changed).toBe(true);
      expect(res.sent).toEqual(["set server be_wait/w1 state drain"]);
      expect(recap(r, "lb1").failed).toBe(1);
      expect((await server(lab, "be_wait/w1")).admin).toBe("DRAIN");
    } finally {
      req?.destroy();
      await run("ready", "be_wait/*");
    }
  });

  it("a rolling play (serial: 1) drains, maints and readies one load balancer after the other", async () => {
    for (const lab of [lb1(), lb2()])
      expect((await hapops(["-s", lab.sockets.admin, "ready", "*/*"])).code).toBe(0);
    const before = audit().length;
    const r = await play(`
- name: rolling restart of app2
  hosts: lbs
  serial: 1
  gather_facts: false
  tasks:
    - name: take app2 out once it is empty
      hapops:
        socket: "{{ hapops_socket }}"
        config: ${NEUTRAL_CONFIG}
        op: drain
        selector: be_app/app2
        wait: true
        wait_timeout: 1m
        then: maint
        reason: "rolling {{ inventory_hostname }}"
    - name: put it back
      hapops:
        socket: "{{ hapops_socket }}"
        config: ${NEUTRAL_CONFIG}
        op: ready
        selector: be_app/app2
        reason: "rolling {{ inventory_hostname }}"
`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(recap(r, "lb1")).toEqual({ ok: 2, changed: 2, failed: 0 });
    expect(recap(r, "lb2")).toEqual({ ok: 2, changed: 2, failed: 0 });
    for (const h of ["lb1", "lb2"])
      expect(result(r, h)).toMatchObject({ changed: true, outcome: "ok" });
    // One batch per host, lb1 first.
    expect(r.stdout.match(/^PLAY \[rolling restart of app2\]/gm)).toHaveLength(2);
    expect(r.stdout.indexOf("changed: [lb1]")).toBeLessThan(r.stdout.indexOf("changed: [lb2]"));

    // In HAProxy's order of events (the audit log): every change on lb1, back to READY, before
    // anything on lb2.
    const changes = audit()
      .slice(before)
      .filter((a) => a.phase === "result" && !a.dryRun && a.commands.length > 0)
      .map((a) => [
        a.target === lb1().sockets.admin
          ? "lb1"
          : a.target === lb2().sockets.admin
            ? "lb2"
            : a.target,
        a.commands.join("; "),
        a.reason,
      ]);
    expect(changes).toEqual(
      ["lb1", "lb2"].flatMap((h) => [
        [h, "set server be_app/app2 state drain", `rolling ${h}`],
        [h, "set server be_app/app2 state maint", `rolling ${h}`],
        [h, "set server be_app/app2 state ready", `rolling ${h}`],
      ]),
    );
    for (const lab of [lb1(), lb2()])
      expect((await server(lab, "be_app/app2")).admin).toBe("READY");
  });
  it.skipIf(!FLEET)(
    FLEET
      ? "a fleet run (group:) from one control host: changed if any target sent, a diff per target"
      : "a fleet run (SKIPPED: this build has no -t/--target yet; the parsing is unit-checked above)",
    async () => {
      for (const lab of [lb1(), lb2()])
        expect((await hapops(["-s", lab.sockets.admin, "ready", "*/*"])).code).toBe(0);
      const fleet = (args: string) => `
- hosts: ctl
  gather_facts: false
  tasks:
    - name: hapops
      hapops:
        config: ${join(dir, "fleet.yaml")}
        group: pair
        reason: ansible fleet
${args
  .trim()
  .split("\n")
  .map((l) => `        ${l.trim()}`)
  .join("\n")}
`;
      const line = "set server be_app/app1 state drain";

      const check = await play(fleet(DRAIN_APP1), ["--check", "--diff"]);
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(result(check, "ctl")).toMatchObject({
        changed: true,
        sent: { lb1: [line], lb2: [line] },
        report: { dryRun: true, mode: "parallel" },
      });
      expect(check.stdout).toMatch(
        /^-\[lb1\] be_app\/app1: READY weight 100\n-\[lb2\] be_app\/app1: READY weight 100\n\+\[lb1\] be_app\/app1: DRAIN weight 100\n\+\[lb2\] be_app\/app1: DRAIN weight 100$/m,
      );
      for (const lab of [lb1(), lb2()])
        expect((await server(lab, "be_app/app1")).admin).toBe("READY");

      const real = await play(fleet(DRAIN_APP1));
      expect(real.code, real.stdout + real.stderr).toBe(0);
      expect(result(real, "ctl")).toMatchObject({
        changed: true,
        rc: 0,
        sent: { lb1: [line], lb2: [line] },
      });
      for (const lab of [lb1(), lb2()])
        expect((await server(lab, "be_app/app1")).admin).toBe("DRAIN");

      const again = await play(fleet(DRAIN_APP1));
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(result(again, "ctl")).toMatchObject({ changed: false, sent: { lb1: [], lb2: [] } });
      expect(recap(again, "ctl")).toEqual({ ok: 1, changed: 0, failed: 0 });

      const bad = await play(fleet("op: maint\nselector: be_app/nosuch"));
      expect(bad.code).toBe(2);
      const res = result(bad, "ctl");
      expect(res.rc).toBe(2);
      expect(res.msg).toContain("lb1: no server named nosuch in backend be_app; known: app1, app2");
      expect(res.msg).toContain("lb2: no server named nosuch in backend be_app; known: app1, app2");
      expect(recap(bad, "ctl")).toEqual({ ok: 0, changed: 0, failed: 1 });
    },
  );
});
