import { isIP } from "node:net";
import { ValidationError } from "../errors.js";

/**
 * Validators for everything that is ever put on a runtime API line. A `;` ends a command and a
 * newline starts the next one (management.txt 9.3), so a bad character in a name is command
 * injection, not a typo: reject it before anything is sent.
 */

/** HAProxy's charset for proxy, server and table names (cfgparse invalid_char()). */
const NAME_RE = /^[A-Za-z0-9_.:-]+$/;
const MAX_NAME = 255;

/** Describe the first character that makes `value` unsafe or invalid, for error messages. */
export function describeBadChar(value: string, allowed: RegExp): string | undefined {
  for (const ch of value) {
    if (allowed.test(ch)) continue;
    return describeChar(ch);
  }
  return undefined;
}

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const named: Record<string, string> = {
    ";": "';' (a command separator)",
    "\n": "a newline (it would start another command)",
    "\r": "a carriage return",
    " ": "a space",
    "\t": "a tab",
    "\\": "a backslash",
    "<": "'<' (payload marker)",
  };
  if (named[ch]) return named[ch];
  if (cp < 0x20 || cp === 0x7f)
    return `control character U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
  if (cp > 0x7e)
    return `non-ASCII character '${ch}' (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
  return `'${ch}'`;
}

const NAME_CHAR = /[A-Za-z0-9_.:-]/;

/**
 * `<<` in a word puts HAProxy's CLI in payload mode (2.6: a line ending in `<<`; 3.0+: `<<MARKER`
 * anywhere a word starts): the session then waits for payload lines, and whatever follows is fed
 * to the command as data. No word hapops puts on a line may contain it; only the builders of
 * payload commands add the marker themselves.
 */
export function refusePayloadMarker(what: string, value: string): string {
  if (value.includes("<<"))
    throw new ValidationError(
      `${what} ${JSON.stringify(value)} contains '<<', which would put HAProxy's CLI in payload mode; it cannot be sent as a word`,
    );
  return value;
}

/** A backend, frontend, server or table name. `what` names it in the error ("backend name"). */
export function validateName(what: string, value: string): string {
  if (value.length === 0) throw new ValidationError(`${what} is empty`);
  if (value.length > MAX_NAME)
    throw new ValidationError(
      `${what} is ${value.length} characters long; the limit is ${MAX_NAME}`,
    );
  if (!NAME_RE.test(value)) {
    const bad = describeBadChar(value, NAME_CHAR) ?? "an invalid character";
    throw new ValidationError(
      `${what} ${JSON.stringify(value)} contains ${bad}; names may only contain letters, digits, '-', '_', '.' and ':'`,
    );
  }
  return value;
}

const PATH_CHAR = /[A-Za-z0-9_.:/@+=,%~-]/;

/**
 * A file name as HAProxy knows it (`show ssl cert`), optionally with the `*` that designates an
 * open transaction. Spaces would need backslash escapes on the CLI; we refuse them instead.
 */
export function validateFilename(what: string, value: string, allowTransaction = false): string {
  const body = allowTransaction && value.startsWith("*") ? value.slice(1) : value;
  if (body.length === 0) throw new ValidationError(`${what} is empty`);
  if (body.length > 4096) throw new ValidationError(`${what} is longer than 4096 characters`);
  const bad = describeBadChar(body, PATH_CHAR);
  if (bad)
    throw new ValidationError(
      `${what} ${JSON.stringify(value)} contains ${bad}; file names may only contain letters, digits and _ . : / @ + = , % ~ -`,
    );
  return value;
}

/** Stick-table key types (management.txt "show table", configuration.txt "stick-table type"). */
export type TableKeyType = "ip" | "ipv6" | "integer" | "string" | "binary";

export interface TableKeySpec {
  type: TableKeyType;
  /** For string and binary tables: the configured `len` in bytes, when known (2.6's `show table` does not print it). */
  length?: number;
}

/** Printable ASCII without space, `;` and backslash. */
const STRING_KEY_CHAR = /[\x21-\x3a\x3c-\x5b\x5d-\x7e]/;

export function validateTableKey(table: string, spec: TableKeySpec, key: string): string {
  const fail = (why: string): never => {
    throw new ValidationError(
      `key ${JSON.stringify(key)} is not valid for table ${table} (type ${spec.type}): ${why}`,
    );
  };
  if (key.length === 0) fail("it is empty");
  switch (spec.type) {
    case "ip":
      if (isIP(key) !== 4) fail("expected an IPv4 address such as 192.0.2.10");
      break;
    case "ipv6":
      if (isIP(key) === 0) fail("expected an IPv6 (or IPv4) address such as 2001:db8::1");
      break;
    case "integer": {
      if (!/^-?\d+$/.test(key)) fail("expected an integer");
      const n = Number(key);
      if (n < -2147483648 || n > 4294967295) fail("out of the 32-bit range");
      break;
    }
    case "string": {
      if (key.includes("<<"))
        fail("it contains '<<', which would put HAProxy's CLI in payload mode");
      const bad = describeBadChar(key, STRING_KEY_CHAR);
      if (bad) fail(`it contains ${bad}`);
      if (spec.length !== undefined && Buffer.byteLength(key) > spec.length)
        fail(`it is longer than the table's len ${spec.length}`);
      break;
    }
    case "binary": {
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(key)) fail("expected an even number of hex digits");
      if (spec.length !== undefined && key.length / 2 > spec.length)
        fail(`it is longer than the table's len ${spec.length} bytes`);
      break;
    }
  }
  return key;
}

/**
 * Stick-table data types (configuration.txt, "stick-table" store). Array forms (`gpc`, `gpt`,
 * `gpc_rate`) are addressed as `gpc(<n>)`-style names by HAProxy 2.6's dump (gpc0, gpc1...).
 */
const TABLE_DATA_TYPES = new Set([
  "server_id",
  "server_key",
  "server_name",
  "gpt0",
  "gpt",
  "gpc0",
  "gpc0_rate",
  "gpc1",
  "gpc1_rate",
  "gpc",
  "gpc_rate",
  "conn_cnt",
  "conn_cur",
  "conn_rate",
  "sess_cnt",
  "sess_rate",
  "http_req_cnt",
  "http_req_rate",
  "http_err_cnt",
  "http_err_rate",
  "http_fail_cnt",
  "http_fail_rate",
  "bytes_in_cnt",
  "bytes_in_rate",
  "bytes_out_cnt",
  "bytes_out_rate",
  "glitch_cnt",
  "glitch_rate",
]);

export function validateTableDataType(
  table: string,
  type: string,
  stored?: readonly string[],
): string {
  if (!TABLE_DATA_TYPES.has(type))
    throw new ValidationError(
      `data.${type} is not a stick-table data type (e.g. gpc0, gpt0, conn_cnt, http_req_rate)`,
    );
  if (stored !== undefined && stored.length > 0 && !stored.includes(type))
    throw new ValidationError(
      `table ${table} does not store ${type} (it stores ${stored.join(", ")})`,
    );
  return type;
}

/**
 * The largest value each stored data type holds (HAProxy's std_fld types): the byte counters are
 * 64-bit, everything else 32-bit unsigned. A larger number is stored cut to 32 bits without a
 * word (measured on 2.6: 99999999999 became 1215752191), so it is refused before sending.
 */
function maxDataValue(type: string): bigint {
  return /^bytes_(in|out)_cnt$/.test(type) ? 2n ** 64n - 1n : 2n ** 32n - 1n;
}

export function validateTableDataValue(type: string, value: string): string {
  if (!/^\d{1,20}$/.test(value))
    throw new ValidationError(
      `data.${type} value ${JSON.stringify(value)} must be a non-negative whole number`,
    );
  const max = maxDataValue(type);
  if (BigInt(value) > max)
    throw new ValidationError(
      `data.${type} value ${value} is more than it can hold (${max}); HAProxy would store it cut short`,
    );
  return value;
}

export const TABLE_FILTER_OPS = ["eq", "ne", "le", "ge", "lt", "gt"] as const;
export type TableFilterOp = (typeof TABLE_FILTER_OPS)[number];

export function validateTableFilterOp(op: string): TableFilterOp {
  if (!(TABLE_FILTER_OPS as readonly string[]).includes(op))
    throw new ValidationError(
      `filter operator ${JSON.stringify(op)} must be one of ${TABLE_FILTER_OPS.join(", ")}`,
    );
  return op as TableFilterOp;
}
