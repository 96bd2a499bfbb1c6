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

function hapops(args, { capture = false } = {}) {
  process.stdout.write(`\n$ hapops ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], {
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
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
