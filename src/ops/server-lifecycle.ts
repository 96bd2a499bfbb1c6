import { isIP } from "node:net";
import {
  addServer,
  delServer,
  experimentalModeOn,
  setCheck,
  setServerAddr,
  setServerState,
  type RuntimeCommand,
  type ServerAddress,
  type ServerKeyword,
} from "../commands/builders.js";
import { showInfo } from "../commands/builders.js";
import { validateName } from "../commands/validate.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Step, Verification } from "../engine/operation.js";
import { fetchServers, type ServerView } from "../engine/state.js";
import { GuardError, HaproxyError, UsageError, ValidationError } from "../errors.js";
import { checkStateOf } from "../parse/check-state.js";
import { parseInfo, parseVersion, type HaproxyVersion } from "../parse/info.js";
import type { Admin } from "../parse/servers-state.js";
import type { RuntimeSession } from "../runtime/session.js";
import { suggestion } from "../util/suggest.js";
import { checkGuards, planChange, type ServerFacts } from "./plan.js";
import { parseSelector } from "./selector.js";
import { validateServerKeywords, versionAtLeast } from "./server-keywords.js";
import { toFacts, type Paint } from "./servers.js";

/**
 * A server's life at runtime: `server add`, `server del` and `server set-addr`, each an engine
 * operation (read, a pure plan, verify by reading back). What HAProxy does, measured on 2.4.0,
 * 2.6.12, 2.8.0, 3.0.0, 3.2.0 and 3.4.0 (test/fixtures/haproxy-<v>/lifecycle-transcript.txt):
 *
 * - `add server` puts the new server in maintenance (srv_admin_state 1) with its checks
 *   disabled; `enable health`/`enable agent` start them, `set server ... state ready` lets
 *   traffic in. HAProxy checks a server added in maintenance once its check is enabled, so a
 *   check can pass before any request reaches it. A server leaving maintenance starts UP and is
 *   checked at once ("start OK but check immediately", src/server.c srv_update_status()).
 * - Before 2.6, `add server` and `del server` need `experimental-mode on` on the connection.
 *   2.4 takes few keywords (no check) and deletes only servers added at runtime.
 * - `del server` wants the server in maintenance with no session, queued request or connection.
 *   From 3.0 `wait <ms> srv-removable` says when that is so.
 * - Neither a reload nor the server-state file keeps a server added at runtime.
 */

export interface ServerRef {
  readonly backend: string;
  readonly server: string;
}

export function refText(r: ServerRef): string {
  return `${r.backend}/${r.server}`;
}

/** `<backend>/<name>`, both validated: one server, no wildcard. */
export function parseServerRef(text: string | undefined, command: string): ServerRef {
  if (text === undefined || text.length === 0)
    throw new UsageError(`${command} needs <backend>/<name>`);
  const parts = text.split("/");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "")
    throw new UsageError(
      `${command} takes one server as <backend>/<name>, not ${JSON.stringify(text)}`,
    );
  if (parts.includes("*"))
    throw new UsageError(
      `${command} takes one server by name; ${JSON.stringify(text)} is a pattern`,
    );
  return {
    backend: validateName("backend name", parts[0]!),
    server: validateName("server name", parts[1]!),
  };
}

/**
 * `<ip>[:<port>]` as operators write it: `10.0.0.5:8080`, `10.0.0.5`, `[2001:db8::5]:8080`,
 * `2001:db8::5`. Only IP addresses: HAProxy does not resolve a name given at runtime ("init-addr
 * none", management.txt "add server").
 */
export function parseServerAddress(text: string | undefined): ServerAddress {
  if (text === undefined || text.length === 0)
    throw new UsageError("an address is needed: <ip>[:<port>], e.g. 10.0.0.5:8080");
  let ip = text;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) {
    ip = bracket[1]!;
    port = bracket[2];
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(":");
    if (colon > 0 && text.indexOf(":") === colon) {
      ip = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  if (isIP(ip) === 0)
    throw new ValidationError(
      `address ${JSON.stringify(text)}: ${JSON.stringify(ip)} is not an IP address (HAProxy does not resolve names given at runtime; write an IPv6 address with a port as [2001:db8::5]:8080)`,
    );
  if (port === undefined) return { ip };
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    throw new ValidationError(
      `address ${JSON.stringify(text)}: port ${JSON.stringify(port)} must be a whole number from 1 to 65535`,
    );
  return { ip, port: Number(port) };
}

/** An IP as HAProxy prints it (IPv6 compressed, lower case), so that two spellings compare. */
export function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

export function formatAddress(a: { ip: string; port?: number | undefined }): string {
  const host = isIP(a.ip) === 6 ? `[${a.ip}]` : a.ip;
  return a.port === undefined ? host : `${host}:${a.port}`;
}

function viewAddress(v: { address: string; port: number | undefined }): string {
  return formatAddress({ ip: v.address, port: v.port });
}

/** `experimental-mode on` first, before 2.6 (management.txt 2.4 and 2.5, "add server"). */
function needsExperimental(v: HaproxyVersion | undefined): boolean {
  return v !== undefined && !versionAtLeast(v, [2, 6]);
}

function versionText(v: HaproxyVersion | undefined): string {
  return v ? `${v.major}.${v.minor}` : "this version";
}

async function readVersion(read: RuntimeSession): Promise<HaproxyVersion | undefined> {
  return parseVersion(parseInfo(await read.run(showInfo())));
}

function unknownServer(ref: ServerRef, servers: readonly { server: string }[]): UsageError {
  return new UsageError(
    `backend ${ref.backend} has no server named ${ref.server}; ${suggestion(
      ref.server,
      servers.map((s) => s.server),
    )}`,
    { backend: ref.backend, server: ref.server },
  );
}

const NOT_KEPT = (ref: ServerRef) =>
  `runtime only: a reload drops ${refText(ref)} unless haproxy.cfg has it (the server-state file does not keep a server added at runtime; hapops reload adds it back): add it there too`;

// ---------------------------------------------------------------------------------------------
// server add

export interface ServerAddRequest {
  readonly ref: ServerRef;
  readonly address: ServerAddress;
  /** Keywords as given (`--weight 10` is ["weight", "10"]); checked against the version. */
  readonly keywords: readonly ServerKeyword[];
  /** Keep it in maintenance (no traffic); `hapops ready` lets traffic in later. */
  readonly maint: boolean;
  /** Enable its check while in maintenance, wait until it passes, then make it ready. */
  readonly waitUp?: { readonly timeoutMs: number; readonly pollMs: number } | undefined;
  readonly target: string;
  readonly paint: Paint;
}

export interface AddState {
  readonly version: HaproxyVersion | undefined;
  readonly servers: readonly ServerView[];
  /** The backend of a `track`ed server, when it is another one. */
  readonly tracked?: readonly ServerView[] | undefined;
}

export interface AddBody {
  readonly ref: ServerRef;
  readonly address: ServerAddress;
  readonly keywords: readonly ServerKeyword[];
  readonly weight: number;
  readonly admin: Admin;
  readonly check: boolean;
  readonly agent: boolean;
  /** The plan that makes it ready follows (--wait-up): this one says no "runtime only" yet. */
  readonly more: boolean;
}

function keywordValue(kws: readonly ServerKeyword[], name: string): string | undefined {
  return kws.find(([k]) => k === name)?.[1];
}

function hasKeyword(kws: readonly ServerKeyword[], name: string): boolean {
  return kws.some(([k]) => k === name);
}

/** HAProxy's refusal of `add server`, in its words, with what it means and what to do. */
export function explainAddRefusal(line: string, message: string, ref: ServerRef): HaproxyError {
  const hint =
    /^Backend must use a dynamic load balancing|^Backend does not support dynamic servers/.test(
      message,
    )
      ? `servers can be added at runtime only to a backend with a dynamic balance algorithm (roundrobin, leastconn, first, random, or a hash with hash-type consistent); ${ref.backend} uses a static one (static-rr, or a hash with the default map-based hash-type): change balance in haproxy.cfg and reload, then add the server`
      : /^Already exists a server/.test(message)
        ? `${refText(ref)} exists now (added since hapops read the state?); pick another name, or move it with hapops server set-addr`
        : /for tracking as it is a dynamic server/.test(message)
          ? "a server added at runtime can only track one from haproxy.cfg (management.txt, add server)"
          : /for tracking as it does not have any check/.test(message)
            ? "the tracked server needs a health or agent check enabled (hapops health enable)"
            : /unknown keyword|is not accepted for dynamic server/.test(message)
              ? "this HAProxy does not take that keyword for a server added at runtime; leave it out, or put the server in haproxy.cfg"
              : /restricted to experimental mode/.test(message)
                ? "this HAProxy wants experimental-mode on first (before 2.6); hapops could not tell the version"
                : /^No such backend/.test(message)
                  ? `backend ${ref.backend} is gone since hapops read it (a reload?); run hapops servers and try again`
                  : `see "add server" in HAProxy's management.txt (section 9.3)`;
  return new HaproxyError(line, message, `HAProxy refused "${line}": ${message} — ${hint}`);
}

/** The lines of `server add`, in order, and which of them is `add server` itself. */
function addCommands(
  req: ServerAddRequest,
  version: HaproxyVersion | undefined,
  keywords: readonly ServerKeyword[],
): { all: RuntimeCommand[]; add: RuntimeCommand; undo: RuntimeCommand } {
  const { backend, server } = req.ref;
  const add = addServer(backend, server, req.address, keywords);
  const ready = !req.maint && !req.waitUp;
  return {
    add,
    all: [
      ...(needsExperimental(version) ? [experimentalModeOn()] : []),
      add,
      ...(hasKeyword(keywords, "check") ? [setCheck("health", true, backend, server)] : []),
      ...(hasKeyword(keywords, "agent-check") ? [setCheck("agent", true, backend, server)] : []),
      ...(ready ? [setServerState(backend, server, "ready")] : []),
    ],
    undo: delServer(backend, server),
  };
}

/**
 * Run the lines of `server add` one after the other. `add server` refused: nothing happened.
 * A later line refused: the server just added is still in maintenance and takes no traffic, so
 * it is deleted again and HAProxy is as hapops found it.
 */
async function runAdd(
  sessions: ChangeSessions,
  sent: string[],
  cmds: { all: readonly RuntimeCommand[]; add: RuntimeCommand; undo: RuntimeCommand },
  ref: ServerRef,
): Promise<void> {
  let added = false;
  for (const cmd of cmds.all) {
    sent.push(cmd.line);
    try {
      await sessions.write.run(cmd);
    } catch (e) {
      if (!(e instanceof HaproxyError)) throw e;
      if (!added) throw explainAddRefusal(cmd.line, e.haproxyMessage, ref);
      sent.push(cmds.undo.line);
      const undone = await sessions.write.run(cmds.undo).then(
        () => "the server just added was deleted again, nothing is left of it",
        (u: unknown) =>
          `deleting the server just added failed too (${u instanceof HaproxyError ? u.haproxyMessage : String(u)}): it stays in maintenance; remove it with hapops server del ${refText(ref)}`,
      );
      throw new HaproxyError(
        cmd.line,
        e.haproxyMessage,
        `HAProxy refused "${cmd.line}": ${e.haproxyMessage} — ${undone}`,
      );
    }
    if (cmd === cmds.add) added = true;
  }
}

function describeKeywords(kws: readonly ServerKeyword[]): string {
  return kws.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)).join(", ");
}

export function serverAddOperation(req: ServerAddRequest): Operation<AddState, AddBody> {
  const { ref } = req;
  const track = keywordValue(req.keywords, "track");
  const trackRef =
    track === undefined
      ? undefined
      : track.includes("/")
        ? { backend: track.split("/")[0]!, server: track.split("/")[1]! }
        : { backend: ref.backend, server: track };
  return {
    op: "server add",
    readLevel: "user",
    async read(sessions) {
      const [version, servers, tracked] = await Promise.all([
        readVersion(sessions.read),
        fetchServers(sessions.read, ref.backend),
        trackRef && trackRef.backend !== ref.backend
          ? fetchServers(sessions.read, trackRef.backend)
          : Promise.resolve(undefined),
      ]);
      return { version, servers, tracked };
    },
    plan(state): Plan<AddBody> {
      return planServerAdd(state, req, trackRef);
    },
    async verify(sessions, plan): Promise<Verification> {
      return verifyAdd(await fetchServers(sessions.read, ref.backend), plan.body);
    },
  };
}

/** The plan of `server add` on a state (pure). */
export function planServerAdd(
  state: AddState,
  req: ServerAddRequest,
  trackRef?: ServerRef,
): Plan<AddBody> {
  const { ref } = req;
  const keywords = validateServerKeywords(req.keywords, state.version);
  const existing = state.servers.find((s) => s.server === ref.server);
  if (existing)
    throw new UsageError(
      `${refText(ref)} exists already (${viewAddress(existing)}, ${existing.admin}); pick another name, or move it with hapops server set-addr ${refText(ref)} <addr>[:<port>]`,
      { server: refText(ref) },
    );
  if (trackRef) {
    const pool =
      trackRef.backend === ref.backend ? state.servers : (state.tracked ?? state.servers);
    if (!pool.some((s) => s.server === trackRef.server))
      throw new UsageError(
        `--track ${refText(trackRef)}: ${unknownServer(trackRef, pool).message}`,
      );
  }
  const check = hasKeyword(keywords, "check");
  const agent = hasKeyword(keywords, "agent-check");
  if (req.waitUp && !check)
    throw new UsageError(
      "--wait-up waits for the health check to pass: add --check (without a check HAProxy counts the server UP at once)",
    );
  if (req.waitUp && req.maint)
    throw new UsageError(
      "--wait-up makes the server ready once its check passes; --maint keeps it out: pick one",
    );
  const cmds = addCommands(req, state.version, keywords);
  const weight = Number(keywordValue(keywords, "weight") ?? "1");
  const admin: Admin = req.maint || req.waitUp ? "MAINT" : "READY";
  const body: AddBody = {
    ref,
    address: req.address,
    keywords,
    weight,
    admin,
    check,
    agent,
    more: req.waitUp !== undefined,
  };
  const steps: Step[] = [
    {
      kind: "transaction",
      op: "server add",
      lines: cmds.all.map((c) => c.line),
      run: (sessions, sent) => runAdd(sessions, sent, cmds, ref),
    },
  ];
  if (req.waitUp) {
    steps.push(
      {
        kind: "wait",
        op: "server add",
        until: "check-passed",
        servers: [ref],
        timeoutMs: req.waitUp.timeoutMs,
        pollMs: req.waitUp.pollMs,
        leaves: `${refText(ref)} stays in maintenance (added, checked, taking no traffic)`,
        onTimeout: `fix what its check says, then hapops ready ${refText(ref)}; or remove it with hapops server del ${refText(ref)}`,
      },
      {
        kind: "replan",
        op: "server add",
        afterMs: 0,
        label: `make ${refText(ref)} ready once its check passed`,
        interrupted: `stopped by Ctrl-C before ${refText(ref)} was made ready; it stays in maintenance (hapops ready ${refText(ref)} lets traffic in)`,
        next: (simulate) =>
          readyAfterCheckOperation(
            req,
            simulate
              ? [...state.servers.map(toFacts), newServerFacts(ref, req.address, weight, "MAINT")]
              : undefined,
          ),
      },
    );
  }
  const others = state.servers.filter((s) => s.server !== ref.server);
  const weights = [...new Set(others.map((s) => s.initialWeight))];
  const p = req.paint;
  const then = req.maint
    ? `${p.status("MAINT")} (--maint: hapops ready ${refText(ref)} lets traffic in)`
    : req.waitUp
      ? `${p.status("MAINT")} until its health check passes, then ${p.status("READY")}`
      : p.status("READY");
  const describe = [
    `${refText(ref)}  new at ${formatAddress(req.address)}${keywords.length > 0 ? ` (${describeKeywords(keywords)})` : ""} -> ${then}`,
    ...(needsExperimental(state.version)
      ? [
          `note: HAProxy ${versionText(state.version)} takes add server only in experimental mode: hapops sends experimental-mode on first, for this connection only`,
        ]
      : []),
    ...(!hasKeyword(keywords, "weight") && weights.some((w) => w !== 1)
      ? [
          `note: weight 1, HAProxy's default (default-server does not apply to servers added at runtime); the others in ${ref.backend} have ${weights.join(", ")}: --weight sets it`,
        ]
      : []),
    ...(check && !req.waitUp && !req.maint
      ? [
          `note: it takes traffic at once and is checked at once (HAProxy starts a server leaving maintenance UP); --wait-up lets traffic in only once a check passed`,
        ]
      : []),
  ];
  return {
    version: 1,
    op: "server add",
    target: req.target,
    level: "admin",
    mutates: true,
    scope: { servers: [refText(ref)] },
    steps,
    guards: [],
    describe,
    json: {
      server: refText(ref),
      address: req.address.ip,
      port: req.address.port ?? null,
      keywords: keywords.map(([k, v]) => (v === undefined ? k : `${k} ${v}`)),
      admin,
      waitUp: req.waitUp !== undefined,
      haproxyVersion: state.version?.text ?? null,
    },
    report: { server: refText(ref) },
    detail: { server: refText(ref), address: formatAddress(req.address) },
    body,
  };
}

function newServerFacts(
  ref: ServerRef,
  address: ServerAddress,
  weight: number,
  admin: Admin,
): ServerFacts {
  return {
    backend: ref.backend,
    server: ref.server,
    address: address.ip,
    port: address.port,
    operational: "UP",
    admin,
    adminFlags: admin === "MAINT" ? ["FMAINT"] : [],
    weight,
    initialWeight: weight,
    sessions: 0,
  };
}

/** Compare the server HAProxy lists with what `server add` asked for. */
export function verifyAdd(servers: readonly ServerView[], body: AddBody): Verification {
  const { ref } = body;
  const s = servers.find((v) => v.server === ref.server);
  if (!s)
    return {
      mismatches: [`${refText(ref)} is not in HAProxy's show servers state`],
      summary: [],
      json: {},
    };
  const mismatches: string[] = [];
  const want = (field: string, expected: string, actual: string) => {
    if (expected !== actual)
      mismatches.push(`${refText(ref)} ${field}: expected ${expected}, HAProxy says ${actual}`);
  };
  want("address", canonicalIp(body.address.ip), canonicalIp(s.address));
  if (body.address.port !== undefined) want("port", String(body.address.port), String(s.port));
  want("weight", String(body.weight), String(s.weight));
  want("admin state", body.admin, s.admin);
  const health = body.check ? checkStateOf(s.fields, "health") : undefined;
  const agent = body.agent ? checkStateOf(s.fields, "agent") : undefined;
  if (health) want("health check", "enabled", health.status);
  if (agent) want("agent check", "enabled", agent.status);
  const checks = [health ? "health check enabled" : "", agent ? "agent check enabled" : ""]
    .filter(Boolean)
    .join(", ");
  return {
    mismatches,
    summary: [
      `verified: HAProxy lists ${refText(ref)} at ${viewAddress(s)}, weight ${s.weight}, ${s.admin}${checks ? `, ${checks}` : ""}`,
      ...(mismatches.length === 0 && !body.more ? [NOT_KEPT(ref)] : []),
    ],
    json: {
      server: {
        backend: s.backend,
        server: s.server,
        address: s.address,
        port: s.port ?? null,
        weight: s.weight,
        admin: s.admin,
        operational: s.operational,
        health: health?.status ?? null,
        agent: agent?.status ?? null,
      },
    },
  };
}

/** The second half of `server add --wait-up`: its check passed in maintenance; let traffic in. */
function readyAfterCheckOperation(
  req: ServerAddRequest,
  simulated?: readonly ServerFacts[],
): Operation<readonly ServerFacts[], ServerRef> {
  const { ref } = req;
  const read = async (s: RuntimeSession) => (await fetchServers(s, ref.backend)).map(toFacts);
  return {
    op: "server add",
    readLevel: "user",
    read: (sessions) => (simulated ? Promise.resolve(simulated) : read(sessions.read)),
    plan(facts): Plan<ServerRef> {
      const f = facts.find((x) => x.backend === ref.backend && x.server === ref.server);
      if (!f) throw unknownServer(ref, facts);
      const commands =
        f.admin === "READY" ? [] : [setServerState(ref.backend, ref.server, "ready")];
      return {
        version: 1,
        op: "server add",
        target: req.target,
        level: "admin",
        mutates: true,
        scope: { servers: [refText(ref)] },
        steps: commands.length > 0 ? [{ kind: "send", op: "server add", commands }] : [],
        guards: [],
        describe: [
          commands.length > 0
            ? `${refText(ref)}  ${req.paint.status(f.admin)} -> ${req.paint.status("READY")}  (its health check passed)`
            : `${refText(ref)}  ${req.paint.status("READY")}  (already; nothing sent)`,
        ],
        json: { server: refText(ref), before: f.admin, after: "READY" },
        report: { server: refText(ref) },
        body: ref,
      };
    },
    async verify(sessions): Promise<Verification> {
      const facts = await read(sessions.read);
      const f = facts.find((x) => x.server === ref.server);
      const mismatches = !f
        ? [`${refText(ref)} is not in HAProxy's show servers state`]
        : [
            ...(f.admin !== "READY"
              ? [`${refText(ref)} admin state: expected READY, HAProxy says ${f.admin}`]
              : []),
            ...(f.operational === "DOWN"
              ? [`${refText(ref)} is DOWN: its check failed since it passed`]
              : []),
          ];
      return {
        mismatches,
        summary: f
          ? [
              `verified: ${refText(ref)} is READY and ${f.operational}: it takes traffic`,
              ...(mismatches.length === 0 ? [NOT_KEPT(ref)] : []),
            ]
          : [],
        json: f ? { server: { ...f, port: f.port ?? null, sessions: f.sessions ?? null } } : {},
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// server del

export interface ServerDelRequest {
  readonly ref: ServerRef;
  /** Wait for the sessions to end (up to timeoutMs); without it a server in use is refused. */
  readonly wait: boolean;
  readonly timeoutMs: number;
  readonly pollMs: number;
  readonly killAfterMs?: number | undefined;
  readonly force: boolean;
  readonly target: string;
  readonly paint: Paint;
}

export interface DelState {
  readonly version: HaproxyVersion | undefined;
  readonly servers: readonly ServerView[];
}

/** Without --wait: how long HAProxy has to let go of a server that has no session. */
export const RELEASE_MS = 5000;

/** What the server was before `server del` touched it, to put back if HAProxy refuses. */
interface Before {
  readonly admin: Admin;
  readonly agentEnabled: boolean;
}

export interface DelBody {
  readonly ref: ServerRef;
  readonly before: Before;
  readonly disableAgent: boolean;
}

export function serverDelOperation(req: ServerDelRequest): Operation<DelState, DelBody> {
  const { ref } = req;
  return {
    op: "server del",
    readLevel: "user",
    async read(sessions) {
      const [version, servers] = await Promise.all([
        readVersion(sessions.read),
        fetchServers(sessions.read, ref.backend),
      ]);
      return { version, servers };
    },
    plan: (state) => planServerDel(state, req),
    async verify(sessions, plan): Promise<Verification> {
      const servers = await fetchServers(sessions.read, ref.backend);
      const s = servers.find((v) => v.server === ref.server);
      const mismatches: string[] = [];
      if (!s) mismatches.push(`${refText(ref)} is gone before del server was sent`);
      else {
        if (!s.adminFlags.includes("FMAINT"))
          mismatches.push(`${refText(ref)} admin state: expected MAINT, HAProxy says ${s.admin}`);
        if (plan.body.disableAgent && checkStateOf(s.fields, "agent").enabled)
          mismatches.push(`${refText(ref)} agent check: expected disabled, HAProxy says enabled`);
      }
      return {
        mismatches,
        summary: s
          ? [
              `verified: HAProxy reports ${refText(ref)} MAINT${plan.body.disableAgent ? ", its agent check disabled" : ""}`,
            ]
          : [],
        json: s
          ? {
              server: {
                backend: s.backend,
                server: s.server,
                admin: s.admin,
                sessions: s.stat?.scur ?? null,
              },
            }
          : {},
      };
    },
  };
}

/**
 * The plan of `server del` (pure): disable its agent (an agent could take it out of
 * maintenance), maintenance, a wait until HAProxy could delete it (cutting what is left after
 * --kill-after), then `del server` planned again from fresh state.
 */
export function planServerDel(state: DelState, req: ServerDelRequest): Plan<DelBody> {
  const { ref } = req;
  const view = state.servers.find((s) => s.server === ref.server);
  if (!view) throw unknownServer(ref, state.servers);
  const facts = state.servers.map(toFacts);
  const maint = planChange(facts, {
    op: "maint",
    selector: parseSelector(refText(ref)),
    force: req.force,
  });
  const agent = checkStateOf(view.fields, "agent");
  const before: Before = { admin: view.admin, agentEnabled: agent.enabled };
  const maintLines = maint.servers.reduce((n, s) => n + s.commands.length, 0);
  const commands = [
    ...(agent.enabled ? [setCheck("agent", false, ref.backend, ref.server)] : []),
    ...maint.servers.flatMap((s) => [...s.commands]),
  ];
  const sessions = view.stat?.scur ?? 0;
  const waits = req.wait || req.killAfterMs !== undefined;
  const guards: Guard[] = checkGuards(facts, maint.servers, req.force).map((g) => ({
    name: g.backend,
    ok: g.ok,
    forced: g.forced,
    reason: g.reason,
    ...(!g.ok && !g.forced
      ? {
          error: new GuardError(
            `refusing server del ${refText(ref)}: ${g.reason}. Pass --force to do it anyway (it is recorded).`,
            { backend: g.backend, servingBefore: g.servingBefore },
          ),
        }
      : {}),
    detail: { backend: g.backend, servingBefore: g.servingBefore, servingAfter: g.servingAfter },
  }));
  if (!waits && sessions > 0)
    guards.push({
      name: "sessions",
      ok: false,
      // --force does not pass it: del server would be refused all the same.
      forced: false,
      reason: `${refText(ref)} has ${sessions} session${sessions === 1 ? "" : "s"}`,
      error: new GuardError(
        `refusing server del ${refText(ref)}: it has ${sessions} session${sessions === 1 ? "" : "s"}, and HAProxy deletes only a server with none. --wait waits for them to end (up to --wait-timeout), --kill-after <dur> cuts what is left after <dur>; or cut them first with hapops sessions kill ${refText(ref)}`,
        { server: refText(ref), sessions },
      ),
    });
  const timeoutMs = waits ? req.timeoutMs : RELEASE_MS;
  const srvRemovable = versionAtLeast(state.version, [3, 0]) && state.version !== undefined;
  const body: DelBody = { ref, before, disableAgent: agent.enabled };
  const steps: Step[] = [];
  if (commands.length > 0) steps.push({ kind: "send", op: "server del", commands });
  steps.push(
    {
      kind: "wait",
      op: "server del",
      until: "removable",
      servers: [ref],
      timeoutMs,
      pollMs: req.pollMs,
      srvRemovable,
      killAfterMs: req.killAfterMs,
      killOp: "sessions kill",
      leaves: `${refText(ref)} stays MAINT and is not deleted`,
      onTimeout: waits
        ? `wait longer (--wait-timeout), or cut what is left (--kill-after <dur>, or hapops sessions kill ${refText(ref)}), then run hapops server del ${refText(ref)} again`
        : `run hapops server del ${refText(ref)} again with --wait (and --kill-after <dur> to cut what is left)`,
    },
    {
      kind: "replan",
      op: "server del",
      afterMs: 0,
      label: `delete ${refText(ref)}`,
      interrupted: `stopped by Ctrl-C before del server; ${refText(ref)} stays MAINT`,
      next: (simulate) =>
        serverDeleteOperation(
          req,
          body,
          simulate
            ? {
                version: state.version,
                names: state.servers.map((s) => s.server),
              }
            : undefined,
        ),
    },
  );
  const p = req.paint;
  const inUse = sessions > 0 ? `${sessions} session${sessions === 1 ? "" : "s"}` : "";
  const describe = [
    commands.length === 0
      ? `${refText(ref)}  ${p.status("MAINT")}  (already in maintenance${inUse ? `, ${inUse}` : ""}; nothing to send before del server)`
      : `${refText(ref)}  ${maintLines > 0 ? `${p.status(view.admin)} -> ` : ""}${p.status("MAINT")} -> deleted${inUse ? `  (${inUse})` : ""}`,
    ...(agent.enabled
      ? [
          `agent check: disabled first (an agent answering "ready" could take ${refText(ref)} out of maintenance)`,
        ]
      : []),
    ...(state.version && !versionAtLeast(state.version, [2, 5])
      ? [
          `note: HAProxy ${versionText(state.version)} deletes only servers added at runtime (add server); one from haproxy.cfg is refused, and put back as it was`,
        ]
      : []),
  ];
  return {
    version: 1,
    op: "server del",
    target: req.target,
    level: "admin",
    mutates: true,
    scope: { servers: [refText(ref)] },
    steps,
    guards,
    describe,
    json: {
      server: refText(ref),
      before: { admin: view.admin, agent: agent.status, sessions },
      wait: { timeoutMs, killAfterMs: req.killAfterMs ?? null, srvRemovable },
      haproxyVersion: state.version?.text ?? null,
    },
    report: { server: refText(ref) },
    detail: { server: refText(ref) },
    body,
  };
}

interface DeleteState {
  readonly version: HaproxyVersion | undefined;
  /** The backend's server names. */
  readonly names: readonly string[];
}

/** HAProxy refusals of `del server` that no wait changes (src/server.c). */
const PERMANENT =
  /^This server cannot be removed at runtime|^Only servers added at runtime via <add server>/;

function explainDelRefusal(
  line: string,
  message: string,
  ref: ServerRef,
  restored: string,
): string {
  const name = refText(ref);
  const hint = /^This server cannot be removed at runtime/.test(message)
    ? `something in haproxy.cfg points at ${name} (a server that tracks it, a use-server rule...), so HAProxy cannot delete it at runtime: remove those references and the server from haproxy.cfg, then reload`
    : /^Only servers added at runtime via <add server>/.test(message)
      ? `this HAProxy (before 2.5) deletes only servers added with add server; ${name} comes from haproxy.cfg: remove it there and reload`
      : /^Server still has connections/.test(message)
        ? `a connection reached ${name} again after the wait; it stays MAINT: run hapops server del ${name} again (--kill-after <dur> cuts what is left)`
        : /^Only servers in maintenance mode/.test(message)
          ? `${name} left maintenance since hapops put it there (someone ran ready?); nothing was deleted`
          : /^No such server/.test(message)
            ? `${name} is gone: someone deleted it first`
            : `see "del server" in HAProxy's management.txt (section 9.3)`;
  return `HAProxy refused "${line}": ${message} — ${hint}${restored}`;
}

/** The last step of `server del`: `del server`, then read back that it is gone. */
function serverDeleteOperation(
  req: ServerDelRequest,
  body: DelBody,
  simulated?: DeleteState,
): Operation<DeleteState, DelBody> {
  const { ref } = req;
  return {
    op: "server del",
    readLevel: "user",
    async read(sessions) {
      if (simulated) return simulated;
      const [version, servers] = await Promise.all([
        readVersion(sessions.read),
        fetchServers(sessions.read, ref.backend),
      ]);
      return { version, names: servers.map((s) => s.server) };
    },
    plan(state): Plan<DelBody> {
      const present = state.names.includes(ref.server);
      const commands = present
        ? [
            ...(needsExperimental(state.version) ? [experimentalModeOn()] : []),
            delServer(ref.backend, ref.server),
          ]
        : [];
      const del = commands.at(-1);
      // What puts the server back as it was, when HAProxy will never delete it.
      const restore = [
        ...(body.before.admin === "MAINT"
          ? []
          : [
              setServerState(
                ref.backend,
                ref.server,
                body.before.admin === "DRAIN" ? "drain" : "ready",
              ),
            ]),
        ...(body.before.agentEnabled ? [setCheck("agent", true, ref.backend, ref.server)] : []),
      ];
      return {
        version: 1,
        op: "server del",
        target: req.target,
        level: "admin",
        mutates: true,
        scope: { servers: [refText(ref)] },
        steps:
          commands.length > 0
            ? [
                {
                  kind: "transaction",
                  op: "server del",
                  lines: commands.map((c) => c.line),
                  async run(sessions, sent) {
                    for (const cmd of commands) {
                      sent.push(cmd.line);
                      try {
                        await sessions.write.run(cmd);
                      } catch (e) {
                        if (!(e instanceof HaproxyError) || cmd !== del) throw e;
                        let restored = "";
                        if (PERMANENT.test(e.haproxyMessage) && restore.length > 0) {
                          sent.push(...restore.map((r) => r.line));
                          const back = await Promise.allSettled(
                            restore.map((r) => sessions.write.run(r)),
                          );
                          restored = back.every((b) => b.status === "fulfilled")
                            ? `; it is ${body.before.admin} again, as before (${restore.map((r) => r.line).join(", ")})`
                            : `; putting it back as before failed: it stays MAINT (hapops ready ${refText(ref)})`;
                        }
                        throw new HaproxyError(
                          cmd.line,
                          e.haproxyMessage,
                          explainDelRefusal(cmd.line, e.haproxyMessage, ref, restored),
                        );
                      }
                    }
                  },
                },
              ]
            : [],
        guards: [],
        describe: [
          present
            ? `${refText(ref)}  ${req.paint.status("MAINT")} -> deleted`
            : `${refText(ref)}  gone already (nothing sent)`,
        ],
        json: { server: refText(ref) },
        report: { server: refText(ref) },
        detail: { server: refText(ref) },
        body,
      };
    },
    async verify(sessions): Promise<Verification> {
      const servers = await fetchServers(sessions.read, ref.backend);
      const still = servers.some((s) => s.server === ref.server);
      return {
        mismatches: still ? [`${refText(ref)} is still in HAProxy's show servers state`] : [],
        summary: [
          `verified: ${refText(ref)} is gone (show servers state ${ref.backend} no longer lists it)`,
          `runtime only: a reload brings ${refText(ref)} back while haproxy.cfg has it; remove it there too`,
        ],
        json: { deleted: !still },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// server set-addr

export interface ServerSetAddrRequest {
  readonly ref: ServerRef;
  readonly address: ServerAddress;
  readonly target: string;
  readonly paint: Paint;
}

export interface SetAddrBody {
  readonly ref: ServerRef;
  readonly ip: string;
  readonly port: number | undefined;
  readonly changed: boolean;
}

export function serverSetAddrOperation(
  req: ServerSetAddrRequest,
): Operation<readonly ServerView[], SetAddrBody> {
  const { ref } = req;
  return {
    op: "server set-addr",
    readLevel: "user",
    read: (sessions) => fetchServers(sessions.read, ref.backend),
    plan: (servers) => planSetAddr(servers, req),
    async verify(sessions, plan): Promise<Verification> {
      const servers = await fetchServers(sessions.read, ref.backend);
      const s = servers.find((v) => v.server === ref.server);
      const b = plan.body;
      const mismatches = !s
        ? [`${refText(ref)} is not in HAProxy's show servers state`]
        : [
            ...(canonicalIp(s.address) !== canonicalIp(b.ip)
              ? [`${refText(ref)} address: expected ${b.ip}, HAProxy says ${s.address}`]
              : []),
            ...(b.port !== undefined && s.port !== b.port
              ? [`${refText(ref)} port: expected ${b.port}, HAProxy says ${s.port ?? "none"}`]
              : []),
          ];
      return {
        mismatches,
        summary: s
          ? [
              `verified: HAProxy reports ${refText(ref)} at ${viewAddress(s)}`,
              ...(mismatches.length === 0 && b.changed
                ? [
                    `runtime only: a reload brings back the address in haproxy.cfg, and a server-state file keeps the new port but not the new IP (measured on 2.6): change haproxy.cfg too`,
                  ]
                : []),
            ]
          : [],
        json: s
          ? {
              server: {
                backend: s.backend,
                server: s.server,
                address: s.address,
                port: s.port ?? null,
              },
            }
          : {},
      };
    },
  };
}

/** The plan of `server set-addr` (pure): nothing to send when it is there already. */
export function planSetAddr(
  servers: readonly ServerView[],
  req: ServerSetAddrRequest,
): Plan<SetAddrBody> {
  const { ref } = req;
  const s = servers.find((v) => v.server === ref.server);
  if (!s) throw unknownServer(ref, servers);
  const port = req.address.port ?? s.port;
  const same =
    canonicalIp(s.address) === canonicalIp(req.address.ip) &&
    (req.address.port === undefined || req.address.port === s.port);
  const commands = same ? [] : [setServerAddr(ref.backend, ref.server, req.address)];
  const to = formatAddress({ ip: req.address.ip, port });
  return {
    version: 1,
    op: "server set-addr",
    target: req.target,
    level: "admin",
    mutates: true,
    scope: { servers: [refText(ref)] },
    steps: commands.length > 0 ? [{ kind: "send", op: "server set-addr", commands }] : [],
    guards: [],
    describe: [
      same
        ? `${refText(ref)}  ${viewAddress(s)}  (already; nothing sent)`
        : `${refText(ref)}  ${viewAddress(s)} -> ${req.paint.bold(to)}${
            s.stat && s.stat.scur > 0
              ? `  (${s.stat.scur} session${s.stat.scur === 1 ? "" : "s"} stay on the old address until they end)`
              : ""
          }`,
    ],
    json: {
      server: refText(ref),
      before: { address: s.address, port: s.port ?? null },
      after: { address: req.address.ip, port: port ?? null },
    },
    report: { server: refText(ref) },
    detail: { server: refText(ref), from: viewAddress(s), to },
    body: { ref, ip: req.address.ip, port: req.address.port, changed: !same },
  };
}

/** `--kw name[=value]`, as given on the command line. */
export function parseKeywordFlag(text: string): ServerKeyword {
  const eq = text.indexOf("=");
  const name = eq < 0 ? text : text.slice(0, eq);
  if (!/^[a-z][a-z0-9-]*$/.test(name))
    throw new ValidationError(
      `--kw ${JSON.stringify(text)}: expected <keyword> or <keyword>=<value>`,
    );
  return eq < 0 ? [name] : [name, text.slice(eq + 1)];
}
