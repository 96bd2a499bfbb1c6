import type { Command } from "commander";
import type { GlobalFlags } from "../../config/settings.js";
import { paintFor, runEngineCommand } from "../engine.js";

interface ReloadFlags {
  systemd?: string | boolean;
  dryRun?: boolean;
  reason?: string;
  force?: boolean;
}

/** How long a reload waits for a new worker unless --timeout says otherwise. */
const DEFAULT_RELOAD_WAIT = "60s";

/** reload. */
export function registerReloadCommands(program: Command): void {
  program
    .command("reload")
    .description(
      "reload HAProxy and keep what the runtime API changed: check the config, save or re-apply drains, maintenance and weights, verify on the new worker",
    )
    .option(
      "--systemd [unit]",
      "reload with systemctl reload <unit> (default haproxy) instead of the master CLI",
    )
    .option("-n, --dry-run", "check the config and show the plan; reload nothing")
    .option(
      "--force",
      "reload although servers only in HAProxy's memory may have been taken out of the config on purpose (re-added) or cannot be added again as they are (left out); recorded",
    )
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      `
Waits up to --timeout (default ${DEFAULT_RELOAD_WAIT} here) for the new worker. A server only in
HAProxy's memory (added with add server, not in haproxy.cfg) is added again on the new worker.
Policy operation: reload, plus drain/maint/ready/weight and server add for what it re-applies.

Examples:
  $ hapops reload --dry-run
  $ hapops --master /run/haproxy-master.sock reload --reason "deploy 2024-06-01"
  $ hapops reload --systemd haproxy
`,
    )
    .action((flags: ReloadFlags, cmd: Command) =>
      runEngineCommand(
        cmd,
        { op: "reload", dryRun: flags.dryRun, reason: flags.reason, force: flags.force },
        async (s, run) => {
          const [{ reloadOperation }, { parseDuration }, { validateUnit }] = await Promise.all([
            import("../../ops/reload.js"),
            import("../../util/duration.js"),
            import("../../host/haproxy-process.js"),
          ]);
          const timeout = cmd.optsWithGlobals<GlobalFlags>().timeout;
          return reloadOperation({
            settings: s,
            systemd:
              flags.systemd === undefined
                ? undefined
                : validateUnit(flags.systemd === true ? "haproxy" : String(flags.systemd), s.sudo),
            timeoutMs: parseDuration(timeout ?? DEFAULT_RELOAD_WAIT, "--timeout"),
            paint: paintFor(s),
            files: run.files,
            force: flags.force ?? false,
          });
        },
      ),
    );
}
