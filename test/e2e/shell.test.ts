import { spawnSync } from "node:child_process";
import { request } from "node:http";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { waitUntil } from "../../src/util/wait.js";
import { HAPOPS, hapops, json } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

const lab = useLab({
  backends: [
    { name: "be_app", servers: [{ name: "app1" }, { name: "app2" }, { name: "app3" }] },
    { name: "be_api", servers: [{ name: "api1" }, { name: "api2" }] },
  ],
});

const hasTmux = spawnSync("sh", ["-c", "command -v tmux"]).status === 0;
const SESSION = `hapops-shell-test-${process.pid}`;

let cfgPath: string | undefined;
function cfg(): string {
  if (cfgPath) return cfgPath;
  const dir = join(lab().dir, "shell-cfg");
  mkdirSync(dir, { recursive: true });
  cfgPath = join(dir, "hapops.yaml");
  writeFileSync(
    cfgPath,
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\n`,
  );
  return cfgPath;
}

function tmux(...args: string[]): string {
  return spawnSync("tmux", args, { encoding: "utf8" }).stdout;
}

const screen = () => tmux("capture-pane", "-t", SESSION, "-p");
const waitScreen = (re: RegExp, what: string) =>
  waitUntil(() => (re.test(screen()) ? true : undefined), {
    what: `${what} on the shell's screen`,
    timeoutMs: 10_000,
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n--- screen ---\n${screen()}`);
  });

afterAll(() => {
  if (hasTmux) spawnSync("tmux", ["kill-session", "-t", SESSION]);
});

async function admin(server: string): Promise<string | undefined> {
  const r = await hapops(["servers", "--json"], { env: { HAPOPS_CONFIG: cfg() } });
  return json<{ backend: string; server: string; admin: string }[]>(r).find(
    (s) => `${s.backend}/${s.server}` === server,
  )?.admin;
}

describe("hapops shell", () => {
  it("from a pipe, runs one command per line and reports the first failure's exit code", async () => {
    const r = spawnSync(
      "sh",
      [
        "-c",
        `printf 'servers be_api\\ndrain be_api/api1\\nready be_api/api1\\nbogus-command\\n' | node ${HAPOPS} shell`,
      ],
      {
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: "/tmp", HAPOPS_CONFIG: cfg() },
      },
    );
    expect(r.stdout).toMatch(/be_api\/api1 {2}READY -> DRAIN/);
    expect(r.stdout).toMatch(/be_api\/api1 {2}DRAIN -> READY/);
    expect(r.stderr).toMatch(/unknown command 'bogus-command'/);
    expect(r.status).toBe(2); // the first failure: an unknown command is a usage error
    expect(await admin("be_api/api1")).toBe("READY");
  });

  it("records each line in the audit log with its own words, not as `shell`", async () => {
    const r = spawnSync(
      "sh",
      ["-c", `printf 'weight be_api/api2 7 --reason from-the-shell\n' | node ${HAPOPS} shell`],
      { encoding: "utf8", env: { PATH: process.env.PATH, HOME: "/tmp", HAPOPS_CONFIG: cfg() } },
    );
    expect(r.status, r.stderr).toBe(0);
    const records = readFileSync(join(dirname(cfg()), "audit.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { op: string; args: string[]; reason: string | null });
    const mine = records.filter((x) => x.reason === "from-the-shell");
    expect(mine.length).toBeGreaterThan(0);
    for (const x of mine) {
      expect(x.op).toBe("weight");
      expect(x.args).toEqual(["weight", "be_api/api2", "7", "--reason", "from-the-shell"]);
    }
    await hapops(["-s", lab().sockets.admin, "weight", "be_api/api2", "1"]);
  });

  it.runIf(hasTmux)("at a terminal: completes commands and live names, and drains", async () => {
    spawnSync("tmux", [
      "new-session",
      "-d",
      "-s",
      SESSION,
      "-x",
      "200",
      "-y",
      "50",
      `env HAPOPS_CONFIG=${cfg()} HOME=/tmp node ${HAPOPS} shell`,
    ]);
    await waitScreen(/^hapops>/m, "the prompt");
    tmux("send-keys", "-t", SESSION, "dra");
    tmux("send-keys", "-t", SESSION, "Tab");
    await waitScreen(/hapops> drain/, "the completed command");
    tmux("send-keys", "-t", SESSION, "C-u", "drain be_app/ap");
    tmux("send-keys", "-t", SESSION, "Tab");
    tmux("send-keys", "-t", SESSION, "Tab");
    await waitScreen(/be_app\/app1\s+be_app\/app2\s+be_app\/app3/, "the server names from HAProxy");
    tmux("send-keys", "-t", SESSION, "2", "Enter");
    await waitScreen(/be_app\/app2 {2}READY -> DRAIN/, "the drain");
    expect(await admin("be_app/app2")).toBe("DRAIN");
    tmux("send-keys", "-t", SESSION, "ready be_app/app2", "Enter");
    await waitScreen(/be_app\/app2 {2}DRAIN -> READY/, "the ready");

    // Ctrl-C at the prompt drops the line and prompts again, as bash does; the shell stays.
    tmux("send-keys", "-t", SESSION, "servers be_a");
    tmux("send-keys", "-t", SESSION, "C-c");
    await waitScreen(/hapops> servers be_a\^C\nhapops>\s*$/m, "a fresh prompt after Ctrl-C");
    // Ctrl-C during a wait stops that wait (exit 130), and the shell goes on.
    const slow = new Promise<void>((resolve) =>
      request(
        { host: "127.0.0.1", port: lab().httpPort, path: "/api/slow?ms=20000", agent: false },
        (res) => {
          res.resume();
          res.on("end", () => resolve());
        },
      )
        .on("error", () => resolve())
        .end(),
    );
    await waitUntil(
      () =>
        [...lab().backends.entries()].some(([n, b]) => n.startsWith("be_api/") && b.inFlight === 1)
          ? true
          : undefined,
      { what: "the slow request to reach be_api", timeoutMs: 5000 },
    );
    tmux("send-keys", "-t", SESSION, "drain be_api/* --force --wait", "Enter");
    await waitScreen(/waiting for 2 servers to drain: 1 session left/, "the wait");
    tmux("send-keys", "-t", SESSION, "C-c");
    await waitScreen(
      /stopped waiting after .*\(Ctrl-C\)[\s\S]*\(exit 130\)/,
      "the wait stopped by Ctrl-C",
    );
    tmux("send-keys", "-t", SESSION, "ready be_api/*", "Enter");
    await waitScreen(/DRAIN -> READY/, "the ready after the interrupted wait");
    await hapops(["-s", lab().sockets.admin, "raw", "shutdown sessions server be_api/api1"]);
    await hapops(["-s", lab().sockets.admin, "raw", "shutdown sessions server be_api/api2"]);
    await slow;
  });

  it.runIf(hasTmux)(
    "holds no session while idle, says once that HAProxy is gone and once that it is back",
    async () => {
      const run = (args: string[]) => hapops(args, { env: { HAPOPS_CONFIG: cfg() } });
      // The runtime API sessions HAProxy holds, the asking one included (frontend GLOBAL).
      const held = async () =>
        (await run(["raw", "show sess"])).stdout.split("\n").filter((l) => / fe=GLOBAL /.test(l));
      // This shell reaches HAProxy through a symlink: removing it makes HAProxy "gone".
      const dir = join(lab().dir, "shell-gone");
      mkdirSync(dir, { recursive: true });
      const link = join(dir, "admin.sock");
      symlinkSync(lab().sockets.admin, link);
      const goneCfg = join(dir, "hapops.yaml");
      writeFileSync(goneCfg, `socket: ${link}\naudit:\n  path: ${join(dir, "audit.jsonl")}\n`);
      spawnSync("tmux", ["kill-session", "-t", SESSION]);
      spawnSync("tmux", [
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "200",
        "-y",
        "50",
        `env HAPOPS_CONFIG=${goneCfg} HOME=/tmp node ${HAPOPS} shell`,
      ]);
      await waitScreen(/^hapops>/m, "the prompt");
      // At its prompt the shell holds no session: `show sess` lists only its own.
      await waitUntil(async () => ((await held()).length === 1 ? true : undefined), {
        what: "no runtime API session but the asking one",
        timeoutMs: 10_000,
      });

      rmSync(link);
      // A command says what went wrong itself; the next Tab finds HAProxy gone and says so once.
      tmux("send-keys", "-t", SESSION, "servers be_api", "Enter");
      await waitScreen(/\(exit 4\)/, "the command's failure");
      // (The notice may wrap on the screen.)
      const gone =
        /cannot read names for completion: no socket at [^;]*admin\.sock[\s\S]*?Tab completes from what it has/;
      tmux("send-keys", "-t", SESSION, "drain be_api/", "Tab");
      await waitScreen(gone, "the notice that HAProxy is gone");
      tmux("send-keys", "-t", SESSION, "C-u", "servers be_api", "Enter");
      await waitScreen(/\(exit 4\)(.|\n)*\(exit 4\)/, "the second command's failure");
      tmux("send-keys", "-t", SESSION, "drain be_api/", "Tab");
      await waitScreen(/^hapops> drain be_api\/$/m, "the second Tab answered");
      expect(screen().match(new RegExp(gone.source, "g"))).toHaveLength(1);

      symlinkSync(lab().sockets.admin, link);
      tmux("send-keys", "-t", SESSION, "C-u", "servers be_api", "Enter");
      await waitScreen(/be_api\/api1 +127\.0\.0\.1/, "the servers once HAProxy is back");
      // Completion reads live names again (a double Tab lists the candidates), and says so once.
      tmux("send-keys", "-t", SESSION, "drain be_api/", "Tab");
      tmux("send-keys", "-t", SESSION, "Tab");
      await waitScreen(/be_api\/api1\s+be_api\/api2/, "completion after HAProxy is back");
      await waitScreen(/HAProxy answers again/, "the notice that HAProxy is back");
      expect(screen().match(/HAProxy answers again/g)).toHaveLength(1);
      tmux("send-keys", "-t", SESSION, "C-u", "C-d");
    },
  );
});
