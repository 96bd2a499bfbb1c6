import { abortSslCert, showSslCert, type RuntimeCommand } from "../commands/builders.js";
import { normaliseSerial, type CertFacts } from "../certs/validate.js";
import { GuardError, HaproxyError, VerificationError, type HapopsError } from "../errors.js";
import { parseSslCertDetail, type SslCertDetail } from "../parse/ssl-cert.js";
import type { ChangeSessions } from "./change.js";

/** A certificate as HAProxy reports it, reduced to what tells two apart. */
interface Seen {
  readonly serial: string;
  readonly sha1: string;
}

function seen(d: SslCertDetail): Seen {
  return {
    serial: normaliseSerial(d.serial ?? ""),
    sha1: (d.sha1Fingerprint ?? "").toUpperCase(),
  };
}

function same(a: Seen | undefined, b: Seen | CertFacts | undefined): boolean {
  return a !== undefined && b !== undefined && a.serial === b.serial && a.sha1 === b.sha1;
}

/** `show ssl cert [*]F` read back; a failure is kept as its message, never thrown. */
async function readBack(sessions: ChangeSessions, name: string): Promise<Seen | string> {
  try {
    return seen(parseSslCertDetail(await sessions.read.run(showSslCert(name))));
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * "Transaction created for certificate F!" / "Transaction updated for certificate F!"
 * (measured on 2.6). The name is the transaction's file, which up to 3.0 need not be the file in
 * the `set ssl cert` line: while a transaction is open, a set for any file updates that one.
 */
const TRANSACTION = /^Transaction (created|updated) for certificate (.+)!$/;

/** What serves `file` now, said in words, from a read-back and what served before. */
function servingNow(
  file: string,
  now: Seen | string,
  before: Seen | string,
  ours: CertFacts,
): string {
  if (typeof now === "string")
    return `what ${file} serves could not be read back (${now}); check with hapops certs`;
  if (same(now, ours))
    return `${file} serves the new certificate (serial ${ours.serial}, read back)`;
  if (typeof before !== "string" && same(now, before))
    return `the old certificate keeps serving for ${file} (serial ${now.serial}, read back)`;
  return `${file} serves serial ${now.serial} (SHA-1 ${now.sha1 || "?"}, read back), which is neither ours (${ours.serial}) nor the one that served before (${typeof before === "string" ? "unknown" : before.serial})`;
}

/**
 * Another party's transaction answered our `set ssl cert` with "Transaction updated": HAProxy
 * replaced that transaction's pending certificate with ours ("If a transaction exists with the
 * same filename, it will update this transaction" — management.txt 9.3, set ssl cert). It is
 * not ours to commit or abort; say what it now holds and what serves, both read back.
 */
async function foreignTransaction(
  sessions: ChangeSessions,
  file: string,
  txFile: string,
  ours: CertFacts,
  before: Seen | string,
): Promise<GuardError> {
  const pending = await readBack(sessions, `*${txFile}`);
  const serving = await readBack(sessions, file);
  const holds =
    typeof pending === "string"
      ? `its pending certificate could not be read back (${pending})`
      : same(pending, ours)
        ? `it now holds the certificate we sent (serial ${ours.serial}, read back)`
        : `it now holds serial ${pending.serial} (read back; ours is ${ours.serial})`;
  const where =
    txFile === file
      ? `another certificate transaction was already open on ${file} (another tool, or a set ssl cert by hand): HAProxy answered "Transaction updated", which replaces the pending certificate of that transaction with the one sent, and ${holds}`
      : `a certificate transaction was already open on ${txFile} (another tool, or a set ssl cert by hand): HAProxy put the certificate sent for ${file} into that transaction ("Transaction updated for certificate ${txFile}"; HAProxy 2.6 to 3.0 do so for a set on any file while one is open), and ${holds}`;
  const servingText = servingNow(file, serving, before, ours);
  return new GuardError(
    `${where}; hapops committed nothing and aborted nothing of it, and ${servingText}; committing that transaction would make ${txFile} serve what it holds; see it with: hapops raw "show ssl cert *${txFile}"; if nobody is using it, drop it and rotate with: hapops rotate-cert ${file} ... --abort-stale`,
    {
      transaction: txFile,
      pending: typeof pending === "string" ? null : pending,
      serving: typeof serving === "string" ? null : serving,
    },
  );
}

/**
 * HAProxy 3.2 (measured on 3.2.0 and 3.4.0) refuses a `set ssl cert` on one file while a
 * transaction is open on another: "The ongoing transaction is about 'F' but you are trying to set
 * 'G'\nCan't update G!". 2.6 to 3.0 (measured: 2.6, 2.8.0, 3.0.0) put the payload into the open
 * transaction instead (above).
 */
const ONGOING = /The ongoing transaction is about '(.+)' but you are trying to set '(.+)'/;

/**
 * Our set was refused because someone else's transaction is open on another file: nothing of
 * ours is pending, theirs is not ours to touch; say so, with what serves read back.
 */
async function refusedForOngoing(
  sessions: ChangeSessions,
  file: string,
  txFile: string,
  refusal: HaproxyError,
  ours: CertFacts,
): Promise<GuardError> {
  const serving = await readBack(sessions, file);
  return new GuardError(
    `a certificate transaction is already open on ${txFile} (another tool, or a set ssl cert by hand), and HAProxy takes one at a time: it refused the certificate sent for ${file} ("${refusal.haproxyMessage.trim().split("\n").join(" ")}"); hapops committed nothing and aborted nothing of it, and ${servingNow(file, serving, serving, ours)}; see it with: hapops raw "show ssl cert *${txFile}"; when it is finished, or if nobody is using it, run again (hapops rotate-cert ${file} ... --abort-stale drops it)`,
    { transaction: txFile, pending: null, serving: typeof serving === "string" ? null : serving },
  );
}

/**
 * The certificate transaction: read what serves, `set ssl cert F <<payload`, check the reply,
 * compare the pending certificate (`show ssl cert *F`) with the leaf we sent, `commit ssl cert
 * F`, expect "Success!", read back the serial. A transaction this run opened is aborted on any
 * failure — a failed commit leaves it open (management.txt 9.3, commit ssl cert) — and what
 * serves afterwards is read back and said, never assumed. A transaction someone else opened
 * ("Transaction updated") is left alone: GuardError. The caller holds the certificate lock
 * (engine/cert-lock.ts), so no other hapops run sends a set in between.
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
  const before = await readBack(sessions, file);
  /** The file of the transaction this run opened, while it may be open. */
  let open: string | undefined;
  try {
    sent.push(set.line);
    const answer = await sessions.write.run(set).catch(async (e: unknown) => {
      const other = e instanceof HaproxyError && ONGOING.exec(e.haproxyMessage.trim())?.[1];
      throw other ? await refusedForOngoing(sessions, file, other, e, leaf) : e;
    });
    const m = TRANSACTION.exec((answer[0] ?? "").trim());
    if (!m)
      throw new HaproxyError(
        set.line,
        answer.join("\n"),
        `HAProxy did not open a transaction for ${file}: ${answer.join(" ")}`,
      );
    const txFile = m[2]!;
    if (m[1] === "updated") throw await foreignTransaction(sessions, file, txFile, leaf, before);
    open = txFile;
    if (txFile !== file)
      throw new VerificationError(
        `HAProxy opened a transaction for ${txFile}, not for ${file} ("${answer.join(" ")}")`,
      );
    const pending = await readBack(sessions, `*${file}`);
    if (!same(typeof pending === "string" ? undefined : pending, leaf))
      throw new VerificationError(
        typeof pending === "string"
          ? `the pending certificate for ${file} could not be read back (${pending})`
          : `the pending certificate for ${file} is serial ${pending.serial} (SHA-1 ${pending.sha1 || "?"}), not the one sent (${leaf.serial}, ${leaf.sha1}): another set ssl cert changed the transaction`,
      );
    sent.push(commit.line);
    const committed = await sessions.write.run(commit);
    if (committed[committed.length - 1]?.trim() !== "Success!")
      throw new HaproxyError(
        commit.line,
        committed.join("\n"),
        `HAProxy refused to commit ${file}: ${committed.join(" ")}`,
      );
    open = undefined;
    const after = await readBack(sessions, file);
    if (!same(typeof after === "string" ? undefined : after, leaf))
      throw new VerificationError(
        typeof after === "string"
          ? `HAProxy answered Success! to the commit of ${file}, but what it serves could not be read back (${after}); check with hapops certs`
          : typeof before !== "string" && same(after, before)
            ? `HAProxy answered Success! to the commit of ${file}, but the old certificate still serves (serial ${after.serial}, read back), not ours (${leaf.serial})`
            : `after the commit ${file} serves serial ${after.serial} (SHA-1 ${after.sha1 || "?"}, read back), not ours (${leaf.serial}): another set ssl cert changed the transaction between our check and the commit`,
      );
    return sent;
  } catch (e) {
    let err = e as HapopsError;
    if (open !== undefined) {
      const abort = abortSslCert(open);
      sent.push(abort.line);
      const answer = await sessions.write
        .run(abort)
        .then((a) => a.join(" ").trim())
        .catch((x: unknown) => `no answer (${(x as Error).message})`);
      const aborted = answer.startsWith("Transaction aborted")
        ? "the transaction was aborted"
        : `abort ssl cert ${open} answered "${answer}"`;
      const now = await readBack(sessions, file);
      const suffix = `; ${aborted} and ${servingNow(file, now, before, leaf)}`;
      err =
        err instanceof HaproxyError
          ? new HaproxyError(err.command, err.haproxyMessage, `${err.message}${suffix}`)
          : new VerificationError(`${err.message}${suffix}`);
    }
    throw Object.assign(err, { sent });
  }
}
