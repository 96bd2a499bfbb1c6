import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ResponseFramer, type ResponseShape } from "../../src/runtime/framer.js";
import { classifyResponse } from "../../src/runtime/classify.js";

/** Feed `text` to a framer in the given chunks; return the responses it framed. */
function frame(chunks: readonly string[], shapes: readonly ResponseShape[]) {
  const responses: string[][] = [];
  const unexpected: string[] = [];
  let current: string[] = [];
  let i = 0;
  const framer = new ResponseFramer({
    next: () => shapes[i],
    line: (l) => current.push(l),
    end: () => {
      responses.push(current);
      current = [];
      i++;
    },
    unexpected: (l) => unexpected.push(l),
  });
  for (const c of chunks) framer.push(Buffer.from(c));
  return { responses, unexpected, pending: framer.pending, mid: framer.midResponse };
}

const PROMPTED: ResponseShape = { promptBefore: true, payloadPrompts: false };
const FIRST: ResponseShape = { promptBefore: false, payloadPrompts: false };

describe("ResponseFramer", () => {
  // prompt, show cli level, user, show servers state be_api — captured from HAProxy 2.6.
  const transcript = readFileSync(
    join(import.meta.dirname, "..", "fixtures", "haproxy-2.6", "prompt-transcript.txt"),
    "utf8",
  );
  const shapes = [FIRST, PROMPTED, PROMPTED, PROMPTED];
  const expected = [
    [],
    ["admin"],
    [],
    [
      "1",
      expect.stringMatching(/^# be_id be_name/),
      "4 be_api 1 api1 127.0.0.1 2 0 1 1 1588 1 0 2 0 0 0 0 - 9101 - 0 0 - - 0",
    ],
  ];

  it("frames a real prompt-mode transcript into one answer per command", () => {
    const r = frame([transcript], shapes);
    expect(r.responses).toEqual(expected);
    expect(r.unexpected).toEqual([]);
    // The prompt after the last answer is left over, not mistaken for an answer.
    expect(r.pending).toBe("> ");
    expect(r.mid).toBe(false);
  });

  it("frames the same whatever the chunking (cut at every offset)", () => {
    for (let cut = 1; cut < transcript.length; cut++) {
      const r = frame([transcript.slice(0, cut), transcript.slice(cut)], shapes);
      expect(r.responses, `cut at ${cut}`).toEqual(expected);
    }
  });

  it("frames byte by byte, including multi-byte UTF-8 split inside a character", () => {
    const text = "\n> h\u00e9llo \u2603\n\n> ";
    const bytes = Buffer.from(text);
    const responses: string[][] = [];
    let cur: string[] = [];
    let i = 0;
    const framer = new ResponseFramer({
      next: () => [FIRST, PROMPTED][i],
      line: (l) => cur.push(l),
      end: () => {
        responses.push(cur);
        cur = [];
        i++;
      },
      unexpected: () => undefined,
    });
    for (const b of bytes) framer.push(Buffer.from([b]));
    expect(responses).toEqual([[], ["h\u00e9llo \u2603"]]);
  });

  it("strips the '+ ' prompts HAProxy echoes for each payload line", () => {
    const r = frame(
      ["\n> + + + Transaction created for certificate /c.pem!\n\n> "],
      [FIRST, { promptBefore: true, payloadPrompts: true }],
    );
    expect(r.responses).toEqual([[], ["Transaction created for certificate /c.pem!"]]);
  });

  it("reports text that arrives when nothing is pending", () => {
    const r = frame(["\nsurprise\n"], [FIRST]);
    expect(r.responses).toEqual([[]]);
    expect(r.unexpected).toEqual(["surprise"]);
  });

  it("knows when the stream stopped mid-answer", () => {
    const r = frame(["\n> Name: HAProxy\nVers"], [FIRST, PROMPTED]);
    expect(r.mid).toBe(true);
    expect(r.pending).toBe("Vers");
  });
});

describe("classifyResponse", () => {
  const fixture = (v: string, name: string) =>
    readFileSync(join(import.meta.dirname, "..", "fixtures", v, name), "utf8");

  it.each(["haproxy-2.6", "haproxy-3.2"])("recognises refusals with severity numbers (%s)", (v) => {
    const answers = fixture(v, "errors-severity-number.txt")
      .split(/\n\n/)
      .map((a) => a.replace(/^\n/, ""))
      .filter((a) => a.length > 0)
      .map((a) => classifyResponse(a.split("\n")));
    expect(answers.map((a) => [a.severity, a.error, a.lines[0]?.slice(0, 20)])).toEqual([
      [3, true, "No such server."],
      [3, true, "Absolute weight can "],
      [6, true, expect.stringMatching(/^Unknown command/)],
      [6, false, "admin"],
    ]);
  });

  it.each([
    ["error-no-such-server.txt", "No such server."],
    ["error-no-such-backend.txt", "Can't find backend."],
    ["error-permission-denied-user.txt", "Permission denied"],
    ["error-ssl-cert-at-user-level.txt", "Can't allocate memory!"],
    ["error-commit-without-transaction.txt", "No ongoing transaction! !"],
  ])("recognises %s without a severity prefix", (file, first) => {
    for (const v of ["haproxy-2.6", "haproxy-3.2"]) {
      const lines = fixture(v, file).replace(/\n+$/, "").split("\n");
      const c = classifyResponse(lines);
      expect(c.error, `${v}/${file}`).toBe(true);
      expect(c.lines[0]).toBe(first);
    }
  });

  it.each([
    "show-info.txt",
    "show-stat.csv",
    "show-servers-state.txt",
    "show-table-be_app.txt",
    "show-ssl-cert-file.txt",
  ])("does not mistake %s for a refusal", (file) => {
    for (const v of ["haproxy-2.6", "haproxy-3.2"]) {
      const lines = fixture(v, file).replace(/\n+$/, "").split("\n");
      expect(classifyResponse(lines).error, `${v}/${file}`).toBe(false);
    }
  });
});
