import type { Journal } from "../../audit/journal.js";
import { parseRaw } from "../../commands/raw.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import type { HapopsError } from "../../errors.js";
import { renderJson } from "../output.js";
import type { Io } from "../context.js";

export interface RawOptions {
  readonly text: string;
  readonly dryRun: boolean;
  readonly journal: Journal;
}

/**
 * One runtime command from the raw table, for what has no named operation yet: validated,
 * level-checked before sending (a read is sent from a session lowered to its level), and
 * recorded like any change. HAProxy's answer is printed as it is.
 */
export async function runRaw(settings: Settings, opts: RawOptions, io: Io): Promise<void> {
  const cmd = parseRaw(opts.text);
  const lines = [cmd.line];
  if (opts.dryRun) {
    if (!settings.json)
      io.out(
        `dry run: would send (level ${cmd.spec.level}, ${cmd.mutates ? "changes state" : "read-only"}):\n  ${cmd.line}\n`,
      );
    else
      io.out(
        renderJson({
          dryRun: true,
          command: cmd.line,
          level: cmd.spec.level,
          mutates: cmd.mutates,
        }),
      );
    await opts.journal.single("ok", lines);
    return;
  }
  await withSession(settings, "hapops raw", async (session) => {
    if (cmd.spec.level !== "admin") void session.lowerTo(cmd.spec.level).catch(() => undefined);
    const step = await opts.journal.intent(lines, { level: cmd.spec.level, mutates: cmd.mutates });
    let answer: string[];
    try {
      answer = await session.run(cmd);
    } catch (e) {
      await opts.journal.result(step, "failed", lines, e as HapopsError);
      throw e;
    }
    await opts.journal.result(step, "ok", lines);
    if (settings.json)
      io.out(
        renderJson({
          dryRun: false,
          command: cmd.line,
          level: cmd.spec.level,
          mutates: cmd.mutates,
          answer,
        }),
      );
    else if (answer.length > 0) io.out(answer.join("\n") + "\n");
    else if (cmd.mutates)
      io.out(
        "sent; HAProxy answered nothing (raw changes are not verified: check with hapops servers or stat)\n",
      );
  });
}
