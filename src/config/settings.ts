import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { GroupRule, Policy } from "../policy/policy.js";
import { ConfigError, PolicyError, UsageError } from "../errors.js";
import type { TlsFiles } from "../transport/connect.js";
import { formatTarget, parseTarget, type Target } from "../transport/target.js";
import { parseDuration } from "../util/duration.js";
import { readConfigFile, SYSTEM_CONFIG } from "./load.js";
import type { ConfigFile } from "./schema.js";

export const DEFAULT_SOCKET = "/run/haproxy/admin.sock";

/** Where Debian's haproxy.service puts the master CLI (`EXTRAOPTS=-S /run/haproxy-master.sock`). */
export const DEFAULT_MASTER = "/run/haproxy-master.sock";

/** Global flags as the CLI parsed them (all optional). */
export interface GlobalFlags {
  socket?: string;
  master?: string;
  config?: string;
  json?: boolean;
  timeout?: string;
  insecureTcp?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  color?: boolean;
  /** Fleet: `-t lb1,lb2`, `-g edge`, `--all` (targets and groups from the config). */
  target?: string;
  group?: string;
  all?: boolean;
  /** How a change is applied over a fleet. */
  rolling?: boolean;
  parallel?: boolean;
  batch?: string;
  pause?: string;
  onError?: string;
}

/** One target of a fleet run: its name in the config and everything needed to reach it. */
export interface FleetMember {
  readonly name: string;
  readonly settings: Settings;
}

/** How a change is applied over the targets of a fleet. */
export interface FleetApply {
  /** parallel: every target at once; rolling: `batch` at a time, each batch verified first. */
  readonly mode: "parallel" | "rolling";
  readonly batch: number;
  /** Between rolling batches. */
  readonly pauseMs: number;
  /** After a target fails: stop (targets not started are not reached) or go on. */
  readonly onError: "stop" | "continue";
}

/** The targets a command runs on when -t, -g or --all is given. */
export interface Fleet {
  /** How the selection reads in messages and the audit log ("group edge: lb1, lb2"). */
  readonly label: string;
  readonly members: readonly FleetMember[];
  readonly apply: FleetApply;
}

/** Whether a command can run over many targets (settingsFor's second argument). */
export type FleetUse = "none" | "read" | "change";

/** Where audit records go, resolved from the config (never from flags or the environment). */
export interface AuditSettings {
  readonly path: string;
  /** Create the directory if missing: only for the per-user default. */
  readonly createDir: boolean;
  readonly group: string | undefined;
  readonly syslog: string | undefined;
  readonly reads: boolean;
}

/** Everything a command needs to reach HAProxy and print, resolved once. */
export interface Settings {
  readonly target: Target;
  readonly targetText: string;
  /**
   * The master CLI socket (a unix path) for `hapops reload`: --master, the target's or the
   * file's `master:`, else /run/haproxy-master.sock when it exists; undefined when none.
   */
  readonly master: string | undefined;
  readonly tls: TlsFiles | undefined;
  readonly insecureTcp: boolean;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly json: boolean;
  readonly color: boolean;
  /** Live progress lines (on stderr) for waits and ramps: a terminal, and not --json. */
  readonly progress: boolean;
  readonly configPath: string | undefined;
  readonly audit: AuditSettings;
  readonly certs: { readonly persist: boolean; readonly minDays: number };
  /** `saveState`: write HAProxy's server-state file after every verified server change. */
  readonly servers: { readonly saveState: boolean };
  /**
   * Where --persist keeps the previous content of a file it replaces: never beside the file,
   * where HAProxy would load it (a `crt <directory>` loads every file).
   */
  readonly backupDir: string;
  /** HAProxy's config file (default /etc/haproxy/haproxy.cfg), read when present. */
  readonly haproxyConfig: string;
  readonly policy: Policy | undefined;
  /** Running through sudo: the config is locked down to the system one. */
  readonly sudo: boolean;
  /** The targets of a fleet run (-t, -g, --all); undefined for one target. */
  readonly fleet: Fleet | undefined;
}

export interface Environment {
  readonly env: NodeJS.ProcessEnv;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  /** Effective uid (0 for root). */
  readonly euid: number;
  /** Running through sudo (see audit/identity.ts); decides the lock-down. */
  readonly sudo: boolean;
}

/** Which config file applies: --config, then HAPOPS_CONFIG, then the system one if present. */
export function findConfigPath(flags: GlobalFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.config !== undefined) return flags.config;
  if (env.HAPOPS_CONFIG) return env.HAPOPS_CONFIG;
  return existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined;
}

/** Colour on a TTY only, never with NO_COLOR set, never with --json (flags > env > TTY). */
export function resolveColor(flags: GlobalFlags, environment: Environment): boolean {
  if (flags.json) return false;
  if (flags.color === false) return false;
  if (environment.env.NO_COLOR !== undefined && environment.env.NO_COLOR !== "") return false;
  if (environment.env.FORCE_COLOR !== undefined && environment.env.FORCE_COLOR !== "0") return true;
  return environment.stdoutIsTTY && environment.env.TERM !== "dumb";
}

/**
 * Under sudo hapops acts with root's power for someone else, so only the system config counts:
 * no --config, no HAPOPS_* variables, no flags that reach past the configured targets.
 * Otherwise an operator could bring their own policy, audit path or socket.
 */
function lockDown(flags: GlobalFlags, env: NodeJS.ProcessEnv): void {
  const refuse = (what: string) => {
    throw new PolicyError(
      `${what} is refused under sudo: only ${SYSTEM_CONFIG} applies (ask an admin to change it)`,
    );
  };
  if (flags.config !== undefined) refuse("--config");
  for (const k of Object.keys(env)) if (k.startsWith("HAPOPS_")) refuse(`the ${k} variable`);
  if (flags.tlsCert || flags.tlsKey || flags.tlsCa) refuse("--tls-cert/--tls-key/--tls-ca");
  if (flags.insecureTcp) refuse("--insecure-tcp");
  let st;
  try {
    st = statSync(SYSTEM_CONFIG);
  } catch {
    throw new PolicyError(`hapops under sudo needs ${SYSTEM_CONFIG}; run hapops setup as root`);
  }
  for (const [path, s2] of [
    [SYSTEM_CONFIG, st],
    [dirname(SYSTEM_CONFIG), statSync(dirname(SYSTEM_CONFIG))],
  ] as const) {
    if (s2.uid !== 0 || (s2.mode & 0o022) !== 0)
      throw new PolicyError(
        `${path} must be owned by root and not writable by group or others (it is uid ${s2.uid}, mode ${(s2.mode & 0o777).toString(8)}); fix with: chown root: ${path} && chmod go-w ${path}`,
      );
  }
}

function defaultBackupDir(environment: Environment): string {
  if (environment.euid === 0) return "/var/lib/hapops/backups";
  const state =
    environment.env.XDG_STATE_HOME || join(environment.env.HOME || homedir(), ".local", "state");
  return join(state, "hapops", "backups");
}

function defaultAuditPath(environment: Environment): { path: string; createDir: boolean } {
  // Like sudo's I/O log directory: made root-owned 0700 on first use; a directory that exists
  // and cannot be written still fails closed.
  if (environment.euid === 0) return { path: "/var/log/hapops/audit.jsonl", createDir: true };
  const state =
    environment.env.XDG_STATE_HOME || join(environment.env.HOME || homedir(), ".local", "state");
  return { path: join(state, "hapops", "audit.jsonl"), createDir: true };
}

/** Resolve settings: flags > environment > config file > defaults. */
export async function resolveSettings(
  flags: GlobalFlags,
  environment: Environment,
  use: FleetUse = "none",
  /** The config file as already read (a fleet's members: one read, not one per target). */
  loaded?: { readonly path: string | undefined; readonly file: ConfigFile },
): Promise<Settings> {
  if (environment.sudo && !loaded) lockDown(flags, environment.env);
  const configPath =
    loaded?.path ?? (environment.sudo ? SYSTEM_CONFIG : findConfigPath(flags, environment.env));
  const file: ConfigFile = loaded?.file ?? (configPath ? await readConfigFile(configPath) : {});
  const names = fleetNames(flags, file, configPath, use);
  if (names) {
    const apply = fleetApply(flags, use);
    const one = (name: string) =>
      resolveSettings({ ...withoutFleet(flags), socket: name }, environment, "none", {
        path: configPath,
        file,
      });
    const members: FleetMember[] = [];
    for (const name of names.members) members.push({ name, settings: await one(name) });
    const base = await one(names.members[0]!);
    return {
      ...base,
      targetText: names.label,
      fleet: { label: names.label, members, apply },
    };
  }
  if (flags.rolling || flags.parallel || flags.batch || flags.pause || flags.onError)
    throw new UsageError(
      `${applyFlag(flags)} is for changes over many targets: add -t <names>, -g <group> or --all`,
    );
  const socketText = flags.socket ?? environment.env.HAPOPS_SOCKET ?? file.socket ?? DEFAULT_SOCKET;
  // Own keys only: `-s constructor` must not find Object.prototype's.
  const named =
    file.targets !== undefined && Object.hasOwn(file.targets, socketText)
      ? file.targets[socketText]
      : undefined;
  if (environment.sudo && flags.socket !== undefined && !named && flags.socket !== file.socket)
    throw new PolicyError(
      `-s ${flags.socket} is refused under sudo: use a target named in ${SYSTEM_CONFIG} (${Object.keys(file.targets ?? {}).join(", ") || "none defined"})`,
    );
  // A bare word is a target's name, not a path: say which names there are.
  if (!named && /^[A-Za-z0-9_.-]+$/.test(socketText) && !existsSync(socketText))
    throw new UsageError(
      `no target named ${socketText}${configPath ? ` in ${configPath}` : ""} (targets: ${Object.keys(file.targets ?? {}).join(", ") || "none defined"}); give a configured name or a socket path such as /run/haproxy/admin.sock`,
    );
  const targetText = named ? named.socket : socketText;
  const target = parseTarget(targetText);

  const fileTls = named?.tls ?? file.tls;
  const tls: TlsFiles | undefined =
    flags.tlsCert || flags.tlsKey || flags.tlsCa || fileTls
      ? {
          ...(fileTls ?? {}),
          ...(flags.tlsCert ? { cert: flags.tlsCert } : {}),
          ...(flags.tlsKey ? { key: flags.tlsKey } : {}),
          ...(flags.tlsCa ? { ca: flags.tlsCa } : {}),
        }
      : undefined;
  if (tls && target.kind !== "tls")
    throw new UsageError(
      `TLS files were given but the socket ${formatTarget(target)} is not tls://host:port`,
    );

  const master = resolveMaster(flags, environment, file, named, configPath);

  const commandTimeoutMs = flags.timeout
    ? parseDuration(flags.timeout, "--timeout")
    : durationFromConfig(file.timeouts?.command, 10_000, configPath, "timeouts.command");
  const connectTimeoutMs = flags.timeout
    ? commandTimeoutMs
    : durationFromConfig(file.timeouts?.connect, 3_000, configPath, "timeouts.connect");

  return {
    target,
    targetText: named ? `${socketText} (${formatTarget(target)})` : formatTarget(target),
    master,
    tls,
    insecureTcp: flags.insecureTcp ?? named?.insecureTcp ?? file.insecureTcp ?? false,
    connectTimeoutMs,
    commandTimeoutMs,
    json: flags.json ?? false,
    color: resolveColor(flags, environment),
    progress: !flags.json && environment.stderrIsTTY && environment.env.TERM !== "dumb",
    configPath,
    audit: {
      ...(file.audit?.path !== undefined
        ? { path: file.audit.path, createDir: false }
        : defaultAuditPath(environment)),
      group: file.audit?.group,
      syslog: file.audit?.syslog,
      reads: file.audit?.reads ?? false,
    },
    certs: { persist: file.certs?.persist ?? false, minDays: file.certs?.minDays ?? 7 },
    servers: { saveState: file.servers?.saveState ?? false },
    backupDir: file.backupDir ?? defaultBackupDir(environment),
    haproxyConfig: file.haproxyConfig ?? "/etc/haproxy/haproxy.cfg",
    policy: file.policy ? normalisePolicy(file.policy.groups) : undefined,
    sudo: environment.sudo,
    fleet: undefined,
  };
}

function withoutFleet(flags: GlobalFlags): GlobalFlags {
  const rest = { ...flags };
  for (const k of [
    "target",
    "group",
    "all",
    "rolling",
    "parallel",
    "batch",
    "pause",
    "onError",
  ] as const)
    delete rest[k];
  return rest;
}

function applyFlag(flags: GlobalFlags): string {
  if (flags.rolling) return "--rolling";
  if (flags.parallel) return "--parallel";
  if (flags.batch) return "--batch";
  if (flags.pause) return "--pause";
  return "--on-error";
}

/**
 * The targets -t, -g and --all select, in the order given (the config's order for --all and
 * groups), each once; undefined when none of them is given. Only names from the config: a
 * fleet is something an admin wrote down, never a list of sockets typed at 3 a.m.
 */
function fleetNames(
  flags: GlobalFlags,
  file: ConfigFile,
  configPath: string | undefined,
  use: FleetUse,
): { members: string[]; label: string } | undefined {
  const given = [
    flags.target !== undefined ? "-t" : undefined,
    flags.group !== undefined ? "-g" : undefined,
    flags.all ? "--all" : undefined,
  ].filter((x): x is string => x !== undefined);
  if (given.length === 0) return undefined;
  if (use === "none")
    throw new UsageError(
      `${given.join(", ")}: this command works on one target; choose it with -s <name>`,
    );
  if (flags.socket !== undefined)
    throw new UsageError(
      `-s ${flags.socket} and ${given.join(", ")} both choose targets: give one of them`,
    );
  const where = configPath ?? "the config (none found: give -c <file>)";
  const targets = file.targets ?? {};
  const known = Object.keys(targets);
  const groups = file.groups ?? {};
  const list = (text: string, flag: string) => {
    const items = text.split(",").map((t) => t.trim());
    if (items.some((t) => t === ""))
      throw new UsageError(`${flag} ${JSON.stringify(text)}: an empty name in the list`);
    return items;
  };
  const out: string[] = [];
  const labels: string[] = [];
  if (flags.all) {
    if (known.length === 0)
      throw new UsageError(
        `--all: no targets in ${where}${flags.target === undefined && flags.group === undefined ? " (every field of show info is hapops info --full)" : ""}`,
      );
    out.push(...known);
    labels.push("all targets");
  }
  if (flags.group !== undefined) {
    for (const g of list(flags.group, "-g")) {
      if (!Object.hasOwn(groups, g))
        throw new UsageError(
          `-g ${g}: no group named ${g} in ${where} (groups: ${Object.keys(groups).join(", ") || "none defined"})`,
        );
      for (const m of groups[g]!)
        if (!Object.hasOwn(targets, m))
          throw new ConfigError(
            `config ${where}: groups.${g} names ${m}, which is not under targets: (targets: ${known.join(", ") || "none defined"})`,
          );
      out.push(...groups[g]!);
      labels.push(`group ${g}`);
    }
  }
  if (flags.target !== undefined) {
    const names = list(flags.target, "-t");
    for (const t of names)
      if (!Object.hasOwn(targets, t))
        throw new UsageError(
          `-t ${t}: no target named ${t} in ${where} (targets: ${known.join(", ") || "none defined"})`,
        );
    out.push(...names);
    labels.push(names.length === 1 ? `target ${names[0]}` : `targets ${names.join(",")}`);
  }
  const members = [...new Set(out)];
  if (members.length === 0) throw new UsageError(`${given.join(", ")}: no targets selected`);
  return { members, label: `${labels.join(" + ")}: ${members.join(", ")}` };
}

function fleetApply(flags: GlobalFlags, use: FleetUse): FleetApply {
  const rollingOnly = flags.batch !== undefined || flags.pause !== undefined;
  if (use !== "change" && (flags.rolling || flags.parallel || rollingOnly || flags.onError))
    throw new UsageError(`${applyFlag(flags)} is for changes; a read asks every target at once`);
  if (flags.rolling && flags.parallel) throw new UsageError("--rolling and --parallel: choose one");
  if (rollingOnly && !flags.rolling)
    throw new UsageError(`${flags.batch !== undefined ? "--batch" : "--pause"} needs --rolling`);
  const batch = flags.batch === undefined ? 1 : Number(flags.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 1000)
    throw new UsageError(`--batch ${flags.batch}: a whole number of targets from 1 to 1000`);
  const pauseMs = flags.pause === undefined ? 0 : parseDuration(flags.pause, "--pause");
  if (pauseMs > 24 * 3_600_000)
    throw new UsageError(`--pause ${flags.pause} is over the limit of 24h`);
  const onError = flags.onError ?? "stop";
  if (onError !== "stop" && onError !== "continue")
    throw new UsageError(`--on-error ${flags.onError}: stop or continue`);
  return { mode: flags.rolling ? "rolling" : "parallel", batch, pauseMs, onError };
}

/**
 * The master CLI socket: --master, then the chosen target's `master:`, then the file's, then
 * the default when it exists. Under sudo --master may only repeat the configured one (like -s).
 * A unix socket only: a reload checks and may write files on HAProxy's own host.
 */
function resolveMaster(
  flags: GlobalFlags,
  environment: Environment,
  file: ConfigFile,
  named: { master?: string | undefined } | undefined,
  configPath: string | undefined,
): string | undefined {
  const configured = named ? named.master : file.master;
  if (environment.sudo && flags.master !== undefined && flags.master !== configured)
    throw new PolicyError(
      `--master ${flags.master} is refused under sudo: only the master socket ${SYSTEM_CONFIG} names applies (${configured ?? "none"})`,
    );
  const text = flags.master ?? configured;
  if (text === undefined) return existsSync(DEFAULT_MASTER) ? DEFAULT_MASTER : undefined;
  const where =
    flags.master !== undefined ? "--master" : `master: in ${configPath ?? "the config"}`;
  let parsed: Target;
  try {
    parsed = parseTarget(text);
  } catch (e) {
    throw new UsageError(`${where}: ${(e as Error).message}`);
  }
  if (parsed.kind !== "unix")
    throw new UsageError(
      `${where} ${text}: the master CLI must be a unix socket on this host (a reload runs haproxy -c and writes the server-state file here); run hapops on the HAProxy host`,
    );
  return parsed.path;
}

function normalisePolicy(groups: NonNullable<ConfigFile["policy"]>["groups"]): Policy {
  const out: Record<string, GroupRule> = {};
  for (const [g, rule] of Object.entries(groups)) {
    if (Array.isArray(rule)) {
      out[g] = { allow: rule };
      continue;
    }
    const servers = [...(rule.scope?.servers ?? []), ...(rule.selectors ?? [])];
    const scope = { ...rule.scope, ...(servers.length > 0 ? { servers } : {}) };
    out[g] = { allow: rule.allow, ...(Object.keys(scope).length > 0 ? { scope } : {}) };
  }
  return out;
}

function durationFromConfig(
  value: string | number | undefined,
  fallback: number,
  path: string | undefined,
  key: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") return Math.round(value * 1000);
  try {
    return parseDuration(value, key);
  } catch {
    throw new ConfigError(
      `config ${path ?? ""}: ${key}: ${JSON.stringify(value)} is not a duration (e.g. 10s, 2m)`,
    );
  }
}
