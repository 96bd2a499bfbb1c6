import type { Command } from "commander";
import type { Settings } from "../config/settings.js";
import type { Operation, Report } from "../engine/operation.js";
import { isHapopsError } from "../errors.js";
import type { EngineUi } from "../engine/run.js";
import type { Paint } from "../ops/servers.js";
import { ask, io, settingsFor, withRun, type RunFlags } from "./context.js";
import { colors, colorStatus, renderJson } from "./output.js";
import type { RunContext } from "../engine/run-context.js";

/** Human output through the engine: lines on stdout (not under --json), progress on a terminal. */
function engineUi(s: Settings): EngineUi {
  const c = colors(s.color);
  const width = () => Math.max(20, (process.stderr.columns ?? 80) - 1);
  return {
    line: (t) => {
      if (!s.json) io.out(t + "\n");
    },
    dim: (t) => c.dim(t),
    warn: (t) => c.yellow(t),
    // One line, cut to the terminal's width: a wrapped line cannot be rewritten in place.
    progress: (t) => {
      if (s.progress) io.err(`\r\x1b[K${t.length > width() ? t.slice(0, width() - 1) + "…" : t}`);
    },
    endProgress: () => {
      if (s.progress) io.err("\r\x1b[K");
    },
  };
}

export function paintFor(s: Settings): Paint {
  const c = colors(s.color);
  return { status: (t) => colorStatus(c, t), bold: (t) => c.bold(t) };
}

/**
 * A change command: argv has been turned into `build`'s operation; the engine runs it inside
 * the run's identity, policy and audit (withRun), and the report is printed. Ctrl-C stops a
 * wait or a ramp where it is (a second one is the default SIGINT). A failure carries its report
 * (what was sent), which cli/main.ts prints beside the error under --json.
 */
export async function runEngineCommand(
  cmd: Command,
  flags: RunFlags,
  build: (s: Settings, run: RunContext) => Promise<Operation> | Operation,
): Promise<void> {
  const s = await settingsFor(cmd, "change");
  if (s.fleet) return runFleetCommand(cmd, flags, s, build);
  try {
    await withRun(
      cmd,
      flags,
      (run) =>
        untilSigint(async (signal) => {
          const op = await build(s, run);
          const [{ runOperation }, { realClock }] = await Promise.all([
            import("../engine/run.js"),
            import("../engine/wait.js"),
          ]);
          const report = await runOperation(
            {
              settings: s,
              journal: run.journal!,
              authorize: (o, scope) => run.authorize(o, scope),
              dryRun: flags.dryRun ?? false,
              ui: engineUi(s),
              clock: realClock,
              signal,
              confirm:
                process.stdin.isTTY === true && process.stderr.isTTY === true && !s.json
                  ? (q) => ask(q)
                  : undefined,
            },
            op,
          );
          if (s.json) io.out(renderJson(report));
        }),
      s,
    );
  } catch (e) {
    // Refused before anything was planned (bad input, policy): the report says so in the one
    // shape, with nothing sent.
    if (isHapopsError(e) && (e as { report?: Report }).report === undefined)
      (e as { report?: Report }).report = {
        op: flags.op,
        target: s.targetText,
        dryRun: flags.dryRun ?? false,
        outcome: e.exitCode === 2 || e.exitCode === 3 ? "refused" : "failed",
        plan: null,
        sent: [],
        verified: false,
        steps: [],
      };
    throw e;
  }
}

/**
 * A change over the targets -t, -g or --all chose: the engine checks every target, then applies
 * (fleet.ts); here only the printing. The summary lists every target; the exit code is the
 * worst target's.
 */
async function runFleetCommand(
  cmd: Command,
  flags: RunFlags,
  s: Settings,
  build: (s: Settings, run: RunContext) => Promise<Operation> | Operation,
): Promise<void> {
  const fleet = s.fleet!;
  await withRun(
    cmd,
    flags,
    (run) =>
      untilSigint(async (signal) => {
        const [{ runFleet }, { realClock }, { printFleetReport }] = await Promise.all([
          import("../engine/fleet.js"),
          import("../engine/wait.js"),
          import("./commands/fleet.js"),
        ]);
        // Bad input is refused once, before any target is reached.
        await build(fleet.members[0]!.settings, run);
        const ui = engineUi(s);
        if (!s.json)
          ui.line(
            colors(s.color).dim(
              `${flags.dryRun ? "dry run over" : flags.op + " on"} ${fleet.label} (${fleet.apply.mode === "rolling" ? `rolling, ${fleet.apply.batch} at a time` : "in parallel"})`,
            ),
          );
        try {
          const report = await runFleet(
            {
              op: flags.op,
              run: run.journal?.runId ?? "",
              apply: fleet.apply,
              dryRun: flags.dryRun ?? false,
              ui,
              clock: realClock,
              signal,
              authorize: (o, scope) => run.authorize(o, scope),
            },
            fleet.members.map((m) => ({
              member: m,
              journal: run.journalFor(m.settings.targetText),
              build: async (st) => build(st, run),
            })),
          );
          io.out(s.json ? renderJson(report) : printFleetReport(report, s));
        } catch (e) {
          const report = (e as { report?: FleetReportLike }).report;
          if (!s.json && report?.targets) io.out(printFleetReport(report as never, s));
          throw e;
        }
      }),
    s,
  );
}

/**
 * Run `fn` with a signal Ctrl-C aborts: a wait or a ramp stops where it is. A second Ctrl-C is
 * the default SIGINT (the handler is gone after the first).
 */
async function untilSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => {
    process.off("SIGINT", onSigint);
    abort.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    return await fn(abort.signal);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

interface FleetReportLike {
  readonly targets?: unknown;
}
