import { Argument, type Command } from "commander";
import { argvOf, io } from "../context.js";

/**
 * completion (prints a script for bash, zsh or fish) and the hidden __complete the scripts call
 * on each Tab (cli/completion/).
 */
export function registerCompletionCommands(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]))
    .addHelpText(
      "after",
      `
Tab then completes commands, flags, and names: backends, backend/server, tables, map and ACL
files, certificates, targets and groups, read from the socket and config the line would use
(in at most 300 ms).

Examples:
  $ source <(hapops completion bash)          # this shell; or put the output in
                                              # /usr/share/bash-completion/completions/hapops
  $ source <(hapops completion zsh)           # after compinit; or save it as _hapops in $fpath
  $ hapops completion fish > ~/.config/fish/completions/hapops.fish
`,
    )
    .action(async (shell: "bash" | "zsh" | "fish") => {
      const { completionScript } = await import("../completion/scripts.js");
      io.out(completionScript(shell));
    });

  program
    .command("__complete", { hidden: true })
    .description("candidates for the word being completed, one per line (for the shell scripts)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[words...]")
    .action(async (_words: string[], _opts: object, cmd: Command) => {
      // The words as the shell passed them: commander would drop a "--" the user typed.
      const args = argvOf(cmd).slice(argvOf(cmd).indexOf("__complete") + 1);
      const [{ runComplete }, { isUnderSudo, systemProbe }] = await Promise.all([
        import("../completion/run.js"),
        import("../../audit/identity.js"),
      ]);
      await runComplete(program, args, {
        env: process.env,
        euid: process.geteuid?.() ?? 0,
        underSudo: () => isUnderSudo(systemProbe(process.env)),
        out: (t) => io.out(t),
        err: (t) => io.err(t),
      });
    });
}
