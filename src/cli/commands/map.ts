import { ownFiles, type InputFiles } from "../../host/input-files.js";
import { getMap, showMap, showMaps, type MapKind } from "../../commands/builders.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import { findMap, parseLookup, parseMapText, readEntries } from "../../ops/map.js";
import { parseMapList, type MapEntry, type MapInfo } from "../../parse/map.js";
import type { RuntimeSession } from "../../runtime/session.js";
import { renderJson, renderTable } from "../output.js";

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

export async function runMapShow(
  settings: Settings,
  kind: MapKind,
  ref: string | undefined,
): Promise<string> {
  return withSession(settings, `hapops ${kind} show`, async (session) => {
    void session.lowerTo("user").catch(() => undefined);
    if (ref === undefined) {
      const maps = await withLiveCounts(
        session,
        kind,
        parseMapList(await session.run(showMaps(kind))),
      );
      if (settings.json) return renderJson(maps);
      return renderTable(
        ["ID", "FILE", "ENTRIES", "DESCRIPTION"],
        maps.map((m) => [
          `#${m.id}`,
          m.file || "-",
          String(m.entries ?? "-"),
          m.description.slice(0, 70),
        ]),
      );
    }
    await findMap(session, kind, ref);
    const list = await readEntries(session, kind, ref);
    if (settings.json) return list.map((e) => JSON.stringify(e) + "\n").join("");
    return renderTable(
      kind === "map" ? ["KEY", "VALUE"] : ["PATTERN"],
      list.map((e) => (kind === "map" ? [e.key, e.value ?? ""] : [e.key])),
    );
  });
}

export async function runMapGet(
  settings: Settings,
  kind: MapKind,
  ref: string,
  value: string,
): Promise<string> {
  const cmd = getMap(kind, ref, value);
  return withSession(settings, `hapops ${kind} get`, async (session) => {
    void session.lowerTo("user").catch(() => undefined);
    await findMap(session, kind, ref);
    const { found, value: mapped, pattern } = parseLookup((await session.run(cmd)).join(" "));
    if (settings.json)
      return renderJson({
        [kind]: ref,
        lookup: value,
        found,
        value: found ? (mapped ?? null) : null,
        ...(kind === "acl" ? { pattern: pattern ?? null } : {}),
      });
    if (!found) return `${value}: no match\n`;
    if (kind === "acl") return `${value}: matches${pattern !== undefined ? ` ${pattern}` : ""}\n`;
    return `${value} -> ${mapped ?? "(matched)"}\n`;
  });
}

/** Read a map file ("key value", value = rest of line) or ACL file (one pattern per line). */
export function readMapFile(kind: MapKind, path: string, files: InputFiles = ownFiles): MapEntry[] {
  return parseMapText(kind, files.readText(path, "--from"), path);
}
