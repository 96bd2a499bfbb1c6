import { spawn, type SpawnOptions } from "node:child_process";
import { join } from "node:path";

export const HAPOPS = join(import.meta.dirname, "..", "..", "dist", "hapops.cjs");

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

/** Run the built CLI as a child process, with a clean environment unless told otherwise. */
export function hapops(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/tmp" };
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
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
