#!/usr/bin/env node
// Captures real answers of `show sess`, `show errors`, `shutdown sessions server` and of
// `show servers state` / `show stat` with dynamic servers (added with `add server`), for the
// parsers of `hapops sessions`, `hapops errors` and the reload of dynamic servers, into
// test/fixtures/haproxy-<major.minor>/.
//
// Usage: node scripts/capture-session-fixtures.mjs [haproxy-binary...]   (default: haproxy on PATH)
// e.g.   node scripts/capture-session-fixtures.mjs /usr/sbin/haproxy ../shared/haproxy/haproxy-{2.8.0,3.0.0,3.2.0,3.4.0}
//
// Binds only unix sockets in a temp dir and free 127.0.0.1 ports; the temp dir is written as
// /srv/demo in the output. The backends are node HTTP servers in this process; `/slow?ms=N`
// holds the answer N ms, so `show sess` has requests in flight to show.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bins = process.argv.slice(2);
if (bins.length === 0) bins.push("haproxy");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = createTcpServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function backend() {
  const sockets = new Set();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const ms = Number(url.searchParams.get("ms") ?? 0);
    const finish = () => res.end("ok\n");
    if (url.pathname.endsWith("/slow") && ms > 0) setTimeout(finish, ms);
    else finish();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    ),
  );
}

/** One command on a fresh connection (one-shot mode), read to the end. */
function cli(path, line) {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    let out = "";
    s.on("data", (d) => (out += d.toString()));
    s.on("error", reject);
    s.on("close", () => resolve(out));
    s.end(`${line}\n`);
  });
}

/** A request through the frontend, left to run (its socket is destroyed at the end). */
function slow(port, ms) {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => undefined);
  s.write(`GET /slow?ms=${ms} HTTP/1.1\r\nHost: example.com\r\n\r\n`);
  return s;
}

async function capture(bin) {
  const version = /HAProxy version (\d+\.\d+)/.exec(execFileSync(bin, ["-v"]).toString())[1];
  const out = join(root, "test", "fixtures", `haproxy-${version}`);
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "hapops-capture-"));
  const b1 = await backend();
  const b2 = await backend();
  const fe = await freePort();
  const admin = join(work, "admin.sock");
  writeFileSync(
    join(work, "haproxy.cfg"),
    `global
    stats socket ${admin} mode 600 level admin expose-fd listeners
    stats timeout 2m

defaults
    mode http
    timeout connect 2s
    timeout client 1m
    timeout server 1m

frontend fe_http
    bind 127.0.0.1:${fe}
    default_backend be_app

backend be_app
    balance roundrobin
    option httpchk GET /health
    server app1 127.0.0.1:${b1.port} check inter 500ms rise 1 fall 2
    server app2 127.0.0.1:${b2.port} check inter 500ms rise 1 fall 2
`,
  );
  const proc = spawn(bin, ["-db", "-f", join(work, "haproxy.cfg")], { stdio: "ignore" });
  const clients = [];
  const save = (name, text) => writeFileSync(join(out, name), text.replaceAll(work, "/srv/demo"));
  try {
    for (let i = 0; i < 100; i++) {
      const answer = await cli(admin, "show info").catch(() => "");
      if (answer.includes("Name: HAProxy")) break;
      await sleep(50);
    }
    await sleep(1200); // the first checks

    save("show-sess-idle.txt", await cli(admin, "show sess"));
    save("show-errors-empty.txt", await cli(admin, "show errors"));
    save("show-sess-at-user-level.txt", await cli(admin, "user; show sess"));

    // Three requests in flight (round robin: two reach app1, one app2), and a client that has
    // sent half a request (a stream with no backend yet).
    for (let i = 0; i < 3; i++) {
      clients.push(slow(fe, 30_000));
      await sleep(100);
    }
    const half = connect({ host: "127.0.0.1", port: fe });
    half.on("error", () => undefined);
    half.write("GET /half HTTP/1.1\r\nHost: exa");
    clients.push(half);
    await sleep(1100);
    const sess = await cli(admin, "show sess");
    save("show-sess.txt", sess);
    // One stream in full (its byte counts), and a stream that is not there.
    const id = /^(0x[0-9a-f]+): proto=\S+ src=\S+ fe=fe_http be=be_app srv=app1 /m.exec(sess)[1];
    save("show-sess-detail.txt", await cli(admin, `show sess ${id}`));
    save("show-sess-not-found.txt", await cli(admin, "show sess 0x1234"));

    // A malformed request (a space in a header name): HAProxy answers 400 and keeps it.
    const bad = connect({ host: "127.0.0.1", port: fe });
    bad.on("error", () => undefined);
    bad.write("GET /bad HTTP/1.1\r\nHost: example.com\r\nBad Header: x\r\n\r\n");
    await sleep(300);
    bad.destroy();
    save("show-errors.txt", await cli(admin, "show errors"));

    // Dynamic servers: with check, maxconn and weight; with ssl; with an agent check.
    const added = [
      `add server be_app/app9 127.0.0.1:${b1.port} check weight 30 maxconn 20 rise 2 fall 3`,
      `add server be_app/app10 127.0.0.1:${b2.port} ssl verify none weight 5`,
      `add server be_app/app11 127.0.0.1:${b2.port} agent-check agent-port ${b2.port} agent-inter 1s`,
      "enable health be_app/app9",
    ];
    const answers = [];
    for (const line of added) answers.push(`> ${line}\n${await cli(admin, line)}`);
    save("add-server-answers.txt", answers.join(""));
    await sleep(1200);
    save("show-servers-state-dynamic.txt", await cli(admin, "show servers state"));
    save("show-stat-dynamic.csv", await cli(admin, "show stat"));

    // Cutting app1's sessions: the answer, then how long until show sess no longer lists them.
    save("shutdown-sessions-server.txt", await cli(admin, "shutdown sessions server be_app/app1"));
    const start = Date.now();
    let left = -1;
    while (Date.now() - start < 5000) {
      left = (await cli(admin, "show sess")).split("\n").filter((l) => /srv=app1 /.test(l)).length;
      if (left === 0) break;
      await sleep(20);
    }
    process.stderr.write(
      `  ${version}: app1 sessions after shutdown: ${left} (after ${Date.now() - start} ms)\n`,
    );
  } finally {
    for (const c of clients) c.destroy();
    proc.kill("SIGTERM");
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.once("exit", r)));
    await b1.close();
    await b2.close();
    rmSync(work, { recursive: true, force: true });
  }
}

for (const bin of bins) {
  process.stderr.write(`capturing ${bin}\n`);
  await capture(bin);
}
