import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { showInfo, showStat } from "../commands/builders.js";
import { EnvironmentError } from "../errors.js";
import { tool, toolEnv } from "../util/tools.js";
import { parseStat, toStatEntry } from "../parse/stat.js";
import { RuntimeSession } from "../runtime/session.js";
import { connect } from "../transport/connect.js";
import type { Target } from "../transport/target.js";
import { waitUntil } from "../util/wait.js";
import { freePort, startHttpBackend, type HttpBackend } from "./backends.js";
import { TestCa } from "./certs.js";

/**
 * A real HAProxy with real HTTP backends, for the sandbox and the test suite alike: a temp
 * config, `haproxy -db -f`, readiness by polling the socket while racing an early exit, and a
 * teardown that always runs.
 */

export interface BackendSpec {
  readonly name: string;
  readonly servers: readonly ServerSpec[];
  /** Extra config lines for the backend section. */
  readonly lines?: readonly string[];
}

export interface ServerSpec {
  readonly name: string;
  readonly weight?: number;
  /** `disabled` in the config: starts in maintenance. */
  readonly disabled?: boolean;
  /** Health-check it (default true). */
  readonly check?: boolean;
  /** Loopback address its HTTP server listens on (default 127.0.0.1; any 127.x works on Linux). */
  readonly host?: string;
}

export interface LabOptions {
  readonly dir: string;
  readonly backends?: readonly BackendSpec[];
  /** Also expose a plain TCP admin socket on loopback. */
  readonly tcpSocket?: boolean;
  /** Also expose an mTLS admin socket on loopback (client certificate required). */
  readonly tlsSocket?: boolean;
  readonly haproxyBin?: string;
  readonly startTimeoutMs?: number;
  /**
   * Master-worker mode with a master CLI (`haproxy -W -db -S <dir>/master.sock -f cfg`), as
   * Debian's unit runs it (-Ws): `show proc`, `reload`, old workers finishing. Default: one
   * process (`haproxy -db -f cfg`).
   */
  readonly masterWorker?: boolean;
  /**
   * `server-state-file <dir>/server-state` in global and `load-server-state-from-file global`
   * in defaults (default true): a reload then takes each server's state from that file.
   */
  readonly serverStateFile?: boolean;
  /**
   * The HTTPS frontend (`bind ... ssl crt`), default true. false starts without it, for a
   * binary built without OpenSSL (the matrix's 2.4.0); `tlsSocket` needs TLS too.
   */
  readonly tls?: boolean;
}

export interface LabSockets {
  readonly admin: string;
  readonly operator: string;
  readonly user: string;
  readonly tcp?: string;
  readonly tls?: string;
  /** The master CLI, in master-worker mode. */
  readonly master?: string;
}

export interface LabTls {
  readonly ca: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A client certificate from a CA the socket does not trust. */
  readonly rogueCert: string;
  readonly rogueKey: string;
}

export interface Lab {
  readonly dir: string;
  readonly configPath: string;
  readonly sockets: LabSockets;
  readonly tls: LabTls;
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly certDir: string;
  /** A map file (host -> tier) and an ACL file (blocked sources) the frontend uses. */
  readonly mapFile: string;
  readonly aclFile: string;
  readonly backends: ReadonlyMap<string, HttpBackend>;
  /** The server-state file the config names (undefined with serverStateFile: false). */
  readonly stateFile: string | undefined;
  /** The CA that issued every certificate HAProxy loads (tests issue new ones from it). */
  readonly ca: TestCa;
  /** A CA nothing trusts. */
  readonly rogueCa: TestCa;
  /** HAProxy's pid: the master's in master-worker mode. */
  readonly pid: number;
  /** HAProxy's output so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export const DEMO_BACKENDS: readonly BackendSpec[] = [
  {
    name: "be_app",
    lines: [
      "balance roundrobin",
      "stick-table type ip size 100k expire 10m store conn_rate(10s),http_req_rate(10s),gpc0",
      "http-request track-sc0 src",
    ],
    servers: [
      { name: "app1", weight: 100 },
      { name: "app2", weight: 100 },
      { name: "app3", weight: 50 },
    ],
  },
  {
    name: "be_api",
    servers: [
      { name: "api-1.blue", weight: 10 },
      { name: "api-2.green", weight: 10 },
    ],
  },
  {
    name: "be_static",
    servers: [{ name: "static_1" }, { name: "static:2", disabled: true }],
  },
];

function renderConfig(o: {
  dir: string;
  sockets: LabSockets;
  tcpPort?: number;
  tlsPort?: number;
  tlsDir: string;
  httpPort: number;
  httpsPort: number;
  certDir: string;
  backends: readonly BackendSpec[];
  ports: ReadonlyMap<string, number>;
  stateFile: string | undefined;
  tls: boolean;
}): string {
  const lines = [
    "global",
    `    stats socket ${o.sockets.admin} mode 600 level admin expose-fd listeners`,
    `    stats socket ${o.sockets.operator} mode 600 level operator`,
    `    stats socket ${o.sockets.user} mode 600 level user`,
  ];
  if (o.tcpPort !== undefined)
    lines.push(`    stats socket ipv4@127.0.0.1:${o.tcpPort} level admin`);
  lines.push(
    "    stats timeout 2m",
    ...(o.stateFile ? [`    server-state-file ${o.stateFile}`] : []),
    "",
    "defaults",
    "    mode http",
    "    timeout connect 2s",
    "    timeout client 1m",
    "    timeout server 1m",
    // Without it a check has `inter` (500 ms) to connect and answer: on a busy machine a live
    // backend missed that twice and went DOWN. A stopped or failing one still fails at once.
    "    timeout check 5s",
    ...(o.stateFile ? ["    load-server-state-from-file global"] : []),
    "",
    "frontend fe_http",
    `    bind 127.0.0.1:${o.httpPort}`,
    // A map and an ACL file, as operators keep them: runtime-editable, persisted on disk.
    `    http-request deny if { src -f ${join(o.dir, "blocked.acl")} }`,
    `    http-request set-header X-Tier %[req.hdr(host),lower,map(${join(o.dir, "hosts.map")},default)]`,
    ...o.backends
      .slice(1)
      .map((b) => `    use_backend ${b.name} if { path_beg /${b.name.replace(/^be_/, "")} }`),
    `    default_backend ${o.backends[0]?.name ?? "be_app"}`,
  );
  if (o.tls)
    lines.push(
      "",
      "frontend fe_https",
      `    bind 127.0.0.1:${o.httpsPort} ssl crt ${o.certDir}/`,
      `    default_backend ${o.backends[0]?.name ?? "be_app"}`,
    );
  if (o.tlsPort !== undefined)
    // HAProxy 2.6 accepts `ssl crt ... verify required` on a `stats socket` line but serves it
    // in clear text (measured: openssl s_client gets "wrong version number", socat gets the
    // CLI). So the mTLS endpoint is a TLS listener in front of the admin socket, the usual
    // production setup.
    lines.push(
      "",
      "listen cli_tls",
      "    mode tcp",
      `    bind 127.0.0.1:${o.tlsPort} ssl crt ${join(o.tlsDir, "socket.pem")} ca-file ${join(o.tlsDir, "ca.pem")} verify required`,
      `    server admin unix@${o.sockets.admin}`,
    );
  for (const b of o.backends) {
    lines.push("", `backend ${b.name}`, "    option httpchk GET /health");
    for (const l of b.lines ?? []) lines.push(`    ${l}`);
    for (const s of b.servers) {
      const port = o.ports.get(`${b.name}/${s.name}`);
      const opts = [
        s.check === false ? "" : "check inter 500ms rise 1 fall 2",
        s.weight !== undefined ? `weight ${s.weight}` : "",
        s.disabled ? "disabled" : "",
      ].filter(Boolean);
      lines.push(
        `    server ${s.name} ${s.host ?? "127.0.0.1"}:${port} ${opts.join(" ")}`.trimEnd(),
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** Start HAProxy and its backends in `dir`; resolves once the socket answers and checks are UP. */
export async function startLab(opts: LabOptions): Promise<Lab> {
  const dir = opts.dir;
  const specs = opts.backends ?? DEMO_BACKENDS;
  const certDir = join(dir, "certs");
  const tlsDir = join(dir, "tls");
  await mkdir(certDir, { recursive: true, mode: 0o700 });
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);

  const backends = new Map<string, HttpBackend>();
  const ports = new Map<string, number>();
  let child: ChildProcess | undefined;
  const stopAll = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child?.once("exit", () => r()));
      child.kill("SIGTERM");
      const killer = setTimeout(() => child?.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
    await Promise.all([...backends.values()].map((b) => b.close()));
  };

  try {
    for (const b of specs)
      for (const s of b.servers) {
        const backend = await startHttpBackend(`${b.name}/${s.name}`, s.host);
        backends.set(`${b.name}/${s.name}`, backend);
        ports.set(`${b.name}/${s.name}`, backend.port);
      }

    const ca = await TestCa.create(join(dir, "ca"));
    const site1 = await ca.issue({
      cn: "example.com",
      san: ["DNS:example.com", "DNS:www.example.com"],
    });
    const site2 = await ca.issue({
      cn: "other.org",
      san: ["DNS:other.org", "DNS:*.other.org"],
      days: 20,
    });
    const socketCert = await ca.issue({
      cn: "hapops-socket",
      san: ["IP:127.0.0.1", "DNS:localhost"],
    });
    const client = await ca.issue({ cn: "operator", usage: "clientAuth" });
    const rogueCa = await TestCa.create(join(dir, "rogue-ca"), "untrusted CA");
    const rogue = await rogueCa.issue({ cn: "intruder", usage: "clientAuth" });
    const secret = { mode: 0o600 };
    await writeFile(join(dir, "hosts.map"), "example.com gold\nother.org silver\n");
    await writeFile(join(dir, "blocked.acl"), "192.0.2.66\n");
    await writeFile(join(certDir, "example.com.pem"), site1.bundle, secret);
    await writeFile(join(certDir, "other.org.pem"), site2.bundle, secret);
    await writeFile(join(tlsDir, "socket.pem"), socketCert.bundle, secret);
    await writeFile(join(tlsDir, "ca.pem"), ca.caCert);
    await writeFile(join(tlsDir, "client.pem"), client.cert);
    await writeFile(join(tlsDir, "client.key"), client.key, secret);
    await writeFile(join(tlsDir, "rogue.pem"), rogue.cert);
    await writeFile(join(tlsDir, "rogue.key"), rogue.key, secret);

    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const tcpPort = opts.tcpSocket ? await freePort() : undefined;
    const tlsPort = opts.tlsSocket ? await freePort() : undefined;
    const sockets: LabSockets = {
      admin: join(dir, "admin.sock"),
      operator: join(dir, "operator.sock"),
      user: join(dir, "user.sock"),
      ...(tcpPort !== undefined ? { tcp: `tcp://127.0.0.1:${tcpPort}` } : {}),
      ...(tlsPort !== undefined ? { tls: `tls://127.0.0.1:${tlsPort}` } : {}),
      ...(opts.masterWorker ? { master: join(dir, "master.sock") } : {}),
    };
    const stateFile = (opts.serverStateFile ?? true) ? join(dir, "server-state") : undefined;
    const configPath = join(dir, "haproxy.cfg");
    await writeFile(
      configPath,
      renderConfig({
        dir,
        sockets,
        tlsDir,
        httpPort,
        httpsPort,
        certDir,
        backends: specs,
        ports,
        stateFile,
        tls: opts.tls ?? true,
        ...(tcpPort !== undefined ? { tcpPort } : {}),
        ...(tlsPort !== undefined ? { tlsPort } : {}),
      }),
    );

    let output = "";
    const bin = opts.haproxyBin ?? tool("haproxy", "haproxy");
    const args = sockets.master
      ? ["-W", "-db", "-S", sockets.master, "-f", configPath]
      : ["-db", "-f", configPath];
    const proc = spawn(bin, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: toolEnv(),
    });
    child = proc;
    proc.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    proc.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    const early = new Promise<never>((_, reject) => {
      proc.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new EnvironmentError(
            e.code === "ENOENT"
              ? `${bin} is not installed (Debian: apt-get install haproxy)`
              : `cannot start ${bin}: ${e.message}`,
          ),
        ),
      );
      proc.once("exit", (code, signal) =>
        reject(
          new EnvironmentError(
            `haproxy exited during start-up (${signal ?? `exit ${code}`}):\n${output.trim()}`,
          ),
        ),
      );
    });
    early.catch(() => undefined);

    const admin: Target = { kind: "unix", path: sockets.admin };
    const timeoutMs = opts.startTimeoutMs ?? 15_000;
    await Promise.race([
      early,
      waitUntil(async () => ((await query(admin, showInfo())).length > 0 ? true : undefined), {
        what: "the HAProxy admin socket to answer",
        timeoutMs,
      }),
    ]);
    // Servers start UP before their first check; wait until every checked, non-maintenance
    // server has passed one (check_status L7OK), so tests see settled states.
    await Promise.race([
      early,
      waitUntil(
        async () => {
          const rows = parseStat(await query(admin, showStat())).map(toStatEntry);
          const pending = rows.filter(
            (r) =>
              r.kind === "server" &&
              r.status !== "MAINT" &&
              r.checkStatus !== "" &&
              r.checkStatus !== "L7OK",
          );
          return pending.length === 0 ? true : undefined;
        },
        { what: "every checked server to pass a health check", timeoutMs },
      ),
    ]);

    return {
      dir,
      configPath,
      sockets,
      tls: {
        ca: join(tlsDir, "ca.pem"),
        clientCert: join(tlsDir, "client.pem"),
        clientKey: join(tlsDir, "client.key"),
        rogueCert: join(tlsDir, "rogue.pem"),
        rogueKey: join(tlsDir, "rogue.key"),
      },
      httpPort,
      httpsPort,
      certDir,
      mapFile: join(dir, "hosts.map"),
      aclFile: join(dir, "blocked.acl"),
      backends,
      stateFile,
      ca,
      rogueCa,
      pid: proc.pid ?? -1,
      output: () => output,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** One command on a fresh session (readiness polling). */
async function query(target: Target, cmd: Parameters<RuntimeSession["run"]>[0]): Promise<string[]> {
  const socket = await connect(target, { connectTimeoutMs: 1000 });
  const session = RuntimeSession.start(socket, { target: "lab", timeoutMs: 2000 });
  try {
    return await session.run(cmd);
  } finally {
    await session.close();
  }
}
