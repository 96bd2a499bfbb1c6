import type { Command } from "commander";
import type { StatEntry } from "../../parse/stat.js";
import { guardRead, io, settingsFor } from "../context.js";

/** info, stat, servers, certs: reads, lowered to the least level each needs. */
export function registerReadCommands(program: Command): void {
  program
    .command("info")
    .description("process information: version, uptime, connections")
    .option("--full", "every field of show info")
    .addHelpText("after", "\nExample:\n  $ hapops info --json | jq -r .Version\n")
    .action(async (opts: { full?: boolean }, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "info");
      const [{ runInfo }, { printInfo }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/info.js"),
      ]);
      io.out(printInfo(await runInfo(s), { json: s.json, all: opts.full ?? false }));
    });

  program
    .command("stat")
    .description("counters and status of frontends, backends and servers (show stat)")
    .argument("[backend[/server]]", "limit to one proxy, or one server")
    .addHelpText("after", "\nExamples:\n  $ hapops stat\n  $ hapops stat be_app/app1 --json\n")
    .action(async (arg: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "stat");
      const [{ runStat }, { printStat, statJson }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/stat.js"),
      ]);
      if (s.json) {
        const { JsonArrayWriter } = await import("../output.js");
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
      const [{ runServers }, { printServers }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/servers.js"),
      ]);
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
      const { parseDuration } = await import("../../util/duration.js");
      const windowMs =
        opts.expiring !== undefined ? parseDuration(opts.expiring, "--expiring") : undefined;
      await guardRead(s, cmd, "certs");
      const [{ runCerts, expiringWithin }, { printCerts }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/certs.js"),
      ]);
      const now = new Date();
      const result = await runCerts(s, now);
      const expiring = windowMs === undefined ? undefined : expiringWithin(result, now, windowMs);
      io.out(printCerts(result, { ...s, expiring }));
      if (expiring && expiring.length > 0) {
        const { ResultExit } = await import("../../errors.js");
        throw new ResultExit(`${expiring.length} certificate(s) expire within ${opts.expiring}`);
      }
    });
}
