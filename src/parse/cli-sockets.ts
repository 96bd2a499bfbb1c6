import { ProtocolError } from "../errors.js";

export interface CliSocket {
  /** "unix@/run/haproxy/admin.sock", "ipv4@127.0.0.1:9999", "ipv6@[::1]:9999". */
  address: string;
  /** "user", "operator" or "admin". */
  level: string;
  /** "all", or process numbers separated by commas. */
  processes: string;
}

/**
 * `show cli sockets`: a "# socket lvl processes" header, then one space-separated line per stats
 * socket (management.txt 9.3). Columns are read by their header name.
 */
export function parseCliSockets(lines: readonly string[]): CliSocket[] {
  const sockets: CliSocket[] = [];
  let columns: string[] | undefined;
  for (const line of lines) {
    if (line.startsWith("#")) {
      columns ??= line.slice(1).trim().split(/ +/);
      continue;
    }
    if (line.length === 0) continue;
    if (columns === undefined) {
      throw new ProtocolError('show cli sockets answer has a row before its "#" header', {
        line: line.slice(0, 200),
      });
    }
    const cells = line.trim().split(/ +/);
    const cell = (name: string): string => {
      const at = columns?.indexOf(name) ?? -1;
      return at < 0 ? "" : (cells[at] ?? "");
    };
    sockets.push({ address: cell("socket"), level: cell("lvl"), processes: cell("processes") });
  }
  return sockets;
}
