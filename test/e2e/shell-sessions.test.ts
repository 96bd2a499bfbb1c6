import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { waitUntil } from "../../src/util/wait.js";
import { HAPOPS, hapops, json } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

/**
 * HAProxy accepts 10 runtime API connections at once by default (`stats maxconn`, shared by
 * every `stats socket` line; measured on 2.6), and an eleventh waits in the kernel's backlog.
 * Idle shells must not be what fills them.
 */
const lab = useLab({
  // No health checks: what this file measures is CLI sessions, and app2 must stay serving for
  // the drain's guard however busy the machine is while ten shells start.
  backends: [
    {
      name: "be_app",
      servers: [
        { name: "app1", check: false },
        { name: "app2", check: false },
      ],
    },
  ],
});

const hasTmux = spawnSync("sh", ["-c", "command -v tmux"]).status === 0;
// A tmux server of this file's own, so that ending it ends only the shells started here.
const TMUX = ["-L", `hapops-sessions-${process.pid}`];
const SHELLS = 10;

const tmux = (...args: string[]) =>
  spawnSync("tmux", [...TMUX, ...args], { encoding: "utf8" }).stdout;

afterAll(() => {
  if (hasTmux) spawnSync("tmux", [...TMUX, "kill-server"]);
});

let cfgPath: string | undefined;
function cfg(): string {
  if (cfgPath) return cfgPath;
  const dir = join(lab().dir, "sessions-cfg");
  mkdirSync(dir, { recursive: true });
  cfgPath = join(dir, "hapops.yaml");
  writeFileSync(
    cfgPath,
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\n`,
  );
  return cfgPath;
}

const run = (args: string[]) => hapops(args, { env: { HAPOPS_CONFIG: cfg() } });

/** Runtime API sessions HAProxy holds, the one asking included (`show sess`, frontend GLOBAL). */
async function cliSessions(): Promise<string[]> {
  const r = await run(["raw", "show sess", "--timeout", "3s"]);
  if (r.code !== 0) throw new Error(`show sess failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => / fe=GLOBAL /.test(l));
}

describe("idle hapops shells and the runtime API's connection limit", () => {
  it.runIf(hasTmux)(
    `${SHELLS} idle shells leave room for a drain, and complete names without holding a session`,
    async () => {
      const home = join(lab().dir, "home");
      mkdirSync(home, { recursive: true });
      const command = `env HAPOPS_CONFIG=${cfg()} HOME=${home} node ${HAPOPS} shell`;
      tmux("new-session", "-d", "-s", "ops", "-x", "150", "-y", "30", command);
      for (let i = 1; i < SHELLS; i++) tmux("new-window", "-t", "ops", command);
      const screen = (i: number) => tmux("capture-pane", "-t", `ops:${i}`, "-p");

      // Each shell prints its prompt once it has read the live names; from then on it is idle.
      await waitUntil(
        () => {
          const waiting = [...Array(SHELLS).keys()].filter((i) => !/^hapops>/m.test(screen(i)));
          if (waiting.length > 0) throw new Error(`shells ${waiting.join(", ")} have no prompt`);
          return true;
        },
        { what: `${SHELLS} shell prompts`, timeoutMs: 30_000, intervalMs: 200 },
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n--- shell 0 ---\n${screen(0)}`);
      });

      // Before, each shell held a session with `set timeout cli 3600`: the ten filled the limit
      // and this drain waited in the backlog until its own timeout.
      const drain = await run(["drain", "be_app/app1", "--timeout", "5s"]);
      expect(drain.stderr).toBe("");
      expect(drain.stdout).toMatch(/be_app\/app1 {2}READY -> DRAIN/);
      expect(drain.code).toBe(0);
      expect((await run(["ready", "be_app/app1", "--timeout", "5s"])).code).toBe(0);

      // Idle, the shells hold no session at all: only `show sess`'s own connection is listed.
      await waitUntil(
        async () => {
          const held = await cliSessions();
          if (held.length !== 1)
            throw new Error(`${held.length} CLI sessions:\n${held.join("\n")}`);
          return true;
        },
        { what: "no runtime API session but the asking one", timeoutMs: 10_000, intervalMs: 200 },
      );

      // Completion still offers live names: the shell reads them over a short connection.
      tmux("send-keys", "-t", "ops:3", "drain be_app/ap");
      tmux("send-keys", "-t", "ops:3", "Tab");
      tmux("send-keys", "-t", "ops:3", "Tab");
      await waitUntil(() => (/be_app\/app1\s+be_app\/app2/.test(screen(3)) ? true : undefined), {
        what: "server names in shell 3's completion",
        timeoutMs: 10_000,
      }).catch((e: Error) => {
        throw new Error(`${e.message}\n--- shell 3 ---\n${screen(3)}`);
      });
      tmux("send-keys", "-t", "ops:3", "C-u");
      expect(screen(3)).not.toMatch(/reconnect|no live session|cannot/);
    },
  );
});

describe("hapops doctor: room on the runtime API", () => {
  interface Check {
    check: string;
    status: string;
    message: string;
    fix?: string;
  }
  const doctor = async (haproxyCfg: string): Promise<Check> => {
    const r = await run(["doctor", "--json", "--haproxy-config", haproxyCfg]);
    const check = json<Check[]>(r).find((c) => c.check === "stats maxconn");
    if (!check) throw new Error(`no stats maxconn check in:\n${r.stdout}`);
    return check;
  };
  const variant = (name: string, edit: (text: string) => string): string => {
    const path = join(lab().dir, name);
    writeFileSync(path, edit(readFileSync(lab().configPath, "utf8")));
    return path;
  };

  it("warns about HAProxy's default of 10 and says what to add", async () => {
    const c = await doctor(lab().configPath);
    expect(c.status).toBe("warn");
    expect(c.message).toMatch(/at most 10 runtime API connections at once/);
    expect(c.message).toMatch(/shared by 3 `stats socket` lines/);
    expect(c.fix).toMatch(/add `stats maxconn 50` to the global section of .*haproxy\.cfg/);
  });

  it("is content with a raised stats maxconn", async () => {
    const c = await doctor(
      variant("roomy.cfg", (t) => t.replace("global\n", "global\n    stats maxconn 50\n")),
    );
    expect(c.status).toBe("ok");
    expect(c.message).toMatch(/50 runtime API connections at once/);
  });

  it("names the maxconn on hapops's own stats socket line when that is the limit", async () => {
    const path = variant("tight-socket.cfg", (t) =>
      t
        .replace("global\n", "global\n    stats maxconn 50\n")
        .replace(/(stats socket \S+admin\.sock .*)/, "$1 maxconn 4"),
    );
    const c = await doctor(path);
    expect(c.status).toBe("warn");
    expect(c.message).toMatch(/admin\.sock accepts at most 4 runtime API connections at once/);
    expect(c.fix).toMatch(/`maxconn 4`.*admin\.sock/);
  });
});
