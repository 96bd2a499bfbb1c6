import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { GuardError } from "../errors.js";

/**
 * Who is acting. Under sudo the operator is SUDO_USER, checked against SUDO_UID in the passwd
 * database; without sudo it is the real user. LOGNAME, USER and the like are never consulted:
 * anyone can set them.
 */
export interface Identity {
  readonly operator: string;
  readonly uid: number;
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
  lookupUser(key: string | number): { name: string; uid: number } | undefined;
  groupsOf(user: string): string[];
  /** Name of the program our parent process runs (from /proc), when readable. */
  parentProgram(ppid: number): string | undefined;
  loginuid(): number | undefined;
  tty(): string | undefined;
}

function getent(db: string, key: string): string | undefined {
  try {
    return execFileSync("getent", [db, key], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

/** The real system: getent (so NSS users from LDAP and the like count), id, and /proc. */
export const systemProbe = (env: NodeJS.ProcessEnv): IdentityProbe => ({
  uid: process.getuid?.() ?? 0,
  euid: process.geteuid?.() ?? 0,
  ppid: process.ppid,
  env,
  lookupUser(key) {
    const line = getent("passwd", String(key));
    if (!line) return undefined;
    const [name, , uid] = line.split("\n")[0]!.split(":");
    if (name === undefined || uid === undefined) return undefined;
    return { name, uid: Number(uid) };
  },
  groupsOf(user) {
    try {
      return execFileSync("id", ["-Gn", "--", user], {
        encoding: "utf8",
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

/**
 * Running through sudo: effective uid 0, SUDO_USER and SUDO_UID set, and sudo is our parent
 * process. sudo runs the command as its child; root can set SUDO_* by hand, which must not let
 * it act in someone else's name. Cheap: no passwd lookups.
 */
// `sudo -u <someone else> hapops` is not "under sudo" here: the sudoers rule setup installs
// allows running as root only, and a run as another user is that user's own run.
export function isUnderSudo(probe: IdentityProbe): boolean {
  const { SUDO_USER, SUDO_UID } = probe.env;
  return (
    probe.euid === 0 &&
    SUDO_USER !== undefined &&
    SUDO_UID !== undefined &&
    probe.parentProgram(probe.ppid) === "sudo"
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
    sudo: false,
    groups: entry ? probe.groupsOf(name) : [],
    ...common,
  };
}
