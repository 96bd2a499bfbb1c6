import { ProtocolError } from "../errors.js";

export type Operational = "UP" | "DOWN" | "STARTING" | "STOPPING";
export type Admin = "READY" | "DRAIN" | "MAINT";

/** `srv_op_state` (management.txt 9.3, show servers state). */
const OPERATIONAL: readonly Operational[] = [
  "DOWN", // 0 SRV_ST_STOPPED
  "STARTING", // 1 SRV_ST_STARTING: up but throttled (slowstart)
  "UP", // 2 SRV_ST_RUNNING
  "STOPPING", // 3 SRV_ST_STOPPING: up but soft-stopping (e.g. a 404 on http-check disable-on-404)
];

export function decodeOperational(code: number): Operational {
  const state = OPERATIONAL[code];
  if (state === undefined) {
    throw new ProtocolError(`unknown srv_op_state ${code}`, { srv_op_state: code });
  }
  return state;
}

export interface AdminFlag {
  readonly bit: number;
  readonly name: string;
  /** What the bit alone makes of the server; "NONE" for bits that only record something. */
  readonly effect: "MAINT" | "DRAIN" | "NONE";
  readonly meaning: string;
}

/**
 * The `srv_admin_state` bit field (management.txt 9.3, show servers state; SRV_ADMF_* in
 * include/haproxy/server-t.h). HAProxy's own masks decide the state: SRV_ADMF_MAINT is
 * FMAINT|IMAINT|RMAINT (0x23) and SRV_ADMF_DRAIN is FDRAIN|IDRAIN (0x18). CMAINT only records
 * `disabled` in the config: it comes with FMAINT (5), and `enable server` clears FMAINT but keeps
 * CMAINT, leaving 4 on a server that is UP and taking traffic (measured on 2.6: `show stat` says
 * "no check", not "MAINT"). HMAINT records an FQDN set from the CLI.
 * Also measured on 2.6: `disable server` sets 1, `set server state drain` 8, a server that
 * `track`s one in maintenance or drain gets 2 or 16, and one whose name did not resolve with
 * `init-addr none` gets 32.
 */
export const ADMIN_FLAGS: readonly AdminFlag[] = [
  { bit: 0x01, name: "FMAINT", effect: "MAINT", meaning: "forced into maintenance" },
  { bit: 0x02, name: "IMAINT", effect: "MAINT", meaning: "maintenance inherited (track)" },
  { bit: 0x04, name: "CMAINT", effect: "NONE", meaning: "disabled in the configuration" },
  { bit: 0x08, name: "FDRAIN", effect: "DRAIN", meaning: "forced into drain" },
  { bit: 0x10, name: "IDRAIN", effect: "DRAIN", meaning: "drain inherited (track)" },
  { bit: 0x20, name: "RMAINT", effect: "MAINT", meaning: "address resolution failed" },
  { bit: 0x40, name: "HMAINT", effect: "NONE", meaning: "FQDN set from the CLI" },
];

/**
 * Maintenance wins over drain: a server in both takes no traffic at all. Bits this table does not
 * know are listed as hex ("0x80") so they are seen, but do not change `admin`.
 */
export function decodeAdmin(bits: number): { admin: Admin; flags: string[] } {
  const flags: string[] = [];
  let maint = false;
  let drain = false;
  let known = 0;
  for (const flag of ADMIN_FLAGS) {
    known |= flag.bit;
    if ((bits & flag.bit) === 0) continue;
    flags.push(flag.name);
    if (flag.effect === "MAINT") maint = true;
    else if (flag.effect === "DRAIN") drain = true;
  }
  for (let bit = 0x80; bit <= bits && bit > 0; bit *= 2) {
    if ((bits & bit) !== 0 && (known & bit) === 0) flags.push(`0x${bit.toString(16)}`);
  }
  return { admin: maint ? "MAINT" : drain ? "DRAIN" : "READY", flags };
}

export interface ServerState {
  backendId: number;
  backend: string;
  serverId: number;
  server: string;
  /** As printed: "127.0.0.1", "::1" (IPv6 without brackets), "-" when the name did not resolve. */
  address: string;
  /** Undefined when the server has no port of its own (`srv_port` 0). */
  port: number | undefined;
  operational: Operational;
  opState: number;
  admin: Admin;
  adminBits: number;
  adminFlags: string[];
  /** The weight in effect (`srv_uweight`); `initialWeight` is the configured one. */
  weight: number;
  initialWeight: number;
  checkStatus: number | undefined;
  /** `srv_fqdn`: the configured or CLI-set host name; undefined when printed "-". */
  fqdn: string | undefined;
  /** Every column of the row by header name, including ones hapops does not read. */
  fields: Record<string, string>;
}

/** `show servers state` files and answers are format version 1 in 2.x and 3.x. */
const FORMAT_VERSION = "1";

const REQUIRED = [
  "be_id",
  "be_name",
  "srv_id",
  "srv_name",
  "srv_addr",
  "srv_op_state",
  "srv_admin_state",
  "srv_uweight",
  "srv_iweight",
] as const;

/**
 * `show servers state`, one line at a time: the format version, then "# " and space-separated
 * column names, then one row per server (management.txt 9.3). Later lines starting with "#" are
 * comments. Rows split on spaces: proxy and server names allow only letters, digits, ".", "-",
 * "_" and ":" (invalid_char() in src/tools.c). Columns are looked up by name.
 */
export class ServersStateParser {
  readonly servers: ServerState[] = [];
  private stage: "version" | "header" | "rows" = "version";
  private columns: readonly string[] = [];

  line(text: string): void {
    if (text.length === 0) return;
    switch (this.stage) {
      case "version":
        if (text.trim() !== FORMAT_VERSION) {
          throw new ProtocolError("not a show servers state answer: no format version 1 line", {
            line: text.slice(0, 200),
          });
        }
        this.stage = "header";
        return;
      case "header": {
        if (!text.startsWith("#")) {
          throw new ProtocolError("show servers state answer has no column header", {
            line: text.slice(0, 200),
          });
        }
        this.columns = text.slice(1).trim().split(/ +/);
        const missing = REQUIRED.filter((c) => !this.columns.includes(c));
        if (missing.length > 0) {
          throw new ProtocolError(`show servers state header lacks ${missing.join(", ")}`, {
            missing,
          });
        }
        this.stage = "rows";
        return;
      }
      case "rows":
        if (text.startsWith("#")) return;
        this.servers.push(this.row(text));
    }
  }

  /** Call at the end of the answer: an answer without version and header is not this one. */
  end(): void {
    if (this.stage !== "rows") {
      throw new ProtocolError("show servers state answer ended before its column header", {
        stage: this.stage,
      });
    }
  }

  private row(text: string): ServerState {
    const cells = text.trim().split(/ +/);
    const fields: Record<string, string> = {};
    this.columns.forEach((name, i) => {
      const cell = cells[i];
      if (cell !== undefined) fields[name] = cell;
    });
    const lacks = (name: string): ProtocolError =>
      new ProtocolError(`show servers state row has no ${name}`, { line: text.slice(0, 200) });
    const str = (name: (typeof REQUIRED)[number]): string => {
      const value = fields[name];
      if (value === undefined) throw lacks(name);
      return value;
    };
    const int = (name: (typeof REQUIRED)[number]): number => {
      const value = optionalInt(fields, name, text);
      if (value === undefined) throw lacks(name);
      return value;
    };
    const opState = int("srv_op_state");
    const adminBits = int("srv_admin_state");
    const { admin, flags } = decodeAdmin(adminBits);
    const port = optionalInt(fields, "srv_port", text);
    const fqdn = fields["srv_fqdn"];
    return {
      backendId: int("be_id"),
      backend: str("be_name"),
      serverId: int("srv_id"),
      server: str("srv_name"),
      address: str("srv_addr"),
      port: port === 0 ? undefined : port,
      operational: decodeOperational(opState),
      opState,
      admin,
      adminBits,
      adminFlags: flags,
      weight: int("srv_uweight"),
      initialWeight: int("srv_iweight"),
      checkStatus: optionalInt(fields, "srv_check_status", text),
      fqdn: fqdn === undefined || fqdn === "-" ? undefined : fqdn,
      fields,
    };
  }
}

/** Undefined when the column is absent or "-"; a protocol error when it is not a number. */
function optionalInt(
  fields: Record<string, string>,
  name: string,
  line: string,
): number | undefined {
  const value = fields[name];
  if (value === undefined || value === "-") return undefined;
  if (!/^-?\d+$/.test(value)) {
    throw new ProtocolError(`show servers state column ${name} is not a number: ${value}`, {
      column: name,
      value,
      line: line.slice(0, 200),
    });
  }
  return Number(value);
}

/** Throws ProtocolError when the text is not a `show servers state` answer. */
export function parseServersState(lines: readonly string[]): ServerState[] {
  const parser = new ServersStateParser();
  for (const line of lines) parser.line(line);
  parser.end();
  return parser.servers;
}
