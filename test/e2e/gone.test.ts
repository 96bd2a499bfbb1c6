import { spawn } from "node:child_process";
import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { waitUntil } from "../../src/util/wait.js";
import { cliEnv, HAPOPS } from "../helpers/cli.js";

/**
 * HAProxy dies under a running command (3.2.0 aborted on a flood of pipelined lines; a crash, an
 * OOM kill): the operator hears that HAProxy is gone, not only that an answer was cut off.
 */
let lab: Lab;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hapops-gone-"));
  lab = await startTestLab({
    dir,
    backends: [{ name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] }],
  });
});
afterAll(async () => {
  await lab?.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("HAProxy gone during a command", () => {
  it("says the socket now refuses connections (exit 4), with what was sent", async () => {
    // A long request holds a session on one server; the drain of both waits for it.
    const slow = new Promise<void>((resolve) =>
      request(
        { host: "127.0.0.1", port: lab.httpPort, path: "/wait/slow?ms=60000", agent: false },
        (res) => {
          res.resume();
          res.on("end", () => resolve());
        },
      )
        .on("error", () => resolve())
        .end(),
    );
    await waitUntil(
      () => ([...lab.backends.values()].some((b) => b.inFlight === 1) ? true : undefined),
      { what: "the slow request to reach a server", timeoutMs: 5000 },
    );
    const child = spawn(
      process.execPath,
      [HAPOPS, "-s", lab.sockets.admin, "drain", "be_wait/*", "--force", "--wait", "--json"],
      { stdio: ["ignore", "pipe", "pipe"], env: cliEnv() },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    // Once the drain is sent and verified, the wait polls: then HAProxy dies.
    await waitUntil(
      async () => {
        const r = await fetchAdmin(lab);
        return r.includes("DRAIN") ? true : undefined;
      },
      { what: "the drain to take effect", timeoutMs: 10_000 },
    );
    process.kill(lab.pid, "SIGKILL");
    const code = await exited;
    await slow;
    expect(code, err).toBe(4);
    const report = JSON.parse(out) as { sent: string[]; error: { code: string; message: string } };
    expect(report.error.code).toBe("HAPROXY_GONE");
    expect(report.error.message).toMatch(/now refuses connections: HAProxy stopped or died/);
    expect(report.sent).toEqual([
      "set server be_wait/w1 state drain",
      "set server be_wait/w2 state drain",
    ]);
  });
});

async function fetchAdmin(l: Lab): Promise<string> {
  const { connect } = await import("../../src/transport/connect.js");
  const { RuntimeSession } = await import("../../src/runtime/session.js");
  const { showServersState } = await import("../../src/commands/builders.js");
  const s = RuntimeSession.start(
    await connect({ kind: "unix", path: l.sockets.user }, { connectTimeoutMs: 2000 }),
    {
      target: "t",
      timeoutMs: 5000,
    },
  );
  try {
    const lines = await s.run(showServersState("be_wait"));
    // srv_admin_state 8 is FDRAIN.
    return lines.some((x) => / be_wait \d+ w\d \S+ \d+ 8 /.test(` ${x} `)) ? "DRAIN" : "";
  } finally {
    await s.close();
  }
}
