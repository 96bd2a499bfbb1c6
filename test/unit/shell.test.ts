import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import {
  complete as completeWith,
  NameCache,
  shellCommands,
  type LiveNames,
  splitWords,
} from "../../src/cli/commands/shell.js";

/** The shell's completer with the program's own commands, as `hapops shell` gives it. */
const COMMANDS = shellCommands(buildProgram().commands);
const complete = (line: string, names: LiveNames) => completeWith(line, names, COMMANDS);

describe("splitWords", () => {
  it("splits on runs of spaces and tabs and ignores the ends", () => {
    expect(splitWords("drain be_app/app1")).toEqual(["drain", "be_app/app1"]);
    expect(splitWords("  table   show\tbe_app \t ")).toEqual(["table", "show", "be_app"]);
  });

  it("returns no words for an empty or blank line", () => {
    expect(splitWords("")).toEqual([]);
    expect(splitWords(" \t  ")).toEqual([]);
  });

  it("groups single-quoted text literally, backslashes and double quotes included", () => {
    expect(splitWords("raw 'show servers state'")).toEqual(["raw", "show servers state"]);
    expect(splitWords(`echo 'a\\b "c"'`)).toEqual(["echo", 'a\\b "c"']);
  });

  it('groups double-quoted text, with \\" for a quote inside', () => {
    expect(splitWords('raw "show table be_app"')).toEqual(["raw", "show table be_app"]);
    expect(splitWords('note "say \\"hi\\" twice"')).toEqual(["note", 'say "hi" twice']);
    expect(splitWords(`say "it's"`)).toEqual(["say", "it's"]);
  });

  it("reads a backslash-escaped space as part of the word", () => {
    expect(splitWords("map show /tmp/my\\ hosts.map")).toEqual([
      "map",
      "show",
      "/tmp/my hosts.map",
    ]);
    expect(splitWords("a\\\\b")).toEqual(["a\\b"]);
  });

  it("keeps a lone trailing backslash", () => {
    expect(splitWords("a\\")).toEqual(["a\\"]);
  });

  it("keeps an empty quoted word as an empty word", () => {
    expect(splitWords("map set #1 key ''")).toEqual(["map", "set", "#1", "key", ""]);
    expect(splitWords('a "" b')).toEqual(["a", "", "b"]);
    expect(splitWords("''")).toEqual([""]);
  });

  it("joins adjacent quoted and unquoted parts into one word", () => {
    expect(splitWords('a"b c"d')).toEqual(["ab cd"]);
    expect(splitWords(`x'1 2'"3 4"y z`)).toEqual(["x1 23 4y", "z"]);
  });

  it.each([`raw 'show info`, 'raw "show info', `a "b 'c" 'd`, 'a "b\\"'])(
    "throws on the unterminated quote in %j",
    (line) => {
      expect(() => splitWords(line)).toThrow(/^unterminated ["'] quote$/);
    },
  );

  it("names the quote that was left open", () => {
    expect(() => splitWords("'abc")).toThrow("unterminated ' quote");
    expect(() => splitWords('"abc')).toThrow('unterminated " quote');
  });
});

const NAMES: LiveNames = {
  servers: ["be_app/app1", "be_app/app2", "be_api/api1"],
  backends: ["be_app", "be_api"],
  tables: ["be_app", "st_login"],
};

describe("complete", () => {
  it("completes command words first", () => {
    expect(complete("ser", NAMES)).toEqual([["servers", "server"], "ser"]);
  });

  it("completes servers and whole backends after a server operation", () => {
    expect(complete("drain be_app/", NAMES)).toEqual([
      ["be_app/app1", "be_app/app2", "be_app/*"],
      "be_app/",
    ]);
  });

  it("completes backends then servers after stat and servers", () => {
    expect(complete("stat be_ap", NAMES)[0]).toEqual([
      "be_app",
      "be_api",
      "be_app/app1",
      "be_app/app2",
      "be_api/api1",
    ]);
  });

  it("completes table subcommands, then table names", () => {
    expect(complete("table s", NAMES)[0]).toEqual(["set", "show"]);
    expect(complete("table show st", NAMES)[0]).toEqual(["st_login"]);
  });

  it("offers every command of the program but the host ones, and their subcommands", () => {
    const all = complete("", NAMES)[0];
    for (const c of ["server", "health", "sessions", "reload", "drift", "state", "errors"])
      expect(all).toContain(c);
    for (const c of ["setup", "sandbox", "shell", "completion"]) expect(all).not.toContain(c);
    expect(complete("sessions ", NAMES)[0]).toEqual(["kill", ...NAMES.backends, ...NAMES.servers]);
    expect(complete("health disable be_api/", NAMES)[0]).toEqual(["be_api/api1", "be_api/*"]);
    expect(complete("server del be_app/app", NAMES)[0]).toEqual(["be_app/app1", "be_app/app2"]);
  });
});

/** A NameCache on a hand-driven clock, whose reads succeed or fail as the test says. */
function cacheWith(results: (LiveNames | Error)[]) {
  let now = 0;
  const notices: string[] = [];
  let reads = 0;
  const cache = new NameCache({
    read: () => {
      const r = results[reads++];
      if (!r) throw new Error("no more reads expected");
      return r instanceof Error ? Promise.reject(r) : Promise.resolve(r);
    },
    notice: (t) => notices.push(t),
    maxAgeMs: 5_000,
    now: () => now,
  });
  return {
    cache,
    notices,
    reads: () => reads,
    advance: (ms: number) => (now += ms),
  };
}

describe("NameCache", () => {
  it("reads names on demand, and again only once they are old or a command ran", async () => {
    const t = cacheWith([NAMES, { ...NAMES, servers: [] }]);
    expect(t.cache.stale()).toBe(true);
    await t.cache.refresh();
    expect(t.cache.names).toEqual(NAMES);
    t.advance(4_999);
    expect(t.cache.stale()).toBe(false);
    t.advance(1);
    expect(t.cache.stale()).toBe(true);
    t.advance(-1);
    t.cache.invalidate();
    expect(t.cache.stale()).toBe(true);
    await t.cache.refresh();
    expect(t.cache.names.servers).toEqual([]);
    expect(t.reads()).toBe(2);
    expect(t.notices).toEqual([]);
  });

  it("runs one read at a time", async () => {
    const t = cacheWith([NAMES]);
    const a = t.cache.refresh();
    const b = t.cache.refresh();
    await Promise.all([a, b, t.cache.settled()]);
    expect(t.reads()).toBe(1);
  });

  it("says once that HAProxy is gone, keeps the names it had, and says once that it is back", async () => {
    const gone = new Error("connection to /run/haproxy/admin.sock failed: connect ENOENT");
    const t = cacheWith([NAMES, gone, gone, gone, NAMES, NAMES]);
    await t.cache.refresh();
    for (let i = 0; i < 3; i++) {
      t.cache.invalidate();
      await t.cache.refresh();
      expect(t.cache.names).toEqual(NAMES);
    }
    expect(t.notices).toEqual([
      "hapops: cannot read names for completion: connection to /run/haproxy/admin.sock failed: connect ENOENT; Tab completes from what it has and tries again later\n",
    ]);
    t.cache.invalidate();
    await t.cache.refresh();
    t.cache.invalidate();
    await t.cache.refresh();
    expect(t.notices.slice(1)).toEqual(["hapops: HAProxy answers again\n"]);
  });

  it("after a failed read, waits for the names' age before trying again", async () => {
    const t = cacheWith([new Error("stuck")]);
    await t.cache.refresh();
    expect(t.cache.stale()).toBe(false);
    t.advance(5_000);
    expect(t.cache.stale()).toBe(true);
    expect(t.notices).toHaveLength(1);
  });

  it("says at once when HAProxy cannot be reached on the first read", async () => {
    const t = cacheWith([new Error("no socket at /x.sock")]);
    await t.cache.refresh();
    expect(t.cache.names).toEqual({ servers: [], backends: [], tables: [] });
    expect(t.notices[0]).toMatch(
      /^hapops: cannot read names for completion: no socket at \/x\.sock;/,
    );
  });
});
