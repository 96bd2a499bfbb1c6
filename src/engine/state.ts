import { showBackend, showServersState, showStat } from "../commands/builders.js";
import { HaproxyError, UsageError } from "../errors.js";
import { StatParser, toStatEntry, type StatEntry } from "../parse/stat.js";
import { parseServersState, type ServerState } from "../parse/servers-state.js";
import type { RuntimeSession } from "../runtime/session.js";
import { suggestion } from "../util/suggest.js";

/** A server as operators see it: `show servers state` joined with its `show stat` row. */
export interface ServerView extends ServerState {
  readonly stat: StatEntry | undefined;
}

const NO_SUCH_PROXY = /^(No such proxy|Can't find backend|No such backend)/;

/**
 * Turn HAProxy's "no such backend" into a usage error that names the closest existing backends,
 * since the operator mistyped a name rather than HAProxy refusing a change.
 */
export async function rethrowUnknownBackend(
  session: RuntimeSession,
  backend: string,
  e: unknown,
): Promise<never> {
  if (e instanceof HaproxyError && NO_SUCH_PROXY.test(e.haproxyMessage)) {
    const names = (await session.run(showBackend())).filter((l) => !l.startsWith("#"));
    throw new UsageError(`no backend named ${backend}; ${suggestion(backend, names)}`, {
      backend,
    });
  }
  throw e;
}

/** Read every server's state and counters in one round trip. */
export async function fetchServers(
  session: RuntimeSession,
  backend?: string,
): Promise<ServerView[]> {
  const stat = new StatParser();
  let stateLines: string[];
  try {
    [stateLines] = await Promise.all([
      session.run(showServersState(backend)),
      session.stream(showStat(backend), (l) => stat.line(l)),
    ]);
  } catch (e) {
    if (backend === undefined) throw e;
    return rethrowUnknownBackend(session, backend, e);
  }
  const byName = new Map<string, StatEntry>();
  for (const row of stat.rows) {
    const entry = toStatEntry(row);
    if (entry.kind === "server") byName.set(`${entry.proxy}/${entry.name}`, entry);
  }
  return parseServersState(stateLines).map((s) => ({
    ...s,
    stat: byName.get(`${s.backend}/${s.server}`),
  }));
}
