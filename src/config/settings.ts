import { existsSync } from "node:fs";
import { ConfigError, UsageError } from "../errors.js";
import type { TlsFiles } from "../transport/connect.js";
import { formatTarget, parseTarget, type Target } from "../transport/target.js";
import { parseDuration } from "../util/duration.js";
import { readConfigFile, SYSTEM_CONFIG } from "./load.js";
import type { ConfigFile } from "./schema.js";

export const DEFAULT_SOCKET = "/run/haproxy/admin.sock";

/** Global flags as the CLI parsed them (all optional). */
export interface GlobalFlags {
  socket?: string;
  config?: string;
  json?: boolean;
  timeout?: string;
  insecureTcp?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  color?: boolean;
}

/** Everything a command needs to reach HAProxy and print, resolved once. */
export interface Settings {
  readonly target: Target;
  readonly targetText: string;
  readonly tls: TlsFiles | undefined;
  readonly insecureTcp: boolean;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly json: boolean;
  readonly color: boolean;
  /** Live progress lines (on stderr) for waits and ramps: a terminal, and not --json. */
  readonly progress: boolean;
  readonly configPath: string | undefined;
}

export interface Environment {
  readonly env: NodeJS.ProcessEnv;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
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

/** Resolve settings: flags > environment > config file > defaults. */
export async function resolveSettings(
  flags: GlobalFlags,
  environment: Environment,
): Promise<Settings> {
  const configPath = findConfigPath(flags, environment.env);
  const file: ConfigFile = configPath ? await readConfigFile(configPath) : {};
  const socketText = flags.socket ?? environment.env.HAPOPS_SOCKET ?? file.socket ?? DEFAULT_SOCKET;
  const named = file.targets?.[socketText];
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

  const commandTimeoutMs = flags.timeout
    ? parseDuration(flags.timeout, "--timeout")
    : durationFromConfig(file.timeouts?.command, 10_000, configPath, "timeouts.command");
  const connectTimeoutMs = flags.timeout
    ? commandTimeoutMs
    : durationFromConfig(file.timeouts?.connect, 3_000, configPath, "timeouts.connect");

  return {
    target,
    targetText: named ? `${socketText} (${formatTarget(target)})` : formatTarget(target),
    tls,
    insecureTcp: flags.insecureTcp ?? named?.insecureTcp ?? file.insecureTcp ?? false,
    connectTimeoutMs,
    commandTimeoutMs,
    json: flags.json ?? false,
    color: resolveColor(flags, environment),
    progress: !flags.json && environment.stderrIsTTY && environment.env.TERM !== "dumb",
    configPath,
  };
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
