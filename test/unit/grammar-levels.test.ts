import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  describeLevels,
  GRAMMAR,
  levelOn,
  sessionLevel,
  type CommandName,
} from "../../src/commands/grammar.js";
import { LEVELS, type Level } from "../../src/commands/levels.js";

/**
 * The grammar's levels, per version, against what each HAProxy answered on a user, an operator
 * and an admin socket (test/fixtures/haproxy-<version>/levels.txt, captured by
 * scripts/capture-level-fixtures.sh from 2.4 to 3.4).
 */
const FIXTURES = join(import.meta.dirname, "..", "fixtures");

interface Capture {
  readonly version: string;
  /** Per grammar name and socket level: whether every sample was refused for want of level. */
  readonly refused: Map<CommandName, Map<Level, boolean[]>>;
  readonly unknown: Set<CommandName>;
}

/** What HAProxy says below a command's level (session.ts knows the same symptoms). */
function refusedForLevel(name: string, answer: string): boolean {
  if (/^Permission denied/.test(answer)) return true;
  if (name === "showSslCert" && /^Can't allocate memory/.test(answer)) return true;
  // `show table <name>` answers at user level, without its entries.
  return name === "showTable" && /contents not dumped due to insufficient privileges/.test(answer);
}

function readCapture(dir: string): Capture {
  const text = readFileSync(join(FIXTURES, dir, "levels.txt"), "utf8");
  const version = /^# HAProxy (\S+):/.exec(text)?.[1];
  if (!version) throw new Error(`${dir}/levels.txt has no version line`);
  const refused = new Map<CommandName, Map<Level, boolean[]>>();
  const unknown = new Set<CommandName>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [name, level, answer = ""] = line.split("\t") as [CommandName, Level, string?];
    if (!(name in GRAMMAR)) throw new Error(`${dir}/levels.txt: ${name} is not in the grammar`);
    // Built without it (2.4.0 has no OpenSSL) or added later (`wait`, 3.0).
    if (/^Unknown command/.test(answer)) unknown.add(name);
    const byLevel = refused.get(name) ?? new Map<Level, boolean[]>();
    byLevel.set(level, [...(byLevel.get(level) ?? []), refusedForLevel(name, answer)]);
    refused.set(name, byLevel);
  }
  return { version, refused, unknown };
}

const captures = readdirSync(FIXTURES)
  .filter((d) => /^haproxy-\d/.test(d) && existsSync(join(FIXTURES, d, "levels.txt")))
  .sort()
  .map(readCapture);

describe("grammar levels against every captured version", () => {
  it("has captures from 2.4 to 3.4", () => {
    expect(captures.map((c) => c.version.replace(/^(\d+\.\d+).*/, "$1"))).toEqual([
      "2.4",
      "2.6",
      "2.8",
      "3.0",
      "3.2",
      "3.4",
    ]);
  });

  describe.each(captures)("HAProxy $version", ({ version, refused, unknown }) => {
    it("each command answers from the level the grammar gives this version, and not below", () => {
      const wrong: string[] = [];
      for (const [name, byLevel] of refused) {
        if (unknown.has(name)) continue;
        const least = LEVELS.find((l) => (byLevel.get(l) ?? [true]).every((r) => !r));
        // Every sample above the least level answers too: levels only ever add rights.
        for (const l of LEVELS.slice(LEVELS.indexOf(least ?? "admin")))
          if ((byLevel.get(l) ?? []).some((r) => r)) wrong.push(`${name} refused at ${l}`);
        const want = levelOn(GRAMMAR[name], version);
        if (least !== want) wrong.push(`${name}: HAProxy ${least ?? "never"}, grammar ${want}`);
      }
      expect(wrong).toEqual([]);
    });
  });
});

describe("levelOn, sessionLevel, describeLevels", () => {
  it("gives map commands user before 3.4 and admin from it", () => {
    expect(levelOn(GRAMMAR.showMap, "2.6.12-1+deb12u4")).toBe("user");
    expect(levelOn(GRAMMAR.addAcl, "3.2.0-e134140d2")).toBe("user");
    expect(levelOn(GRAMMAR.showMap, "3.4.0-64a335366")).toBe("admin");
    expect(levelOn(GRAMMAR.commitMap, "3.5")).toBe("admin");
  });

  it("does not guess down for an unknown version", () => {
    expect(levelOn(GRAMMAR.showMap, undefined)).toBe("admin");
    expect(levelOn(GRAMMAR.showMap, "dev")).toBe("admin");
    expect(levelOn(GRAMMAR.showStat, undefined)).toBe("user");
  });

  it("never lowers a session below what some version needs", () => {
    expect(sessionLevel(GRAMMAR.getMap)).toBe("admin");
    expect(sessionLevel(GRAMMAR.showTable)).toBe("operator");
    expect(sessionLevel(GRAMMAR.showInfo)).toBe("user");
  });

  it("says the levels per version in messages", () => {
    expect(describeLevels(GRAMMAR.showMap)).toBe("'admin' from HAProxy 3.4 ('user' before)");
    expect(describeLevels(GRAMMAR.setTable)).toBe("'operator'");
  });
});
