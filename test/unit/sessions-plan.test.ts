import { describe, expect, it } from "vitest";
import type { Clock } from "../../src/engine/wait.js";
import { GuardError, UsageError, ValidationError } from "../../src/errors.js";
import { parseSessLine } from "../../src/parse/sess.js";
import { parseSelector } from "../../src/ops/selector.js";
import {
  killOperation,
  OldestStreams,
  parseSessionSelector,
  planKill,
  streamMatches,
  type KillRequest,
  type KillServer,
} from "../../src/ops/sessions.js";

const clock: Clock = { now: () => 0, sleep: () => Promise.resolve() };

function request(over: Partial<KillRequest> = {}): KillRequest {
  return {
    selector: parseSelector("be_app/app1"),
    yes: false,
    asking: "none",
    target: "/run/haproxy/admin.sock",
    clock,
    settleMs: 5000,
    pollMs: 100,
    ...over,
  };
}

function server(name: string, streams: number, over: Partial<KillServer> = {}): KillServer {
  const [backend, srv] = name.split("/") as [string, string];
  return {
    backend,
    server: srv,
    admin: "DRAIN",
    scur: streams,
    streams: Array.from({ length: streams }, (_, i) => `0x${(i + 1).toString(16)}`),
    streamCount: streams,
    ...over,
  };
}

function stream(be: string | undefined, srv: string | undefined, age = "1s", fe = "fe_http") {
  const s = parseSessLine(
    `0x1: proto=tcpv4 src=10.0.0.1:5000 fe=${fe} be=${be ?? "<NONE>"} srv=${srv ?? "<none>"} ts=00 epoch=0x1 age=${age} calls=1 rate=0 cpu=0 lat=0 rq[f=0h] rp[f=0h]`,
  );
  if (!s) throw new Error("bad test line");
  return s;
}

describe("planKill", () => {
  it("cuts the sessions of a server with --yes: one shutdown line, the guard passed", () => {
    const p = planKill(request({ yes: true }), { servers: [server("be_app/app1", 3)] });
    expect(p.op).toBe("sessions kill");
    expect(p.level).toBe("admin");
    expect(p.scope).toEqual({ servers: ["be_app/app1"] });
    expect(p.steps).toEqual([
      {
        kind: "send",
        op: "sessions kill",
        commands: [expect.objectContaining({ line: "shutdown sessions server be_app/app1" })],
      },
    ]);
    expect(p.guards).toEqual([
      expect.objectContaining({ name: "live-sessions", ok: true, forced: false }),
    ]);
    expect(p.describe).toEqual(["be_app/app1  cut 3 sessions"]);
  });

  it("refuses live sessions without --yes (exit 3), with a question for a terminal", () => {
    for (const asking of ["none", "dry-run", "terminal"] as const) {
      const p = planKill(request({ asking }), { servers: [server("be_app/app1", 2)] });
      const g = p.guards[0]!;
      expect(g.ok).toBe(false);
      expect(g.error).toBeInstanceOf(GuardError);
      expect(g.error?.exitCode).toBe(3);
      expect(g.error?.message).toContain("cutting 2 live sessions on be_app/app1 needs --yes");
      expect(g.error?.message).toContain(
        {
          none: "no terminal to ask on",
          "dry-run": "a dry run does not ask",
          terminal: "not confirmed",
        }[asking],
      );
      expect(g.confirm).toMatch(/^cut 2 live sessions on be_app\/app1 now\?.*\[y\/N\] $/);
    }
  });

  it("sends nothing and needs no --yes when there is nothing to cut (a no-op)", () => {
    const p = planKill(request(), { servers: [server("be_app/app1", 0)] });
    expect(p.steps).toEqual([]);
    expect(p.guards).toEqual([]);
    expect(p.describe).toEqual(["be_app/app1  no sessions  (already; nothing sent)"]);
  });

  it("counts scur when show sess listed fewer streams than HAProxy counts sessions", () => {
    const p = planKill(request({ yes: true }), {
      servers: [server("be_app/app1", 0, { scur: 2 })],
    });
    expect(p.steps).toHaveLength(1);
    expect(p.body.servers[0]?.sessions).toBe(2);
  });

  it("over several servers: a line only for those with sessions; says when one still takes traffic", () => {
    const p = planKill(request({ selector: parseSelector("be_app/*"), yes: true }), {
      servers: [
        server("be_app/app1", 2),
        server("be_app/app2", 0),
        server("be_app/app3", 1, { admin: "READY" }),
      ],
    });
    const send = p.steps[0];
    expect(send?.kind === "send" ? send.commands.map((c) => c.line) : []).toEqual([
      "shutdown sessions server be_app/app1",
      "shutdown sessions server be_app/app3",
    ]);
    expect(p.guards[0]?.reason).toBe("--yes: cut 3 live sessions on 2 servers");
    expect(p.describe).toEqual([
      "be_app/app1  cut 2 sessions",
      "be_app/app2  no sessions  (already; nothing sent)",
      "be_app/app3  cut 1 session  (READY: new connections keep arriving; drain or maint it first to keep it empty)",
    ]);
    expect(p.scope.servers).toEqual(["be_app/app1", "be_app/app2", "be_app/app3"]);
  });

  it("refuses --addr before reading anything", () => {
    expect(() =>
      killOperation(request({ selector: { kind: "addr", address: "10.0.0.5", text: "10.0.0.5" } })),
    ).toThrow(UsageError);
  });
});

describe("what hapops sessions lists", () => {
  it("parses a bare backend as backend/*, and refuses a bad name before sending", () => {
    expect(parseSessionSelector("be_app")).toEqual({
      kind: "name",
      backend: "be_app",
      text: "be_app/*",
    });
    expect(parseSessionSelector("be_app/app1")).toMatchObject({
      backend: "be_app",
      server: "app1",
    });
    expect(() => parseSessionSelector("be;app")).toThrow(ValidationError);
  });

  it("matches streams to selectors", () => {
    const s1 = stream("be_app", "app1");
    const queued = stream("be_app", undefined);
    const front = stream(undefined, undefined);
    const cli = stream(undefined, undefined, "0s", "GLOBAL");
    const at = (text: string) => parseSessionSelector(text);
    // No selector: every stream but the stats socket's own.
    expect([s1, queued, front, cli].map((s) => streamMatches(undefined, s))).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect([s1, queued, front].map((s) => streamMatches(at("be_app/app1"), s))).toEqual([
      true,
      false,
      false,
    ]);
    expect([s1, queued, front].map((s) => streamMatches(at("be_app"), s))).toEqual([
      true,
      true,
      false,
    ]);
    expect(streamMatches(at("*/app1"), s1)).toBe(true);
    expect(streamMatches(at("*/app2"), s1)).toBe(false);
    expect(streamMatches(at("be_api/*"), s1)).toBe(false);
  });

  it("keeps only the oldest streams, however many are offered", () => {
    const keep = new OldestStreams(3);
    const ages = [5, 1, 90, 7, 3600, 2, 60, 4, 8, 30];
    for (const a of ages) keep.push(stream("be_app", "app1", `${a}s`));
    expect(keep.count).toBe(10);
    expect(keep.result().map((s) => s.ageSec)).toEqual([3600, 90, 60]);
  });
});
