import { showStat, type RuntimeCommand } from "../commands/builders.js";
import { levelAtLeast, type Level } from "../commands/levels.js";
import type { Settings } from "../config/settings.js";
import { HaproxyError, LevelError, VerificationError } from "../errors.js";
import type { Mismatch, Plan, ServerFacts } from "../ops/plan.js";
import { verifyPlan } from "../ops/plan.js";
import { StatParser, toStatEntry } from "../parse/stat.js";
import type { RuntimeSession } from "../runtime/session.js";
import { openSession } from "./connect.js";
import { fetchServers } from "./state.js";

/**
 * Two connections for a change: `read` is lowered to user level and does every read (planning,
 * verification, polling), `write` keeps the socket's level and only ever sends the plan's
 * commands. A bug in a read path can then never change anything.
 */
export interface ChangeSessions {
  readonly read: RuntimeSession;
  readonly write: RuntimeSession;
  close(): Promise<void>;
}

export async function openChangeSessions(
  settings: Settings,
  purpose: string,
  readLevel: "user" | "operator" = "user",
): Promise<ChangeSessions> {
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
  void read.lowerTo(readLevel).catch(() => undefined);
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

/** Live facts for planning: `show servers state` joined with `show stat` (scur). */
export async function readFacts(read: RuntimeSession, backend?: string): Promise<ServerFacts[]> {
  const servers = await fetchServers(read, backend);
  return servers.map((s) => ({
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port,
    operational: s.operational,
    admin: s.admin,
    adminFlags: s.adminFlags,
    weight: s.weight,
    initialWeight: s.initialWeight,
    sessions: s.stat?.scur,
  }));
}

/** The one backend a plan touches, if it touches one: reads can then be scoped to it. */
export function planScope(plan: Plan): string | undefined {
  const backends = new Set(plan.servers.map((s) => s.backend));
  return backends.size === 1 ? [...backends][0] : undefined;
}

export interface Refusal {
  readonly command: string;
  readonly message: string;
}

export interface ApplyResult {
  /** Exactly the lines sent, in order. */
  readonly sent: readonly string[];
  readonly refusals: readonly Refusal[];
  readonly mismatches: readonly Mismatch[];
  /** The planned servers as read back after the change. */
  readonly after: readonly ServerFacts[];
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

export function hintFor(message: string): string {
  for (const [re, hint] of REFUSAL_HINTS) if (re.test(message)) return hint;
  return "see `set server` in HAProxy's management.txt (section 9.3)";
}

/**
 * Send every command of the plan in one pipelined write, then read HAProxy's state back and
 * compare it with the plan. HAProxy's refusals are collected, not fatal, so one bad server does
 * not hide what happened to the others.
 */
export async function applyPlan(sessions: ChangeSessions, plan: Plan): Promise<ApplyResult> {
  const commands: RuntimeCommand[] = plan.servers.flatMap((s) => [...s.commands]);
  const outcomes = await Promise.allSettled(commands.map((c) => sessions.write.run(c)));
  const refusals: Refusal[] = [];
  outcomes.forEach((o, i) => {
    if (o.status === "fulfilled") return;
    if (o.reason instanceof HaproxyError)
      refusals.push({ command: commands[i]!.line, message: o.reason.haproxyMessage });
    else throw o.reason;
  });
  const facts = await readFacts(sessions.read, planScope(plan));
  const wanted = new Set(plan.servers.map((s) => `${s.backend}/${s.server}`));
  return {
    sent: commands.map((c) => c.line),
    refusals,
    mismatches: verifyPlan(plan, facts),
    after: facts.filter((f) => wanted.has(`${f.backend}/${f.server}`)),
  };
}

/** Turn refusals and mismatches into the error the operator sees (exit 1). */
export function resultError(
  plan: Plan,
  result: ApplyResult,
): HaproxyError | VerificationError | undefined {
  const first = result.refusals[0];
  if (first) {
    const more =
      result.refusals.length > 1 ? ` (and ${result.refusals.length - 1} more refusals)` : "";
    return new HaproxyError(
      first.command,
      first.message,
      `HAProxy refused "${first.command}": ${first.message}${more} — ${hintFor(first.message)}`,
    );
  }
  if (result.mismatches.length > 0) {
    const diff = result.mismatches
      .map(
        (m) =>
          `${m.backend}/${m.server} ${m.field}: expected ${m.expected}, HAProxy says ${m.actual}`,
      )
      .join("; ");
    return new VerificationError(`${plan.op} ${plan.selector} did not take effect: ${diff}`, {
      mismatches: result.mismatches,
    });
  }
  return undefined;
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
