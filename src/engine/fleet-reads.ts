import { getMap, type MapKind } from "../commands/builders.js";
import { validateName } from "../commands/validate.js";
import type { Settings } from "../config/settings.js";
import { isHapopsError, UsageError } from "../errors.js";
import { parseFilter } from "../ops/table.js";
import type { StatEntry } from "../parse/stat.js";
import type { TableEntry, TableInfo } from "../parse/table.js";
import type { Backpressure } from "../runtime/session.js";
import { fanOut, type Reached } from "./fleet.js";
import {
  parseProxyArg,
  runCerts,
  runInfo,
  runMapGet,
  runMapShow,
  runServers,
  runStat,
  runTableShow,
  type CertsResult,
  type InfoResult,
  type MapLookup,
  type MapShow,
  type ServersResult,
  type TableShowRequest,
} from "./reads.js";

/**
 * The read commands over the targets -t, -g or --all chose (DESIGN.md, "Fleet"): the same reads
 * as for one target (reads.ts), on every target at once, each answer or failure kept in the
 * targets' order. Input is checked once, before any target is reached, so bad input is exit 2
 * with nothing sent, as it is for one target.
 */

function members(s: Settings) {
  if (!s.fleet) throw new Error("a fleet read without a fleet");
  return s.fleet.members;
}

/** `read` on every target of the fleet, in parallel (fleet.ts bounds how many at once). */
export function readEach<T>(
  s: Settings,
  read: (one: Settings) => Promise<T>,
): Promise<Reached<T>[]> {
  return fanOut(members(s), (m) => read(m.settings));
}

export function fleetInfo(s: Settings): Promise<Reached<InfoResult>[]> {
  return readEach(s, (one) => runInfo(one));
}

export function fleetServers(
  s: Settings,
  backend: string | undefined,
): Promise<Reached<ServersResult>[]> {
  if (backend !== undefined) validateName("backend name", backend);
  return readEach(s, (one) => runServers(one, backend));
}

/** Every target's `show stat` rows, held per target (a merged table needs them all for widths). */
export function fleetStat(s: Settings, arg: string | undefined): Promise<Reached<StatEntry[]>[]> {
  parseProxyArg(arg);
  return readEach(s, async (one) => {
    const entries: StatEntry[] = [];
    await runStat(one, arg, (e) => entries.push(e));
    return entries;
  });
}

export function fleetCerts(s: Settings, now: Date): Promise<Reached<CertsResult>[]> {
  return readEach(s, (one) => runCerts(one, now));
}

export function fleetMapShow(
  s: Settings,
  kind: MapKind,
  ref: string | undefined,
): Promise<Reached<MapShow>[]> {
  return readEach(s, (one) => runMapShow(one, kind, ref));
}

export function fleetMapGet(
  s: Settings,
  kind: MapKind,
  ref: string,
  value: string,
): Promise<Reached<MapLookup>[]> {
  getMap(kind, ref, value);
  return readEach(s, (one) => runMapGet(one, kind, ref, value));
}

/** What `table show` over many targets hands its printer, as it happens. */
export interface FleetTableSink {
  entry(target: string, entry: TableEntry): void;
  info(target: string, info: TableInfo): void;
  /** A target is done: answered (after its entries), or failed (after any it had streamed). */
  done(reached: Reached<TableInfo>): void;
  /** What the printer writes to can be full (see StreamOptions). */
  readonly backpressure?: Backpressure | undefined;
}

/**
 * `table show` over many targets, one target after the other in the fleet's order, each one
 * streamed: a stick table can hold millions of entries, and holding every target's at once
 * (to merge them) could take gigabytes. Slower than in parallel, but memory stays that of one
 * entry, whatever the tables' sizes.
 */
export async function fleetTableShow(
  s: Settings,
  req: TableShowRequest,
  sink: FleetTableSink,
): Promise<Reached<TableInfo>[]> {
  validateName("table name", req.table);
  parseFilter(req.filter);
  if (req.key !== undefined && req.filter !== undefined)
    throw new UsageError("give --key or --filter, not both");
  return fanOut(
    members(s),
    async (m) => {
      try {
        const info = await runTableShow(m.settings, req, {
          entry: (e) => sink.entry(m.name, e),
          info: (i) => sink.info(m.name, i),
          backpressure: sink.backpressure,
        });
        sink.done({ name: m.name, ok: true, value: info });
        return info;
      } catch (e) {
        // Said in its place among the rows, not after every other target.
        if (isHapopsError(e)) sink.done({ name: m.name, ok: false, error: e });
        throw e;
      }
    },
    1,
  );
}
