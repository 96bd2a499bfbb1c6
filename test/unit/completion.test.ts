import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  analyse,
  complete,
  formatCompletion,
  kindOf,
  unquote,
  type Names,
} from "../../src/cli/completion/candidates.js";
import { readCompletionNames } from "../../src/engine/completion-names.js";
import { completionScript } from "../../src/cli/completion/scripts.js";
import { buildProgram } from "../../src/cli/main.js";

const HOME = "/home/op";

const NAMES: Names = {
  servers: ["be_app/app1", "be_app/app2", "be_api/api-1.blue", "be_static/static:2"],
  backends: ["be_app", "be_api", "be_static"],
  tables: ["be_app", "st_users"],
  maps: ["/etc/haproxy/hosts.map"],
  acls: ["/etc/haproxy/blocked.acl"],
  certFiles: ["/etc/haproxy/certs/example.com.pem"],
  certDomains: ["example.com", "www.example.com"],
  targets: [
    { name: "lb1", socket: "tls://10.0.0.1:9999" },
    { name: "lb2", socket: "tls://10.0.0.2:9999" },
    { name: "lb3", socket: "/run/haproxy/admin.sock" },
  ],
  groups: [
    { name: "edge", members: ["lb1", "lb2"] },
    { name: "core", members: ["lb3"] },
  ],
};

/** The candidates' words for `hapops <words...>`, the last word being completed. */
function words(line: readonly string[], names: Names = NAMES): string[] {
  return complete(analyse(buildProgram(), line, HOME), names).candidates.map((c) => c.word);
}

function directive(line: readonly string[]): string | undefined {
  return complete(analyse(buildProgram(), line, HOME), NAMES).directive;
}

describe("completion: commands, from the program itself", () => {
  it("offers every visible command the program registers, and help, never __complete", () => {
    const program = buildProgram();
    const registered = program.commands
      .filter((c) => !(c as unknown as { _hidden: boolean })._hidden)
      .map((c) => c.name());
    expect(registered).toContain("completion");
    expect(words([""])).toEqual([...registered, "help"]);
    expect(words([""])).not.toContain("__complete");
  });

  it("completes a command added to the program with no change to completion", () => {
    const program = buildProgram();
    program.command("widget").argument("<selector>", "servers");
    const analysis = analyse(program, ["wid"]);
    expect(complete(analysis).candidates.map((c) => c.word)).toEqual(["widget"]);
    expect(complete(analyse(program, ["widget", "be_app/"]), NAMES).candidates).toEqual([
      { word: "be_app/app1" },
      { word: "be_app/app2" },
      { word: "be_app/*" },
    ]);
  });

  it("filters by what is typed; aliases only when no name fits", () => {
    expect(words(["dr"])).toEqual(["drain", "drift"]);
    expect(words(["d"])).not.toContain("disable");
    expect(words(["dis"])).toEqual(["disable"]);
    expect(words(["en"])).toEqual(["enable"]);
  });

  it("describes commands in a few words", () => {
    const drain = complete(analyse(buildProgram(), ["drai"])).candidates[0];
    expect(drain).toEqual({ word: "drain", description: "stop sending new traffic to servers" });
  });

  it("offers subcommands, and commands after help", () => {
    expect(words(["table", ""])).toEqual(["set", "clear", "show", "help"]);
    expect(words(["map", "s"])).toEqual(["show", "set"]);
    expect(words(["audit", ""])).toEqual(["tail", "verify", "help"]);
    expect(words(["help", "dr"])).toEqual(["drain", "drift"]);
  });

  it("offers a command's subcommands and its argument side by side (sessions kill, sessions <sel>)", () => {
    expect(words(["sessions", ""])).toEqual(["kill", "be_app/", "be_api/", "be_static/", "*/"]);
    expect(words(["sessions", "kill", "be_api/"])).toEqual(["be_api/api-1.blue", "be_api/*"]);
  });

  it("offers nothing after a word that is not a command", () => {
    expect(words(["bogus", ""])).toEqual([]);
    expect(words(["info", "extra", ""])).toEqual([]);
  });
});

describe("completion: flags", () => {
  it("offers the command's flags and the program's, long form, --version only at the top", () => {
    const flags = words(["drain", "--"]);
    expect(flags).toEqual(
      expect.arrayContaining(["--dry-run", "--wait", "--then", "--socket", "--target", "--help"]),
    );
    expect(flags).not.toContain("--version");
    expect(flags.filter((f) => f === "--help")).toHaveLength(1);
    expect(words(["--"])).toContain("--version");
    expect(words(["-"]).every((f) => f.startsWith("--"))).toBe(true);
  });

  it("gives a short flag as typed, and leaves out flags already on the line", () => {
    expect(words(["-t"])).toEqual(["-t"]);
    expect(words(["drain", "--dry-run", "--d"])).toEqual([]);
    expect(words(["rotate-cert", "x", "--persist", "--no-p"])).toEqual([]);
  });

  it("reads flags typed before the command, values and all (hapops --reason 'x y' drain ...)", () => {
    expect(words(["--dry-run", "drain", "be_app/"])).toEqual([
      "be_app/app1",
      "be_app/app2",
      "be_app/*",
    ]);
    expect(words(["--reason", "kernel update", "drain", "be_ap"])).toEqual(["be_app/", "be_api/"]);
    expect(words(["-s", "/run/x.sock", "--timeout", "5s", "drain", "be_s"])).toEqual([
      "be_static/",
    ]);
  });

  it("treats every word after -- as an argument", () => {
    expect(words(["drain", "--", "-"])).toEqual([]);
    expect(words(["drain", "--", ""])).toEqual(["be_app/", "be_api/", "be_static/", "*/"]);
  });
});

describe("completion: names", () => {
  it("a selector: backends to go on from, then a backend's servers and backend/*", () => {
    expect(words(["drain", ""])).toEqual(["be_app/", "be_api/", "be_static/", "*/"]);
    expect(words(["maint", "be_app/"])).toEqual(["be_app/app1", "be_app/app2", "be_app/*"]);
    expect(words(["weight", "be_app/app"])).toEqual(["be_app/app1", "be_app/app2"]);
    expect(words(["ready", "be_static/static:"])).toEqual(["be_static/static:2"]);
    expect(words(["drain", "nope/"])).toEqual([]);
  });

  it("a selector by server name in every backend: */server and */*", () => {
    expect(words(["drain", "*/"])).toEqual([
      "*/app1",
      "*/app2",
      "*/api-1.blue",
      "*/static:2",
      "*/*",
    ]);
  });

  it("quoted as typed: 'be_app/ completes like be_app/", () => {
    expect(words(["drain", "'be_app/"])).toEqual(["be_app/app1", "be_app/app2", "be_app/*"]);
  });

  it("stat: a backend, or backend/server once a / is typed", () => {
    expect(words(["stat", ""])).toEqual(["be_app", "be_api", "be_static"]);
    expect(words(["stat", "be_api/"])).toEqual(["be_api/api-1.blue"]);
    expect(words(["servers", "be_a"])).toEqual(["be_app", "be_api"]);
  });

  it("tables, map and ACL files, certificates (domains and files)", () => {
    expect(words(["table", "show", ""])).toEqual(["be_app", "st_users"]);
    expect(words(["table", "set", "st_users", ""])).toEqual([]);
    expect(words(["map", "get", ""])).toEqual(["/etc/haproxy/hosts.map"]);
    expect(words(["acl", "del", ""])).toEqual(["/etc/haproxy/blocked.acl"]);
    expect(words(["rotate-cert", ""])).toEqual([
      "example.com",
      "www.example.com",
      "/etc/haproxy/certs/example.com.pem",
    ]);
  });

  it("targets and groups from the config, comma lists, with what each is", () => {
    const t = complete(analyse(buildProgram(), ["-t", ""]), NAMES).candidates;
    expect(t).toEqual([
      { word: "lb1", description: "tls://10.0.0.1:9999" },
      { word: "lb2", description: "tls://10.0.0.2:9999" },
      { word: "lb3", description: "/run/haproxy/admin.sock" },
    ]);
    expect(words(["--target", "lb1,"])).toEqual(["lb1,lb2", "lb1,lb3"]);
    expect(words(["-g", ""])).toEqual(["edge", "core"]);
    expect(words(["drain", "x", "--group", "e"])).toEqual(["edge"]);
    // setup's -g is a unix group, not the program's fleet group.
    expect(words(["setup", "-g", ""])).toEqual([]);
  });

  it("-s: a configured target, or a socket path (files from the shell)", () => {
    expect(words(["-s", "lb"])).toEqual(["lb1", "lb2", "lb3"]);
    expect(directive(["-s", ""])).toBe("files");
    expect(words(["--socket=lb"])).toEqual(["--socket=lb1", "--socket=lb2", "--socket=lb3"]);
  });

  it("words an option or argument takes", () => {
    expect(words(["drain", "x", "--then", ""])).toEqual(["maint"]);
    expect(words(["--on-error", ""])).toEqual(["stop", "continue"]);
    expect(words(["completion", ""])).toEqual(["bash", "zsh", "fish"]);
    expect(words(["sandbox", "st"])).toEqual(["start", "stop", "status"]);
    expect(words(["health", ""])).toEqual(["enable", "disable"]);
    expect(words(["health", "disable", "be_api/"])).toEqual(["be_api/api-1.blue", "be_api/*"]);
  });

  it("files and directories are the shell's to list", () => {
    expect(directive(["-c", ""])).toBe("files");
    expect(directive(["rotate-cert", "x", "--pem", ""])).toBe("files");
    expect(directive(["rotate-cert", "x", "--certbot-dir", ""])).toBe("dirs");
    expect(directive(["audit", "verify", ""])).toBe("files");
    expect(directive(["drain", ""])).toBeUndefined();
  });

  it("reads names only for a word that takes them", () => {
    const p = buildProgram();
    expect(kindOf(analyse(p, ["drain", ""]).slot)).toBe("selector");
    expect(kindOf(analyse(p, ["sessions", ""]).slot)).toBe("selector");
    expect(kindOf(analyse(p, ["-t", ""]).slot)).toBe("targets");
    expect(kindOf(analyse(p, ["drain", "--"]).slot)).toBeUndefined();
    expect(kindOf(analyse(p, [""]).slot)).toBeUndefined();
    expect(kindOf(analyse(p, ["drain", "x", "--then", ""]).slot)).toBeUndefined();
  });

  it("offers no names when none could be read (dead socket): what needs no socket remains", () => {
    expect(words(["drain", ""], {})).toEqual(["*/"]);
    expect(words(["table", "show", ""], {})).toEqual([]);
  });
});

describe("completion: the line's own config and socket", () => {
  it("collects the program's options from the line, wherever they are", () => {
    const a = analyse(
      buildProgram(),
      ["-c", "~/ops.yaml", "drain", "--socket", "lb1", "-t", "lb2", "x"],
      HOME,
    );
    expect(a.globals).toEqual({ config: "/home/op/ops.yaml", socket: "lb1", target: "lb2" });
    expect(analyse(buildProgram(), ["--config=/etc/x.yaml", "--all", ""]).globals).toEqual({
      config: "/etc/x.yaml",
      all: true,
    });
    expect(analyse(buildProgram(), ["setup", "-g", "ops", ""]).globals).toEqual({});
  });
});

describe("unquote", () => {
  it("removes the shell's quotes, leniently for a half-typed word", () => {
    expect(unquote("'be_app/")).toBe("be_app/");
    expect(unquote('"kernel update"')).toBe("kernel update");
    expect(unquote("a\\ b")).toBe("a b");
    expect(unquote('"a \\"b\\""')).toBe('a "b"');
    expect(unquote("be:web")).toBe("be:web");
  });

  it("expands an unquoted ~/ to the home directory", () => {
    expect(unquote("~/ops.yaml", HOME)).toBe("/home/op/ops.yaml");
    expect(unquote("~", HOME)).toBe("/home/op");
    expect(unquote("'~/ops.yaml'", HOME)).toBe("~/ops.yaml");
  });
});

describe("formatCompletion", () => {
  it("prints a candidate per line, tab and description, then the directive", () => {
    expect(
      formatCompletion({
        candidates: [{ word: "drain", description: "stop" }, { word: "be_app/" }],
        directive: undefined,
      }),
    ).toBe("drain\tstop\nbe_app/\n:\n");
    expect(formatCompletion({ candidates: [], directive: "files" })).toBe(":files\n");
    expect(
      formatCompletion({ candidates: [{ word: "a\nb" }, { word: "c" }], directive: "dirs" }),
    ).toBe("c\n:dirs\n");
  });
});

describe("completion scripts", () => {
  it("are static text with no path of this machine, and call hapops __complete", () => {
    for (const shell of ["bash", "zsh", "fish"] as const) {
      const text = completionScript(shell);
      expect(text).toContain("__complete --");
      expect(text).not.toContain("$\\{");
      expect(text).not.toContain(process.cwd());
      expect(text).not.toContain(process.execPath);
    }
    expect(completionScript("zsh").startsWith("#compdef hapops\n")).toBe(true);
    expect(completionScript("bash")).toContain("complete -o nospace -F _hapops hapops");
    expect(completionScript("fish")).toContain("complete -c hapops -f");
  });
});

describe("readCompletionNames", () => {
  let dir: string;
  let dead: Server;
  const held: Socket[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-complete-"));
    // Accepts and never answers: a hung HAProxy.
    dead = createServer((s) => void held.push(s));
    await new Promise<void>((r) => dead.listen(join(dir, "dead.sock"), r));
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => dead.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  const opts = (env: NodeJS.ProcessEnv, log?: (t: string) => void) => ({
    env,
    euid: 1000,
    underSudo: () => false,
    ...(log ? { log } : {}),
  });

  it("reads targets and groups from the config the line names", async () => {
    const cfg = join(dir, "hapops.yaml");
    writeFileSync(
      cfg,
      "targets:\n  lb1: {socket: /run/a.sock}\n  lb2: {socket: /run/b.sock}\ngroups:\n  edge: [lb1, lb2]\n",
    );
    expect(await readCompletionNames("targets", { config: cfg }, opts({}))).toEqual({
      targets: [
        { name: "lb1", socket: "/run/a.sock" },
        { name: "lb2", socket: "/run/b.sock" },
      ],
      groups: [{ name: "edge", members: ["lb1", "lb2"] }],
    });
    expect(await readCompletionNames("groups", {}, opts({ HAPOPS_CONFIG: cfg }))).toMatchObject({
      groups: [{ name: "edge" }],
    });
  });

  it("never throws: a broken config or a missing socket give no names", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "nonsense: [\n");
    const log: string[] = [];
    expect(
      await readCompletionNames(
        "groups",
        { config: bad },
        opts({}, (t) => log.push(t)),
      ),
    ).toEqual({});
    expect(log.join("")).toMatch(/failed after \d+ ms: config .* is not valid YAML/);
    expect(
      await readCompletionNames("selector", { socket: join(dir, "none.sock") }, opts({})),
    ).toEqual({});
    expect(await readCompletionNames("file", {}, opts({}))).toEqual({});
  });

  it("gives up on a socket that never answers at the limit", async () => {
    const log: string[] = [];
    const started = Date.now();
    const names = await readCompletionNames(
      "selector",
      { socket: join(dir, "dead.sock") },
      { ...opts({}, (t) => log.push(t)), budgetMs: 150 },
    );
    const took = Date.now() - started;
    expect(names).toEqual({});
    expect(took).toBeGreaterThanOrEqual(145);
    expect(took).toBeLessThan(1500);
    expect(log.join("")).toMatch(/gave up after \d+ ms \(limit 150 ms\)/);
  });
});
