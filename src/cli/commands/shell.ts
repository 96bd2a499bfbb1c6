import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { clearLine, createInterface, cursorTo, type Interface } from "node:readline";
import {
  setTimeoutCli,
  showBackend,
  showServersState,
  showTables,
} from "../../commands/builders.js";
import type { Settings } from "../../config/settings.js";
import { openSession } from "../../engine/connect.js";
import { parseServersState } from "../../parse/servers-state.js";
import { parseTableList } from "../../parse/table.js";
import type { RuntimeSession } from "../../runtime/session.js";

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

export const SHELL_COMMANDS = [
  "info",
  "stat",
  "servers",
  "certs",
  "table",
  "map",
  "acl",
  "drain",
  "maint",
  "ready",
  "weight",
  "raw",
  "rotate-cert",
  "audit",
  "help",
  "exit",
  "quit",
];
const SERVER_OPS = new Set(["drain", "maint", "ready", "weight", "disable", "enable"]);
const BACKEND_OPS = new Set(["stat", "servers"]);

interface LiveNames {
  servers: string[];
  backends: string[];
  tables: string[];
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
}

/**
 * The operator's shell: a long-lived runtime session (prompt mode, `set timeout cli` raised, so
 * the default idle cut-off does not bite) that feeds completion with live backend, server and
 * table names, and reconnects when HAProxy drops it. Each line runs as a hapops command, so
 * every operation is still validated, policy-checked and audited exactly as on the command line.
 */
export async function runShell(opts: ShellOptions): Promise<number> {
  const names: LiveNames = { servers: [], backends: [], tables: [] };
  let session: RuntimeSession | undefined;
  let connectedOnce = false;

  const connectLive = async (announce: boolean) => {
    try {
      session = await openSession(opts.settings, "hapops shell");
      await session.run(setTimeoutCli(3600));
      void session.lowerTo("user").catch(() => undefined);
      if (announce && connectedOnce) notice(`hapops: reconnected to ${opts.settings.targetText}\n`);
      connectedOnce = true;
    } catch (e) {
      session = undefined;
      opts.err(`hapops: no live session to ${opts.settings.targetText}: ${(e as Error).message}\n`);
    }
  };

  /** Print a notice above the prompt without disturbing what the operator is typing. */
  const ui: { rl?: Interface } = {};
  const notice = (text: string) => {
    const rl = ui.rl;
    if (rl && opts.interactive) {
      cursorTo(opts.output, 0);
      clearLine(opts.output, 0);
      opts.err(text);
      rl.prompt(true);
    } else opts.err(text);
  };

  /** Refresh the names for completion; a dropped session is reopened and reported. */
  const refresh = async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!session) {
        await connectLive(true);
      }
      if (!session) return;
      try {
        const [state, backends, tables] = await session.pipeline([
          showServersState(),
          showBackend(),
          showTables(),
        ]);
        const servers = parseServersState(state!);
        names.servers = servers.map((s) => `${s.backend}/${s.server}`);
        names.backends = backends!.filter((l) => !l.startsWith("#"));
        names.tables = parseTableList(tables!).map((t) => t.name);
        return;
      } catch {
        notice("hapops: HAProxy closed the shell's session; reconnecting\n");
        await session.close().catch(() => undefined);
        session = undefined;
      }
    }
  };

  // Completion reads names kept fresh in the background, so Tab never waits on the network.
  const completer = (line: string): [string[], string] => {
    const words = line.split(/\s+/);
    const last = words[words.length - 1] ?? "";
    let pool: string[];
    if (words.length <= 1) pool = SHELL_COMMANDS;
    else if (SERVER_OPS.has(words[0]!))
      pool = [...names.servers, ...names.backends.map((b) => `${b}/*`)];
    else if (BACKEND_OPS.has(words[0]!)) pool = [...names.backends, ...names.servers];
    else if (words[0] === "table" && words.length === 2) pool = ["show", "set", "clear"];
    else if (words[0] === "table") pool = names.tables;
    else pool = [];
    return [pool.filter((p) => p.startsWith(last)), last];
  };

  await refresh();
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
  const timer = opts.interactive ? setInterval(() => void refresh(), 5000) : undefined;
  timer?.unref();
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
        const code = await opts.execute(argv);
        if (code !== 0) {
          worst = worst || code;
          if (opts.interactive) opts.err(`(exit ${code})\n`);
        }
      }
    }
    if (opts.interactive) rl.prompt();
  }
  if (timer) clearInterval(timer);
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
  await session?.close();
  return worst;
}

export function defaultHistoryFile(env: NodeJS.ProcessEnv, sudo: boolean): string | undefined {
  if (sudo) return undefined;
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(state, "hapops", "shell_history");
}
