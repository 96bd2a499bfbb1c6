import type { Command } from "commander";
import type { Settings } from "../../config/settings.js";
import { guardRead, io, settingsFor } from "../context.js";
import { runEngineCommand } from "../engine.js";

interface TableFlags {
  key?: string;
  filter?: string[];
  data?: string[];
  dryRun?: boolean;
  reason?: string;
}

/** table show|set|clear. */
export function registerTableCommands(program: Command): void {
  const table = program.command("table").description("stick tables: show, set, clear");
  table
    .command("set")
    .description("set data on one entry (created if missing), then read it back (needs operator)")
    .argument("<table>", "table name")
    .argument("<key>", "entry key (checked against the table's type)")
    .argument("<data...>", "data.<type>=<value>, e.g. data.gpc0=1")
    .option(
      "-n, --dry-run",
      "show the plan and the exact line; send nothing (exits as the real run would)",
    )
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
    .option(
      "-n, --dry-run",
      "show the plan and the exact line; send nothing (exits as the real run would)",
    )
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
      "\nExamples:\n  $ hapops table show be_app\n  $ hapops table show be_app --key 192.0.2.10 --json\n  $ hapops table show be_app -g edge    # one target after the other, TARGET first\n",
    )
    .action(async (name: string, opts: { key?: string; filter?: string[] }, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, "table show");
      if (s.fleet) return showFleetTable(s, name, opts);
      const [mod, { ChunkedOutput }, { runTableShow }] = await Promise.all([
        import("../commands/table.js"),
        import("../output.js"),
        import("../../engine/reads.js"),
      ]);
      // A --key that is not in the table is an answer of its own, with an exit code (like grep).
      const missingKey = async () => {
        const { ResultExit } = await import("../../errors.js");
        io.err(`hapops: table ${name} has no entry for key ${opts.key}\n`);
        throw new ResultExit(`no entry for key ${opts.key}`);
      };
      // A write per socket read rather than per entry; what was read is printed before an error.
      // The socket is read no faster than stdout takes the output (a pipe to less holds the read).
      const output = new ChunkedOutput((t) => io.out(t));
      const backpressure = () => io.room();
      if (s.json) {
        const json = new mod.EntryJsonLines(name);
        let count = 0;
        try {
          await runTableShow(
            s,
            { table: name, key: opts.key, filter: opts.filter },
            {
              entry: (e) => {
                count++;
                output.write(json.line(e));
              },
              line: (line) => {
                const text = json.fromLine(line);
                if (text === undefined) return false;
                count++;
                output.write(text);
                return true;
              },
              backpressure,
            },
          );
        } finally {
          output.flush();
        }
        if (opts.key !== undefined && count === 0) await missingKey();
        return;
      }
      const printer = new mod.EntryPrinter((t) => output.write(t));
      try {
        await runTableShow(
          s,
          { table: name, key: opts.key, filter: opts.filter },
          { entry: (e) => printer.push(e), info: (info) => printer.header(info), backpressure },
        );
        printer.end({ header: opts.key === undefined });
      } finally {
        output.flush();
      }
      if (opts.key !== undefined && printer.count === 0) await missingKey();
    });
}

/**
 * `table show` over many targets: read one after the other and streamed (fleet-reads.ts), so
 * memory stays that of one entry. With --key, exit 1 only when no target has the key.
 */
async function showFleetTable(
  s: Settings,
  name: string,
  opts: { key?: string; filter?: string[] },
): Promise<void> {
  const [{ fleetTableShow }, { FleetEntryOutput }] = await Promise.all([
    import("../../engine/fleet-reads.js"),
    import("../commands/fleet-read.js"),
  ]);
  const output = new FleetEntryOutput(
    (t) => io.out(t),
    name,
    s.fleet!.members.map((m) => m.name),
    { json: s.json, color: s.color, key: opts.key, backpressure: () => io.room() },
  );
  const reached = await fleetTableShow(
    s,
    { table: name, key: opts.key, filter: opts.filter },
    output,
  );
  const error = output.end(reached);
  if (error) throw error;
  if (opts.key !== undefined && output.count === 0) {
    const { ResultExit } = await import("../../errors.js");
    io.err(`hapops: no target's table ${name} has an entry for key ${opts.key}\n`);
    throw new ResultExit(`no entry for key ${opts.key}`);
  }
}

/** set / clear: argv to a table operation; the engine does the rest. */
function runTableChangeCommand(
  op: "table set" | "table clear",
  table: string,
  flags: TableFlags,
  cmd: Command,
): Promise<void> {
  const yes = cmd.optsWithGlobals<{ yes?: boolean }>().yes ?? false;
  const dryRun = flags.dryRun ?? false;
  return runEngineCommand(cmd, { op, dryRun, reason: flags.reason }, async (s) => {
    const { tableChange, tableOperation } = await import("../../ops/table.js");
    // The engine asks at a terminal (never in a dry run, never under --json).
    const terminal = process.stdin.isTTY === true && process.stderr.isTTY === true && !s.json;
    return tableOperation(
      tableChange({
        op,
        table,
        key: flags.key,
        filter: flags.filter,
        data: flags.data,
        yes,
        asking: dryRun ? "dry-run" : terminal ? "terminal" : "none",
        target: s.targetText,
        haproxyConfig: s.haproxyConfig,
      }),
    );
  });
}
