import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveSettings, type Environment, type GlobalFlags } from "../../src/config/settings.js";
import { fanOut, worstExit } from "../../src/engine/fleet.js";
import { ConfigError, SocketError, UsageError } from "../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "hapops-fleet-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const env = (): Environment => ({
  env: {},
  stdoutIsTTY: false,
  stderrIsTTY: false,
  euid: 1000,
  sudo: false,
});

let n = 0;
function config(text: string): string {
  const path = join(dir, `hapops-${n++}.yaml`);
  writeFileSync(path, text);
  return path;
}

const FLEET = config(
  [
    "targets:",
    "  lb1: { socket: /run/lb1.sock }",
    "  lb2: { socket: tls://10.0.0.6:9999, tls: { cert: /c, key: /k, ca: /a } }",
    "  lb3: { socket: /run/lb3.sock, master: /run/lb3-master.sock }",
    "groups:",
    "  edge: [lb1, lb2]",
    "  back: [lb3, lb1]",
  ].join("\n"),
);

const settings = (flags: GlobalFlags, use: "none" | "read" | "change" = "change") =>
  resolveSettings({ config: FLEET, ...flags }, env(), use);

describe("choosing the targets of a fleet", () => {
  it("takes -t, -g and --all by name, each target once, in the order given", async () => {
    const s = await settings({ group: "back,edge", target: "lb2" });
    expect(s.fleet?.members.map((m) => m.name)).toEqual(["lb3", "lb1", "lb2"]);
    expect(s.fleet?.label).toBe("group back + group edge + target lb2: lb3, lb1, lb2");
    expect((await settings({ all: true })).fleet?.members.map((m) => m.name)).toEqual([
      "lb1",
      "lb2",
      "lb3",
    ]);
  });

  it("gives every member the settings of its own target", async () => {
    const s = await settings({ all: true });
    const [lb1, lb2, lb3] = s.fleet!.members.map((m) => m.settings);
    expect(lb1!.target).toEqual({ kind: "unix", path: "/run/lb1.sock" });
    expect(lb2!.tls).toEqual({ cert: "/c", key: "/k", ca: "/a" });
    expect(lb3!.master).toBe("/run/lb3-master.sock");
    expect(lb2!.fleet).toBeUndefined();
    expect(lb1!.targetText).toBe("lb1 (/run/lb1.sock)");
  });

  it("applies in parallel by default; --rolling takes --batch and --pause", async () => {
    expect((await settings({ all: true })).fleet?.apply).toEqual({
      mode: "parallel",
      batch: 1,
      pauseMs: 0,
      onError: "stop",
    });
    expect(
      (await settings({ all: true, rolling: true, batch: "5", pause: "30s", onError: "continue" }))
        .fleet?.apply,
    ).toEqual({ mode: "rolling", batch: 5, pauseMs: 30_000, onError: "continue" });
  });

  it("refuses what it cannot do, in one line naming the choices", async () => {
    const cases: [GlobalFlags, "none" | "read" | "change", RegExp][] = [
      [{ target: "lb9" }, "change", /no target named lb9 .*\(targets: lb1, lb2, lb3\)/],
      [{ group: "nope" }, "change", /no group named nope .*\(groups: edge, back\)/],
      [{ target: "lb1,,lb2" }, "change", /an empty name/],
      [{ target: "lb1", socket: "/run/x.sock" }, "change", /both choose targets/],
      [{ target: "lb1" }, "none", /works on one target; choose it with -s/],
      [{ all: true, rolling: true }, "read", /--rolling is for changes/],
      [{ all: true, batch: "2" }, "change", /--batch needs --rolling/],
      [{ all: true, rolling: true, batch: "0" }, "change", /--batch 0: a whole number/],
      [{ all: true, rolling: true, parallel: true }, "change", /choose one/],
      [{ all: true, onError: "ignore" }, "change", /stop or continue/],
      [{ rolling: true }, "change", /add -t <names>, -g <group> or --all/],
    ];
    for (const [flags, use, message] of cases) {
      const p = settings(flags, use);
      await expect(p, JSON.stringify(flags)).rejects.toBeInstanceOf(UsageError);
      await expect(p, JSON.stringify(flags)).rejects.toThrow(message);
    }
  });

  it("refuses a group that names a target the config does not have", async () => {
    const path = config("targets:\n  lb1: { socket: /x }\ngroups:\n  edge: [lb1, lb7]\n");
    const p = resolveSettings({ config: path, group: "edge" }, env(), "read");
    await expect(p).rejects.toBeInstanceOf(ConfigError);
    await expect(p).rejects.toThrow(/groups.edge names lb7/);
  });

  it("says --all without targets is not every field of info", async () => {
    const path = config("socket: /run/x.sock\n");
    await expect(resolveSettings({ config: path, all: true }, env(), "read")).rejects.toThrow(
      /no targets in .*hapops info --full/,
    );
  });
});

describe("fanOut and the worst exit code", () => {
  it("keeps the members' order, bounds concurrency, and turns hapops errors into results", async () => {
    const members = ["a", "b", "c", "d", "e"].map((name) => ({ name, settings: {} as never }));
    let running = 0;
    let most = 0;
    const out = await fanOut(
      members,
      async (m) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setImmediate(r));
        running--;
        if (m.name === "c") throw new SocketError("CONNECTION_REFUSED", "refused");
        return m.name.toUpperCase();
      },
      2,
    );
    expect(most).toBe(2);
    expect(out.map((r) => (r.ok ? r.value : `!${r.error.message}`))).toEqual([
      "A",
      "B",
      "!refused",
      "D",
      "E",
    ]);
    await expect(
      fanOut(members, () => Promise.reject(new TypeError("bug")), 2),
    ).rejects.toBeInstanceOf(TypeError);
  });

  it("ranks exit codes from least to most serious", () => {
    expect(worstExit([0, 0])).toBe(0);
    expect(worstExit([0, 6, 1])).toBe(1);
    expect(worstExit([1, 4, 3])).toBe(4);
    expect(worstExit([4, 5])).toBe(5);
    expect(worstExit([5, 130, 0])).toBe(130);
  });
});
