// npm run demo: start a sandbox HAProxy, show `servers` and `stat` against it, stop it, and
// check that nothing is left running.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "dist", "hapops.cjs");
const dir = mkdtempSync(join(tmpdir(), "hapops-demo-"));

// `sudo npm run demo` is root trying hapops as itself, not an operator going through the sudo
// rule: hapops refuses SUDO_* from anything but sudo itself, so they are not passed on.
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("SUDO_")),
);

function hapops(args, { capture = false, env = {} } = {}) {
  const shownEnv = Object.entries(env)
    .map(([k, v]) => `${k}=${v} `)
    .join("");
  process.stdout.write(`\n$ ${shownEnv}hapops ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], {
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
    env: { ...baseEnv, ...env },
  });
  if (r.status !== 0) throw new Error(`hapops ${args.join(" ")} exited ${r.status}`);
  return r.stdout;
}

let state;
let failed = false;
try {
  hapops(["sandbox", "start", "--detach", "--dir", dir]);
  state = JSON.parse(hapops(["sandbox", "status", "--dir", dir, "--json"], { capture: true }));
  hapops(["-s", state.socket, "servers"]);
  hapops(["-s", state.socket, "stat", "be_app"]);
  hapops(["-s", state.socket, "certs"]);
  // A change, as an operator makes one: planned, guarded, verified, audited (the sandbox's
  // hapops.yaml points the audit log into the sandbox directory).
  const env = { HAPOPS_CONFIG: join(dir, "hapops.yaml") };
  hapops(["drain", "be_app/app1", "--wait", "--reason", "demo"], { env });
  hapops(["ready", "be_app/app1"], { env });
  hapops(["audit", "tail", "-n", "4"], { env });
} catch (e) {
  failed = true;
  process.stderr.write(`demo: ${e.message}\n`);
} finally {
  hapops(["sandbox", "stop", "--dir", dir]);
  const left = state
    ? [state.pid, state.haproxyPid].filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      })
    : [];
  if (left.length > 0) {
    process.stderr.write(`demo: processes left behind: ${left.join(", ")}\n`);
    failed = true;
  }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
