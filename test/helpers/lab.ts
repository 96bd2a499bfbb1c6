import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { startLab, type Lab, type LabOptions } from "../../src/sandbox/lab.js";
import { labHaproxy } from "./versions.js";

/**
 * A lab on the suite's HAProxy (HAPOPS_TEST_HAPROXY, else Debian's; see versions.ts): its binary,
 * and no TLS binds or TLS socket on a build without OpenSSL (whatever the options ask).
 */
export function startTestLab(opts: LabOptions): Promise<Lab> {
  const h = labHaproxy();
  return startLab({ ...h, ...opts, ...(h.tls === false ? { tls: false, tlsSocket: false } : {}) });
}

/**
 * A real HAProxy with real backends for the tests of one file: started before them in a temp
 * dir, always stopped and removed after, even when a test fails.
 */
export function useLab(opts: Omit<LabOptions, "dir"> = {}): () => Lab {
  let lab: Lab | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-test-"));
    lab = await startTestLab({ ...opts, dir });
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
