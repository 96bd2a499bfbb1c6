import { spawn, type SpawnOptions } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";

/**
 * Every run gets a config of its own unless a test brings one, so that no test depends on (or
 * is changed by) /etc/hapops/hapops.yaml, and change tests have a writable audit log.
 */
const neutralDir = mkdtempSync(join(inject("runDir"), "cli-"));
export const NEUTRAL_CONFIG = join(neutralDir, "hapops.yaml");
export const NEUTRAL_AUDIT = join(neutralDir, "audit.jsonl");
/** Where --persist keeps previous files in tests (never the host's /var/lib/hapops). */
export const NEUTRAL_BACKUPS = join(neutralDir, "backups");
writeFileSync(NEUTRAL_CONFIG, `audit:\n  path: ${NEUTRAL_AUDIT}\nbackupDir: ${NEUTRAL_BACKUPS}\n`, {
  mode: 0o644,
});

/** The newest backup --persist kept of a file with this name. */
export function latestBackup(name: string): string {
  const found = readdirSync(NEUTRAL_BACKUPS)
    .filter((f) => f.startsWith(`${name}.`))
    .map((f) => join(NEUTRAL_BACKUPS, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  const last = found.at(-1);
  if (!last) throw new Error(`no backup of ${name} in ${NEUTRAL_BACKUPS}`);
  return last;
}
// Readable by the unprivileged users some tests run as (the audit file itself stays 0600).
chmodSync(neutralDir, 0o755);

/** The bundle under test; HAPOPS_TEST_BIN runs the suite against another build (an older one). */
export const HAPOPS =
  process.env.HAPOPS_TEST_BIN ?? join(import.meta.dirname, "..", "..", "dist", "hapops.cjs");

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Record<string, string | undefined>;
  readonly uid?: number;
  readonly gid?: number;
  readonly timeoutMs?: number;
}

/** The environment a raw spawn of the CLI should get (tests that drive a child themselves). */
export function cliEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/tmp", HAPOPS_CONFIG: NEUTRAL_CONFIG };
}

/** Run the built CLI as a child process, with a clean environment unless told otherwise. */
export function hapops(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/tmp",
    HAPOPS_CONFIG: NEUTRAL_CONFIG,
  };
  // A key given as undefined removes the default (to test the lookup itself).
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const spawnOpts: SpawnOptions = { env, stdio: ["ignore", "pipe", "pipe"] };
  if (opts.uid !== undefined) spawnOpts.uid = opts.uid;
  if (opts.gid !== undefined) spawnOpts.gid = opts.gid;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HAPOPS, ...args], spawnOpts);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Parse stdout as JSON, with the whole result in the error when it is not. */
export function json<T = unknown>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}
