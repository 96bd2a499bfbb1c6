import { namesOf } from "../certs/validate.js";
import { showMaps, showSslCert } from "../commands/builders.js";
import { findConfigPath, resolveSettings, type GlobalFlags } from "../config/settings.js";
import { readConfigFile, SYSTEM_CONFIG } from "../config/load.js";
import type { Settings } from "../config/settings.js";
import { readNamesOn } from "../engine/reads.js";
import { parseMapList } from "../parse/map.js";
import { parseSslCertDetail, parseSslCertList } from "../parse/ssl-cert.js";
import { RuntimeSession } from "../runtime/session.js";
import { connect } from "../transport/connect.js";
import type { Names, ValueKind } from "../cli/completion/candidates.js";

/**
 * The names completion offers, read for the line being completed: from its config (-c,
 * HAPOPS_CONFIG) and its socket (-s, -t, -g, the config's default). A Tab must never hang the
 * shell, so the socket gets one budget for connecting and answering; when it runs out the
 * completion goes on with what it has. Nothing here writes the audit log: these are reads of
 * names, made with the rights of whoever presses Tab.
 */

/** The longest a Tab waits for HAProxy: connect, answer, and the config read before them. */
export const NAMES_BUDGET_MS = 300;

export interface NamesOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly euid: number;
  /** Whether this run is under sudo (the lock-down applies); throws when that cannot be told. */
  readonly underSudo: () => boolean;
  readonly budgetMs?: number;
  readonly now?: () => number;
  /** What happened, for `hapops __complete --debug`; silent otherwise. */
  readonly log?: (text: string) => void;
}

type Source = "servers" | "maps" | "acls" | "certs" | "config";

function sourceOf(kind: ValueKind): Source | undefined {
  switch (kind) {
    case "selector":
    case "server":
    case "proxy":
    case "backend":
    case "table":
      return "servers";
    case "map":
      return "maps";
    case "acl":
      return "acls";
    case "cert":
      return "certs";
    case "socket":
    case "targets":
    case "groups":
      return "config";
    case "file":
    case "dir":
      return undefined;
  }
}

/** The program's options that say where names come from; the rest cannot make a read fail. */
function whereFrom(g: GlobalFlags): GlobalFlags {
  const out: GlobalFlags = {};
  if (g.socket !== undefined) out.socket = g.socket;
  if (g.config !== undefined) out.config = g.config;
  if (g.tlsCert !== undefined) out.tlsCert = g.tlsCert;
  if (g.tlsKey !== undefined) out.tlsKey = g.tlsKey;
  if (g.tlsCa !== undefined) out.tlsCa = g.tlsCa;
  if (g.insecureTcp !== undefined) out.insecureTcp = g.insecureTcp;
  // Over many targets, names come from the first: fleets are meant to run the same config.
  if (g.target !== undefined) out.target = g.target;
  if (g.group !== undefined) out.group = g.group;
  if (g.all !== undefined) out.all = g.all;
  return out;
}

type Found = { -readonly [K in keyof Names]: Names[K] };

/**
 * A session that ends at `deadline` whatever happens: connecting gets what is left of the time,
 * and the connection is destroyed when the time is up, so no timer of the session (each answer
 * gets its own) can keep the process, and the shell waiting for it, alive past the limit.
 */
async function withSessionUntil<T>(
  settings: Settings,
  deadline: number,
  now: () => number,
  fn: (session: RuntimeSession) => Promise<T>,
): Promise<T> {
  const left = () => Math.max(1, deadline - now());
  const socket = await connect(settings.target, {
    connectTimeoutMs: left(),
    tls: settings.tls,
    insecureTcp: settings.insecureTcp,
  });
  const cut = setTimeout(() => socket.destroy(), left());
  const session = RuntimeSession.start(socket, {
    target: settings.targetText,
    timeoutMs: left(),
    purpose: "hapops completion",
  });
  try {
    return await fn(session);
  } finally {
    await session.close();
    clearTimeout(cut);
  }
}

/** Read the names a value of `kind` needs. Never throws; never waits past the budget. */
export async function readCompletionNames(
  kind: ValueKind | undefined,
  globals: GlobalFlags,
  opts: NamesOptions,
): Promise<Names> {
  const source = kind === undefined ? undefined : sourceOf(kind);
  if (source === undefined) return {};
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => undefined);
  const budget = opts.budgetMs ?? NAMES_BUDGET_MS;
  const started = now();
  const found: Found = {};
  let where = "?";
  const read = async () => {
    const flags = whereFrom(globals);
    const sudo = opts.underSudo();
    if (source === "config") {
      const path = sudo ? SYSTEM_CONFIG : findConfigPath(flags, opts.env);
      where = path ?? "no config";
      if (path === undefined) return;
      const file = await readConfigFile(path);
      found.targets = Object.entries(file.targets ?? {}).map(([name, t]) => ({
        name,
        socket: t.socket,
      }));
      found.groups = Object.entries(file.groups ?? {}).map(([name, members]) => ({
        name,
        members,
      }));
      return;
    }
    const resolved = await resolveSettings(
      flags,
      { env: opts.env, stdoutIsTTY: false, stderrIsTTY: false, euid: opts.euid, sudo },
      "change",
    );
    where = resolved.targetText;
    const deadline = started + budget;
    if (source === "servers") {
      const names = await withSessionUntil(resolved, deadline, now, readNamesOn);
      found.servers = names.servers;
      found.backends = names.backends;
      found.tables = names.tables;
    } else if (source === "maps" || source === "acls") {
      // Map and ACL lists keep the socket's level (3.4 refuses them below admin; reads.ts).
      const kindName = source === "maps" ? "map" : "acl";
      const list = await withSessionUntil(resolved, deadline, now, async (session) =>
        parseMapList(await session.run(showMaps(kindName))),
      );
      found[source] = [...new Set(list.map((m) => m.file).filter((f) => f !== ""))];
    } else {
      await withSessionUntil(resolved, deadline, now, async (session) => {
        // `show ssl cert` needs operator level (grammar.ts).
        await session.lowerTo("operator");
        const files = parseSslCertList(await session.run(showSslCert())).files;
        found.certFiles = files;
        const details = await session.pipeline(files.map((f) => showSslCert(f)));
        found.certDomains = [
          ...new Set(
            details.flatMap((lines) => {
              const d = parseSslCertDetail(lines);
              return namesOf({ sans: d.sans, subject: d.subject ?? "" });
            }),
          ),
        ];
      });
    }
  };

  let timer: NodeJS.Timeout | undefined;
  const outOfTime = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), budget);
  });
  const reading = read().then(
    () => "done" as const,
    (e: unknown) => e,
  );
  const outcome = await Promise.race([reading, outOfTime]);
  clearTimeout(timer);
  const ms = Math.round(now() - started);
  // At the limit the connection is destroyed too (withSessionUntil): whichever is seen first,
  // the read was cut by the limit.
  if (outcome === "late" || (outcome !== "done" && ms >= budget))
    log(`${source} from ${where}: gave up after ${ms} ms (limit ${budget} ms)\n`);
  else if (outcome === "done") log(`${source} from ${where}: read in ${ms} ms\n`);
  else log(`${source} from ${where}: failed after ${ms} ms: ${(outcome as Error).message}\n`);
  return found;
}
