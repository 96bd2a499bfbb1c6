import {
  setMaxconnFrontend,
  setMaxconnGlobal,
  setMaxconnServer,
  type RuntimeCommand,
} from "../commands/builders.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Step, Verification } from "../engine/operation.js";
import {
  readFrontendLimits,
  readGlobalLimits,
  type FrontendLimits,
  type FrontendView,
  type GlobalLimits,
} from "../engine/reads.js";
import { fetchServers, type ServerView } from "../engine/state.js";
import { GuardError, UsageError, ValidationError, VerificationError } from "../errors.js";
import type { HaproxyVersion } from "../parse/info.js";
import { suggestion } from "../util/suggest.js";
import { validateName } from "../commands/validate.js";
import {
  parseAddrSelector,
  parseSelector,
  selectServers,
  selectorBackend,
  type Selector,
} from "./selector.js";
import { plainPaint, type Paint } from "./servers.js";

/**
 * `hapops maxconn <sel> <N>`, `hapops maxconn frontend <name> <N>`, `hapops maxconn global <N>`:
 * `set maxconn server|frontend|global` (management.txt 9.3), read back from `show stat` (`slim`
 * of the server or FRONTEND row) or `show info` (`Maxconn`). Policy operations: "maxconn",
 * "maxconn frontend", "maxconn global". Measured on 2.6, 2.8, 3.0, 3.2 and 3.4:
 * - a server's maxconn 0 is no limit, at runtime as in the config (`slim` empty, traffic flows);
 * - a frontend's maxconn 0 accepts no new connection at all (`slim` 0, clients wait);
 * - `set maxconn global` above `Hard_maxconn` answers "Value out of range.", and 0 restores
 *   Hard_maxconn; the stats socket still answers at any global maxconn (its listeners are not
 *   counted);
 * - `set maxconn frontend` on a frontend at its limit (a connection waiting to be accepted)
 *   deadlocks the thread and the watchdog kills HAProxy: Debian's 2.6.12-1+deb12u4, 2.8.0 and
 *   3.0.0 died, 3.2.0 and 3.4.0 did not (haproxy issue #2726, fixed in 3.1-dev9 and backported to
 *   later maintenance releases, which hapops cannot tell apart).
 */

/** Whole numbers 0 to 2^31-1 (HAProxy's int; the builders check again). */
export function parseMaxconn(text: string | undefined, what = "maxconn"): number {
  if (text === undefined) throw new UsageError(`${what} needs a number (0 to 2147483647)`);
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0x7fffffff)
    throw new ValidationError(
      `${what} ${JSON.stringify(text)} is not a whole number from 0 to 2147483647`,
    );
  return Number(text);
}

export type MaxconnRequest =
  | { readonly kind: "server"; readonly selector: Selector; readonly value: number }
  | { readonly kind: "frontend"; readonly frontend: string; readonly value: number }
  | { readonly kind: "global"; readonly value: number };

/**
 * The CLI's words: `<selector> <N>`, `--addr <ip> <N>`, `frontend <name> <N>`, `global <N>`.
 * Bad input throws here, before anything is sent.
 */
export function parseMaxconnArgs(
  what: string,
  args: readonly string[],
  addr: string | undefined,
): MaxconnRequest {
  const extra = (rest: readonly string[]) => {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest.join(" ")}`);
  };
  if (what === "frontend" || what === "global") {
    if (addr !== undefined)
      throw new UsageError(`--addr picks servers; maxconn ${what} takes none`);
    if (what === "global") {
      extra(args.slice(1));
      return { kind: "global", value: parseMaxconn(args[0], "maxconn global") };
    }
    if (args[0] === undefined)
      throw new UsageError(
        "maxconn frontend needs a frontend name and a number: maxconn frontend <name> <N>",
      );
    const frontend = validateName("frontend name", args[0]);
    extra(args.slice(2));
    return { kind: "frontend", frontend, value: parseMaxconn(args[1], "maxconn frontend") };
  }
  if (addr !== undefined) {
    extra(args);
    return { kind: "server", selector: parseAddrSelector(addr), value: parseMaxconn(what) };
  }
  const selector = parseSelector(what);
  extra(args.slice(1));
  return { kind: "server", selector, value: parseMaxconn(args[0]) };
}

export interface MaxconnChange {
  readonly request: MaxconnRequest;
  readonly target: string;
  readonly force: boolean;
  readonly paint?: Paint | undefined;
}

/** A server's limit as planning needs it. `slim` undefined: no limit. */
export interface MaxconnServerFacts {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly slim: number | undefined;
  readonly scur: number;
}

export function toMaxconnFacts(s: ServerView): MaxconnServerFacts {
  const slim = s.stat?.row["slim"];
  return {
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port,
    slim: slim === undefined || !/^\d+$/.test(slim) || slim === "0" ? undefined : Number(slim),
    scur: s.stat?.scur ?? 0,
  };
}

/** What a plan changes, one object per line, and what verification expects. */
export interface MaxconnItem {
  /** `be_app/app1`, a frontend's name, or "global". */
  readonly name: string;
  readonly before: number | undefined;
  /** undefined: no limit (a server's 0). */
  readonly after: number | undefined;
  readonly sessions: number | undefined;
  readonly commands: readonly RuntimeCommand[];
}

export interface MaxconnBody {
  readonly kind: MaxconnRequest["kind"];
  readonly op: string;
  readonly what: string;
  readonly items: readonly MaxconnItem[];
  readonly backend?: string | undefined;
}

const FRONTEND_SCOPE = "changes a frontend, which no scope names";
const GLOBAL_SCOPE = "changes the whole process";
const RELOAD_NOTE: Readonly<Record<MaxconnRequest["kind"], string>> = {
  server:
    "runtime only: a reload brings back the maxconn in haproxy.cfg (the server-state file does not keep it); put it on the server line to keep it",
  frontend:
    "runtime only: a reload brings back the frontend's maxconn in haproxy.cfg; put it in the frontend section to keep it",
  global:
    "runtime only: a reload brings back the global maxconn in haproxy.cfg; put it in the global section to keep it",
};

function limit(n: number | undefined): string {
  return n === undefined ? "no limit" : String(n);
}

function opOf(kind: MaxconnRequest["kind"]): string {
  return kind === "server" ? "maxconn" : `maxconn ${kind}`;
}

/** `set maxconn frontend` on a full frontend kills HAProxy before 3.1 (issue #2726). */
export function frontendDeadlockFixed(version: HaproxyVersion | undefined): boolean {
  return (
    version !== undefined && (version.major > 3 || (version.major === 3 && version.minor >= 1))
  );
}

function guard(name: string, ok: boolean, force: boolean, reason: string, refusal: string): Guard {
  return {
    name,
    ok,
    forced: !ok && force,
    reason,
    ...(!ok && !force
      ? {
          error: new GuardError(`${refusal}. Pass --force to do it anyway (it is recorded).`, {
            guard: name,
          }),
        }
      : {}),
  };
}

function describeItems(
  items: readonly MaxconnItem[],
  paint: Paint,
  notes: Map<string, string>,
): string[] {
  const changed = items.filter((i) => i.commands.length > 0);
  const noop = items.filter((i) => i.commands.length === 0);
  const shown = noop.length <= 5 ? noop : [];
  const width = Math.max(0, ...[...changed, ...shown].map((i) => i.name.length));
  const lines = items
    .filter((i) => i.commands.length > 0 || shown.includes(i))
    .map((i) => {
      const label = i.name.padEnd(width);
      if (i.commands.length === 0)
        return `${label}  maxconn ${limit(i.after)}  (already; nothing sent)`;
      return `${label}  maxconn ${limit(i.before)} -> ${paint.bold(limit(i.after))}${notes.get(i.name) ?? ""}`;
    });
  if (noop.length > 5)
    lines.push(
      `${noop.length} more already at maxconn ${limit(noop[0]!.after)} (nothing sent): ${noop
        .slice(0, 3)
        .map((i) => i.name)
        .join(", ")}, ...`,
    );
  return lines;
}

function basePlan(
  body: MaxconnBody,
  change: MaxconnChange,
  scope: Plan["scope"],
  guards: readonly Guard[],
  describe: readonly string[],
): Plan<MaxconnBody> {
  const commands = body.items.flatMap((i) => [...i.commands]);
  const steps: Step[] = commands.length > 0 ? [{ kind: "send", op: body.op, commands }] : [];
  return {
    version: 1,
    op: body.op,
    target: change.target,
    level: "admin",
    mutates: true,
    scope,
    steps,
    guards,
    describe,
    json: {
      [body.kind === "server" ? "selector" : body.kind]: body.what,
      items: body.items.map((i) => ({
        name: i.name,
        before: i.before ?? null,
        after: i.after ?? null,
        sessions: i.sessions ?? null,
        commands: i.commands.map((c) => c.line),
      })),
    },
    report: { [body.kind === "server" ? "selector" : body.kind]: body.what },
    body,
  };
}

/** `maxconn <sel> <N>` (pure): every selected server's limit; 0 means no limit. */
export function planMaxconnServers(
  facts: readonly MaxconnServerFacts[],
  req: Extract<MaxconnRequest, { kind: "server" }>,
  change: MaxconnChange,
): Plan<MaxconnBody> {
  const picked = selectServers(req.selector, facts);
  const after = req.value === 0 ? undefined : req.value;
  const items: MaxconnItem[] = picked.map((f) => ({
    name: `${f.backend}/${f.server}`,
    before: f.slim,
    after,
    sessions: f.scur,
    commands: f.slim === after ? [] : [setMaxconnServer(f.backend, f.server, req.value)],
  }));
  const notes = new Map<string, string>();
  for (const i of items) {
    if (i.commands.length === 0) continue;
    if (req.value === 0) notes.set(i.name, "  (0: no limit for a server)");
    else if ((i.sessions ?? 0) > req.value)
      notes.set(
        i.name,
        `  (${i.sessions} sessions now: new requests queue until it has fewer than ${req.value})`,
      );
  }
  const body: MaxconnBody = {
    kind: "server",
    op: "maxconn",
    what: req.selector.text,
    items,
    backend: selectorBackend(req.selector),
  };
  return basePlan(
    body,
    change,
    { servers: items.map((i) => i.name) },
    [],
    describeItems(items, change.paint ?? plainPaint, notes),
  );
}

/**
 * `maxconn frontend <name> <N>` (pure). Guards: maxconn 0 (it stops accepting connections), and
 * before 3.1 a change while the frontend is at its limit (the deadlock), or a limit it is already
 * at, which fills it at its next connection and leaves it stuck there until a reload.
 */
export function planMaxconnFrontend(
  state: FrontendLimits,
  req: Extract<MaxconnRequest, { kind: "frontend" }>,
  change: MaxconnChange,
): Plan<MaxconnBody> {
  const fe = state.frontends.find((f) => f.name === req.frontend);
  if (fe === undefined && state.isBackend)
    throw new UsageError(
      `${req.frontend} is a backend, not a frontend (frontends: ${state.frontends.map((f) => f.name).join(", ") || "none"}); for its servers use hapops maxconn '${req.frontend}/*' <N>`,
    );
  if (fe === undefined)
    throw new UsageError(
      `no frontend named ${req.frontend}; ${suggestion(
        req.frontend,
        state.frontends.map((f) => f.name),
      )}`,
    );
  const item: MaxconnItem = {
    name: fe.name,
    before: fe.slim,
    after: req.value,
    sessions: fe.scur,
    commands: fe.slim === req.value ? [] : [setMaxconnFrontend(fe.name, req.value)],
  };
  const changes = item.commands.length > 0;
  const fixed = frontendDeadlockFixed(state.version);
  const version = state.version?.text ?? "(unknown version)";
  const full = fe.slim !== undefined && fe.scur >= fe.slim;
  const guards: Guard[] = [];
  if (changes && !fixed) {
    guards.push(
      guard(
        "frontend-full",
        !full,
        change.force,
        full
          ? `${fe.name} is at its limit (${fe.scur} of ${fe.slim} connections), and set maxconn frontend on a full frontend kills HAProxy ${version} (deadlock, haproxy issue #2726, fixed in 3.1)`
          : `${fe.name} has room (${fe.scur} of ${limit(fe.slim)} connections)`,
        `refusing maxconn frontend ${fe.name}: it is at its limit (${fe.scur} of ${fe.slim} connections), and on HAProxy ${version} set maxconn frontend on a full frontend deadlocks and the watchdog kills the process (haproxy issue #2726, fixed in 3.1; measured on 2.6, 2.8.0 and 3.0.0). Wait until it has fewer connections, or put the new maxconn in haproxy.cfg and reload`,
      ),
    );
    if (!full && req.value > 0 && req.value <= fe.scur)
      guards.push(
        guard(
          "frontend-fills",
          false,
          change.force,
          `${fe.name} has ${fe.scur} connections, so maxconn ${req.value} leaves it full, and a full frontend cannot take another set maxconn frontend on HAProxy ${version} (issue #2726)`,
          `refusing maxconn frontend ${fe.name} ${req.value}: it has ${fe.scur} connections, so it would be full at once, and on HAProxy ${version} set maxconn frontend on a full frontend deadlocks and kills the process (haproxy issue #2726, fixed in 3.1): only a reload could raise the limit again. Choose a limit above ${fe.scur}`,
        ),
      );
  }
  if (changes && req.value === 0)
    guards.push(
      guard(
        "frontend-zero",
        false,
        change.force,
        `maxconn 0 makes ${fe.name} accept no new connection at all (for a frontend 0 is not "no limit")`,
        `refusing maxconn frontend ${fe.name} 0: a frontend with maxconn 0 accepts no new connection at all (clients wait; measured on 2.6 to 3.4)${fixed ? "" : `, and on HAProxy ${version} raising it again once a client waits kills the process (haproxy issue #2726)`}`,
      ),
    );
  const notes = new Map<string, string>();
  if (changes && req.value > 0 && req.value < fe.scur)
    notes.set(
      fe.name,
      `  (${fe.scur} connections now: new ones wait until it has fewer than ${req.value})`,
    );
  const describe = describeItems([item], change.paint ?? plainPaint, notes);
  if (changes && !fixed && !full && req.value > fe.scur && req.value < (fe.slim ?? Infinity))
    describe.push(
      `note: HAProxy ${version} deadlocks if set maxconn frontend runs while ${fe.name} is at its limit (haproxy issue #2726, fixed in 3.1): once it fills up, hapops refuses to change it until it has room again`,
    );
  return basePlan(
    { kind: "frontend", op: "maxconn frontend", what: fe.name, items: [item] },
    change,
    { unnamed: FRONTEND_SCOPE },
    guards,
    describe,
  );
}

/**
 * `maxconn global <N>` (pure). Above Hard_maxconn HAProxy refuses ("Value out of range."), so
 * that is refused before sending; 0 restores Hard_maxconn.
 */
export function planMaxconnGlobal(
  state: GlobalLimits,
  req: Extract<MaxconnRequest, { kind: "global" }>,
  change: MaxconnChange,
): Plan<MaxconnBody> {
  const hard = state.hardMaxconn;
  if (hard !== undefined && req.value > hard)
    throw new ValidationError(
      `maxconn global ${req.value} is above ${hard}, the most this HAProxy allows (Hard_maxconn: the maxconn it started with); HAProxy would answer "Value out of range.". A higher limit needs a larger global maxconn in haproxy.cfg (and enough ulimit -n), then a restart or reload`,
      { value: req.value, hardMaxconn: hard },
    );
  const after = req.value === 0 ? hard : req.value;
  const item: MaxconnItem = {
    name: "global",
    before: state.maxconn,
    after,
    sessions: state.currConns,
    commands: after !== undefined && state.maxconn === after ? [] : [setMaxconnGlobal(req.value)],
  };
  const notes = new Map<string, string>();
  if (item.commands.length > 0) {
    if (req.value === 0)
      notes.set(
        "global",
        `  (0: back to the maxconn HAProxy started with${hard === undefined ? "" : `, ${hard}`})`,
      );
    else if (state.currConns !== undefined && req.value < state.currConns)
      notes.set(
        "global",
        `  (${state.currConns} connections now: new ones wait until there are fewer than ${req.value})`,
      );
  }
  return basePlan(
    { kind: "global", op: "maxconn global", what: "global", items: [item] },
    change,
    { unnamed: GLOBAL_SCOPE },
    [],
    describeItems([item], change.paint ?? plainPaint, notes),
  );
}

/** What HAProxy reports now for each planned item (`slim`, or show info's Maxconn). */
async function readBack(
  sessions: ChangeSessions,
  body: MaxconnBody,
): Promise<Map<string, number | undefined>> {
  if (body.kind === "server") {
    const facts = (await fetchServers(sessions.read, body.backend)).map(toMaxconnFacts);
    return new Map(facts.map((f) => [`${f.backend}/${f.server}`, f.slim]));
  }
  if (body.kind === "frontend") {
    const state = await readFrontendLimits(sessions.read, body.what);
    return new Map(state.frontends.map((f: FrontendView) => [f.name, f.slim]));
  }
  const g = await readGlobalLimits(sessions.read);
  return new Map([["global", g.maxconn]]);
}

/** Any of the three as an engine operation. */
export function maxconnOperation(change: MaxconnChange): Operation<unknown, MaxconnBody> {
  const req = change.request;
  const backend = req.kind === "server" ? selectorBackend(req.selector) : undefined;
  return {
    op: opOf(req.kind),
    readLevel: "user",
    read: async (sessions) =>
      req.kind === "server"
        ? (await fetchServers(sessions.read, backend)).map(toMaxconnFacts)
        : req.kind === "frontend"
          ? readFrontendLimits(sessions.read, req.frontend)
          : readGlobalLimits(sessions.read),
    plan(state): Plan<MaxconnBody> {
      if (req.kind === "server")
        return planMaxconnServers(state as MaxconnServerFacts[], req, change);
      if (req.kind === "frontend") return planMaxconnFrontend(state as FrontendLimits, req, change);
      return planMaxconnGlobal(state as GlobalLimits, req, change);
    },
    async verify(sessions: ChangeSessions, plan: Plan<MaxconnBody>): Promise<Verification> {
      const body = plan.body;
      const now = await readBack(sessions, body);
      const mismatches = body.items.flatMap((i) => {
        if (!now.has(i.name)) return [`${i.name}: gone (HAProxy no longer reports it)`];
        // 0 restores a limit show info did not report (no Hard_maxconn): nothing to compare.
        if (body.kind === "global" && i.after === undefined) return [];
        const actual = now.get(i.name);
        return actual === i.after
          ? []
          : [`${i.name} maxconn: expected ${limit(i.after)}, HAProxy says ${limit(actual)}`];
      });
      const changed = body.items.filter((i) => i.commands.length > 0).length;
      const where =
        body.kind === "server"
          ? "slim in show stat"
          : body.kind === "frontend"
            ? "slim of the FRONTEND row in show stat"
            : "Maxconn in show info";
      const values = [...new Set(body.items.map((i) => limit(now.get(i.name))))].join(", ");
      const subject =
        body.kind === "server"
          ? body.items.length === 1
            ? body.items[0]!.name
            : `all ${body.items.length} servers`
          : body.kind === "frontend"
            ? `frontend ${body.what}`
            : "the process";
      return {
        mismatches,
        ...(mismatches.length > 0
          ? {
              error: new VerificationError(
                `${body.op} ${body.what} did not take effect: ${mismatches.join("; ")}`,
                { mismatches },
              ),
            }
          : {}),
        summary: [
          `verified: HAProxy reports maxconn ${values} for ${subject} (${where}; ${changed} changed, ${body.items.length - changed} already so)`,
          ...(mismatches.length === 0 ? [RELOAD_NOTE[body.kind]] : []),
        ],
        json: {
          items: body.items.map((i) => ({ name: i.name, maxconn: now.get(i.name) ?? null })),
        },
      };
    },
  };
}
