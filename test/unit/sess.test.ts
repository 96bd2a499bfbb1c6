import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  parseHumanTime,
  parseSess,
  parseSessDetail,
  parseSessLine,
  SessParser,
} from "../../src/parse/sess.js";
import { toLines } from "./fixtures.js";

/**
 * Answers captured from each version by scripts/capture-session-fixtures.mjs: three requests
 * in flight through fe_http (two to app1, one to app2: round robin) and the capture's own CLI
 * connection.
 */
const SESS_VERSIONS = ["2.6", "2.8", "3.0", "3.2", "3.4"] as const;

function capture(version: string, name: string): string[] {
  return toLines(
    readFileSync(join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, name), "utf8"),
  );
}

describe("parseSess on every captured version", () => {
  it.each(SESS_VERSIONS)("%s: client, frontend, backend/server and age of each stream", (v) => {
    const streams = parseSess(capture(v, "show-sess.txt"));
    expect(streams).toHaveLength(4);
    const traffic = streams.filter((s) => s.frontend === "fe_http");
    expect(traffic).toHaveLength(3);
    for (const s of traffic) {
      expect(s.id).toMatch(/^0x[0-9a-f]+$/);
      expect(s.proto).toBe("tcpv4");
      expect(s.client?.address).toBe("127.0.0.1");
      expect(s.client?.port).toBeGreaterThan(1023);
      expect(s.backend).toBe("be_app");
      expect(["app1", "app2"]).toContain(s.server);
      expect(s.age).toMatch(/^\ds$/);
      expect(s.ageSec).toBeGreaterThanOrEqual(1);
    }
    // The CLI connection: a unix socket client, the GLOBAL frontend, no backend nor server.
    const cli = streams.find((s) => s.frontend === "GLOBAL");
    expect(cli).toMatchObject({
      proto: "unix_stream",
      client: { address: "unix", port: 1 },
      backend: undefined,
      server: undefined,
      age: "0s",
      ageSec: 0,
    });
  });

  it.each(SESS_VERSIONS)("%s: an idle process lists only the CLI's own stream", (v) => {
    const streams = parseSess(capture(v, "show-sess-idle.txt"));
    expect(streams.map((s) => s.frontend)).toEqual(["GLOBAL"]);
  });

  it("reads the 2.6 line exactly", () => {
    expect(
      parseSessLine(
        "0x55c14534ed10: proto=tcpv4 src=127.0.0.1:40820 fe=fe_http be=be_app srv=app2 ts=00 epoch=0x1 age=1s calls=2 rate=0 cpu=0 lat=0 rq[f=49c40080h,i=0,an=8000h,rx=,wx=,ax=] rp[f=80400000h,i=0,an=1400000h,rx=58s,wx=,ax=] scf=[8,80h,fd=11] scb=[8,11h,fd=12] exp=0s rc=0 c_exp=",
      ),
    ).toEqual({
      id: "0x55c14534ed10",
      proto: "tcpv4",
      client: { address: "127.0.0.1", port: 40820 },
      frontend: "fe_http",
      backend: "be_app",
      server: "app2",
      age: "1s",
      ageSec: 1,
    });
  });

  it("reads an IPv6 client (printed without brackets), a long age and a stream with no server yet", () => {
    const s = parseSessLine(
      "0x7f00: proto=tcpv6 src=2001:db8::5:51000 fe=fe_http be=be_app srv=<none> ts=00 epoch=0x3 age=1d2h calls=9 rate=0 cpu=0 lat=0 rq[f=1840000h,i=0,an=8000h,ax=] rp[f=80000000h,i=0,an=00h,ax=] scf=[8,482h,fd=12,rex=58s,wex=] scb=[8,1411h,fd=13,rex=58s,wex=] exp=0s rc=0 c_exp=",
    );
    expect(s).toMatchObject({
      client: { address: "2001:db8::5", port: 51000 },
      backend: "be_app",
      server: undefined,
      ageSec: 93_600,
    });
  });

  it("reads a stream with no client connection (an applet's): no src, fe, be or srv", () => {
    expect(
      parseSessLine(
        "0x7f01: proto=? ts=00 epoch=0x1 age=3m calls=1 rate=0 cpu=0 lat=0 rq[f=0h,i=0,an=00h,ax=] rp[f=0h,i=0,an=00h,ax=] scf=[8,0h,fd=-1,rex=,wex=] scb=[8,0h,fd=-1,rex=,wex=] exp= rc=0 c_exp=",
      ),
    ).toEqual({
      id: "0x7f01",
      proto: "?",
      client: undefined,
      frontend: undefined,
      backend: undefined,
      server: undefined,
      age: "3m",
      ageSec: 180,
    });
  });

  it("skips lines that are not streams and counts them, keeping nothing itself", () => {
    const seen: string[] = [];
    const p = new SessParser((s) => seen.push(s.id));
    for (const l of [...capture("3.4", "show-sess.txt"), "", "some future line"]) p.line(l);
    expect(seen).toHaveLength(4);
    expect(p.streams).toBe(4);
    expect(p.skipped).toBe(1);
  });
});

describe("parseHumanTime", () => {
  it.each([
    ["0s", 0],
    ["59s", 59],
    ["5m3s", 303],
    ["2h5m", 7500],
    ["1d5m", 86_700],
    ["3d", 259_200],
  ])("%s is %d seconds", (text, sec) => expect(parseHumanTime(text)).toBe(sec));

  it("gives undefined for ? and for anything else", () => {
    expect(parseHumanTime("?")).toBeUndefined();
    expect(parseHumanTime("")).toBeUndefined();
    expect(parseHumanTime("5x")).toBeUndefined();
  });
});

describe("parseSessDetail (show sess <id>)", () => {
  it.each(SESS_VERSIONS)(
    "%s: the stream's source and the bytes it moved (req/res total, or scf in/out on 3.4)",
    (v) => {
      const d = parseSessDetail(capture(v, "show-sess-detail.txt"));
      expect(d?.id).toMatch(/^0x[0-9a-f]+$/);
      expect(d?.source).toMatch(/^127\.0\.0\.1:\d+$/);
      // The request line the capture sent (61 bytes); nothing answered yet.
      expect(d?.bytesIn).toBe(61);
      expect(d?.bytesOut).toBe(0);
    },
  );

  it.each(SESS_VERSIONS)("%s: a stream that ended is undefined", (v) => {
    expect(capture(v, "show-sess-not-found.txt")).toEqual(["Session not found."]);
    expect(parseSessDetail(capture(v, "show-sess-not-found.txt"))).toBeUndefined();
  });
});
