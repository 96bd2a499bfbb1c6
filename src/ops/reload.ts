import { existsSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import {
  addServer,
  experimentalModeOn,
  reload as reloadCommand,
  setCheck,
  setServerState,
  setServerWeight,
  showInfo,
  showServersState,
  type RuntimeCommand,
} from "../commands/builders.js";
import type { Settings } from "../config/settings.js";
import type { ChangeSessions } from "../engine/change.js";
import { withSession } from "../engine/connect.js";
import { newestMtimeMs } from "../engine/drift.js";
import { masterCli, type MasterCli } from "../engine/master.js";
import type { Guard, Operation, Plan, Step, StepEnv, Verification } from "../engine/operation.js";
import { fetchServers } from "../engine/state.js";
import {
  GuardError,
  HaproxyConfigError,
  isHapopsError,
  ReloadFailedError,
  SocketError,
  TimeoutError,
  UsageError,
  type HapopsError,
} from "../errors.js";
import {
  checkConfig,
  checkerBinary,
  readConfigText,
  readMasterProcess,
  systemctlReload,
  type ConfigCheck,
} from "../host/haproxy-process.js";
import type { InputFiles } from "../host/input-files.js";
import {
  backendStatePath,
  parseServerConfig,
  stateFilePath,
  type ServerConfig,
} from "../parse/haproxy-cfg.js";
import { parseInfo, parseVersion } from "../parse/info.js";
import { failureLines, type ProcList } from "../parse/proc.js";
import { parseServersState, type Admin } from "../parse/servers-state.js";
import { formatDuration } from "../util/duration.js";
import type { ChangeRequest, ServerFacts } from "./plan.js";
import {
  configChangedSince,
  ownAdmin,
  runtimeOnlyServer,
  runtimeOnlyWords,
  type RuntimeOnlyServer,
} from "./drift.js";
import { listSelector } from "./selector.js";
import { serverOperation, toFacts, type Paint, type ServerChange } from "./servers.js";
import { saveServerState } from "./state.js";

/**
 * `hapops reload`: a reload that keeps what the runtime API changed. The steps (issue 12):
 * 1. check the configuration the master will load with HAProxy itself (`haproxy -c`): an invalid
 *    one refuses the reload (exit 2) in HAProxy's words, with nothing sent;
 * 2. capture every server whose admin state or weight differs from the running configuration
 *    (a drain, a maintenance, a weight: what a reload would undo);
 * 3. where haproxy.cfg has a server-state-file, write `show servers state` to it just before the
 *    reload, atomically: HAProxy applies it to the backends that load it;
 * 4. `reload` through the master CLI (or `systemctl reload`), and wait until a new worker
 *    answers; from 2.7 the master says Success=0|1 with the start-up logs;
 * 5. read the new worker's state back: what the state file carried is verified; anything else
 *    captured is re-applied through the server operations (planned, guarded, verified, audited);
 * 6. report the old and new worker pids, what was carried over, and the old workers still
 *    finishing their connections.
 */

export interface ReloadRequest {
  readonly settings: Settings;
  /** `--systemd [unit]`: reload with `systemctl reload <unit>` instead of the master CLI. */
  readonly systemd: string | undefined;
  /** How long to wait for a new worker. */
  readonly timeoutMs: number;
  readonly paint: Paint;
  /** Under sudo: the state file's directory must not be the operator's to change. */
  readonly files: InputFiles;
  /**
   * --force: reload although servers only in HAProxy's memory cannot be told from servers
   * removed from the configuration on purpose (they are re-added), or cannot be added again as
   * they are (they are left out).
   */
  readonly force?: boolean | undefined;
}

/** A server whose runtime state a reload would undo, with what the running config says. */
export interface Captured {
  readonly backend: string;
  readonly server: string;
  /** Set on this server at runtime (FMAINT, FDRAIN), not inherited through `track`. */
  readonly admin: Admin;
  readonly weight: number;
  /** The running configuration: `disabled` (CMAINT) and the configured weight (srv_iweight). */
  readonly config: { readonly admin: Admin; readonly weight: number };
}

/** What the configured server-state file does at a reload. */
export interface StateFilePlan {
  readonly path: string;
  /** Backends that load it (`load-server-state-from-file global`). */
  readonly loadedBy: readonly string[];
}

export interface ReloadState {
  readonly master: string | undefined;
  readonly procs: ProcList | undefined;
  /** The pid that answers on the worker socket (`show info`). */
  readonly socketPid: number | undefined;
  readonly version: string | undefined;
  /** The files the reload loads, and where hapops learnt them. */
  readonly configs: readonly string[];
  readonly configSource: string;
  readonly check: ConfigCheck | { readonly error: string };
  readonly servers: readonly ServerFacts[];
  /** The configuration the reload loads, parsed for its state file and weights. */
  readonly serverConfig: ServerConfig | undefined;
  /** Why root may not write the state file (under sudo). */
  readonly stateFileUnsafe: HapopsError | undefined;
  /**
   * Servers HAProxy has in a backend of the configuration that the configuration lacks (added
   * with `add server`, or removed from the file): a reload drops them.
   */
  readonly runtimeOnly?: readonly RuntimeOnlyServer[] | undefined;
  /** The configuration changed since this worker loaded it (configChangedSince). */
  readonly configChanged?: boolean | undefined;
}

export interface ReloadBody {
  readonly via: "master" | "systemd";
  readonly captured: readonly Captured[];
  /** Servers only in HAProxy's memory that are added again on the new worker. */
  readonly readd: readonly RuntimeOnlyServer[];
  /** Servers only in HAProxy's memory that are not (what they have cannot be read back). */
  readonly leftOut: readonly RuntimeOnlyServer[];
  readonly stateFile: StateFilePlan | undefined;
  readonly previousWorkers: readonly number[];
  readonly socketPid: number | undefined;
}

/** What the reload step found, for verify and the re-apply that follows. */
interface ReloadOutcome {
  newWorker: number | undefined;
  logs: readonly string[];
  saved: { path: string; servers: number } | undefined;
  /** Captured servers the new worker does not have as they were: re-applied next. */
  reapply: Captured[];
  /** The new worker's servers, for planning the re-apply. */
  fresh: ServerFacts[];
}

const name = (s: { backend: string; server: string }) => `${s.backend}/${s.server}`;

/** The admin state set on a server itself (not inherited through `track`, nor from DNS). */
export function forcedAdmin(flags: readonly string[]): Admin {
  return flags.includes("FMAINT") ? "MAINT" : flags.includes("FDRAIN") ? "DRAIN" : "READY";
}

/** `disabled` in the configuration leaves CMAINT on the server (and FMAINT until enabled). */
export function configAdmin(flags: readonly string[]): Admin {
  return flags.includes("CMAINT") ? "MAINT" : "READY";
}

/** Step 2: every server whose admin state or weight differs from the running configuration. */
export function captureRuntimeState(servers: readonly ServerFacts[]): Captured[] {
  return servers
    .map((s) => ({
      backend: s.backend,
      server: s.server,
      admin: forcedAdmin(s.adminFlags),
      weight: s.weight,
      config: { admin: configAdmin(s.adminFlags), weight: s.initialWeight },
    }))
    .filter((c) => c.admin !== c.config.admin || c.weight !== c.config.weight);
}

/** The configured state file and the backends that load it, from the parsed configuration. */
export function stateFileOf(cfg: ServerConfig | undefined): StateFilePlan | undefined {
  if (cfg?.stateFile === undefined) return undefined;
  const path = stateFilePath(cfg.stateFile, cfg.stateBase);
  if (path === undefined) return undefined;
  const loadedBy = [...cfg.backends.values()]
    .filter((b) => b.loadState === "global" && backendStatePath(cfg, b) === path)
    .map((b) => b.name);
  return { path, loadedBy };
}

function describeCaptured(c: Captured, withConfig = true): string {
  const parts: string[] = [];
  const conf = (v: string | number) => (withConfig ? ` (config ${v})` : "");
  if (c.admin !== c.config.admin) parts.push(`${c.admin}${conf(c.config.admin)}`);
  if (c.weight !== c.config.weight) parts.push(`weight ${c.weight}${conf(c.config.weight)}`);
  return `${name(c)}${withConfig ? "  " : " "}${parts.join(withConfig ? ", " : " ")}`;
}

/**
 * The server changes that bring captured servers back, one per kind (maint, drain, ready, each
 * weight), forced: they restore what HAProxy had before the reload, guards included. A weight
 * whose configured value changed in the new configuration is left to it, as HAProxy does with a
 * state file (srv_state_srv_update: the saved weight applies only while iweight is unchanged).
 */
export function reapplyRequests(
  targets: readonly Captured[],
  fresh: readonly ServerFacts[],
): ChangeRequest[] {
  const byName = new Map(fresh.map((f) => [name(f), f]));
  const present = targets.filter((t) => byName.has(name(t)));
  const out: ChangeRequest[] = [];
  const group = (op: "maint" | "drain" | "ready", admin: Admin, fromConfig?: Admin) => {
    const list = present.filter(
      (t) =>
        t.admin === admin &&
        t.admin !== t.config.admin &&
        (fromConfig === undefined || t.config.admin === fromConfig),
    );
    if (list.length > 0) out.push({ op, selector: listSelector(list), force: true });
  };
  group("maint", "MAINT");
  group("drain", "DRAIN");
  group("ready", "READY", "MAINT");
  const weights = new Map<number, Captured[]>();
  for (const t of present) {
    const now = byName.get(name(t))!;
    if (t.weight === t.config.weight || now.initialWeight !== t.config.weight) continue;
    weights.set(t.weight, [...(weights.get(t.weight) ?? []), t]);
  }
  for (const [w, list] of [...weights].sort((a, b) => a[0] - b[0]))
    out.push({ op: "weight", selector: listSelector(list), weight: { absolute: w }, force: true });
  return out;
}

/** A captured server as the new worker has it: kept, lost (to re-apply), or gone. */
export function compareAfterReload(
  captured: readonly Captured[],
  fresh: readonly ServerFacts[],
): { carried: Captured[]; lost: Captured[]; gone: Captured[]; configWeight: Captured[] } {
  const byName = new Map(fresh.map((f) => [name(f), f]));
  const carried: Captured[] = [];
  const lost: Captured[] = [];
  const gone: Captured[] = [];
  const configWeight: Captured[] = [];
  for (const c of captured) {
    const f = byName.get(name(c));
    if (!f) {
      gone.push(c);
      continue;
    }
    const weightChangedInConfig = f.initialWeight !== c.config.weight;
    if (weightChangedInConfig && c.weight !== c.config.weight) configWeight.push(c);
    const adminOk = forcedAdmin(f.adminFlags) === c.admin;
    const weightOk = weightChangedInConfig || f.weight === c.weight;
    (adminOk && weightOk ? carried : lost).push(c);
  }
  return { carried, lost, gone, configWeight };
}

/** The state a reload would leave, for the dry run: captured servers back to the config. */
function afterReload(
  servers: readonly ServerFacts[],
  reverted: ReadonlySet<string>,
  cfg: ServerConfig | undefined,
): ServerFacts[] {
  return servers.map((s) => {
    if (!reverted.has(name(s))) return s;
    const conf = cfg?.backends.get(s.backend)?.servers.find((x) => x.name === s.server);
    const disabled = conf?.disabled ?? s.adminFlags.includes("CMAINT");
    const weight = conf?.weight ?? s.initialWeight;
    return {
      ...s,
      admin: disabled ? "MAINT" : "READY",
      adminFlags: disabled ? ["FMAINT", "CMAINT"] : [],
      weight,
      initialWeight: weight,
    };
  });
}

/**
 * Re-apply as a chain of server operations, each planned from fresh state (the first on new
 * sessions: the old ones reach the old worker), each followed by the next.
 */
function reapplyChain(
  requests: readonly ChangeRequest[],
  req: ReloadRequest,
  simulated: readonly ServerFacts[] | undefined,
  i = 0,
  reconnect = true,
): Operation | undefined {
  const change = requests[i];
  if (!change) return undefined;
  const server: ServerChange = {
    change,
    target: req.settings.targetText,
    paint: req.paint,
    heading: i === 0 ? "re-applying to the new worker what the reload did not keep:" : undefined,
  };
  const op = serverOperation(server, simulated);
  const next = requests[i + 1];
  return {
    ...op,
    ...(i === 0 && reconnect ? { reconnect: true } : {}),
    plan(state: readonly ServerFacts[]) {
      const planned = op.plan(state);
      // Forced because HAProxy had this state before the reload, not because anyone said so.
      const p = {
        ...planned,
        guards: planned.guards.map((g) =>
          g.forced ? { ...g, forcedBy: "as before the reload" } : g,
        ),
      };
      if (!next) return p;
      const follow: Step = {
        kind: "replan",
        op: next.op,
        afterMs: 0,
        label: `then re-apply ${next.op} ${next.selector.text}`,
        interrupted: `stopped by Ctrl-C before re-applying ${next.op} ${next.selector.text}; the new worker has it as haproxy.cfg says`,
        next: (simulate) => reapplyChain(requests, req, simulate ? simulated : undefined, i + 1),
      };
      return { ...p, steps: [...p.steps, follow] };
    },
  };
}

/** `show servers state`'s srv_check_state bit: the health check is enabled. */
const CHK_ST_ENABLED = 0x04;

export interface ReaddBody {
  /** Added again, in order. */
  readonly servers: readonly RuntimeOnlyServer[];
  /** Already on the new worker (the configuration has them now): nothing sent for them. */
  readonly present: readonly string[];
}

/**
 * The lines that give a server only in HAProxy's memory back to a new worker (pure): `add server`
 * with what could be read back, `enable health` when its check was on (a dynamic server starts
 * with checks off, management.txt "add server"), then its admin state (it starts in MAINT) and
 * its weight when it was not the one it was added with. Before 2.6, `add server` needs
 * `experimental-mode on` on the same session.
 */
export function readdCommands(
  servers: readonly RuntimeOnlyServer[],
  version: { major: number; minor: number } | undefined,
): RuntimeCommand[] {
  if (servers.length === 0) return [];
  const old =
    version !== undefined && (version.major < 2 || (version.major === 2 && version.minor < 6));
  const out: RuntimeCommand[] = old ? [experimentalModeOn()] : [];
  for (const r of servers) {
    out.push(addServer(r.backend, r.server, { ip: r.address, port: r.port }, r.keywords));
    if (r.health) out.push(setCheck("health", true, r.backend, r.server));
    if (r.admin !== "MAINT")
      out.push(setServerState(r.backend, r.server, r.admin === "DRAIN" ? "drain" : "ready"));
    if (r.weight !== r.initialWeight) out.push(setServerWeight(r.backend, r.server, r.weight));
  }
  return out;
}

function describeReadd(r: RuntimeOnlyServer): string {
  return `${name(r)}  ${runtimeOnlyWords(r)}${r.health ? ", health check on" : ""}, ${r.admin}${r.weight !== r.initialWeight ? `, weight ${r.weight}` : ""}`;
}

/**
 * Add the servers only in HAProxy's memory to the new worker (policy operation `server add`),
 * on new sessions (the old ones reach the old worker), then run what follows (the re-apply of
 * admin states and weights). Verified from the new worker's `show servers state`.
 */
function readdOperation(
  servers: readonly RuntimeOnlyServer[],
  req: ReloadRequest,
  version: { major: number; minor: number } | undefined,
  next: (simulate: boolean) => Operation | undefined,
  simulated: readonly ServerFacts[] | undefined,
): Operation<readonly ServerFacts[], ReaddBody> {
  const backends = [...new Set(servers.map((s) => s.backend))];
  const readAll = async (read: ChangeSessions["read"]) =>
    (await Promise.all(backends.map((b) => fetchServers(read, b)))).flat();
  return {
    op: "server add",
    readLevel: "user",
    reconnect: true,
    read: async (sessions) => simulated ?? (await readAll(sessions.read)).map(toFacts),
    plan(facts): Plan<ReaddBody> {
      const have = new Set(facts.map(name));
      const todo = servers.filter((s) => !have.has(name(s)));
      const present = servers.filter((s) => have.has(name(s))).map(name);
      const commands = readdCommands(todo, version);
      const steps: Step[] =
        commands.length > 0 ? [{ kind: "send", op: "server add", commands }] : [];
      const follow = next(simulated !== undefined);
      if (follow)
        steps.push({
          kind: "replan",
          op: follow.op,
          afterMs: 0,
          label: `then re-apply ${follow.op}`,
          interrupted:
            "stopped by Ctrl-C after re-adding the runtime-only servers, before re-applying admin states and weights",
          next: () => follow,
        });
      return {
        version: 1,
        op: "server add",
        target: req.settings.targetText,
        level: "admin",
        mutates: true,
        scope: { servers: servers.map(name) },
        steps,
        guards: [],
        describe: [
          "re-adding to the new worker the servers only HAProxy's memory had (add server):",
          ...todo.map((r) => `  ${describeReadd(r)}`),
          ...present.map(
            (n) => `  ${n}  already there (the configuration has it now; nothing sent)`,
          ),
        ],
        json: {
          readd: todo.map((r) => ({
            backend: r.backend,
            server: r.server,
            address: r.address,
            port: r.port ?? null,
            keywords: r.keywords.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)),
            health: r.health,
            admin: r.admin,
            weight: r.weight,
          })),
          present,
        },
        body: { servers: todo, present },
      };
    },
    async verify(sessions, plan): Promise<Verification> {
      const now = new Map((await readAll(sessions.read)).map((v) => [name(v), v]));
      const mismatches: string[] = [];
      for (const r of plan.body.servers) {
        const v = now.get(name(r));
        if (!v) {
          mismatches.push(`${name(r)} is not on the new worker`);
          continue;
        }
        const want = (field: string, expected: unknown, actual: unknown) => {
          if (expected !== actual)
            mismatches.push(
              `${name(r)} ${field}: expected ${String(expected)}, HAProxy says ${String(actual)}`,
            );
        };
        want("address", r.address, v.address);
        want("port", r.port, v.port);
        want("configured weight", r.initialWeight, v.initialWeight);
        want("weight", r.weight, v.weight);
        want("admin state", r.admin, ownAdmin(v.adminBits));
        if (r.health)
          want(
            "health check",
            "on",
            (Number(v.fields["srv_check_state"]) & CHK_ST_ENABLED) !== 0 ? "on" : "off",
          );
      }
      const done = plan.body.servers;
      return {
        mismatches,
        summary:
          done.length === 0
            ? []
            : [
                `verified on the new worker: re-added ${done.map((r) => `${name(r)} (${r.address}${r.port === undefined ? "" : `:${r.port}`}, weight ${r.weight}${r.health ? ", health check on" : ""}, ${r.admin})`).join(", ")}`,
                "not re-applied: what HAProxy does not show at runtime (inter, send-proxy, proto, slowstart, source, id...), if the server had any",
                `runtime only: a reload drops ${done.length === 1 ? "it" : "them"} again unless haproxy.cfg has ${done.length === 1 ? "it" : "them"} (hapops reload re-adds ${done.length === 1 ? "it" : "them"})`,
              ],
        json: {
          readded: done.map(name),
          servers: done.map((r) => {
            const v = now.get(name(r));
            return {
              backend: r.backend,
              server: r.server,
              address: v?.address ?? null,
              port: v?.port ?? null,
              admin: v ? ownAdmin(v.adminBits) : null,
              weight: v?.weight ?? null,
              operational: v?.operational ?? null,
            };
          }),
        },
      };
    },
  };
}

/**
 * What follows a reload on the new worker: the runtime-only servers added again first (their
 * admin state and weight with them), then the captured servers' admin states and weights.
 */
function afterReloadChain(
  readd: readonly RuntimeOnlyServer[],
  requests: readonly ChangeRequest[],
  req: ReloadRequest,
  version: { major: number; minor: number } | undefined,
  simulated: readonly ServerFacts[] | undefined,
): Operation | undefined {
  if (readd.length === 0) return reapplyChain(requests, req, simulated);
  return readdOperation(
    readd,
    req,
    version,
    () => reapplyChain(requests, req, simulated, 0, false),
    simulated,
  );
}

/** The policy operations a re-apply of these servers may need. */
function reapplyOps(captured: readonly Captured[]): string[] {
  const ops = new Set<string>();
  for (const c of captured) {
    if (c.admin !== c.config.admin)
      ops.add(c.admin === "MAINT" ? "maint" : c.admin === "DRAIN" ? "drain" : "ready");
    if (c.weight !== c.config.weight) ops.add("weight");
  }
  return [...ops];
}

const HOW_TO_ENABLE =
  "start HAProxy in master-worker mode with a master CLI socket (haproxy -W -S /run/haproxy-master.sock ...; Debian's haproxy.service passes -S /run/haproxy-master.sock in EXTRAOPTS, see /etc/default/haproxy), then set master: in the config or pass --master <path>; or pass --systemd [unit] to reload through systemctl";

/**
 * The guards on servers only in HAProxy's memory. When the configuration changed since the
 * worker loaded it, such a server may have been taken out of it on purpose, and re-adding it
 * would undo that: refused unless --force. A server with what hapops cannot read back (ssl, an
 * agent check, a name for an address) cannot be added again as it was, and adding it with less
 * (in clear text where it had TLS) could be worse than not at all: refused unless --force, which
 * reloads and leaves it out.
 */
export function runtimeOnlyGuards(
  runtimeOnly: readonly RuntimeOnlyServer[],
  state: Pick<ReloadState, "configs" | "configChanged">,
  req: Pick<ReloadRequest, "force">,
): Guard[] {
  const guards: Guard[] = [];
  const force = req.force ?? false;
  const files = state.configs.join(", ") || "the configuration";
  const listOf = (rs: readonly RuntimeOnlyServer[]) => rs.map(name).join(", ");
  const unsure =
    state.configChanged === false ? [] : runtimeOnly.filter((r) => r.lost.length === 0);
  if (unsure.length > 0) {
    const one = unsure.length === 1;
    const reason = `${listOf(unsure)} ${one ? "is" : "are"} in HAProxy's memory but not in ${files}, which changed since HAProxy loaded it: hapops cannot tell a server added at runtime (add server) from one taken out of the configuration on purpose`;
    guards.push({
      name: "runtime-only",
      ok: false,
      forced: force,
      reason: force ? `${reason}; re-adding ${one ? "it" : "them"}` : reason,
      error: new GuardError(
        `refusing to reload: ${reason}. If ${one ? "it was" : "they were"} added at runtime, add ${one ? "it" : "them"} to ${files}, or pass --force to reload and re-add ${one ? "it" : "them"}; if ${one ? "it was" : "they were"} taken out on purpose, remove ${one ? "it" : "them"} first (hapops server del ${unsure[0]!.backend}/${unsure[0]!.server}), then reload. Nothing was sent`,
        { servers: unsure.map(name) },
      ),
    });
  }
  const lost = runtimeOnly.filter((r) => r.lost.length > 0);
  if (lost.length > 0) {
    const one = lost.length === 1;
    const what = lost.map((r) => `${name(r)}: ${r.lost.join("; ")}`).join("; ");
    const reason = `a reload drops ${listOf(lost)}, which ${one ? "exists" : "exist"} only in HAProxy's memory, and hapops cannot add ${one ? "it" : "them"} again as ${one ? "it was" : "they were"} (${what})`;
    guards.push({
      name: "runtime-only settings",
      ok: false,
      forced: force,
      reason: force ? `${reason}; left out` : reason,
      error: new GuardError(
        `refusing to reload: ${reason}. Add ${one ? "it" : "them"} to ${files} first, or pass --force to reload without ${one ? "it" : "them"} (not re-added). Nothing was sent`,
        { servers: lost.map((r) => ({ server: name(r), lost: r.lost })) },
      ),
    });
  }
  return guards;
}

/** Step 1 to 3 and the guards, as a plan (pure). */
export function planReload(state: ReloadState, req: ReloadRequest): Plan<ReloadBody> {
  const via = req.systemd !== undefined ? "systemd" : "master";
  // A server only in HAProxy's memory is added again (below), not re-applied.
  const runtimeOnly = state.runtimeOnly ?? [];
  const only = new Set(runtimeOnly.map(name));
  const captured = captureRuntimeState(state.servers).filter((c) => !only.has(name(c)));
  const stateFile = stateFileOf(state.serverConfig);
  const kept = new Set(stateFile?.loadedBy ?? []);
  const toReapply = captured.filter((c) => !kept.has(c.backend));
  const guards: Guard[] = [];
  const refuse = (guardName: string, error: HapopsError) =>
    guards.push({ name: guardName, ok: false, forced: false, reason: error.message, error });

  if (via === "master" && state.master === undefined)
    refuse("master", new UsageError(`no master CLI socket to reload through: ${HOW_TO_ENABLE}`));
  const workers = state.procs?.workers.map((w) => w.pid) ?? [];
  if (
    state.procs &&
    state.socketPid !== undefined &&
    workers.length > 0 &&
    !workers.includes(state.socketPid)
  )
    refuse(
      "same-haproxy",
      new UsageError(
        `${req.settings.targetText} is served by pid ${state.socketPid}, which is not a current worker of the master at ${state.master} (workers: ${workers.join(", ")}); point -s and --master at the same HAProxy`,
      ),
    );
  if ("error" in state.check)
    refuse(
      "config",
      new UsageError(
        `cannot check the configuration before reloading: ${state.check.error}; nothing was sent`,
      ),
    );
  else if (!state.check.ok) {
    const words = failureLines(state.check.output);
    refuse(
      "config",
      new HaproxyConfigError(
        `refusing to reload: HAProxy rejects its configuration (${state.check.command}):\n${(words.length > 0 ? words : state.check.output).map((l) => `  ${l}`).join("\n")}\nnothing was sent; the running worker keeps serving`,
        { command: state.check.command, lines: state.check.output },
      ),
    );
  } else
    guards.push({
      name: "config",
      ok: true,
      forced: false,
      reason: `${state.check.command}: valid`,
    });
  if (stateFile && state.stateFileUnsafe) refuse("state-file", state.stateFileUnsafe);
  guards.push(...runtimeOnlyGuards(runtimeOnly, state, req));
  const leftOut = runtimeOnly.filter((r) => r.lost.length > 0);
  const readd = runtimeOnly.filter((r) => r.lost.length === 0);
  const version = state.version ? parseVersion({ Version: state.version }) : undefined;

  const lines = via === "master" ? [reloadCommand().line] : [`systemctl reload ${req.systemd}`];
  const body: ReloadBody = {
    via,
    captured,
    stateFile,
    // 3.2+ list the serving worker under "old workers" after a failed reload: then it is the
    // one the stats socket answers from.
    previousWorkers:
      workers.length > 0 ? workers : state.socketPid !== undefined ? [state.socketPid] : [],
    socketPid: state.socketPid,
    readd,
    leftOut,
  };
  const steps: Step[] = [
    {
      kind: "transaction",
      op: "reload",
      lines,
      run: async (sessions, sent, env) => {
        outcomes.set(body, await reloadAndWait(req, state, body, sessions, sent, env));
      },
    },
  ];
  const followOps = [...(readd.length > 0 ? ["server add"] : []), ...reapplyOps(captured)];
  if (followOps.length > 0)
    steps.push({
      kind: "replan",
      op: followOps[0]!,
      ops: followOps,
      afterMs: 0,
      label: "re-apply what the reload did not keep",
      interrupted: "stopped by Ctrl-C after the reload, before re-applying the runtime state",
      next: (simulate) => {
        if (simulate) {
          const reverted = new Set(toReapply.map(name));
          const after = afterReload(state.servers, reverted, state.serverConfig).filter(
            (s) => !only.has(name(s)),
          );
          return afterReloadChain(readd, reapplyRequests(toReapply, after), req, version, after);
        }
        const o = outcomes.get(body);
        return o
          ? afterReloadChain(readd, reapplyRequests(o.reapply, o.fresh), req, version, undefined)
          : undefined;
      },
    });

  const describe = [
    via === "master"
      ? `reload through the master CLI ${state.master ?? "(none)"}${body.previousWorkers.length > 0 ? ` (worker ${body.previousWorkers.join(", ")})` : ""}`
      : `reload with systemctl reload ${req.systemd}`,
    `configuration: ${state.configs.join(", ") || "?"} (${state.configSource})`,
    captured.length === 0
      ? "runtime state: every server is as the configuration says; nothing to carry over"
      : `runtime state a reload would undo (${captured.length} server${captured.length === 1 ? "" : "s"}):`,
    ...captured.map((c) => `  ${describeCaptured(c)}`),
    ...(stateFile
      ? [
          `server state: written to ${stateFile.path} just before the reload${kept.size === 0 ? " (but no backend loads it: load-server-state-from-file global)" : ""}`,
        ]
      : ["server state: no server-state-file in the configuration"]),
    ...(toReapply.length > 0
      ? [
          `then: re-apply ${toReapply.map(name).join(", ")} to the new worker${stateFile ? " (their backends do not load the state file)" : ""}`,
        ]
      : []),
    ...(runtimeOnly.length > 0
      ? [
          `only in HAProxy's memory, not in the configuration (a reload drops ${runtimeOnly.length === 1 ? "it" : "them"}):`,
          ...runtimeOnly.map((r) =>
            r.lost.length > 0
              ? `  ${name(r)}  left out: hapops cannot add it again as it is (${r.lost.join("; ")})`
              : `  ${describeReadd(r)}  -> re-added on the new worker`,
          ),
        ]
      : []),
  ];
  const runtimeOnlyJson = runtimeOnly.map((r) => ({
    backend: r.backend,
    server: r.server,
    address: r.address,
    port: r.port ?? null,
    admin: r.admin,
    weight: r.weight,
    keywords: r.keywords.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)),
    health: r.health,
    lost: r.lost,
    readd: r.lost.length === 0,
  }));
  const capturedJson = captured.map((c) => ({
    backend: c.backend,
    server: c.server,
    admin: c.admin,
    weight: c.weight,
    config: c.config,
  }));
  return {
    version: 1,
    op: "reload",
    target: req.settings.targetText,
    level: toReapply.length > 0 || readd.length > 0 ? "admin" : "user",
    mutates: true,
    scope: {
      servers: [...captured.map(name), ...runtimeOnly.map(name)],
      unnamed: "a reload restarts the whole HAProxy (every server, table, map and certificate)",
    },
    steps,
    guards,
    describe,
    json: {
      via,
      master: state.master ?? null,
      configs: state.configs,
      captured: capturedJson,
      stateFile: stateFile?.path ?? null,
      runtimeOnly: runtimeOnlyJson,
    },
    report: {
      via,
      master: state.master ?? null,
      unit: req.systemd ?? null,
      configs: state.configs,
      captured: capturedJson,
      stateFile: stateFile?.path ?? null,
      runtimeOnly: runtimeOnlyJson,
    },
    detail: {
      via,
      master: state.master ?? null,
      configs: state.configs,
      captured: capturedJson,
      stateFile: stateFile?.path ?? null,
      runtimeOnly: runtimeOnlyJson,
    },
    body,
  };
}

/** How long the master may refuse connections after a reload before hapops says it is gone. */
const MASTER_GONE_MS = 3000;

/** The outcome of each plan's reload step, by its body (verify reads it). */
const outcomes = new WeakMap<ReloadBody, ReloadOutcome>();

function master(req: ReloadRequest, path: string | undefined): MasterCli | undefined {
  return path === undefined ? undefined : masterCli(req.settings, path);
}

/** `show info`'s Pid on a fresh connection to the worker socket. */
async function socketPid(settings: Settings): Promise<number | undefined> {
  return withSession(settings, "hapops reload", async (s) => {
    const pid = Number(parseInfo(await s.run(showInfo()))["Pid"]);
    return Number.isInteger(pid) ? pid : undefined;
  });
}

/** Steps 3 and 4: save the state file, reload, wait for the new worker. */
async function reloadAndWait(
  req: ReloadRequest,
  state: ReloadState,
  body: ReloadBody,
  sessions: ChangeSessions,
  sent: string[],
  env: StepEnv,
): Promise<ReloadOutcome> {
  const cli = master(req, state.master);
  const before = cli ? await cli.showProc() : undefined;
  const beforePids = new Set(
    before ? [...before.workers, ...before.oldWorkers].map((w) => w.pid) : [],
  );
  const oldSocketPid = state.socketPid;

  // Just before the reload, so that it holds the state of this moment.
  let saved: ReloadOutcome["saved"];
  if (body.stateFile) {
    try {
      saved = await saveServerState(sessions.read, body.stateFile.path);
    } catch (e) {
      throw new ReloadFailedError(
        `writing the server state to ${body.stateFile.path} failed (${(e as Error).message}); nothing was reloaded`,
        { path: body.stateFile.path },
        { cause: e },
      );
    }
  }

  let logs: readonly string[] = [];
  const start = env.clock.now();
  const deadline = start + req.timeoutMs;
  const progress = (what: string) =>
    env.ui.progress(
      `reloading: ${what} (${formatDuration(env.clock.now() - start)}, timeout ${formatDuration(req.timeoutMs)})`,
    );
  try {
    if (body.via === "master" && cli) {
      sent.push(reloadCommand().line);
      progress("waiting for the master's answer");
      const answer = await cli.reload(req.timeoutMs).catch((e: unknown) => {
        if (!(e instanceof TimeoutError)) throw e;
        throw new ReloadFailedError(
          `the master CLI ${cli.path} sent no answer to reload within ${formatDuration(req.timeoutMs)}; HAProxy may still be loading (--timeout waits longer): check with hapops reload --dry-run`,
          { master: cli.path },
          { cause: e },
        );
      });
      logs = answer.logs;
      if (answer.success === false) {
        const words = failureLines(logs).length > 0 ? failureLines(logs) : logs;
        const old = body.previousWorkers.length > 0 ? ` ${body.previousWorkers.join(", ")}` : "";
        throw new ReloadFailedError(
          `the reload failed: HAProxy answered Success=0:\n${words.map((l) => `  ${l}`).join("\n")}\nthe old worker${old} keeps serving`,
          { success: false, logs },
        );
      }
    } else {
      sent.push(`systemctl reload ${req.systemd}`);
      progress(`systemctl reload ${req.systemd}`);
      try {
        await systemctlReload(req.systemd!, req.timeoutMs);
      } catch (e) {
        throw new ReloadFailedError(
          `systemctl reload ${req.systemd} failed: ${(e as Error).message}; see journalctl -u ${req.systemd}`,
          { unit: req.systemd },
          { cause: e },
        );
      }
    }

    // The new worker: a pid the master did not list before, answering through the master.
    let newWorker: number | undefined;
    let masterDownSince: number | undefined;
    for (;;) {
      if (cli) {
        let down = false;
        const procs = await cli.showProc().catch((e: unknown) => {
          down =
            e instanceof SocketError &&
            (e.code === "CONNECTION_REFUSED" || e.code === "SOCKET_NOT_FOUND");
          return undefined;
        });
        // 2.6 re-executes the master, which refuses connections for a moment; 2.8.0 exits for
        // good when a reload fails ("Non-recoverable mworker wait-mode error", measured).
        masterDownSince = down ? (masterDownSince ?? env.clock.now()) : undefined;
        if (masterDownSince !== undefined && env.clock.now() - masterDownSince >= MASTER_GONE_MS) {
          const pid = await socketPid(req.settings).catch(() => undefined);
          throw new ReloadFailedError(
            `the master CLI ${cli.path} stopped answering during the reload (it refuses connections)${pid !== undefined ? `; ${req.settings.targetText} still answers from worker ${pid}` : `, and ${req.settings.targetText} does not answer either: HAProxy looks down`}. Check it now (systemctl status haproxy; journalctl -u haproxy)`,
            { master: cli.path, worker: pid ?? null },
          );
        }
        if (procs && before && procs.master.failed > before.master.failed)
          throw new ReloadFailedError(
            `the reload failed: the master counts a failed reload ([failed: ${procs.master.failed}] in show proc); HAProxy did not load the new configuration. Its words are in its log (journalctl -u haproxy, or the master's output); the worker ${procs.workers.map((w) => w.pid).join(", ") || procs.oldWorkers.map((w) => w.pid).join(", ")} keeps serving`,
            { failed: procs.master.failed },
          );
        const fresh = procs?.workers.find((w) => !beforePids.has(w.pid));
        if (fresh) {
          const answered = await cli
            .onWorker(fresh.pid, showInfo())
            .then((l) => Number(parseInfo(l)["Pid"]) === fresh.pid)
            .catch(() => false);
          if (answered) newWorker = fresh.pid;
        }
      }
      // Later reads and the re-apply use the worker socket: it must reach the new worker.
      const pid = await socketPid(req.settings).catch(() => undefined);
      if (cli && newWorker !== undefined && pid === newWorker) break;
      if (!cli && pid !== undefined && pid !== oldSocketPid) {
        newWorker = pid;
        break;
      }
      if (env.signal.aborted)
        throw new ReloadFailedError(
          `stopped waiting for the new worker (Ctrl-C); the reload was sent: check with hapops reload --dry-run`,
        );
      if (env.clock.now() >= deadline)
        throw new ReloadFailedError(
          newWorker !== undefined
            ? `the new worker ${newWorker} is up, but ${req.settings.targetText} still answers from pid ${pid ?? "(none)"} after ${formatDuration(req.timeoutMs)}; nothing was re-applied`
            : `no new worker came up within ${formatDuration(req.timeoutMs)} of the reload${logs.length > 0 ? `; HAProxy said:\n${logs.map((l) => `  ${l}`).join("\n")}` : ""}; the old worker keeps serving (--timeout waits longer)`,
          { logs },
        );
      progress("waiting for the new worker");
      await env.clock.sleep(100, env.signal);
    }
    env.ui.endProgress();
    // The run's sessions reach the old worker, and an open CLI connection keeps an old worker
    // alive (measured): close them now; what follows opens new ones (Operation.reconnect).
    await sessions.close();

    const fresh = await readWorker(req, cli, newWorker);
    const cmp = compareAfterReload(body.captured, fresh);
    return { newWorker, logs, saved, reapply: cmp.lost, fresh };
  } finally {
    env.ui.endProgress();
  }
}

/** The new worker's servers: through the master (@!<pid>), or a fresh worker-socket session. */
async function readWorker(
  req: ReloadRequest,
  cli: MasterCli | undefined,
  pid: number,
): Promise<ServerFacts[]> {
  if (cli)
    return parseServersState(await cli.onWorker(pid, showServersState())).map((s) => ({
      ...s,
      sessions: undefined,
    }));
  return withSession(req.settings, "hapops reload", async (s) =>
    (await fetchServers(s)).map(toFacts),
  );
}

/**
 * Old workers still finishing, with their current connections (`show info` CurrConns, which
 * counts a request in flight and not the master's own CLI connection, measured). One that does
 * not answer and is gone from `show proc` by then has just exited: not listed.
 */
async function finishing(
  cli: MasterCli | undefined,
): Promise<{ pid: number; sessions: number | null }[]> {
  if (!cli) return [];
  const procs = await cli.showProc().catch(() => undefined);
  const found = await Promise.all(
    (procs?.oldWorkers ?? []).map(async (w) => {
      const info = await cli
        .onWorker(w.pid, showInfo())
        .then(parseInfo)
        .catch(() => undefined);
      const n = Number(info?.["CurrConns"]);
      return { pid: w.pid, sessions: Number.isFinite(n) ? n : null };
    }),
  );
  if (found.every((w) => w.sessions !== null)) return found;
  const still = new Set(
    ((await cli.showProc().catch(() => undefined))?.oldWorkers ?? []).map((w) => w.pid),
  );
  return found.filter((w) => w.sessions !== null || still.has(w.pid));
}

/** Steps 1 and 2 as I/O: the master, the configuration and its check, the servers. */
async function readReload(req: ReloadRequest, sessions: ChangeSessions): Promise<ReloadState> {
  const path = req.settings.master;
  const cli = master(req, path);
  const [procs, info, servers] = await Promise.all([
    cli?.showProc(),
    sessions.read.run(showInfo()).then(parseInfo),
    fetchServers(sessions.read),
  ]);
  const pid = Number(info["Pid"]);
  const masterPid = procs?.master.pid;
  const proc = masterPid !== undefined ? readMasterProcess(masterPid) : undefined;
  const fromMaster = proc !== undefined && proc.configs.length > 0;
  const configs = fromMaster ? proc.configs : [req.settings.haproxyConfig];
  const configSource = fromMaster
    ? `the master's -f, pid ${proc.pid}`
    : `haproxyConfig${masterPid !== undefined ? `; the master's command line is not readable` : ""}`;

  let check: ReloadState["check"];
  let serverConfig: ServerConfig | undefined;
  try {
    serverConfig = parseServerConfig(readConfigText(configs));
    check = await checkConfig(
      checkerBinary(proc),
      configs,
      proc?.cwd,
      req.settings.commandTimeoutMs * 3,
    );
  } catch (e) {
    check = {
      error:
        isHapopsError(e) || !(e as NodeJS.ErrnoException).code
          ? (e as Error).message
          : `cannot read ${configs.join(", ")}: ${(e as Error).message} (set haproxyConfig, or run hapops where the master's command line is readable)`,
    };
  }

  let stateFileUnsafe: HapopsError | undefined;
  const sf = stateFileOf(serverConfig);
  if (sf) {
    try {
      req.files.checkNotOperatorWritable(
        existsSync(sf.path) ? sf.path : dirname(sf.path),
        "server-state file",
      );
    } catch (e) {
      if (!isHapopsError(e)) throw e;
      stateFileUnsafe = e;
    }
  }

  // Servers in a backend of the configuration that it lacks: a reload drops them.
  const runtimeOnly = serverConfig
    ? servers
        .filter((v) => {
          const b = serverConfig.backends.get(v.backend);
          return b !== undefined && !b.servers.some((x) => x.name === v.server);
        })
        .map((v) => runtimeOnlyServer(v, v.stat?.row))
    : [];
  const start = Number(info["Start_time_sec"]);
  const files = configs.map((c) => (isAbsolute(c) ? c : join(proc?.cwd ?? process.cwd(), c)));
  const configChanged = configChangedSince(
    newestMtimeMs(files),
    Number.isInteger(start) && start > 0 ? start : undefined,
  );

  return {
    master: path,
    procs,
    socketPid: Number.isInteger(pid) ? pid : undefined,
    version: info["Version"],
    configs,
    configSource,
    check,
    servers: servers.map(toFacts),
    serverConfig,
    stateFileUnsafe,
    runtimeOnly,
    configChanged,
  };
}

export function reloadOperation(req: ReloadRequest): Operation<ReloadState, ReloadBody> {
  return {
    op: "reload",
    readLevel: "user",
    read: (sessions) => readReload(req, sessions),
    plan: (state) => planReload(state, req),
    async verify(_sessions, plan): Promise<Verification> {
      const body = plan.body;
      const o = outcomes.get(body);
      if (!o || o.newWorker === undefined)
        return { mismatches: ["no new worker was seen"], summary: [], json: {} };
      const cli = master(req, req.settings.master);
      const cmp = compareAfterReload(body.captured, o.fresh);
      const old = await finishing(cli);
      const previous = body.via === "master" ? body.previousWorkers : [body.socketPid ?? 0];
      const list = (cs: readonly { backend: string; server: string }[]) => cs.map(name);
      const summary = [
        `reloaded: worker ${previous.join(", ")} -> ${o.newWorker}`,
        ...(o.saved
          ? [`saved the state of ${o.saved.servers} servers to ${o.saved.path} before the reload`]
          : []),
        ...(cmp.carried.length > 0
          ? [
              `verified on worker ${o.newWorker}: kept ${cmp.carried.map((c) => describeCaptured(c, false)).join(", ")}`,
            ]
          : []),
        ...(cmp.lost.length > 0
          ? [`not kept by the reload: ${list(cmp.lost).join(", ")} (re-applied next)`]
          : []),
        ...(cmp.gone.length > 0
          ? [`gone from the new configuration (nothing to carry): ${list(cmp.gone).join(", ")}`]
          : []),
        ...(body.readd.length > 0
          ? [
              `only in HAProxy's memory before the reload: ${list(body.readd).join(", ")} (re-added next)`,
            ]
          : []),
        ...(body.leftOut.length > 0
          ? [
              `left out (--force): ${body.leftOut.map((r) => `${name(r)} (${r.lost.join("; ")})`).join(", ")}; the new worker does not have ${body.leftOut.length === 1 ? "it" : "them"}`,
            ]
          : []),
        ...(cmp.configWeight.length > 0
          ? [
              `the configuration changed the weight of ${list(cmp.configWeight).join(", ")}: the new configured weight applies`,
            ]
          : []),
        old.length > 0
          ? `old workers still finishing: ${old.map((w) => `${w.pid} (${w.sessions ?? "?"} connection${w.sessions === 1 ? "" : "s"})`).join(", ")}`
          : body.via === "master"
            ? "no old worker left"
            : "",
      ].filter((l) => l.length > 0);
      return {
        mismatches: [],
        summary,
        json: {
          previousWorkers: previous,
          newWorker: o.newWorker,
          finishing: old,
          saved: o.saved ?? null,
          carried: list(cmp.carried),
          reapply: list(cmp.lost),
          gone: list(cmp.gone),
          readd: list(body.readd),
          leftOut: list(body.leftOut),
          startupLogs: o.logs,
        },
      };
    },
  };
}
