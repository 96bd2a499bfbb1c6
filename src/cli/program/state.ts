import type { Command } from "commander";
import { guardRead, io, settingsFor } from "../context.js";
import { runEngineCommand } from "../engine.js";

/** state save (a change to this host, run by the engine) and drift (a read). */
export function registerStateCommands(program: Command): void {
  const state = program
    .command("state")
    .description(
      "HAProxy's server-state file: what a reload restores drains, maint and weights from",
    );
  state
    .command("save")
    .description(
      "write show servers state to the server-state-file haproxy.cfg names (or --file), atomically",
    )
    .option("--file <file>", "write here instead (refused under sudo)")
    .option("-n, --dry-run", "say where it would write and how many servers; write nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      "\nHAProxy applies the file when it starts or reloads, to the backends with\nload-server-state-from-file global (configuration.txt 3.1, server-state-file).\nPolicy operation: state save.\n\nExamples:\n  $ hapops state save --dry-run\n  $ hapops state save && systemctl reload haproxy\n",
    )
    .action(async (flags: { file?: string; dryRun?: boolean; reason?: string }, cmd: Command) => {
      await runEngineCommand(
        cmd,
        { op: "state save", dryRun: flags.dryRun, reason: flags.reason },
        async (s, run) => {
          const [{ resolveStateTarget }, { stateFileRefusal, stateSaveOperation }] =
            await Promise.all([import("../../host/state-file.js"), import("../../ops/state.js")]);
          const file = resolveStateTarget(s, flags.file);
          // Under sudo a host path the config does not name is refused (recorded, exit 3).
          const refusal = stateFileRefusal(s.sudo, file);
          if (refusal) throw refusal;
          return stateSaveOperation({ target: s.targetText, file, files: run.files });
        },
      );
    });

  program
    .command("drift")
    .description(
      "what a reload would undo: servers, certificates, maps and ACLs whose runtime state differs from disk (exit 1 when any)",
    )
    .addHelpText(
      "after",
      "\nCompares HAProxy's memory with what a reload would load from this host: haproxy.cfg\n(haproxyConfig) and its server-state file for servers, each certificate file, each map\nand ACL file. Exit 0: no drift; 1: drift.\n\nExamples:\n  $ hapops drift\n  $ hapops drift --json | jq '.objects[] | select(.kind == \"server\")'\n",
    )
    .action(async (_opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "drift");
      const [{ runDrift }, { printDrift }] = await Promise.all([
        import("../../engine/drift.js"),
        import("../commands/drift.js"),
      ]);
      const report = await runDrift(s);
      io.out(printDrift(report, s));
      if (report.drift) {
        const { ResultExit } = await import("../../errors.js");
        throw new ResultExit(
          `drift: ${report.objects.filter((o) => o.status === "drift").length} object(s) differ`,
        );
      }
    });
}
