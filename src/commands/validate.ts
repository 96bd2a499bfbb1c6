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
