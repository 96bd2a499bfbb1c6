import { showStat } from "../commands/builders.js";
import { levelAtLeast, type Level } from "../commands/levels.js";
import type { Settings } from "../config/settings.js";
import { LevelError } from "../errors.js";
import { StatParser, toStatEntry } from "../parse/stat.js";
import type { RuntimeSession } from "../runtime/session.js";
import { openSession } from "./connect.js";

/**
 * Two connections for a change: `read` is lowered to user level and does every read (planning,
 * verification, polling), `write` keeps the socket's level and only ever sends the plan's
 * commands. A bug in a read path can then never change anything. An operation that reads
 * nothing back (raw) asks for one session, lowered to what its line needs: then both are it.
 */
export interface ChangeSessions {
  readonly read: RuntimeSession;
  readonly write: RuntimeSession;
  close(): Promise<void>;
}

export async function openChangeSessions(
  settings: Settings,
  purpose: string,
  readLevel: Level = "user",
  oneSession?: Level,
): Promise<ChangeSessions> {
  if (oneSession !== undefined) {
    const session = await openSession(settings, purpose);
    if (oneSession !== "admin") void session.lowerTo(oneSession).catch(() => undefined);
    return { read: session, write: session, close: () => session.close() };
  }
  const opened = await Promise.allSettled([
    openSession(settings, purpose),
    openSession(settings, purpose),
  ]);
  const failed = opened.find((o) => o.status === "rejected");
  if (failed) {
    for (const o of opened) if (o.status === "fulfilled") await o.value.close();
    throw failed.reason;
  }
  const [read, write] = opened.map((o) => (o as PromiseFulfilledResult<RuntimeSession>).value) as [
    RuntimeSession,
    RuntimeSession,
  ];
  if (readLevel !== "admin") void read.lowerTo(readLevel).catch(() => undefined);
  return {
    read,
    write,
    close: async () => {
      await Promise.all([read.close(), write.close()]);
    },
  };
}

/**
 * Say before trying when the socket's level is below what the plan needs (from `show cli level`
 * in the handshake). Returns the level, or undefined when HAProxy did not say.
 */
export async function checkWriteLevel(
  write: RuntimeSession,
  need: Level,
  target: string,
  opName: string,
): Promise<{ level: Level | undefined; error: LevelError | undefined }> {
  const level = await write.level();
  if (level === undefined || levelAtLeast(level, need)) return { level, error: undefined };
  return {
    level,
    error: new LevelError(
      `socket ${target} is at level '${level}'; '${opName}' needs '${need}' — use a socket whose \`stats socket\` line has \`level ${need}\``,
      { target, level, needs: need },
    ),
  };
}

/** Hints for HAProxy's refusals of `set server`, keyed by the start of its message. */
const REFUSAL_HINTS: readonly (readonly [RegExp, string])[] = [
  [
    /^No such (server|backend)/,
    "the server is gone since the plan was made (a reload?); run `hapops servers` and try again",
  ],
  [
    /^Backend is using a static LB algorithm/,
    "this backend's balance algorithm only takes weights 0% and 100%; use 0 or its configured weight, or maint/ready",
  ],
  [/weight can only be between/, "weights are 0-256"],
];

export function hintFor(message: string, words = "set server"): string {
  for (const [re, hint] of REFUSAL_HINTS) if (re.test(message)) return hint;
  return `see \`${words}\` in HAProxy's management.txt (section 9.3)`;
}

/** Current sessions (`scur`) of the given servers, one pipelined `show stat` per backend. */
export async function readSessions(
  read: RuntimeSession,
  servers: readonly { backend: string; server: string }[],
): Promise<Map<string, number>> {
  const backends = [...new Set(servers.map((s) => s.backend))];
  const wanted = new Set(servers.map((s) => `${s.backend}/${s.server}`));
  const out = new Map<string, number>();
  const parser = new StatParser((row) => {
    const e = toStatEntry(row);
    const key = `${e.proxy}/${e.name}`;
    if (e.kind === "server" && wanted.has(key)) out.set(key, e.scur);
  });
  await Promise.all(backends.map((b) => read.stream(showStat(b), (l) => parser.line(l))));
  return out;
}
