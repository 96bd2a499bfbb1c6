import { abortSslCert, showSslCert, type RuntimeCommand } from "../commands/builders.js";
import { normaliseSerial, type CertFacts } from "../certs/validate.js";
import { HaproxyError, VerificationError, type HapopsError } from "../errors.js";
import { parseSslCertDetail, type SslCertDetail } from "../parse/ssl-cert.js";
import type { ChangeSessions } from "./change.js";

function sameCert(d: SslCertDetail, facts: CertFacts): boolean {
  return (
    normaliseSerial(d.serial ?? "") === facts.serial &&
    (d.sha1Fingerprint ?? "").toUpperCase() === facts.sha1
  );
}

/**
 * The certificate transaction: `set ssl cert F <<payload`, check the reply, compare the pending
 * certificate (`show ssl cert *F`) with the leaf we sent, `commit ssl cert F`, expect
 * "Success!", read back the serial. On any failure the transaction is aborted — a failed commit
 * leaves it open (management.txt 9.3, commit ssl cert) — so the old certificate keeps serving.
 * Returns the lines sent; a thrown error carries them as `sent`.
 */
export async function applyCertTransaction(
  sessions: ChangeSessions,
  file: string,
  set: RuntimeCommand,
  commit: RuntimeCommand,
  leaf: CertFacts,
): Promise<readonly string[]> {
  const sent: string[] = [];
  let open = false;
  try {
    sent.push(set.line);
    const created = await sessions.write.run(set);
    if (!/^Transaction (created|updated)/.test(created[0] ?? ""))
      throw new HaproxyError(
        set.line,
        created.join("\n"),
        `HAProxy did not open a transaction for ${file}: ${created.join(" ")}`,
      );
    open = true;
    const pending = parseSslCertDetail(await sessions.read.run(showSslCert(`*${file}`)));
    if (!sameCert(pending, leaf))
      throw new VerificationError(
        `the pending certificate for ${file} is serial ${pending.serial ?? "?"} (SHA-1 ${pending.sha1Fingerprint ?? "?"}), not the one sent (${leaf.serial}, ${leaf.sha1})`,
      );
    sent.push(commit.line);
    const committed = await sessions.write.run(commit);
    if (committed[committed.length - 1]?.trim() !== "Success!")
      throw new HaproxyError(
        commit.line,
        committed.join("\n"),
        `HAProxy refused to commit ${file}: ${committed.join(" ")}`,
      );
    open = false;
    const after = parseSslCertDetail(await sessions.read.run(showSslCert(file)));
    if (!sameCert(after, leaf))
      throw new VerificationError(
        `after the commit HAProxy reports serial ${after.serial ?? "?"} for ${file}, not ${leaf.serial}`,
      );
    return sent;
  } catch (e) {
    let err = e as HapopsError;
    // A refused commit is an HaproxyError with the transaction still open.
    if (open || (err instanceof HaproxyError && err.command === commit.line)) {
      const abort = abortSslCert(file);
      sent.push(abort.line);
      await sessions.write.run(abort).catch(() => undefined);
      err =
        err instanceof HaproxyError
          ? new HaproxyError(
              err.command,
              err.haproxyMessage,
              `${err.message}; the transaction was aborted and the old certificate keeps serving`,
            )
          : new VerificationError(
              `${err.message}; the transaction was aborted and the old certificate keeps serving`,
            );
    }
    throw Object.assign(err, { sent });
  }
}
