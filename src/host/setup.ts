import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { SYSTEM_CONFIG } from "../config/load.js";
import { EnvironmentError, UsageError } from "../errors.js";
import { runTool, SAFE_PATH } from "../util/tools.js";

export interface SetupOptions {
  readonly group: string;
  readonly prefix: string;
  readonly socket: string;
  readonly dryRun: boolean;
  readonly json: boolean;
}

export const SUDOERS_FILE = "/etc/sudoers.d/hapops";
export const AUDIT_DIR = "/var/log/hapops";

interface Action {
  readonly what: string;
  readonly path: string;
  /** "create", "replace", "keep" (present, left alone), "same" (already as wanted). */
  readonly status: "create" | "replace" | "keep" | "same";
  apply(): void;
}

const PACKAGES: Record<string, string> = {
  getent: "libc-bin",
  groupadd: "passwd",
  visudo: "sudo",
};

function run(cmd: string, args: readonly string[]): string {
  return runTool(cmd, PACKAGES[cmd] ?? cmd, args);
}

function groupExists(group: string): boolean {
  try {
    run("getent", ["group", group]);
    return true;
  } catch {
    return false;
  }
}

function fileAction(
  what: string,
  path: string,
  content: string | Buffer,
  mode: number,
  keepExisting = false,
): Action {
  const exists = existsSync(path);
  // A dry run as another user may not read root's files (sudoers is 0440): then it differs.
  let same = false;
  try {
    same = exists && readFileSync(path).equals(Buffer.from(content));
  } catch {
    same = false;
  }
  const status = !exists ? "create" : keepExisting ? "keep" : same ? "same" : "replace";
  return {
    what,
    path,
    status,
    apply: () => {
      if (status === "keep" || status === "same") {
        if (status === "same") {
          chownSync(path, 0, 0);
          chmodSync(path, mode);
        }
        return;
      }
      // Write beside it and rename: a half-written file is never in place.
      const tmp = join(dirname(path), `.${Date.now()}.hapops-setup`);
      writeFileSync(tmp, content, { mode });
      chownSync(tmp, 0, 0);
      chmodSync(tmp, mode);
      renameSync(tmp, path);
    },
  };
}

function dirAction(what: string, path: string, mode: number): Action {
  const exists = existsSync(path);
  return {
    what,
    path,
    status: exists ? "same" : "create",
    apply: () => {
      mkdirSync(path, { recursive: true, mode });
      chownSync(path, 0, 0);
      chmodSync(path, mode);
    },
  };
}

export function defaultConfig(socket: string, group: string): string {
  return [
    "# hapops system configuration. Under sudo this is the only config hapops reads.",
    "# It must stay owned by root and not writable by group or others.",
    `socket: ${socket}`,
    "audit:",
    `  path: ${AUDIT_DIR}/audit.jsonl`,
    "  # syslog: local            # also copy every record to syslog (or udp://host:514)",
    "policy:",
    "  groups:",
    `    ${group}: ["*"]`,
    '    # app-team: { allow: [read, drain, ready, maint], selectors: ["be_app/*"] }',
    "",
  ].join("\n");
}

/**
 * Node opens a debugger on 127.0.0.1:9229 when it gets SIGUSR1, and sudo passes on the signals
 * an operator sends it: a root process with an open debugger is a root shell for every local
 * user. Node 22.14+ has `--disable-sigusr1`; on older ones the debugger is pointed at an address
 * no interface has (TEST-NET-1, RFC 5737), so it fails to listen.
 */
export const DEBUGGER_OFF = ["--disable-sigusr1", "--inspect-port=192.0.2.1:9229"] as const;

/** Which of DEBUGGER_OFF this node takes (scripts/package.mjs asks it for the package's node). */
export function closeDebugger(node: string): string {
  try {
    execFileSync(node, [DEBUGGER_OFF[0], "-e", "0"], { stdio: "ignore", env: {} });
    return DEBUGGER_OFF[0];
  } catch {
    return DEBUGGER_OFF[1];
  }
}

/**
 * The command operators run through sudo: starts `node` with `debuggerOff` (see DEBUGGER_OFF) on
 * `program`. The Debian package installs the same one as /usr/sbin/hapops (scripts/package.mjs).
 */
export function wrapperScript(
  node: string,
  debuggerOff: string,
  program: string,
  by = "hapops setup",
): string {
  const run = `${node} ${debuggerOff} ${program} "$@"`;
  // Under sudo only these variables reach node, whatever sudoers keeps: NODE_OPTIONS, LD_* or a
  // locale could otherwise run code as root before hapops starts.
  const keep = ["TERM", "NO_COLOR", "COLUMNS", "SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND"];
  return [
    "#!/bin/sh",
    `# Installed by ${by}. Absolute paths: under sudo, PATH must not choose the program.`,
    'if [ -n "${SUDO_UID+set}" ]; then',
    `  exec /usr/bin/env -i PATH=${SAFE_PATH} LANG=C.UTF-8 ${keep.map((k) => `\${${k}+"${k}=$${k}"}`).join(" ")} ${run}`,
    "fi",
    `exec ${run}`,
    "",
  ].join("\n");
}

function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  return p;
}

/** A program root will run for others: root-owned, and no one else may write it or above it. */
function refuseUnlessRootOnly(path: string, what: string): void {
  for (let p = path; ; p = dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0)
      throw new EnvironmentError(
        `${what} ${path} is not safe to run as root for operators: ${p} is uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}; install node (and hapops) where only root can write, e.g. from Debian's packages`,
      );
    if (p === dirname(p)) return;
  }
}

/** setup's --prefix when none is given (cli/program/admin.ts). */
const DEFAULT_PREFIX = "/usr/local";

declare const HAPOPS_PACKAGED_COMMAND: string;

/** The command the Debian package installed, when this is the package's build (package.mjs). */
function packagedCommand(): string | undefined {
  return typeof HAPOPS_PACKAGED_COMMAND === "string" ? HAPOPS_PACKAGED_COMMAND : undefined;
}

/**
 * The launcher this run started from (dist/hapops.cjs, with the program it loads beside it). The
 * single binary has none: it is refused with the reason, as under sudo (cli/context.ts gate).
 */
function bundledScript(): string {
  let script = "";
  try {
    script = process.argv[1] ? realpathSync(process.argv[1]) : "";
  } catch {
    // a bare name: the single binary's argv[1] is the name it was called by
  }
  if (!script.endsWith(".cjs") || !existsSync(join(dirname(script), "hapops.program.js")))
    throw new EnvironmentError(
      `setup installs the bundled program (dist/hapops.cjs, run by Node), not ${process.argv[1] ?? "this"}. ` +
        "The single binary cannot be made safe under sudo on Node 20 (measured: a SIGUSR1 opens a debugger in it, and it takes no inspector flags): " +
        "install the Debian package (hapops_*.deb), or run setup from a clone: sudo node dist/hapops.cjs setup",
    );
  return script;
}

/**
 * The program the build made (scripts/build.mjs: the launcher hapops.cjs, the program it loads
 * and, when there, its code cache), copied under <prefix>/lib/hapops, and the wrapper that
 * starts it with the debugger closed at <prefix>/sbin/hapops.
 */
function programActions(
  script: string,
  prefix: string,
  node: string,
  sbin: string,
  root: boolean,
): Action[] {
  const from = dirname(script);
  if (root) refuseUnlessRootOnly(nearestExisting(prefix), "--prefix");
  const libDir = join(prefix, "lib", "hapops");
  const actions = [
    dirAction("program directory", libDir, 0o755),
    fileAction("launcher", join(libDir, "hapops.cjs"), readFileSync(script), 0o644),
    fileAction(
      "program",
      join(libDir, "hapops.program.js"),
      readFileSync(join(from, "hapops.program.js")),
      0o644,
    ),
  ];
  // The code cache is code too: installed root-owned with the program. One left from another
  // build is harmless: the launcher uses a cache only if it names the program's build.
  const cache = join(from, "hapops.program.cache");
  if (existsSync(cache))
    actions.push(
      fileAction("code cache", join(libDir, "hapops.program.cache"), readFileSync(cache), 0o644),
    );
  actions.push(
    dirAction("sbin directory", dirname(sbin), 0o755),
    fileAction(
      "command",
      sbin,
      wrapperScript(node, closeDebugger(node), join(libDir, "hapops.cjs")),
      0o755,
    ),
  );
  return actions;
}

/**
 * Install the production access pattern: the bundled program under a root-owned prefix, the
 * system config, the audit directory, and a sudoers rule for the operators' group, checked with
 * `visudo -cf` before it is moved into place (a broken sudoers file locks everyone out).
 */
export function runSetup(opts: SetupOptions, out: (t: string) => void): void {
  if (!/^[a-z_][a-z0-9_-]*$/i.test(opts.group))
    throw new UsageError(`--group ${JSON.stringify(opts.group)} is not a valid unix group name`);
  if (!opts.prefix.startsWith("/")) throw new UsageError("--prefix must be an absolute path");
  const root = (process.geteuid?.() ?? 0) === 0;
  if (!root && !opts.dryRun)
    throw new EnvironmentError(
      "hapops setup installs root-owned files and a sudoers rule: run it as root (or with --dry-run to see what it would do)",
    );

  const packaged = packagedCommand();
  const script = packaged === undefined ? bundledScript() : "";
  const node = realpathSync(process.execPath);
  // Root runs this node for operators: it and every directory above it must be root's alone.
  if (root) refuseUnlessRootOnly(node, "the node binary");
  if (packaged !== undefined && opts.prefix !== DEFAULT_PREFIX)
    throw new UsageError(
      `--prefix does not apply to the Debian package's hapops: the command is ${packaged}, installed by dpkg`,
    );
  const sbin = packaged ?? join(opts.prefix, "sbin", "hapops");
  const sudoers = `# Installed by hapops setup: members of ${opts.group} run hapops as root, and nothing else.\n%${opts.group} ALL=(root) NOPASSWD: ${sbin}\n`;

  const actions: Action[] = [];
  if (!groupExists(opts.group))
    actions.push({
      what: `group ${opts.group}`,
      path: "/etc/group",
      status: "create",
      apply: () => void run("groupadd", ["--system", opts.group]),
    });
  if (packaged !== undefined) {
    // The package's command already starts node safely; a second copy would only go stale.
    if (root) refuseUnlessRootOnly(packaged, "the command");
    actions.push({ what: "command (Debian package)", path: packaged, status: "keep", apply() {} });
  } else actions.push(...programActions(script, opts.prefix, node, sbin, root));
  actions.push(
    dirAction("config directory", dirname(SYSTEM_CONFIG), 0o755),
    fileAction("system config", SYSTEM_CONFIG, defaultConfig(opts.socket, opts.group), 0o644, true),
    dirAction("audit directory", AUDIT_DIR, 0o700),
  );
  const sudoersAction = fileAction("sudoers rule", SUDOERS_FILE, sudoers, 0o440);
  actions.push({
    ...sudoersAction,
    apply: () => {
      if (sudoersAction.status === "same") return sudoersAction.apply();
      // Files with a dot are skipped by @includedir, so the candidate is inert until renamed.
      const tmp = join(dirname(SUDOERS_FILE), ".hapops.candidate");
      writeFileSync(tmp, sudoers, { mode: 0o440 });
      try {
        run("visudo", ["-cf", tmp]);
      } catch (e) {
        rmSync(tmp, { force: true });
        const err = e as { stderr?: string; message: string };
        throw new EnvironmentError(
          `visudo rejected the sudoers rule, so it was not installed: ${(err.stderr ?? err.message).trim()}`,
        );
      }
      chownSync(tmp, 0, 0);
      renameSync(tmp, SUDOERS_FILE);
    },
  });

  if (!opts.dryRun) for (const a of actions) a.apply();
  if (opts.json) {
    out(
      json({
        dryRun: opts.dryRun,
        actions: actions.map(({ what, path, status }) => ({ what, path, status })),
      }),
    );
    return;
  }
  const verb = (s: Action["status"]) =>
    opts.dryRun
      ? {
          create: "would create",
          replace: "would replace",
          keep: "would keep (present)",
          same: "unchanged",
        }[s]
      : { create: "created", replace: "replaced", keep: "kept (present)", same: "unchanged" }[s];
  const width = Math.max(...actions.map((a) => verb(a.status).length));
  for (const a of actions) out(`${verb(a.status).padEnd(width)}  ${a.what}: ${a.path}\n`);
  if (opts.dryRun) {
    out(
      `\nsudoers rule (checked with visudo -cf before it is installed):\n  ${sudoers.split("\n")[1]}\n`,
    );
    return;
  }
  out(
    `\nOperators in group ${opts.group} can now run: sudo ${sbin} servers\nAdd one with: usermod -aG ${opts.group} <user>   (then log in again)\nCheck the host with: sudo ${sbin} doctor\n`,
  );
}

/** An object as the CLI prints JSON objects: indented (see cli/output.ts renderJson). */
function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}
