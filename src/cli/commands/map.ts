import { ownFiles, type InputFiles } from "../../host/input-files.js";
import type { MapKind } from "../../commands/builders.js";
import { parseMapText } from "../../ops/map.js";
import type { MapEntry } from "../../parse/map.js";
import { renderJson, renderTable } from "../output.js";
import type { MapLookup, MapShow } from "../../engine/reads.js";

/** `map|acl show`, for people or as JSON. */
export function printMapShow(kind: MapKind, shown: MapShow, json: boolean): string {
  if (shown.maps) {
    if (json) return renderJson(shown.maps);
    return renderTable(
      ["ID", "FILE", "ENTRIES", "DESCRIPTION"],
      shown.maps.map((m) => [
        `#${m.id}`,
        m.file || "-",
        String(m.entries ?? "-"),
        m.description.slice(0, 70),
      ]),
    );
  }
  const list = shown.entries ?? [];
  if (json) return list.map((e) => JSON.stringify(e) + "\n").join("");
  return renderTable(
    kind === "map" ? ["KEY", "VALUE"] : ["PATTERN"],
    list.map((e) => (kind === "map" ? [e.key, e.value ?? ""] : [e.key])),
  );
}

/** `map|acl get`, for people or as JSON. */
export function printMapGet(kind: MapKind, r: MapLookup, json: boolean): string {
  if (json)
    return renderJson({
      [kind]: r.ref,
      lookup: r.value,
      found: r.found,
      value: r.found ? (r.mapped ?? null) : null,
      ...(kind === "acl" ? { pattern: r.pattern ?? null } : {}),
    });
  if (!r.found) return `${r.value}: no match\n`;
  if (kind === "acl")
    return `${r.value}: matches${r.pattern !== undefined ? ` ${r.pattern}` : ""}\n`;
  return `${r.value} -> ${r.mapped ?? "(matched)"}\n`;
}

/** Read a map file ("key value", value = rest of line) or ACL file (one pattern per line). */
export function readMapFile(kind: MapKind, path: string, files: InputFiles = ownFiles): MapEntry[] {
  return parseMapText(kind, files.readText(path, "--from"), path);
}
