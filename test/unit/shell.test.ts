import { describe, expect, it } from "vitest";
import { splitWords } from "../../src/cli/commands/shell.js";

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
