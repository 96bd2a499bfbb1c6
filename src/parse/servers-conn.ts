import { ProtocolError } from "../errors.js";

/** A server's connections as `show servers conn` reports them. */
export interface ServerConnections {
  readonly backend: string;
  readonly server: string;
  /** Connections in use right now (`used_cur`). */
  readonly used: number;
  /** Idle connections kept for reuse (`idle_cur`); they too keep a server from being deleted. */
  readonly idle: number;
  /** Every column by header name, including ones hapops does not read. */
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * `show servers conn [<backend>]`: a `# ` header of column names, then one row per server,
 * space-separated, `<backend>/<server>` first (management.txt 9.3). Columns differ by version:
 * 3.4 adds `served` and `idle_sess` (measured), so they are looked up by name. A row may be
 * shorter than the header: a server without an idle pool has no `idle_per_thr` columns (measured
 * on 2.4 and 2.6 for servers added with `add server`).
 */
export function parseServersConn(lines: readonly string[]): ServerConnections[] {
  let columns: string[] | undefined;
  const out: ServerConnections[] = [];
  for (const line of lines) {
    if (line.trim().length === 0) continue;
    if (columns === undefined) {
      if (!line.startsWith("#"))
        throw new ProtocolError("show servers conn answer has no column header", {
          line: line.slice(0, 200),
        });
      columns = line.slice(1).trim().split(/ +/);
      for (const need of ["bkname/svname", "used_cur", "idle_cur"])
        if (!columns.includes(need))
          throw new ProtocolError(`show servers conn header lacks ${need}`, { columns });
      continue;
    }
    if (line.startsWith("#")) continue;
    const cells = line.trim().split(/ +/);
    const fields: Record<string, string> = {};
    columns.forEach((c, i) => {
      if (cells[i] !== undefined) fields[c] = cells[i];
    });
    const name = fields["bkname/svname"] ?? "";
    const slash = name.indexOf("/");
    if (slash <= 0)
      throw new ProtocolError("show servers conn row does not start with <backend>/<server>", {
        line: line.slice(0, 200),
      });
    out.push({
      backend: name.slice(0, slash),
      server: name.slice(slash + 1),
      used: count(fields["used_cur"]),
      idle: count(fields["idle_cur"]),
      fields,
    });
  }
  return out;
}

function count(cell: string | undefined): number {
  return cell !== undefined && /^\d+$/.test(cell) ? Number(cell) : 0;
}
