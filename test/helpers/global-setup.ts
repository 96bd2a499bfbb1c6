import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** A directory for the whole run's scratch files, removed when the run ends. */
    runDir: string;
  }
}

/**
 * End-to-end tests run the bundled CLI the way a user does; build it once per run. Scratch files
 * that outlive one test file go under one directory, removed at the end.
 */
export function setup(project: TestProject): () => void {
  if (process.env.HAPOPS_TEST_BIN === undefined)
    execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
  const runDir = mkdtempSync(join(tmpdir(), "hapops-test-"));
  // Readable by the unprivileged users some tests run as.
  chmodSync(runDir, 0o755);
  project.provide("runDir", runDir);
  return () => rmSync(runDir, { recursive: true, force: true });
}
