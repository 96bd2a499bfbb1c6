import { readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { GuardError } from "../errors.js";
import { runTool } from "../util/tools.js";

/**
 * Who is acting. Under sudo the operator is SUDO_USER, checked against SUDO_UID in the passwd
 * database; without sudo it is the real user. LOGNAME, USER and the like are never consulted:
 * anyone can set them.
 */
export interface Identity {
  readonly operator: string;
  readonly uid: number;
  /** Primary group of the operator (passwd), for opening their files with their rights. */
  readonly gid: number;
  /** Running through sudo: effective uid 0, SUDO_UID/SUDO_USER set, and sudo is our parent. */
  readonly sudo: boolean;
  /** Kernel login uid (audit subsystem): survives sudo and su; undefined when unset. */
  readonly loginuid: number | undefined;
  readonly tty: string | undefined;
  /** Unix groups of the operator, from the system group database. */
  readonly groups: readonly string[];
}

export interface IdentityProbe {
  readonly uid: number;
  readonly euid: number;
  readonly ppid: number;
  readonly env: NodeJS.ProcessEnv;
  /** passwd lookup by name or uid (getent). */
  lookupUser(key: string | number): { name: string; uid: number; gid: number } | undefined;
  groupsOf(user: string): string[];
  /** Name of the program our parent process runs (from /proc), when readable. */
  parentProgram(ppid: number): string | undefined;
  loginuid(): number | undefined;
  tty(): string | undefined;
}

function getent(db: string, key: string): string | undefined {
  try {
    return runTool("getent", "libc-bin", [db, "--", key], {
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

/**
 * The real system: getent and id (by absolute path, so NSS users from LDAP and the like count,
 * and never a program from the caller's PATH), and /proc.
 */
export const systemProbe = (env: NodeJS.ProcessEnv): IdentityProbe => ({
  uid: process.getuid?.() ?? 0,
  euid: process.geteuid?.() ?? 0,
  ppid: process.ppid,
  env,
  lookupUser(key) {
    const line = getent("passwd", String(key));
    if (!line) return undefined;
    const [name, , uid, gid] = line.split("\n")[0]!.split(":");
    if (name === undefined || uid === undefined || gid === undefined) return undefined;
    return { name, uid: Number(uid), gid: Number(gid) };
  },
  groupsOf(user) {
    try {
      return runTool("id", "coreutils", ["-Gn", "--", user], {
        stdio: ["ignore", "pipe", "ignore"],
      })
        .trim()
        .split(/\s+/)
        .filter(Boolean);
    } catch {
      return [];
    }
  },
  parentProgram(ppid) {
    try {
      return basename(readlinkSync(`/proc/${ppid}/exe`));
    } catch {
      try {
        return readFileSync(`/proc/${ppid}/comm`, "utf8").trim();
      } catch {
        return undefined;
      }
    }
  },
  loginuid() {
    try {
      const v = Number(readFileSync("/proc/self/loginuid", "utf8").trim());
      // 4294967295 is (uid_t)-1: no login uid recorded.
      return Number.isInteger(v) && v !== 4294967295 ? v : undefined;
    } catch {
      return undefined;
    }
  },
  tty() {
    for (const fd of [0, 1, 2]) {
      try {
        const t = readlinkSync(`/proc/self/fd/${fd}`);
        if (t.startsWith("/dev/pts/") || t.startsWith("/dev/tty")) return t;
      } catch {
        // not a tty or no /proc
      }
    }
    return undefined;
  },
});

/** The variables sudo sets for the command it runs (sudo(8), "Command environment"). */
const SUDO_VARS = ["SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND"] as const;

/**
 * Running through sudo: effective uid 0, SUDO_USER and SUDO_UID set, and sudo is our parent
 * process. sudo runs the command as its child; root can set SUDO_* by hand, which must not let
 * it act in someone else's name. Cheap: no passwd lookups.
 *
 * Fails closed: euid 0 with SUDO_* set but sudo not the direct parent (a wrapper that does not
 * exec, a root shell from `sudo -s`) could be an operator who reached root another way; acting
 * as plain root there would hand them a free config, no policy and their own audit file.
 */
// `sudo -u <someone else> hapops` is not "under sudo" here: the sudoers rule setup installs
// allows running as root only, and a run as another user is that user's own run.
export function isUnderSudo(probe: IdentityProbe): boolean {
  if (probe.euid !== 0) return false;
  const set = SUDO_VARS.filter((k) => probe.env[k] !== undefined);
  if (set.length === 0) return false;
  const parent = probe.parentProgram(probe.ppid);
  if (parent === "sudo" && probe.env.SUDO_USER !== undefined && probe.env.SUDO_UID !== undefined)
    return true;
  throw new GuardError(
    `running as root with ${set.join(", ")} set, but not started by sudo itself (parent: ${parent ?? "unknown"}); refusing to guess who is acting. Operators: run sudo hapops ... directly. Root acting as itself: unset ${SUDO_VARS.join(" ")} first`,
    { sudoVars: set, parent: parent ?? null },
  );
}

export function resolveIdentity(probe: IdentityProbe): Identity {
  const sudoUser = probe.env.SUDO_USER ?? "";
  const sudoUid = probe.env.SUDO_UID;
  const underSudo = isUnderSudo(probe);
  const common = { loginuid: probe.loginuid(), tty: probe.tty() };
  if (underSudo) {
    const entry = probe.lookupUser(sudoUser);
    if (!entry || String(entry.uid) !== sudoUid)
      throw new GuardError(
        `sudo says the operator is ${sudoUser} (SUDO_UID ${sudoUid}), but the passwd database ${entry ? `gives ${sudoUser} uid ${entry.uid}` : `has no user ${sudoUser}`}; refusing to act under a name that does not check out`,
        { sudoUser, sudoUid },
      );
    return {
      operator: entry.name,
      uid: entry.uid,
      gid: entry.gid,
      sudo: true,
      groups: probe.groupsOf(entry.name),
      ...common,
    };
  }
  const entry = probe.lookupUser(probe.uid);
  const name = entry?.name ?? `uid-${probe.uid}`;
  return {
    operator: name,
    uid: probe.uid,
    gid: entry?.gid ?? process.getgid?.() ?? 0,
    sudo: false,
    groups: entry ? probe.groupsOf(name) : [],
    ...common,
  };
}
