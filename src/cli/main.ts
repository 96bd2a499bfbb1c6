import { Command, CommanderError } from "commander";
import { ExitCode, InternalError, isHapopsError, type HapopsError } from "../errors.js";
import { gate, io } from "./context.js";
import { registerAdminCommands } from "./program/admin.js";
import { registerCertCommands } from "./program/certs.js";
import { registerChangeCommands } from "./program/change.js";
import { registerCheckCommands } from "./program/checks.js";
import { registerCompletionCommands } from "./program/completion.js";
import { registerLifecycleCommands } from "./program/lifecycle.js";
import { registerMapCommands } from "./program/maps.js";
import { registerOpsCommands } from "./program/ops.js";
import { registerReadCommands } from "./program/read.js";
import { registerReloadCommands } from "./program/reload.js";
import { registerSessionCommands } from "./program/sessions.js";
import { registerStateCommands } from "./program/state.js";
import { registerTableCommands } from "./program/tables.js";

declare const HAPOPS_VERSION: string;
const VERSION = typeof HAPOPS_VERSION === "string" ? HAPOPS_VERSION : "dev";

const EXAMPLES = `
Examples:
  $ hapops servers                         # every server: address, state, weight, check
  $ hapops -s /run/haproxy/admin.sock stat be_app
  $ hapops servers be_app --json | jq '.[] | select(.admin != "READY")'
  $ hapops drain be_app/app1 --wait --then maint --reason "kernel update"
  $ hapops certs                           # loaded certificates, soonest expiry first
  $ hapops table show be_app --key 192.0.2.10
  $ hapops reload --dry-run                # check the config; what a reload would undo, and how it is kept
  $ hapops sandbox start --detach          # a real HAProxy to try things on

Exit codes:
  0 done   1 HAProxy refused / verification failed   2 invalid input (nothing sent)
  3 refused by a safety guard or policy   4 socket unreachable, not permitted, timed out,
  cut off, or level too low   5 audit log unavailable   6 a wait timed out   130 Ctrl-C
`;

/**
 * The commands, in the order --help lists them, each group by the names and aliases it puts at
 * the top level (a unit test holds this list to what each function registers).
 */
export const COMMAND_GROUPS: readonly (readonly [
  names: readonly string[],
  register: (p: Command) => void,
])[] = [
  [["info", "stat", "servers", "certs"], registerReadCommands],
  [["table"], registerTableCommands],
  [["drain", "maint", "disable", "ready", "enable", "weight"], registerChangeCommands],
  [["server"], registerLifecycleCommands],
  [["health", "agent", "maxconn"], registerCheckCommands],
  [["sessions", "errors"], registerSessionCommands],
  [["rotate-cert"], registerCertCommands],
  [["reload"], registerReloadCommands],
  [["map"], (p) => registerMapCommands(p, "map")],
  [["acl"], (p) => registerMapCommands(p, "acl")],
  [["shell", "raw"], (p) => registerOpsCommands(p, (argv) => main(argv))],
  [["audit", "setup", "doctor", "sandbox"], registerAdminCommands],
  [["state", "drift"], registerStateCommands],
  [["completion", "__complete"], registerCompletionCommands],
];

/** Commands that read the whole tree: shell completion's script and candidates, the shell's Tab. */
const WHOLE_TREE = new Set(["completion", "__complete", "shell"]);

/**
 * The commands `argv` needs, when that is sure without the others: commander, given only the
 * program's options before the command's name, parses and reports the same with the command's
 * group alone (start-up: building every command costs ~2 ms more than one group). `--version`
 * among those options needs no command. Anything else (no command, an unknown word, a command's
 * flag before its name, which commandFirst moves by the whole tree's flags, help, WHOLE_TREE)
 * gets every command, as before.
 */
export function commandsFor(
  program: Command,
  argv: readonly string[],
): typeof COMMAND_GROUPS | undefined {
  const own = new Map<string, boolean>();
  for (const o of program.options)
    for (const f of [o.short, o.long]) if (f) own.set(f, o.required || o.optional);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const group = COMMAND_GROUPS.find(([names]) => names.includes(a));
    if (group) return WHOLE_TREE.has(a) ? undefined : [group];
    if (a === "-V" || a === "--version") return [];
    // The program's options as commandFirst reads them: `--socket=x` or `--socket x`.
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    if (!own.has(flag)) return undefined;
    if (own.get(flag) && !a.includes("=") && i + 1 < argv.length) i++;
  }
  return undefined;
}

/** The program; with `argv`, only the commands it needs (commandsFor). */
export function buildProgram(json = false, argv?: readonly string[]): Command {
  const program = new Command("hapops")
    .description("Safe, audited operations on HAProxy through its runtime API")
    .version(VERSION, "-V, --version")
    .option(
      "-s, --socket <target>",
      "runtime API: /path, unix:/path, tcp://h:p, tls://h:p, or a target name from the config (env: HAPOPS_SOCKET)",
    )
    .option(
      "--master <path>",
      "master CLI socket, for reload (default: master: in the config, then /run/haproxy-master.sock if it exists)",
    )
    .option(
      "-c, --config <file>",
      "config file (default: $HAPOPS_CONFIG, then /etc/hapops/hapops.yaml)",
    )
    .option("--json", "machine-readable output (stable; see README)")
    .option("--timeout <dur>", "how long to wait for HAProxy (connect and each answer), e.g. 5s")
    .option("--insecure-tcp", "allow plain tcp:// to a non-loopback host")
    .option("--tls-cert <file>", "client certificate for tls:// targets")
    .option("--tls-key <file>", "client key for tls:// targets")
    .option("--tls-ca <file>", "CA that signed the socket's certificate")
    .option("-t, --target <names>", "run on these targets from the config (lb1,lb2), in parallel")
    .option("-g, --group <names>", "run on every target of these groups from the config (edge)")
    .option("--all", "run on every target in the config")
    .option("--rolling", "a change over many targets: a batch at a time, each verified first")
    .option("--batch <n>", "with --rolling: targets per batch (default 1)")
    .option("--pause <dur>", "with --rolling: wait between batches, e.g. 30s")
    .option("--parallel", "a change over many targets: all at once (the default)")
    .option("--on-error <what>", "after a target fails: stop (default) or continue")
    .option("-y, --yes", "answer yes to confirmations")
    .option("--no-color", "never colour output (also: NO_COLOR)")
    .addHelpText("after", EXAMPLES)
    // Set before any subcommand is added: subcommands copy these settings when created.
    .exitOverride()
    .configureOutput({
      writeOut: (t) => io.out(t),
      writeErr: (t) => io.err(t),
      // One line, in the same form as hapops' own errors; under --json, the JSON error shape.
      outputError: (t, write) => {
        const message = `${t.replace(/^error: /, "").trimEnd()} (see --help)`;
        if (json)
          io.out(
            JSON.stringify({
              error: { code: "USAGE", exitCode: ExitCode.usage, message },
            }) + "\n",
          );
        else write(`hapops: ${message}\n`);
      },
    });

  // Every action, whatever the command, passes the gate first.
  program.hook("preAction", (_program, action) => gate(action));
  const groups = (argv && commandsFor(program, argv)) ?? COMMAND_GROUPS;
  for (const [, register] of groups) register(program);
  return program;
}

/** The one place that turns errors into messages and exit codes. */
export function reportError(e: unknown, json: boolean): number {
  const err: HapopsError = isHapopsError(e)
    ? e
    : new InternalError(
        `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\nThis is a bug in hapops; please report it with the command you ran.`,
      );
  if ("silent" in err && err.silent === true) return err.exitCode;
  if (json) {
    // A change that failed part-way still reports what it sent, with the error beside it.
    const report = (err as { report?: object }).report;
    io.out(
      JSON.stringify({
        ...report,
        error: { code: err.code, exitCode: err.exitCode, message: err.message, ...err.details },
      }) + "\n",
    );
  } else {
    io.err(`hapops: ${err.message}\n`);
  }
  return err.exitCode;
}

/** Every option of the program and its commands, by flag: whether it takes a value. */
function optionArity(program: Command): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const walk = (c: Command) => {
    for (const o of c.options)
      for (const f of [o.short, o.long]) if (f) out.set(f, o.required || o.optional);
    c.commands.forEach(walk);
  };
  walk(program);
  return out;
}

/**
 * Users type a command's flags before it as often as after it (`hapops --dry-run drain x`):
 * options in front of the command that are not the program's own move after its words, values
 * and all. Nothing else changes, so what commander then refuses is still refused.
 */
export function commandFirst(program: Command, argv: readonly string[]): string[] {
  const own = new Map<string, boolean>();
  for (const o of program.options)
    for (const f of [o.short, o.long]) if (f) own.set(f, o.required || o.optional);
  const anywhere = optionArity(program);
  const names = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  const kept: string[] = [];
  const moved: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (names.has(a)) {
      if (moved.length === 0) return [...argv];
      return [...kept, ...argv.slice(i), ...moved];
    }
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    const takesValue = !a.includes("=") && i + 1 < argv.length;
    if (own.has(flag)) {
      kept.push(a);
      if (own.get(flag) && takesValue) kept.push(argv[++i]!);
    } else if (a.startsWith("-") && anywhere.has(flag)) {
      moved.push(a);
      if (anywhere.get(flag) && takesValue) moved.push(argv[++i]!);
    } else return [...argv];
  }
  return [...argv];
}

export async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes("--json");
  const program = buildProgram(json, argv);
  try {
    await program.parseAsync(commandFirst(program, argv), { from: "user" });
    return ExitCode.ok;
  } catch (e) {
    // Commander has printed its message (or the help); --help and --version exit 0.
    if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return reportError(e, json);
  }
}
