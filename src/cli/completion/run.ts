import type { Command } from "commander";
import { analyse, complete, formatCompletion, kindOf } from "./candidates.js";
import { readCompletionNames, type NamesOptions } from "../../engine/completion-names.js";

export interface CompleteIo extends Omit<NamesOptions, "log"> {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/**
 * `hapops __complete [--debug] -- <words...>`: the candidates for the last word, for the shell
 * scripts. It never fails and never speaks on stderr (a Tab must not print over the line being
 * typed), records nothing in the audit log, and asks nothing. `--debug` says on stderr where
 * names came from and how long the read took.
 */
export async function runComplete(
  program: Command,
  args: readonly string[],
  io: CompleteIo,
): Promise<void> {
  const dashDash = args.indexOf("--");
  const own = dashDash < 0 ? [] : args.slice(0, dashDash);
  const words = dashDash < 0 ? [...args] : args.slice(dashDash + 1);
  const log = own.includes("--debug")
    ? (text: string) => io.err(`hapops __complete: ${text}`)
    : undefined;
  try {
    const analysis = analyse(program, words.length > 0 ? words : [""], io.env.HOME);
    const names = await readCompletionNames(kindOf(analysis.slot), analysis.globals, {
      ...io,
      ...(log ? { log } : {}),
    });
    io.out(formatCompletion(complete(analysis, names)));
  } catch (e) {
    log?.(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    io.out(":\n");
  }
}
