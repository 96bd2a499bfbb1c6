import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab } from "../../src/sandbox/lab.js";
import { startTestLab } from "../helpers/lab.js";
import { hapops, json } from "../helpers/cli.js";
import { testHaproxy } from "../helpers/versions.js";

/**
 * Part of the smoke set scripts/ci-matrix.sh runs on every HAProxy binary (HAPOPS_TEST_HAPROXY).
 * 600 servers in one backend: before the pipelining window, `weight 'be_big/*'` sent ~20 KB at
 * once and HAProxy 3.2.0 aborted.
 */
describe(`HAProxy ${testHaproxy().version}`, () => {
  let lab: Lab;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-matrix-"));
    lab = await startTestLab({
      dir,
      backends: [
        {
          name: "be_big",
          servers: Array.from({ length: 600 }, (_, i) => ({ name: `s${i}`, check: false })),
        },
        { name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] },
      ],
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = (args: string[]) => hapops(["-s", lab.sockets.admin, ...args]);

  it("sets the weight of 600 servers, verified, and HAProxy is still there", async () => {
    const r = await run(["weight", "be_big/*", "20", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ sent: string[]; verified: boolean }>(r)).toMatchObject({ verified: true });
    expect(json<{ sent: string[] }>(r).sent).toHaveLength(600);
    const info = await run(["info", "--json"]);
    expect(info.code, info.stderr).toBe(0);
  });

  it("drains and readies a server, with the dry run giving the same verdict", async () => {
    expect((await run(["drain", "be_app/app1"])).code).toBe(0);
    const dry = await run(["maint", "be_app/app2", "-n"]);
    const real = await run(["maint", "be_app/app2"]);
    expect(dry.code).toBe(real.code);
    expect((await run(["ready", "be_app/*"])).code).toBe(0);
  });

  it("shows and replaces a map (3.4 wants admin for map commands, reads included)", async () => {
    const shown = await run(["map", "show", lab.mapFile, "--json"]);
    expect(shown.code, shown.stderr).toBe(0);
    const from = join(dir, "next.map");
    writeFileSync(from, "example.com platinum\nmatrix.example tin\n");
    const r = await run(["map", "replace", lab.mapFile, "--from", from, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ verified: boolean }>(r).verified).toBe(true);
    const get = await run(["map", "get", lab.mapFile, "matrix.example", "--json"]);
    expect(json<{ value: string }>(get).value).toBe("tin");
  });
});
