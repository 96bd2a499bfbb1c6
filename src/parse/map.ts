/** `show map` / `show acl` without a name: the loaded maps or ACLs. */
export interface MapInfo {
  readonly id: number;
  /** The file it was loaded from; "" for ACLs written inline in the config. */
  readonly file: string;
  readonly description: string;
  readonly entries: number | undefined;
  readonly currentVersion: number | undefined;
  readonly nextVersion: number | undefined;
}

/**
 * "2 (/etc/haproxy/hosts.map) pattern loaded from file '...' used by map at file '...' line 18.
 * curr_ver=0 next_ver=0 entry_cnt=2" (2.6; the version fields appeared in 2.4).
 */
export function parseMapList(lines: readonly string[]): MapInfo[] {
  const out: MapInfo[] = [];
  for (const line of lines) {
    const m = /^(-?\d+) \(([^)]*)\) (.*)$/.exec(line);
    if (!m) continue;
    const num = (k: string) => {
      const v = new RegExp(`\\b${k}=(\\d+)`).exec(m[3]!);
      return v ? Number(v[1]) : undefined;
    };
    out.push({
      id: Number(m[1]),
      file: m[2]!,
      description: m[3]!.replace(/\s*curr_ver=.*$/, ""),
      entries: num("entry_cnt"),
      currentVersion: num("curr_ver"),
      nextVersion: num("next_ver"),
    });
  }
  return out;
}

export interface MapEntry {
  readonly key: string;
  /** Undefined for ACL patterns. */
  readonly value: string | undefined;
}

/** `show map <m>` lines "0x55d1... key value" (the value is the rest of the line); ACLs have no value. */
export function parseMapEntry(line: string, withValue: boolean): MapEntry | undefined {
  const m = /^0x[0-9a-f]+ (\S+)(?: (.*))?$/.exec(line);
  if (!m) return undefined;
  return { key: m[1]!, value: withValue ? (m[2] ?? "") : undefined };
}
