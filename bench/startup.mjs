// Start-up: how long a one-shot hapops takes next to Node's own start (`node -e 0`), measured in
// the same run, for the bundle (node dist/hapops.cjs) and the single binary (dist/hapops, from
// npm run package), with and without the code cache, and for the single-file bundle the build
// made before (no launcher, no cache, every builtin loaded at start). Goals (issue 15): `info`
// within 1.2x node -e 0 for the bundle and the binary alike, an audited drain within 1.5x.
// Beside node -e 0, the floor: a Node program that does nothing but send `show info` over the
// socket and print the answer (what Node itself costs to load net and streams and connect).
//
//   node bench/startup.mjs [--runs 30] [--dist DIR] [--compare DIR]     (npm run bench runs it too)
//
// --dist: the build in DIR (hapops.cjs, its program and cache, the binary hapops when there)
// instead of dist/; --compare: also the build in DIR, in the same run (a change's before/after).
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Wall time (ms) of one run of `cmd` through sh; throws when it fails. */
function once(cmd, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync("sh", ["-c", cmd], { stdio: ["ignore", "ignore", "pipe"], env });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * Median wall time of each command, the commands taking turns run after run, so a machine that
 * gets busier halfway slows every command alike and the ratios hold. A command given as
 * [cmd, after] runs `after` (untimed) after each timed run: a drain is undone by a ready.
 */
function race(cmds, runs, env) {
  const times = cmds.map(() => []);
  for (const c of cmds) once(Array.isArray(c) ? c[0] : c, env);
  for (const c of cmds) if (Array.isArray(c)) once(c[1], env);
  for (let i = 0; i < runs; i++)
    cmds.forEach((c, j) => {
      times[j].push(once(Array.isArray(c) ? c[0] : c, env));
      if (Array.isArray(c)) once(c[1], env);
    });
  return times.map(median);
}

async function startHaproxy(dir) {
  const sock = join(dir, "admin.sock");
  writeFileSync(
    join(dir, "haproxy.cfg"),
    `global\n  stats socket ${sock} mode 600 level admin\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nbackend be_app\n  server app1 127.0.0.1:9\n  server app2 127.0.0.1:9\n`,
  );
  const proc = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise((done) => {
      const s = connect(sock, () => s.end("show info\n"));
      let got = "";
      s.on("data", (d) => (got += d));
      s.on("close", () => done(got.includes("Name: HAProxy")));
      s.on("error", () => done(false));
    });
    if (ok) return { proc, sock };
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("haproxy did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The bundle as scripts/build.mjs made it before the launcher: one file, esbuild's defaults. */
async function singleFileBundle(out) {
  const { build } = await import("esbuild");
  await build({
    entryPoints: [join(root, "src/cli/bin.ts")],
    outfile: out,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: true,
    legalComments: "none",
    define: { HAPOPS_VERSION: '"bench"' },
    logLevel: "warning",
  });
}

/** The floor for `info`: one `show info` over the socket, printed, and nothing else. */
const BARE_INFO = `const s = require("node:net").connect(process.argv[2]);
let t = "";
s.setEncoding("latin1").on("data", (d) => (t += d)).on("end", () => process.stdout.write(t));
s.end("show info\\n");`;

export async function startupBench({ runs = 30, dist = join(root, "dist"), compare } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "hapops-startup-"));
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    HAPOPS_CONFIG: join(dir, "hapops.yaml"),
  };
  writeFileSync(env.HAPOPS_CONFIG, `audit:\n  path: ${join(dir, "audit.jsonl")}\n`);
  let haproxy;
  try {
    haproxy = await startHaproxy(dir);
    const s = haproxy.sock;
    // The launcher and its program without the cache beside them.
    const nocache = join(dir, "nocache");
    spawnSync("mkdir", [nocache]);
    for (const f of ["hapops.cjs", "hapops.program.js"])
      copyFileSync(join(dist, f), join(nocache, f));
    const single = join(dir, "single", "hapops.cjs");
    await singleFileBundle(single);

    const variants = [
      ["bundle", `node ${join(dist, "hapops.cjs")}`],
      ["bundle, no code cache", `node ${join(nocache, "hapops.cjs")}`],
      ["single-file bundle (before)", `node ${single}`],
    ];
    const binary = join(dist, "hapops");
    if (existsSync(binary))
      variants.push([dist === join(root, "dist") ? "binary (dist/hapops)" : "binary", binary]);
    if (compare !== undefined) {
      variants.push([`${compare}: bundle`, `node ${join(compare, "hapops.cjs")}`]);
      if (existsSync(join(compare, "hapops")))
        variants.push([`${compare}: binary`, join(compare, "hapops")]);
    }
    const bare = join(dir, "bare-info.cjs");
    writeFileSync(bare, BARE_INFO);
    const cmds = ["node -e 0", `node ${bare} ${s}`];
    const labels = ["node -e 0 (Node's own start)", "node: show info, bare (the floor)"];
    for (const [name, run] of variants) {
      cmds.push(`${run} --version`, `${run} -s ${s} info`, [
        `${run} -s ${s} drain be_app/app1 --reason bench`,
        `${run} -s ${s} ready be_app/app1`,
      ]);
      labels.push(`${name}: --version`, `${name}: info`, `${name}: drain (audited)`);
    }
    const ms = race(cmds, runs, env);
    const base = ms[0];
    console.log(
      `\nstart-up (${runs} runs each, median wall time; goals: info <= 1.2x and an audited drain <= 1.5x node -e 0)`,
    );
    if (dist !== join(root, "dist") || compare !== undefined)
      console.log(`  (bundle and binary: ${dist}${compare ? `; compared: ${compare}` : ""})`);
    // Measured with only PATH, HOME and a config in the environment: a variable such as
    // NODE_EXTRA_CA_CERTS (a file Node reads at every start, ~30 ms for Debian's bundle) slows
    // node -e 0 as much as hapops, and would hide what hapops itself adds.
    const extra = Object.keys(process.env).filter((k) => k.startsWith("NODE_"));
    if (extra.length > 0)
      console.log(
        `  (measured without this shell's ${extra.join(", ")}, which slow every Node start)`,
      );
    ms.forEach((t, i) => {
      const ratio = i === 0 ? "" : `  ${(t / base).toFixed(2)}x node -e 0`;
      console.log(`  ${labels[i].padEnd(44)} ${t.toFixed(1).padStart(8)} ms${ratio}`);
    });
    if (!existsSync(binary))
      console.log("  (binary: not built; npm run package builds dist/hapops)");
  } finally {
    haproxy?.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opt = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  await startupBench({
    runs: Number(opt("--runs") ?? 30),
    ...(opt("--dist") ? { dist: resolve(opt("--dist")) } : {}),
    ...(opt("--compare") ? { compare: resolve(opt("--compare")) } : {}),
  });
}
