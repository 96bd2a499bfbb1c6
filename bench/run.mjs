// hapops benchmarks. Every number is printed next to a baseline measured in the same run on the
// same machine: Node's own start-up (`node -e 0`) and socat, the tool operators use today.
//
//   npm run bench            (or: node bench/run.mjs [--runs 30] [--servers 10000] [--entries 1000000])
//   node bench/run.mjs --reads         only show stat and show table (3. below), the large reads
//   node bench/run.mjs --only core     the one-instance benchmarks below
//   node bench/run.mjs --only fleet    one change over 20 HAProxy instances (bench/fleet.mjs)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fleetBench } from "./fleet.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// Every command runs without NODE_* variables (as bench/startup.mjs does): NODE_EXTRA_CA_CERTS,
// a file Node reads at each start (~30 ms for Debian's bundle), slows node -e 0 as much as
// hapops and would hide what hapops itself adds.
const nodeVars = Object.keys(process.env).filter((k) => k.startsWith("NODE_"));
for (const k of nodeVars) delete process.env[k];
const BIN = join(root, "dist", "hapops.cjs");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = opt("runs", 30);
const SERVERS = opt("servers", 10_000);
const ENTRIES = opt("entries", 1_000_000);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
if (only !== undefined && only !== "core" && only !== "fleet") {
  console.error(`--only ${only}: core or fleet`);
  process.exit(2);
}
const fleet = () =>
  fleetBench({ runs: RUNS, instances: opt("instances", 20), batch: opt("batch", 5) });
if (only === "fleet") {
  await fleet();
  process.exit(0);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time (ms) of running `cmd` through sh, `runs` times after one warm-up. */
function time(cmd, runs = RUNS) {
  spawnSync("sh", ["-c", cmd], { stdio: "ignore" });
  const xs = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync("sh", ["-c", cmd], { stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(xs);
}

/** Peak RSS (MiB) of a command, from GNU time. */
function peakRss(cmd) {
  const r = spawnSync("/usr/bin/time", ["-f", "%M", "sh", "-c", cmd], { encoding: "utf8" });
  const kb = Number(r.stderr.trim().split("\n").pop());
  return kb / 1024;
}

function row(label, ms, base, baseLabel) {
  const ratio = base ? `  ${(ms / base).toFixed(2)}x ${baseLabel}` : "";
  console.log(`  ${label.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms${ratio}`);
}

/** Start haproxy on a generated config and wait until its socket answers. */
async function startHaproxy(dir, cfg) {
  writeFileSync(join(dir, "haproxy.cfg"), cfg);
  const proc = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
  const sock = join(dir, "admin.sock");
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect(sock, () => s.end("show info\n"));
      let got = "";
      s.on("data", (d) => (got += d));
      s.on("close", () => resolve(got.includes("Name: HAProxy")));
      s.on("error", () => resolve(false));
    });
    if (ok) return { proc, sock };
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("haproxy did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dir = mkdtempSync(join(tmpdir(), "hapops-bench-"));
// Changes are audited (an fsynced intent and result per run), as in production: give every
// run a config with an audit log here, and keep /etc/hapops out of the measurement.
const CONFIG = join(dir, "hapops.yaml");
writeFileSync(CONFIG, `audit:\n  path: ${join(dir, "audit.jsonl")}\n`);
process.env.HAPOPS_CONFIG = CONFIG;
const children = [];
try {
  console.log(`hapops bench (${RUNS} runs each, median wall time)`);
  if (nodeVars.length > 0) console.log(`  (measured without ${nodeVars.join(", ")})`);
  console.log("");

  // --reads: only the large reads (3.), for work on the parsers and the JSON writers.
  if (!args.includes("--reads")) {
    // 1. One-shot start-up: `hapops info` against Node's own start and socat.
    const small = await startHaproxy(
      dir,
      `global\n  stats socket ${dir}/admin.sock mode 600 level admin\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nbackend be_app\n  server app1 127.0.0.1:9\n  server app2 127.0.0.1:9\n`,
    );
    children.push(small.proc);
    const nodeStart = time("node -e 0");
    const socatInfo = time(`echo "show info" | socat stdio UNIX-CONNECT:${small.sock}`);
    const hapInfo = time(`node ${BIN} -s ${small.sock} info`);
    const hapInfoJson = time(`node ${BIN} -s ${small.sock} info --json`);
    const hapServers = time(`node ${BIN} -s ${small.sock} servers`);
    const hapVersion = time(`node ${BIN} --version`);
    console.log("one-shot commands");
    row("node -e 0 (Node's own start)", nodeStart);
    row('echo "show info" | socat', socatInfo);
    row("hapops --version", hapVersion, nodeStart, "node -e 0");
    row("hapops info", hapInfo, nodeStart, "node -e 0");
    console.log(
      `  ${"".padEnd(44)} ${"".padStart(11)}  ${(hapInfo / socatInfo).toFixed(2)}x socat`,
    );
    row("hapops info --json", hapInfoJson, nodeStart, "node -e 0");
    row("hapops servers", hapServers, nodeStart, "node -e 0");
    small.proc.kill();

    // 2. A change over 1,000 servers: one pipelined hapops call against one socat call per server.
    const k = mkdtempSync(join(dir, "thousand-"));
    let kcfg = `global\n  stats socket ${k}/admin.sock mode 600 level admin\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nbackend be_big\n`;
    for (let i = 0; i < 1000; i++)
      kcfg += `  server s${i} 127.0.${i >> 8}.${i & 255 || 1}:80 weight 100\n`;
    const thousand = await startHaproxy(k, kcfg);
    children.push(thousand.proc);
    const loop = (w) =>
      `for i in $(seq 0 999); do echo "set server be_big/s$i weight ${w}" | socat stdio UNIX-CONNECT:${thousand.sock}; done`;
    // Alternate target weights so every run really changes all 1,000 servers.
    const hapTimes = [];
    const socatTimes = [];
    for (let i = 0; i < 3; i++) {
      hapTimes.push(
        time(`node ${BIN} -s ${thousand.sock} weight 'be_big/*' ${50 + i} >/dev/null`, 1),
      );
      socatTimes.push(time(loop(80 + i), 1));
    }
    console.log("\nset the weight of 1,000 servers (planned, applied, verified by read-back)");
    const hapK = median(hapTimes);
    const socatK = median(socatTimes);
    row("1,000 x echo ... | socat (no check at all)", socatK);
    row("hapops weight 'be_big/*' N", hapK, socatK, "socat loop");
    console.log(`  ${"".padEnd(44)} ${"".padStart(11)}  ${(socatK / hapK).toFixed(1)}x faster`);
    thousand.proc.kill();
  }

  // 3. Large answers are streamed: show stat with many servers, show table with many entries.
  const big = mkdtempSync(join(dir, "big-"));
  const perBackend = 1000;
  let cfg = `global\n  stats socket ${big}/admin.sock mode 600 level admin\n  stats timeout 5m\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5m\n  timeout server 5m\nbackend be_table\n  stick-table type ip size ${Math.max(ENTRIES * 2, 1000)} expire 1h store gpc0,http_req_rate(10s)\n`;
  for (let b = 0; b < SERVERS / perBackend; b++) {
    cfg += `backend be_${b}\n`;
    for (let s = 0; s < perBackend; s++)
      cfg += `  server s${s} 127.0.${b % 256}.${(s % 250) + 1}:80\n`;
  }
  const large = await startHaproxy(big, cfg);
  children.push(large.proc);

  console.log(`\nshow stat with ${SERVERS} servers`);
  const socatStat = time(`echo "show stat" | socat stdio UNIX-CONNECT:${large.sock} >/dev/null`, 5);
  const hapStat = time(`node ${BIN} -s ${large.sock} stat --json >/dev/null`, 5);
  // The floor for any Node tool: start Node, read the answer, write it out unparsed.
  const floorScript = join(big, "floor.cjs");
  writeFileSync(
    floorScript,
    `const s = require("node:net").connect(process.argv[2], () => s.end(process.argv[3] + "\\n"));\ns.pipe(process.stdout);\n`,
  );
  const nodeStat = time(`node ${floorScript} ${large.sock} "show stat" >/dev/null`, 5);
  row('echo "show stat" | socat', socatStat);
  row("node: show stat copied to stdout, unparsed", nodeStat, socatStat, "socat");
  row("hapops stat --json", hapStat, socatStat, "socat");
  console.log(
    `  ${"".padEnd(44)} ${"".padStart(11)}  ${(hapStat / nodeStat).toFixed(2)}x the unparsed Node copy`,
  );
  console.log(
    `  ${"hapops stat --json peak RSS".padEnd(44)} ${peakRss(`node ${BIN} -s ${large.sock} stat --json >/dev/null`).toFixed(0).padStart(8)} MiB`,
  );

  // Fill the table through the socket in prompt mode, pipelined (bench set-up, not hapops).
  const t0 = Date.now();
  await new Promise((resolve, reject) => {
    const s = connect(large.sock);
    s.on("error", reject);
    s.on("data", () => undefined);
    s.on("close", resolve);
    s.write("prompt\n");
    let i = 0;
    const pump = () => {
      while (i < ENTRIES) {
        const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
        i++;
        if (!s.write(`set table be_table key ${ip} data.gpc0 ${i % 100}\n`))
          return s.once("drain", pump);
      }
      s.end("quit\n");
    };
    pump();
  });
  console.log(
    `\nshow table with ${ENTRIES} entries (filled in ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  );
  const socatTable = time(
    `echo "show table be_table" | socat stdio UNIX-CONNECT:${large.sock} >/dev/null`,
    3,
  );
  const hapTable = time(`node ${BIN} -s ${large.sock} table show be_table --json >/dev/null`, 3);
  const rawMiB =
    Number(
      execFileSync(
        "sh",
        ["-c", `echo "show table be_table" | socat stdio UNIX-CONNECT:${large.sock} | wc -c`],
        { encoding: "utf8" },
      ),
    ) / 1048576;
  const nodeTable = time(`node ${floorScript} ${large.sock} "show table be_table" >/dev/null`, 3);
  row('echo "show table" | socat', socatTable);
  row("node: show table copied to stdout, unparsed", nodeTable, socatTable, "socat");
  row("hapops table show --json (JSON Lines)", hapTable, socatTable, "socat");
  console.log(`  ${"raw answer size".padEnd(44)} ${rawMiB.toFixed(0).padStart(8)} MiB`);
  console.log(
    `  ${"hapops table show --json peak RSS".padEnd(44)} ${peakRss(`node ${BIN} -s ${large.sock} table show be_table --json >/dev/null`).toFixed(0).padStart(8)} MiB`,
  );
  const hapHuman = time(`node ${BIN} -s ${large.sock} table show be_table >/dev/null`, 3);
  row("hapops table show (aligned, streamed)", hapHuman, socatTable, "socat");
  console.log(
    `  ${"hapops table show peak RSS".padEnd(44)} ${peakRss(`node ${BIN} -s ${large.sock} table show be_table >/dev/null`).toFixed(0).padStart(8)} MiB`,
  );
  console.log(
    `  ${"node -e 0 peak RSS".padEnd(44)} ${peakRss("node -e 0").toFixed(0).padStart(8)} MiB`,
  );
} finally {
  for (const c of children) c.kill();
  rmSync(dir, { recursive: true, force: true });
}
if (args.includes("--reads")) process.exit(0);
await (await import("./startup.mjs")).startupBench({ runs: RUNS });
if (only === undefined) await fleet();
