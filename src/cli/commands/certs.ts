import type { CertsResult, CertView } from "../../engine/reads.js";
import { colors, renderJson, renderTable, type Colors } from "../output.js";

export const CERT_HEADERS = ["FILE", "SUBJECT", "SANS", "NOT AFTER", "DAYS LEFT"] as const;

/** One row of the `certs` table, under CERT_HEADERS: days left in red within a week. */
export function certCells(cert: CertView, c: Colors): string[] {
  const days = cert.daysLeft;
  const daysText =
    days === null
      ? "-"
      : days < 0
        ? c.red(`expired ${-days}d ago`)
        : days < 7
          ? c.red(String(days))
          : days < 30
            ? c.yellow(String(days))
            : String(days);
  return [
    cert.file,
    cert.subject ?? "-",
    cert.sans.join(", ") || "-",
    cert.notAfter ? cert.notAfter.slice(0, 10) : "-",
    daysText,
  ];
}

/** The verdict of --expiring: `names` are the certificates inside the window, as printed. */
export function expiringLine(names: readonly string[], c: Colors): string {
  return names.length === 0
    ? c.green("no certificate expires within the window\n")
    : c.red(`${names.length} certificate(s) expire within the window: ${names.join(", ")}\n`);
}

/** The warning for a `set ssl cert` transaction left open; `where` names the target, if many. */
export function openTransactionLine(file: string, c: Colors, where = ""): string {
  return c.yellow(
    `warning: ${where}an uncommitted certificate transaction is open for ${file} (abort it with "abort ssl cert ${file}" or finish the rotation)\n`,
  );
}

export function printCerts(
  result: CertsResult,
  opts: { json: boolean; color: boolean; expiring?: CertView[] | undefined },
): string {
  if (opts.json)
    return renderJson(
      opts.expiring ? { ...result, expiring: opts.expiring.map((c) => c.file) } : result,
    );
  const c = colors(opts.color);
  let out = renderTable(
    CERT_HEADERS,
    result.certs.map((cert) => certCells(cert, c)),
  );
  if (opts.expiring)
    out += expiringLine(
      opts.expiring.map((x) => x.file),
      c,
    );
  for (const t of result.openTransactions) out += openTransactionLine(t, c);
  return out;
}
