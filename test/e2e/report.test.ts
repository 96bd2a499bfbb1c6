import { readFileSync } from "node:fs";
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../src/util/wait.js";
import { hapops, NEUTRAL_AUDIT, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

/**
 * One JSON report shape for every change, whatever happened: a dry run, a success, a refusal,
 * a failure, a wait that timed out. Scripts read `outcome`, `sent` and `verified` the same way for
 * a drain, a table change, a raw line or a certificate rotation.
 */
const lab = useLab({
  backends: [
    {
      name: "be_app",
      lines: ["stick-table type ip size 1k store gpc0"],
      servers: [{ name: "app1" }, { name: "app2" }],
    },
    { name: "be_one", servers: [{ name: "solo" }] },
    { name: "be_wait", servers: [{ name: "w1" }, { name: "w2" }] },
    { name: "be_hash", lines: ["balance source"], servers: [{ name: "x1" }, { name: "x2" }] },
  ],
});

const run = (args: readonly string[]) => hapops(["-s", lab().sockets.admin, ...args, "--json"]);

interface Report {
  op: string;
  target: string;
  dryRun: boolean;
  outcome: "ok" | "noop" | "refused" | "failed";
  plan: Record<string, unknown> | null;
  sent: string[];
  verified: boolean;
  error?: { code: string; exitCode: number; message: string };
}

function report(r: CliResult): Report {
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  const rep = parsed as Report;
  for (const k of ["op", "target", "dryRun", "outcome", "plan", "sent", "verified"])
    expect(rep, `field ${k} in ${r.stdout}`).toHaveProperty(k);
  expect(Array.isArray(rep.sent)).toBe(true);
  return rep;
}

describe("the common report of a change (--json)", () => {
  it.each([
    [["drain", "be_app/app1"], "drain"],
    [["weight", "be_app/app2", "50"], "weight"],
    [["table", "set", "be_app", "192.0.2.1", "data.gpc0=1"], "table set"],
    [["raw", "set weight be_app/app2 60"], "raw"],
  ])("%j: dry run, then the real run", async (args, op) => {
    const dry = report(await run([...args, "-n"]));
    expect(dry).toMatchObject({ op, dryRun: true, outcome: "ok", verified: false });
    expect(dry.sent.length).toBeGreaterThan(0);
    const real = report(await run(args));
    expect(real).toMatchObject({ op, dryRun: false });
    expect(["ok", "noop"]).toContain(real.outcome);
    expect(real.sent).toEqual(dry.sent);
    if (op !== "raw") expect(real.verified).toBe(true);
  });

  it("a refusal by a guard: the same report in the dry run and the real run, with the error beside it", async () => {
    for (const extra of [["-n"], []]) {
      const r = await run(["maint", "be_one/solo", ...extra]);
      expect(r.code).toBe(3);
      const rep = report(r);
      expect(rep).toMatchObject({ op: "maint", outcome: "refused", sent: extra.length ? [] : [] });
      expect(rep.error).toMatchObject({ code: "GUARD", exitCode: 3 });
    }
  });

  it("a refusal of bad input (exit 2) is a report too", async () => {
    const r = await run(["weight", "be_app/app1", "9999"]);
    expect(r.code).toBe(2);
    expect(report(r)).toMatchObject({ op: "weight", outcome: "refused", sent: [], plan: null });
  });

  it("a --reason too long for the audit log is refused (exit 2), nothing sent, recorded cut short", async () => {
    const r = await run(["drain", "be_app/app2", "--reason", "A".repeat(5000)]);
    expect(r.code).toBe(2);
    expect(report(r)).toMatchObject({ outcome: "refused", sent: [] });
    expect(r.stdout).toMatch(/--reason is 5000 characters long; the limit is 1024/);
    const last = readFileSync(NEUTRAL_AUDIT, "utf8").trim().split("\n").at(-1)!;
    expect(last.length).toBeLessThan(4000);
    expect(JSON.parse(last)).toMatchObject({ op: "drain", outcome: "refused" });
  });

  it("a failure keeps what was sent", async () => {
    // A static balance algorithm takes only 0% or 100%: HAProxy refuses the line.
    const r = await run(["weight", "be_hash/x1", "7"]);
    expect(r.code).toBe(1);
    const rep = report(r);
    expect(rep).toMatchObject({ outcome: "failed", sent: ["set server be_hash/x1 weight 7"] });
    expect(rep.error?.code).toBe("HAPROXY_REFUSED");
  });

  it("a wait that timed out keeps the drain that was sent and says what is left", async () => {
    expect((await run(["maint", "be_wait/w2"])).code).toBe(0);
    const slow = new Promise<void>((resolve) =>
      request(
        { host: "127.0.0.1", port: lab().httpPort, path: "/wait/slow?ms=3000", agent: false },
        (res) => {
          res.resume();
          res.on("end", () => resolve());
        },
      )
        .on("error", () => resolve())
        .end(),
    );
    await waitUntil(() => (lab().backends.get("be_wait/w1")!.inFlight === 1 ? true : undefined), {
      what: "the slow request to reach w1",
      timeoutMs: 5000,
    });
    expect((await run(["ready", "be_wait/w2"])).code).toBe(0);
    const r = await run([
      "drain",
      "be_wait/w1",
      "--wait",
      "--wait-timeout",
      "300ms",
      "--poll-interval",
      "100ms",
    ]);
    expect(r.code).toBe(6);
    const rep = report(r);
    expect(rep).toMatchObject({
      op: "drain",
      outcome: "failed",
      sent: ["set server be_wait/w1 state drain"],
      verified: true,
      wait: { drained: false, remaining: { "be_wait/w1": 1 } },
    });
    expect(rep.error?.code).toBe("WAIT_TIMEOUT");
    await slow;
    await run(["ready", "be_wait/*"]);
  });
});
