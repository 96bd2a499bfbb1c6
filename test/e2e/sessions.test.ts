import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request, type ClientRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type BackendSpec, type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { testHaproxy } from "../helpers/versions.js";

/**
 * `hapops sessions`, `sessions kill` and `errors` against a real HAProxy with real backends and
 * real clients: Debian's 2.6 always, and every binary of the version matrix
 * (HAPOPS_TEST_HAPROXY_DIR; 2.4.0 has no TLS, which the lab needs).
 */
const versions = [testHaproxy()];

const BACKENDS: readonly BackendSpec[] = [
  { name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] },
];

interface SessionRow {
  id: string;
  client: string | null;
  clientAddress: string | null;
  clientPort: number | null;
  frontend: string | null;
  backend: string | null;
  server: string | null;
  age: string;
  ageSeconds: number | null;
  bytesIn: number | null;
  bytesOut: number | null;
}

interface SessionsJson {
  selector: string | null;
  sessions: SessionRow[];
  matched: number;
  listed: number;
}

interface KillReport {
  outcome: string;
  dryRun: boolean;
  sent: string[];
  verified: boolean;
  servers?: { backend: string; server: string; cut: number; left: number }[];
  error?: { code: string; exitCode: number; message: string };
}

/**
 * A slow request through the frontend (`/slow?ms=N` holds it at the backend): how it ended
 * (status, or the error when the connection was cut), when, and the client's own port.
 */
function slowRequest(lab: Lab, ms: number) {
  let req: ClientRequest;
  const started = Date.now();
  const port = new Promise<number>((resolve) => {
    req = request({
      host: "127.0.0.1",
      port: lab.httpPort,
      path: `/slow?ms=${ms}`,
      agent: false,
    });
    req.on("socket", (s) => s.on("connect", () => resolve(s.localPort!)));
  });
  const ended = new Promise<{ status?: number; error?: string; afterMs: number }>((resolve) => {
    req!.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, afterMs: Date.now() - started }));
      res.on("error", (e) => resolve({ error: e.message, afterMs: Date.now() - started }));
    });
    req!.on("error", (e) => resolve({ error: e.message, afterMs: Date.now() - started }));
    req!.end();
  });
  return { port, ended, abort: () => req.destroy() };
}

describe.each(versions)("HAProxy $version", () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-sessions-"));
    lab = await startTestLab({ dir, backends: BACKENDS });
    // Every request to be_app lands on app1.
    const r = await run(["maint", "be_app/app2"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: readonly string[], socket?: string): Promise<CliResult> =>
    hapops(["-s", socket ?? lab.sockets.admin, ...args], { timeoutMs: 60_000 });
  const sessionsOn = async (sel: string) => {
    const r = await run(["sessions", sel, "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return json<SessionsJson>(r);
  };
  /** Until HAProxy lists the client's request on app1. */
  const listed = (port: number) =>
    waitUntil(
      async () =>
        (await sessionsOn("be_app/app1")).sessions.some((s) => s.clientPort === port)
          ? true
          : undefined,
      { what: `the request from port ${port} to reach app1`, timeoutMs: 10_000 },
    );
  // A request a client gave up on stays at the server: each test starts with none on app1.
  afterEach(async () => {
    await run(["raw", "shutdown sessions server be_app/app1"]);
    await waitUntil(
      async () => ((await sessionsOn("be_app/app1")).matched === 0 ? true : undefined),
      { what: "app1 to have no sessions left", timeoutMs: 10_000 },
    );
  });

  it("lists a live slow request: client address and port, frontend, backend/server, age, bytes", async () => {
    const slow = slowRequest(lab, 20_000);
    try {
      const port = await slow.port;
      await listed(port);
      const human = await run(["sessions", "be_app/app1"]);
      expect(human.code, human.stdout + human.stderr).toBe(0);
      expect(human.stdout).toMatch(
        /^CLIENT +FRONTEND +BACKEND\/SERVER +AGE +BYTES IN +BYTES OUT$/m,
      );
      expect(human.stdout).toMatch(
        new RegExp(`^127\\.0\\.0\\.1:${port} +fe_http +be_app/app1 +\\d+s +\\d+ +\\d+$`, "m"),
      );
      expect(human.stdout).toMatch(/^1 session on be_app\/app1$/m);

      const out = await sessionsOn("be_app/app1");
      expect(out.selector).toBe("be_app/app1");
      expect(out.matched).toBe(1);
      expect(out.sessions).toEqual([
        expect.objectContaining({
          client: `127.0.0.1:${port}`,
          clientAddress: "127.0.0.1",
          clientPort: port,
          frontend: "fe_http",
          backend: "be_app",
          server: "app1",
        }),
      ]);
      const s = out.sessions[0]!;
      expect(s.id).toMatch(/^0x[0-9a-f]+$/);
      expect(s.ageSeconds).toBeGreaterThanOrEqual(0);
      // The request HAProxy received from the client; nothing answered yet.
      expect(s.bytesIn).toBeGreaterThan(30);
      expect(s.bytesOut).toBe(0);
      // The backend and every session; app2 has none; the CLI's own stream is not listed.
      expect((await sessionsOn("be_app")).sessions.map((x) => x.clientPort)).toEqual([port]);
      expect((await sessionsOn("be_app/app2")).matched).toBe(0);
      const all = json<SessionsJson>(await run(["sessions", "--json", "--no-bytes"]));
      expect(all.sessions.map((x) => x.frontend)).toEqual(["fe_http"]);
      expect(all.sessions[0]?.bytesIn).toBeNull();
    } finally {
      slow.abort();
    }
  });

  it("refuses bad selectors and a socket below operator level, with nothing sent", async () => {
    const typo = await run(["sessions", "be_app/app9"]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/no server named app9 in backend be_app; did you mean app1, app2/);
    const backend = await run(["sessions", "be_nope"]);
    expect(backend.code).toBe(2);
    expect(backend.stderr).toMatch(/no backend named be_nope; did you mean be_app/);
    const bad = await run(["sessions", "kill", "be;app/app1", "--yes"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/contains ';'/);
    const limit = await run(["sessions", "--limit", "0"]);
    expect(limit.code).toBe(2);
    const user = await run(["sessions"], lab.sockets.user);
    expect(user.code).toBe(4);
    expect(user.stderr).toMatch(/operator/);
  });

  it("sessions kill without --yes and no terminal is refused (exit 3), the same in a dry run, with nothing sent", async () => {
    const slow = slowRequest(lab, 20_000);
    try {
      const port = await slow.port;
      await listed(port);
      for (const args of [
        ["sessions", "kill", "be_app/app1"],
        ["sessions", "kill", "be_app/app1", "--dry-run"],
      ]) {
        const r = await run(args);
        expect(r.code, r.stdout + r.stderr).toBe(3);
        expect(r.stderr).toMatch(/cutting 1 live session on be_app\/app1 needs --yes/);
      }
      const j = await run(["sessions", "kill", "be_app/app1", "--json"]);
      expect(j.code).toBe(3);
      expect(json<KillReport>(j)).toMatchObject({ outcome: "refused", sent: [] });
      // Still there.
      expect((await sessionsOn("be_app/app1")).matched).toBe(1);
      const dry = await run(["sessions", "kill", "be_app/app1", "--dry-run", "--yes"]);
      expect(dry.code).toBe(0);
      expect(dry.stdout).toMatch(
        /would send \(1 line\):\n {2}shutdown sessions server be_app\/app1/,
      );
      expect((await sessionsOn("be_app/app1")).matched).toBe(1);
    } finally {
      slow.abort();
    }
  });

  it("sessions kill --yes cuts a live connection (the client sees it end at once) and reads the sessions back at 0; again, it is a no-op", async () => {
    const slow = slowRequest(lab, 20_000);
    const port = await slow.port;
    await listed(port);
    const r = await run(["sessions", "kill", "be_app/app1", "--yes", "--json", "--reason", "test"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = json<KillReport>(r);
    expect(report).toMatchObject({
      outcome: "ok",
      verified: true,
      sent: ["shutdown sessions server be_app/app1"],
    });
    expect(report.servers).toEqual([
      expect.objectContaining({ backend: "be_app", server: "app1", cut: 1, left: 0 }),
    ]);
    // The client's request ends long before the backend's 20 s: HAProxy answers 502 or closes.
    const end = await slow.ended;
    expect(end.afterMs).toBeLessThan(15_000);
    expect(end.status === 502 || end.error !== undefined, JSON.stringify(end)).toBe(true);
    expect((await sessionsOn("be_app/app1")).matched).toBe(0);

    const again = await run(["sessions", "kill", "be_app/app1", "--json"]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(json<KillReport>(again)).toMatchObject({ outcome: "noop", sent: [] });
    const human = await run(["sessions", "kill", "be_app/app1"]);
    expect(human.stdout).toMatch(/^be_app\/app1 {2}no sessions {2}\(already; nothing sent\)$/m);
  });

  it("errors shows a malformed request sent to the frontend: where it came from and where it broke", async () => {
    const port = await new Promise<number>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: lab.httpPort }, () => {
        const local = s.localPort!;
        s.write("GET /bad HTTP/1.1\r\nHost: example.com\r\nBad Header: x\r\n\r\n");
        s.on("data", () => s.destroy());
        s.on("close", () => resolve(local));
      });
      s.on("error", reject);
    });
    const r = await run(["errors", "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = json<{ total: number; events: Record<string, unknown>[] }>(r);
    expect(out.total).toBeGreaterThanOrEqual(1);
    expect(out.events).toEqual([
      expect.objectContaining({
        direction: "request",
        proxy: "fe_http",
        frontend: "fe_http",
        backend: null,
        source: `127.0.0.1:${port}`,
        errorAt: 41,
        errorChar: " ",
        errorLine: "Bad Header: x\\r\\n",
      }),
    ]);
    const human = await run(["errors"]);
    expect(human.stdout).toMatch(
      new RegExp(
        `invalid request +fe_http +- +127\\.0\\.0\\.1:${port} +at 41: ' ' in "Bad Header: x\\\\r\\\\n"`,
      ),
    );
    const full = await run(["errors", "fe_http", "--full"]);
    expect(full.stdout).toMatch(/^ {2}00038 {2}Bad Header: x\\r\\n {2}<- here$/m);
    expect((await run(["errors", "fe_http", "--response", "--json"])).stdout).toMatch(
      /"events": \[\]/,
    );
    const typo = await run(["errors", "fe_htp"]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/no proxy named fe_htp; did you mean fe_http/);
  });

  it("reads sessions and errors over many targets (-t), a target that does not answer making it partial (exit 4)", async () => {
    const cfg = join(dir, "fleet.yaml");
    writeFileSync(
      cfg,
      `audit:\n  path: ${join(dir, "fleet-audit.jsonl")}\ntargets:\n  lb1:\n    socket: ${lab.sockets.admin}\n  lb2:\n    socket: ${lab.sockets.operator}\n  lb3:\n    socket: ${join(dir, "gone.sock")}\n`,
    );
    const fleet = (args: readonly string[]) =>
      hapops(args, { env: { HAPOPS_CONFIG: cfg }, timeoutMs: 60_000 });
    const slow = slowRequest(lab, 20_000);
    try {
      const port = await slow.port;
      await listed(port);
      const r = await fleet(["sessions", "be_app/app1", "-t", "lb1,lb2", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = json<{ sessions: (SessionRow & { target: string })[]; targets: unknown[] }>(r);
      expect(out.sessions.map((s) => [s.target, s.clientPort])).toEqual([
        ["lb1", port],
        ["lb2", port],
      ]);
      const text = await fleet(["sessions", "be_app/app1", "-t", "lb1,lb3"]);
      expect(text.code).toBe(4);
      expect(text.stdout).toMatch(new RegExp(`^lb1 +127\\.0\\.0\\.1:${port} +fe_http`, "m"));
      expect(text.stdout).toMatch(/^lb3 +not reached/m);
      const errors = await fleet(["errors", "-t", "lb1,lb2", "--json"]);
      expect(errors.code, errors.stdout + errors.stderr).toBe(0);
      expect(json<{ errors: { target: string }[] }>(errors).errors.map((e) => e.target)).toEqual([
        "lb1",
        "lb2",
      ]);
    } finally {
      slow.abort();
    }
  });
});
