import { ownFiles, type InputFiles } from "../../host/input-files.js";
import type { MapKind } from "../../commands/builders.js";
import { parseMapText } from "../../ops/map.js";
import type { MapEntry, MapInfo } from "../../parse/map.js";
import { renderJson, renderTable } from "../output.js";
import type { MapLookup, MapShow } from "../../engine/reads.js";

export const MAP_LIST_HEADERS = ["ID", "FILE", "ENTRIES", "DESCRIPTION"] as const;

/** One row of the list of maps (or ACLs), under MAP_LIST_HEADERS. */
export function mapListCells(m: MapInfo): string[] {
  return [`#${m.id}`, m.file || "-", String(m.entries ?? "-"), m.description.slice(0, 70)];
}

export function entryHeaders(kind: MapKind): string[] {
  return kind === "map" ? ["KEY", "VALUE"] : ["PATTERN"];
}

/** One entry of a map (key, value) or an ACL (pattern), under entryHeaders. */
export function entryCells(kind: MapKind, e: MapEntry): string[] {
  return kind === "map" ? [e.key, e.value ?? ""] : [e.key];
}

/** `map|acl show`, for people or as JSON. */
export function printMapShow(kind: MapKind, shown: MapShow, json: boolean): string {
  if (shown.maps) {
    if (json) return renderJson(shown.maps);
    return renderTable(MAP_LIST_HEADERS, shown.maps.map(mapListCells));
  }
  const list = shown.entries ?? [];
  if (json) return list.map((e) => JSON.stringify(e) + "\n").join("");
  return renderTable(
    entryHeaders(kind),
    list.map((e) => entryCells(kind, e)),
  );
}

/** The `map|acl get --json` answer. */
export function lookupJson(kind: MapKind, r: MapLookup) {
  return {
    [kind]: r.ref,
    lookup: r.value,
    found: r.found,
    value: r.found ? (r.mapped ?? null) : null,
    ...(kind === "acl" ? { pattern: r.pattern ?? null } : {}),
  };
}

/** The `map|acl get` answer in words, one line without its newline. */
export function lookupText(kind: MapKind, r: MapLookup): string {
  if (!r.found) return `${r.value}: no match`;
  if (kind === "acl") return `${r.value}: matches${r.pattern !== undefined ? ` ${r.pattern}` : ""}`;
  return `${r.value} -> ${r.mapped ?? "(matched)"}`;
}

/** `map|acl get`, for people or as JSON. */
export function printMapGet(kind: MapKind, r: MapLookup, json: boolean): string {
  if (json) return renderJson(lookupJson(kind, r));
  return lookupText(kind, r) + "\n";
}

/** Read a map file ("key value", value = rest of line) or ACL file (one pattern per line). */
export function readMapFile(kind: MapKind, path: string, files: InputFiles = ownFiles): MapEntry[] {
  return parseMapText(kind, files.readText(path, "--from"), path);
}
