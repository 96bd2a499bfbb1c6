import type { Command } from "commander";
import { SELECTOR_HELP } from "../change-args.js";
import { paintFor, runEngineCommand } from "../engine.js";

interface CheckFlags {
  addr?: string;
  dryRun?: boolean;
  force?: boolean;
  reason?: string;
}

const changeOptions = (cmd: Command) =>
  cmd
    .option("--addr <ip[:port]>", "every server with this address, across backends")
    .option("-n, --dry-run", "show the plan and the exact lines; send nothing that changes state")
    .option("--force", "override a safety guard (recorded in the audit log)")
    .option("--reason <text>", "why you are doing this (recorded in the audit log)");

/** health and agent enable|disable, maxconn (issue 14). */
export function registerCheckCommands(program: Command): void {
  for (const check of ["health", "agent"] as const) {
    changeOptions(
      program
        .command(check)
        .argument("<action>", "enable or disable")
        .argument("[selector]", SELECTOR_HELP),
    )
      .description(
        check === "health"
          ? "turn servers' health checks off or back on (enable|disable health), verified"
          : "turn servers' agent checks off or back on (enable|disable agent), verified",
      )
      .addHelpText(
        "after",
        check === "health"
          ? "\nA server with its health check disabled keeps its state: UP stays UP (in traffic,\nunchecked), DOWN stays DOWN. A server without `check` cannot be enabled (exit 2).\nPolicy operations: health enable, health disable.\n\nExamples:\n  $ hapops health disable be_app/app1 --reason 'app1 maintenance window'\n  $ hapops health enable 'be_app/*'\n  $ hapops health disable --addr 10.0.0.5 --dry-run\n"
          : "\nA server without `agent-check` cannot be enabled (exit 2).\nPolicy operations: agent enable, agent disable.\n\nExamples:\n  $ hapops agent disable be_app/app1\n  $ hapops agent enable '*/app1' --dry-run\n",
      )
      .action((action: string, sel: string | undefined, flags: CheckFlags, cmd: Command) =>
        runEngineCommand(
          cmd,
          {
            op: `${check} ${action === "enable" || action === "disable" ? action : "enable|disable"}`,
            dryRun: flags.dryRun,
            reason: flags.reason,
            force: flags.force,
          },
          async (s) => {
            const [{ parseCheckArgs, checkOperation }, { saveStateTarget }] = await Promise.all([
              import("../../ops/checks.js"),
              import("../../host/state-file.js"),
            ]);
            return checkOperation({
              request: parseCheckArgs(check, action, sel, flags.addr),
              target: s.targetText,
              paint: paintFor(s),
              saveState: saveStateTarget(s),
              dryRun: flags.dryRun,
            });
          },
        ),
      );
  }

  changeOptions(
    program
      .command("maxconn")
      .argument("<what>", "a server selector, or frontend, or global")
      .argument("[args...]", "<N>, or <frontend name> <N>"),
  )
    .description("set the connection limit of servers, a frontend, or the process; verified")
    .addHelpText(
      "after",
      "\n  hapops maxconn <selector> <N>       servers; 0 is no limit                   policy: maxconn\n  hapops maxconn frontend <name> <N>  a frontend; 0 accepts no connection      policy: maxconn frontend\n  hapops maxconn global <N>           the process; 0 restores its start value  policy: maxconn global\n\nA reload brings back what haproxy.cfg says. Before HAProxy 3.1, set maxconn frontend on a\nfrontend at its limit kills HAProxy (haproxy issue #2726): hapops refuses it (exit 3).\n\nExamples:\n  $ hapops maxconn be_app/app1 50\n  $ hapops maxconn 'be_app/*' 0 --dry-run\n  $ hapops maxconn frontend fe_http 2000 --reason 'flash sale'\n  $ hapops maxconn global 20000\n",
    )
    .action((what: string, args: string[], flags: CheckFlags, cmd: Command) =>
      runEngineCommand(
        cmd,
        {
          op: what === "frontend" || what === "global" ? `maxconn ${what}` : "maxconn",
          dryRun: flags.dryRun,
          reason: flags.reason,
          force: flags.force,
        },
        async (s) => {
          const { parseMaxconnArgs, maxconnOperation } = await import("../../ops/maxconn.js");
          return maxconnOperation({
            request: parseMaxconnArgs(what, args, flags.addr),
            target: s.targetText,
            force: flags.force ?? false,
            paint: paintFor(s),
          });
        },
      ),
    );
}
