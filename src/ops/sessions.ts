import { showSess, shutdownSessionsServer, type RuntimeCommand } from "../commands/builders.js";
import { validateName } from "../commands/validate.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Verification } from "../engine/operation.js";
import { fetchServers } from "../engine/state.js";
import type { Clock } from "../engine/wait.js";
import { GuardError, HaproxyError, UsageError } from "../errors.js";
import type { Admin } from "../parse/servers-state.js";
import { SessParser, type SessStream } from "../parse/sess.js";
import type { RuntimeSession } from "../runtime/session.js";
import { formatDuration } from "../util/duration.js";
import { parseSelector, selectServers, type Selector } from "./selector.js";

/**
 * `hapops sessions [<sel>]` (what is connected) and `hapops sessions kill <sel>` (`shutdown
 * sessions server`: cut every session of a server now, as a drain that timed out leaves them).
 * Planning is pure and tested on in-memory state; the engine runs the kill like every change.
 */

/** HAProxy's answer to a proxy name it does not know (`show errors`, `show stat`). */
export function isNoSuchProxy(e: unknown): boolean {
  return e instanceof HaproxyError && /^No such proxy/.test(e.haproxyMessage);
}

/** The streams of the stats socket itself: the CLI's frontend is named GLOBAL. */
export const CLI_FRONTEND = "GLOBAL";

/**
 * `backend/server`, `backend/*`, `* /server`, `* /*` (without the space) as for server changes,
 * and a bare backend name (its sessions, server or not yet).
 */
export function parseSessionSelector(text: string): Selector {
  if (!text.includes("/")) {
    const backend = validateName("backend name", text);
    return { kind: "name", backend, text: `${backend}/*` };
  }
  return parseSelector(text);
}

/**
 * Whether a stream belongs to what the selector names: a `*` backend still needs a backend,
 * a named server needs that server; `backend/*` takes the backend's streams that have no
 * server yet (queued, connecting) too.
 */
export function streamMatches(sel: Selector | undefined, s: SessStream): boolean {
  if (sel === undefined) return s.frontend !== CLI_FRONTEND;
  if (s.backend === undefined) return false;
  if (sel.kind === "list") return s.server !== undefined && sel.names.includes(name(s));
  if (sel.kind !== "name") return false;
  if (sel.backend !== undefined && sel.backend !== s.backend) return false;
  return sel.server === undefined || sel.server === s.server;
}

function name(s: { backend?: string | undefined; server?: string | undefined }): string {
  return `${s.backend}/${s.server}`;
}

/**
 * The `limit` oldest streams among those offered, holding at most twice that many at a time:
 * `show sess` of a busy process can list hundreds of thousands.
 */
export class OldestStreams {
  private kept: SessStream[] = [];
  /** Every stream offered. */
  count = 0;

  constructor(private readonly limit: number) {}

  push(s: SessStream): void {
    this.count++;
    this.kept.push(s);
    if (this.kept.length >= this.limit * 2) this.trim();
  }

  private trim(): void {
    // Oldest first; an age HAProxy printed as "?" goes last.
    this.kept.sort((a, b) => (b.ageSec ?? -1) - (a.ageSec ?? -1));
    this.kept.length = Math.min(this.kept.length, this.limit);
  }

  /** The kept streams, oldest first. */
  result(): SessStream[] {
    this.trim();
    return this.kept;
  }
}

// ---- sessions kill -----------------------------------------------------------------------

export interface KillRequest {
  readonly selector: Selector;
  /** --yes: cut live sessions without asking. */
  readonly yes: boolean;
  /** How a kill of live sessions without --yes is refused (see TableChange.asking). */
  readonly asking: "dry-run" | "terminal" | "none";
  readonly target: string;
  readonly clock: Clock;
  /** How long the read-back waits for HAProxy to close the sessions it was told to cut. */
  readonly settleMs: number;
  readonly pollMs: number;
}

/** A server the selector picked, with what is connected to it now. */
export interface KillServer {
  readonly backend: string;
  readonly server: string;
  readonly admin: Admin;
  /** `scur` from `show stat`, when known. */
  readonly scur: number | undefined;
  /**
   * Its streams in `show sess`, by id and client (an id is a pointer, which a new stream can
   * reuse once one ended); at most MAX_TRACKED over the whole plan.
   */
  readonly streams: readonly string[];
  /** How many of its streams `show sess` listed (all of them, tracked or not). */
  readonly streamCount: number;
}

export interface KillState {
  readonly servers: readonly KillServer[];
}

export interface KillBody {
  readonly servers: readonly (KillServer & { readonly sessions: number })[];
}

/** Stream ids kept for the read-back; beyond this the read-back follows the first ones. */
export const MAX_TRACKED = 100_000;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The sessions a server has by what HAProxy says: its streams, or `scur` if that is more. */
function liveSessions(s: KillServer): number {
  return Math.max(s.streamCount, s.scur ?? 0);
}

/** The plan of `sessions kill` (pure): a line per server with sessions, behind one guard. */
export function planKill(req: KillRequest, state: KillState): Plan<KillBody> {
  const servers = state.servers.map((s) => ({ ...s, sessions: liveSessions(s) }));
  const cut = servers.filter((s) => s.sessions > 0);
  const total = cut.reduce((n, s) => n + s.sessions, 0);
  const commands: RuntimeCommand[] = cut.map((s) => shutdownSessionsServer(s.backend, s.server));
  const guards: Guard[] = [];
  if (total > 0) {
    const where = cut.length === 1 ? name(cut[0]!) : `${cut.length} servers`;
    const why =
      req.asking === "dry-run"
        ? " (a dry run does not ask)"
        : req.asking === "terminal"
          ? " (not confirmed)"
          : " (no terminal to ask on)";
    const reason = `cutting ${plural(total, "live session")} on ${where} needs --yes`;
    guards.push({
      name: "live-sessions",
      ok: req.yes,
      forced: false,
      reason: req.yes ? `--yes: cut ${plural(total, "live session")} on ${where}` : reason,
      ...(req.yes
        ? {}
        : {
            error: new GuardError(`${reason}${why}; nothing was sent`, {
              servers: cut.map((s) => ({ server: name(s), sessions: s.sessions })),
            }),
          }),
      confirm: `cut ${plural(total, "live session")} on ${where} now? The clients see their connections close. [y/N] `,
      detail: { sessions: total },
    });
  }
  const width = Math.max(...servers.map((s) => name(s).length));
  const describe = servers.map((s) => {
    const label = name(s).padEnd(width);
    if (s.sessions === 0) return `${label}  no sessions  (already; nothing sent)`;
    const open =
      s.admin === "READY"
        ? `  (READY: new connections keep arriving; drain or maint it first to keep it empty)`
        : "";
    return `${label}  cut ${plural(s.sessions, "session")}${open}`;
  });
  return {
    version: 1,
    op: "sessions kill",
    target: req.target,
    level: "admin",
    mutates: true,
    scope: { servers: servers.map(name) },
    steps: commands.length > 0 ? [{ kind: "send", op: "sessions kill", commands }] : [],
    guards,
    describe,
    json: {
      selector: req.selector.text,
      servers: servers.map((s) => ({
        backend: s.backend,
        server: s.server,
        admin: s.admin,
        sessions: s.sessions,
        commands: commands.filter((c) => c.line.endsWith(` ${name(s)}`)).map((c) => c.line),
      })),
    },
    report: { selector: req.selector.text },
    detail: { selector: req.selector.text, sessions: total },
    body: { servers },
  };
}

/**
 * Streams of the given servers in `show sess`, read line by line: only those servers' streams
 * are kept (as `<id> <client>`) and counted, whatever the size of the answer.
 */
export async function streamsOf(
  session: RuntimeSession,
  servers: readonly { backend: string; server: string }[],
  max = MAX_TRACKED,
): Promise<Map<string, { ids: string[]; count: number }>> {
  const out = new Map<string, { ids: string[]; count: number }>(
    servers.map((s) => [name(s), { ids: [], count: 0 }]),
  );
  let tracked = 0;
  const parser = new SessParser((s) => {
    if (s.backend === undefined || s.server === undefined) return;
    const entry = out.get(name(s));
    if (!entry) return;
    entry.count++;
    if (tracked < max) {
      entry.ids.push(`${s.id} ${s.client?.address ?? "-"}:${s.client?.port ?? "-"}`);
      tracked++;
    }
  });
  await session.stream(showSess(), (l) => parser.line(l));
  return out;
}

async function readKill(req: KillRequest, read: RuntimeSession): Promise<KillState> {
  const backend = req.selector.kind === "name" ? req.selector.backend : undefined;
  const picked = selectServers(req.selector, await fetchServers(read, backend));
  const streams = await streamsOf(read, picked);
  return {
    servers: picked.map((s) => {
      const found = streams.get(name(s));
      return {
        backend: s.backend,
        server: s.server,
        admin: s.admin,
        scur: s.stat?.scur,
        streams: found?.ids ?? [],
        streamCount: found?.count ?? 0,
      };
    }),
  };
}

/**
 * Read back until the sessions that were cut are gone from `show sess` (HAProxy closes them
 * at once: measured 0 to 2 ms on 2.6 to 3.4; the wait is bounded by `settleMs`), then say
 * what the servers have now: a READY server takes new connections meanwhile, which is not a
 * failure of the cut.
 */
async function verifyKill(
  req: KillRequest,
  sessions: ChangeSessions,
  plan: Plan<KillBody>,
): Promise<Verification> {
  const cut = plan.body.servers.filter((s) => s.sessions > 0);
  const start = req.clock.now();
  let left = new Map<string, number>();
  for (;;) {
    const now = await streamsOf(sessions.read, cut);
    left = new Map(
      cut.map((s) => {
        const before = new Set(s.streams);
        return [name(s), (now.get(name(s))?.ids ?? []).filter((id) => before.has(id)).length];
      }),
    );
    if ([...left.values()].every((n) => n === 0)) break;
    if (req.clock.now() - start >= req.settleMs) break;
    await req.clock.sleep(req.pollMs);
  }
  const after = await fetchServers(sessions.read);
  const byName = new Map(after.map((s) => [name(s), s]));
  const waited = req.clock.now() - start;
  const mismatches = cut.flatMap((s) => {
    const n = left.get(name(s)) ?? 0;
    return n > 0
      ? [
          `${name(s)}: ${n} of the ${plural(s.streams.length, "session")} cut are still there after ${formatDuration(waited)}`,
        ]
      : [];
  });
  const fresh = cut.flatMap((s) => {
    const scur = byName.get(name(s))?.stat?.scur ?? 0;
    return scur > 0 ? [`${name(s)} has ${plural(scur, "new session")} since`] : [];
  });
  const total = cut.reduce((n, s) => n + s.sessions, 0);
  return {
    mismatches,
    summary: [
      `verified: the ${plural(total, "session")} cut ${total === 1 ? "is" : "are"} gone (show sess, read back)`,
      ...(fresh.length > 0
        ? [
            `${fresh.join("; ")}: ${fresh.length === 1 ? "it takes" : "they take"} new connections (drain or maint first to keep a server empty)`,
          ]
        : []),
    ],
    json: {
      servers: cut.map((s) => ({
        backend: s.backend,
        server: s.server,
        cut: s.sessions,
        left: left.get(name(s)) ?? 0,
        sessionsNow: byName.get(name(s))?.stat?.scur ?? null,
      })),
    },
  };
}

/** `sessions kill` as an engine operation (reads at operator level: `show sess` needs it). */
export function killOperation(req: KillRequest): Operation<KillState, KillBody> {
  if (req.selector.kind === "addr")
    throw new UsageError("sessions kill takes backend/server (or backend/*, */server), not --addr");
  return {
    op: "sessions kill",
    readLevel: "operator",
    read: (sessions) => readKill(req, sessions.read),
    plan: (state) => planKill(req, state),
    verify: (sessions, plan) => verifyKill(req, sessions, plan),
  };
}
