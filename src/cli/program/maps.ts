import type { Command } from "commander";
import { guardRead, io, settingsFor } from "../context.js";
import { runEngineCommand } from "../engine.js";

/** map|acl show, get (reads), add, set, del, replace (changes, run by the engine). */
export function registerMapCommands(program: Command, kind: "map" | "acl"): void {
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
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, `${kind} show`);
      if (s.fleet) {
        const [{ fleetMapShow }, { printFleetMapShow, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        const reached = await fleetMapShow(s, kind, r);
        return finishFleetRead(printFleetMapShow(kind, reached, s, r === undefined), (t) =>
          io.out(t),
        );
      }
      const [{ runMapShow }, { printMapShow }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/map.js"),
      ]);
      io.out(printMapShow(kind, await runMapShow(s, kind, r), s.json));
    });
  group
    .command("get")
    .description(
      `look a value up as HAProxy would (${kind === "map" ? "which value it maps to" : "whether it matches"})`,
    )
    .argument(ref, refHelp)
    .argument("<value>", "the value to look up")
    .action(async (r: string, v: string, _o: object, cmd: Command) => {
      const s = await settingsFor(cmd, "read");
      await guardRead(s, cmd, `${kind} get`);
      if (s.fleet) {
        const [{ fleetMapGet }, { printFleetMapGet, finishFleetRead }] = await Promise.all([
          import("../../engine/fleet-reads.js"),
          import("../commands/fleet-read.js"),
        ]);
        const reached = await fleetMapGet(s, kind, r, v);
        return finishFleetRead(printFleetMapGet(kind, reached, s), (t) => io.out(t));
      }
      const [{ runMapGet }, { printMapGet }] = await Promise.all([
        import("../../engine/reads.js"),
        import("../commands/map.js"),
      ]);
      io.out(printMapGet(kind, await runMapGet(s, kind, r, v), s.json));
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
    c.option("-n, --dry-run", "show the plan and the line; send nothing that changes state")
      .option("--reason <text>", "why (recorded in the audit log)")
      .action(async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const flags = args[args.length - 2] as { dryRun?: boolean; reason?: string };
        const [r, key, value] = args as [string, string, string | undefined];
        await runEngineCommand(
          cmd,
          { op: `${kind} ${op}`, dryRun: flags.dryRun, reason: flags.reason },
          async (s) => {
            const { mapEntryOperation } = await import("../../ops/map.js");
            return mapEntryOperation({
              kind,
              op,
              ref: r,
              key,
              value: kind === "map" && op !== "del" ? value : undefined,
              target: s.targetText,
            });
          },
        );
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
    .option(
      "--persist",
      `write the ${kind} file too, whenever it differs (after the commit; the previous file is kept in the backup directory)`,
    )
    .option("-n, --dry-run", "show the diff and what would be sent; send nothing")
    .option("--force", `let an empty --from remove every entry (recorded in the audit log)`)
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      `\nExample:\n  $ hapops ${kind} replace /etc/haproxy/${kind === "map" ? "hosts.map" : "blocked.acl"} --from new.${kind} --persist\n`,
    )
    .action(
      async (
        r: string,
        flags: {
          from: string;
          persist?: boolean;
          dryRun?: boolean;
          force?: boolean;
          reason?: string;
        },
        cmd: Command,
      ) => {
        await runEngineCommand(
          cmd,
          {
            op: `${kind} replace`,
            dryRun: flags.dryRun,
            reason: flags.reason,
            force: flags.force,
          },
          async (s, run) => {
            const [{ readMapFile }, { mapReplaceOperation }] = await Promise.all([
              import("../commands/map.js"),
              import("../../ops/map.js"),
            ]);
            // --from is read with the operator's own rights (under sudo).
            const next = readMapFile(kind, flags.from, run.files);
            return mapReplaceOperation({
              kind,
              ref: r,
              from: flags.from,
              next,
              force: flags.force ?? false,
              persist: flags.persist
                ? {
                    files: run.files,
                    remote: s.target.kind === "unix" ? undefined : s.target.kind,
                  }
                : undefined,
              target: s.targetText,
            });
          },
        );
      },
    );
}
