import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import { errorLine, parseErrors, unescapeBuffer } from "../../src/parse/errors.js";
import { toLines } from "./fixtures.js";

/**
 * `show errors` captured from each version by scripts/capture-session-fixtures.mjs: before any
 * error, and after a request with a space in a header name ("Bad Header: x") reached fe_http.
 */
const VERSIONS = ["2.6", "2.8", "3.0", "3.2", "3.4"] as const;

function capture(version: string, name: string): string[] {
  return toLines(
    readFileSync(join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, name), "utf8"),
  );
}

describe("parseErrors on every captured version", () => {
  it.each(VERSIONS)("%s: no error captured yet", (v) => {
    const a = parseErrors(capture(v, "show-errors-empty.txt"));
    expect(a.total).toBe(0);
    expect(a.events).toEqual([]);
    expect(a.capturedAt).toMatch(/^\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d\.\d{3}$/);
  });

  it.each(VERSIONS)("%s: the malformed request, where it came from and where it broke", (v) => {
    const a = parseErrors(capture(v, "show-errors.txt"));
    expect(a.total).toBe(1);
    expect(a.events).toHaveLength(1);
    const e = a.events[0]!;
    expect(e).toMatchObject({
      direction: "request",
      proxy: "fe_http",
      proxyId: 2,
      other: undefined,
      server: undefined,
      event: 0,
      length: 55,
      errorAt: 41,
    });
    expect(e.when).toMatch(/^\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d\.\d{3}$/);
    expect(e.source).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(e.details[0]).toMatch(/^H1 connection flags 0x[0-9a-f]+, H1 stream flags/);
    expect(e.buffer).toEqual([
      { offset: 0, text: "GET /bad HTTP/1.1\\r\\n", continued: false },
      { offset: 19, text: "Host: example.com\\r\\n", continued: false },
      { offset: 38, text: "Bad Header: x\\r\\n", continued: false },
      { offset: 53, text: "\\r\\n", continued: false },
    ]);
    // Position 41 is the space in "Bad Header".
    expect(errorLine(e)).toEqual({ line: e.buffer[2], char: " ", column: 3 });
  });

  it("reads an invalid response (a backend's), with its frontend, server and a cut line", () => {
    const a = parseErrors([
      "Total events captured on [04/Mar/2009:15:47:00.000] : 54",
      " ",
      "[04/Mar/2009:15:46:56.081] backend http-in (#2): invalid response",
      "  frontend fe-eth0 (#1), server s2 (#1), event #54, src 127.0.0.1:5000",
      "  buffer starts at 0 (including 0 out), 16160 free,",
      "  len 213, wraps at 16336, error at position 23",
      "  ",
      "  00000  HTTP/1.0 200 OK\\r\\n",
      "  00017  header/bizarre:blah\\r\\n",
      "  00038  Location: blah\\r\\n",
      "  00054  Long-line: this is a very long line which should b",
      "  00104+ e broken into multiple lines on the output buffer,",
      "  00154+  otherwise it would be too large to print in a ter",
      "  00204+ minal\\r\\n",
    ]);
    expect(a.events).toHaveLength(1);
    const e = a.events[0]!;
    expect(e).toMatchObject({
      direction: "response",
      proxy: "http-in",
      other: "fe-eth0",
      server: "s2",
      event: 54,
      source: "127.0.0.1:5000",
      errorAt: 23,
      details: [],
    });
    expect(e.buffer.filter((l) => l.continued).map((l) => l.offset)).toEqual([104, 154, 204]);
    expect(errorLine(e)).toEqual({ line: e.buffer[1], char: "/", column: 6 });
  });

  it("keeps HAProxy's warning when the snapshot changed during the dump", () => {
    const a = parseErrors([
      "Total events captured on [04/Mar/2009:15:47:00.000] : 2",
      " ",
      "[04/Mar/2009:15:46:56.081] frontend fe (#2): invalid request",
      "  backend be (#3), server <NONE> (#-1), event #1, src ::1:5000",
      "  buffer starts at 0 (including 0 out), 16160 free,",
      "  len 5, wraps at 16336, error at position 0",
      "  ",
      "  WARNING! update detected on this snapshot, dump interrupted. Please re-check!",
    ]);
    expect(a.events[0]).toMatchObject({
      other: "be",
      source: "::1:5000",
      warning: "WARNING! update detected on this snapshot, dump interrupted. Please re-check!",
      buffer: [],
    });
    expect(errorLine(a.events[0]!)).toBeUndefined();
  });

  it("refuses what is not a show errors answer", () => {
    expect(() => parseErrors(["Permission denied"])).toThrow(ProtocolError);
    expect(() => parseErrors([])).toThrow(ProtocolError);
  });
});

describe("unescapeBuffer", () => {
  it("turns HAProxy's escapes back into bytes", () => {
    expect(unescapeBuffer("a\\tb\\r\\n\\e\\\\\\x01")).toBe("a\tb\r\n\x1b\\\x01");
  });

  it("names a control character by its escape", () => {
    const a = parseErrors([
      "Total events captured on [04/Mar/2009:15:47:00.000] : 1",
      " ",
      "[04/Mar/2009:15:46:56.081] frontend fe (#2): invalid request",
      "  backend <NONE> (#-1), server <NONE> (#-1), event #0, src 10.0.0.1:5000",
      "  buffer starts at 0 (including 0 out), 16160 free,",
      "  len 9, wraps at 16336, error at position 4",
      "  ",
      "  00000  GET \\x01/ \\r\\n",
    ]);
    expect(errorLine(a.events[0]!)?.char).toBe("\\x01");
  });
});
