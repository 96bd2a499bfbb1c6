import { ProtocolError } from "../errors.js";
import { splitKeyValue } from "./key-value.js";

/**
 * `show ssl cert`: a "# filename" section listing every loaded certificate file, preceded, while a
 * `set ssl cert` transaction is open, by a "# transaction" section with that file's name prefixed
 * by "*" (management.txt 9.3; measured on 2.6). Only one transaction can be open at a time, but
 * the list type leaves room for more. Sections this parser does not know are skipped.
 */
export function parseSslCertList(lines: readonly string[]): {
  files: string[];
  transactions: string[];
} {
  const files: string[] = [];
  const transactions: string[] = [];
  let section: string | undefined = "filename";
  for (const line of lines) {
    if (line.startsWith("#")) {
      const name = line.slice(1).trim();
      section = name === "filename" || name === "transaction" ? name : undefined;
      continue;
    }
    if (line.length === 0) continue;
    if (section === "filename") files.push(line);
    else if (section === "transaction") {
      transactions.push(line.startsWith("*") ? line.slice(1) : line);
    }
  }
  return { files, transactions };
}

export interface SslCertDetail {
  /** As printed: a pending transaction (`show ssl cert *F`) keeps its "*" prefix. */
  filename: string;
  /** "Used", or "Unused" for a pending transaction or a file no bind line references. */
  status: string | undefined;
  /** Upper-case hex. */
  serial: string | undefined;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  /** DNS names. 2.6 to 3.2 print only DNS entries (see parseSans). */
  sans: string[];
  subject: string | undefined;
  issuer: string | undefined;
  /** "RSA2048", "EC256"... */
  algorithm: string | undefined;
  sha1Fingerprint: string | undefined;
  /**
   * Every "Key: value" line; for a key printed more than once ("Chain Subject" and "Chain Issuer"
   * repeat for each CA certificate in the file), the first value.
   */
  fields: Record<string, string>;
  /** "Chain Subject" of each CA certificate served with the leaf, in order. */
  chain: string[];
}

/**
 * `show ssl cert <file>` (and `*<file>` for the pending transaction). 3.2 adds "Crt filename",
 * "Key filename", "OCSP filename" and "SCTL filename", which are kept in `fields` only.
 * Throws ProtocolError when there is no "Filename:" line: the text is not a certificate detail.
 */
export function parseSslCertDetail(lines: readonly string[]): SslCertDetail {
  const fields: Record<string, string> = {};
  const chain: string[] = [];
  for (const line of lines) {
    const pair = splitKeyValue(line);
    if (pair === undefined) continue;
    const [key, value] = pair;
    if (key === "Chain Subject") chain.push(value);
    if (!Object.hasOwn(fields, key)) fields[key] = value;
  }
  const filename = fields["Filename"];
  if (filename === undefined) {
    throw new ProtocolError("not a show ssl cert <file> answer: no Filename line", {
      firstLine: (lines[0] ?? "").slice(0, 200),
    });
  }
  const text = (key: string): string | undefined => {
    const value = fields[key];
    return value === undefined || value === "" ? undefined : value;
  };
  const date = (key: string): Date | undefined => {
    const value = text(key);
    return value === undefined ? undefined : parseCertDate(value);
  };
  return {
    filename,
    chain,
    status: text("Status"),
    serial: text("Serial"),
    notBefore: date("notBefore"),
    notAfter: date("notAfter"),
    sans: parseSans(fields["Subject Alternative Name"] ?? ""),
    subject: text("Subject"),
    issuer: text("Issuer"),
    algorithm: text("Algorithm"),
    sha1Fingerprint: text("SHA1 FingerPrint"),
    fields,
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Dates come from OpenSSL's ASN1_TIME_print(): "Feb 22 22:31:17 2027 GMT", with the day padded by
 * a space ("Mar  1 12:00:00 2025 GMT") and optional fractional seconds. Always UTC.
 */
export function parseCertDate(text: string): Date | undefined {
  const match = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)? (\d{4}) GMT$/.exec(
    text.trim(),
  );
  if (match === null) return undefined;
  const [, mon, day, hh, mm, ss, fraction, year] = match;
  const month = MONTHS.indexOf(mon ?? "");
  if (month < 0) return undefined;
  const ms = fraction === undefined ? 0 : Math.floor(Number(fraction) * 1000);
  return new Date(
    Date.UTC(Number(year), month, Number(day), Number(hh), Number(mm), Number(ss), ms),
  );
}

/** OpenSSL's GENERAL_NAME type labels, as in "DNS:a, IP Address:127.0.0.1". */
const SAN_PREFIX = /^(?:DNS|IP Address|IP|email|URI|DirName|othername|Registered ID):/;

/**
 * "DNS:example.com, DNS:www.example.com" -> ["example.com", "www.example.com"]. HAProxy prints
 * only DNS entries and leaves an empty item for every other type (ssl_sock_get_san_oneline() in
 * src/ssl_ckch.c): a certificate with two IP SANs shows "DNS:a, DNS:b, , " (measured on 2.6).
 * Empty items are dropped; other type labels are stripped in case a version prints them.
 */
export function parseSans(text: string): string[] {
  const sans: string[] = [];
  for (const item of text.split(",")) {
    const name = item.trim().replace(SAN_PREFIX, "");
    if (name !== "") sans.push(name);
  }
  return sans;
}
