import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, HAPOPS, hapops, json } from "../helpers/cli.js";
import { waitUntil } from "../../src/util/wait.js";

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
    const start = await hapops(["sandbox", "start", "--detach", "--dir", dir]);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toContain(`admin socket     ${join(dir, "admin.sock")}`);
    expect(start.stdout).toMatch(/Stop: {2}hapops sandbox stop --dir /);

    const state = json<State>(await hapops(["sandbox", "status", "--dir", dir, "--json"]));
    expect(state.running).toBe(true);
    expect(alive(state.haproxyPid)).toBe(true);

    const servers = await hapops(["-s", state.socket, "servers", "--json"]);
    expect(servers.code, servers.stderr).toBe(0);
    const rows = json<{ operational: string; admin: string; check: string | null }[]>(servers);
    expect(rows.filter((r) => r.admin === "READY").every((r) => r.operational === "UP")).toBe(true);

    const again = await hapops(["sandbox", "start", "--detach", "--dir", dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already running/);

    const stop = await hapops(["sandbox", "stop", "--dir", dir]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(alive(state.pid)).toBe(false);
    expect(alive(state.haproxyPid)).toBe(false);
    const after = json<State>(await hapops(["sandbox", "status", "--dir", dir, "--json"]));
    expect(after.running).toBe(false);
  });

  it("runs in the foreground until Ctrl-C, then stops HAProxy", async () => {
    const fg = mkdtempSync(join(tmpdir(), "hapops-sandbox-fg-"));
    const child = spawn(process.execPath, [HAPOPS, "sandbox", "--dir", fg], {
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
