// Build the CLI: dist/hapops.cjs (what you run), the program it loads (dist/hapops.program.js)
// and a V8 code cache of that program (dist/hapops.program.cache), so a one-shot command starts
// fast.
//
//   node scripts/build.mjs
//   import { buildBundle } from "./build.mjs"      (scripts/package.mjs: the .deb's and the binary's)
//
// Where start-up went (node --cpu-prof on `hapops info`, Node 20; bench/startup.mjs measures it):
// compiling the 440 KB bundle ~11 ms, and loading node:child_process, node:crypto and node:net
// for code the command never calls ~8 ms. So:
// - hapops.cjs is a small launcher: it compiles the program with vm.Script and the code cache a
//   warm-up run left (Node 20 neither caches a main module's code nor has
//   module.enableCompileCache). Without the cache, or with one V8 rejects (another Node), it
//   compiles as before: the cache only ever saves time. The program is a file of its own, not
//   a string inside the launcher: V8 would scan a 440 KB literal on every start (~5 ms);
// - those builtins load on first use (lazyBuiltins below), not when the program starts;
// - the warm-up runs info, servers, a drain and a ready the whole way, against a small runtime
//   API of its own (warmCache), so the cache holds what they run after connecting too;
// - graceful-fs, which proper-lockfile loads and hapops does not need, is node:fs (alias below).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/**
 * Builtins that cost a millisecond or more to load (measured on Node 20: tls 6.4 ms, crypto
 * 3.6, child_process 2.6, net 2.0) and that a one-shot command often never calls: commander
 * loads child_process for subcommands we do not have, a read loads crypto with the certificate
 * code. Each becomes an object whose properties load the real module when first read. esbuild
 * reads an import's property at each use (`(0, m.execFileSync)(...)`), so the program still
 * gets the real functions and classes.
 */
const LAZY = ["child_process", "crypto", "net", "tls", "dgram", "http", "readline", "zlib"];

function lazyBuiltins() {
  const need = createRequire(import.meta.url);
  return {
    name: "lazy-builtins",
    setup(b) {
      const filter = new RegExp(`^(node:)?(${LAZY.join("|")})$`);
      b.onResolve({ filter }, (args) =>
        args.namespace === "lazy-builtin"
          ? { path: args.path, external: true }
          : { path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" },
      );
      b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, ({ path }) => ({
        // The names are those of the Node that builds: the bundle targets that Node.
        contents: [
          "let m;",
          `const load = () => (m ??= require("node:${path}"));`,
          `for (const k of ${JSON.stringify(Object.keys(need(`node:${path}`)))})`,
          "  Object.defineProperty(exports, k, { enumerable: true, get: () => load()[k] });",
        ].join("\n"),
        loader: "js",
      }));
    },
  };
}

/**
 * The program: one function expression `(exports, require, module, __filename, __dirname) =>`,
 * headed by a comment naming the build. A code cache starts with the same header: V8 checks
 * only a cache's source length and its own version, so a cache left from another build of the
 * same length would run that build's code.
 */
async function bundleProgram(define) {
  const out = await build({
    entryPoints: [join(root, "src/cli/bin.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: true,
    legalComments: "none",
    // `import("node:tls")` becomes a require: vm.Script gets no dynamic-import loader on Node 20.
    supported: { "dynamic-import": false },
    define: { HAPOPS_VERSION: JSON.stringify(pkg.version), ...define },
    plugins: [lazyBuiltins()],
    // proper-lockfile loads graceful-fs for its default fs, and that load cost ~3 ms of each
    // audited change (measured): it patches fs.close and process.cwd for the whole process and
    // builds a patched copy of fs. hapops never uses that copy where it would differ: the audit
    // log passes its own fs, and the certificate mutex calls only mkdir, stat, rmdir and utimes,
    // which graceful-fs leaves as node:fs has them (its stat fix turns negative uids positive,
    // which Node on Linux never returns).
    alias: { "graceful-fs": "node:fs" },
    write: false,
    logLevel: "warning",
  });
  const fn = `(function (exports, require, module, __filename, __dirname) {${out.outputFiles[0].text}\n})`;
  const id = createHash("sha256").update(fn).digest("hex").slice(0, 32);
  return `/*hapops ${pkg.version} ${id}*/${fn}`;
}

/** Compile `program` (its text) with `cache` (a Buffer, or undefined); see bundleProgram. */
export const COMPILE = `function compile(vm, program, filename, cache) {
  let cachedData;
  const header = program.slice(0, program.indexOf("*/") + 2);
  if (cache && cache.toString("latin1", 0, header.length) === header)
    cachedData = cache.subarray(header.length);
  return new vm.Script(program, { filename, cachedData });
}`;

const LAUNCHER = `#!/usr/bin/env node
"use strict";
// hapops, built by scripts/build.mjs: runs hapops.program.js beside this file, compiled with the
// code cache hapops.program.cache when it is there and from the same build.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
${COMPILE}
const file = join(__dirname, "hapops.program.js");
let cache;
try {
  cache = readFileSync(join(__dirname, "hapops.program.cache"));
} catch {}
compile(require("node:vm"), readFileSync(file, "latin1"), file, cache)
  .runInThisContext()(exports, require, module, __filename, __dirname);
`;

/** `show stat`'s header on HAProxy 2.6 (captured). */
const STAT_HEADER =
  "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

/**
 * A runtime API for the warm-up (warmCache): what HAProxy 2.6 answers, in prompt mode, to what
 * hapops sends for info, servers, drain and ready (captured from Debian's 2.6), for one backend
 * be_app of two servers. `set server be_app/<name> state|weight` changes what it reads back.
 * Source text, for the warm-up process: `fakeRuntimeApi(path, admin1)` listens on `path`, with
 * app1's srv_admin_state `admin1` (0 ready, 8 drain), and never keeps the process alive.
 */
const FAKE_RUNTIME_API = String.raw`function fakeRuntimeApi(path, admin1) {
  const servers = [
    { id: 1, name: "app1", admin: admin1, weight: 100, port: 39647 },
    { id: 2, name: "app2", admin: 0, weight: 100, port: 37575 },
  ];
  const STATUS = { 0: "UP", 8: "DRAIN", 1: "MAINT" };
  const info = "Name: HAProxy|Version: 2.6.12-1+deb12u4|Release_date: 2023/09/20|Nbthread: 2|Nbproc: 1|Process_num: 1|Pid: 4242|Uptime: 0d 0h21m22s|Uptime_sec: 1282|Memmax_MB: 0|PoolAlloc_MB: 0|PoolUsed_MB: 0|PoolFailed: 0|Ulimit-n: 19999|Maxsock: 19999|Maxconn: 9980|Hard_maxconn: 9980|CurrConns: 1|CumConns: 16705|CumReq: 1418|MaxSslConns: 0|CurrSslConns: 0|CumSslConns: 0|Maxpipes: 0|PipesUsed: 0|PipesFree: 0|ConnRate: 0|ConnRateLimit: 0|MaxConnRate: 3|SessRate: 0|SessRateLimit: 0|MaxSessRate: 3|SslRate: 0|SslRateLimit: 0|MaxSslRate: 0|SslFrontendKeyRate: 0|SslFrontendMaxKeyRate: 0|SslFrontendSessionReuse_pct: 0|SslBackendKeyRate: 0|SslBackendMaxKeyRate: 0|SslCacheLookups: 0|SslCacheMisses: 0|CompressBpsIn: 0|CompressBpsOut: 0|CompressBpsRateLim: 0|Tasks: 25|Run_queue: 1|Idle_pct: 100|node: lb1|Stopping: 0|Jobs: 7|Unstoppable Jobs: 0|Listeners: 6|ActivePeers: 0|ConnectedPeers: 0|DroppedLogs: 0|BusyPolling: 0|FailedResolutions: 0|TotalBytesOut: 3090988|TotalSplicdedBytesOut: 0|BytesOutRate: 384|DebugCommandsIssued: 0|CumRecvLogs: 0|Build info: 2.6.12-1+deb12u4|Memmax_bytes: 0|PoolAlloc_bytes: 301712|PoolUsed_bytes: 301712|Start_time_sec: 1700000000|Tainted: 0|".split("|").join("\n");
  const state = () =>
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
    servers.map((s) => "5 be_app " + s.id + " " + s.name + " 127.0.0.1 2 " + s.admin + " " + s.weight + " 100 41 15 3 2 6 0 0 0 - " + s.port + " - 0 0 - - 0\n").join("");
  const stat = () =>
    "${STAT_HEADER}\n" +
    servers.map((s) => "be_app," + s.name + ",0,0,0,0,,0,0,0,,0,,0,0,0,0," + STATUS[s.admin] + "," + s.weight + ",1,0,0,0,41,19,,1,5," + s.id + ",,0,,2,0,,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,1,2,2,,,,127.0.0.1:" + s.port + ",,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1," + s.weight + ",,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n").join("") +
    "be_app,BACKEND,0,0,0,0,1996,0,0,0,0,0,,0,0,0,0,UP,200,2,0,,0,1251,0,,1,5,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,200,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7461,7461,581958,179064,0,0,\n";
  const answer = (line) => {
    if (["prompt", "set severity-output number", "user", "operator"].includes(line)) return "";
    if (line === "show cli level") return "[6]: admin\n";
    if (line === "show info") return info;
    if (line === "show servers state" || line === "show servers state be_app") return state();
    if (line === "show stat" || line === "show stat be_app -1 -1") return stat();
    const set = /^set server be_app\/(app[12]) (?:state (ready|drain|maint)|weight (\d+))$/.exec(line);
    if (!set) return "[3]: Unknown command: '" + line + "'\n";
    const s = servers.find((x) => x.name === set[1]);
    if (set[2]) s.admin = { ready: 0, drain: 8, maint: 1 }[set[2]];
    else s.weight = Number(set[3]);
    return "";
  };
  const server = require("node:net").createServer((c) => {
    let pending = "";
    c.setEncoding("latin1");
    c.on("error", () => c.destroy());
    c.on("end", () => c.end());
    c.on("data", (d) => {
      pending += d;
      for (let i; (i = pending.indexOf("\n")) >= 0; ) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (line === "quit") return void c.end();
        c.write(answer(line) + "\n> ");
      }
    });
  });
  server.listen(path);
  server.unref();
}`;

/**
 * Run the program once for each run below, each starting from the cache the one before left,
 * and keep the last cache: V8 writes every function a run compiled, not only the top level.
 * `--version` is the start every command shares; `info` and a drain's dry run on a socket that
 * is not there read a config, connect and fail; then info, servers, drain and ready run the
 * whole way against FAKE_RUNTIME_API (the change audited and verified). Functions no run here
 * reached compile when a command first calls them (measured: a drain compiled 82 KB of cache
 * worth, ~3 ms, when only its dry run was warmed). Not warmed: the whole command tree (help,
 * completion and the shell build it), whose ~70 KB of cache would cost every command ~1 ms to
 * save those ~2 ms. A run against the fake that fails only warms less, and says so (`strict`:
 * throws).
 */
export function warmCache(dir, { strict = false } = {}) {
  const scratch = mkdtempSync(join(tmpdir(), "hapops-warm-"));
  const config = join(scratch, "hapops.yaml");
  const api = join(scratch, "api.sock");
  writeFileSync(
    config,
    `socket: ${join(scratch, "none.sock")}\naudit:\n  path: ${join(scratch, "audit.jsonl")}\n`,
  );
  // [app1's admin state for the runtime API ("-": none), ...argv]
  const runs = [
    ["-", "--version"],
    ["-", "info"],
    ["-", "drain", "be/srv", "--dry-run"],
    ["0", "-s", api, "info"],
    ["0", "-s", api, "servers"],
    ["0", "-s", api, "drain", "be_app/app1", "--reason", "warm-up"],
    ["8", "-s", api, "ready", "be_app/app1"],
  ];
  const warm = `
    const vm = require("node:vm"), fs = require("node:fs"), path = require("node:path");
    ${COMPILE}
    ${FAKE_RUNTIME_API}
    const [dir, api, admin1, ...argv] = process.argv.slice(1);
    if (admin1 !== "-") fakeRuntimeApi(api, Number(admin1));
    const file = path.join(dir, "hapops.program.js"), out = path.join(dir, "hapops.program.cache");
    const program = fs.readFileSync(file, "latin1");
    let cache;
    try { cache = fs.readFileSync(out); } catch {}
    const script = compile(vm, program, file, cache);
    process.argv = [process.argv[0], path.join(dir, "hapops.cjs"), ...argv];
    process.on("exit", () => {
      const header = program.slice(0, program.indexOf("*/") + 2);
      const tmp = out + "." + process.pid + ".tmp";
      fs.writeFileSync(tmp, Buffer.concat([Buffer.from(header, "latin1"), script.createCachedData()]));
      fs.renameSync(tmp, out);
    });
    script.runInThisContext()(exports, require, module, path.join(dir, "hapops.cjs"), dir);
  `;
  try {
    for (const [admin1, ...argv] of runs) {
      const r = spawnSync(process.execPath, ["-e", warm, dir, api, admin1, ...argv], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, HAPOPS_CONFIG: config },
        encoding: "utf8",
        timeout: 30_000,
      });
      const what = `warming the code cache with hapops ${argv.join(" ")}`;
      if (admin1 === "-") {
        // info and the drain fail (exit 4: no socket), as intended; anything else is a broken build.
        if (r.status !== 0 && r.status !== 4) throw new Error(`${what}: ${r.stderr}`);
      } else if (r.status !== 0) {
        const why = `${what} (exit ${r.status ?? r.signal}) against the runtime API in scripts/build.mjs, which may no longer answer what hapops sends: ${r.stderr.trim()}`;
        if (strict) throw new Error(why);
        process.stderr.write(`build: ${why}; the build is good, and starts that command slower\n`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Build hapops.cjs, hapops.program.js and hapops.program.cache into `dir`. `define` adds
 * compile-time constants (the Debian package's). Returns the three paths.
 */
export async function buildBundle({ dir, define = {} }) {
  const program = await bundleProgram(define);
  mkdirSync(dir, { recursive: true });
  const files = {
    launcher: join(dir, "hapops.cjs"),
    program: join(dir, "hapops.program.js"),
    cache: join(dir, "hapops.program.cache"),
  };
  // Each file is written beside itself and renamed into place: hapops may be running from this
  // directory meanwhile (the tests build while others run), and must never read half a file.
  // Between the renames, the old cache does not name the new program, so it is left unused.
  const put = (path, content, mode) => {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, content, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  };
  put(files.program, Buffer.from(program, "latin1"), 0o644);
  put(files.launcher, LAUNCHER, 0o755);
  warmCache(dir);
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  await buildBundle({ dir: join(root, "dist") });
