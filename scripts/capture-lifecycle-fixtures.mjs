#!/usr/bin/env node
// Captures HAProxy's answers to a server's life at runtime (`add server`, `del server`,
// `set server ... addr`, `wait ... srv-removable`, `show servers conn` with a request in
// flight), for the plans and parsers of `hapops server add|del|set-addr`, into
// test/fixtures/haproxy-<major.minor>/lifecycle-*.
//
// Usage: node scripts/capture-lifecycle-fixtures.mjs [haproxy-binary...]   (default: haproxy on PATH)
// e.g.   node scripts/capture-lifecycle-fixtures.mjs /usr/sbin/haproxy ../shared/haproxy/haproxy-{2.4.0,2.8.0,3.0.0,3.2.0,3.4.0}
//
// Each command runs on one prompt-mode connection that stays open (a one-shot `wait` is
// "Interrupted." as soon as the client half-closes). Before 2.6, `add server` and `del server`
// need `experimental-mode on` on that connection first; the script sends it there once.
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

/** A prompt-mode connection: `ask(line)` resolves with the answer, without the prompt. */
async function promptSession(path) {
  const s = connect({ path });
  let buf = "";
  let waiting;
  s.on("data", (d) => {
    buf += d.toString();
    const end = buf.indexOf("\n> ");
    if (end >= 0 && waiting) {
      const answer = buf.slice(0, end + 1);
      buf = buf.slice(end + 3);
      const w = waiting;
      waiting = undefined;
      w(answer);
    }
  });
  const ask = (line) =>
    new Promise((resolve) => {
      waiting = resolve;
      s.write(`${line}\n`);
    });
  // The first prompt comes after `prompt` itself.
  await new Promise((resolve, reject) => {
    s.once("error", reject);
    waiting = resolve;
    s.write("prompt\n");
  });
  return { ask, close: () => s.destroy() };
}

/** A request through the frontend, left to run (its socket is destroyed at the end). */
function slow(port, ms) {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => undefined);
  s.write(`GET /slow?ms=${ms} HTTP/1.1\r\nHost: example.com\r\n\r\n`);
  return s;
}

async function capture(bin) {
  const full = /HAProxy version (\d+)\.(\d+)/.exec(execFileSync(bin, ["-v"]).toString());
  const version = `${full[1]}.${full[2]}`;
  const before26 = Number(full[1]) === 2 && Number(full[2]) < 6;
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

backend be_static
    balance static-rr
    server st1 127.0.0.1:${b1.port}

backend be_track
    balance roundrobin
    server t1 127.0.0.1:${b1.port} check inter 500ms
    server t2 127.0.0.1:${b2.port} track be_track/t1
`,
  );
  const proc = spawn(bin, ["-db", "-f", join(work, "haproxy.cfg")], { stdio: "ignore" });
  const clients = [];
  const save = (name, text) => writeFileSync(join(out, name), text.replaceAll(work, "/srv/demo"));
  let cli;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        cli = await promptSession(admin);
        break;
      } catch {
        await sleep(50);
      }
    }
    await sleep(1200); // the first checks
    const transcript = [];
    const run = async (line) => {
      const answer = await cli.ask(line);
      transcript.push(`> ${line}\n${answer}`);
      return answer;
    };
    // Before 2.6, add server and del server need experimental mode, set once per connection.
    if (before26) await run("experimental-mode on");
    const p = b2.port;
    // add server: a dynamic one (it starts in maintenance), refusals.
    await run(`add server be_app/dyn1 127.0.0.1:${p} weight 7 maxconn 20`);
    await run("show servers state be_app");
    await run(`add server be_static/dyn1 127.0.0.1:${p}`);
    await run(`add server be_app/dyn1 127.0.0.1:${p}`);
    await run(`add server be_app/dyn2 127.0.0.1:${p} foo 3`);
    await run(`add server be_app/dyn2 127.0.0.1:${p} weight 999`);
    await run(`add server be_app/dyn2 127.0.0.1:${p} cookie c2`);
    await run(`add server be_app/dyn3 127.0.0.1:${p} check inter 300ms`);
    await run(`add server nope/dyn1 127.0.0.1:${p}`);
    // set server addr: a move, nothing to change, a bad address.
    await run(`set server be_app/dyn1 addr 127.0.0.2 port ${b1.port}`);
    await run(`set server be_app/dyn1 addr 127.0.0.2 port ${b1.port}`);
    await run("set server be_app/dyn1 addr 1.2.3 port 80");
    await run(`set server be_app/dyn1 addr 127.0.0.1 port ${p}`);
    // del server: not in maintenance, in use, tracked by another, from the config.
    await run("set server be_app/dyn1 state ready");
    await run(`del server be_app/dyn1`);
    // A request in flight on dyn1 (the only server left ready while it starts).
    await run("set server be_app/app1 state maint");
    await run("set server be_app/app2 state maint");
    clients.push(slow(fe, 30_000));
    await sleep(300);
    await run("set server be_app/app1 state ready");
    await run("set server be_app/app2 state ready");
    await run("set server be_app/dyn1 state maint");
    await run("show stat be_app -1 -1");
    save("lifecycle-show-servers-conn.txt", await cli.ask("show servers conn be_app"));
    await run(`del server be_app/dyn1`);
    await run("wait 300ms srv-removable be_app/dyn1");
    await run("shutdown sessions server be_app/dyn1");
    await run("wait 2s srv-removable be_app/dyn1");
    await run(`del server be_app/dyn1`);
    await run("set server be_track/t1 state maint");
    await run("wait 300ms srv-removable be_track/t1");
    await run(`del server be_track/t1`);
    await run("set server be_app/st1 state maint".replace("be_app", "be_static"));
    await run(`del server be_static/st1`);
    save("lifecycle-transcript.txt", transcript.join(""));
  } finally {
    cli?.close();
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
