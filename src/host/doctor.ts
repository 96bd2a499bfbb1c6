import { runTool } from "../util/tools.js";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { readConfigFile, SYSTEM_CONFIG } from "../config/load.js";
import type { Settings } from "../config/settings.js";
import { showCliSockets, showInfo } from "../commands/builders.js";
import { GRAMMAR, levelOn } from "../commands/grammar.js";
import { isLevel, levelAtLeast } from "../commands/levels.js";
import { withSession } from "../engine/connect.js";
import { masterCli } from "../engine/master.js";
import { parseCliSockets } from "../parse/cli-sockets.js";
import { parseInfo } from "../parse/info.js";
import {
  DEFAULT_STATS_MAXCONN,
  parseStatsLimits,
  type StatsSocketLine,
} from "../parse/haproxy-cfg.js";
import { isLoopbackHost, type Target } from "../transport/target.js";
import { verifyLines } from "../audit/verify.js";
import { SUDOERS_FILE } from "./setup.js";
import { stateFileChecks } from "./state-file.js";

export type Status = "ok" | "warn" | "fail";

export interface Check {
  readonly check: string;
  readonly status: Status;
  readonly message: string;
  readonly fix?: string;
}

const ok = (check: string, message: string): Check => ({ check, status: "ok", message });
const warn = (check: string, message: string, fix: string): Check => ({
  check,
  status: "warn",
  message,
  fix,
});
const bad = (check: string, message: string, fix: string): Check => ({
  check,
  status: "fail",
  message,
  fix,
});

function mode(path: string): { uid: number; mode: number } | undefined {
  try {
    const st = statSync(path);
    return { uid: st.uid, mode: st.mode & 0o7777 };
  } catch {
    return undefined;
  }
}

/**
 * Why this user cannot look at `path` (a directory above it, or the file itself, is closed to
 * them), or undefined when it can be looked at. Doctor says "cannot check" then, not "missing".
 */
function cannotSee(path: string): string | undefined {
  try {
    statSync(path);
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM") return undefined;
    const uid = process.geteuid?.() ?? 0;
    return `cannot check ${path} as uid ${uid} (permission denied); run hapops doctor as root or through sudo`;
  }
}

function rootOwnedNotWritable(check: string, path: string, what: string): Check {
  const m = mode(path);
  if (!m) return bad(check, `${what} ${path} is missing`, "run: sudo hapops setup");
  if (m.uid !== 0 || (m.mode & 0o022) !== 0)
    return bad(
      check,
      `${what} ${path} is uid ${m.uid}, mode ${m.mode.toString(8)}: someone else could change it`,
      `chown root: ${path} && chmod go-w ${path}`,
    );
  return ok(check, `${what} ${path}: root-owned, mode ${m.mode.toString(8)}`);
}

async function socketChecks(settings: Settings): Promise<Check[]> {
  const out: Check[] = [];
  const t = settings.target;
  if (t.kind === "unix") {
    const m = mode(t.path);
    const hidden = m ? undefined : cannotSee(t.path);
    if (hidden) return [warn("socket", hidden, "run hapops doctor as root or through sudo")];
    if (!m)
      return [
        bad(
          "socket",
          `no socket at ${t.path}`,
          "check the `stats socket` line of haproxy.cfg, or -s",
        ),
      ];
    if ((m.mode & 0o006) !== 0)
      out.push(
        warn(
          "socket mode",
          `${t.path} is mode ${m.mode.toString(8)}: any local user can use it`,
          "use `stats socket ... mode 600` (or 660 with a group) and go through sudo hapops",
        ),
      );
    else out.push(ok("socket mode", `${t.path}: mode ${m.mode.toString(8)}`));
  }
  try {
    const { level, sockets, version } = await withSession(settings, "hapops doctor", async (s) => {
      const [lines, info] = await Promise.all([s.run(showCliSockets()), s.run(showInfo())]);
      return {
        level: await s.level(),
        sockets: parseCliSockets(lines),
        version: parseInfo(info)["Version"],
      };
    });
    out.push(
      level === "admin"
        ? ok("socket level", `${settings.targetText} answers at level admin`)
        : warn(
            "socket level",
            `${settings.targetText} is at level ${level ?? "unknown"}: drain, maint, ready and weight need admin`,
            "add `level admin` to the `stats socket` line hapops uses",
          ),
    );
    for (const s of sockets) {
      const m = /^ipv[46]@(.*):(\d+)$/.exec(s.address);
      if (!m) continue;
      const host = m[1]!.replace(/^\[|\]$/g, "");
      if (!isLoopbackHost(host) && s.level === "admin")
        out.push(
          warn(
            "exposed sockets",
            `${s.address} is an admin runtime socket on a non-loopback address`,
            "bind it to 127.0.0.1, or put an mTLS listener in front (see README)",
          ),
        );
      else
        out.push(
          warn(
            "exposed sockets",
            `${s.address} is a TCP runtime socket (level ${s.level}) without TLS (HAProxy 2.6 was measured serving even \`ssl\` stats sockets in clear text)`,
            "prefer unix sockets; for remote access, an mTLS listener in front of a unix socket",
          ),
        );
    }
    if (!sockets.some((s) => s.address.startsWith("ipv")))
      out.push(ok("exposed sockets", "no TCP runtime sockets"));
    // Up to 3.2, add/set/del/clear map and acl answer at user level, so a "read-only" socket
    // can still rewrite maps and ACLs (and with them routing and blocking); 3.4 wants admin
    // (the grammar's levels per version, measured). Without a version, warn.
    const release = /^\d+\.\d+/.exec(version ?? "")?.[0];
    const mapLevel = release ? levelOn(GRAMMAR.addMap, release) : GRAMMAR.addMap.level;
    for (const s of sockets.filter(
      (x) => x.level !== "admin" && (!isLevel(x.level) || levelAtLeast(x.level, mapLevel)),
    ))
      out.push(
        warn(
          "map access",
          `${s.address} is level ${s.level}, yet ${release ? `HAProxy ${release}` : "this HAProxy"} lets ${mapLevel === "user" ? "any level" : `level ${mapLevel}`} change maps and ACLs on it`,
          "give it the same file mode or network protection as the admin socket",
        ),
      );
  } catch (e) {
    out.push(
      bad("socket", (e as Error).message, "check that HAProxy runs and the socket path or address"),
    );
  }
  return out;
}

/**
 * Room for an operator in an incident. Each hapops process holds at most 2 runtime API
 * connections (a change: one to change, one to read), and none while a shell is idle; monitoring
 * agents and scripts hold theirs from the same `stats maxconn`. At HAProxy's default of 10, five
 * changes at once, or fewer next to a few agents, leave the next drain waiting in the backlog.
 */
const MIN_STATS_MAXCONN = 20;
const SUGGESTED_STATS_MAXCONN = 50;

/** Whether a `stats socket` address is the one hapops uses. */
function isTargetSocket(address: string, target: Target): boolean {
  if (target.kind === "unix") return address.replace(/^unix@/, "") === target.path;
  const m = /^(?:ipv[46]@|tcp[46]?@)?\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m || Number(m[2]) !== target.port) return false;
  return ["", "*", "0.0.0.0", "::", target.host.replace(/^\[|\]$/g, "")].includes(m[1]!);
}

function statsMaxconnCheck(text: string, path: string, target: Target): Check {
  const limits = parseStatsLimits(text);
  const total = limits.maxconn ?? DEFAULT_STATS_MAXCONN;
  const own: StatsSocketLine | undefined = limits.sockets.find((s) =>
    isTargetSocket(s.address, target),
  );
  const shared =
    limits.sockets.length > 1 ? `, shared by ${limits.sockets.length} \`stats socket\` lines` : "";
  const globalText =
    limits.maxconn === undefined
      ? "HAProxy's default: no `stats maxconn`"
      : `\`stats maxconn ${total}\``;
  const why =
    "monitoring clients and a few hapops commands (up to 2 connections each) fill it, and then a drain waits unanswered until one closes";
  const fixes: string[] = [];
  if (total < MIN_STATS_MAXCONN)
    fixes.push(
      limits.maxconn === undefined
        ? `add \`stats maxconn ${SUGGESTED_STATS_MAXCONN}\` to the global section of ${path}`
        : `raise \`stats maxconn ${total}\` to ${SUGGESTED_STATS_MAXCONN} in the global section of ${path}`,
    );
  if (own?.maxconn !== undefined && own.maxconn < MIN_STATS_MAXCONN)
    fixes.push(
      `remove \`maxconn ${own.maxconn}\` from the \`stats socket ${own.address}\` line of ${path}, or raise it to ${SUGGESTED_STATS_MAXCONN}`,
    );
  if (fixes.length === 0)
    return ok(
      "stats maxconn",
      `HAProxy accepts ${total} runtime API connections at once (${globalText}${shared}); a hapops command holds at most 2`,
    );
  const message =
    own?.maxconn !== undefined && own.maxconn < Math.min(total, MIN_STATS_MAXCONN)
      ? `${own.address} accepts at most ${own.maxconn} runtime API connections at once (\`maxconn ${own.maxconn}\` on its \`stats socket\` line): ${why}`
      : `HAProxy accepts at most ${total} runtime API connections at once (${globalText}${shared}): ${why}`;
  return warn("stats maxconn", message, fixes.join("; "));
}

function haproxyConfigChecks(path: string, target: Target, saveState: boolean): Check[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    return [
      warn(
        "haproxy.cfg",
        `cannot read ${path}: ${(e as Error).message}`,
        "pass --haproxy-config <file>",
      ),
    ];
  }
  const lines = text.split("\n").map((l) => l.replace(/#.*$/, "").trim());
  const sockets = lines.filter((l) => l.startsWith("stats socket "));
  const out: Check[] = [];
  out.push(
    sockets.some((l) => /\bexpose-fd listeners\b/.test(l))
      ? ok("seamless reload", "a `stats socket` line has `expose-fd listeners`")
      : warn(
          "seamless reload",
          `no \`stats socket\` line in ${path} has \`expose-fd listeners\`: reloads can drop connections`,
          "add `expose-fd listeners` to the admin `stats socket` line",
        ),
  );
  out.push(
    lines.some((l) => l.startsWith("stats timeout "))
      ? ok("stats timeout", "`stats timeout` is set")
      : warn(
          "stats timeout",
          "no `stats timeout`: idle CLI sessions are cut after 10 s",
          "add `stats timeout 2m` to the global section",
        ),
  );
  out.push(...stateFileChecks(text, path, { saveState, now: new Date() }));
  out.push(statsMaxconnCheck(text, path, target));
  return out;
}

function sudoersChecks(): Check[] {
  const m = mode(SUDOERS_FILE);
  // sudoers files are 0440 root: an unprivileged user cannot read or visudo-check them.
  const hidden = cannotSee(SUDOERS_FILE);
  if (hidden) return [warn("sudoers", hidden, "run hapops doctor as root or through sudo")];
  if (!m)
    return [
      warn(
        "sudoers",
        `${SUDOERS_FILE} is missing: operators cannot use hapops through sudo`,
        "run: sudo hapops setup --group <operators>",
      ),
    ];
  const out: Check[] = [];
  if (m.uid !== 0 || (m.mode & 0o022) !== 0)
    out.push(
      bad(
        "sudoers",
        `${SUDOERS_FILE} is uid ${m.uid}, mode ${m.mode.toString(8)}`,
        `chown root: ${SUDOERS_FILE} && chmod 0440 ${SUDOERS_FILE}`,
      ),
    );
  try {
    runTool("visudo", "sudo", ["-cf", SUDOERS_FILE]);
    const rule = readFileSync(SUDOERS_FILE, "utf8")
      .split("\n")
      .find((l) => l.startsWith("%"));
    out.push(ok("sudoers", `${SUDOERS_FILE} is valid: ${rule ?? "(no group rule)"}`));
  } catch (e) {
    out.push(
      bad(
        "sudoers",
        `${SUDOERS_FILE} does not pass visudo -cf: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? ""}`,
        `fix or remove ${SUDOERS_FILE} now: a broken sudoers file can lock everyone out`,
      ),
    );
  }
  return out;
}

/** The config this run resolved (-c, HAPOPS_CONFIG or the system one): it loaded, so it is valid. */
function configInUse(settings: Settings): Check[] {
  if (settings.configPath === undefined)
    return [ok("config", "no config file: defaults, and the socket from -s or HAPOPS_SOCKET")];
  if (settings.configPath === SYSTEM_CONFIG) return [];
  return [ok("config", `${settings.configPath} is valid (the config in use)`)];
}

async function configChecks(): Promise<Check[]> {
  // Without a sudoers rule the system config is optional (a single admin with their own config).
  if (!mode(SYSTEM_CONFIG) && !mode(SUDOERS_FILE))
    return [
      warn(
        "config",
        `${SYSTEM_CONFIG} is missing (the sudo access pattern needs it)`,
        "run: sudo hapops setup",
      ),
    ];
  const out = [
    rootOwnedNotWritable("config", SYSTEM_CONFIG, "system config"),
    rootOwnedNotWritable("config", dirname(SYSTEM_CONFIG), "config directory"),
  ];
  if (out[0]!.status === "ok") {
    try {
      await readConfigFile(SYSTEM_CONFIG);
      out.push(ok("config", `${SYSTEM_CONFIG} is valid`));
    } catch (e) {
      out.push(bad("config", (e as Error).message, `fix ${SYSTEM_CONFIG}`));
    }
  }
  return out;
}

function auditChecks(settings: Settings): Check[] {
  const path = settings.audit.path;
  const dir = dirname(path);
  const out: Check[] = [];
  try {
    accessSync(dir, constants.W_OK);
    out.push(ok("audit", `audit directory ${dir} is writable`));
  } catch {
    out.push(
      bad(
        "audit",
        `audit directory ${dir} is missing or not writable: every change would be refused (exit 5)`,
        "run: sudo hapops setup",
      ),
    );
    return out;
  }
  const m = mode(path);
  if (!m) {
    out.push(ok("audit", `${path} will be created on the first change`));
    return out;
  }
  if ((m.mode & 0o007) !== 0)
    out.push(
      bad(
        "audit",
        `${path} is mode ${m.mode.toString(8)}: readable or writable by anyone`,
        `chmod o-rwx ${path}`,
      ),
    );
  try {
    const text = readFileSync(path, "utf8").replace(/\n$/, "");
    const v = verifyLines(text ? text.split("\n") : []);
    out.push(
      v.ok
        ? ok("audit", `${path}: ${v.records} records, chain intact`)
        : bad(
            "audit",
            `${path}: broken at line ${v.line} (${v.problem})`,
            "hapops audit verify shows the details; keep the file as evidence",
          ),
    );
  } catch (e) {
    out.push(warn("audit", `cannot read ${path}: ${(e as Error).message}`, "run doctor as root"));
  }
  return out;
}

/** The master CLI `hapops reload` needs: there, answering, with a serving worker. */
async function masterChecks(settings: Settings): Promise<Check[]> {
  if (settings.master === undefined)
    return [
      warn(
        "master",
        "no master CLI socket: hapops reload needs one (it keeps drains and weights across reloads)",
        "start HAProxy with -W -S /run/haproxy-master.sock (Debian: EXTRAOPTS in /etc/default/haproxy), or set master: in the config",
      ),
    ];
  try {
    const procs = await masterCli(settings, settings.master).showProc();
    const serving = procs.workers.length + procs.oldWorkers.length;
    return [
      ok(
        "master",
        `${settings.master} answers: master pid ${procs.master.pid}, ${procs.workers.length} worker(s), ${procs.oldWorkers.length} old worker(s) finishing`,
      ),
      ...(serving === 0
        ? [
            bad(
              "master",
              "the master lists no worker",
              "check HAProxy's logs: no worker is serving",
            ),
          ]
        : []),
    ];
  } catch (e) {
    return [
      bad(
        "master",
        (e as Error).message,
        "check the -S socket HAProxy was started with, and --master / master: in the config",
      ),
    ];
  }
}

export async function runDoctor(settings: Settings, haproxyConfig: string): Promise<Check[]> {
  return [
    ...(await socketChecks(settings)),
    ...(await masterChecks(settings)),
    ...haproxyConfigChecks(haproxyConfig, settings.target, settings.servers.saveState),
    ...sudoersChecks(),
    ...configInUse(settings),
    ...(await configChecks()),
    ...auditChecks(settings),
  ];
}
