import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const BUILD = join(import.meta.dirname, "..", "..", "scripts", "build.mjs");

describe("the code cache's warm-up (scripts/build.mjs)", () => {
  const dir = mkdtempSync(join(tmpdir(), "hapops-build-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs info, servers, a drain and a ready the whole way against its runtime API", () => {
    // strict: a run that fails throws (the runtime API no longer answers what hapops sends).
    const script = `const b = await import(${JSON.stringify(BUILD)});
      await b.buildBundle({ dir: process.argv[1] });
      b.warmCache(process.argv[1], { strict: true });`;
    execFileSync(process.execPath, ["--input-type=module", "-e", script, dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    expect(statSync(join(dir, "hapops.program.cache")).size).toBeGreaterThan(100_000);
  }, 60_000);
});
