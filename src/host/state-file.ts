import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { Settings } from "../config/settings.js";
import { UsageError } from "../errors.js";
import {
  backendStatePath,
  parseServerConfig,
  stateFilePath,
  type ServerConfig,
} from "../parse/haproxy-cfg.js";
import { parseStateFile, type StateFileRead } from "../parse/state-file.js";

/**
 * HAProxy's server-state file on this host: where haproxy.cfg says it is, and what is in it, read
 * the way HAProxy reads it at a start or reload (apply_server_state, src/server_state.c).
 */

/** haproxy.cfg, read for its servers and state-file settings; `error` when it cannot be. */
export interface HaproxyConfigRead {
  readonly path: string;
  readonly config?: ServerConfig | undefined;
  readonly error?: string | undefined;
}

export function readServerConfig(path: string): HaproxyConfigRead {
  try {
    return { path, config: parseServerConfig(readFileSync(path, "utf8")) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : (e as Error).message;
    return { path, error: `cannot read ${path}: ${why}` };
  }
}

/** Where `state save` writes, and who reads it back at a reload. */
export interface StateTarget {
  readonly path: string;
  /** `--file`, or `server-state-file in <haproxy.cfg>`. */
  readonly source: string;
  /** The path the configuration names (undefined when it names none or was not read). */
  readonly configured: string | undefined;
  /**
   * Backends whose state a reload takes from this file (`load-server-state-from-file global`
   * for the global file); undefined when the configuration was not read.
   */
  readonly loadedBy: readonly string[] | undefined;
}

/** The file the configuration names, with the backends that load it; undefined when none. */
export function configuredStateFile(cfg: HaproxyConfigRead): StateTarget | undefined {
  const c = cfg.config;
  if (!c?.stateFile) return undefined;
  const path = stateFilePath(c.stateFile, c.stateBase);
  if (path === undefined) return undefined;
  return {
    path,
    source: `server-state-file in ${cfg.path}`,
    configured: path,
    loadedBy: [...c.backends.values()]
      .filter((b) => b.loadState === "global" && backendStatePath(c, b) === path)
      .map((b) => b.name),
  };
}

/** The configured state file, or what is in the way (and what would fix it for `state save`). */
function locateStateFile(settings: Settings): StateTarget | { problem: string; fix: string } {
  if (settings.target.kind !== "unix")
    return {
      problem: `HAProxy is reached over ${settings.target.kind}://, so its server-state file is on its own host`,
      fix: "run hapops state save there, or pass --file to write a copy here",
    };
  const cfg = readServerConfig(settings.haproxyConfig);
  if (cfg.error)
    return {
      problem: `${cfg.error}, so hapops cannot tell where the server-state file is`,
      fix: "pass --file, or set haproxyConfig in the config",
    };
  const configured = configuredStateFile(cfg);
  if (configured) return configured;
  const c = cfg.config;
  return c?.stateFile !== undefined
    ? {
        problem: `server-state-file ${c.stateFile} in ${cfg.path} is relative and there is no server-state-base, so HAProxy opens it from its own working directory, which hapops cannot know`,
        fix: "make it absolute, or pass --file",
      }
    : {
        problem: `${cfg.path} names no server-state-file`,
        fix: "set one in its global section (and load-server-state-from-file global in defaults), or pass --file",
      };
}

/**
 * Where `hapops state save` writes: `--file`, or the global `server-state-file` of haproxy.cfg
 * (under `server-state-base` when relative). Refused (exit 2) when neither says, or when
 * HAProxy is on another host (its file is there, not here) and no --file was given.
 */
export function resolveStateTarget(settings: Settings, file: string | undefined): StateTarget {
  if (file !== undefined) {
    const cfg = readServerConfig(settings.haproxyConfig);
    return {
      path: isAbsolute(file) ? file : resolve(file),
      source: "--file",
      configured: configuredStateFile(cfg)?.path,
      loadedBy: undefined,
    };
  }
  const found = locateStateFile(settings);
  if ("problem" in found) throw new UsageError(`${found.problem}; ${found.fix}`);
  return found;
}

/**
 * The file `servers.saveState` writes after each verified server change, or why there is none.
 * Never throws: a server change is not refused for it; its output says the state was not saved.
 */
export function saveStateTarget(
  settings: Settings,
): { path: string; loadedBy: readonly string[] | undefined } | { problem: string } | undefined {
  if (!settings.servers.saveState) return undefined;
  const found = locateStateFile(settings);
  return "problem" in found
    ? { problem: found.problem }
    : { path: found.path, loadedBy: found.loadedBy };
}

export function readStateFile(path: string): StateFileRead {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { path, exists: false };
    return {
      path,
      exists: true,
      unreadable: true,
      problem: `hapops cannot read it (${code === "EACCES" || code === "EPERM" ? "permission denied" : (e as Error).message})`,
    };
  }
  return parseStateFile(path, text);
}

/** The text `show servers state` answered, as the file HAProxy reads: every line ends in \n. */
export function renderStateFile(lines: readonly string[]): string {
  return lines.filter((l, i) => i < 2 || l.length > 0).join("\n") + "\n";
}

/** A doctor check (host/doctor.ts's Check, without importing it: doctor imports this). */
export interface StateCheck {
  readonly check: string;
  readonly status: "ok" | "warn" | "fail";
  readonly message: string;
  readonly fix?: string;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/**
 * doctor: whether a reload keeps runtime server changes (server-state-file, and the backends
 * with load-server-state-from-file), and whether hapops can write the file (atomically: a temp
 * file in its directory, renamed over it, so the directory must be writable too).
 */
export function stateFileChecks(
  cfgText: string,
  cfgPath: string,
  opts: { readonly saveState: boolean; readonly now: Date },
): StateCheck[] {
  const cfg = parseServerConfig(cfgText);
  const backends = [...cfg.backends.values()].filter((b) => b.servers.length > 0);
  const loading = backends.filter((b) => b.loadState !== "none");
  const notLoading = backends.filter((b) => b.loadState === "none").map((b) => b.name);
  const lost = "runtime changes (drain, maint, weights) are lost on reload";
  const setIt =
    "set `server-state-file /var/lib/haproxy/server-state` (global) and `load-server-state-from-file global` (defaults); hapops reload and hapops state save write it";
  const saveNote = opts.saveState ? " (servers.saveState is on, and saves nothing)" : "";
  if (cfg.stateFile === undefined) {
    if (loading.length > 0 && loading.every((b) => b.loadState === "local"))
      return [
        {
          check: "server state",
          status: "ok",
          message: `${loading.length} backend(s) load a local server-state file (server-state-file-name); hapops state save writes only the global one`,
        },
      ];
    return [
      {
        check: "server state",
        status: "warn",
        message: `no server-state-file in ${cfgPath}: ${lost}${saveNote}`,
        fix: setIt,
      },
    ];
  }
  const path = stateFilePath(cfg.stateFile, cfg.stateBase);
  if (path === undefined)
    return [
      {
        check: "server state",
        status: "warn",
        message: `server-state-file ${cfg.stateFile} is relative and there is no server-state-base: hapops cannot tell where HAProxy reads it${saveNote}`,
        fix: "make it absolute, or set server-state-base",
      },
    ];
  const out: StateCheck[] = [];
  if (loading.length === 0)
    out.push({
      check: "server state",
      status: "warn",
      message: `server-state-file ${path} is set, but no backend has load-server-state-from-file: a reload ignores it, so ${lost}`,
      fix: "add `load-server-state-from-file global` to the defaults section",
    });
  else if (notLoading.length > 0)
    out.push({
      check: "server state",
      status: "warn",
      message: `${notLoading.join(", ")} ${notLoading.length === 1 ? "has" : "have"} no load-server-state-from-file: their runtime changes are lost on reload`,
      fix: "add `load-server-state-from-file global` to the defaults section (or to those backends)",
    });
  else
    out.push({
      check: "server state",
      status: "ok",
      message: `server-state-file ${path}, loaded by ${loading.length === 1 ? "the one backend" : `all ${loading.length} backends`} at a reload`,
    });

  const dir = dirname(path);
  let writable: string | undefined;
  try {
    accessSync(dir, constants.W_OK);
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (e) {
    writable = (e as NodeJS.ErrnoException).code ?? "error";
  }
  const uid = process.geteuid?.() ?? 0;
  if (writable) {
    out.push({
      check: "state file",
      status: opts.saveState ? "fail" : "warn",
      message: `hapops (uid ${uid}) cannot write ${path} (${writable === "ENOENT" ? `${dir} does not exist` : `${dir} or the file is not writable`}): state save${opts.saveState ? ", servers.saveState" : ""} and hapops reload cannot save the state`,
      fix: `create ${dir} and let hapops's user write it (root through sudo does)`,
    });
    return out;
  }
  const file = readStateFile(path);
  if (!file.exists)
    out.push({
      check: "state file",
      status: "ok",
      message: `${path} does not exist yet; hapops can write it (hapops state save)`,
    });
  else if (file.problem)
    out.push({
      check: "state file",
      status: "warn",
      message: `${path}: ${file.problem}`,
      fix: "run hapops state save to write it again from HAProxy's state",
    });
  else {
    let when = "";
    try {
      when = `, written ${age(opts.now.getTime() - statSync(path).mtimeMs)} ago`;
    } catch {
      // only the age is lost
    }
    out.push({
      check: "state file",
      status: "ok",
      message: `${path} is writable by hapops (uid ${uid}): ${file.rows?.length ?? 0} servers${when}`,
    });
  }
  return out;
}
