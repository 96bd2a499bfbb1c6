import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, HAPOPS, hapops, json } from "../helpers/cli.js";
import { waitUntil } from "../../src/util/wait.js";
import { testHaproxy } from "../helpers/versions.js";

// The suite's HAProxy (HAPOPS_TEST_HAPROXY), else the system's.
const BIN = testHaproxy().bin;
const WITH_BIN = BIN ? ["--haproxy", BIN] : [];

const dir = mkdtempSync(join(tmpdir(), "hapops-sandbox-test-"));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface State {
  running: boolean;
  haproxy: { bin: string; version: string; tls: boolean };
  pid: number;
  haproxyPid: number;
  socket: string;
  http: string;
}

afterAll(async () => {
  await hapops(["sandbox", "stop", "--dir", dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe("hapops sandbox", () => {
  it("starts in the background, answers, and stops leaving no process behind", async () => {
    const start = await hapops(["sandbox", "start", "--detach", "--dir", dir, ...WITH_BIN]);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toContain(`admin socket     ${join(dir, "admin.sock")}`);
    expect(start.stdout).toMatch(/Stop: {2}hapops sandbox stop --dir /);

    const state = json<State>(await hapops(["sandbox", "status", "--dir", dir, "--json"]));
    expect(state.running).toBe(true);
    // Which HAProxy it runs, said in the banner and the status, the system's one included.
    expect(state.haproxy.version).toBe(testHaproxy().version);
    expect(start.stdout).toContain(`HAProxy ${testHaproxy().version} sandbox running`);
    expect(alive(state.haproxyPid)).toBe(true);

    const servers = await hapops(["-s", state.socket, "servers", "--json"]);
    expect(servers.code, servers.stderr).toBe(0);
    const rows = json<{ operational: string; admin: string; check: string | null }[]>(servers);
    expect(rows.filter((r) => r.admin === "READY").every((r) => r.operational === "UP")).toBe(true);

    const again = await hapops(["sandbox", "start", "--detach", "--dir", dir, ...WITH_BIN]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already running/);

    const stop = await hapops(["sandbox", "stop", "--dir", dir]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(
      /stopping the sandbox in .* \(requests in flight may take up to 15 s\)/,
    );
    expect(alive(state.pid)).toBe(false);
    expect(alive(state.haproxyPid)).toBe(false);
    const after = json<State>(await hapops(["sandbox", "status", "--dir", dir, "--json"]));
    expect(after.running).toBe(false);
  });

  it("runs in the foreground until Ctrl-C, then stops HAProxy", async () => {
    const fg = mkdtempSync(join(tmpdir(), "hapops-sandbox-fg-"));
    const child = spawn(process.execPath, [HAPOPS, "sandbox", "--dir", fg, ...WITH_BIN], {
      stdio: ["ignore", "pipe", "pipe"],
      env: cliEnv(),
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await waitUntil(() => (out.includes("Ctrl-C") ? true : undefined), {
        what: "the foreground sandbox to be ready",
        timeoutMs: 30_000,
      });
      const state = JSON.parse(readFileSync(join(fg, "sandbox.json"), "utf8")) as State;
      expect(alive(state.haproxyPid)).toBe(true);
      expect(out).toContain(`Stop:  Ctrl-C (or hapops sandbox stop --dir ${fg})`);
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      expect(out).toContain("sandbox stopped");
      expect(alive(state.haproxyPid)).toBe(false);
    } finally {
      child.kill("SIGKILL");
      rmSync(fg, { recursive: true, force: true });
    }
  });
});

describe("hapops sandbox refuses a directory it does not own alone", () => {
  it("a directory others can write is refused (exit 3), nothing started", async () => {
    const shared = mkdtempSync(join(tmpdir(), "hapops-sandbox-shared-"));
    chmodSync(shared, 0o777);
    try {
      const r = await hapops(["sandbox", "start", "--detach", "--dir", shared, ...WITH_BIN]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(
        /belongs to uid \d+ with mode 777; hapops uses only a directory of its own/,
      );
      expect(existsSync(join(shared, "haproxy.cfg"))).toBe(false);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it("a forged sandbox.json never gets a process signalled", async () => {
    const own = mkdtempSync(join(tmpdir(), "hapops-sandbox-forged-"));
    // A process of ours that a forged state file names: it must survive `sandbox stop`.
    const victim = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      writeFileSync(
        join(own, "sandbox.json"),
        JSON.stringify({ pid: victim.pid, haproxyPid: victim.pid, dir: own }),
      );
      const r = await hapops(["sandbox", "stop", "--dir", own]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/is not this sandbox's process; nothing was signalled/);
      expect(alive(victim.pid!)).toBe(true);
      writeFileSync(
        join(own, "sandbox.json"),
        JSON.stringify({ pid: -1, haproxyPid: 1, dir: own }),
      );
      const r2 = await hapops(["sandbox", "stop", "--dir", own]);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.stdout).toMatch(/no sandbox running/);
    } finally {
      victim.kill("SIGKILL");
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("--haproxy runs the binary it names and says its version; a wrong one is refused before anything starts", async () => {
    const own = mkdtempSync(join(tmpdir(), "hapops-sandbox-bin-"));
    const notes = join(tmpdir(), `hapops-sandbox-notes-${process.pid}.txt`);
    writeFileSync(notes, "not a program\n", { mode: 0o644 });
    try {
      const bad = await hapops(["sandbox", "start", "--detach", "--dir", own, "--haproxy", notes]);
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim()).toBe(
        `hapops: --haproxy: ${notes} is not an executable file; name an haproxy binary`,
      );
      const notHaproxy = await hapops([
        "sandbox",
        "start",
        "--detach",
        "--dir",
        own,
        "--haproxy",
        "/bin/true",
      ]);
      expect(notHaproxy.code).toBe(2);
      expect(notHaproxy.stderr).toMatch(/does not say it is HAProxy/);
      expect(existsSync(join(own, "haproxy.cfg"))).toBe(false);

      const h = testHaproxy();
      const bin = h.bin ?? "/usr/sbin/haproxy";
      const r = await hapops(["sandbox", "start", "--detach", "--dir", own, "--haproxy", bin]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`HAProxy ${h.version} sandbox running`);
      const state = json<State>(await hapops(["sandbox", "status", "--dir", own, "--json"]));
      expect(state.haproxy).toEqual({ bin, version: h.version, tls: h.tls });
      const info = await hapops(["-s", state.socket, "info", "--json"]);
      expect(json<{ Version: string }>(info).Version).toMatch(
        new RegExp(`^${h.version.replace(/\./g, "\\.")}`),
      );
      const wrong = await hapops(["sandbox", "stop", "--dir", own, "--haproxy", bin]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/--haproxy goes with sandbox start, not stop/);
    } finally {
      await hapops(["sandbox", "stop", "--dir", own]);
      rmSync(own, { recursive: true, force: true });
      rmSync(notes, { force: true });
    }
  });
});
