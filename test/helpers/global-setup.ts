import { execFileSync } from "node:child_process";

/** End-to-end tests run the bundled CLI the way a user does; build it once per run. */
export function setup(): void {
  execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
}
