import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { startLab, type Lab, type LabOptions } from "../../src/sandbox/lab.js";

/**
 * A real HAProxy with real backends for the tests of one file: started before them in a temp
 * dir, always stopped and removed after, even when a test fails.
 */
export function useLab(opts: Omit<LabOptions, "dir"> = {}): () => Lab {
  let lab: Lab | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-test-"));
    lab = await startLab({ ...opts, dir });
  });
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!lab) throw new Error("lab not started");
    return lab;
  };
}
