import type { Command } from "commander";
import { guardRead, io, settingsFor } from "../context.js";
import { runEngineCommand } from "../engine.js";

const FLEET_HELP =
  "\nOver many targets (-t lb1,lb2, -g <group>, --all): one table with a TARGET column, or {<kind>: [rows with a target], targets: [...]} with --json; exit 4 when a target did not answer.\n";

interface SessionsFlags {
  limit?: string;
  bytes?: boolean;
}

/** sessions, sessions kill, errors (issue 14). */
export function registerSessionCommands(program: Command): void {
  // `hapops sessions [sel]` lists; `hapops sessions kill <sel>` cuts (commander tries the
  // subcommand's name first, so a backend named "kill" is written kill/*).
  const sessions = program
    .command("sessions")
    .description(
      "who is connected: client, frontend, backend/server, age and bytes of each session (show sess; needs operator level)",
    )
    .argument(
      "[selector]",
      "backend/server, backend/*, */server, */* or a backend (default: every session)",
    )
    .option("--limit <n>", "list at most this many sessions, the oldest first (max 1000)", "100")
    .option("--no-bytes", "do not read each listed session's byte counts (show sess <id>)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops sessions be_app/app1\n  $ hapops sessions be_app --json | jq '.sessions[] | select(.ageSeconds > 600)'\n  $ hapops sessions kill be_app/app1 --yes\n  $ hapops sessions be_app/app1 -g edge\n" +
        FLEET_HELP,
    )
    .action(async (sel: string | undefined, opts: SessionsFlags, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      const req = {
        selector: sel,
        limit: Number(opts.limit ?? "100"),
        bytes: opts.bytes !== false,
      };
      await guardRead(s, cmd, "sessions");
      if (s.fleet) {
        const [
          { readEach },
          { runSessions, checkSessionsRequest },
          { printFleetSessions },
          { finishFleetRead },
        ] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../../engine/reads.js"),
          import("../commands/sessions.js"),
          import("../commands/fleet-read.js"),
        ]);
        // Input is checked once, before any target is reached.
        checkSessionsRequest(req);
        return finishFleetRead(
          printFleetSessions(await readEach(s, (one) => runSessions(one, req)), s),
          (t) => io.out(t),
        );
      }
      const [{ runSessions }, { printSessions }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/sessions.js"),
      ]);
      io.out(printSessions(await runSessions(s, req), s));
    });

  sessions
    .command("kill")
    .description(
      "cut every session of the selected servers now (shutdown sessions server); asks, or needs --yes",
    )
    .argument("<selector>", "backend/server, backend/*, */server or */*")
    .option("-n, --dry-run", "show the plan and the exact lines; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      `
Cutting live sessions asks at a terminal; without one it needs -y/--yes (exit 3 otherwise, nothing
sent). A server with no sessions gets nothing. The sessions are read back until they are gone (up to
5s). Policy operation: sessions kill, scoped to the servers.

Examples:
  $ hapops sessions kill be_app/app1 --yes --reason "drain timed out"
  $ hapops sessions kill 'be_app/*' --dry-run
`,
    )
    .action((sel: string, flags: { dryRun?: boolean; reason?: string }, cmd: Command) => {
      const yes = cmd.optsWithGlobals<{ yes?: boolean }>().yes ?? false;
      const dryRun = flags.dryRun ?? false;
      return runEngineCommand(
        cmd,
        { op: "sessions kill", dryRun, reason: flags.reason },
        async (s) => {
          const [{ killOperation }, { parseSelector }, { realClock }] = await Promise.all([
            import("../../ops/sessions.js"),
            import("../../ops/selector.js"),
            import("../../engine/wait.js"),
          ]);
          // The engine asks at a terminal (never in a dry run, never under --json).
          const terminal = process.stdin.isTTY === true && process.stderr.isTTY === true && !s.json;
          return killOperation({
            selector: parseSelector(sel),
            yes,
            asking: dryRun ? "dry-run" : terminal ? "terminal" : "none",
            target: s.targetText,
            clock: realClock,
            settleMs: 5000,
            pollMs: 100,
          });
        },
      );
    });

  program
    .command("errors")
    .description(
      "the last invalid request of each frontend and invalid response of each backend (show errors; needs operator level)",
    )
    .argument("[proxy]", "only errors this frontend or backend kept, or was the other side of")
    .option("--request", "only invalid requests")
    .option("--response", "only invalid responses")
    .option("--full", "each error as HAProxy captured it: its flags and the whole buffer")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops errors\n  $ hapops errors fe_http --full\n  $ hapops errors --json | jq '.events[] | .errorLine'\n  $ hapops errors --all\n" +
        FLEET_HELP,
    )
    .action(
      async (
        proxy: string | undefined,
        opts: { request?: boolean; response?: boolean; full?: boolean },
        cmd: Command,
      ) => {
        const s = await settingsFor(cmd, "read");
        const { UsageError } = await import("../../errors.js");
        if (opts.request && opts.response)
          throw new UsageError("give --request or --response, not both");
        const req = {
          proxy,
          which: opts.request
            ? ("request" as const)
            : opts.response
              ? ("response" as const)
              : undefined,
        };
        const { showErrors } = await import("../../commands/builders.js");
        showErrors(req.proxy, req.which);
        await guardRead(s, cmd, "errors");
        if (s.fleet) {
          const [{ readEach }, { runErrors }, { printFleetErrors }, { finishFleetRead }] =
            await Promise.all([
              import("../../engine/fleet-reads.js"),
              import("../../engine/reads.js"),
              import("../commands/errors.js"),
              import("../commands/fleet-read.js"),
            ]);
          return finishFleetRead(
            printFleetErrors(await readEach(s, (one) => runErrors(one, req)), s),
            (t) => io.out(t),
          );
        }
        const [{ runErrors }, { printErrors }] = await Promise.all([
          import("../../engine/reads.js"),
          import("../commands/errors.js"),
        ]);
        io.out(printErrors(await runErrors(s, req), { ...s, full: opts.full ?? false }));
      },
    );
}
