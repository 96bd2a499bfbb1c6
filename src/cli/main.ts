import { Command, CommanderError, Option } from "commander";
import type { GlobalFlags, Settings } from "../config/settings.js";
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
    .option("--no-color", "never colour output (also: NO_COLOR)")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", EXAMPLES)
    // Set before any subcommand is added: subcommands copy these settings when created.
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t), writeErr: (t) => io.err(t) });

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
