import { execFile, execFileSync, type ExecFileSyncOptions } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { EnvironmentError } from "../errors.js";

/**
 * Programs hapops runs (getent, id, logger, visudo, groupadd, openssl, haproxy) come from these
 * directories only, never from the caller's PATH: under sudo without `secure_path` a PATH entry
 * such as ~/bin would otherwise run as root.
 */
export const SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The whole environment a helper gets: no LD_*, NODE_OPTIONS, locale or IFS from the caller,
 * whatever sudoers kept.
 */
export function toolEnv(): NodeJS.ProcessEnv {
  return { PATH: SAFE_PATH, LANG: "C", LC_ALL: "C" };
}

const found = new Map<string, string>();

/** Absolute path of a helper in SAFE_PATH (root-owned, not writable by others), or undefined. */
export function findTool(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  for (const dir of SAFE_PATH.split(":")) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      const st = statSync(path);
      if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022) !== 0) continue;
      found.set(name, path);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether a program outside SAFE_PATH may run as a helper (the haproxy binary a master process
 * runs from, found in /proc): an absolute path to a regular, executable, root-owned file that no
 * one else can write, in directories root owns and no one else can write, like SAFE_PATH's.
 */
export function isTrustedProgram(path: string): boolean {
  if (!path.startsWith("/")) return false;
  try {
    accessSync(path, constants.X_OK);
    const st = statSync(path);
    if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      const d = statSync(dir);
      if (d.uid !== 0 || (d.mode & 0o022) !== 0) return false;
      if (dir === "/") return true;
    }
  } catch {
    return false;
  }
}

/** Absolute path of a helper, or a typed error saying which Debian package has it. */
export function tool(name: string, pkg: string): string {
  const path = findTool(name);
  if (path === undefined)
    throw new EnvironmentError(
      `${name} is not installed in ${SAFE_PATH} (as a root-owned program); install it: apt-get install ${pkg}`,
    );
  return path;
}

/** Run a helper synchronously by absolute path in the fixed environment; returns its stdout. */
export function runTool(
  name: string,
  pkg: string,
  args: readonly string[],
  opts: Omit<ExecFileSyncOptions, "env" | "encoding"> = {},
): string {
  return execFileSync(tool(name, pkg), args, {
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
    env: toolEnv(),
    encoding: "utf8",
  });
}

/** The same, asynchronously; rejects with the helper's stderr in the error. */
export function runToolAsync(
  name: string,
  pkg: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<string> {
  const path = tool(name, pkg);
  return new Promise((resolve, reject) =>
    execFile(
      path,
      args,
      {
        env: toolEnv(),
        encoding: "utf8",
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
      },
      (err, stdout, stderr) =>
        err
          ? reject(Object.assign(new Error(err.message), err, { stdout, stderr }))
          : resolve(stdout),
    ),
  );
}
