import { readFileSync, readlinkSync } from "node:fs";
import { userInfo } from "node:os";
import { basename } from "node:path";
import { GuardError } from "../errors.js";
import { runTool } from "../util/tools.js";

/**
 * Who is acting, and which fact decided it (DESIGN.md, "Audit record"):
 *
 * 1. the kernel's audit login uid (`/proc/self/loginuid`): pam_loginuid sets it at login (SSH,
 *    console) and it is kept across sudo, su and every process below, as auditd's `auid` is. It
 *    names the human even through `ansible -b` (sudo, then sh, then python, then hapops);
 * 2. else, when sudo is our direct parent, SUDO_USER, checked against SUDO_UID in passwd;
 * 3. else the real uid's user.
 *
 * LOGNAME, USER and the like are never consulted: anyone can set them. A process whose login uid
 * is unset may set it once without privilege, so a login uid alone never widens what the account
 * the run acts through may do: the policy must allow the run for that account's groups too.
 */
export type OperatorFrom = "loginuid" | "sudo" | "uid";

/** A passwd user with their groups. */
export interface Account {
  readonly name: string;
  readonly uid: number;
  /** Primary group (passwd). */
  readonly gid: number;
  /** Unix groups, from the system group database. */
  readonly groups: readonly string[];
}

export interface Identity {
  /** The operator: the login uid's user, else sudo's user, else the real uid's (see above). */
  readonly operator: string;
  /** The operator's uid. */
  readonly uid: number;
  /** Primary group of the operator (passwd). */
  readonly gid: number;
  /**
   * Acting with root's rights for someone else, so the lock-down applies (system config only,
   * policy applies): sudo is our direct parent, or SUDO_* are set without it and the login uid
   * names the operator (see sudoMode).
   */
  readonly sudo: boolean;
  /**
   * Which fact named the operator. resolveIdentity always sets this, sudoUser and account; they
   * are optional only for identities made by hand (tests), where the operator is the account.
   */
  readonly operatorFrom?: OperatorFrom;
  /** SUDO_USER, checked against SUDO_UID, only when sudo is our direct parent. */
  readonly sudoUser?: string | undefined;
  /** Kernel login uid (audit subsystem): survives sudo and su; undefined when unset. */
  readonly loginuid: number | undefined;
  readonly tty: string | undefined;
  /** Unix groups of the operator, from the system group database. */
  readonly groups: readonly string[];
  /**
   * The account the run acts through: the user sudo authenticated when sudo is our direct
   * parent, the real uid's user without sudo, the operator otherwise (SUDO_* without sudo as
   * parent: nothing vouches for SUDO_USER there). When it is not the operator, the policy must
   * allow the run for its groups too; under sudo, the operator's files are opened with its uid.
   */
  readonly account?: Account;
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

/** A passwd entry with the groups `id -Gn -- <its name>` prints. */
export interface IdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly string[];
}

/** A user or group name `id` prints that reads back unambiguously (no space, comma or bracket). */
const NAME = String.raw`[^\s(),]+`;
const ID_LINE = new RegExp(
  String.raw`^uid=(\d+)\((${NAME})\) gid=(\d+)\((${NAME})\)(?: groups=(\d+(?:\(${NAME}\))?(?:,\d+(?:\(${NAME}\))?)*))?\n?$`,
);

/**
 * What `id -- <key>` printed (LC_ALL=C), read as getent's passwd entry and `id -Gn`'s groups:
 * coreutils prints `uid=U(name) gid=G(group) groups=G(group),H(other)...` from the same
 * lookups (id.c print_full_info; group-list.c print_group_list prints the gid first, then the
 * others but the gid). undefined, so that the caller asks getent and `id -Gn` as before, when
 * the answer is not for `key` (a uid, or a name passwd spells the same way) or when anything in
 * it could read otherwise: a group without a name (`id -Gn` fails on it), a name with a space
 * (`id -Gn` output is split on spaces), a comma or a bracket.
 */
export function parseIdLine(text: string, key: string | number): IdEntry | undefined {
  const m = ID_LINE.exec(text);
  if (!m) return undefined;
  const [uid, name, gid] = [Number(m[1]), m[2]!, m[3]!];
  if (typeof key === "number" ? uid !== key : name !== key) return undefined;
  const groups = [m[4]!];
  for (const item of m[5]?.split(",") ?? []) {
    const open = item.indexOf("(");
    if (open < 0) return undefined;
    if (item.slice(0, open) !== gid) groups.push(item.slice(open + 1, -1));
  }
  return { name, uid, gid: Number(gid), groups };
}

/**
 * One `id -- <user>` for a passwd entry and its groups. A uid is asked as `+<uid>` (coreutils:
 * a number, never a name); a name as itself, unless it starts like a number (getent reads an
 * all-digit key as a uid). undefined when id fails or its answer is not plain (parseIdLine):
 * then getent and `id -Gn` decide, as they always did.
 */
function idLookup(key: string | number): IdEntry | undefined {
  const numeric = typeof key === "number";
  if (numeric ? !Number.isSafeInteger(key) || key < 0 : key === "" || /^\s*[+-]?\d/.test(key))
    return undefined;
  try {
    const out = runTool("id", "coreutils", ["--", numeric ? `+${key}` : key], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    return parseIdLine(out, key);
  } catch {
    return undefined;
  }
}

/**
 * The process's own account without a helper: passwd through the C library (os.userInfo:
 * getpwuid_r, so NSS users count), and the groups the kernel gave this process (getgroups, the
 * ones its rights come from), named from /etc/group. undefined, so that `id` decides as before,
 * when any group has no line there (an LDAP group: only NSS can name it) or anything fails. Only
 * for the real uid, and only when it is also the effective one (not under sudo: there the
 * groups are root's). It spares a start-up one `id` process (~5 ms of an audited change).
 */
function ownAccount(uid: number): IdEntry | undefined {
  try {
    if (process.geteuid?.() !== uid) return undefined;
    const me = userInfo();
    if (me.uid !== uid) return undefined;
    const names = new Map<number, string>();
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const [name, , gid] = line.split(":");
      if (name && gid !== undefined && /^\d+$/.test(gid) && !names.has(Number(gid)))
        names.set(Number(gid), name);
    }
    const gids = [me.gid, ...(process.getgroups?.() ?? []).filter((g) => g !== me.gid)];
    const groups = gids.map((g) => names.get(g));
    if (groups.some((g) => g === undefined || /[\s,()]/.test(g))) return undefined;
    return { name: me.username, uid, gid: me.gid, groups: groups as string[] };
  } catch {
    return undefined;
  }
}

/**
 * The real system: id, else getent and `id -Gn` (by absolute path, so NSS users from LDAP and
 * the like count, and never a program from the caller's PATH), and /proc. A lookup and then the
 * groups of the user it found cost one helper (idLookup), not two.
 */
export const systemProbe = (env: NodeJS.ProcessEnv): IdentityProbe => {
  const groupsFound = new Map<string, readonly string[]>();
  return {
    uid: process.getuid?.() ?? 0,
    euid: process.geteuid?.() ?? 0,
    ppid: process.ppid,
    env,
    lookupUser(key) {
      const found = (key === process.getuid?.() ? ownAccount(key) : undefined) ?? idLookup(key);
      if (found) {
        groupsFound.set(found.name, found.groups);
        return { name: found.name, uid: found.uid, gid: found.gid };
      }
      const line = getent("passwd", String(key));
      if (!line) return undefined;
      const [name, , uid, gid] = line.split("\n")[0]!.split(":");
      if (name === undefined || uid === undefined || gid === undefined) return undefined;
      return { name, uid: Number(uid), gid: Number(gid) };
    },
    groupsOf(user) {
      const found = groupsFound.get(user);
      if (found) return [...found];
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
  };
};

/** The variables sudo sets for the command it runs (sudo(8), "Command environment"). */
const SUDO_VARS = ["SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND"] as const;

/**
 * How sudo is involved, the one answer the lock-down (settings), the gate and the identity share:
 *
 * - `none`: not root, or root with no SUDO_* set (root acting as itself);
 * - `direct`: effective uid 0, SUDO_USER and SUDO_UID set, and sudo is our parent process. sudo
 *   runs the command as its child; root can set SUDO_* by hand, which must not let it act in
 *   someone else's name;
 * - `indirect`: effective uid 0 and SUDO_* set, sudo not our parent, and the login uid set (as
 *   `ansible -b` runs: sudo, sh, python, hapops). Locked down as under sudo, for the login
 *   uid's user.
 *
 * Fails closed: euid 0 with SUDO_* set, sudo not the direct parent and no login uid (a wrapper
 * that does not exec, a root shell from `sudo -s`) could be an operator who reached root another
 * way; acting as plain root there would hand them a free config, no policy and their own audit
 * file. Cheap: no passwd lookups.
 */
// `sudo -u <someone else> hapops` is not "under sudo" here: the sudoers rule setup installs
// allows running as root only, and a run as another user is that user's own run.
export type SudoMode = "none" | "direct" | "indirect";

export function sudoMode(probe: IdentityProbe): SudoMode {
  if (probe.euid !== 0) return "none";
  const set = SUDO_VARS.filter((k) => probe.env[k] !== undefined);
  if (set.length === 0) return "none";
  const parent = probe.parentProgram(probe.ppid);
  if (parent === "sudo" && probe.env.SUDO_USER !== undefined && probe.env.SUDO_UID !== undefined)
    return "direct";
  if (probe.loginuid() !== undefined) return "indirect";
  throw new GuardError(
    `running as root with ${set.join(", ")} set, but not started by sudo itself (parent: ${parent ?? "unknown"}) and with no login uid (pam_loginuid sets one at SSH login, and it would name the operator); refusing to guess who is acting. Operators: run sudo hapops ... directly. Root acting as itself: unset ${SUDO_VARS.join(" ")} first`,
    { sudoVars: set, parent: parent ?? null },
  );
}

/** Acting with root's rights for someone else (the lock-down applies); see sudoMode. */
export function isUnderSudo(probe: IdentityProbe): boolean {
  return sudoMode(probe) !== "none";
}

function withGroups(
  probe: IdentityProbe,
  entry: { name: string; uid: number; gid: number },
): Account {
  return { name: entry.name, uid: entry.uid, gid: entry.gid, groups: probe.groupsOf(entry.name) };
}

/** The user sudo authenticated: SUDO_USER, which passwd must give the uid SUDO_UID. */
function sudoAccount(probe: IdentityProbe): Account {
  const sudoUser = probe.env.SUDO_USER ?? "";
  const sudoUid = probe.env.SUDO_UID;
  const entry = probe.lookupUser(sudoUser);
  if (!entry || String(entry.uid) !== sudoUid)
    throw new GuardError(
      `sudo says the operator is ${sudoUser} (SUDO_UID ${sudoUid}), but the passwd database ${entry ? `gives ${sudoUser} uid ${entry.uid}` : `has no user ${sudoUser}`}; refusing to act under a name that does not check out`,
      { sudoUser, sudoUid },
    );
  return withGroups(probe, entry);
}

/** The real uid's user; `uid-<n>` with no groups when passwd does not know it. */
function realAccount(probe: IdentityProbe): Account {
  const entry = probe.lookupUser(probe.uid);
  if (entry && entry.uid === probe.uid) return withGroups(probe, entry);
  return { name: `uid-${probe.uid}`, uid: probe.uid, gid: process.getgid?.() ?? 0, groups: [] };
}

/**
 * The login uid's user. Under the lock-down one that passwd does not know is refused: the
 * policy cannot be checked for a user that does not exist. Otherwise it is `uid-<n>`, with no
 * groups (so a policy, which must allow it too, allows nothing).
 */
function loginAccount(
  probe: IdentityProbe,
  loginuid: number,
  lockedDown: boolean,
  known: Account | undefined,
): Account {
  if (known && known.uid === loginuid) return known;
  const entry = probe.lookupUser(loginuid);
  if (entry && entry.uid === loginuid) return withGroups(probe, entry);
  if (lockedDown)
    throw new GuardError(
      `the login uid (${loginuid}, from /proc/self/loginuid) names no user in the passwd database; refusing to act with root's rights for an operator the policy cannot be checked for`,
      { loginuid },
    );
  return { name: `uid-${loginuid}`, uid: loginuid, gid: process.getgid?.() ?? 0, groups: [] };
}

/** The account a run acts through (the operator's own when the identity does not say). */
export function throughAccount(id: Identity): Account {
  return id.account ?? { name: id.operator, uid: id.uid, gid: id.gid, groups: id.groups };
}

export function resolveIdentity(probe: IdentityProbe): Identity {
  const mode = sudoMode(probe);
  const loginuid = probe.loginuid();
  const tty = probe.tty();
  // Who the run acts through: sudo's word when sudo is our parent, the real uid without sudo.
  // SUDO_* without sudo as parent vouch for nobody: there the login uid alone names the
  // operator (sudoMode has made sure it is set).
  const through =
    mode === "direct" ? sudoAccount(probe) : mode === "none" ? realAccount(probe) : undefined;
  const operator =
    loginuid !== undefined ? loginAccount(probe, loginuid, mode !== "none", through) : through!;
  return {
    operator: operator.name,
    uid: operator.uid,
    gid: operator.gid,
    sudo: mode !== "none",
    operatorFrom: loginuid !== undefined ? "loginuid" : mode === "direct" ? "sudo" : "uid",
    sudoUser: mode === "direct" ? through!.name : undefined,
    loginuid,
    tty,
    groups: operator.groups,
    account: through ?? operator,
  };
}
