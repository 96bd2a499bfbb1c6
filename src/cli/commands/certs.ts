import type { CertsResult, CertView } from "../../engine/reads.js";
import { colors, renderJson, renderTable } from "../output.js";

export function printCerts(
  result: CertsResult,
  opts: { json: boolean; color: boolean; expiring?: CertView[] | undefined },
): string {
  if (opts.json)
    return renderJson(
      opts.expiring ? { ...result, expiring: opts.expiring.map((c) => c.file) } : result,
    );
  const c = colors(opts.color);
  const rows = result.certs.map((cert) => {
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
  });
  let out = renderTable(["FILE", "SUBJECT", "SANS", "NOT AFTER", "DAYS LEFT"], rows);
  if (opts.expiring)
    out +=
      opts.expiring.length === 0
        ? c.green("no certificate expires within the window\n")
        : c.red(
            `${opts.expiring.length} certificate(s) expire within the window: ${opts.expiring.map((x) => x.file).join(", ")}\n`,
          );
  for (const t of result.openTransactions)
    out += c.yellow(
      `warning: an uncommitted certificate transaction is open for ${t} (abort it with "abort ssl cert ${t}" or finish the rotation)\n`,
    );
  return out;
}
