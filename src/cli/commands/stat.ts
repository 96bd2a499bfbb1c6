import { showStat } from "../../commands/builders.js";
import { validateName } from "../../commands/validate.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import { rethrowUnknownBackend } from "../../engine/state.js";
import { UsageError } from "../../errors.js";
import { StatParser, toStatEntry, type StatEntry } from "../../parse/stat.js";
import { suggestion } from "../../util/suggest.js";
import { colors, colorStatus, renderJson, renderTable } from "../output.js";

export interface StatResult {
  readonly entries: StatEntry[];
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

export async function runStat(settings: Settings, arg: string | undefined): Promise<StatResult> {
  const { proxy, server } = parseProxyArg(arg);
  return withSession(settings, "hapops stat", async (session) => {
    const parser = new StatParser();
    try {
      await Promise.all([
        session.lowerTo("user"),
        session.stream(showStat(proxy), (l) => parser.line(l)),
      ]);
    } catch (e) {
      if (proxy === undefined) throw e;
      await rethrowUnknownBackend(session, proxy, e);
    }
    let entries = parser.rows.map(toStatEntry);
    if (server !== undefined) {
      const servers = entries.filter((e) => e.kind === "server");
      entries = servers.filter((e) => e.name === server);
      if (entries.length === 0)
        throw new UsageError(
          `backend ${proxy} has no server named ${server}; ${suggestion(
            server,
            servers.map((s) => s.name),
          )}`,
        );
    }
    return { entries };
  });
}

function num(n: number | undefined): string {
  return n === undefined ? "-" : String(n);
}

function ago(sec: number | undefined): string {
  if (sec === undefined) return "-";
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h`;
  return `${Math.floor(sec / 86400)}d`;
}

export function printStat(result: StatResult, opts: { json: boolean; color: boolean }): string {
  if (opts.json)
    return renderJson(result.entries.map(({ row, ...typed }) => ({ ...typed, fields: row })));
  const c = colors(opts.color);
  const rows = result.entries.map((e) => [
    e.kind === "server" ? `${e.proxy}/${e.name}` : e.proxy,
    e.kind.toUpperCase(),
    colorStatus(c, e.status || "-"),
    num(e.weight),
    String(e.scur),
    String(e.smax),
    String(e.stot),
    String(e.rate),
    e.checkStatus ? colorStatus(c, e.checkStatus) : "-",
    ago(e.lastChangeSec),
  ]);
  return renderTable(
    ["NAME", "TYPE", "STATUS", "WEIGHT", "SCUR", "SMAX", "STOT", "RATE", "CHECK", "LASTCHG"],
    rows,
  );
}
