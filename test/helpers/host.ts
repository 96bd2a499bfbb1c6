import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CliResult } from "./cli.js";

/**
 * A throwaway copy of this host for tests that install users, groups, sudoers rules and system
 * files: a private mount namespace (held open by a sleeping process) with overlays on /etc,
 * /var/log and /usr/local. Everything written there lands in the overlays' upper directories and
 * is gone when the host is closed; the machine itself is never touched. Needs root and a kernel
 * that lets this sandbox mount (CI runs as root).
 */
export interface PrivateHost {
  /** Run a command inside, like spawnSync (stdin from `input`). */
  sh(
    cmd: string,
    args: readonly string[],
    input?: string,
  ): { status: number | null; stdout: string; stderr: string };
  /** Run a command inside without blocking the test (a CLI run as some user). */
  run(cmd: string, args: readonly string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  /** Write a file inside (root-owned, with this mode). */
  write(path: string, content: string, mode: number): void;
  read(path: string): string;
  close(): void;
}

const OVERLAID = ["/etc", "/var/log", "/usr/local"];

/** Whether this machine can make a private host (root, unshare, nsenter, overlayfs). */
export function canMakePrivateHost(): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = mkdtempSync(join(tmpdir(), "hapops-ns-probe-"));
  try {
    for (const d of ["lower", "up", "work", "merged"]) mkdirSync(join(dir, d));
    const r = spawnSync("unshare", [
      "-m",
      "--propagation",
      "private",
      "mount",
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${dir}/lower,upperdir=${dir}/up,workdir=${dir}/work`,
      `${dir}/merged`,
    ]);
    return (
      r.status === 0 && spawnSync("sh", ["-c", "command -v nsenter sudo runuser"]).status === 0
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function privateHost(): PrivateHost {
  const dir = mkdtempSync(join(tmpdir(), "hapops-host-"));
  const mounts = OVERLAID.map((target, i) => {
    const up = join(dir, `up${i}`);
    const work = join(dir, `work${i}`);
    mkdirSync(up);
    mkdirSync(work);
    return `mount -t overlay overlay -o lowerdir=${target},upperdir=${up},workdir=${work} ${target}`;
  });
  // The holder mounts the overlays in its new namespace, then sleeps until closed.
  const holder: ChildProcess = spawn(
    "unshare",
    [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `${mounts.join(" && ")} && echo ready && exec sleep infinity`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const ready = spawnSync("sh", [
    "-c",
    // Wait (up to 10 s) until the holder's namespace has the overlay on /etc.
    `for i in $(seq 1 200); do grep -q ' /etc overlay' /proc/${holder.pid}/mounts 2>/dev/null && exit 0; sleep 0.05; done; exit 1`,
  ]);
  if (ready.status !== 0) {
    holder.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw new Error("could not set up the private host (unshare + overlay)");
  }
  const enter = ["-t", String(holder.pid), "-m", "--"];

  const host: PrivateHost = {
    sh(cmd, args, input) {
      const r = spawnSync("nsenter", [...enter, cmd, ...args], {
        encoding: "utf8",
        ...(input !== undefined ? { input } : { stdio: ["ignore", "pipe", "pipe"] }),
      });
      return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
    },
    run(cmd, args, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn("nsenter", [...enter, cmd, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
        child.once("error", reject);
        child.once("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    },
    write(path, content, mode) {
      const r = host.sh(
        "sh",
        [
          "-c",
          `umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1" && chmod ${mode.toString(8)} "$1"`,
          "sh",
          path,
        ],
        content,
      );
      if (r.status !== 0) throw new Error(`writing ${path} in the private host: ${r.stderr}`);
    },
    read(path) {
      const r = host.sh("cat", [path]);
      if (r.status !== 0) throw new Error(`reading ${path} in the private host: ${r.stderr}`);
      return r.stdout;
    },
    close() {
      holder.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return host;
}
