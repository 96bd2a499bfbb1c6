import type { Command } from "commander";
import type { GlobalFlags } from "../../config/settings.js";
import { guardRead, io, settingsFor } from "../context.js";
import { runEngineCommand } from "../engine.js";

/**
 * shell and raw. The shell runs each line as a hapops command through `run` (cli/main.ts's
 * main), so every line is parsed, validated, policy-checked and audited like any other.
 */
export function registerOpsCommands(
  program: Command,
  run: (argv: string[]) => Promise<number>,
): void {
  program
    .command("shell")
    .description(
      "a session for an operator at a terminal: history, Tab completion of names, every operation audited; from a pipe, one command per line",
    )
    .addHelpText(
      "after",
      '\nExamples:\n  $ sudo hapops shell\n  hapops> drain be_app/app1 --wait\n  $ printf "servers\\nstat be_app\\n" | hapops shell\n',
    )
    .action(async (_o: object, cmd: Command) => {
      const s = await settingsFor(cmd);
      await guardRead(s, cmd, "shell");
      const { runShell, defaultHistoryFile, shellCommands } = await import("../commands/shell.js");
      const globals = cmd.optsWithGlobals<GlobalFlags>();
      // Each line runs as its own hapops command with the same global options.
      const prefix: string[] = [];
      if (globals.socket) prefix.push("-s", globals.socket);
      if (globals.master) prefix.push("--master", globals.master);
      if (globals.config) prefix.push("-c", globals.config);
      if (globals.timeout) prefix.push("--timeout", globals.timeout);
      if (globals.tlsCert) prefix.push("--tls-cert", globals.tlsCert);
      if (globals.tlsKey) prefix.push("--tls-key", globals.tlsKey);
      if (globals.tlsCa) prefix.push("--tls-ca", globals.tlsCa);
      if (globals.insecureTcp) prefix.push("--insecure-tcp");
      if (globals.json) prefix.push("--json");
      if (globals.color === false) prefix.push("--no-color");
      const interactive = process.stdin.isTTY === true;
      const code = await runShell({
        settings: s,
        execute: (argv) => run([...prefix, ...argv]),
        input: process.stdin,
        output: process.stdout,
        interactive,
        err: (t) => io.err(t),
        historyFile: defaultHistoryFile(process.env, s.sudo),
        commands: shellCommands(cmd.parent?.commands ?? []),
      });
      if (code !== 0) {
        const { LineFailed, ExitCode } = await import("../../errors.js");
        const known = Object.values(ExitCode) as number[];
        throw new LineFailed(
          `a command in the shell failed (exit ${code})`,
          (known.includes(code)
            ? code
            : ExitCode.refusedOrUnverified) as (typeof ExitCode)[keyof typeof ExitCode],
        );
      }
    });

  program
    .command("raw")
    .description(
      "one runtime command for what has no named operation: checked against a table, level-checked, audited",
    )
    .argument("<command>", 'the runtime command, quoted: "show pools"')
    .option("-n, --dry-run", "show what would be sent; send nothing")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      '\nOne command only: no ";", newline or payload (<<). Refused: unknown verbs, expert-mode,\nexperimental-mode, debug, prompt, user/operator, quit and master CLI @ prefixes.\nPolicy operation: raw. A group limited to a scope may send a change only when the raw\ntable names every object it touches (servers, tables, maps, certificates), all in scope.\n\nExamples:\n  $ hapops raw "show pools"\n  $ hapops raw "set maxconn server be_app/app1 50" --reason "protect app1"\n',
    )
    .action((text: string, flags: { dryRun?: boolean; reason?: string }, cmd: Command) =>
      runEngineCommand(
        cmd,
        { op: "raw", dryRun: flags.dryRun, reason: flags.reason },
        async (s) => {
          const [{ parseRaw }, { rawOperation }] = await Promise.all([
            import("../../commands/raw.js"),
            import("../../ops/raw.js"),
          ]);
          return rawOperation(parseRaw(text), s.targetText, flags.dryRun ?? false);
        },
      ),
    );
}
