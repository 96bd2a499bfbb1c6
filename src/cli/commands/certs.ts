import { showSslCert } from "../../commands/builders.js";
import type { Settings } from "../../config/settings.js";
import { withSession } from "../../engine/connect.js";
import { parseSslCertDetail, parseSslCertList, type SslCertDetail } from "../../parse/ssl-cert.js";
import { colors, renderJson, renderTable } from "../output.js";

export interface CertView {
  readonly file: string;
  readonly subject: string | null;
  readonly issuer: string | null;
  readonly sans: string[];
  readonly serial: string | null;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly daysLeft: number | null;
  readonly sha1Fingerprint: string | null;
  readonly status: string | null;
}

export interface CertsResult {
  readonly certs: CertView[];
  /** Files with an uncommitted `set ssl cert` transaction (`*file` in `show ssl cert`). */
  readonly openTransactions: string[];
}

const DAY_MS = 86_400_000;

export function toCertView(d: SslCertDetail, now: Date): CertView {
  return {
    file: d.filename,
    subject: d.subject ?? null,
    issuer: d.issuer ?? null,
    sans: d.sans,
    serial: d.serial ?? null,
    notBefore: d.notBefore?.toISOString() ?? null,
    notAfter: d.notAfter?.toISOString() ?? null,
    daysLeft: d.notAfter ? Math.floor((d.notAfter.getTime() - now.getTime()) / DAY_MS) : null,
    sha1Fingerprint: d.sha1Fingerprint ?? null,
    status: d.status ?? null,
  };
}

/** List loaded certificates, soonest expiry first. Needs operator level (see grammar.ts). */
export async function runCerts(settings: Settings, now: Date): Promise<CertsResult> {
  return withSession(settings, "hapops certs", async (session) => {
    await session.lowerTo("operator");
    const list = parseSslCertList(await session.run(showSslCert()));
    const answers = await session.pipeline(list.files.map((f) => showSslCert(f)));
    const certs = answers.map((lines) => toCertView(parseSslCertDetail(lines), now));
    certs.sort(
      (a, b) =>
        (a.notAfter ? Date.parse(a.notAfter) : Infinity) -
          (b.notAfter ? Date.parse(b.notAfter) : Infinity) || a.file.localeCompare(b.file),
    );
    return { certs, openTransactions: list.transactions };
  });
}

/** Certificates whose notAfter falls within `windowMs` of now (or already passed). */
export function expiringWithin(result: CertsResult, now: Date, windowMs: number): CertView[] {
  return result.certs.filter(
    (c) => c.notAfter !== null && Date.parse(c.notAfter) - now.getTime() < windowMs,
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
