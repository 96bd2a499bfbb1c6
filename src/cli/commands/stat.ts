import { showStat } from "../../commands/builders.js";
import { validateName } from "../../commands/validate.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import { rethrowUnknownBackend } from "../../engine/state.js";
import { UsageError } from "../../errors.js";
import { StatParser, toStatEntry, type StatEntry } from "../../parse/stat.js";
import { suggestion } from "../../util/suggest.js";
import { colors, colorStatus, renderTable } from "../output.js";

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
 * text, and with --json never as a whole either.
 */
export async function runStat(
  settings: Settings,
  arg: string | undefined,
  onEntry: (entry: StatEntry) => void,
): Promise<void> {
  const { proxy, server } = parseProxyArg(arg);
  await withSession(settings, "hapops stat", async (session) => {
    const serverNames: string[] = [];
    let matched = 0;
    const parser = new StatParser((row) => {
      const entry = toStatEntry(row);
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
        session.stream(showStat(proxy), (l) => parser.line(l)),
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

/** The --json element: typed fields, plus `fields` with every non-empty column by its HAProxy name. */
export function statJson(e: StatEntry) {
  const { row, ...typed } = e;
  return { ...typed, fields: row };
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

export function printStat(entries: readonly StatEntry[], opts: { color: boolean }): string {
  const c = colors(opts.color);
  const rows = entries.map((e) => [
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
