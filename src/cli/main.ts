import { Command, CommanderError } from "commander";
import type { Journal } from "../audit/journal.js";
import type { GlobalFlags, Settings } from "../config/settings.js";
import type { StatEntry } from "../parse/stat.js";
import type { TableEntry } from "../parse/table.js";
import { ExitCode, InternalError, isHapopsError, type HapopsError } from "../errors.js";
import { SELECTOR_HELP, type ChangeFlags } from "./change-args.js";

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
  const { isUnderSudo, systemProbe } = await import("../audit/identity.js");
  return resolveSettings(cmd.optsWithGlobals<GlobalFlags>(), {
    env: process.env,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    euid: process.geteuid?.() ?? 0,
    sudo: isUnderSudo(systemProbe(process.env)),
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
    .option(
      "-s, --socket <target>",
      "runtime API: /path, unix:/path, tcp://h:p, tls://h:p, or a target name from the config (env: HAPOPS_SOCKET)",
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
      await guardRead(s, cmd, "info");
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
      await guardRead(s, cmd, "stat");
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
      await guardRead(s, cmd, "servers");
      const { runServers, printServers } = await import("./commands/servers.js");
      io.out(printServers(await runServers(s, backend), s));
    });

  program
    .command("certs")
    .description("loaded TLS certificates: subject, SANs, expiry, days left (needs operator level)")
    .option(
      "--expiring <dur>",
      "exit 1 if any certificate expires within this window (e.g. 30d), for cron and monitoring",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops certs --json | jq '.certs[] | select(.daysLeft < 30)'\n  $ hapops certs --expiring 30d || page-someone\n",
    )
    .action(async (opts: { expiring?: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { parseDuration } = await import("../util/duration.js");
      const windowMs =
        opts.expiring !== undefined ? parseDuration(opts.expiring, "--expiring") : undefined;
      await guardRead(s, cmd, "certs");
      const { runCerts, printCerts, expiringWithin } = await import("./commands/certs.js");
      const now = new Date();
      const result = await runCerts(s, now);
      const expiring = windowMs === undefined ? undefined : expiringWithin(result, now, windowMs);
      io.out(printCerts(result, { ...s, expiring }));
      if (expiring && expiring.length > 0) {
        const { ResultExit } = await import("../errors.js");
        throw new ResultExit(`${expiring.length} certificate(s) expire within ${opts.expiring}`);
      }
    });

  program
    .command("shell")
    .description(
      "a session for an operator at a terminal: history, Tab completion of names, every operation audited; from a pipe, one command per line",
    )
    .addHelpText(
      "after",
      '\nExamples:\n  $ sudo hapops shell\n  hapops> drain be_app/app1 --wait\n  $ printf "servers\\nstat be_app\\n" | hapops shell\n',
    )
    .action(async (_o: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runShell, defaultHistoryFile } = await import("./commands/shell.js");
      const globals = cmd.optsWithGlobals<GlobalFlags>();
      // Each line runs as its own hapops command with the same global options.
      const prefix: string[] = [];
      if (globals.socket) prefix.push("-s", globals.socket);
      if (globals.config) prefix.push("-c", globals.config);
      if (globals.timeout) prefix.push("--timeout", globals.timeout);
      const interactive = process.stdin.isTTY === true;
      const code = await runShell({
        settings: s,
        execute: (argv) => main([...prefix, ...argv]),
        input: process.stdin,
        output: process.stdout,
        interactive,
        err: (t) => io.err(t),
        historyFile: defaultHistoryFile(process.env, s.sudo),
      });
      if (code !== 0) {
        const { ResultExit } = await import("../errors.js");
        throw new ResultExit(`a command in the shell failed (exit ${code})`);
      }
    });

  program
    .command("raw")
    .description(
      "one runtime command for what has no named operation: checked against a table, level-checked, audited",
    )
    .argument("<command>", 'the runtime command, quoted: "show pools"')
    .option("-n, --dry-run", "show what would be sent; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      '\nOne command only: no ";", newline or payload (<<). Refused: unknown verbs, expert-mode,\nexperimental-mode, debug, prompt, user/operator, quit and master CLI @ prefixes.\nPolicy operation: raw.\n\nExamples:\n  $ hapops raw "show pools"\n  $ hapops raw "set maxconn server be_app/app1 50" --reason "protect app1"\n',
    )
    .action(async (text: string, flags: { dryRun?: boolean; reason?: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { startRun } = await import("./run-context.js");
      const run = await startRun(
        s,
        {
          op: "raw",
          readOnly: false,
          args: process.argv.slice(2),
          reason: flags.reason,
          dryRun: flags.dryRun ?? false,
          force: false,
        },
        process.env,
        (m) => io.err(`hapops: ${m}\n`),
      );
      try {
        run.authorize([]);
        const { runRaw } = await import("./commands/raw.js");
        await runRaw(s, { text, dryRun: flags.dryRun ?? false, journal: run.journal! }, io);
      } catch (e) {
        await run.fail(e);
        throw e;
      } finally {
        run.close();
      }
    });

  program
    .command("rotate-cert")
    .description(
      "replace a loaded certificate without a reload: validate, set, verify, commit (or abort), persist",
    )
    .argument(
      "<domain|file>",
      "a file HAProxy loaded (show ssl cert), or a domain one of them covers",
    )
    .option("--pem <file>", "the new certificate, its chain and key in one PEM file")
    .option("--cert <file>", "the new certificate (leaf first; may include the chain)")
    .option("--key <file>", "its private key")
    .option("--chain <file>", "the intermediate certificates")
    .option("--certbot-dir <dir>", "a certbot live directory (fullchain.pem + privkey.pem)")
    .option(
      "--persist",
      "after the commit, write the new PEM over the file (previous kept as .bak)",
    )
    .option("--no-persist", "do not write the file, even if certs.persist is set")
    .option("--min-days <n>", "refuse a certificate that expires within n days")
    .option("--abort-stale", "abort another open certificate transaction first (recorded)")
    .option(
      "-n, --dry-run",
      "run every check and show what would be sent; send nothing that changes state",
    )
    .option("--force", "allow the new certificate to drop names the live one covers (recorded)")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops rotate-cert example.com --certbot-dir /etc/letsencrypt/live/example.com --persist\n  $ hapops rotate-cert /etc/haproxy/certs/api.pem --cert new.crt --key new.key --chain chain.pem -n\n",
    )
    .action((target: string, flags: RotateFlags, cmd: Command) =>
      runRotateCommand(target, flags, cmd),
    );

  addChangeCommands(program);
  addMapCommands(program, "map");
  addMapCommands(program, "acl");

  const table = program.command("table").description("stick tables: show, set, clear");
  table
    .command("set")
    .description("set data on one entry (created if missing), then read it back (needs operator)")
    .argument("<table>", "table name")
    .argument("<key>", "entry key (checked against the table's type)")
    .argument("<data...>", "data.<type>=<value>, e.g. data.gpc0=1")
    .option("-n, --dry-run", "show the line; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops table set be_app 192.0.2.10 data.gpc0=1 --reason 'block scraper'\n",
    )
    .action((t: string, key: string, data: string[], opts: TableFlags, cmd: Command) =>
      runTableChangeCommand("table set", t, { ...opts, key, data }, cmd),
    );
  table
    .command("clear")
    .description("remove entries: one key, those matching a filter, or all (asks, or needs --yes)")
    .argument("<table>", "table name")
    .option("--key <key>", "only this key")
    .option("--filter <expr...>", "only entries matching data.<type> <op> <value>")
    .option("-n, --dry-run", "show the line; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops table clear be_app --key 192.0.2.10\n  $ hapops table clear be_app --filter data.gpc0 gt 0\n  $ hapops table clear be_app --yes\n",
    )
    .action((t: string, opts: TableFlags, cmd: Command) =>
      runTableChangeCommand("table clear", t, opts, cmd),
    );
  table
    .command("show")
    .description(
      "entries of a stick table (needs operator level); --json prints one entry per line",
    )
    .argument("<table>", "table name (usually the backend or frontend that declares it)")
    .option("--key <key>", "only this key (checked against the table's type)")
    .option(
      "--filter <expr...>",
      "only entries matching data.<type> <op> <value> (op: eq ne lt le gt ge)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops table show be_app\n  $ hapops table show be_app --key 192.0.2.10 --json\n",
    )
    .action(async (name: string, opts: { key?: string; filter?: string[] }, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "table show");
      const mod = await import("./commands/table.js");
      if (s.json) {
        await mod.runTableShow(s, { table: name, key: opts.key, filter: opts.filter }, (e) =>
          io.out(JSON.stringify(mod.entryJson(name, e)) + "\n"),
        );
        return;
      }
      const entries: TableEntry[] = [];
      const info = await mod.runTableShow(
        s,
        { table: name, key: opts.key, filter: opts.filter },
        (e) => entries.push(e),
      );
      io.out(mod.printTableEntries(info, entries));
    });

  const audit = program.command("audit").description("the audit log: recent records, chain check");
  audit
    .command("tail")
    .description("recent audit records (raw JSON Lines with --json)")
    .option("-n, --lines <count>", "how many records", "20")
    .option("--op <op>", "only this operation (drain, maint, ...)")
    .option("--operator <user>", "only this operator")
    .addHelpText(
      "after",
      "\nExamples:\n  $ sudo hapops audit tail -n 50 --operator alice\n  $ sudo hapops audit tail --op drain --json | jq .\n",
    )
    .action(async (opts: { lines: string; op?: string; operator?: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "audit");
      const { runAuditTail, printAuditTail } = await import("./commands/audit.js");
      io.out(
        printAuditTail(
          await runAuditTail(s, { n: Number(opts.lines), op: opts.op, operator: opts.operator }),
          s,
        ),
      );
    });
  audit
    .command("verify")
    .description(
      "check the hash chain; prints OK with the record count or the first broken line (exit 1)",
    )
    .argument("[file]", "log to check (default: the configured audit.path)")
    .action(async (file: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "audit");
      const { runAuditVerify, printAuditVerify } = await import("./commands/audit.js");
      io.out(printAuditVerify(runAuditVerify(s, file), s));
    });

  program
    .command("setup")
    .description(
      "install the sudo access pattern on this host (as root): program, config, audit dir, sudoers rule",
    )
    .option("--group <group>", "unix group whose members may run hapops through sudo", "hapops")
    .option(
      "--prefix <dir>",
      "where the program goes (<prefix>/lib/hapops, <prefix>/sbin/hapops)",
      "/usr/local",
    )
    .option("-n, --dry-run", "show each file it would write; write nothing")
    .addHelpText(
      "after",
      "\nExamples:\n  $ sudo hapops setup --group lb-ops --dry-run\n  $ sudo hapops setup --group lb-ops\n",
    )
    .action(async (opts: { group: string; prefix: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalFlags & { dryRun?: boolean }>();
      const { runSetup } = await import("./commands/setup.js");
      runSetup(
        {
          group: opts.group,
          prefix: opts.prefix,
          socket: g.socket ?? "/run/haproxy/admin.sock",
          dryRun: g.dryRun ?? false,
          json: g.json ?? false,
        },
        (t) => io.out(t),
      );
    });

  program
    .command("doctor")
    .description(
      "check this host: socket, exposed sockets, haproxy.cfg, sudoers, config, audit log (exit 1 on a failure)",
    )
    .option(
      "--haproxy-config <file>",
      "HAProxy configuration to inspect",
      "/etc/haproxy/haproxy.cfg",
    )
    .action(async (opts: { haproxyConfig: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const { runDoctor, printDoctor } = await import("./commands/doctor.js");
      const checks = await runDoctor(s, opts.haproxyConfig);
      io.out(printDoctor(checks, s));
      if (checks.some((c) => c.status === "fail")) {
        const { VerificationError } = await import("../errors.js");
        throw new VerificationError(
          `doctor: ${checks.filter((c) => c.status === "fail").length} check(s) failed`,
        );
      }
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

function addChangeCommands(program: Command): void {
  const withSelector = (cmd: Command) =>
    cmd
      .argument("[selector]", SELECTOR_HELP)
      .option("--addr <ip[:port]>", "every server with this address, across backends")
      .option("-n, --dry-run", "show the plan and the exact lines; send nothing that changes state")
      .option("--force", "override a safety guard (recorded in the audit log)")
      .option("--reason <text>", "why you are doing this (recorded in the audit log)");

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
  const globals = cmd.optsWithGlobals<
    GlobalFlags & { dryRun?: boolean; force?: boolean; reason?: string }
  >();
  const s = await settingsFor(cmd);
  const { startRun } = await import("./run-context.js");
  // Audit first: every refusal from here on, bad input included, is recorded.
  const run = await startRun(
    s,
    {
      op,
      readOnly: false,
      args: process.argv.slice(2),
      reason: globals.reason,
      dryRun: globals.dryRun ?? false,
      force: globals.force ?? false,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  const abort = new AbortController();
  // The first Ctrl-C stops a wait or a ramp where it is and reports it; a second one quits.
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(ExitCode.interrupted);
    abort.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    const { buildChangeRequest } = await import("./change-args.js");
    const parsed = buildChangeRequest(op, selectorArg, weightArg, flags, globals.force ?? false);
    const { runChange } = await import("./commands/change.js");
    const { realClock } = await import("../engine/wait.js");
    await runChange(
      s,
      parsed.request,
      {
        dryRun: globals.dryRun ?? false,
        wait: flags.wait ?? false,
        waitTimeoutMs: parsed.waitTimeoutMs,
        pollMs: parsed.pollMs,
        then: flags.then === "maint" ? "maint" : undefined,
        ramp: parsed.ramp,
        signal: abort.signal,
        clock: realClock,
        journal: run.journal!,
        authorize: (servers) => run.authorize(servers),
      },
      io,
    );
  } catch (e) {
    await run.fail(e);
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    run.close();
  }
}

/**
 * Policy (and, with audit.reads, the audit log) for read-only commands. Without a policy and
 * without read auditing this costs nothing: no identity lookups.
 */
async function guardRead(s: Settings, cmd: Command, op: string): Promise<void> {
  if (s.policy === undefined && !s.audit.reads) return;
  const { startRun } = await import("./run-context.js");
  const run = await startRun(
    s,
    {
      op,
      readOnly: true,
      args: process.argv.slice(2),
      reason: undefined,
      dryRun: false,
      force: false,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  try {
    await run.journal?.single("ok", []);
  } finally {
    run.close();
  }
}

function addMapCommands(program: Command, kind: "map" | "acl"): void {
  const what = kind === "map" ? "maps (key -> value files HAProxy loaded)" : "ACL pattern files";
  const group = program
    .command(kind)
    .description(`${what}: show, get, add, ${kind === "map" ? "set, " : ""}del, replace`);
  const ref = `<${kind}>`;
  const refHelp = `the ${kind}: its file as HAProxy loaded it, or #<id> (see hapops ${kind} show)`;
  group
    .command("show")
    .description(`list the ${kind}s, or the entries of one (JSON Lines with --json)`)
    .argument(`[${kind}]`, refHelp)
    .action(async (r: string | undefined, _o: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, `${kind} show`);
      const { runMapShow } = await import("./commands/map.js");
      io.out(await runMapShow(s, kind, r));
    });
  group
    .command("get")
    .description(
      `look a value up as HAProxy would (${kind === "map" ? "which value it maps to" : "whether it matches"})`,
    )
    .argument(ref, refHelp)
    .argument("<value>", "the value to look up")
    .action(async (r: string, v: string, _o: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, `${kind} get`);
      const { runMapGet } = await import("./commands/map.js");
      io.out(await runMapGet(s, kind, r, v));
    });
  const entryOps: ("add" | "set" | "del")[] =
    kind === "map" ? ["add", "set", "del"] : ["add", "del"];
  for (const op of entryOps) {
    const c = group
      .command(op)
      .description(
        `${op} one ${kind === "map" ? "entry" : "pattern"} (runtime only; replace --persist writes the file)`,
      )
      .argument(ref, refHelp)
      .argument(kind === "map" ? "<key>" : "<pattern>", kind === "map" ? "the key" : "the pattern");
    if (kind === "map" && op !== "del") c.argument("<value>", "the value");
    c.option("-n, --dry-run", "show the line; send nothing")
      .option("--reason <text>", "why (recorded in the audit log)")
      .action(async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const flags = args[args.length - 2] as { dryRun?: boolean; reason?: string };
        const [r, key, value] = args as [string, string, string | undefined];
        await withRun(cmd, `${kind} ${op}`, flags, async (journal, s) => {
          const { runMapChange } = await import("./commands/map.js");
          await runMapChange(
            s,
            {
              kind,
              op,
              ref: r,
              key,
              value: kind === "map" && op !== "del" ? value : undefined,
              dryRun: flags.dryRun ?? false,
              journal,
            },
            io,
          );
        });
      });
  }
  group
    .command("replace")
    .description(
      `replace the whole ${kind} from a file in one atomic swap (prepare, add @ver, commit), showing the diff first`,
    )
    .argument(ref, refHelp)
    .requiredOption(
      "--from <file>",
      kind === "map"
        ? "the new contents: one 'key value' per line"
        : "the new contents: one pattern per line",
    )
    .option("--persist", `after the commit, write the ${kind} file too (previous kept as .bak)`)
    .option("-n, --dry-run", "show the diff and what would be sent; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      `\nExample:\n  $ hapops ${kind} replace /etc/haproxy/${kind === "map" ? "hosts.map" : "blocked.acl"} --from new.${kind} --persist\n`,
    )
    .action(
      async (
        r: string,
        flags: { from: string; persist?: boolean; dryRun?: boolean; reason?: string },
        cmd: Command,
      ) => {
        await withRun(cmd, `${kind} replace`, flags, async (journal, s) => {
          const { runMapReplace } = await import("./commands/map.js");
          await runMapReplace(
            s,
            {
              kind,
              ref: r,
              from: flags.from,
              persist: flags.persist ?? false,
              dryRun: flags.dryRun ?? false,
              journal,
            },
            io,
          );
        });
      },
    );
}

/** Audit and policy around a change command whose body needs the journal. */
async function withRun(
  cmd: Command,
  op: string,
  flags: { dryRun?: boolean; reason?: string },
  body: (journal: Journal, s: Settings) => Promise<void>,
): Promise<void> {
  const s = await settingsFor(cmd);
  const { startRun } = await import("./run-context.js");
  const run = await startRun(
    s,
    {
      op,
      readOnly: false,
      args: process.argv.slice(2),
      reason: flags.reason,
      dryRun: flags.dryRun ?? false,
      force: false,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  try {
    run.authorize([]);
    await body(run.journal!, s);
  } catch (e) {
    await run.fail(e);
    throw e;
  } finally {
    run.close();
  }
}

interface TableFlags {
  key?: string;
  filter?: string[];
  data?: string[];
  dryRun?: boolean;
  reason?: string;
}

async function runTableChangeCommand(
  op: "table set" | "table clear",
  name: string,
  flags: TableFlags,
  cmd: Command,
): Promise<void> {
  const s = await settingsFor(cmd);
  const globals = cmd.optsWithGlobals<GlobalFlags & { yes?: boolean }>();
  const { startRun } = await import("./run-context.js");
  const run = await startRun(
    s,
    {
      op,
      readOnly: false,
      args: process.argv.slice(2),
      reason: flags.reason,
      dryRun: flags.dryRun ?? false,
      force: false,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  try {
    const { runTableChange } = await import("./commands/table.js");
    const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
    await runTableChange(
      s,
      {
        op,
        table: name,
        key: flags.key,
        filter: flags.filter,
        data: flags.data,
        yes: globals.yes ?? false,
        confirm: interactive ? (q) => ask(q) : undefined,
        dryRun: flags.dryRun ?? false,
        journal: run.journal!,
      },
      io,
    );
  } catch (e) {
    await run.fail(e);
    throw e;
  } finally {
    run.close();
  }
}

/** A yes/no question on the terminal (stderr), default no. */
async function ask(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

interface RotateFlags {
  pem?: string;
  cert?: string;
  key?: string;
  chain?: string;
  certbotDir?: string;
  persist?: boolean;
  minDays?: string;
  abortStale?: boolean;
  dryRun?: boolean;
  force?: boolean;
  reason?: string;
}

async function runRotateCommand(target: string, flags: RotateFlags, cmd: Command): Promise<void> {
  const s = await settingsFor(cmd);
  const { startRun } = await import("./run-context.js");
  const run = await startRun(
    s,
    {
      op: "rotate-cert",
      readOnly: false,
      args: process.argv.slice(2),
      reason: flags.reason,
      dryRun: flags.dryRun ?? false,
      force: flags.force ?? false,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  try {
    const { UsageError } = await import("../errors.js");
    const forms = [
      flags.pem !== undefined,
      flags.cert !== undefined || flags.key !== undefined,
      flags.certbotDir !== undefined,
    ].filter(Boolean).length;
    if (forms !== 1)
      throw new UsageError(
        "give the new certificate one way: --pem F, --cert F --key F [--chain F], or --certbot-dir D",
      );
    if ((flags.cert === undefined) !== (flags.key === undefined))
      throw new UsageError("--cert and --key go together");
    if (flags.chain !== undefined && flags.cert === undefined)
      throw new UsageError("--chain goes with --cert and --key");
    const minDays = flags.minDays === undefined ? s.certs.minDays : Number(flags.minDays);
    if (!Number.isInteger(minDays) || minDays < 0)
      throw new UsageError(`--min-days ${flags.minDays}: a whole number of days`);
    const source =
      flags.pem !== undefined
        ? ({ kind: "pem", pem: flags.pem } as const)
        : flags.certbotDir !== undefined
          ? ({ kind: "certbot", dir: flags.certbotDir } as const)
          : ({ kind: "parts", cert: flags.cert!, key: flags.key!, chain: flags.chain } as const);
    const { runRotateCert } = await import("./commands/rotate-cert.js");
    run.authorize([]);
    await runRotateCert(
      s,
      {
        target,
        source,
        persist: flags.persist ?? s.certs.persist,
        minDays,
        force: flags.force ?? false,
        abortStale: flags.abortStale ?? false,
        dryRun: flags.dryRun ?? false,
        now: new Date(),
        journal: run.journal!,
      },
      io,
    );
  } catch (e) {
    await run.fail(e);
    throw e;
  } finally {
    run.close();
  }
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
