import type { MapKind } from "../../commands/builders.js";
import type { Reached } from "../../engine/fleet.js";
import type {
  CertsResult,
  CertView,
  InfoResult,
  MapLookup,
  MapShow,
  ServersResult,
} from "../../engine/reads.js";
import { ExitCode, PartialError, type HapopsError } from "../../errors.js";
import type { FleetTableSink } from "../../engine/fleet-reads.js";
import type { Backpressure } from "../../runtime/session.js";
import { entryJson } from "../../ops/table.js";
import type { StatEntry } from "../../parse/stat.js";
import type { TableEntry, TableInfo } from "../../parse/table.js";
import { colors, renderPairs, renderTable } from "../output.js";
import { CERT_HEADERS, certCells, expiringLine, openTransactionLine } from "./certs.js";
import { INFO_HEADERS, infoCells } from "./info.js";
import {
  entryCells,
  entryHeaders,
  lookupJson,
  lookupText,
  MAP_LIST_HEADERS,
  mapListCells,
} from "./map.js";
import { SERVER_HEADERS, serverCells, serverRow } from "./servers.js";
import { STAT_HEADERS, statCells, statJson } from "./stat.js";
import { EntryPrinter } from "./table.js";

/**
 * Reads over many targets (-t, -g, --all), printed: one merged table with TARGET first, and one
 * JSON shape for every kind,
 *
 *   {"<kind>": [{"target": "lb1", ...the row one target prints}, ...],
 *    "targets": [{"target": "lb1", "ok": true},
 *                {"target": "lb3", "ok": false, "error": {"code", "exitCode", "message"}}]}
 *
 * A target that did not answer is a row saying so, never a gap, and the exit code (4, PARTIAL)
 * says the answer is partial.
 */

export interface PrintOptions {
  readonly json: boolean;
  readonly color: boolean;
}

/** The JSON of a fleet read: arrays of rows by kind, then `targets` (see above). */
export type FleetJson = Record<string, readonly unknown[]>;

/** What a fleet read prints, and the error it ends with (after printing), if any. */
export interface FleetOutcome {
  readonly output: string;
  readonly error: HapopsError | undefined;
}

/** One line of at most `max` characters: a table cell must not wrap. */
export function cut(text: string, max = 60): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? one.slice(0, max - 1).trimEnd() + "…" : one;
}

/** A socket that could not be reached, or stopped answering (fleet.ts says the same). */
function unreachable(e: HapopsError): boolean {
  return e.exitCode === ExitCode.socket && e.code !== "LEVEL_TOO_LOW";
}

/** The cell that stands for a target's rows when it has none to give. */
export function failureText(e: HapopsError): string {
  return `${unreachable(e) ? "not reached" : "failed"}: ${cut(e.message)}`;
}

export function targetsJson(reached: readonly Reached<unknown>[]) {
  return reached.map((r) =>
    r.ok
      ? { target: r.name, ok: true }
      : {
          target: r.name,
          ok: false,
          error: { code: r.error.code, exitCode: r.error.exitCode, message: r.error.message },
        },
  );
}

/** Every target's rows, each with its `target` first, then `extra` kinds, then `targets`. */
export function fleetJson<T>(
  kind: string,
  reached: readonly Reached<T>[],
  rowsOf: (value: T) => readonly object[],
  extra: FleetJson = {},
): FleetJson {
  return {
    [kind]: reached.flatMap((r) =>
      r.ok ? rowsOf(r.value).map((row) => withTarget(r.name, row)) : [],
    ),
    ...extra,
    targets: targetsJson(reached),
  };
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "  ");
}

function withTarget(target: string, row: object): object {
  return { target, ...row };
}

/**
 * JSON in the style of renderJson: an object whose arrays print one compact element per line
 * (greppable, and cheap for 10,000 rows per target).
 */
export function renderFleetJson(value: FleetJson): string {
  const parts = Object.entries(value).map(
    ([k, rows]) =>
      `  ${JSON.stringify(k)}: ` +
      (rows.length === 0
        ? "[]"
        : `[\n${rows.map((r) => `    ${JSON.stringify(r)}`).join(",\n")}\n  ]`),
  );
  return `{\n${parts.join(",\n")}\n}\n`;
}

/**
 * One table over every target: TARGET, then the kind's own columns. A target that did not
 * answer is a row with its name and why (in red on a terminal); one that answered with nothing
 * is a row that says so. The rows keep the targets' order.
 */
export function renderMerged<T>(
  headers: readonly string[],
  reached: readonly Reached<T>[],
  rowsOf: (value: T) => string[][],
  opts: { readonly color: boolean; readonly empty: string },
): string {
  const c = colors(opts.color);
  const rows: string[][] = [];
  const notes = new Map<number, string>();
  for (const r of reached) {
    const own = r.ok ? rowsOf(r.value) : [];
    if (own.length > 0) {
      for (const cells of own) rows.push([r.name, ...cells]);
      continue;
    }
    // The note is written after the table is laid out, so a long message widens no column.
    notes.set(rows.length, r.ok ? c.dim(opts.empty) : c.red(failureText(r.error)));
    rows.push([r.name]);
  }
  const header = ["TARGET", ...headers];
  const width = Math.max(header[0]!.length, ...rows.map((r) => r[0]!.length)) + 2;
  const lines = renderTable(header, rows).split("\n");
  for (const [i, note] of notes) lines[i + 1] = rows[i]![0]!.padEnd(width) + note;
  return lines.join("\n");
}

/**
 * The error a fleet read ends with: none when every target answered; when no target answered
 * and all failed alike with an exit code other than 4 (bad input everywhere: a backend that no
 * target has), that error, as one target would end, carrying the JSON to print with it;
 * otherwise PARTIAL (exit 4), whose message names every target that did not answer. Under
 * --json it is silent: the JSON says which targets did not answer.
 */
export function fleetError(
  reached: readonly Reached<unknown>[],
  opts: {
    readonly json: boolean;
    readonly report: () => FleetJson;
    /** False once rows were printed: then it can only be partial. */
    readonly alike?: boolean;
  },
): HapopsError | undefined {
  const failed = reached.flatMap((r) => (r.ok ? [] : [r]));
  if (failed.length === 0) return undefined;
  const first = failed[0]!.error;
  if (
    opts.alike !== false &&
    failed.length === reached.length &&
    first.exitCode !== ExitCode.socket &&
    failed.every((f) => f.error.exitCode === first.exitCode)
  ) {
    // cli/main.ts prints an error's report beside it under --json: the one shape, with no rows
    // (made first, so that each target's own message stays as it was).
    const report = opts.report();
    if (reached.length > 1)
      first.message += ` (on every target: ${reached.map((r) => r.name).join(", ")})`;
    (first as HapopsError & { report?: object }).report = report;
    return first;
  }
  const why = failed.map((f) => `${f.name}: ${f.error.message}`).join("; ");
  const n = reached.length;
  return new PartialError(
    n === 1
      ? `${failed[0]!.name} did not answer: ${first.message}`
      : failed.length === n
        ? `none of the ${n} targets answered (${why})`
        : `${failed.length} of ${n} targets did not answer (${why}); the rows above are from the others`,
    opts.json,
  );
}

/** The output of a fleet read and how it ends; nothing is printed when no target answered. */
export function settleFleetRead(
  reached: readonly Reached<unknown>[],
  opts: PrintOptions,
  view: { readonly json: () => FleetJson; readonly text: () => string },
): FleetOutcome {
  const error = fleetError(reached, { json: opts.json, report: view.json });
  if (error && error.code !== "PARTIAL") return { output: "", error };
  return { output: opts.json ? renderFleetJson(view.json()) : view.text(), error };
}

/** Print a fleet read's output, then throw the error it ends with (a partial answer: exit 4). */
export function finishFleetRead(outcome: FleetOutcome, out: (text: string) => void): void {
  if (outcome.output) out(outcome.output);
  if (outcome.error) throw outcome.error;
}

export function printFleetServers(
  reached: readonly Reached<ServersResult>[],
  opts: PrintOptions,
): FleetOutcome {
  const c = colors(opts.color);
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("servers", reached, (v) => v.servers.map(serverRow)),
    text: () =>
      renderMerged(SERVER_HEADERS, reached, (v) => v.servers.map((s) => serverCells(s, c)), {
        color: opts.color,
        empty: "no servers",
      }),
  });
}

export function printFleetStat(
  reached: readonly Reached<StatEntry[]>[],
  opts: PrintOptions,
): FleetOutcome {
  const c = colors(opts.color);
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("stat", reached, (v) => v.map(statJson)),
    text: () =>
      renderMerged(STAT_HEADERS, reached, (v) => v.map((e) => statCells(e, c)), {
        color: opts.color,
        empty: "no proxies",
      }),
  });
}

/**
 * One row per target with the fields that tell them apart; with --full, every field of each
 * target in turn. JSON rows are every field, as for one target.
 */
export function printFleetInfo(
  reached: readonly Reached<InfoResult>[],
  opts: PrintOptions & { readonly full: boolean },
): FleetOutcome {
  const c = colors(opts.color);
  const full = () =>
    reached
      .map((r) =>
        r.ok
          ? `${r.name}:\n${indent(renderPairs(Object.entries(r.value.info)))}`
          : `${r.name}: ${c.red(failureText(r.error))}\n`,
      )
      .join("");
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("info", reached, (v) => [v.info]),
    text: () =>
      opts.full
        ? full()
        : renderMerged(INFO_HEADERS, reached, (v) => [infoCells(v.info)], {
            color: opts.color,
            empty: "no answer",
          }),
  });
}

/** `certs` over many targets: each target's certificates, soonest expiry first. */
export function printFleetCerts(
  reached: readonly Reached<CertsResult>[],
  opts: PrintOptions & {
    /** With --expiring: the certificates inside the window, by target. */
    readonly expiring?: ReadonlyMap<string, readonly CertView[]> | undefined;
  },
): FleetOutcome {
  const c = colors(opts.color);
  const expiring = opts.expiring;
  const byTarget = (map: ReadonlyMap<string, readonly CertView[]>) =>
    [...map].flatMap(([target, certs]) => certs.map((cert) => ({ target, file: cert.file })));
  const extra: FleetJson = {
    openTransactions: reached.flatMap((r) =>
      r.ok ? r.value.openTransactions.map((file) => ({ target: r.name, file })) : [],
    ),
    ...(expiring ? { expiring: byTarget(expiring) } : {}),
  };
  const text = () => {
    let out = renderMerged(CERT_HEADERS, reached, (v) => v.certs.map((x) => certCells(x, c)), {
      color: opts.color,
      empty: "no certificates loaded",
    });
    if (expiring)
      out += expiringLine(
        byTarget(expiring).map((x) => `${x.target} ${x.file}`),
        c,
      );
    for (const r of reached)
      if (r.ok)
        for (const t of r.value.openTransactions) out += openTransactionLine(t, c, `${r.name}: `);
    return out;
  };
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("certs", reached, (v) => v.certs, extra),
    text,
  });
}

/** `map|acl show` over many targets: the list of maps, or the entries of one. */
export function printFleetMapShow(
  kind: MapKind,
  reached: readonly Reached<MapShow>[],
  opts: PrintOptions,
  listing: boolean,
): FleetOutcome {
  if (listing)
    return settleFleetRead(reached, opts, {
      json: () => fleetJson(`${kind}s`, reached, (v) => v.maps ?? []),
      text: () =>
        renderMerged(MAP_LIST_HEADERS, reached, (v) => (v.maps ?? []).map(mapListCells), {
          color: opts.color,
          empty: `no ${kind}s`,
        }),
    });
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("entries", reached, (v) => v.entries ?? []),
    text: () =>
      renderMerged(
        entryHeaders(kind),
        reached,
        (v) => (v.entries ?? []).map((e) => entryCells(kind, e)),
        { color: opts.color, empty: kind === "map" ? "no entries" : "no patterns" },
      ),
  });
}

/** `map|acl get` over many targets: each target's answer. */
export function printFleetMapGet(
  kind: MapKind,
  reached: readonly Reached<MapLookup>[],
  opts: PrintOptions,
): FleetOutcome {
  return settleFleetRead(reached, opts, {
    json: () => fleetJson("lookups", reached, (v) => [lookupJson(kind, v)]),
    text: () =>
      renderMerged(["ANSWER"], reached, (v) => [[lookupText(kind, v)]], {
        color: opts.color,
        empty: "no answer",
      }),
  });
}

/**
 * `table show` over many targets, printed as fleet-reads.ts streams it (one target after the
 * other): rows with TARGET first, or the JSON shape with `entries` written as they come (so
 * `tables` and `targets` follow them). Notes (a failure, an empty answer) wait for the first
 * entry, so that when no target answers nothing is printed but the error.
 */
export class FleetEntryOutput implements FleetTableSink {
  private readonly printer: EntryPrinter | undefined;
  private readonly pending: { target: string; text: string }[] = [];
  private readonly tables: { target: string; info: TableInfo }[] = [];
  private readonly counts = new Map<string, number>();
  private readonly c: ReturnType<typeof colors>;
  /** Entries printed so far, from every target. */
  count = 0;
  readonly backpressure: Backpressure | undefined;

  /** `backpressure`: whether `out` can take more (see StreamOptions). */
  constructor(
    private readonly out: (text: string) => void,
    private readonly table: string,
    targets: readonly string[],
    private readonly opts: PrintOptions & {
      readonly key?: string | undefined;
      readonly backpressure?: Backpressure | undefined;
    },
  ) {
    this.backpressure = opts.backpressure;
    this.c = colors(opts.color);
    if (!opts.json)
      this.printer = new EntryPrinter(out, 500, { header: "TARGET", values: targets });
  }

  entry(target: string, e: TableEntry): void {
    this.count++;
    this.counts.set(target, (this.counts.get(target) ?? 0) + 1);
    this.flushNotes();
    if (this.printer) this.printer.push(e, target);
    else
      this.out(
        (this.count === 1 ? `{\n  "entries": [\n    ` : `,\n    `) +
          JSON.stringify({ target, ...entryJson(this.table, e) }),
      );
  }

  info(target: string, info: TableInfo): void {
    this.tables.push({ target, info });
  }

  done(r: Reached<TableInfo>): void {
    if (r.ok && (this.counts.get(r.name) ?? 0) > 0) return;
    const text = r.ok
      ? this.c.dim(this.opts.key !== undefined ? `no entry for key ${this.opts.key}` : "no entries")
      : this.c.red(failureText(r.error));
    this.pending.push({ target: r.name, text });
    if (this.count > 0) this.flushNotes();
  }

  private flushNotes(): void {
    for (const n of this.pending.splice(0)) this.printer?.note(n.target, n.text);
  }

  /** The rest of the output, once every target is done; returns the error to end with. */
  end(reached: readonly Reached<TableInfo>[]): HapopsError | undefined {
    const tables = this.tables.map(({ target, info }) => ({ target, ...info }));
    const error = fleetError(reached, {
      json: this.opts.json,
      report: () => ({ entries: [], tables, targets: targetsJson(reached) }),
      alike: this.count === 0,
    });
    if (error && error.code !== "PARTIAL") return error;
    if (this.printer) {
      this.flushNotes();
      this.printer.end({ header: false });
      for (const { target, info } of this.tables)
        this.out(
          this.c.dim(
            `${target}: table ${info.name}, type ${info.type}, ${info.used} of ${info.size} entries used\n`,
          ),
        );
      return error;
    }
    const rest = renderFleetJson({ tables, targets: targetsJson(reached) });
    this.out((this.count === 0 ? `{\n  "entries": []` : `\n  ]`) + `,\n${rest.slice(2)}`);
    return error;
  }
}
