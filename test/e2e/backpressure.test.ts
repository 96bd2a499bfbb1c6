import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { setTable } from "../../src/commands/builders.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { cliEnv, HAPOPS } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";

/**
 * A streamed read whose stdout is a pipe read slowly (`hapops table show t --json | less`) reads
 * the socket no faster than the pipe is read: hapops' memory stays bounded, where it used to
 * hold the whole answer (a million entries: 140 MB of JSON, 700 MB of RSS, measured).
 */

const TABLE = "be_big";
const ENTRIES = 400_000;
/**
 * Long keys and many stored types: fewer entries to fill for a large answer. No `expire`, so
 * every entry prints `exp=0` and two reads of the table are the same bytes.
 */
const STORE = "gpc0,gpc1,conn_cnt,sess_cnt,http_req_cnt,http_err_cnt,bytes_in_cnt,bytes_out_cnt";
/**
 * hapops' RSS while its stdout is not read (measured: 58 MiB), and its peak over the whole run
 * (a fast read's peaks at ~90 MiB: garbage not yet collected).
 */
const STALLED_BOUND_MIB = 100;
const PEAK_BOUND_MIB = 150;

const lab = useLab({
  backends: [
    {
      name: TABLE,
      lines: [`stick-table type string len 128 size 1m store ${STORE}`],
      servers: [{ name: "s1", check: false }],
    },
  ],
});

/** Fill the table over one pipelined session (hapops' window keeps HAProxy's buffer safe). */
async function fill(): Promise<void> {
  const socket = await connect(
    { kind: "unix", path: lab().sockets.admin },
    { connectTimeoutMs: 5000 },
  );
  const session = RuntimeSession.start(socket, { target: "lab", timeoutMs: 30_000 });
  const spec = { type: "string" as const, length: 128 };
  try {
    for (let i = 0; i < ENTRIES; i += 5000) {
      const batch = [];
      for (let j = i; j < Math.min(ENTRIES, i + 5000); j++)
        batch.push(
          setTable(TABLE, { value: `client-${j}-`.padEnd(120, "x"), spec }, [
            { type: "gpc0", value: String(j % 1000) },
            { type: "http_req_cnt", value: String(j) },
          ]),
        );
      await session.pipeline(batch);
    }
  } finally {
    await session.close();
  }
}

function procField(pid: number, file: string, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)`, "m").exec(
      readFileSync(`/proc/${pid}/${file}`, "utf8"),
    );
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // the process has exited
  }
}

interface Read {
  readonly code: number | null;
  readonly stderr: string;
  readonly bytes: number;
  readonly sha256: string;
  /** Highest VmHWM seen (KiB), read while hapops ran. */
  readonly peakKiB: number;
  /** VmHWM (KiB) once hapops had stalled on the unread pipe. */
  readonly stalledKiB?: number;
}

/**
 * Run `hapops table show --json` with stdout to a pipe. `slow`: read 256 KiB of it, then nothing
 * until hapops has stopped reading its socket (its read counter, /proc/<pid>/io rchar, stands
 * still while its stdout is full), then the rest as fast as it comes.
 */
function readTable(args: readonly string[], slow: boolean): Promise<Read> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HAPOPS, "-s", lab().sockets.admin, ...args], {
      env: cliEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pid = child.pid!;
    const hash = createHash("sha256");
    let bytes = 0;
    let stderr = "";
    let peakKiB = 0;
    let stalledKiB: number | undefined;
    const sample = () => {
      const hwm = procField(pid, "status", "VmHWM");
      if (hwm !== undefined) peakKiB = Math.max(peakKiB, hwm);
      return hwm;
    };
    const sampler = setInterval(sample, 20);
    const deadline = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const take = (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    };
    if (!slow) child.stdout.on("data", take);
    else {
      const head = (d: Buffer) => {
        take(d);
        if (bytes < 256 * 1024) return;
        child.stdout.off("data", head);
        child.stdout.pause();
        void waitForStall(pid).then(() => {
          stalledKiB = sample();
          child.stdout.on("data", take);
          child.stdout.resume();
        }, reject);
      };
      child.stdout.on("data", head);
    }
    child.once("error", reject);
    child.once("close", (code) => {
      clearInterval(sampler);
      clearTimeout(deadline);
      resolve({
        code,
        stderr,
        bytes,
        sha256: hash.digest("hex"),
        peakKiB,
        ...(stalledKiB === undefined ? {} : { stalledKiB }),
      });
    });
  });
}

/**
 * Resolves once `pid` has read nothing (rchar unchanged) for 40 samples 25 ms apart in a row:
 * it waits on its stdout. Without backpressure it never waits, and stops reading only once it
 * holds the whole answer, which the RSS check then catches.
 */
function waitForStall(pid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let last = -1;
    let still = 0;
    const started = Date.now();
    const timer = setInterval(() => {
      const rchar = procField(pid, "io", "rchar");
      if (rchar === undefined || Date.now() - started > 60_000) {
        clearInterval(timer);
        reject(new Error(`hapops (pid ${pid}) exited or never stalled on its unread stdout`));
        return;
      }
      still = rchar === last ? still + 1 : 0;
      last = rchar;
      if (still >= 40) {
        clearInterval(timer);
        resolve();
      }
    }, 25);
  });
}

describe("a streamed read into a slow pipe", () => {
  beforeAll(fill, 120_000);

  it.each([
    ["--json", ["table", "show", TABLE, "--json"]],
    ["aligned columns", ["table", "show", TABLE]],
  ])(
    "table show %s holds the socket read while stdout is full: bounded memory, the same output as a fast read",
    { timeout: 240_000 },
    async (_, args) => {
      const fast = await readTable(args, false);
      expect(fast.code, fast.stderr).toBe(0);
      // Queued for stdout, the answer took 5 times its size (716 MiB for this table's 148 MiB
      // of JSON, measured before backpressure): far beyond the bounds.
      expect(fast.bytes).toBeGreaterThan(80 * 1024 * 1024);

      const slow = await readTable(args, true);
      expect(slow.code, slow.stderr).toBe(0);
      expect(slow.stalledKiB).toBeDefined();
      expect(slow.stalledKiB! / 1024).toBeLessThan(STALLED_BOUND_MIB);
      expect(slow.peakKiB / 1024).toBeLessThan(PEAK_BOUND_MIB);
      expect(slow.bytes).toBe(fast.bytes);
      expect(slow.sha256).toBe(fast.sha256);
    },
  );
});
