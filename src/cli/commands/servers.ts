import type { ServersResult } from "../../engine/reads.js";
import type { ServerView } from "../../engine/state.js";
import { colors, colorStatus, renderJson, renderTable, type Colors } from "../output.js";

/** The `servers --json` row: the DESIGN.md contract, plus check, sessions and adminFlags. */
export function serverRow(s: ServerView) {
  return {
    backend: s.backend,
    server: s.server,
    address: s.address,
    port: s.port ?? null,
    operational: s.operational,
    admin: s.admin,
    weight: s.weight,
    initialWeight: s.initialWeight,
    check: s.stat?.checkStatus || null,
    sessions: s.stat?.scur ?? null,
    adminFlags: s.adminFlags,
  };
}

function hostPort(s: ServerView): string {
  const host = s.address.includes(":") ? `[${s.address}]` : s.address;
  return s.port === undefined ? host : `${host}:${s.port}`;
}

export const SERVER_HEADERS = [
  "SERVER",
  "ADDRESS",
  "STATE",
  "ADMIN",
  "WEIGHT",
  "SESSIONS",
  "CHECK",
] as const;

/** One row of the `servers` table, under SERVER_HEADERS. */
export function serverCells(s: ServerView, c: Colors): string[] {
  return [
    `${s.backend}/${s.server}`,
    hostPort(s),
    colorStatus(c, s.operational),
    colorStatus(c, s.admin) +
      (s.adminFlags.length > 0 && s.admin !== "READY" ? c.dim(` (${s.adminFlags.join(",")})`) : ""),
    s.weight === s.initialWeight ? String(s.weight) : `${s.weight} (config ${s.initialWeight})`,
    String(s.stat?.scur ?? "-"),
    s.stat?.checkStatus ? colorStatus(c, s.stat.checkStatus) : "-",
  ];
}

export function printServers(
  result: ServersResult,
  opts: { json: boolean; color: boolean },
): string {
  if (opts.json) return renderJson(result.servers.map(serverRow));
  const c = colors(opts.color);
  return renderTable(
    SERVER_HEADERS,
    result.servers.map((s) => serverCells(s, c)),
  );
}
