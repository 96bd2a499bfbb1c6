// Fleet benchmark (issue 13): one change over 20 local HAProxy instances, each behind its own
// mTLS listener on loopback, against the same change on one of them, measured in the same run.
//
//   node bench/fleet.mjs [--runs 30] [--instances 20] [--batch 5] [--bin dist/hapops.cjs]
//   node bench/run.mjs --only fleet      (the same, from the main bench; npm run bench runs both)
//   node bench/fleet.mjs --profile [--runs 5]   where the time goes: phases (bench/trace.cjs),
//                                        the TLS floor (bench/tls-floor.mjs), a CPU profile
//
// Each round runs every measured command once, in turn (interleaved), so a load change on the
// machine hits all of them alike; the numbers are medians over the rounds. Every weight run
// sets a weight the servers do not have yet, so each one really changes something.
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_BIN = join(root, "dist", "hapops.cjs");

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Wall time (ms) of one command through sh; throws with its stderr when it fails. Asynchronous,
 * so that Ctrl-C between two commands still stops the HAProxy instances and cleans up.
 */
function once(cmd) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("sh", ["-c", cmd], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${cmd} failed (exit ${code}): ${stderr}`));
    });
  });
}

/** The standard output of a command through sh. */
function output(cmd) {
  return new Promise((resolve, reject) =>
    execFile("sh", ["-c", cmd], { maxBuffer: 64 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
}

/** A count as it is, a time to 0.1 ms. */
const fmt = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

function row(label, ms, base, baseLabel) {
  const ratio = base ? `  ${(ms / base).toFixed(2)}x ${baseLabel}` : "";
  console.log(`  ${label.padEnd(50)} ${ms.toFixed(1).padStart(8)} ms${ratio}`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One CA, one server certificate (IP:127.0.0.1) and one client certificate, with openssl. */
function makeCerts(dir) {
  mkdirSync(dir, { mode: 0o700 });
  const ssl = (...a) =>
    execFileSync("openssl", a, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  ssl("req", "-x509", ...["-subj", "/CN=hapops bench CA", "-days", "30"], ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"); // prettier-ignore
  const issue = (name, cn, ext) => {
    writeFileSync(join(dir, `${name}.ext`), ext.join("\n") + "\n");
    ssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.pem`); // prettier-ignore
  };
  const leaf = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"];
  issue("server", "hapops-bench-socket", [
    ...leaf,
    "extendedKeyUsage=serverAuth",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  issue("client", "operator", [...leaf, "extendedKeyUsage=clientAuth"]);
  // HAProxy's `crt` loads the certificate followed by its key.
  writeFileSync(
    join(dir, "server-bundle.pem"),
    readFileSync(join(dir, "server.pem"), "utf8") + readFileSync(join(dir, "server.key"), "utf8"),
    { mode: 0o600 },
  );
  return {
    ca: join(dir, "ca.pem"),
    serverBundle: join(dir, "server-bundle.pem"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
  };
}

/** Does the unix socket answer `show info`? */
function answers(sock) {
  return new Promise((resolve) => {
    const s = connect(sock, () => s.end("show info\n"));
    let got = "";
    s.on("data", (d) => (got += d));
    s.on("close", () => resolve(got.includes("Name: HAProxy")));
    s.on("error", () => resolve(false));
  });
}

/**
 * One HAProxy: an admin unix socket and, in front of it, an mTLS listener on loopback. HAProxy
 * 2.6 accepts `ssl crt ... verify required` on a `stats socket` line but serves it in clear text
 * (see README, "Targets and levels"), so the TLS endpoint is a `listen` section, as the sandbox
 * and production do it. Servers point at a port nothing listens on, with no health check: a
 * weight change or a drain needs no live backend.
 */
async function startInstance(dir, port, certs) {
  mkdirSync(dir, { mode: 0o700 });
  const sock = join(dir, "admin.sock");
  const cfg = [
    "global",
    "  nbthread 1",
    `  stats socket ${sock} mode 600 level admin`,
    "  stats timeout 2m",
    "defaults",
    "  mode http",
    "  timeout connect 1s",
    "  timeout client 30s",
    "  timeout server 30s",
    "listen cli_tls",
    "  mode tcp",
    `  bind 127.0.0.1:${port} ssl crt ${certs.serverBundle} ca-file ${certs.ca} verify required`,
    `  server admin unix@${sock}`,
    "backend be_app",
    "  balance roundrobin",
    "  server app1 127.0.0.1:9 weight 10",
    "  server app2 127.0.0.1:9 weight 10",
    "",
  ].join("\n");
  writeFileSync(join(dir, "haproxy.cfg"), cfg);
  const proc = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: "ignore" });
  const deadline = Date.now() + 30_000;
  while (!(await answers(sock))) {
    if (Date.now() > deadline || proc.exitCode !== null)
      throw new Error(`haproxy in ${dir} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, sock, tls: `tls://127.0.0.1:${port}` };
}

/**
 * `instances` HAProxy processes (lb1..lbN) and a hapops config naming them, with a group `all`.
 * `stop()` kills them and removes the directory.
 */
export async function startFleet(instances = 20) {
  const dir = mkdtempSync(join(tmpdir(), "hapops-bench-fleet-"));
  const procs = [];
  const onSignal = (sig) => {
    stop();
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  const stop = () => {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    for (const p of procs) p.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  // Ctrl-C or a kill during a run (the commands run synchronously, so this fires between them).
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    const certs = makeCerts(join(dir, "pki"));
    const ports = [];
    for (let i = 0; i < instances; i++) ports.push(await freePort());
    const started = await Promise.allSettled(
      ports.map((port, i) => startInstance(join(dir, `lb${i + 1}`), port, certs)),
    );
    for (const s of started) if (s.status === "fulfilled") procs.push(s.value.proc);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const lbs = started.map((s) => s.value);
    const names = lbs.map((_, i) => `lb${i + 1}`);
    const tlsYaml = `{ cert: ${certs.clientCert}, key: ${certs.clientKey}, ca: ${certs.ca} }`;
    const config = join(dir, "hapops.yaml");
    writeFileSync(
      config,
      [
        // Audited as in production: every change writes (and fsyncs) its records.
        `audit:\n  path: ${join(dir, "audit.jsonl")}`,
        `backupDir: ${join(dir, "backups")}`,
        "targets:",
        ...lbs.map((l, i) => `  ${names[i]}:\n    socket: ${l.tls}\n    tls: ${tlsYaml}`),
        "groups:",
        `  all: [${names.join(", ")}]`,
        "",
      ].join("\n"),
    );
    return { dir, config, certs, lbs, names, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

/** Time the commands over a fresh fleet, print the table, stop everything. Returns the medians. */
export async function fleetBench({ bin = DEFAULT_BIN, runs = 30, instances = 20, batch = 5 } = {}) {
  const { config, certs, lbs, stop } = await startFleet(instances);
  try {
    const hap = `node ${bin} -c ${config}`;
    const plain = `node ${bin} -c ${config} -s ${lbs[0].tls} --tls-cert ${certs.clientCert} --tls-key ${certs.clientKey} --tls-ca ${certs.ca}`;
    // Weights 11..210 in turn: every run sets a weight that differs from the one before it.
    let k = 0;
    const w = () => 11 + (k++ % 200);

    // Check once that the fleet commands do what they are timed for (20 targets, each ok).
    const report = JSON.parse(await output(`${hap} -g all --json weight be_app/app1 ${w()}`));
    const okAll = report.targets?.filter((t) => t.result === "ok").length;
    if (report.outcome !== "ok" || okAll !== instances)
      throw new Error(
        `fleet weight: expected ${instances} targets ok, got ${JSON.stringify(report)}`,
      );
    const drained = JSON.parse(
      await output(`${hap} -g all --json drain be_app/app1 --rolling --batch ${batch} --pause 0s`),
    );
    const drainedOk = drained.targets?.filter((t) => t.result === "ok").length;
    if (drained.outcome !== "ok" || drained.mode !== "rolling" || drainedOk !== instances)
      throw new Error(`fleet drain: ${JSON.stringify(drained)}`);
    await once(`${hap} -g all ready be_app/app1`);

    // What operators do today: socat over the same mTLS listener, one line, no check at all.
    const socat = (l, weight) =>
      `echo "set server be_app/app1 weight ${weight}" | socat - OPENSSL:${l.tls.slice(6)},cert=${certs.clientCert},key=${certs.clientKey},cafile=${certs.ca} >/dev/null`;
    const cases = [
      ["node", () => "node -e 0"],
      ["socat1", () => socat(lbs[0], w())],
      [
        "socatAll",
        () =>
          lbs.map((l, i) => `(${socat(l, w())}) & p${i}=$!`).join("; ") +
          "; " +
          lbs.map((_, i) => `wait $p${i} || exit 1`).join("; "),
      ],
      ["plain", () => `${plain} weight be_app/app1 ${w()}`],
      ["one", () => `${hap} -t lb1 weight be_app/app1 ${w()}`],
      ["all", () => `${hap} -g all weight be_app/app1 ${w()}`],
      ["allDry", () => `${hap} -g all weight be_app/app1 ${w()} --dry-run`],
      ["drain", () => `${hap} -g all drain be_app/app1 --rolling --batch ${batch} --pause 0s`],
    ];
    const times = Object.fromEntries(cases.map(([name]) => [name, []]));
    const load0 = loadavg();
    // One warm-up round, untimed.
    for (const [name, cmd] of cases) {
      await once(cmd());
      if (name === "drain") await once(`${hap} -g all ready be_app/app1`);
    }
    for (let r = 0; r < runs; r++)
      for (const [name, cmd] of cases) {
        times[name].push(await once(cmd()));
        if (name === "drain") await once(`${hap} -g all ready be_app/app1`); // untimed
      }
    const m = Object.fromEntries(Object.entries(times).map(([n, xs]) => [n, median(xs)]));
    const load1 = loadavg();
    // The ratio within each round too (its spread says how steady the machine was).
    const perRound = (a) => {
      const rs = times[a].map((t, i) => t / times.one[i]).sort((x, y) => x - y);
      const q = (f) => rs[Math.floor(f * (rs.length - 1))].toFixed(2);
      return `per round: median ${q(0.5)}x, middle half ${q(0.25)}-${q(0.75)}x`;
    };

    const n = instances;
    const also = (text) => console.log(`  ${"".padEnd(50)} ${"".padStart(11)}  ${text}`);
    console.log(
      `\nfleet: weight be_app/app1 N over ${n} HAProxy instances (mTLS on loopback) and over one (${runs} rounds, median)`,
    );
    row("node -e 0 (Node's own start)", m.node);
    row("echo 'set server ...' | socat OPENSSL:, one", m.socat1);
    row(`the same, ${n} socat at once (no check at all)`, m.socatAll, m.socat1, "one socat");
    row("hapops weight -s tls://... (one target)", m.plain, m.node, "node -e 0");
    row("hapops weight -t lb1 (one target, fleet path)", m.one, m.node, "node -e 0");
    row(`hapops weight -g all (${n} targets)`, m.all, m.one, "-t lb1 (goal <= 1.5x)");
    also(`${(m.all / m.plain).toFixed(2)}x -s tls://`);
    also(`/ -t lb1 ${perRound("all")}`);
    row(`  the check alone (-g all --dry-run)`, m.allDry, m.one, "-t lb1");
    row(`hapops drain -g all --rolling --batch ${batch}`, m.drain, m.one, "-t lb1");
    also(`${(m.drain / m.plain).toFixed(2)}x -s tls://`);
    also(`/ -t lb1 ${perRound("drain")}`);
    console.log(
      `  (load average ${load0.map((x) => x.toFixed(2)).join(" ")} before, ${load1.map((x) => x.toFixed(2)).join(" ")} after; the bench's own processes count)`,
    );
    return m;
  } finally {
    stop();
  }
}

/**
 * The phases of one traced run (bench/trace.cjs events). The check is quiet (nothing recorded),
 * so the apply's first audit record after the first connection marks the end of the check; the
 * apply's re-read comes just before it and counts into the check.
 */
function phases(events) {
  const of = (kind) => events.filter((e) => e.kind === kind);
  const sum = (kind) => of(kind).reduce((a, e) => a + e.end - e.start, 0);
  const tls = of("tls").sort((a, b) => a.start - b.start);
  const first = tls[0].start;
  const lastClose = Math.max(...tls.map((e) => e.end));
  const intent = Math.min(
    ...of("lock-held")
      .filter((e) => e.start > first)
      .map((e) => e.start),
  );
  const exit = events.find((e) => e.kind === "exit").end;
  return {
    "start-up to the first connection": first,
    "  config file reads (count)": of("config-read").length,
    "  identity (getent, id)": sum("child"),
    "TLS connections (count)": tls.length,
    "  of which resumed a TLS session (count)": tls.filter((e) => e.reused).length,
    "  handshake, median (connect to secure)": median(tls.map((e) => e.secure - e.start)),
    "check: first connect to the apply's first record": intent - first,
    "apply: first record to the last close": lastClose - intent,
    "  audit records (count)": of("lock-held").length,
    "  audit lock held, sum (one record at a time)": sum("lock-held"),
    "  of which fsync, sum": sum("fsync"),
    "after the last close to exit": exit - lastClose,
    "total (process start to exit)": exit,
  };
}

/**
 * Where the time goes: the one-target and the fleet change, each traced (bench/trace.cjs) and
 * CPU-profiled on an unminified bundle, `runs` times interleaved; medians.
 */
async function profile({ bin, runs, instances }) {
  const { dir, config, certs, lbs, stop } = await startFleet(instances);
  try {
    const hap = (b, pre = "") => `node ${pre} ${b} -c ${config}`;
    const trace = join(dir, "trace.jsonl");
    const tracer = join(root, "bench", "trace.cjs");
    let k = 0;
    const w = () => 11 + (k++ % 200);
    const cases = [
      ["-t lb1", "-t lb1", 1],
      [`-g all (${instances})`, "-g all", instances],
    ];
    const traced = cases.map(() => []);
    for (let r = 0; r < runs + 1; r++)
      for (const [i, [, sel]] of cases.entries()) {
        rmSync(trace, { force: true });
        await once(
          `HAPOPS_TRACE=${trace} ${hap(bin, `-r ${tracer}`)} ${sel} weight be_app/app1 ${w()}`,
        );
        if (r > 0) traced[i].push(phases(JSON.parse(readFileSync(trace, "utf8"))));
      }
    console.log(`\nwhere the time goes: weight be_app/app1 N (median of ${runs} traced runs, ms)`);
    console.log(`  ${"".padEnd(50)} ${cases.map(([l]) => l.padStart(12)).join("")}`);
    for (const key of Object.keys(traced[0][0]))
      console.log(
        `  ${key.padEnd(50)} ${traced
          .map((ts) => fmt(median(ts.map((t) => t[key]))).padStart(12))
          .join("")}`,
      );

    // The floor: the same TLS connections from one Node process, with nothing of hapops.
    const floorScript = join(root, "bench", "tls-floor.mjs");
    const ports = lbs.map((l) => l.tls.split(":").pop());
    const floors = [
      ["4 per target (2 check + 2 apply), a context each", 2, 2, "each"],
      ["the same, one shared secure context", 2, 2, "shared"],
      ["2 per target (kept from check to apply), shared", 1, 2, "shared"],
      ["1 per target, shared", 1, 1, "shared"],
    ];
    const floorMs = floors.map(() => cases.map(() => []));
    for (let r = 0; r < runs; r++)
      for (const [f, [, phases, per, ctx]] of floors.entries())
        for (const [i, [, , n]] of cases.entries()) {
          const args = [certs.ca, certs.clientCert, certs.clientKey, phases, per, ctx];
          const out = await output(
            `node ${floorScript} ${[...args, ...ports.slice(0, n)].join(" ")}`,
          );
          floorMs[f][i].push(Number(out.trim()));
        }
    console.log(
      `\nthe TLS floor: only the connections, from one Node process (median of ${runs}, ms)`,
    );
    console.log(`  ${"".padEnd(50)} ${cases.map(([l]) => l.padStart(12)).join("")}`);
    floors.forEach(([label], f) =>
      console.log(
        `  ${label.padEnd(50)} ${floorMs[f].map((xs) => median(xs).toFixed(1).padStart(12)).join("")}`,
      ),
    );

    // CPU: an unminified bundle (names kept), --cpu-prof, inclusive time by function.
    const { build } = await import("esbuild");
    const prof = join(dir, "hapops-prof.cjs");
    await build({
      absWorkingDir: root,
      entryPoints: ["src/cli/bin.ts"],
      outfile: prof,
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      define: { HAPOPS_VERSION: JSON.stringify("profile") },
      logLevel: "warning",
    });
    const buckets = [
      ["module loading (Module._load)", /^Module\._load /],
      ["config: readConfigFile (YAML + schema), all reads", /^readConfigFile /],
      ["identity: resolveIdentity (getent, id)", /^resolveIdentity /],
      ["TLS: createSecureContext (one per connection)", /^createSecureContext /],
      ["TLS: connect() in all (context included)", /^connect node:_tls_wrap/],
      [
        "TLS: handshake done, peer certificate",
        /^(onConnectSecure|TLSSocket\.getPeerCertificate) /,
      ],
      ["socket writes (Socket._writeGeneric)", /^Socket\._writeGeneric /],
      ["audit appends (lockedNow)", /^lockedNow /],
      ["garbage collector", /^\(garbage collector\)/],
      ["idle (waiting on sockets, timers)", /^\(idle\)/],
      ["all samples", /^\(root\)/],
    ];
    const cpu = cases.map(() => buckets.map(() => []));
    for (let r = 0; r < runs; r++)
      for (const [i, [, sel]] of cases.entries()) {
        const out = join(dir, `cpu-${r}-${i}`);
        await once(
          `${hap(prof, `--cpu-prof --cpu-prof-dir=${out} --cpu-prof-interval 250`)} ${sel} weight be_app/app1 ${w()}`,
        );
        const file = join(out, readdirSync(out)[0]);
        const total = inclusive(JSON.parse(readFileSync(file, "utf8")));
        buckets.forEach(([, re], b) => {
          let ms = 0;
          for (const [name, t] of total) if (re.test(name)) ms += t;
          cpu[i][b].push(ms);
        });
      }
    console.log(`\nCPU profile (--cpu-prof, unminified bundle), inclusive ms, median of ${runs}`);
    console.log(`  ${"".padEnd(50)} ${cases.map(([l]) => l.padStart(12)).join("")}`);
    buckets.forEach(([label], b) =>
      console.log(
        `  ${label.padEnd(50)} ${cpu.map((c) => median(c[b]).toFixed(1).padStart(12)).join("")}`,
      ),
    );
  } finally {
    stop();
  }
}

/** Inclusive time (ms) per function ("name file:line") of a .cpuprofile, each counted once per stack. */
function inclusive(p) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber}`;
  const total = new Map();
  p.samples.forEach((id, i) => {
    const ms = p.timeDeltas[i] / 1000;
    const seen = new Set();
    for (let c = id; c !== undefined; c = parent.get(c)) {
      const k = key(byId.get(c));
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + ms);
    }
  });
  return total;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const bin = args.includes("--bin") ? args[args.indexOf("--bin") + 1] : DEFAULT_BIN;
  if (args.includes("--profile"))
    await profile({ bin, runs: opt("runs", 5), instances: opt("instances", 20) });
  else
    await fleetBench({
      bin,
      runs: opt("runs", 30),
      instances: opt("instances", 20),
      batch: opt("batch", 5),
    });
}
