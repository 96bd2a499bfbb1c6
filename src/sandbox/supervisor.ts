import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  constants,
  accessSync,
  existsSync,
  lstatSync,
  openSync,
  readFileSync,
  statSync,
} from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EnvironmentError, GuardError, UsageError } from "../errors.js";
import { processStart } from "../audit/log.js";
import { startLab, type Lab } from "./lab.js";
import { tool, toolEnv } from "../util/tools.js";
import { waitUntil } from "../util/wait.js";

interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface SandboxOptions {
  readonly dir: string | undefined;
  readonly detach: boolean;
  readonly json: boolean;
  /** Another HAProxy binary to run (`--haproxy`), to try hapops on the version an LB runs. */
  readonly haproxy?: string | undefined;
}

/** What a running sandbox records in `<dir>/sandbox.json`. */
export interface SandboxState {
  readonly pid: number;
  readonly haproxyPid: number;
  readonly dir: string;
  readonly socket: string;
  readonly sockets: Lab["sockets"];
  readonly tls: Lab["tls"];
  readonly http: string;
  readonly https: string;
  readonly config: string;
  /** The HAProxy binary and the version it reports. */
  readonly haproxy?: { readonly bin: string; readonly version: string; readonly tls: boolean };
  readonly startedAt: string;
  /** Start time (clock ticks since boot) of each pid above, so a reused pid is never signalled. */
  readonly starts?: Readonly<Record<string, number | undefined>>;
}

function defaultDir(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return join(tmpdir(), `hapops-sandbox-${uid}`);
}

function stateFile(dir: string): string {
  return join(dir, "sandbox.json");
}

/**
 * The sandbox directory must be ours alone: a real directory (not a symbolic link), owned by the
 * user running hapops, writable by nobody else. Otherwise anyone who can write it could feed its
 * haproxy.cfg, or forge the pids that `sandbox stop` signals.
 */
function checkOwnDir(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return; // created below, 0700
  }
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory())
    throw new GuardError(`sandbox directory ${dir} is not a directory (or is a symbolic link)`);
  if (st.uid !== uid || (st.mode & 0o022) !== 0)
    throw new GuardError(
      `sandbox directory ${dir} belongs to uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}; hapops uses only a directory of its own that others cannot write (pick another --dir)`,
    );
}

function readState(dir: string): SandboxState | undefined {
  checkOwnDir(dir);
  let state: SandboxState;
  try {
    state = JSON.parse(readFileSync(stateFile(dir), "utf8")) as SandboxState;
  } catch {
    return undefined;
  }
  // Only pids that are plausible children of a sandbox are ever signalled.
  const pidOk = (p: unknown) => Number.isInteger(p) && (p as number) > 1;
  if (!pidOk(state.pid) || !pidOk(state.haproxyPid)) return undefined;
  return state;
}

/** The process is the one the sandbox recorded (same start time), not a reused pid. */
function belongs(pid: number, state: SandboxState): boolean {
  const start = processStart(pid);
  return start !== undefined && start === state.starts?.[String(pid)];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The binary `--haproxy` names, checked before anything starts: an executable file, and what it
 * says of itself (`-vv`): its version and whether it was built with OpenSSL (2.4.0 built on
 * OpenSSL 3 systems has none, and then the sandbox has no TLS frontend or socket).
 */
export function haproxyBuild(path: string): { bin: string; version: string; tls: boolean } {
  const bin = resolve(path);
  try {
    accessSync(bin, constants.X_OK);
    const st = statSync(bin);
    if (!st.isFile() || (st.mode & 0o111) === 0) throw new Error("not an executable file");
  } catch {
    throw new UsageError(`--haproxy: ${path} is not an executable file; name an haproxy binary`);
  }
  let out: string;
  try {
    out = execFileSync(bin, ["-vv"], {
      encoding: "utf8",
      env: toolEnv(),
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 10_000,
    });
  } catch (e) {
    throw new UsageError(`--haproxy: ${path} -vv failed (${(e as Error).message.split("\n")[0]})`);
  }
  const version = /^HA-?Proxy version (\S+)/m.exec(out)?.[1];
  if (version === undefined)
    throw new UsageError(`--haproxy: ${path} does not say it is HAProxy (no version in -vv)`);
  return { bin, version: version.replace(/-.*$/, ""), tls: /\+OPENSSL\b/.test(out) };
}

export async function runSandbox(action: string, opts: SandboxOptions, io: Io): Promise<void> {
  const dir = resolve(opts.dir ?? defaultDir());
  if (opts.haproxy !== undefined && action !== "start" && action !== "run")
    throw new UsageError(`--haproxy goes with sandbox start, not ${action}`);
  switch (action) {
    case "start":
      return opts.detach ? startDetached(dir, opts, io) : runForeground(dir, opts, io, true);
    case "run":
      return runForeground(dir, opts, io, false);
    case "stop":
      return stop(dir, opts, io);
    case "status":
      return status(dir, opts, io);
    default:
      throw new UsageError(
        `unknown sandbox action ${JSON.stringify(action)}: use start, stop or status`,
      );
  }
}

function describe(state: SandboxState): string {
  return [
    `HAProxy${state.haproxy ? ` ${state.haproxy.version}` : ""} sandbox running (haproxy pid ${state.haproxyPid}) in ${state.dir}`,
    ``,
    `  admin socket     ${state.sockets.admin}`,
    `  operator socket  ${state.sockets.operator}`,
    `  user socket      ${state.sockets.user}`,
    ...(state.sockets.tls
      ? [
          `  mTLS socket      ${state.sockets.tls}  (--tls-cert ${state.tls.clientCert} --tls-key ${state.tls.clientKey} --tls-ca ${state.tls.ca})`,
        ]
      : []),
    `  HTTP             ${state.http}`,
    ...(state.haproxy?.tls === false
      ? [`  (no HTTPS and no mTLS socket: ${state.haproxy.bin} is built without TLS)`]
      : [`  HTTPS            ${state.https}  (certificates for example.com and other.org)`]),
    ``,
    `Try:   hapops -s ${state.socket} servers`,
    `       export HAPOPS_CONFIG=${join(state.dir, "hapops.yaml")}   # this socket, audit log in ${state.dir}`,
    `Stop:  hapops sandbox stop${state.dir === resolve(defaultDir()) ? "" : ` --dir ${state.dir}`}`,
    ``,
  ].join("\n");
}

async function refuseIfRunning(dir: string): Promise<void> {
  const existing = readState(dir);
  if (existing && alive(existing.pid))
    throw new UsageError(
      `a sandbox is already running in ${dir} (pid ${existing.pid}); stop it with: hapops sandbox stop${stopHint(dir)}`,
    );
  await rm(stateFile(dir), { force: true });
}

function stopHint(dir: string): string {
  return dir === resolve(defaultDir()) ? "" : ` --dir ${dir}`;
}

/** Run HAProxy and the backends in this process until SIGINT or SIGTERM. */
async function runForeground(
  dir: string,
  opts: SandboxOptions,
  io: Io,
  interactive: boolean,
): Promise<void> {
  const build = haproxyBuild(opts.haproxy ?? tool("haproxy", "haproxy"));
  await refuseIfRunning(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lab = await startLab({
    dir,
    tlsSocket: build.tls,
    haproxyBin: build.bin,
    tls: build.tls,
  });
  const state: SandboxState = {
    pid: process.pid,
    haproxyPid: lab.pid,
    dir,
    socket: lab.sockets.admin,
    sockets: lab.sockets,
    tls: lab.tls,
    http: `http://127.0.0.1:${lab.httpPort}/`,
    https: `https://127.0.0.1:${lab.httpsPort}/`,
    config: lab.configPath,
    haproxy: build,
    startedAt: new Date().toISOString(),
    starts: {
      [String(process.pid)]: processStart("self"),
      [String(lab.pid)]: processStart(lab.pid),
    },
  };
  // A config for trying changes: this sandbox's socket, and an audit log beside it.
  await writeFile(
    join(dir, "hapops.yaml"),
    `socket: ${lab.sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\nhaproxyConfig: ${lab.configPath}\nbackupDir: ${join(dir, "backups")}\n`,
    { mode: 0o600 },
  );
  await writeFile(stateFile(dir), JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  if (interactive) {
    io.out(
      opts.json
        ? json(state)
        : describe(state).replace(
            /^Stop:.*$/m,
            `Stop:  Ctrl-C (or hapops sandbox stop${stopHint(dir)})`,
          ),
    );
  }
  await new Promise<void>((done) => {
    const finish = () => done();
    process.once("SIGINT", finish);
    process.once("SIGTERM", finish);
    process.once("SIGHUP", finish);
  });
  await lab.stop();
  await rm(stateFile(dir), { force: true });
  if (interactive && !opts.json) io.out("sandbox stopped\n");
}

async function startDetached(dir: string, opts: SandboxOptions, io: Io): Promise<void> {
  const build = haproxyBuild(opts.haproxy ?? tool("haproxy", "haproxy"));
  await refuseIfRunning(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const script = process.argv[1];
  if (!script) throw new EnvironmentError("cannot find the hapops script to start the sandbox");
  const logPath = join(dir, "sandbox.log");
  const log = openSync(logPath, "w", 0o600);
  const child = spawn(
    process.execPath,
    [script, "sandbox", "run", "--dir", dir, "--haproxy", build.bin],
    {
      detached: true,
      stdio: ["ignore", log, log],
    },
  );
  closeSync(log);
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = signal ?? `exit ${code}`));
  const state = await waitUntil(
    () => {
      if (exited !== undefined)
        throw new EnvironmentError(
          `the sandbox failed to start (${exited}):\n${existsSync(logPath) ? readFileSync(logPath, "utf8").trim() : ""}`,
        );
      return readState(dir);
    },
    { what: "the sandbox to start", timeoutMs: 30_000, intervalMs: 50 },
  ).catch((e: unknown) => {
    child.kill("SIGTERM");
    throw e instanceof EnvironmentError ? e : new EnvironmentError((e as Error).message);
  });
  child.unref();
  io.out(opts.json ? json(state) : describe(state));
}

async function stop(dir: string, opts: SandboxOptions, io: Io): Promise<void> {
  const state = readState(dir);
  if (!state || !alive(state.pid)) {
    if (state && alive(state.haproxyPid) && belongs(state.haproxyPid, state))
      process.kill(state.haproxyPid, "SIGTERM");
    await rm(stateFile(dir), { force: true });
    io.out(
      opts.json ? json({ dir, stopped: false, running: false }) : `no sandbox running in ${dir}\n`,
    );
    return;
  }
  if (!belongs(state.pid, state))
    throw new GuardError(
      `pid ${state.pid} in ${stateFile(dir)} is not this sandbox's process; nothing was signalled (remove the file if the sandbox is gone)`,
    );
  process.kill(state.pid, "SIGTERM");
  // HAProxy lets requests in flight finish: say so rather than sit silent.
  if (!opts.json)
    io.out(`stopping the sandbox in ${dir} (requests in flight may take up to 15 s)\n`);
  await waitUntil(() => (alive(state.pid) || alive(state.haproxyPid) ? undefined : true), {
    what: `sandbox pid ${state.pid} and haproxy pid ${state.haproxyPid} to exit`,
    timeoutMs: 15_000,
  }).catch(() => {
    for (const pid of [state.haproxyPid, state.pid])
      if (alive(pid) && belongs(pid, state)) process.kill(pid, "SIGKILL");
  });
  await rm(stateFile(dir), { force: true });
  io.out(opts.json ? json({ dir, stopped: true, running: false }) : `sandbox in ${dir} stopped\n`);
}

function status(dir: string, opts: SandboxOptions, io: Io): void {
  const state = readState(dir);
  const running = state !== undefined && alive(state.pid) && alive(state.haproxyPid);
  if (opts.json) {
    io.out(json(running ? { running, ...state } : { running, dir }));
    return;
  }
  io.out(running && state ? describe(state) : `no sandbox running in ${dir}\n`);
}

/** An object as the CLI prints JSON objects: indented (see cli/output.ts renderJson). */
function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}
