import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { clearLine, createInterface, cursorTo, type Interface } from "node:readline";
import type { Settings } from "../../config/settings.js";
import { readNames, type LiveNames } from "../../engine/reads.js";

export type { LiveNames };

/** Split a line like a shell would: spaces separate words, quotes and backslashes group them. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let quote: '"' | "'" | undefined;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      any = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      any = true;
    } else if (/\s/.test(ch)) {
      if (cur || any) words.push(cur);
      cur = "";
      any = false;
    } else cur += ch;
  }
  if (quote) throw new Error(`unterminated ${quote} quote`);
  if (cur || any) words.push(cur);
  return words;
}

/** The commands a line may start with (from the program), with their subcommands. */
export interface ShellCommand {
  readonly name: string;
  readonly subcommands: readonly string[];
}

/** Host commands and the shell itself are not for a line of the shell. */
const NOT_IN_SHELL = new Set(["shell", "setup", "sandbox", "completion", "__complete"]);

/** The program's commands as the shell offers them (its own words: help, exit, quit). */
export function shellCommands(
  commands: readonly { name(): string; commands: readonly { name(): string }[] }[],
): ShellCommand[] {
  return [
    ...commands
      .filter((c) => !NOT_IN_SHELL.has(c.name()))
      .map((c) => ({ name: c.name(), subcommands: c.commands.map((sub) => sub.name()) })),
    ...["help", "exit", "quit"].map((name) => ({ name, subcommands: [] })),
  ];
}

/** Commands whose next word is a server selector. */
const SERVER_OPS = new Set(["drain", "maint", "ready", "weight", "disable", "enable", "maxconn"]);
/** Command and subcommand whose next word is a server selector. */
const SERVER_SUB_OPS = new Set(["health", "agent", "sessions", "server"]);
const BACKEND_OPS = new Set(["stat", "servers", "sessions"]);

const NO_NAMES: LiveNames = { servers: [], backends: [], tables: [] };

/** Completion candidates for the last word of `line` (readline's completer answer). */
export function complete(
  line: string,
  names: LiveNames,
  commands: readonly ShellCommand[] = [],
): [string[], string] {
  const words = line.split(/\s+/);
  const last = words.at(-1) ?? "";
  const first = words[0]!;
  const subs = commands.find((c) => c.name === first)?.subcommands ?? [];
  const selector = [...names.servers, ...names.backends.map((b) => `${b}/*`)];
  let pool: readonly string[];
  if (words.length <= 1) pool = commands.map((c) => c.name);
  else if (words.length === 2 && subs.length > 0)
    pool = [...subs, ...(BACKEND_OPS.has(first) ? [...names.backends, ...names.servers] : [])];
  else if (SERVER_OPS.has(first)) pool = selector;
  else if (SERVER_SUB_OPS.has(first) && words.length === 3) pool = selector;
  else if (BACKEND_OPS.has(first)) pool = [...names.backends, ...names.servers];
  else if (first === "table") pool = names.tables;
  else pool = [];
  return [pool.filter((p) => p.startsWith(last)), last];
}

/** Names older than this are read again on the next Tab (a double Tab reads them once). */
export const NAMES_MAX_AGE_MS = 5_000;
/** The longest a Tab waits for fresh names before it completes from the ones it has. */
export const TAB_WAIT_MS = 1_000;

export interface NameCacheOptions {
  /** Read the names over a connection of its own, closed before it resolves. */
  readonly read: () => Promise<LiveNames>;
  /** One line for the operator, above the prompt. */
  readonly notice: (text: string) => void;
  readonly maxAgeMs?: number;
  readonly now?: () => number;
}

/**
 * The names Tab completes, read on demand over a short connection. An idle shell therefore holds
 * no runtime API session: HAProxy accepts 10 at once by default (`stats maxconn`, shared by every
 * `stats socket`), and idle shells holding them would lock operators out in an incident. When
 * HAProxy stops answering the shell says so once, and once more when it answers again.
 */
export class NameCache {
  private current: LiveNames = NO_NAMES;
  private triedAt: number | undefined;
  private inFlight: Promise<void> | undefined;
  private reachable: boolean | undefined;
  private readonly now: () => number;
  private readonly maxAgeMs: number;

  constructor(private readonly opts: NameCacheOptions) {
    this.now = opts.now ?? Date.now;
    this.maxAgeMs = opts.maxAgeMs ?? NAMES_MAX_AGE_MS;
  }

  get names(): LiveNames {
    return this.current;
  }

  /** True when the next Tab should read the names again. */
  stale(): boolean {
    return this.triedAt === undefined || this.now() - this.triedAt >= this.maxAgeMs;
  }

  /** A command ran: what it changed (a server added, a reload) shows on the next Tab. */
  invalidate(): void {
    this.triedAt = undefined;
  }

  /** Read the names again; one read at a time, and it never throws. */
  refresh(): Promise<void> {
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Resolves when no read is under way (its connection is closed). */
  settled(): Promise<void> {
    return this.inFlight ?? Promise.resolve();
  }

  private async read(): Promise<void> {
    try {
      this.current = await this.opts.read();
      this.triedAt = this.now();
      if (this.reachable === false) this.opts.notice("hapops: HAProxy answers again\n");
      this.reachable = true;
    } catch (e) {
      // A failure counts as a read, so a shell left open on a dead HAProxy tries again only
      // when Tab is pressed after the names' age, and says it once, not on every try.
      this.triedAt = this.now();
      if (this.reachable !== false)
        this.opts.notice(
          `hapops: cannot read names for completion: ${(e as Error).message}; Tab completes from what it has and tries again later\n`,
        );
      this.reachable = false;
    }
  }
}

export interface ShellOptions {
  readonly settings: Settings;
  /** Run one hapops command (argv without "hapops"); returns its exit code. */
  readonly execute: (argv: string[]) => Promise<number>;
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  readonly interactive: boolean;
  readonly err: (text: string) => void;
  /** Where history is kept between runs (undefined: in memory only). */
  readonly historyFile: string | undefined;
  /** What Tab offers as the first words of a line (shellCommands of the program). */
  readonly commands?: readonly ShellCommand[];
}

/**
 * The operator's shell. Each line runs as a hapops command, so every operation is validated,
 * policy-checked and audited exactly as on the command line. It holds no runtime API session
 * between commands: Tab completes from names read over a short connection (see NameCache), and
 * never while a command runs, so a shell holds at most what its command holds (2 for a change).
 */
export async function runShell(opts: ShellOptions): Promise<number> {
  const ui: { rl?: Interface; completing?: boolean; held: string[] } = { held: [] };
  /** Print a notice above the prompt without disturbing what the operator is typing. */
  const notice = (text: string) => {
    const rl = ui.rl;
    if (ui.completing) ui.held.push(text);
    else if (rl && opts.interactive) {
      cursorTo(opts.output, 0);
      clearLine(opts.output, 0);
      opts.err(text);
      rl.prompt(true);
    } else opts.err(text);
  };
  const cache = new NameCache({ read: () => readNames(opts.settings), notice });
  let busy = false;

  const completer = (
    line: string,
    callback: (err: null, result: [string[], string]) => void,
  ): void => {
    const answer = () => {
      ui.completing = false;
      callback(null, complete(line, cache.names, opts.commands));
      for (const text of ui.held.splice(0)) notice(text);
    };
    // A running command has its own connections; its names wait for the next Tab.
    if (busy || !cache.stale()) return answer();
    ui.completing = true;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, TAB_WAIT_MS);
      timer.unref();
    });
    void Promise.race([cache.refresh(), waited]).then(() => {
      clearTimeout(timer);
      answer();
    });
  };

  // Read the names once up front, so the first Tab is instant and a dead socket is said at once.
  if (opts.interactive) await cache.refresh();
  let history: string[] = [];
  if (opts.historyFile)
    try {
      history = readFileSync(opts.historyFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .reverse()
        .slice(0, 500);
    } catch {
      history = [];
    }
  const rl = createInterface({
    input: opts.input,
    output: opts.output,
    terminal: opts.interactive,
    ...(opts.interactive ? { completer, history, historySize: 500, prompt: "hapops> " } : {}),
  });
  let worst = 0;
  ui.rl = rl;
  if (opts.interactive)
    // The terminal is in raw mode, so Ctrl-C reaches readline, not the process. At the prompt it
    // drops what was typed and prompts again, as bash does; during a command (a drain --wait, a
    // ramp) it is that command's Ctrl-C.
    rl.on("SIGINT", () => {
      if (busy) {
        if (process.listenerCount("SIGINT") > 0) process.emit("SIGINT", "SIGINT");
        return;
      }
      opts.output.write("^C\n");
      rl.write(null, { ctrl: true, name: "e" });
      rl.write(null, { ctrl: true, name: "u" });
      rl.prompt();
    });
  if (opts.interactive) {
    opts.err(
      `hapops shell on ${opts.settings.targetText}: named operations, raw "<command>", Tab completes, Ctrl-D quits\n`,
    );
    rl.prompt();
  }
  for await (const line of rl) {
    const text = line.trim();
    if (text === "exit" || text === "quit") break;
    if (text.length > 0 && !text.startsWith("#")) {
      let argv: string[] | undefined;
      try {
        argv = splitWords(text);
      } catch (e) {
        opts.err(`hapops: ${(e as Error).message}\n`);
        worst = worst || 2;
      }
      if (argv && argv[0] === "shell") opts.err("hapops: already in the shell\n");
      else if (argv) {
        busy = true;
        let code: number;
        try {
          // A names read still under way closes first: never more connections than a command.
          await cache.settled();
          code = await opts.execute(argv);
        } finally {
          busy = false;
          cache.invalidate();
        }
        if (code !== 0) {
          worst = worst || code;
          if (opts.interactive) opts.err(`(exit ${code})\n`);
        }
      }
    }
    if (opts.interactive) rl.prompt();
  }
  rl.close();
  if (opts.historyFile && opts.interactive) {
    try {
      mkdirSync(dirname(opts.historyFile), { recursive: true, mode: 0o700 });
      const hist = (rl as unknown as { history?: string[] }).history ?? [];
      writeFileSync(opts.historyFile, [...hist].reverse().join("\n") + "\n", { mode: 0o600 });
    } catch {
      // history is a convenience; never fail the shell over it
    }
  }
  await cache.settled();
  return worst;
}

export function defaultHistoryFile(env: NodeJS.ProcessEnv, sudo: boolean): string | undefined {
  if (sudo) return undefined;
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(state, "hapops", "shell_history");
}
