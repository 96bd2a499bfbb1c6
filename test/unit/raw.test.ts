import { describe, expect, it } from "vitest";
import { parseRaw, rawCommandWords } from "../../src/commands/raw.js";
import { ExitCode, ValidationError } from "../../src/errors.js";
import { planRaw, rawOperation, rawScope } from "../../src/ops/raw.js";

function refusal(text: string): ValidationError {
  try {
    parseRaw(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error(`expected parseRaw to refuse ${JSON.stringify(text)}`);
}

describe("parseRaw: accepted commands and their spec", () => {
  it.each([
    ["show info", "show info", "user", false],
    ["show stat", "show stat", "user", false],
    ["show servers state be_app", "show servers state", "user", false],
    ["show sess", "show sess", "operator", false],
    ["show table be_app", "show table", "operator", false],
    ["show ssl cert /etc/haproxy/site.pem", "show ssl cert", "operator", false],
    ["get map #1 example.com", "get map", "user", false],
    ["help", "help", "user", false],
    ["set server be_app/app1 state drain", "set server", "admin", true],
    ["set weight be_app/app1 50", "set weight", "admin", true],
    ["set table be_app key 10.0.0.1 data.gpc0 1", "set table", "operator", true],
    ["set timeout cli 60", "set timeout cli", "user", false],
    ["clear counters", "clear counters", "operator", true],
    ["clear table be_app", "clear table", "operator", true],
    ["enable dynamic-cookie backend be_app", "enable dynamic-cookie backend", "admin", true],
    ["shutdown sessions server be_app/app1", "shutdown sessions server", "admin", true],
    ["shutdown session 0x55d1", "shutdown session", "admin", true],
    ["abort ssl cert /etc/haproxy/site.pem", "abort ssl cert", "admin", true],
  ] as const)("%s -> %s (%s, mutates=%s)", (text, words, level, mutates) => {
    const cmd = parseRaw(text);
    expect(cmd.name).toBe("raw");
    expect(cmd.spec).toMatchObject({ words, level, mutates, usage: words });
    expect(cmd.mutates).toBe(mutates);
    expect(cmd.line).toBe(text);
    expect(cmd.payload).toBeUndefined();
  });

  it("picks the longest matching entry, word by word", () => {
    expect(parseRaw("set maxconn server be_app/app1 10").spec.words).toBe("set maxconn server");
    expect(parseRaw("set maxconn frontend fe_main 100").spec.words).toBe("set maxconn frontend");
    expect(parseRaw("set maxconn global 1000").spec.words).toBe("set maxconn global");
    expect(parseRaw("show servers conn be_app").spec.words).toBe("show servers conn");
    expect(parseRaw("show ssl crt-list").spec.words).toBe("show ssl crt-list");
  });

  it("matches whole words, not prefixes of words", () => {
    expect(refusal("show sessions").message).toContain('"show sessions"');
    expect(refusal("set maxconn").message).toContain('"set maxconn"');
    expect(refusal("shutdown sessions be_app").message).toContain('"shutdown sessions be_app"');
  });

  it("joins the words with single spaces, collapsing runs and trimming the ends", () => {
    expect(parseRaw("   set   server  be_app/app1   state drain  ").line).toBe(
      "set server be_app/app1 state drain",
    );
    expect(parseRaw(" show info ").line).toBe("show info");
  });

  it("matches the verb in any case and sends the words as typed", () => {
    const cmd = parseRaw("SHOW Sess");
    expect(cmd.spec).toMatchObject({ words: "show sess", level: "operator", mutates: false });
    expect(cmd.line).toBe("SHOW Sess");
    expect(parseRaw("Set Server be_app/App1 state drain")).toMatchObject({
      line: "Set Server be_app/App1 state drain",
      mutates: true,
      spec: { level: "admin" },
    });
  });

  it("keeps a single '<' but refuses '<<' anywhere in a word (payload mode on 3.x)", () => {
    expect(parseRaw("get map #1 a<b").line).toBe("get map #1 a<b");
    expect(refusal("get map #1 a<<b").message).toMatch(/^payload commands \(<<\) are refused/);
  });

  it("lists its table's words, each accepted on its own", () => {
    const words = rawCommandWords();
    expect(words).toContain("show info");
    expect(words).toContain("set maxconn frontend");
    for (const w of words) expect(parseRaw(w).spec.words).toBe(w);
  });
});

describe("parseRaw: refusals", () => {
  it("refuses with a ValidationError that exits 2", () => {
    const e = refusal("show info; show stat");
    expect(e.code).toBe("INVALID_INPUT");
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.exitCode).toBe(2);
  });

  it("refuses ';', which would start a second command", () => {
    expect(refusal("show info;show sess").message).toBe(
      "raw takes one command: ';' would start a second one",
    );
    expect(refusal(";").message).toContain("';'");
  });

  it.each(["show info\nshow sess", "show info\n", "show info\rshow sess", "show info\r\n"])(
    "refuses a newline or carriage return in %j",
    (text) => {
      expect(refusal(text).message).toBe(
        "raw takes one command on one line: a newline would start a second one",
      );
    },
  );

  it.each([
    ["show\tinfo", "U+0009"],
    ["show info\x00", "U+0000"],
    ["show info\x1b[0m", "U+001B"],
    ["show\x0binfo", "U+000B"],
    ["show info\x7f", "U+007F"],
  ])("refuses control characters: %j names %s", (text, cp) => {
    expect(refusal(text).message).toBe(`raw command contains control character ${cp}`);
  });

  it.each([
    ["show\u00a0info", "\u00a0"],
    ["get map #1 café", "é"],
    ["show info \u2028", "\u2028"],
    ["show info 🙂", "🙂"],
  ])("refuses non-ASCII characters: %j", (text, ch) => {
    expect(refusal(text).message).toBe(`raw command contains non-ASCII character '${ch}'`);
  });

  it("refuses a backslash and names the word that holds it", () => {
    expect(refusal("get map #1 a\\ b").message).toBe(
      'raw command word "a\\\\" contains a backslash',
    );
    expect(refusal("show\\ info").message).toContain("contains a backslash");
  });

  it.each(["", " ", "    "])("refuses an empty command %j", (text) => {
    expect(refusal(text).message).toBe('raw needs a command, e.g. hapops raw "show pools"');
  });

  it.each(["add map #1 <<", "set map #1 k v << ", "add map #1 << extra", "add map #1 x<<"])(
    "refuses a payload marker in %j",
    (text) => {
      expect(refusal(text).message).toMatch(/^payload commands \(<<\) are refused in raw/);
    },
  );

  it("refuses a customised payload pattern such as 'add map #1 <<EOF' (HAProxy 3.x)", () => {
    expect(refusal("add map #1 <<EOF").message).toMatch(
      /^payload commands \(<<\) are refused in raw/,
    );
  });

  it.each(["@1 show info", "@!123 show info", "@@1 show info", "@master show info", "@"])(
    "refuses the master CLI prefix in %j",
    (text) => {
      expect(refusal(text).message).toBe(
        "master CLI prefixes (@, @!, @@) are refused: hapops talks to one process's runtime API",
      );
    },
  );

  it.each([
    ["expert-mode on", "expert-mode", "crash"],
    ["experimental-mode on", "experimental-mode", "unfinished"],
    ["debug dev panic", "debug", "crash or stall"],
    ["prompt", "prompt", "changes the session"],
    ["user", "user", "session's level"],
    ["operator", "operator", "session's level"],
    ["quit", "quit", "closes the session itself"],
    ["QUIT", "quit", "closes the session itself"],
    ["Expert-Mode on", "expert-mode", "crash"],
  ])("refuses %j by name", (text, word, reason) => {
    const m = refusal(text).message;
    expect(m).toMatch(new RegExp(`^raw refuses "${word}": `));
    expect(m).toContain(reason);
  });

  it("refuses an unknown verb and quotes its first three words", () => {
    expect(refusal("frobnicate the server now please").message).toBe(
      'raw does not know "frobnicate the server": only runtime commands from its table are sent (see hapops raw --help)',
    );
    expect(refusal("show").message).toContain('"show"');
    expect(refusal("set ssl cert /x.pem").message).toContain('"set ssl cert"');
    expect(refusal("commit ssl cert /x.pem").message).toContain('"commit ssl cert"');
    expect(refusal("prepare map #1").message).toContain('"prepare map #1"');
  });

  it("checks separators before anything else", () => {
    expect(refusal("@1 show info; quit").message).toContain("';'");
    expect(refusal("debug\nquit").message).toContain("newline");
  });
});

describe("parseRaw: what a change touches, named from the raw table", () => {
  it.each([
    ["set server be_app/app1 state drain", { servers: ["be_app/app1"] }],
    ["set weight be_app/app1 50", { servers: ["be_app/app1"] }],
    ["set maxconn server be_app/app1 10", { servers: ["be_app/app1"] }],
    ["enable server be_api/x", { servers: ["be_api/x"] }],
    ["disable server be_api/x", { servers: ["be_api/x"] }],
    ["enable health be_app/app2", { servers: ["be_app/app2"] }],
    ["disable health be_app/app2", { servers: ["be_app/app2"] }],
    ["enable agent be_app/app2", { servers: ["be_app/app2"] }],
    ["disable agent be_app/app2", { servers: ["be_app/app2"] }],
    ["shutdown sessions server be_app/app1", { servers: ["be_app/app1"] }],
    ["enable dynamic-cookie backend be_app", { servers: ["be_app/*"] }],
    ["disable dynamic-cookie backend be_app", { servers: ["be_app/*"] }],
    ["set table be_app key 10.0.0.1 data.gpc0 1", { tables: ["be_app"] }],
    ["clear table be_names", { tables: ["be_names"] }],
    ["clear table be_app key 10.0.0.1", { tables: ["be_app"] }],
    ["set map /etc/haproxy/hosts.map a b", { maps: ["/etc/haproxy/hosts.map"] }],
    ["add map /etc/haproxy/hosts.map a b", { maps: ["/etc/haproxy/hosts.map"] }],
    ["add map @3 /etc/haproxy/hosts.map a b", { maps: ["/etc/haproxy/hosts.map"] }],
    ["add acl #2 10.0.0.1", { maps: ["#2"] }],
    ["del map /etc/haproxy/hosts.map a", { maps: ["/etc/haproxy/hosts.map"] }],
    ["del acl /etc/haproxy/blocked.acl 10.0.0.1", { maps: ["/etc/haproxy/blocked.acl"] }],
    ["clear map @1 /etc/haproxy/hosts.map", { maps: ["/etc/haproxy/hosts.map"] }],
    ["clear acl /etc/haproxy/blocked.acl", { maps: ["/etc/haproxy/blocked.acl"] }],
    ["abort ssl cert /etc/haproxy/site.pem", { certs: ["/etc/haproxy/site.pem"] }],
    // Argument words keep their case: proxy names are case-sensitive.
    ["SET SERVER Be_App/App1 state drain", { servers: ["Be_App/App1"] }],
  ])("%s touches %j", (text, touches) => {
    expect(parseRaw(text).touches).toEqual(touches);
  });

  it.each([
    ["set maxconn frontend fe_main 100", /changes a frontend/],
    ["enable frontend fe_main", /changes a frontend/],
    ["disable frontend fe_main", /changes a frontend/],
    ["shutdown frontend fe_main", /changes a frontend/],
    ["set maxconn global 1000", /changes the whole process/],
    ["set rate-limit connections global 100", /changes the whole process/],
    ["clear counters", /resets the counters of every proxy and server/],
    ["clear counters all", /resets every counter and maximum/],
    ["shutdown session 0x55d1", /names a stream by its id/],
    // What the table expects is missing or malformed: nothing can be named.
    ["set server be_app state drain", /"set server" names no server as backend\/server/],
    ["set server a/b/c state drain", /names no server/],
    ["set table", /"set table" names no stick table/],
    ["add map @3", /"add map" names no map or ACL/],
    ["enable dynamic-cookie backend be_app/app1", /names no backend/],
  ])("%s cannot be named (%s)", (text, why) => {
    const t = parseRaw(text).touches;
    expect(Object.keys(t)).toEqual(["unnamed"]);
    expect(t.unnamed).toMatch(why);
  });

  it("a read touches nothing, and every change in the table names something or says why not", () => {
    expect(parseRaw("show table be_app").touches).toEqual({});
    expect(parseRaw("set timeout cli 60").touches).toEqual({});
    for (const w of rawCommandWords()) {
      const cmd = parseRaw(w);
      // With no arguments, a change can name nothing: it must say so.
      if (cmd.mutates) expect(cmd.touches.unnamed, w).toMatch(/\S/);
      else expect(cmd.touches, w).toEqual({});
    }
  });
});

describe("planRaw: the plan of one raw line", () => {
  const target = "/run/haproxy/admin.sock";

  it("a change: the line's level and effect, its scope, one step, nothing said before the answer", () => {
    const plan = planRaw(parseRaw("disable server be_api/x"), target);
    expect(plan).toMatchObject({
      op: "raw",
      level: "admin",
      mutates: true,
      scope: { servers: ["be_api/x"] },
      guards: [],
      describe: [],
      report: { command: "disable server be_api/x", level: "admin", mutates: true },
    });
    const [step] = plan.steps;
    expect(step).toMatchObject({ kind: "send", op: "raw" });
    expect(step?.kind === "send" && step.commands.map((c) => c.line)).toEqual([
      "disable server be_api/x",
    ]);
    expect(planRaw(parseRaw("disable server be_api/x"), target, true).describe).toEqual([
      "raw: level admin, changes state",
    ]);
  });

  it("one connection, at the line's own level: a read never goes out at admin level", () => {
    const read = parseRaw("show sess");
    expect(planRaw(read, target)).toMatchObject({ level: "operator", mutates: false, scope: {} });
    expect(planRaw(read, target, true).describe).toEqual(["raw: level operator, read-only"]);
    expect(rawOperation(read, target).oneSession).toBe("operator");
    expect(rawOperation(parseRaw("show info"), target).oneSession).toBe("user");
    expect(rawOperation(parseRaw("set table t key 1 data.gpc0 1"), target).oneSession).toBe(
      "operator",
    );
    expect(rawOperation(parseRaw("clear counters"), target).oneSession).toBe("operator");
    expect(rawOperation(parseRaw("set weight b/s 1"), target).oneSession).toBe("admin");
  });

  it("a map or ACL line keeps the levels per version: checked at user, never lowered below admin (3.4)", () => {
    const get = parseRaw("get map #1 example.com");
    expect(get.spec.levels).toEqual([["3.4", "admin"]]);
    expect(planRaw(get, target)).toMatchObject({ level: "user" });
    expect(rawOperation(get, target).oneSession).toBe("admin");
    expect(rawOperation(parseRaw("add acl #0 192.0.2.7"), target).oneSession).toBe("admin");
  });

  it("scope: certificates by file, and the reason when the line cannot be named", () => {
    expect(rawScope(parseRaw("abort ssl cert /etc/haproxy/site.pem"))).toEqual({
      certs: [{ file: "/etc/haproxy/site.pem", names: [] }],
    });
    expect(rawScope(parseRaw("shutdown session 0x1"))).toEqual({
      unnamed:
        '"shutdown session" names a stream by its id, not the server or frontend it belongs to',
    });
  });

  it("verification prints HAProxy's answer and says a raw change is not verified", async () => {
    const op = rawOperation(parseRaw("set maxconn server be_app/app1 42"), target);
    const plan = op.plan(undefined);
    const step = plan.steps[0];
    if (step?.kind !== "send") throw new Error("expected a send step");
    step.onAnswers?.([[]]);
    const v = await op.verify({} as never, plan, ["set maxconn server be_app/app1 42"]);
    expect(v).toMatchObject({ mismatches: [], output: [], verified: false, json: { answer: [] } });
    expect(v.summary.join("\n")).toMatch(/raw changes are not verified/);

    const read = rawOperation(parseRaw("show info"), target);
    const readPlan = read.plan(undefined);
    const readStep = readPlan.steps[0];
    if (readStep?.kind !== "send") throw new Error("expected a send step");
    readStep.onAnswers?.([["Name: HAProxy", "Version: 2.6.12"]]);
    const rv = await read.verify({} as never, readPlan, ["show info"]);
    expect(rv.output).toEqual(["Name: HAProxy", "Version: 2.6.12"]);
    expect(rv.summary).toEqual([]);
  });
});

describe("clear counters", () => {
  it("needs operator, and `clear counters all` needs admin (the longer words win)", () => {
    expect(parseRaw("clear counters").spec.level).toBe("operator");
    expect(parseRaw("clear counters all").spec.level).toBe("admin");
  });
});
