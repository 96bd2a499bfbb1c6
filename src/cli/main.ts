import { Command, CommanderError, Option } from "commander";
import type { GlobalFlags, Settings } from "../config/settings.js";
import type { ChangeRequest, WeightSpec } from "../ops/plan.js";
import type { StatEntry } from "../parse/stat.js";
import type { TableEntry } from "../parse/table.js";
import { ExitCode, InternalError, isHapopsError, type HapopsError } from "../errors.js";

declare const HAPOPS_VERSION: string;
const VERSION = typeof HAPOPS_VERSION === "string" ? HAPOPS_VERSION : "dev";

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const io: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

async function settingsFor(cmd: Command): Promise<Settings> {
  const { resolveSettings } = await import("../config/settings.js");
  return resolveSettings(cmd.optsWithGlobals<GlobalFlags>(), {
    env: process.env,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
  });
}

const EXAMPLES = `
Examples:
  $ hapops servers                         # every server: address, state, weight, check
  $ hapops -s /run/haproxy/admin.sock stat be_app
  $ hapops servers be_app --json | jq '.[] | select(.admin != "READY")'
  $ hapops certs                           # loaded certificates, soonest expiry first
  $ hapops table show be_app --key 192.0.2.10
  $ hapops sandbox start --detach          # a real HAProxy to try things on

Exit codes:
  0 done   1 HAProxy refused / verification failed   2 invalid input (nothing sent)
  3 refused by a safety guard or policy   4 socket unreachable, not permitted, timed out,
  cut off, or level too low   5 audit log unavailable   6 a wait timed out
`;

export function buildProgram(): Command {
  const program = new Command("hapops")
    .description("Safe, audited operations on HAProxy through its runtime API")
    .version(VERSION, "-V, --version")
    .addOption(
      new Option(
        "-s, --socket <target>",
        "runtime API: /path, unix:/path, tcp://h:p, tls://h:p, or a target name from the config",
      ).env("HAPOPS_SOCKET"),
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
    .option("-n, --dry-run", "show what a change would do and send nothing that changes state")
    .option("--force", "override a safety guard (recorded)")
    .option("--reason <text>", "why you are doing this (recorded with the change)")
    .option("-y, --yes", "answer yes to confirmations")
    .option("--no-color", "never colour output (also: NO_COLOR)")
    .addHelpText("after", EXAMPLES)
    // Set before any subcommand is added: subcommands copy these settings when created.
    .exitOverride()
    .configureOutput({
      writeOut: (t) => io.out(t),
      writeErr: (t) => io.err(t),
      // One line, in the same form as hapops' own errors.
      outputError: (t, write) =>
        write(`hapops: ${t.replace(/^error: /, "").trimEnd()} (see --help)\n`),
    });

  program
    .command("info")
    .description("process information: version, uptime, connections")
    .option("--all", "every field of show info")
    .addHelpText("after", "\nExample:\n  $ hapops info --json | jq -r .Version\n")
    .action(async (opts: { all?: boolean }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runInfo, printInfo } = await import("./commands/info.js");
      io.out(printInfo(await runInfo(s), { json: s.json, all: opts.all ?? false }));
    });

  program
    .command("stat")
    .description("counters and status of frontends, backends and servers (show stat)")
    .argument("[backend[/server]]", "limit to one proxy, or one server")
    .addHelpText("after", "\nExamples:\n  $ hapops stat\n  $ hapops stat be_app/app1 --json\n")
    .action(async (arg: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runStat, printStat, statJson } = await import("./commands/stat.js");
      if (s.json) {
        const { JsonArrayWriter } = await import("./output.js");
        const writer = new JsonArrayWriter((t) => io.out(t));
        await runStat(s, arg, (e) => writer.push(statJson(e)));
        writer.end();
        return;
      }
      const entries: StatEntry[] = [];
      await runStat(s, arg, (e) => entries.push(e));
      io.out(printStat(entries, s));
    });

  program
    .command("servers")
    .description(
      "servers with address, state (UP/DOWN...), admin state (READY/DRAIN/MAINT), weight, check",
    )
    .argument("[backend]", "limit to one backend")
    .addHelpText("after", "\nExamples:\n  $ hapops servers\n  $ hapops servers be_app --json\n")
    .action(async (backend: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runServers, printServers } = await import("./commands/servers.js");
      io.out(printServers(await runServers(s, backend), s));
    });

  program
    .command("certs")
    .description("loaded TLS certificates: subject, SANs, expiry, days left (needs operator level)")
    .addHelpText(
      "after",
      "\nExample:\n  $ hapops certs --json | jq '.certs[] | select(.daysLeft < 30)'\n",
    )
    .action(async (_opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runCerts, printCerts } = await import("./commands/certs.js");
      io.out(printCerts(await runCerts(s, new Date()), s));
    });

  addChangeCommands(program);

  const table = program.command("table").description("stick tables");
  table
    .command("show")
    .description(
      "entries of a stick table (needs operator level); --json prints one entry per line",
    )
    .argument("<table>", "table name (usually the backend or frontend that declares it)")
    .option("--key <key>", "only this key (checked against the table's type)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops table show be_app\n  $ hapops table show be_app --key 192.0.2.10 --json\n",
    )
    .action(async (name: string, opts: { key?: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const mod = await import("./commands/table.js");
      if (s.json) {
        await mod.runTableShow(s, { table: name, key: opts.key }, (e) =>
          io.out(JSON.stringify(mod.entryJson(name, e)) + "\n"),
        );
        return;
      }
      const entries: TableEntry[] = [];
      const info = await mod.runTableShow(s, { table: name, key: opts.key }, (e) =>
        entries.push(e),
      );
      io.out(mod.printTableEntries(info, entries));
    });

  program
    .command("sandbox")
    .description("run a real HAProxy with demo backends to try hapops on")
    .argument("[action]", "start | stop | status", "start")
    .option(
      "--dir <dir>",
      "sandbox directory (default: a fixed directory under the system temp dir)",
    )
    .option("-d, --detach", "start in the background and return once HAProxy is ready")
    .addHelpText(
      "after",
      '\nExamples:\n  $ hapops sandbox                  # foreground; Ctrl-C stops it\n  $ hapops sandbox start --detach\n  $ hapops -s "$(hapops sandbox status --json | jq -r .socket)" servers\n  $ hapops sandbox stop\n',
    )
    .action(async (action: string, opts: { dir?: string; detach?: boolean }, cmd: Command) => {
      const { runSandbox } = await import("./commands/sandbox.js");
      const json = cmd.optsWithGlobals<GlobalFlags>().json ?? false;
      await runSandbox(action, { dir: opts.dir, detach: opts.detach ?? false, json }, io);
    });

  return program;
}

interface ChangeFlags {
  addr?: string;
  wait?: boolean;
  waitTimeout?: string;
  then?: string;
  pollInterval?: string;
  rampTo?: string;
  step?: string;
  every?: string;
}

const SELECTOR_HELP =
  "backend/server, backend/*, */server or */*; or --addr <ip>[:port] for every server with that address";

function addChangeCommands(program: Command): void {
  const withSelector = (cmd: Command) =>
    cmd
      .argument("[selector]", SELECTOR_HELP)
      .option("--addr <ip[:port]>", "every server with this address, across backends");

  withSelector(program.command("drain"))
    .description(
      "stop sending new traffic to servers (state drain); optionally wait until they are empty",
    )
    .option("--wait", "wait until the servers have no sessions left")
    .option(
      "--wait-timeout <dur>",
      "give up waiting after this long (exit 6; servers stay DRAIN)",
      "10m",
    )
    .option("--then <state>", "once drained: maint")
    .option("--poll-interval <dur>", "how often to read sessions while waiting", "500ms")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops drain be_app/app1 --wait --then maint\n  $ hapops drain --addr 10.0.0.5 --wait --wait-timeout 5m\n  $ hapops drain 'be_app/*' --dry-run\n",
    )
    .action((sel: string | undefined, flags: ChangeFlags, cmd: Command) =>
      runChangeCommand("drain", sel, undefined, flags, cmd),
    );

  withSelector(program.command("maint").alias("disable"))
    .description("put servers in maintenance (no traffic at all)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops maint be_app/app2\n  $ hapops maint --addr 10.0.0.5 --reason 'disk swap'\n",
    )
    .action((sel: string | undefined, flags: ChangeFlags, cmd: Command) =>
      runChangeCommand("maint", sel, undefined, flags, cmd),
    );

  withSelector(program.command("ready").alias("enable"))
    .description("return servers to normal service (state ready)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops ready be_app/app2\n  $ hapops ready '*/app2' --dry-run\n",
    )
    .action((sel: string | undefined, flags: ChangeFlags, cmd: Command) =>
      runChangeCommand("ready", sel, undefined, flags, cmd),
    );

  withSelector(program.command("weight"))
    .argument("[weight]", "0-256, or N% of the configured weight")
    .description("set server weights, or ramp them step by step (canary roll-outs)")
    .option("--ramp-to <weight>", "ramp toward this weight (0-256 or N%), verifying each step")
    .option("--step <n>", "weight change per ramp step", "10")
    .option("--every <dur>", "time between ramp steps", "30s")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops weight be_app/app3 50%\n  $ hapops weight be_app/canary 1 --ramp-to 100 --step 10 --every 1m\n  $ hapops weight --addr 10.0.0.5 0 --dry-run\n",
    )
    .action(
      (sel: string | undefined, weight: string | undefined, flags: ChangeFlags, cmd: Command) =>
        runChangeCommand("weight", sel, weight, flags, cmd),
    );
}

async function runChangeCommand(
  op: "drain" | "maint" | "ready" | "weight",
  selectorArg: string | undefined,
  weightArg: string | undefined,
  flags: ChangeFlags,
  cmd: Command,
): Promise<void> {
  const { parseAddrSelector, parseSelector } = await import("../ops/selector.js");
  const { parseWeight } = await import("../ops/plan.js");
  const { parseDuration } = await import("../util/duration.js");
  const { UsageError } = await import("../errors.js");
  const globals = cmd.optsWithGlobals<GlobalFlags & { dryRun?: boolean; force?: boolean }>();

  // With --addr the first positional is the weight: `hapops weight --addr 10.0.0.5 50`.
  let weightText = weightArg;
  let selText = selectorArg;
  if (flags.addr !== undefined && op === "weight" && weightText === undefined) {
    weightText = selText;
    selText = undefined;
  }
  if (flags.addr !== undefined && selText !== undefined)
    throw new UsageError(
      `give a selector or --addr, not both (got ${selText} and --addr ${flags.addr})`,
    );
  if (flags.addr === undefined && selText === undefined)
    throw new UsageError(`${op} needs a selector (${SELECTOR_HELP})`);
  const selector =
    flags.addr !== undefined ? parseAddrSelector(flags.addr) : parseSelector(selText!);
  if (op !== "drain" && (flags.wait || flags.then))
    throw new UsageError("--wait and --then only apply to drain");
  if (flags.then !== undefined && flags.then !== "maint")
    throw new UsageError(`--then ${flags.then}: the only follow-up is maint`);

  const force = globals.force ?? false;
  let request: ChangeRequest;
  let ramp: { to: WeightSpec; step: number; everyMs: number } | undefined;
  if (op === "weight") {
    if (flags.rampTo !== undefined) {
      const step = Number(flags.step);
      if (!Number.isInteger(step) || step < 1 || step > 256)
        throw new UsageError(`--step ${flags.step}: a whole number from 1 to 256`);
      ramp = {
        to: parseWeight(flags.rampTo),
        step,
        everyMs: parseDuration(flags.every ?? "30s", "--every"),
      };
    } else if (weightText === undefined) {
      throw new UsageError("weight needs a weight (0-256 or N%), or --ramp-to to ramp");
    }
    const weight =
      weightText !== undefined ? parseWeight(weightText) : { to: ramp!.to, step: ramp!.step };
    request = { op, selector, weight, force };
  } else {
    if (weightText !== undefined) throw new UsageError(`unexpected argument ${weightText}`);
    request = { op, selector, force };
  }
  const waitTimeoutMs = parseDuration(flags.waitTimeout ?? "10m", "--wait-timeout");
  const pollMs = parseDuration(flags.pollInterval ?? "500ms", "--poll-interval");

  const s = await settingsFor(cmd);
  const { runChange } = await import("./commands/change.js");
  const { realClock } = await import("../engine/wait.js");
  const abort = new AbortController();
  // The first Ctrl-C stops a wait or a ramp where it is and reports it; a second one quits.
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(ExitCode.interrupted);
    abort.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    await runChange(
      s,
      request,
      {
        dryRun: globals.dryRun ?? false,
        wait: flags.wait ?? false,
        waitTimeoutMs,
        pollMs,
        then: flags.then === "maint" ? "maint" : undefined,
        ramp,
        signal: abort.signal,
        clock: realClock,
      },
      io,
    );
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** The one place that turns errors into messages and exit codes. */
export function reportError(e: unknown, json: boolean): number {
  const err: HapopsError = isHapopsError(e)
    ? e
    : new InternalError(
        `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\nThis is a bug in hapops; please report it with the command you ran.`,
      );
  if (json) {
    io.out(
      JSON.stringify({
        error: { code: err.code, exitCode: err.exitCode, message: err.message, ...err.details },
      }) + "\n",
    );
  } else {
    io.err(`hapops: ${err.message}\n`);
  }
  return err.exitCode;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv, { from: "user" });
    return ExitCode.ok;
  } catch (e) {
    // Commander has printed its message (or the help); --help and --version exit 0.
    if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return reportError(e, json);
  }
}
