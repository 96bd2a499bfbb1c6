import type { Command } from "commander";
import type { GlobalFlags } from "../../config/settings.js";
import type { HapopsError } from "../../errors.js";
import { guardRead, io, settingsFor, withRun } from "../context.js";

/** audit tail|verify, setup, doctor, sandbox. */
export function registerAdminCommands(program: Command): void {
  const audit = program.command("audit").description("the audit log: recent records, chain check");
  audit
    .command("tail")
    .description("recent audit records (raw JSON Lines with --json)")
    .option("-n, --lines <count>", "how many records", "20")
    .option("--op <op>", "only this operation (drain, maint, ...)")
    .option("--operator <user>", "only this operator")
    .option("--run <id>", "only this run: every target of a fleet run (the run id it printed)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ sudo hapops audit tail -n 50 --operator alice\n  $ sudo hapops audit tail --op drain --json | jq .\n  $ sudo hapops audit tail --run 3f2a... # one fleet run, every target\n",
    )
    .action(
      async (
        opts: { lines: string; op?: string; operator?: string; run?: string },
        cmd: Command,
      ) => {
        const s = await settingsFor(cmd);
        await guardRead(s, cmd, "audit");
        const [{ runAuditTail }, { printAuditTail }] = await Promise.all([
          import("../../audit/read.js"),
          import("../commands/audit.js"),
        ]);
        io.out(
          printAuditTail(
            await runAuditTail(s, {
              n: Number(opts.lines),
              op: opts.op,
              operator: opts.operator,
              run: opts.run,
            }),
            s,
          ),
        );
      },
    );
  audit
    .command("verify")
    .description(
      "check the hash chain; prints OK with the record count or the first broken line (exit 1)",
    )
    .argument("[file]", "log to check (default: the configured audit.path)")
    .action(async (file: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      const [{ runAuditVerify, logPath }, { printAuditVerify }] = await Promise.all([
        import("../../audit/read.js"),
        import("../commands/audit.js"),
      ]);
      // Under sudo only the configured log: a refusal of another path is recorded.
      let refusal;
      try {
        logPath(s, file);
      } catch (e) {
        refusal = e as HapopsError;
      }
      await withRun(cmd, { op: "audit", readOnly: true, refusal }, () => Promise.resolve(), s);
      io.out(printAuditVerify(runAuditVerify(s, file), s));
    });

  program
    .command("setup")
    .description(
      "install the sudo access pattern on this host (as root): program, config, audit dir, sudoers rule",
    )
    .option(
      "-g, --group <group>",
      "unix group whose members may run hapops through sudo (default: hapops)",
    )
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
    .action(async (opts: { group?: string; prefix: string }, cmd: Command) => {
      // The program's own -g (a group of targets) takes the word wherever it is typed.
      const g = cmd.optsWithGlobals<GlobalFlags & { dryRun?: boolean }>();
      const { runSetup } = await import("../../host/setup.js");
      runSetup(
        {
          group: g.group ?? opts.group ?? "hapops",
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
      "HAProxy configuration to inspect (default: haproxyConfig from the config, else /etc/haproxy/haproxy.cfg)",
    )
    .action(async (opts: { haproxyConfig?: string }, cmd: Command) => {
      const s = await settingsFor(cmd);
      const path = opts.haproxyConfig ?? s.haproxyConfig;
      const { PolicyError } = await import("../../errors.js");
      // Under sudo doctor reads as root: only the files the system config names.
      const refusal =
        s.sudo && path !== s.haproxyConfig
          ? new PolicyError(
              `--haproxy-config ${path} is refused under sudo: doctor reads only the haproxyConfig the system config names (${s.haproxyConfig})`,
            )
          : undefined;
      await withRun(cmd, { op: "doctor", readOnly: true, refusal }, () => Promise.resolve(), s);
      const [{ runDoctor }, { printDoctor }] = await Promise.all([
        import("../../host/doctor.js"),
        import("../commands/doctor.js"),
      ]);
      const checks = await runDoctor(s, path);
      io.out(printDoctor(checks, s));
      if (checks.some((c) => c.status === "fail")) {
        const { VerificationError } = await import("../../errors.js");
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
    .option(
      "--haproxy <binary>",
      "run this haproxy binary instead of the system's (try the version a load balancer runs)",
    )
    .addHelpText(
      "after",
      '\nExamples:\n  $ hapops sandbox                  # foreground; Ctrl-C stops it\n  $ hapops sandbox start --detach\n  $ hapops sandbox start --detach --haproxy ./haproxy-3.2.0 --dir /tmp/sb32\n  $ hapops -s "$(hapops sandbox status --json | jq -r .socket)" servers\n  $ hapops sandbox stop\n',
    )
    .action(
      async (
        action: string,
        opts: { dir?: string; detach?: boolean; haproxy?: string },
        cmd: Command,
      ) => {
        const { runSandbox } = await import("../../sandbox/supervisor.js");
        const json = cmd.optsWithGlobals<GlobalFlags>().json ?? false;
        await runSandbox(
          action,
          { dir: opts.dir, detach: opts.detach ?? false, json, haproxy: opts.haproxy },
          io,
        );
      },
    );
}
