import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readMapFile } from "../../src/cli/commands/map.js";
import { chunkEntries, diffMaps } from "../../src/ops/map.js";
import {
  addMapVersion,
  delMapEntry,
  getMap,
  setMapEntry,
  commitMap,
  encodeCommand,
  prepareMap,
  validateMapRef,
  validateMapWord,
} from "../../src/commands/builders.js";
import { GRAMMAR } from "../../src/commands/grammar.js";
import { ExitCode, ValidationError } from "../../src/errors.js";
import { parseMapEntry, parseMapList, type MapEntry } from "../../src/parse/map.js";

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error("expected a ValidationError to be thrown");
}

const HEADER = "# id (file) description";
const MAP_LINE =
  "2 (/tmp/x/hosts.map) pattern loaded from file '/tmp/x/hosts.map' used by map at file '/tmp/x/haproxy.cfg' line 18. curr_ver=0 next_ver=0 entry_cnt=2";
const ACL_FILE_LINE =
  "0 (/tmp/x/blocked.acl) pattern loaded from file '/tmp/x/blocked.acl' used by acl at file '/tmp/x/haproxy.cfg' line 16. curr_ver=0 next_ver=0 entry_cnt=3";
const ACL_INLINE_LINE =
  "1 () acl 'src' file '/tmp/x/haproxy.cfg' line 17. curr_ver=0 next_ver=0 entry_cnt=0";

describe("parseMapList (show map / show acl on 2.6)", () => {
  it("reads a map loaded from a file and skips the header", () => {
    expect(parseMapList([HEADER, MAP_LINE])).toEqual([
      {
        id: 2,
        file: "/tmp/x/hosts.map",
        description:
          "pattern loaded from file '/tmp/x/hosts.map' used by map at file '/tmp/x/haproxy.cfg' line 18.",
        entries: 2,
        currentVersion: 0,
        nextVersion: 0,
      },
    ]);
  });

  it("reads ACLs from a file and inline ones, whose file is empty", () => {
    expect(parseMapList([HEADER, ACL_FILE_LINE, ACL_INLINE_LINE])).toEqual([
      {
        id: 0,
        file: "/tmp/x/blocked.acl",
        description:
          "pattern loaded from file '/tmp/x/blocked.acl' used by acl at file '/tmp/x/haproxy.cfg' line 16.",
        entries: 3,
        currentVersion: 0,
        nextVersion: 0,
      },
      {
        id: 1,
        file: "",
        description: "acl 'src' file '/tmp/x/haproxy.cfg' line 17.",
        entries: 0,
        currentVersion: 0,
        nextVersion: 0,
      },
    ]);
  });

  it("reads the next version a prepare created", () => {
    const [m] = parseMapList([
      MAP_LINE.replace("next_ver=0 entry_cnt=2", "next_ver=1 entry_cnt=2"),
    ]);
    expect(m).toMatchObject({ currentVersion: 0, nextVersion: 1, entries: 2 });
  });

  it("leaves the counts undefined when the line has no version fields (before 2.4)", () => {
    const [m] = parseMapList([
      "3 (/etc/haproxy/a.map) pattern loaded from file '/etc/haproxy/a.map' used by map at file '/etc/haproxy/haproxy.cfg' line 9",
    ]);
    expect(m).toEqual({
      id: 3,
      file: "/etc/haproxy/a.map",
      description:
        "pattern loaded from file '/etc/haproxy/a.map' used by map at file '/etc/haproxy/haproxy.cfg' line 9",
      entries: undefined,
      currentVersion: undefined,
      nextVersion: undefined,
    });
  });

  it("returns nothing for the header alone or for lines that are not maps", () => {
    expect(parseMapList([HEADER])).toEqual([]);
    expect(parseMapList([])).toEqual([]);
    expect(parseMapList(["", "Unknown command: 'show mapz'", "x (/a) b"])).toEqual([]);
  });
});

describe("parseMapEntry (show map <map> / show acl <acl>)", () => {
  it("reads a map entry's key and value", () => {
    expect(parseMapEntry("0x56141628a570 example.com gold", true)).toEqual({
      key: "example.com",
      value: "gold",
    });
  });

  it("keeps a value's spaces: the value is the rest of the line", () => {
    expect(parseMapEntry("0x56141628a5b0 api.example.com be_api  weight 2", true)).toEqual({
      key: "api.example.com",
      value: "be_api  weight 2",
    });
  });

  it("reads a map entry without a value as an empty value", () => {
    expect(parseMapEntry("0x56141628a5f0 lonely", true)).toEqual({ key: "lonely", value: "" });
  });

  it("reads an ACL pattern without a value", () => {
    expect(parseMapEntry("0x5614162a1b20 10.0.0.0/8", false)).toEqual({
      key: "10.0.0.0/8",
      value: undefined,
    });
    expect(parseMapEntry("0x5614162a1b20 10.0.0.0/8 trailing", false)).toEqual({
      key: "10.0.0.0/8",
      value: undefined,
    });
  });

  it.each([
    "",
    HEADER,
    "Unknown map identifier. Please use #<id> or <file>.",
    "0x56141628a570",
    "0x56141628a570 ",
    " 0x56141628a570 example.com gold",
    "0xZZ example.com gold",
    "56141628a570 example.com gold",
  ])("returns undefined for the non-entry line %j", (line) => {
    expect(parseMapEntry(line, true)).toBeUndefined();
  });
});

describe("diffMaps", () => {
  const e = (key: string, value?: string): MapEntry => ({ key, value });

  it("finds added, removed and changed entries in file order", () => {
    const current = [e("a", "1"), e("b", "2"), e("c", "3")];
    const next = [e("d", "4"), e("c", "30"), e("a", "1"), e("e", "5")];
    expect(diffMaps(current, next)).toEqual({
      added: [e("d", "4"), e("e", "5")],
      removed: [e("b", "2")],
      changed: [{ key: "c", from: "3", to: "30" }],
    });
  });

  it("reports nothing for identical contents in any order", () => {
    expect(diffMaps([e("a", "1"), e("b", "2")], [e("b", "2"), e("a", "1")])).toEqual({
      added: [],
      removed: [],
      changed: [],
    });
    expect(diffMaps([], [])).toEqual({ added: [], removed: [], changed: [] });
  });

  it("compares ACL patterns by presence only", () => {
    expect(diffMaps([e("10.0.0.1"), e("10.0.0.2")], [e("10.0.0.2"), e("10.0.0.3")])).toEqual({
      added: [e("10.0.0.3")],
      removed: [e("10.0.0.1")],
      changed: [],
    });
  });

  it("treats everything as added to an empty map and removed by an empty file", () => {
    expect(diffMaps([], [e("a", "1")]).added).toEqual([e("a", "1")]);
    expect(diffMaps([e("a", "1")], []).removed).toEqual([e("a", "1")]);
  });

  it("sees a value that differs only by inner spaces as changed", () => {
    expect(diffMaps([e("a", "x y")], [e("a", "x  y")]).changed).toEqual([
      { key: "a", from: "x y", to: "x  y" },
    ]);
  });

  it("reports a duplicate key in the current map as a difference", () => {
    const d = diffMaps([e("a", "1"), e("a", "2")], [e("a", "2")]);
    expect(d.removed.length + d.changed.length).toBeGreaterThan(0);
  });
});

describe("readMapFile", () => {
  let dir: string;
  let n = 0;
  const file = (text: string): string => {
    const path = join(dir, `f${n++}.map`);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hapops-map-"));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads key and value, skipping blank lines and # comments", () => {
    const path = file(
      ["# hosts to backends", "", "example.com be_web", "   ", "api.example.com\tbe_api", ""].join(
        "\n",
      ),
    );
    expect(readMapFile("map", path)).toEqual([
      { key: "example.com", value: "be_web" },
      { key: "api.example.com", value: "be_api" },
    ]);
  });

  it("keeps a value's inner spaces and trims the line's ends", () => {
    const path = file("  k1   gold  tier 2   \nk2 a # not a comment\n");
    expect(readMapFile("map", path)).toEqual([
      { key: "k1", value: "gold  tier 2" },
      { key: "k2", value: "a # not a comment" },
    ]);
  });

  it("reads a CRLF file without carriage returns in keys or values", () => {
    const path = file("# crlf\r\nexample.com gold\r\n\r\nb.example.com silver\r\n");
    expect(readMapFile("map", path)).toEqual([
      { key: "example.com", value: "gold" },
      { key: "b.example.com", value: "silver" },
    ]);
  });

  it("reads a file without a final newline", () => {
    expect(readMapFile("map", file("a 1\nb 2"))).toEqual([
      { key: "a", value: "1" },
      { key: "b", value: "2" },
    ]);
  });

  it("refuses a map line with a key and no value, naming the file and the line", () => {
    const path = file("# header\na 1\n\nlonely   \nc 3\n");
    const err = validationError(() => readMapFile("map", path));
    expect(err.message).toBe(`${path} line 4: "lonely" has a key but no value`);
    expect(err.exitCode).toBe(ExitCode.usage);
  });

  it("reads an ACL file as patterns without values", () => {
    const path = file("# blocked\n10.0.0.0/8\n\n192.168.1.20\r\n");
    expect(readMapFile("acl", path)).toEqual([
      { key: "10.0.0.0/8", value: undefined },
      { key: "192.168.1.20", value: undefined },
    ]);
  });

  it("refuses an ACL line with a space instead of keeping its first word", () => {
    const path = file("Mozilla/5.0 (X11\n");
    expect(() => readMapFile("acl", path)).toThrow(
      /line 1: the pattern "Mozilla\/5\.0 \(X11" contains a space/,
    );
  });

  it("returns no entries for a file of comments and blank lines", () => {
    expect(readMapFile("map", file("# nothing\n\n  \n"))).toEqual([]);
    expect(readMapFile("acl", file(""))).toEqual([]);
  });

  it("refuses a missing file with a ValidationError that says so", () => {
    const path = join(dir, "missing.map");
    expect(validationError(() => readMapFile("map", path)).message).toBe(
      `cannot read --from ${path}: no such file`,
    );
  });
});

describe("chunkEntries", () => {
  /** Bytes of the payload lines as sent: "key value\n" (map) or "pattern\n" (ACL). */
  const bytes = (chunk: readonly MapEntry[]): number =>
    chunk.reduce(
      (n, e) => n + e.key.length + (e.value !== undefined ? e.value.length + 1 : 0) + 1,
      0,
    );

  /** Deterministic pseudo-random entries (a fixed LCG, no Math.random). */
  function entries(count: number, seed: number, withValue = true): MapEntry[] {
    let s = seed;
    const next = (max: number) => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return 1 + (s % max);
    };
    return Array.from({ length: count }, (_, i) => ({
      key: `k${i}-${"x".repeat(next(40))}`,
      value: withValue ? "v".repeat(next(60)) : undefined,
    }));
  }

  it("returns [] for no entries", () => {
    expect(chunkEntries([], 100)).toEqual([]);
  });

  it("keeps everything in one chunk when it fits", () => {
    const list = [
      { key: "a", value: "1" },
      { key: "b", value: "2" },
    ];
    expect(chunkEntries(list, 12_000)).toEqual([list]);
  });

  it("fills chunks up to the budget exactly", () => {
    // Each entry counts 10: key 2 + value 6 + separator and newline.
    const list = Array.from({ length: 7 }, (_, i) => ({ key: `k${i}`, value: "123456" }));
    expect(chunkEntries(list, 30).map((c) => c.length)).toEqual([3, 3, 1]);
    expect(chunkEntries(list, 29).map((c) => c.length)).toEqual([2, 2, 2, 1]);
  });

  it.each([
    [200, 1, 500],
    [500, 7, 1000],
    [1000, 42, 12_000],
    [300, 3, 64],
  ])(
    "keeps order and stays within the budget (%i entries, seed %i, budget %i)",
    (count, seed, budget) => {
      for (const withValue of [true, false]) {
        const list = entries(count, seed, withValue);
        const chunks = chunkEntries(list, budget);
        expect(chunks.flat()).toEqual(list);
        for (const c of chunks) {
          expect(c.length).toBeGreaterThan(0);
          if (c.length > 1) expect(bytes(c)).toBeLessThanOrEqual(budget);
        }
      }
    },
  );

  it("puts an entry bigger than the budget alone in its chunk", () => {
    const small = (k: string) => ({ key: k, value: "1" });
    const big = { key: "big", value: "v".repeat(100) };
    const chunks = chunkEntries([small("a"), big, small("b"), small("c")], 20);
    expect(chunks).toEqual([[small("a")], [big], [small("b"), small("c")]]);
    expect(chunkEntries([big], 20)).toEqual([[big]]);
  });
});

describe("map builders", () => {
  describe("validateMapRef", () => {
    it.each(["#2", "#0", "#-1", "/etc/haproxy/hosts.map", "hosts.map", "/srv/maps/a-b_c.v2.map"])(
      "accepts %j",
      (ref) => {
        expect(validateMapRef("map", ref)).toBe(ref);
        expect(validateMapRef("acl", ref)).toBe(ref);
      },
    );

    it("refuses a space, naming the kind", () => {
      expect(validationError(() => validateMapRef("map", "/tmp/my hosts.map")).message).toMatch(
        /^map file name "\/tmp\/my hosts.map" contains a space;/,
      );
      expect(validationError(() => validateMapRef("acl", "/tmp/a b.acl")).message).toMatch(
        /^acl file name .* contains a space;/,
      );
    });

    it.each([
      ["/tmp/x.map;show info", "';' (a command separator)"],
      ["/tmp/x.map\nshow info", "a newline"],
      ["/tmp/x\\ y.map", "a backslash"],
      ["#abc", "'#'"],
      ["#", "'#'"],
    ])("refuses %j", (ref, why) => {
      expect(validationError(() => validateMapRef("map", ref)).message).toContain(why);
    });

    it("refuses an empty reference", () => {
      expect(validationError(() => validateMapRef("map", "")).message).toBe(
        "map file name is empty",
      );
    });
  });

  describe("validateMapWord", () => {
    it.each(["example.com", "10.0.0.0/8", "be_web", "^/api/(v1|v2)$", "a<b", "#1"])(
      "accepts %j",
      (w) => {
        expect(validateMapWord("key", w)).toBe(w);
      },
    );

    it.each([
      ["", "key is empty"],
      ["a b", 'key "a b" contains a space'],
      ["a;b", `key "a;b" contains ';' (a command separator)`],
      ["a\\b", 'key "a\\\\b" contains a backslash'],
      ["a\tb", 'key "a\\tb" contains character "\\t"'],
      ["a\nb", 'key "a\\nb" contains character "\\n"'],
      ["café", 'key "café" contains character "é"'],
    ])("refuses %j", (w, message) => {
      expect(validationError(() => validateMapWord("key", w)).message).toBe(message);
    });
  });

  describe("addMapVersion", () => {
    it("builds `add map @<ver> <map> <<` with one 'key value' line per entry", () => {
      const cmd = addMapVersion("map", 3, "/etc/haproxy/hosts.map", [
        { key: "example.com", value: "gold" },
        { key: "api.example.com", value: "silver tier 2" },
      ]);
      expect(cmd.name).toBe("addMap");
      expect(cmd.spec).toBe(GRAMMAR.addMap);
      expect(cmd.spec).toMatchObject({ words: "add map", mutates: true });
      expect(cmd.line).toBe("add map @3 /etc/haproxy/hosts.map <<");
      expect(cmd.payload).toEqual(["example.com gold", "api.example.com silver tier 2"]);
      expect(encodeCommand(cmd)).toBe(
        "add map @3 /etc/haproxy/hosts.map <<\nexample.com gold\napi.example.com silver tier 2\n\n",
      );
    });

    it("sends ACL patterns alone, ignoring any value", () => {
      const cmd = addMapVersion("acl", 1, "#4", [
        { key: "10.0.0.0/8" },
        { key: "192.168.1.20", value: "ignored" },
      ]);
      expect(cmd.name).toBe("addAcl");
      expect(cmd.line).toBe("add acl @1 #4 <<");
      expect(cmd.payload).toEqual(["10.0.0.0/8", "192.168.1.20"]);
    });

    it("refuses an empty list", () => {
      expect(validationError(() => addMapVersion("map", 1, "#2", [])).message).toBe(
        "the new map has no entries",
      );
      expect(validationError(() => addMapVersion("acl", 1, "#2", [])).message).toBe(
        "the new acl has no entries",
      );
    });

    it.each([
      ["gold\nshow info", "a newline"],
      ["gold\r", "a carriage return"],
      [" gold", "a leading space"],
      ["gold ", "a trailing space"],
      ["gold\ttier", "a tab"],
      ["", "an empty value"],
      [undefined, "no value"],
      ["or\u00e9", "non-ASCII"],
    ])("refuses the value %j (%s)", (value, _why) => {
      expect(
        validationError(() => addMapVersion("map", 1, "#2", [{ key: "example.com", value }]))
          .message,
      ).toBe("value for example.com must be printable ASCII without leading or trailing spaces");
    });

    it("refuses a key or pattern with a space", () => {
      expect(
        validationError(() => addMapVersion("map", 1, "#2", [{ key: "a b", value: "1" }])).message,
      ).toBe('key "a b" contains a space');
      expect(validationError(() => addMapVersion("acl", 1, "#2", [{ key: "a b" }])).message).toBe(
        'pattern "a b" contains a space',
      );
    });

    it("refuses a bad reference", () => {
      expect(
        validationError(() => addMapVersion("map", 1, "/x y.map", [{ key: "a", value: "1" }]))
          .message,
      ).toContain("contains a space");
    });

    it("never puts an empty line in the payload", () => {
      const cmd = addMapVersion("map", 2, "#1", [
        { key: "a", value: "1" },
        { key: "b", value: "2 3" },
      ]);
      expect(cmd.payload?.every((l) => l.length > 0)).toBe(true);
    });
  });

  describe("prepareMap and commitMap", () => {
    it("builds prepare lines", () => {
      expect(prepareMap("map", "/etc/haproxy/hosts.map")).toMatchObject({
        name: "prepareMap",
        line: "prepare map /etc/haproxy/hosts.map",
        spec: { words: "prepare map", mutates: true },
      });
      expect(prepareMap("acl", "#1")).toMatchObject({
        name: "prepareAcl",
        line: "prepare acl #1",
      });
    });

    it("builds commit lines with the version", () => {
      expect(commitMap("map", 3, "#2")).toMatchObject({
        name: "commitMap",
        line: "commit map @3 #2",
        spec: { words: "commit map", mutates: true },
      });
      expect(commitMap("acl", 0, "/etc/haproxy/blocked.acl").line).toBe(
        "commit acl @0 /etc/haproxy/blocked.acl",
      );
      expect(commitMap("map", 1, "/m.map").payload).toBeUndefined();
    });

    it("refuses a bad reference", () => {
      expect(() => prepareMap("map", "a;b")).toThrow(ValidationError);
      expect(() => commitMap("acl", 1, "a b")).toThrow(ValidationError);
    });
  });
});

describe("'<<' is refused in every word put on a line", () => {
  it.each([
    ["map key", () => setMapEntry("/etc/haproxy/hosts.map", "a<<", "v")],
    ["map value", () => setMapEntry("/etc/haproxy/hosts.map", "k", "v<<EOF")],
    ["acl pattern", () => delMapEntry("acl", "#4", "<<x")],
    ["lookup value", () => getMap("map", "#1", "x<<")],
    ["payload entry key", () => addMapVersion("map", 2, "#1", [{ key: "a<<b", value: "v" }])],
  ])("%s", (_what, make) => {
    expect(make).toThrow(/'<<'/);
  });
});
