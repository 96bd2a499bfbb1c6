import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import {
  failureLines,
  parseReloadAnswer,
  parseShowProc,
  parseUptime,
} from "../../src/parse/proc.js";
import { toLines } from "./fixtures.js";

/** Master CLI answers captured from each version by scripts/capture-master-fixtures.sh. */
const MASTER_VERSIONS = ["2.6", "2.8", "3.0", "3.2", "3.4"] as const;

function master(version: string, name: string): string[] {
  return toLines(
    readFileSync(
      join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, `master-${name}`),
      "utf8",
    ),
  );
}

const pids = (ps: readonly { pid: number }[]) => ps.map((p) => p.pid);

describe("parseShowProc", () => {
  it("reads the master and its one worker on 2.6", () => {
    const p = parseShowProc(master("2.6", "show-proc.txt"));
    expect(p.master).toEqual({
      pid: 4873,
      type: "master",
      reloads: 0,
      failed: 0,
      uptime: "0d00h00m00s",
      uptimeSec: 0,
      version: "2.6.12-1+deb12u4",
    });
    expect(p.workers).toEqual([
      {
        pid: 4877,
        type: "worker",
        reloads: 0,
        uptime: "0d00h00m00s",
        uptimeSec: 0,
        version: "2.6.12-1+deb12u4",
      },
    ]);
    expect(p.oldWorkers).toEqual([]);
    expect(p.programs).toEqual([]);
  });

  it.each(MASTER_VERSIONS)("%s: one worker, then a new one and the old one finishing", (v) => {
    const first = parseShowProc(master(v, "show-proc.txt"));
    expect(first.master.reloads).toBe(0);
    expect(first.workers).toHaveLength(1);
    expect(first.oldWorkers).toEqual([]);

    const after = parseShowProc(master(v, "show-proc-old-worker.txt"));
    expect(after.master.pid).toBe(first.master.pid);
    expect(after.master.reloads).toBe(1);
    expect(after.master.failed).toBe(0);
    expect(after.workers).toHaveLength(1);
    expect(pids(after.workers)).not.toEqual(pids(first.workers));
    expect(after.workers[0]!.reloads).toBe(0);
    // The worker from before the reload, finishing its request.
    expect(pids(after.oldWorkers)).toEqual(pids(first.workers));
    expect(after.oldWorkers[0]!.reloads).toBe(1);
  });

  it.each(["2.6", "2.8", "3.0"])(
    "%s: a failed reload counts in [failed: N] and keeps the worker under # workers",
    (v) => {
      const ok = parseShowProc(master(v, "show-proc-old-worker.txt"));
      const p = parseShowProc(master(v, "show-proc-failed-reload.txt"));
      expect(p.master.failed).toBe(1);
      expect(p.master.reloads).toBe(2);
      expect(pids(p.workers)).toEqual(pids(ok.workers));
      expect(p.oldWorkers).toEqual([]);
    },
  );

  it.each(["3.2", "3.4"])(
    "%s: after a failed reload the serving worker is listed under # old workers",
    (v) => {
      const ok = parseShowProc(master(v, "show-proc-old-worker.txt"));
      const p = parseShowProc(master(v, "show-proc-failed-reload.txt"));
      expect(p.master.failed).toBe(1);
      expect(p.workers).toEqual([]);
      expect(pids(p.oldWorkers)).toEqual(pids(ok.workers));
    },
  );

  it("reads 3.2+ without a # programs section, and program rows where there are some", () => {
    expect(parseShowProc(master("3.4", "show-proc.txt")).programs).toEqual([]);
    const p = parseShowProc([
      "#<PID>          <type>          <reloads>       <uptime>        <version>",
      "100             master          3 [failed: 2]   1d02h03m04s     2.6.12",
      "# workers",
      "101             worker          0               0d00h00m05s     2.6.12",
      "# programs",
      "102             dataplane       3               0d00h10m00s     -",
    ]);
    expect(p.master).toMatchObject({ reloads: 3, failed: 2, uptimeSec: 93784 });
    expect(p.programs).toEqual([
      expect.objectContaining({ pid: 102, type: "dataplane", reloads: 3, uptimeSec: 600 }),
    ]);
  });

  it("refuses what is not a show proc answer", () => {
    expect(() => parseShowProc(master("3.4", "show-proc-at-user-level.txt"))).toThrow(
      ProtocolError,
    );
    expect(() => parseShowProc([])).toThrow(/no master row/);
    expect(() =>
      parseShowProc(["#<PID> <type> <reloads> <uptime> <version>", "x master 0 0d00h00m00s v"]),
    ).toThrow(ProtocolError);
  });

  it("an answer cut at any offset parses or is a ProtocolError, never anything else", () => {
    const text = master("2.8", "show-proc-old-worker.txt").join("\n");
    for (let i = 0; i <= text.length; i++) {
      try {
        parseShowProc(toLines(text.slice(0, i)));
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
      }
    }
  });
});

describe("parseUptime", () => {
  it.each([
    ["0d00h00m01s", 1],
    ["1d00h00m00s", 86400],
    ["12d 3h04m05s", 12 * 86400 + 3 * 3600 + 4 * 60 + 5],
    ["soon", undefined],
  ])("%s", (text, sec) => expect(parseUptime(text)).toBe(sec));
});

describe("parseReloadAnswer", () => {
  it("2.6 answers nothing: the master re-executes itself and closes the connection", () => {
    expect(parseReloadAnswer(master("2.6", "reload-success.txt"))).toEqual({
      success: undefined,
      logs: [],
    });
    expect(parseReloadAnswer(master("2.6", "reload-failed.txt"))).toEqual({
      success: undefined,
      logs: [],
    });
  });

  it.each(["2.8", "3.0", "3.2", "3.4"])(
    "%s: Success=1 and the start-up logs; Success=0 with HAProxy's alerts",
    (v) => {
      const ok = parseReloadAnswer(master(v, "reload-success.txt"));
      expect(ok.success).toBe(true);
      expect(ok.logs.some((l) => /Loading success/.test(l))).toBe(true);
      const failed = parseReloadAnswer(master(v, "reload-failed.txt"));
      expect(failed.success).toBe(false);
      const words = failureLines(failed.logs);
      expect(words.some((l) => /unknown keyword 'bogus_keyword'/.test(l))).toBe(true);
      expect(words.some((l) => /Loading failure|Failed to load worker/.test(l))).toBe(true);
      expect(words.every((l) => !l.startsWith("[NOTICE]"))).toBe(true);
    },
  );

  it("refuses an answer that is not Success=", () => {
    expect(() => parseReloadAnswer(["Permission denied"])).toThrow(ProtocolError);
  });
});
