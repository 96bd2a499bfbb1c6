import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../../src/util/wait.js";
import { HAPOPS } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

/**
 * Shell completion as operators get it: the script `hapops completion <shell>` prints, loaded
 * into a real bash, zsh and fish, asking a real HAProxy for names through `hapops __complete`.
 */

// The demo backends: be_app (a stick table), be_api, be_static (a server named "static:2").
const lab = useLab();

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const hasZsh = has("zsh");
const hasFish = has("fish");
const hasTmux = has("tmux");

/** A directory on PATH with `hapops` in it, as an installed hapops is. */
let bin = "";
/** The config a Tab uses by default: the lab's socket, targets and groups, every read audited. */
let cfg = "";
let otherCfg = "";
let auditFile = "";
let deadSocket = "";
let dead: Server | undefined;
const held: Socket[] = [];
const scripts: Record<"bash" | "zsh" | "fish", string> = { bash: "", zsh: "", fish: "" };

beforeAll(async () => {
  const dir = join(lab().dir, "completion");
  bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, "hapops"),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(HAPOPS)} "$@"\n`,
  );
  chmodSync(join(bin, "hapops"), 0o755);
  // Accepts connections and never answers: a hung HAProxy.
  deadSocket = join(dir, "dead.sock");
  dead = createServer((s) => void held.push(s));
  await new Promise<void>((r) => dead!.listen(deadSocket, r));
  auditFile = join(dir, "audit.jsonl");
  cfg = join(dir, "hapops.yaml");
  writeFileSync(
    cfg,
    [
      `socket: ${lab().sockets.admin}`,
      "targets:",
      `  lb1: {socket: ${lab().sockets.admin}}`,
      `  lb2: {socket: ${deadSocket}}`,
      `  lb3: {socket: ${join(dir, "missing.sock")}}`,
      "groups:",
      "  edge: [lb1, lb2]",
      "  core: [lb3]",
      "audit:",
      `  path: ${auditFile}`,
      "  reads: true",
      "",
    ].join("\n"),
  );
  otherCfg = join(dir, "other.yaml");
  writeFileSync(
    otherCfg,
    `targets:\n  far1: {socket: ${deadSocket}}\ngroups:\n  west: [far1]\naudit:\n  path: ${auditFile}\n`,
  );
  for (const shell of ["bash", "zsh", "fish"] as const) {
    const r = run("hapops", ["completion", shell]);
    expect(r.status, r.stderr).toBe(0);
    scripts[shell] = join(dir, `hapops.${shell}`);
    writeFileSync(scripts[shell], r.stdout);
  }
});

afterAll(async () => {
  for (const s of held) s.destroy();
  if (dead) await new Promise((r) => dead!.close(r));
  if (hasTmux) for (const s of SESSIONS) spawnSync("tmux", ["kill-session", "-t", s]);
});

function env(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {
    PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
    HOME: "/tmp",
    TERM: "xterm",
    HAPOPS_CONFIG: cfg,
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

function run(
  cmd: string,
  args: readonly string[],
  extra: Record<string, string | undefined> = {},
): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", env: env(extra), timeout: 30_000 });
}

/**
 * Drive bash's completion function as readline would: COMP_LINE and COMP_POINT, and COMP_WORDS
 * split as bash splits them (at spaces, and at ":" and "=" too: pass `words` for those lines).
 */
function bash(
  line: string,
  words?: readonly string[],
  opts: { env?: Record<string, string | undefined>; load?: string } = {},
): { reply: string[]; stderr: string; ms: number } {
  const split = words ?? line.split(" ");
  const load = opts.load ?? 'source "$1"';
  const program = `${load}; shift
COMP_LINE=$1 COMP_POINT=\${#1}; shift
COMP_WORDS=("$@") COMP_CWORD=$(($# - 1))
_hapops
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const started = Date.now();
  const r = run("bash", ["--norc", "-c", program, "bash", scripts.bash, line, ...split], opts.env);
  const ms = Date.now() - started;
  expect(r.status, r.stderr).toBe(0);
  return { reply: r.stdout.split("\n").filter((l) => l !== ""), stderr: r.stderr, ms };
}

function fish(line: string, extra: Record<string, string | undefined> = {}): string[] {
  const r = run(
    "fish",
    ["--no-config", "-c", `source ${scripts.fish}; complete -C ${JSON.stringify(line)}`],
    extra,
  );
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").filter((l) => l !== "");
}

const SESSIONS: string[] = [];

/** A real interactive shell in tmux; type, press Tab, and wait for the screen to show `re`. */
function terminal(command: string) {
  const name = `hapops-complete-${process.pid}-${SESSIONS.length}`;
  SESSIONS.push(name);
  const tmux = (...args: string[]) => spawnSync("tmux", args, { encoding: "utf8" }).stdout;
  const envText = Object.entries(env())
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50", `env -i ${envText} ${command}`);
  const screen = () => tmux("capture-pane", "-t", name, "-p");
  const waitFor = (re: RegExp, what: string) =>
    waitUntil(() => (re.test(screen()) ? true : undefined), {
      what: `${what} on the screen`,
      timeoutMs: 15_000,
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- screen ---\n${screen()}`);
    });
  return {
    waitFor,
    type: (text: string) => tmux("send-keys", "-t", name, "-l", text),
    key: (...keys: string[]) => tmux("send-keys", "-t", name, ...keys),
    close: () => tmux("kill-session", "-t", name),
  };
}

describe("hapops completion <shell>", () => {
  it("prints the same script wherever and whoever runs it, with no path of this machine", () => {
    for (const shell of ["bash", "zsh", "fish"] as const) {
      const a = run("hapops", ["completion", shell]);
      const b = spawnSync(process.execPath, [HAPOPS, "completion", shell], {
        encoding: "utf8",
        cwd: tmpdir(),
        env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent", HAPOPS_SOCKET: "/x.sock" },
      });
      expect(a.stdout).toBe(b.stdout);
      expect(a.stderr + b.stderr).toBe("");
      for (const path of [
        lab().dir,
        dirname(dirname(HAPOPS)),
        process.execPath,
        tmpdir(),
        bin,
        cfg,
      ])
        expect(a.stdout).not.toContain(path);
    }
    expect(run("bash", ["-n", scripts.bash]).status).toBe(0);
    if (hasZsh) expect(run("zsh", ["-n", scripts.zsh]).status).toBe(0);
    if (hasFish) expect(run("fish", ["--no-execute", scripts.fish]).status).toBe(0);
  });

  it("refuses a shell it has no script for (exit 2)", () => {
    const r = run("hapops", ["completion", "tcsh"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bash, zsh, fish/);
  });
});

describe("bash", () => {
  it("completes commands and flags, with a space after each", () => {
    expect(bash("hapops dr").reply).toEqual(["drain ", "drift "]);
    expect(bash("hapops drain --dry").reply).toEqual(["--dry-run "]);
    expect(bash("hapops table s").reply).toEqual(["set ", "show "]);
  });

  it("completes live names from HAProxy: backends to go on from (no space), then servers", () => {
    expect(bash("hapops drain be_a").reply).toEqual(["be_app/", "be_api/"]);
    expect(bash("hapops drain be_app/").reply).toEqual([
      "be_app/app1 ",
      "be_app/app2 ",
      "be_app/app3 ",
      "be_app/\\* ",
    ]);
    expect(bash("hapops table show ").reply).toEqual(["be_app "]);
    expect(bash("hapops stat be_ap").reply).toEqual(["be_app ", "be_api "]);
  });

  it("a server name with a colon: bash splits the word at ':', the script joins it back", () => {
    // Bash gives COMP_WORDS ("hapops" "drain" "be_static/static" ":") and replaces only the
    // text after the colon.
    expect(
      bash("hapops drain be_static/static:", ["hapops", "drain", "be_static/static", ":"]).reply,
    ).toEqual(["2 "]);
    expect(
      bash("hapops drain be_static/static:2", ["hapops", "drain", "be_static/static", ":", "2"])
        .reply,
    ).toEqual(["2 "]);
    expect(bash("hapops drain be_static/st").reply).toEqual([
      "be_static/static_1 ",
      "be_static/static:2 ",
    ]);
  });

  it("--flag=value: completes after the '='", () => {
    expect(bash("hapops --target=l", ["hapops", "--target", "=", "l"]).reply).toEqual([
      "lb1 ",
      "lb2 ",
      "lb3 ",
    ]);
  });

  it("targets and groups from the config, or from the -c on the line", () => {
    expect(bash("hapops -t ").reply).toEqual(["lb1 ", "lb2 ", "lb3 "]);
    expect(bash("hapops -t lb1,").reply).toEqual(["lb1,lb2 ", "lb1,lb3 "]);
    expect(bash("hapops servers -g ").reply).toEqual(["edge ", "core "]);
    expect(bash(`hapops -c ${otherCfg} -g `).reply).toEqual(["west "]);
    expect(
      bash(`hapops --config ${otherCfg} -t `, undefined, { env: { HAPOPS_CONFIG: undefined } })
        .reply,
    ).toEqual(["far1 "]);
  });

  it("live names from the target the line names (-s lb1), and none from a dead one", () => {
    expect(bash("hapops -s lb1 drain be_api/").reply).toEqual([
      "be_api/api-1.blue ",
      "be_api/api-2.green ",
      "be_api/\\* ",
    ]);
    expect(bash("hapops -t lb1,lb2 servers be_st").reply).toEqual(["be_static "]);
    const r = bash("hapops -s lb2 drain ");
    expect(r.reply).toEqual(["\\*/"]);
    expect(r.stderr).toBe("");
    expect(r.ms).toBeLessThan(2500);
  });

  it("files from the shell for a file option", () => {
    const { reply } = bash(`hapops -c ${join(dirname(cfg), "hapops.y")}`);
    expect(reply).toEqual([cfg]);
  });

  it("works when sourced from within a function, as bash-completion's loader does", () => {
    const { reply } = bash("hapops dra", undefined, {
      load: '_load() { . "$1"; }; _load "$1"; [[ $(complete -p hapops) == "complete -o nospace -F _hapops hapops" ]] || exit 9',
    });
    expect(reply).toEqual(["drain "]);
  });

  it.runIf(hasTmux)("at a real terminal: Tab completes a server name with a colon", async () => {
    const t = terminal("bash --norc -i");
    try {
      t.type(`PS1='$ '; source ${scripts.bash}; clear`);
      t.key("Enter");
      await t.waitFor(/^\$ *$/m, "the prompt");
      t.type("hapops drain be_static/static:");
      t.key("Tab");
      await t.waitFor(/\$ hapops drain be_static\/static:2\s*$/m, "the completed server name");
      t.key("C-u");
      // A first Tab that inserts nothing rings the bell; the second lists.
      t.type("hapops drain be_app/");
      t.key("Tab", "Tab");
      await t.waitFor(/be_app\/app1\s+be_app\/app2\s+be_app\/app3/, "the servers listed");
    } finally {
      t.close();
    }
  });
});

describe.runIf(hasZsh && hasTmux)("zsh", () => {
  it("installed as _hapops in $fpath (as the .deb does): autoloaded by compinit", async () => {
    const fpath = join(dirname(cfg), "zsh-functions");
    mkdirSync(fpath, { recursive: true });
    writeFileSync(join(fpath, "_hapops"), run("hapops", ["completion", "zsh"]).stdout);
    const t = terminal("zsh -f -i");
    try {
      t.type(`PS1='%% '; fpath=(${fpath} $fpath); autoload -U compinit && compinit -u -D; clear`);
      t.key("Enter");
      await t.waitFor(/^% *$/m, "the prompt");
      t.type("hapops dra");
      t.key("Tab");
      await t.waitFor(/% hapops drain\s*$/m, "the completed command");
      t.type("be_static/static:");
      t.key("Tab");
      await t.waitFor(/% hapops drain be_static\/static:2\s*$/m, "the server name with a colon");
      t.key("C-u");
      t.type("hapops drain --th");
      t.key("Tab");
      await t.waitFor(/% hapops drain --then\s*$/m, "the flag");
      t.key("Tab");
      await t.waitFor(/% hapops drain --then maint\s*$/m, "the flag's value");
    } finally {
      t.close();
    }
  });

  it("sourced after compinit: names, with descriptions", async () => {
    const t = terminal("zsh -f -i");
    try {
      t.type(`PS1='%% '; autoload -U compinit && compinit -u -D; source ${scripts.zsh}; clear`);
      t.key("Enter");
      await t.waitFor(/^% *$/m, "the prompt");
      t.type("hapops -t ");
      // The first Tab inserts what every target shares ("lb"), the second lists them.
      t.key("Tab");
      await t.waitFor(/^% hapops -t lb\s*$/m, "the common prefix");
      t.key("Tab");
      await t.waitFor(/lb1\s+-- .*admin\.sock/, "the targets with their sockets");
      t.key("C-u");
      t.type("hapops drain be_app/");
      t.key("Tab");
      await t.waitFor(/be_app\/app1/, "the servers of be_app");
    } finally {
      t.close();
    }
  });
});

describe.runIf(hasFish)("fish", () => {
  it("completes commands with descriptions, and live names", () => {
    expect(fish("hapops dr")).toEqual([
      "drain\tstop sending new traffic to servers",
      expect.stringMatching(/^drift\t/),
    ]);
    expect(fish("hapops drain be_app/")).toEqual([
      "be_app/*",
      "be_app/app1",
      "be_app/app2",
      "be_app/app3",
    ]);
    expect(fish("hapops drain be_static/static:")).toEqual(["be_static/static:2"]);
    expect(fish("hapops -g ")).toEqual(["core\tlb3", "edge\tlb1, lb2"]);
    expect(fish(`hapops -c ${otherCfg} -t `)).toEqual([expect.stringMatching(/^far1\t/)]);
    expect(fish("hapops rotate-cert ex")).toEqual(["example.com"]);
  });
});

describe("hapops __complete", () => {
  const complete = (args: string[], extra: Record<string, string | undefined> = {}) => {
    const started = Date.now();
    const r = run("hapops", ["__complete", ...args], extra);
    return { ...r, ms: Date.now() - started };
  };

  it("reads map and ACL files and certificates from HAProxy", () => {
    expect(complete(["--", "map", "show", ""]).stdout).toBe(`${lab().mapFile}\n:\n`);
    expect(complete(["--", "acl", "add", ""]).stdout).toBe(`${lab().aclFile}\n:\n`);
    const certs = complete(["--", "rotate-cert", ""]).stdout.split("\n");
    expect(certs).toEqual(
      expect.arrayContaining(["example.com", "*.other.org", join(lab().certDir, "other.org.pem")]),
    );
  });

  it("a socket that accepts and never answers: gives up at 300 ms, still answers, says nothing", () => {
    const quiet = complete(["--", "-s", deadSocket, "drain", ""]);
    expect(quiet.status).toBe(0);
    expect(quiet.stdout).toBe("*/\n:\n");
    expect(quiet.stderr).toBe("");
    // The whole run, node's start included, on a busy machine.
    expect(quiet.ms).toBeLessThan(2000);
    const told = complete(["--debug", "--", "-s", deadSocket, "drain", ""]);
    expect(told.stdout).toBe("*/\n:\n");
    const cut = /servers from \S+dead\.sock: gave up after (\d+) ms \(limit 300 ms\)/.exec(
      told.stderr,
    );
    expect(cut, told.stderr).not.toBeNull();
    expect(Number(cut![1])).toBeGreaterThanOrEqual(295);
    expect(Number(cut![1])).toBeLessThan(1000);
    expect(told.ms).toBeLessThan(2000);
  });

  it("a socket path that does not exist: no names at once, nothing said", () => {
    const r = complete(["--", "-s", join(dirname(cfg), "missing.sock"), "table", "show", ""]);
    expect(r.stdout).toBe(":\n");
    expect(r.stderr).toBe("");
    expect(r.ms).toBeLessThan(2000);
    const told = complete(["--debug", "--", "-s", "lb3", "drain", ""]);
    expect(told.stderr).toMatch(/failed after \d+ ms: no socket at/);
  });

  it("a live socket answers well within the limit", () => {
    const r = complete(["--debug", "--", "drain", "be_api/"]);
    expect(r.stdout).toBe("be_api/api-1.blue\nbe_api/api-2.green\nbe_api/*\n:\n");
    expect(r.stderr).toMatch(/servers from \S+admin\.sock: read in \d+ ms/);
    expect(r.ms).toBeLessThan(2000);
  });

  it("never writes the audit log, never prints an error, whatever the line", () => {
    const lines = [
      ["drain", ""],
      ["-s", "lb2", "maint", "be"],
      ["-c", "/nonexistent.yaml", "-t", ""],
      ["--timeout", "nonsense", "table", "show", ""],
      ["-t", "nope", "-s", "lb1", "stat", ""],
      ["bogus", "--", "'unterminated"],
      ["setup", "--"],
    ];
    for (const words of lines) {
      const r = complete(["--", ...words]);
      expect(r.status, words.join(" ")).toBe(0);
      expect(r.stderr, words.join(" ")).toBe("");
      expect(r.stdout.endsWith("\n")).toBe(true);
    }
    const bad = join(dirname(cfg), "broken.yaml");
    writeFileSync(bad, "socket: [\n");
    const r = complete(["--", "drain", ""], { HAPOPS_CONFIG: bad });
    expect([r.stdout, r.stderr]).toEqual(["*/\n:\n", ""]);
    // audit.reads is on in the config: a read command would have been recorded.
    expect(existsSync(auditFile)).toBe(false);
  });
});
