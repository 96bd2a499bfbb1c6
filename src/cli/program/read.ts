import type { Command } from "commander";
import type { StatEntry } from "../../parse/stat.js";
import { guardRead, io, settingsFor } from "../context.js";

const FLEET_HELP =
  "\nOver many targets (-t lb1,lb2, -g <group>, --all): one table with a TARGET column, or {<kind>: [rows with a target], targets: [...]} with --json; exit 4 when a target did not answer.\n";

/**
 * info, stat, servers, certs: reads, lowered to the least level each needs. Over many targets
 * (-t, -g, --all) the same reads run on each at once (engine/fleet-reads.ts) and merge.
 */
export function registerReadCommands(program: Command): void {
  program
    .command("info")
    .description("process information: version, uptime, connections")
    .option("--full", "every field of show info")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops info --json | jq -r .Version\n  $ hapops info -g edge        # one row per target\n" +
        FLEET_HELP,
    )
    .action(async (opts: { full?: boolean }, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, "info");
      if (s.fleet) {
        const [{ fleetInfo }, { printFleetInfo, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        return finishFleetRead(
          printFleetInfo(await fleetInfo(s), { ...s, full: opts.full ?? false }),
          (t) => io.out(t),
        );
      }
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
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops stat\n  $ hapops stat be_app/app1 --json\n  $ hapops stat be_app -g edge\n" +
        FLEET_HELP,
    )
    .action(async (arg: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, "stat");
      if (s.fleet) {
        const [{ fleetStat }, { printFleetStat, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        return finishFleetRead(printFleetStat(await fleetStat(s, arg), s), (t) => io.out(t));
      }
      const [{ runStat }, { printStat, StatJsonWriter }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/stat.js"),
      ]);
      if (s.json) {
        const writer = new StatJsonWriter((t) => io.out(t));
        await runStat(
          s,
          arg,
          (e) => writer.push(e),
          () => io.room(),
        );
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
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops servers\n  $ hapops servers be_app --json\n  $ hapops servers be_app -g edge\n" +
        FLEET_HELP,
    )
    .action(async (backend: string | undefined, _opts: object, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, "servers");
      if (s.fleet) {
        const [{ fleetServers }, { printFleetServers, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        return finishFleetRead(printFleetServers(await fleetServers(s, backend), s), (t) =>
          io.out(t),
        );
      }
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
      "\nExamples:\n  $ hapops certs --json | jq '.certs[] | select(.daysLeft < 30)'\n  $ hapops certs --expiring 30d || page-someone\n  $ hapops certs --all --expiring 30d\n" +
        FLEET_HELP,
    )
    .action(async (opts: { expiring?: string }, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      const { parseDuration } = await import("../../util/duration.js");
      const windowMs =
        opts.expiring !== undefined ? parseDuration(opts.expiring, "--expiring") : undefined;
      await guardRead(s, cmd, "certs");
      const [{ runCerts, expiringWithin }, { printCerts }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/certs.js"),
      ]);
      const now = new Date();
      const expiringFailure = async (n: number) => {
        const { ResultExit } = await import("../../errors.js");
        return new ResultExit(`${n} certificate(s) expire within ${opts.expiring}`);
      };
      if (s.fleet) {
        const [{ fleetCerts }, { printFleetCerts, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        const reached = await fleetCerts(s, now);
        const expiring =
          windowMs === undefined
            ? undefined
            : new Map(
                reached.flatMap((r) =>
                  r.ok ? [[r.name, expiringWithin(r.value, now, windowMs)] as const] : [],
                ),
              );
        // A target not reached (exit 4) outranks a certificate found expiring (exit 1).
        finishFleetRead(printFleetCerts(reached, { ...s, expiring }), (t) => io.out(t));
        const n = [...(expiring?.values() ?? [])].reduce((sum, l) => sum + l.length, 0);
        if (n > 0) throw await expiringFailure(n);
        return;
      }
      const result = await runCerts(s, now);
      const expiring = windowMs === undefined ? undefined : expiringWithin(result, now, windowMs);
      io.out(printCerts(result, { ...s, expiring }));
      if (expiring && expiring.length > 0) throw await expiringFailure(expiring.length);
    });
}
