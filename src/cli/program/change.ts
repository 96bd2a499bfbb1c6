import type { Command } from "commander";
import { SELECTOR_HELP, type ChangeFlags } from "../change-args.js";
import { paintFor, runEngineCommand } from "../engine.js";

/** drain, maint (disable), ready (enable), weight. */
export function registerChangeCommands(program: Command): void {
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
      "give up waiting after this long (exit 6; servers stay DRAIN); implies --wait (not the socket's --timeout)",
      "10m",
    )
    .option("--then <state>", "once drained: maint")
    .option(
      "--poll-interval <dur>",
      "how often to read sessions while waiting; implies --wait",
      "500ms",
    )
    .option(
      "--kill-after <dur>",
      "cut the sessions still there after this long (at the latest at --wait-timeout) with shutdown sessions server, instead of exit 6; implies --wait (policy: sessions kill too)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops drain be_app/app1 --wait --then maint\n  $ hapops drain --addr 10.0.0.5 --wait --wait-timeout 5m\n  $ hapops drain be_app/app1 --wait --wait-timeout 10m --kill-after 5m\n  $ hapops drain 'be_app/*' --dry-run\n",
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
  flags: ChangeFlags & { dryRun?: boolean; force?: boolean; reason?: string },
  cmd: Command,
): Promise<void> {
  // Audit first: every refusal from here on, bad input included, is recorded.
  await runEngineCommand(
    cmd,
    { op, dryRun: flags.dryRun, reason: flags.reason, force: flags.force },
    async (s) => {
      const [{ buildChangeRequest }, { serverOperation }, { saveStateTarget }] = await Promise.all([
        import("../change-args.js"),
        import("../../ops/servers.js"),
        import("../../host/state-file.js"),
      ]);
      const parsed = buildChangeRequest(op, selectorArg, weightArg, flags, flags.force ?? false);
      return serverOperation({
        change: parsed.request,
        // A wait's own options ask for the wait: `drain --wait-timeout 5m` without --wait
        // used to drain and return at once, the timeout silently unused.
        wait:
          flags.wait ||
          flags.then ||
          parsed.killAfterMs !== undefined ||
          cmd.getOptionValueSource("waitTimeout") === "cli" ||
          cmd.getOptionValueSource("pollInterval") === "cli"
            ? {
                timeoutMs: parsed.waitTimeoutMs,
                pollMs: parsed.pollMs,
                killAfterMs: parsed.killAfterMs,
              }
            : undefined,
        then: flags.then === "maint" ? "maint" : undefined,
        ramp: parsed.ramp,
        target: s.targetText,
        paint: paintFor(s),
        saveState: saveStateTarget(s),
        dryRun: flags.dryRun,
      });
    },
  );
}
