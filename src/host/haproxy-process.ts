import { execFile } from "node:child_process";
import { readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { UsageError } from "../errors.js";
import { findTool, isTrustedProgram, runToolAsync, toolEnv } from "../util/tools.js";

/**
 * What this host says about a running HAProxy master (/proc/<pid>): the files it loads at a
 * reload (it re-executes itself with the same arguments, so its -f files are what the reload
 * reads), its working directory and its binary. Undefined where /proc does not say (another
 * host, another pid namespace, no permission).
 */
export interface MasterProcess {
  readonly pid: number;
  /** `-f` arguments and the files after `--`, in order (files or directories). */
  readonly configs: readonly string[];
  /** Where relative paths are resolved: `-C <dir>`, else the process's working directory. */
  readonly cwd: string | undefined;
  /** The binary a reload runs: /proc/<pid>/exe, without " (deleted)" after an upgrade. */
  readonly exe: string | undefined;
}

/** Options of haproxy(1) that take one value (`-sf`/`-st` take pids until the next option). */
const WITH_VALUE = new Set(["-f", "-C", "-p", "-S", "-x", "-L", "-n", "-N", "-m", "-sf", "-st"]);

/**
 * The config files and `-C` directory in a master's argv (the master re-executes itself with
 * `-sf <pids> -x sockpair@N` added after a reload, measured on 2.6 to 3.4).
 */
export function parseMasterArgs(argv: readonly string[]): { configs: string[]; dir?: string } {
  const configs: string[] = [];
  let dir: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      for (const f of argv.slice(i + 1)) if (!f.startsWith("-")) configs.push(f);
      break;
    }
    if (a === "-f" && argv[i + 1] !== undefined) configs.push(argv[++i]!);
    else if (a === "-C" && argv[i + 1] !== undefined) dir = argv[++i]!;
    else if (a === "-sf" || a === "-st") while (/^\d+$/.test(argv[i + 1] ?? "")) i++;
    else if (WITH_VALUE.has(a)) i++;
  }
  return dir === undefined ? { configs } : { configs, dir };
}

export function readMasterProcess(pid: number): MasterProcess | undefined {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (argv[argv.length - 1] === "") argv.pop();
  } catch {
    return undefined;
  }
  if (argv.length === 0) return undefined;
  const safe = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  const procCwd = safe(() => readlinkSync(`/proc/${pid}/cwd`));
  const exe = safe(() => readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, ""));
  const { configs, dir } = parseMasterArgs(argv);
  const cwd = dir !== undefined ? (procCwd ? resolve(procCwd, dir) : undefined) : procCwd;
  return {
    pid,
    configs: configs.map((c) => (isAbsolute(c) || cwd === undefined ? c : resolve(cwd, c))),
    cwd,
    exe,
  };
}

/**
 * The text of the configuration a reload loads: each file, and each directory's `*.cfg` files in
 * alphabetical order (what HAProxy does with `-f <dir>`, management.txt 3).
 */
export function readConfigText(paths: readonly string[]): string {
  const parts: string[] = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p)
        .filter((n) => n.endsWith(".cfg"))
        .sort())
        parts.push(readFileSync(join(p, f), "utf8"));
    } else parts.push(readFileSync(p, "utf8"));
  }
  return parts.join("\n");
}

export interface ConfigCheck {
  readonly ok: boolean;
  /** The command run, for the report (`/usr/sbin/haproxy -c -f /etc/haproxy/haproxy.cfg`). */
  readonly command: string;
  /** HAProxy's output, stdout and stderr, as lines. */
  readonly output: readonly string[];
}

/**
 * The haproxy binary that checks a configuration: the one the master runs (a reload re-executes
 * it), when it passes the same ownership checks as SAFE_PATH's helpers; otherwise the haproxy in
 * SAFE_PATH. A configuration valid for another version is not proof for this one.
 */
export function checkerBinary(master: MasterProcess | undefined): string {
  if (master?.exe !== undefined && isTrustedProgram(master.exe)) return master.exe;
  const found = findTool("haproxy");
  if (found === undefined)
    throw new UsageError(
      `no haproxy binary to check the configuration with (${master?.exe ? `${master.exe} is not a root-owned program only root can change, and ` : ""}none in /usr/sbin:/usr/bin:/sbin:/bin); install haproxy, or check and reload by hand`,
    );
  return found;
}

/** `haproxy -c -f <file>...`: HAProxy's own verdict on a configuration, with its words. */
export function checkConfig(
  bin: string,
  configs: readonly string[],
  cwd: string | undefined,
  timeoutMs: number,
): Promise<ConfigCheck> {
  const args = ["-c", ...configs.flatMap((f) => ["-f", f])];
  const command = [bin, ...args].join(" ");
  return new Promise((done) =>
    execFile(
      bin,
      args,
      { env: toolEnv(), encoding: "utf8", timeout: timeoutMs, cwd: cwd ?? "/" },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`.split("\n").filter((l) => l.trim().length > 0);
        done({
          ok: err === null,
          command,
          output:
            err && output.length === 0
              ? [`${bin} failed: ${err.killed ? "timed out" : err.message}`]
              : output,
        });
      },
    ),
  );
}

/** A systemd unit name (systemd.unit(5)): what `--systemd <unit>` may name. */
const UNIT = /^[A-Za-z0-9:_.\\@-]{1,255}$/;

/**
 * Under sudo, only an haproxy unit (`haproxy`, `haproxy@edge`, `haproxy-internal.service`):
 * root must not reload whatever unit an operator names.
 */
export function validateUnit(unit: string, sudo: boolean): string {
  if (!UNIT.test(unit) || unit.startsWith("-"))
    throw new UsageError(`--systemd ${JSON.stringify(unit)} is not a systemd unit name`);
  if (sudo && !/^haproxy([@-][A-Za-z0-9:_.\\@-]*)?(\.service)?$/.test(unit))
    throw new UsageError(
      `--systemd ${unit} is refused under sudo: only haproxy units (haproxy, haproxy@<name>, haproxy-<name>) are reloaded for an operator`,
    );
  return unit;
}

/** `systemctl reload <unit>`, by absolute path; rejects with systemctl's own words. */
export async function systemctlReload(unit: string, timeoutMs: number): Promise<void> {
  try {
    await runToolAsync("systemctl", "systemd", ["reload", "--", unit], { timeoutMs });
  } catch (e) {
    const out = (e as { stderr?: unknown }).stderr;
    const stderr = typeof out === "string" ? out.trim() : "";
    throw new Error(stderr || (e as Error).message, { cause: e });
  }
}
