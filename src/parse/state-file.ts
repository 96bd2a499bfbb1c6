/**
 * HAProxy's server-state file (`server-state-file`, written from `show servers state`), read the
 * way HAProxy reads it when it starts or reloads (apply_server_state, src/server_state.c).
 */

/** One row of a state file, read by position as HAProxy reads it (srv_state_parse_line). */
export interface StateRow {
  readonly backend: string;
  readonly server: string;
  readonly adminBits: number;
  readonly weight: number;
  readonly initialWeight: number;
}

/** A state file as HAProxy would take it at a reload. */
export interface StateFileRead {
  readonly path: string;
  readonly exists: boolean;
  /** Rows HAProxy would use; undefined when it would ignore the whole file (see problem). */
  readonly rows?: readonly StateRow[] | undefined;
  /** Why HAProxy would ignore the file, or why hapops cannot read it. */
  readonly problem?: string | undefined;
  /** True when hapops could not read it (so it cannot say what HAProxy would do). */
  readonly unreadable?: boolean | undefined;
}

/** SRV_STATE_FILE_MIN_FIELDS_VERSION_1 (src/server_state.c): fewer makes the file "corrupted". */
const MIN_FIELDS = 20;

/**
 * Parse a state file's text. HAProxy wants "1" alone on the first line, skips "#" lines, and
 * takes every other line by position; a line without its newline (the last one cut short) or
 * with too few fields makes the whole file "corrupted", and then no backend gets any state
 * from it (measured on 2.6: "corrupted global server state file ... at line 5").
 */
export function parseStateFile(path: string, text: string): StateFileRead {
  if (text.length === 0) return { path, exists: true, problem: "it is empty" };
  const lines = text.split("\n");
  const last = lines.pop();
  if (last !== "")
    return {
      path,
      exists: true,
      problem: `its last line has no newline, so HAProxy takes it for a corrupted file and ignores all of it`,
    };
  if (lines[0] !== "1")
    return {
      path,
      exists: true,
      problem: `its first line is not the format version 1, so HAProxy ignores it`,
    };
  const rows: StateRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.replace(/^[ \t]+/, "");
    if (line.length === 0 || line.startsWith("#")) continue;
    const f = line.split(/[ \t]+/);
    if (f.length < MIN_FIELDS)
      return {
        path,
        exists: true,
        problem: `line ${i + 1} has ${f.length} fields (HAProxy wants at least ${MIN_FIELDS}), so HAProxy takes it for a corrupted file and ignores all of it`,
      };
    rows.push({
      backend: f[1]!,
      server: f[3]!,
      adminBits: Number(f[6]),
      weight: Number(f[7]),
      initialWeight: Number(f[8]),
    });
  }
  return { path, exists: true, rows };
}
