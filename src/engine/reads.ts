import {
  showBackend,
  showInfo,
  showServersState,
  showSslCert,
  showStat,
  showTables,
} from "../commands/builders.js";
import { validateName } from "../commands/validate.js";
import type { Settings } from "../config/settings.js";
import { HaproxyError, UsageError } from "../errors.js";
import { parseInfo, parseVersion, type HaproxyVersion } from "../parse/info.js";
import { parseSslCertDetail, parseSslCertList, type SslCertDetail } from "../parse/ssl-cert.js";
import { parseServersState } from "../parse/servers-state.js";
import { StatEntryParser, StatParser, toStatEntry, type StatEntry } from "../parse/stat.js";
import { parseTableList } from "../parse/table.js";
import { suggestion } from "../util/suggest.js";
import { normaliseSerial } from "../certs/validate.js";
import { withSession } from "./connect.js";
import { getMap, showMap, showMaps, type MapKind } from "../commands/builders.js";
import { findMap, parseLookup, readEntries } from "../ops/map.js";
import { findTable, parseFilter, readTableDef, selection, streamEntries } from "../ops/table.js";
import { parseMapList, type MapEntry, type MapInfo } from "../parse/map.js";
import type { TableEntry, TableInfo } from "../parse/table.js";
import type { Backpressure, RuntimeSession } from "../runtime/session.js";
import { fetchServers, rethrowUnknownBackend, type ServerView } from "./state.js";
import { showErrors, showSess } from "../commands/builders.js";
import { parseErrors, type ErrorsAnswer } from "../parse/errors.js";
import { parseSessDetail, SessParser, type SessStream } from "../parse/sess.js";
import { selectServers, type Selector } from "../ops/selector.js";
import {
  CLI_FRONTEND,
  isNoSuchProxy,
  OldestStreams,
  parseSessionSelector,
  streamMatches,
} from "../ops/sessions.js";
import { showServersConn } from "../commands/builders.js";
import { parseServersConn } from "../parse/servers-conn.js";

/**
 * The read-only commands' reads: one session each, lowered to the least level the read needs,
 * closed when done. The CLI prints what they return.
 */

export interface InfoResult {
  readonly target: string;
  readonly info: Record<string, string>;
}

export async function runInfo(settings: Settings): Promise<InfoResult> {
  const info = await withSession(settings, "hapops info", async (session) => {
    const [, lines] = await Promise.all([session.lowerTo("user"), session.run(showInfo())]);
    return parseInfo(lines);
  });
  return { target: settings.targetText, info };
}

export interface ServersResult {
  readonly servers: ServerView[];
}

export async function runServers(
  settings: Settings,
  backend: string | undefined,
): Promise<ServersResult> {
  const name = backend === undefined ? undefined : validateName("backend name", backend);
  const servers = await withSession(settings, "hapops servers", async (session) => {
    const [, list] = await Promise.all([session.lowerTo("user"), fetchServers(session, name)]);
    return list;
  });
  return { servers };
}

/** Split `backend[/server]`, validating both names before anything is sent. */
export function parseProxyArg(arg: string | undefined): { proxy?: string; server?: string } {
  if (arg === undefined) return {};
  const slash = arg.indexOf("/");
  if (slash < 0) return { proxy: validateName("proxy name", arg) };
  const proxy = validateName("backend name", arg.slice(0, slash));
  const server = validateName("server name", arg.slice(slash + 1));
  return { proxy, server };
}

/**
 * Stream `show stat` rows to `onEntry` as they are parsed: 10,000 servers are never held as
 * text, and with --json never as a whole either. `backpressure`: what `onEntry` writes to can
 * be full (see StreamOptions).
 */
export async function runStat(
  settings: Settings,
  arg: string | undefined,
  onEntry: (entry: StatEntry) => void,
  backpressure?: Backpressure,
): Promise<void> {
  const { proxy, server } = parseProxyArg(arg);
  await withSession(settings, "hapops stat", async (session) => {
    const serverNames: string[] = [];
    let matched = 0;
    const parser = new StatEntryParser((entry) => {
      if (server !== undefined) {
        if (entry.kind !== "server") return;
        serverNames.push(entry.name);
        if (entry.name !== server) return;
      }
      matched++;
      onEntry(entry);
    });
    try {
      await Promise.all([
        session.lowerTo("user"),
        session.stream(showStat(proxy), (l) => parser.line(l), { backpressure }),
      ]);
    } catch (e) {
      if (proxy === undefined) throw e;
      await rethrowUnknownBackend(session, proxy, e);
    }
    if (server !== undefined && matched === 0)
      throw new UsageError(
        `backend ${proxy} has no server named ${server}; ${suggestion(server, serverNames)}`,
      );
  });
}

export interface CertView {
  readonly file: string;
  readonly subject: string | null;
  readonly issuer: string | null;
  readonly sans: string[];
  readonly serial: string | null;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly daysLeft: number | null;
  readonly sha1Fingerprint: string | null;
  readonly status: string | null;
}

export interface CertsResult {
  readonly certs: CertView[];
  /** Files with an uncommitted `set ssl cert` transaction (`*file` in `show ssl cert`). */
  readonly openTransactions: string[];
}

const DAY_MS = 86_400_000;

export function toCertView(d: SslCertDetail, now: Date): CertView {
  return {
    file: d.filename,
    subject: d.subject ?? null,
    issuer: d.issuer ?? null,
    sans: d.sans,
    // Written the way rotate-cert writes it (no leading zeros), so the two can be compared.
    serial: d.serial === undefined ? null : normaliseSerial(d.serial),
    notBefore: d.notBefore?.toISOString() ?? null,
    notAfter: d.notAfter?.toISOString() ?? null,
    daysLeft: d.notAfter ? Math.floor((d.notAfter.getTime() - now.getTime()) / DAY_MS) : null,
    sha1Fingerprint: d.sha1Fingerprint ?? null,
    status: d.status ?? null,
  };
}

/** List loaded certificates, soonest expiry first. Needs operator level (see grammar.ts). */
export async function runCerts(settings: Settings, now: Date): Promise<CertsResult> {
  return withSession(settings, "hapops certs", async (session) => {
    await session.lowerTo("operator");
    const list = parseSslCertList(await session.run(showSslCert()));
    const answers = await session.pipeline(list.files.map((f) => showSslCert(f)));
    const certs = answers.map((lines) => toCertView(parseSslCertDetail(lines), now));
    certs.sort(
      (a, b) =>
        (a.notAfter ? Date.parse(a.notAfter) : Infinity) -
          (b.notAfter ? Date.parse(b.notAfter) : Infinity) || a.file.localeCompare(b.file),
    );
    return { certs, openTransactions: list.transactions };
  });
}

/** Certificates whose notAfter falls within `windowMs` of now (or already passed). */
export function expiringWithin(result: CertsResult, now: Date, windowMs: number): CertView[] {
  return result.certs.filter(
    (c) => c.notAfter !== null && Date.parse(c.notAfter) - now.getTime() < windowMs,
  );
}

/** Names for Tab completion in the shell. */
export interface LiveNames {
  readonly servers: readonly string[];
  readonly backends: readonly string[];
  readonly tables: readonly string[];
}

/** Backend, server and table names over one short connection, lowered to `user`. */
export async function readNames(settings: Settings): Promise<LiveNames> {
  return withSession(settings, "hapops shell (completion)", readNamesOn);
}

/** The same read on a session the caller opened (shell completion bounds it in time). */
export async function readNamesOn(session: RuntimeSession): Promise<LiveNames> {
  const [, [state, backends, tables]] = await Promise.all([
    session.lowerTo("user"),
    session.pipeline([showServersState(), showBackend(), showTables()]),
  ]);
  return {
    servers: parseServersState(state!).map((s) => `${s.backend}/${s.server}`),
    backends: backends!.filter((l) => !l.startsWith("#")),
    tables: parseTableList(tables!).map((t) => t.name),
  };
}

export interface TableShowRequest {
  readonly table: string;
  readonly key?: string | undefined;
  /** `data.<type> <op> <value>`, as three words. */
  readonly filter?: readonly string[] | undefined;
}

/** Where `runTableShow` hands what it reads, as it reads it. */
export interface TableShowSink {
  entry(entry: TableEntry): void;
  /** The table's header (name, type, size, used), before its entries. */
  info?(info: TableInfo): void;
  /** May take an entry's line instead of `entry` (see TableDumpParser). */
  line?(line: string): boolean;
  /** What the sink writes to can be full (see StreamOptions). */
  readonly backpressure?: Backpressure | undefined;
}

/**
 * Show a stick table. Entries are handed to the sink as they are parsed, so a table with a
 * million entries is streamed, not held. Needs operator level: below it HAProxy prints only the
 * header and "# contents not dumped due to insufficient privileges" (measured on 2.6).
 */
export async function runTableShow(
  settings: Settings,
  req: TableShowRequest,
  sink: TableShowSink,
): Promise<TableInfo> {
  const name = validateName("table name", req.table);
  const filter = parseFilter(req.filter);
  return withSession(settings, "hapops table show", async (session) => {
    await session.lowerTo("operator");
    const info = await findTable(session, name);
    sink.info?.(info);
    const sel = selection(info, req.key, filter, readTableDef(settings.haproxyConfig, name));
    const parser = await streamEntries(
      session,
      settings.targetText,
      name,
      sel,
      (e) => sink.entry(e),
      sink.line === undefined ? undefined : (l) => sink.line!(l),
      { backpressure: sink.backpressure },
    );
    return parser.header ?? info;
  });
}

/**
 * Entries of each map's live version. `entry_cnt` also counts entries of versions prepared but
 * not committed (an interrupted replace), and on 2.6 a refused `add` can leave it off by one
 * (measured), so the live version is counted instead.
 */
async function withLiveCounts(session: RuntimeSession, kind: MapKind, maps: MapInfo[]) {
  const out: MapInfo[] = [];
  for (const m of maps) {
    let n = 0;
    await session.stream(showMap(kind, `#${m.id}`), (l) => {
      if (l.startsWith("0x")) n++;
    });
    out.push({ ...m, entries: n });
  }
  return out;
}

/** Every map (or ACL) with its live count, or the entries of one. */
export interface MapShow {
  readonly maps?: MapInfo[];
  readonly entries?: MapEntry[];
}

// Map and ACL reads keep the socket's level: HAProxy 3.4 answers "Permission denied" to them
// below admin (measured), while 2.6 takes them at user level.
export async function runMapShow(
  settings: Settings,
  kind: MapKind,
  ref: string | undefined,
): Promise<MapShow> {
  return withSession(settings, `hapops ${kind} show`, async (session) => {
    if (ref === undefined)
      return {
        maps: await withLiveCounts(session, kind, parseMapList(await session.run(showMaps(kind)))),
      };
    await findMap(session, kind, ref);
    return { entries: await readEntries(session, kind, ref) };
  });
}

export interface MapLookup {
  readonly ref: string;
  readonly value: string;
  readonly found: boolean;
  readonly mapped?: string | undefined;
  readonly pattern?: string | undefined;
}

export async function runMapGet(
  settings: Settings,
  kind: MapKind,
  ref: string,
  value: string,
): Promise<MapLookup> {
  const cmd = getMap(kind, ref, value);
  return withSession(settings, `hapops ${kind} get`, async (session) => {
    await findMap(session, kind, ref);
    const { found, value: mapped, pattern } = parseLookup((await session.run(cmd)).join(" "));
    return { ref, value, found, mapped, pattern };
  });
}

/** A frontend's connections and limit, from its `show stat` FRONTEND row. */
export interface FrontendView {
  readonly name: string;
  /** Current connections (`scur`). */
  readonly scur: number;
  /** Its maxconn (`slim`); 0 when set to 0, which accepts no new connection (measured). */
  readonly slim: number | undefined;
  readonly status: string;
}

export interface FrontendLimits {
  /** The named frontend, or every frontend when the name matched none (for the suggestion). */
  readonly frontends: readonly FrontendView[];
  /** The name matched no frontend but a backend (`show stat` has its BACKEND row). */
  readonly isBackend: boolean;
  readonly version: HaproxyVersion | undefined;
}

function frontendView(e: StatEntry): FrontendView {
  const slim = e.row["slim"];
  return {
    name: e.proxy,
    scur: e.scur,
    slim: slim === undefined || !/^\d+$/.test(slim) ? undefined : Number(slim),
    status: e.status,
  };
}

/**
 * A frontend's `show stat` row and the running version (set maxconn frontend deadlocks before
 * 3.1 on a full frontend). `show stat <name> -1 -1` answers "No such proxy." for an unknown name
 * and no FRONTEND row for a backend; then every frontend is read, for the suggestion.
 */
export async function readFrontendLimits(
  session: RuntimeSession,
  name: string,
): Promise<FrontendLimits> {
  let isBackend = false;
  const frontends = async (proxy?: string) => {
    const found: FrontendView[] = [];
    const parser = new StatParser((row) => {
      const e = toStatEntry(row);
      if (e.kind === "frontend") found.push(frontendView(e));
      else if (e.kind === "backend" && e.proxy === name) isBackend = true;
    });
    await session.stream(showStat(proxy), (l) => parser.line(l));
    return found;
  };
  const [info, named] = await Promise.all([
    session.run(showInfo()),
    frontends(name).catch((e: unknown) => {
      if (e instanceof HaproxyError && /^No such proxy/.test(e.haproxyMessage))
        return [] as FrontendView[];
      throw e;
    }),
  ]);
  const version = parseVersion(parseInfo(info));
  const hit = named.filter((f) => f.name === name);
  if (hit.length > 0) return { frontends: hit, isBackend: false, version };
  return { frontends: await frontends(), isBackend, version };
}

/** The process-wide connection limit as `show info` reports it. */
export interface GlobalLimits {
  /** `Maxconn`: the limit in effect. */
  readonly maxconn: number | undefined;
  /**
   * `Hard_maxconn`: the maxconn the process started with (the global maxconn, or what ulimit -n
   * allowed). `set maxconn global` above it answers "Value out of range." and 0 restores it.
   */
  readonly hardMaxconn: number | undefined;
  readonly currConns: number | undefined;
  readonly version: HaproxyVersion | undefined;
}

export async function readGlobalLimits(session: RuntimeSession): Promise<GlobalLimits> {
  const info = parseInfo(await session.run(showInfo()));
  const num = (key: string) => {
    const v = info[key];
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  return {
    maxconn: num("Maxconn"),
    hardMaxconn: num("Hard_maxconn"),
    currConns: num("CurrConns"),
    version: parseVersion(info),
  };
}

export interface SessionsRequest {
  /** a server selector (backend/server, backend/*, ...) or a backend; undefined: every stream. */
  readonly selector?: string | undefined;
  /** At most this many sessions are listed (the oldest), whatever the number that matched. */
  readonly limit: number;
  /** Read each listed session's byte counts (`show sess <id>`, one per session). */
  readonly bytes: boolean;
}

/** A stream as `hapops sessions` lists it. */
export interface SessionView extends SessStream {
  /** Bytes from the client so far; undefined when not read or the stream had ended. */
  readonly bytesIn: number | undefined;
  /** Bytes to the client so far. */
  readonly bytesOut: number | undefined;
}

export interface SessionsResult {
  readonly selector: string | null;
  /** The oldest `limit` of the matching sessions, oldest first. */
  readonly sessions: SessionView[];
  /** How many sessions matched (listed or not). */
  readonly matched: number;
  /** Connections to the stats socket itself (hapops' own included), never listed. */
  readonly cli: number;
}

/** The most sessions one run lists; `show sess <id>` for each is a scan of every stream. */
export const MAX_SESSIONS_LISTED = 1000;

/** The request's selector, parsed; bad input is exit 2 before anything is sent. */
export function checkSessionsRequest(req: SessionsRequest): Selector | undefined {
  if (!Number.isInteger(req.limit) || req.limit < 1 || req.limit > MAX_SESSIONS_LISTED)
    throw new UsageError(
      `--limit must be a whole number from 1 to ${MAX_SESSIONS_LISTED}, not ${req.limit}`,
    );
  return req.selector === undefined ? undefined : parseSessionSelector(req.selector);
}

/**
 * Check that a selector's backend and server exist (a typo is exit 2 with the closest names,
 * not an empty list), reading `show servers state` at the session's level.
 */
async function checkSessionSelector(session: RuntimeSession, sel: Selector): Promise<void> {
  if (sel.kind !== "name" || (sel.backend === undefined && sel.server === undefined)) return;
  let state: string[];
  try {
    state = await session.run(showServersState(sel.backend));
  } catch (e) {
    if (sel.backend === undefined) throw e;
    return rethrowUnknownBackend(session, sel.backend, e);
  }
  if (sel.server === undefined) return;
  selectServers(
    sel,
    parseServersState(state).map((s) => ({
      backend: s.backend,
      server: s.server,
      address: s.address,
      port: s.port,
    })),
  );
}

/**
 * `hapops sessions`: `show sess` (operator level) read line by line, filtered as it comes, the
 * oldest `limit` kept; then, for those, `show sess <id>` for the bytes each moved. A stream that
 * ended in between, or whose id now names another stream, gets no byte counts.
 */
export async function runSessions(
  settings: Settings,
  req: SessionsRequest,
): Promise<SessionsResult> {
  const sel = checkSessionsRequest(req);
  return withSession(settings, "hapops sessions", async (session) => {
    await session.lowerTo("operator");
    if (sel) await checkSessionSelector(session, sel);
    const oldest = new OldestStreams(req.limit);
    let cli = 0;
    const parser = new SessParser((s) => {
      if (s.frontend === CLI_FRONTEND) cli++;
      if (streamMatches(sel, s)) oldest.push(s);
    });
    await session.stream(showSess(), (l) => parser.line(l));
    const kept = oldest.result();
    const details =
      req.bytes && kept.length > 0
        ? await session.pipeline(kept.map((s) => showSess(s.id)))
        : kept.map(() => []);
    const sessions = kept.map((s, i): SessionView => {
      const d = parseSessDetail(details[i] ?? []);
      const same =
        d !== undefined &&
        d.id === s.id &&
        (s.client === undefined ||
          s.client.address === "unix" ||
          d.source === undefined ||
          d.source === `${s.client.address}:${s.client.port}`);
      return {
        ...s,
        bytesIn: same ? d.bytesIn : undefined,
        bytesOut: same ? d.bytesOut : undefined,
      };
    });
    return { selector: sel?.text ?? null, sessions, matched: oldest.count, cli };
  });
}

export interface ErrorsRequest {
  /** Only errors a proxy kept, or where it was the other side; undefined: every proxy. */
  readonly proxy?: string | undefined;
  readonly which?: "request" | "response" | undefined;
}

/**
 * `hapops errors`: `show errors` (operator level), parsed. A proxy HAProxy does not know is exit
 * 2 with the closest names (frontends and backends, from `show stat`).
 */
export async function runErrors(settings: Settings, req: ErrorsRequest): Promise<ErrorsAnswer> {
  const cmd = showErrors(req.proxy, req.which);
  return withSession(settings, "hapops errors", async (session) => {
    await session.lowerTo("operator");
    try {
      return parseErrors(await session.run(cmd));
    } catch (e) {
      if (!isNoSuchProxy(e)) throw e;
      const names = new Set<string>();
      const stat = new StatParser((row) => {
        if (row["pxname"]) names.add(row["pxname"]);
      });
      await session.stream(showStat(), (l) => stat.line(l));
      throw new UsageError(
        `no proxy named ${req.proxy}; ${suggestion(req.proxy ?? "", [...names])}`,
        {
          proxy: req.proxy,
        },
      );
    }
  });
}

/** What keeps a server from being deleted: sessions, queued requests, connections. */
export interface ServerHold {
  /** Current sessions (`scur`). */
  readonly sessions: number;
  /** Requests waiting in the server's queue (`qcur`). */
  readonly queued: number;
  /** Connections in use and idle ones kept for reuse (`show servers conn`). */
  readonly used: number;
  readonly idle: number;
  /** Whether HAProxy lists the server at all. */
  readonly present: boolean;
}

/**
 * What holds each server (`show stat <b> -1 -1` and `show servers conn <b>` per backend, on one
 * pipelined session): `del server` refuses a server with a session, a queued request, or a
 * connection in use or idle ("Server still has connections attached to it", src/server.c).
 */
export async function readServerHolds(
  session: RuntimeSession,
  servers: readonly { readonly backend: string; readonly server: string }[],
): Promise<Map<string, ServerHold>> {
  const backends = [...new Set(servers.map((s) => s.backend))];
  const wanted = new Set(servers.map((s) => `${s.backend}/${s.server}`));
  const stat = new Map<string, StatEntry>();
  const parser = new StatParser((row) => {
    const e = toStatEntry(row);
    if (e.kind === "server" && wanted.has(`${e.proxy}/${e.name}`))
      stat.set(`${e.proxy}/${e.name}`, e);
  });
  const [, conns] = await Promise.all([
    Promise.all(backends.map((b) => session.stream(showStat(b), (l) => parser.line(l)))),
    Promise.all(backends.map((b) => session.run(showServersConn(b)))),
  ]);
  const byName = new Map(
    conns.flatMap((lines) => parseServersConn(lines)).map((c) => [`${c.backend}/${c.server}`, c]),
  );
  const out = new Map<string, ServerHold>();
  for (const key of wanted) {
    const s = stat.get(key);
    const c = byName.get(key);
    out.set(key, {
      sessions: s?.scur ?? 0,
      queued: s ? Number(s.row["qcur"] ?? 0) || 0 : 0,
      used: c?.used ?? 0,
      idle: c?.idle ?? 0,
      present: s !== undefined || c !== undefined,
    });
  }
  return out;
}

/** A server's last health check, from `show stat`. */
export interface CheckResult {
  /** `check_status` ("L7OK", "L4CON", "INI"...); "" when it has no check. */
  readonly status: string;
  /** `check_desc` ("Layer7 check passed", "Layer4 connection problem"...). */
  readonly desc: string;
  /** `last_chk`, what the check last saw ("Connection refused", "HTTP status check returned code <503>"...). */
  readonly detail: string;
  /** The last check passed (L4OK, L6OK, L7OK, L7OKC, PROCOK). */
  readonly passed: boolean;
  /** `status` as printed ("MAINT", "UP", "DOWN 1/2"...). */
  readonly state: string;
  readonly present: boolean;
}

const CHECK_PASSED = /^(L4OK|L6OK|L7OK|L7OKC|PROCOK)$/;

/** The last health check of each server (`show stat <b> -1 -1` per backend). */
export async function readCheckResults(
  session: RuntimeSession,
  servers: readonly { readonly backend: string; readonly server: string }[],
): Promise<Map<string, CheckResult>> {
  const backends = [...new Set(servers.map((s) => s.backend))];
  const wanted = new Set(servers.map((s) => `${s.backend}/${s.server}`));
  const out = new Map<string, CheckResult>();
  const parser = new StatParser((row) => {
    const e = toStatEntry(row);
    const key = `${e.proxy}/${e.name}`;
    if (e.kind === "server" && wanted.has(key))
      out.set(key, {
        status: e.checkStatus,
        desc: e.checkDesc,
        detail: e.row["last_chk"] ?? "",
        passed: CHECK_PASSED.test(e.checkStatus),
        state: e.status,
        present: true,
      });
  });
  await Promise.all(backends.map((b) => session.stream(showStat(b), (l) => parser.line(l))));
  for (const key of wanted)
    if (!out.has(key))
      out.set(key, { status: "", desc: "", detail: "", passed: false, state: "", present: false });
  return out;
}
