import type { Reached } from "../../engine/fleet.js";
import type { SessionsResult, SessionView } from "../../engine/reads.js";
import { colors, renderJson, renderTable } from "../output.js";
import { fleetJson, renderMerged, settleFleetRead, type FleetOutcome } from "./fleet-read.js";

/** The `sessions --json` row of one session (a stream of HAProxy). */
export function sessionRow(s: SessionView) {
  return {
    id: s.id,
    proto: s.proto,
    client: s.client ? clientText(s) : null,
    clientAddress: s.client?.address ?? null,
    clientPort: s.client?.port ?? null,
    frontend: s.frontend ?? null,
    backend: s.backend ?? null,
    server: s.server ?? null,
    age: s.age,
    ageSeconds: s.ageSec ?? null,
    bytesIn: s.bytesIn ?? null,
    bytesOut: s.bytesOut ?? null,
  };
}

function clientText(s: SessionView): string {
  const c = s.client!;
  if (c.address === "unix") return `unix (listener ${c.port ?? "?"})`;
  const host = c.address.includes(":") ? `[${c.address}]` : c.address;
  return c.port === undefined ? host : `${host}:${c.port}`;
}

export const SESSION_HEADERS = [
  "CLIENT",
  "FRONTEND",
  "BACKEND/SERVER",
  "AGE",
  "BYTES IN",
  "BYTES OUT",
] as const;

export function sessionCells(s: SessionView): string[] {
  return [
    s.client ? clientText(s) : "-",
    s.frontend ?? "-",
    s.backend === undefined ? "-" : `${s.backend}/${s.server ?? "-"}`,
    s.age,
    s.bytesIn === undefined ? "-" : String(s.bytesIn),
    s.bytesOut === undefined ? "-" : String(s.bytesOut),
  ];
}

function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The line under the table: how many matched, and how many of them are listed. */
function footer(r: SessionsResult): string {
  const where = r.selector === null ? "" : ` on ${r.selector}`;
  if (r.matched === 0) return `no sessions${where}`;
  if (r.sessions.length === r.matched)
    return `${counted(r.matched, "session")}${where}${r.matched > 1 ? ", oldest first" : ""}`;
  return `the oldest ${r.sessions.length} of ${counted(r.matched, "session")}${where} (--limit lists more)`;
}

export function printSessions(r: SessionsResult, opts: { json: boolean; color: boolean }): string {
  if (opts.json)
    return renderJson({
      selector: r.selector,
      sessions: r.sessions.map(sessionRow),
      matched: r.matched,
      listed: r.sessions.length,
    });
  const c = colors(opts.color);
  const table =
    r.sessions.length > 0 ? renderTable(SESSION_HEADERS, r.sessions.map(sessionCells)) : "";
  return table + c.dim(`${footer(r)}\n`);
}

/** `sessions` over many targets: one table with TARGET first; a footer line per target. */
export function printFleetSessions(
  reached: readonly Reached<SessionsResult>[],
  opts: { json: boolean; color: boolean },
): FleetOutcome {
  const c = colors(opts.color);
  return settleFleetRead(reached, opts, {
    json: () =>
      fleetJson("sessions", reached, (v) => v.sessions.map(sessionRow), {
        matched: reached.flatMap((r) =>
          r.ok
            ? [{ target: r.name, matched: r.value.matched, listed: r.value.sessions.length }]
            : [],
        ),
      }),
    text: () =>
      renderMerged(SESSION_HEADERS, reached, (v) => v.sessions.map(sessionCells), {
        color: opts.color,
        empty: "no sessions",
      }) +
      reached
        .flatMap((r) =>
          r.ok && r.value.matched > r.value.sessions.length
            ? [c.dim(`${r.name}: ${footer(r.value)}\n`)]
            : [],
        )
        .join(""),
  });
}
