import type { Reached } from "../../engine/fleet.js";
import { errorLine, type ErrorEvent, type ErrorsAnswer } from "../../parse/errors.js";
import { colors, renderJson, renderTable, type Colors } from "../output.js";
import { cut, fleetJson, renderMerged, settleFleetRead, type FleetOutcome } from "./fleet-read.js";

/** The `errors --json` element of one event: every field parsed, the buffer as printed. */
export function errorRow(e: ErrorEvent) {
  const at = errorLine(e);
  return {
    when: e.when,
    direction: e.direction,
    proxy: e.proxy,
    proxyId: e.proxyId,
    frontend: e.direction === "request" ? e.proxy : (e.other ?? null),
    backend: e.direction === "request" ? (e.other ?? null) : e.proxy,
    server: e.server ?? null,
    event: e.event,
    source: e.source,
    length: e.length ?? null,
    errorAt: e.errorAt ?? null,
    errorChar: at?.char ?? null,
    errorLine: at?.line.text ?? null,
    details: e.details,
    buffer: e.buffer,
    ...(e.warning ? { warning: e.warning } : {}),
  };
}

export const ERROR_HEADERS = [
  "WHEN",
  "WHAT",
  "FRONTEND",
  "BACKEND/SERVER",
  "SOURCE",
  "ERROR",
] as const;

/** Where it broke: `at 41: ' ' in "Bad Header: x\r\n"`. */
function whereText(e: ErrorEvent): string {
  const at = errorLine(e);
  if (!at) return e.errorAt === undefined ? "-" : `at ${e.errorAt}`;
  return `at ${e.errorAt}: '${at.char}' in "${cut(at.line.text, 48)}"`;
}

export function errorCells(e: ErrorEvent, c: Colors): string[] {
  const row = errorRow(e);
  return [
    e.when,
    c.yellow(`invalid ${e.direction}`),
    row.frontend ?? "-",
    row.backend === null ? "-" : `${row.backend}/${row.server ?? "-"}`,
    e.source || "-",
    whereText(e),
  ];
}

/** One event as HAProxy prints it (for --full): the header, then the buffer, error marked. */
function fullText(e: ErrorEvent, c: Colors): string {
  const at = errorLine(e);
  const lines = [
    `[${e.when}] ${e.direction === "request" ? "frontend" : "backend"} ${e.proxy}: invalid ${e.direction}, event #${e.event}, src ${e.source}`,
    `  ${e.direction === "request" ? "backend" : "frontend"} ${e.other ?? "<NONE>"}, server ${e.server ?? "<NONE>"}; ${e.length ?? "?"} bytes, error at position ${e.errorAt ?? "?"}`,
    ...e.details.map((d) => c.dim(`  ${d}`)),
    ...e.buffer.map((l) => {
      const mark = at?.line === l ? c.yellow("  <- here") : "";
      return `  ${String(l.offset).padStart(5, "0")}${l.continued ? "+" : " "} ${l.text}${mark}`;
    }),
    ...(e.warning ? [c.yellow(`  ${e.warning}`)] : []),
  ];
  return lines.join("\n") + "\n";
}

function summary(a: ErrorsAnswer): string {
  const kept = a.events.length;
  return `${kept === 0 ? "no errors kept" : `${kept} error${kept === 1 ? "" : "s"} kept`} (HAProxy keeps the last invalid request of each frontend and the last invalid response of each backend; ${a.total} since it started)`;
}

export function printErrors(
  a: ErrorsAnswer,
  opts: { json: boolean; color: boolean; full: boolean },
): string {
  if (opts.json)
    return renderJson({
      capturedAt: a.capturedAt,
      total: a.total,
      events: a.events.map(errorRow),
    });
  const c = colors(opts.color);
  if (opts.full) return a.events.map((e) => fullText(e, c)).join("\n") + c.dim(`${summary(a)}\n`);
  const table =
    a.events.length > 0
      ? renderTable(
          ERROR_HEADERS,
          a.events.map((e) => errorCells(e, c)),
        )
      : "";
  return table + c.dim(`${summary(a)}\n`);
}

/** `errors` over many targets: one table with TARGET first. */
export function printFleetErrors(
  reached: readonly Reached<ErrorsAnswer>[],
  opts: { json: boolean; color: boolean },
): FleetOutcome {
  const c = colors(opts.color);
  return settleFleetRead(reached, opts, {
    json: () =>
      fleetJson("errors", reached, (v) => v.events.map(errorRow), {
        totals: reached.flatMap((r) =>
          r.ok ? [{ target: r.name, total: r.value.total, capturedAt: r.value.capturedAt }] : [],
        ),
      }),
    text: () =>
      renderMerged(ERROR_HEADERS, reached, (v) => v.events.map((e) => errorCells(e, c)), {
        color: opts.color,
        empty: "no errors kept",
      }),
  });
}
