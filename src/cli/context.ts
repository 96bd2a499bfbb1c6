import type { Command } from "commander";
import type { Writable } from "node:stream";
import type { FleetUse, GlobalFlags, Settings } from "../config/settings.js";
import type { HapopsError } from "../errors.js";
import type { RunContext } from "../engine/run-context.js";

/** Where the CLI writes; every command prints through this. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /**
   * For a streamed read: undefined while stdout takes what is written, else a promise that
   * resolves once it has drained (the read stops reading the socket meanwhile).
   */
  room(): Promise<void> | undefined;
}

/**
 * Output queued for stdout beyond what the pipe or terminal has taken, above which a streamed
 * read waits for stdout to drain. A write that the kernel takes at once (a file, /dev/null, a
 * pipe read as fast as it is written) leaves nothing queued, so a fast reader never waits;
 * a slow one (`| less`) holds hapops to this much plus one socket read's worth, instead of the
 * whole answer (a million-entry table is 140 MB of JSON).
 */
export const STDOUT_QUEUE_BYTES = 1 << 20;

export const io: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  room: () => drained(process.stdout, STDOUT_QUEUE_BYTES),
};

/**
 * undefined when `stream` holds less than `limit` bytes not yet written, or can take no more
 * at all (closed by its reader: `hapops ... | head`, whose writes are dropped); else a promise
 * that resolves at 'drain' (everything written) or when it closes.
 */
export function drained(stream: Writable, limit: number): Promise<void> | undefined {
  if (stream.writableLength < limit || stream.destroyed || !stream.writable) return undefined;
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      stream.off("error", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
    stream.on("error", done);
  });
}

/**
 * Settings for a command: its flags with the globals, the environment, and the sudo check.
 * `use` says whether it can run over many targets (-t, -g, --all); a command that cannot
 * refuses them rather than quietly running on the default target.
 */
export async function settingsFor(cmd: Command, use: FleetUse = "none"): Promise<Settings> {
  const { resolveSettings } = await import("../config/settings.js");
  const flags = cmd.optsWithGlobals<GlobalFlags>();
  // A command with an option of its own by the same name (setup's --group: a unix group) gets
  // the word, which the program's fleet option took.
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (key === "group" || key === "target" || key === "all") delete flags[key];
  }
  const { isUnderSudo, systemProbe } = await import("../audit/identity.js");
  return resolveSettings(
    flags,
    {
      env: process.env,
      stdoutIsTTY: process.stdout.isTTY === true,
      stderrIsTTY: process.stderr.isTTY === true,
      euid: process.geteuid?.() ?? 0,
      sudo: isUnderSudo(systemProbe(process.env)),
    },
    use,
  );
}

/**
 * Policy (and, with audit.reads, the audit log) for read-only commands. Without a policy and
 * without read auditing this costs nothing: no identity lookups.
 */
export async function guardRead(s: Settings, cmd: Command, op: string): Promise<void> {
  if (s.policy === undefined && !s.audit.reads) return;
  await withRun(
    cmd,
    { op, readOnly: true },
    async (run) => {
      await run.journal?.single("ok", []);
    },
    s,
  );
}

/**
 * The words this command was run with: the argv the program parsed (commander keeps it as the
 * root's rawArgs), so a line of `hapops shell` is recorded as itself, not as "shell".
 */
export function argvOf(cmd: Command): string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  return [...((root as Command & { rawArgs?: string[] }).rawArgs ?? [])];
}

/** The longest --reason, and the longest word of argv kept in an audit record. */
export const MAX_TEXT = 1024;

export interface RunFlags {
  readonly op: string;
  readonly readOnly?: boolean;
  readonly dryRun?: boolean | undefined;
  readonly reason?: string | undefined;
  readonly force?: boolean | undefined;
  /** The run is refused before it starts (a host path under sudo...): recorded, then thrown. */
  readonly refusal?: HapopsError | undefined;
}

/**
 * Identity, policy and the audit journal around one command (run-context.ts): started before
 * anything is parsed, so bad input is recorded too; how the command ended is recorded when it
 * throws; the log is always released.
 */
export async function withRun(
  cmd: Command,
  flags: RunFlags,
  body: (run: RunContext, s: Settings) => Promise<void>,
  resolved?: Settings,
): Promise<void> {
  const s = resolved ?? (await settingsFor(cmd));
  const { startRun } = await import("../engine/run-context.js");
  // Every record carries the reason and the argv: an unbounded one would fill the audit disk
  // (and with it refuse every change). Too long is refused, and recorded cut short.
  const clip = (t: string) => (t.length > MAX_TEXT ? `${t.slice(0, MAX_TEXT)}…(cut)` : t);
  let refusal = flags.refusal;
  if (flags.reason !== undefined && flags.reason.length > MAX_TEXT) {
    const { UsageError } = await import("../errors.js");
    refusal ??= new UsageError(
      `--reason is ${flags.reason.length} characters long; the limit is ${MAX_TEXT} (it goes into every audit record)`,
    );
  }
  const run = await startRun(
    s,
    {
      op: flags.op,
      readOnly: flags.readOnly ?? false,
      args: argvOf(cmd).map(clip),
      reason: flags.reason === undefined ? undefined : clip(flags.reason),
      dryRun: flags.dryRun ?? false,
      force: flags.force ?? false,
      refusal,
    },
    process.env,
    (m) => io.err(`hapops: ${m}\n`),
  );
  try {
    await body(run, s);
  } catch (e) {
    // A fleet run's error: every target's outcome is recorded already, under the run's id.
    if (!(e as { recorded?: boolean }).recorded) await run.fail(e);
    throw e;
  } finally {
    run.close();
  }
}

/** Commands that administer the host, not HAProxy: never run with root's rights for an operator. */
const HOST_COMMANDS = new Set(["setup", "sandbox"]);

/**
 * The gate every command passes before its action (a preAction hook on the program, so no
 * command can skip it). Who is acting is settled first and fails closed (identity.ts); under
 * sudo, host-administration commands are refused and recorded.
 */
export async function gate(action: Command): Promise<void> {
  const { isUnderSudo, systemProbe } = await import("../audit/identity.js");
  if (!isUnderSudo(systemProbe(process.env))) return;
  // A root process an operator can signal must not be able to open a debugger (setup.ts). The
  // Debian package's /usr/sbin/hapops starts node as setup's wrapper does. The single binary
  // (a Node 20 SEA) never passes: its execArgv is empty, and nothing can close its debugger.
  const { DEBUGGER_OFF } = await import("../host/setup.js");
  if (!process.execArgv.some((a) => (DEBUGGER_OFF as readonly string[]).includes(a))) {
    const { PolicyError } = await import("../errors.js");
    throw new PolicyError(
      `under sudo hapops must run through the command hapops setup or the Debian package installs (node started with ${DEBUGGER_OFF.join(" or ")}, so SIGUSR1 cannot open a root debugger; the single binary cannot be started so on Node 20); ask an admin to run hapops setup again`,
    );
  }
  const name = action.parent?.parent ? action.parent.name() : action.name();
  if (!HOST_COMMANDS.has(name)) return;
  const { PolicyError } = await import("../errors.js");
  const refusal = new PolicyError(
    `hapops ${name} administers this host and is refused under sudo: an admin runs it as root directly (not through the operators' sudo rule)`,
  );
  await withRun(action, { op: name, readOnly: true, refusal }, () => Promise.resolve());
}

/** A yes/no question on the terminal (stderr), default no. Ctrl-C rejects (an AbortError). */
export async function ask(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const abort = new AbortController();
  // readline takes Ctrl-C on a terminal itself: without this the question would wait forever.
  rl.once("SIGINT", () => abort.abort());
  try {
    return /^y(es)?$/i.test((await rl.question(question, { signal: abort.signal })).trim());
  } finally {
    rl.close();
  }
}
