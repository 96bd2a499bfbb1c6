import { describe, expect, it } from "vitest";
import { parseRaw, rawCommandWords } from "../../src/commands/raw.js";
import { ExitCode, ValidationError } from "../../src/errors.js";

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
    expect(cmd.spec).toEqual({ words, level, mutates, usage: words });
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
