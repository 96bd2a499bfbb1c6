import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import type { Journal } from "../../audit/journal.js";
import { parsePem, type PemBlock } from "../../certs/pem.js";
import { persistPem, type PersistResult } from "../../certs/persist.js";
import { ownFiles, type InputFiles } from "../../host/input-files.js";
import {
  certFacts,
  covers,
  namesOf,
  normaliseSerial,
  validateBundle,
  type CertFacts,
  type ValidatedBundle,
} from "../../certs/validate.js";
import { abortSslCert, commitSslCert, setSslCert, showSslCert } from "../../commands/builders.js";
import type { Settings } from "../../config/settings.js";
import {
  acquireCertLock,
  certLockHere,
  certLockTarget,
  describeTakenOver,
  ensureCertLockDir,
  peekCertLock,
  type HeldCertLock,
} from "../../engine/cert-lock.js";
import { applyCertTransaction } from "../../engine/cert-transaction.js";
import { checkWriteLevel, openChangeSessions, type ChangeSessions } from "../../engine/change.js";
import {
  GuardError,
  HaproxyError,
  UsageError,
  ValidationError,
  VerificationError,
  type HapopsError,
} from "../../errors.js";
import { parseSslCertDetail, parseSslCertList, type SslCertDetail } from "../../parse/ssl-cert.js";
import { colors, renderJson } from "../output.js";
import type { Io } from "../context.js";

/** Where the new certificate comes from: exactly one of the three forms. */
export type CertSource =
  | { readonly kind: "pem"; readonly pem: string }
  | {
      readonly kind: "parts";
      readonly cert: string;
      readonly key: string;
      readonly chain?: string | undefined;
    }
  | { readonly kind: "certbot"; readonly dir: string };

export interface RotateOptions {
  /** A loaded file (`show ssl cert`) or a domain one of them covers. */
  readonly target: string;
  readonly source: CertSource;
  readonly persist: boolean;
  readonly minDays: number;
  readonly force: boolean;
  readonly abortStale: boolean;
  readonly dryRun: boolean;
  readonly now: Date;
  readonly journal: Journal;
  /** Opens --pem, --cert, --key, --chain and --certbot-dir (as the operator under sudo). */
  readonly files: InputFiles;
}

/** Read and normalise the new bundle; nothing here touches HAProxy. */
export function loadBlocks(source: CertSource, files: InputFiles): PemBlock[] {
  const readSource = (path: string, what: string) => files.readText(path, what);
  switch (source.kind) {
    case "pem":
      return parsePem(readSource(source.pem, "--pem"), source.pem);
    case "parts":
      return [
        ...parsePem(readSource(source.cert, "--cert"), source.cert),
        ...(source.chain ? parsePem(readSource(source.chain, "--chain"), source.chain) : []),
        ...parsePem(readSource(source.key, "--key"), source.key),
      ];
    case "certbot": {
      // certbot's live directory: fullchain.pem (leaf then chain) and privkey.pem.
      const full = join(source.dir, "fullchain.pem");
      const key = join(source.dir, "privkey.pem");
      return [
        ...parsePem(readSource(full, "certbot fullchain"), full),
        ...parsePem(readSource(key, "certbot privkey"), key),
      ];
    }
  }
}

/** Find the loaded file: the path itself, or the one certificate whose names cover a domain. */
async function findTarget(
  sessions: ChangeSessions,
  target: string,
  files: readonly string[],
): Promise<{ file: string; live: SslCertDetail }> {
  if (target.includes("/")) {
    if (!files.includes(target))
      throw new UsageError(
        `HAProxy has no certificate loaded from ${target}; loaded: ${files.join(", ") || "none"}`,
      );
    return { file: target, live: parseSslCertDetail(await sessions.read.run(showSslCert(target))) };
  }
  const details = (await sessions.read.pipeline(files.map((f) => showSslCert(f)))).map(
    parseSslCertDetail,
  );
  const matching = details.filter((d) =>
    namesOf({ sans: d.sans, subject: d.subject ?? "" }).some((n) => covers(n, target)),
  );
  if (matching.length === 1) return { file: matching[0]!.filename, live: matching[0]! };
  if (matching.length === 0)
    throw new UsageError(
      `no loaded certificate covers ${target}; loaded: ${details.map((d) => `${d.filename} (${namesOf({ sans: d.sans, subject: d.subject ?? "" }).join(", ")})`).join("; ")}`,
    );
  throw new UsageError(
    `${matching.length} loaded certificates cover ${target}: ${matching.map((d) => d.filename).join(", ")}; name the file instead`,
  );
}

/** The certificate currently in a PEM file on disk (for the --persist check). */
function diskLeaf(path: string): CertFacts {
  // Read with hapops' own rights (root under sudo): errors name the file, never quote it.
  const text = ownFiles.readText(path, "the certificate file");
  try {
    const first = parsePem(text, path).find((b) => b.label === "CERTIFICATE");
    if (!first) throw new Error("no certificate");
    return certFacts(new X509Certificate(first.text));
  } catch {
    throw new ValidationError(
      `${path} on disk does not hold a certificate hapops can read; fix the file, or rotate without --persist`,
    );
  }
}

function short(serial: string): string {
  return serial.length > 16 ? `${serial.slice(0, 8)}…${serial.slice(-6)}` : serial;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/**
 * Rotate a certificate as a transaction: validate locally, `set ssl cert` and check the reply,
 * compare the pending certificate (`show ssl cert *F`) with the local leaf, `commit`, expect
 * "Success!", and read back the serial. Any failure aborts the transaction, so the old
 * certificate keeps serving (a failed commit leaves it open — management.txt, commit ssl cert).
 */
export async function runRotateCert(
  settings: Settings,
  opts: RotateOptions,
  io: Io,
): Promise<void> {
  const c = colors(settings.color);
  const out = (t: string) => {
    if (!settings.json) io.out(t + "\n");
  };
  const blocks = loadBlocks(opts.source, opts.files);
  const sessions = await openChangeSessions(settings, "hapops rotate-cert", "operator");
  let held: HeldCertLock | undefined;
  try {
    const level = await checkWriteLevel(
      sessions.write,
      "admin",
      settings.targetText,
      "rotate-cert",
    );
    if (level.error && !opts.dryRun) throw level.error;
    const list = parseSslCertList(await sessions.read.run(showSslCert()));
    const { file, live } = await findTarget(sessions, opts.target, list.files);
    const liveNames = namesOf({ sans: live.sans, subject: live.subject ?? "" });
    const bundle: ValidatedBundle = validateBundle(blocks, {
      now: opts.now,
      minDays: opts.minDays,
      mustCover: liveNames,
      force: opts.force,
    });
    const detail = {
      file,
      old: {
        serial: normaliseSerial(live.serial ?? ""),
        sha1: live.sha1Fingerprint ?? null,
        notAfter: live.notAfter?.toISOString() ?? null,
      },
      new: {
        serial: bundle.leaf.serial,
        sha1: bundle.leaf.sha1,
        sha256: bundle.leaf.sha256,
        notAfter: bundle.leaf.notAfter.toISOString(),
        names: namesOf(bundle.leaf),
        chain: bundle.chain.length,
      },
    };
    const report = {
      dryRun: opts.dryRun,
      ...detail,
      sent: [] as string[],
      persisted: null as PersistResult | null,
      verified: false,
    };

    out(`${file}`);
    out(
      `  now:  serial ${short(detail.old.serial)}  expires ${live.notAfter ? day(live.notAfter) : "?"}  names ${liveNames.join(", ")}`,
    );
    out(
      `  new:  serial ${short(bundle.leaf.serial)}  expires ${day(bundle.leaf.notAfter)}  names ${namesOf(bundle.leaf).join(", ")}${bundle.chain.length ? `  (+${bundle.chain.length} chain)` : ""}`,
    );

    if (live.sha1Fingerprint && live.sha1Fingerprint.toUpperCase() === bundle.leaf.sha1) {
      out("HAProxy already serves this certificate; nothing sent");
      await opts.journal.single("noop", [], undefined, detail);
      if (settings.json) io.out(renderJson(report));
      return;
    }
    if (opts.persist) {
      if (settings.target.kind !== "unix")
        throw new UsageError(
          `--persist writes ${file} on this machine, but HAProxy is reached over ${settings.target.kind}://; run hapops on the HAProxy host to persist, or rotate without --persist`,
        );
      // Before anything is sent: a write that would be refused must not follow a commit.
      opts.files.checkNotOperatorWritable(file, "--persist target");
      const disk = diskLeaf(file);
      if (disk.sha1 !== (live.sha1Fingerprint ?? "").toUpperCase())
        throw new GuardError(
          `--persist: ${file} on disk holds serial ${disk.serial}, not the certificate HAProxy serves (${detail.old.serial}); refusing to overwrite a file that changed behind HAProxy's back (rotate without --persist, or reload first)`,
        );
    }

    const setCmd = setSslCert(file, bundle.payload);
    const commitCmd = commitSslCert(file);
    const lines = [setCmd.line, commitCmd.line];
    if (opts.dryRun) {
      out(c.dim("dry run: nothing that changes state is sent"));
      out(
        c.dim(
          `would send:\n  ${setCmd.line}\n  <payload: ${1 + bundle.chain.length} certificate(s) and the key, ${setCmd.payload?.length ?? 0} lines, elided>\n  ${commitCmd.line}`,
        ),
      );
      if (list.transactions.length > 0)
        out(
          c.yellow(
            `warning: a certificate transaction is open for ${list.transactions.join(", ")}; the real run needs --abort-stale`,
          ),
        );
      if (level.error) out(c.yellow(`warning: ${level.error.message}`));
      const other = peekCertLock(certLockHere().dir, certLockTarget(settings.target));
      if (other)
        out(
          c.yellow(
            `warning: hapops run pid ${other.pid} (user ${other.user}) is rotating ${other.file} on this target now; the real run would be refused until it finishes`,
          ),
        );
      out(
        opts.persist
          ? c.dim(`would persist ${file} (previous kept as ${file}.bak)`)
          : c.dim("would not persist: a reload brings the old certificate back"),
      );
      await opts.journal.single("ok", lines, undefined, detail);
      if (settings.json) io.out(renderJson(report));
      return;
    }

    // One certificate transaction at a time per HAProxy, and hapops runs keep to it: the lock is
    // held until the commit or abort (and the persist) are done. Taken before anything is sent.
    const here = certLockHere();
    ensureCertLockDir(here.dir, here.uid);
    held = await acquireCertLock({
      dir: here.dir,
      target: certLockTarget(settings.target),
      file,
      uid: here.uid,
      user: here.user,
    });
    if (held.tookOver) out(c.yellow(`took over ${describeTakenOver(held.tookOver)}`));
    const deadRun = held.tookOver && "file" in held.tookOver ? held.tookOver : undefined;

    // The list read before the lock may be stale: a run that just finished, or a transaction
    // someone opened since. HAProxy allows one certificate transaction at a time.
    const open = parseSslCertList(await sessions.read.run(showSslCert())).transactions;
    for (const stale of open) {
      if (!opts.abortStale)
        throw new GuardError(
          `a certificate transaction is already open for ${stale} (${
            deadRun?.file === stale
              ? `most likely left by hapops run pid ${deadRun.pid}, which is gone`
              : "no hapops run on this host holds the certificate lock: another tool, a set ssl cert by hand, or a run on another host"
          }); see it with: hapops raw "show ssl cert *${stale}"; finish it, or if nobody is using it pass --abort-stale to abort it first (recorded)`,
          { transaction: stale },
        );
      const abortLine = abortSslCert(stale);
      const step = await opts.journal.intent([abortLine.line], { staleTransaction: stale });
      const answer = (await sessions.write.run(abortLine)).join(" ").trim();
      if (!answer.startsWith("Transaction aborted")) {
        const err = new HaproxyError(
          abortLine.line,
          answer,
          `could not abort the stale transaction for ${stale}: HAProxy answered "${answer}"; nothing else was sent, run again to see what is open now`,
        );
        await opts.journal.result(step, "failed", [abortLine.line], err, {
          staleTransaction: stale,
        });
        throw err;
      }
      await opts.journal.result(step, "ok", [abortLine.line], undefined, {
        staleTransaction: stale,
      });
      const serving = await sessions.read
        .run(showSslCert(stale))
        .then(
          (l) =>
            `it serves serial ${normaliseSerial(parseSslCertDetail(l).serial ?? "?")}, read back`,
        )
        .catch((e: unknown) => `what it serves could not be read back: ${(e as Error).message}`);
      out(c.yellow(`aborted the stale transaction for ${stale} (${serving})`));
    }

    const step = await opts.journal.intent(lines, detail);
    let sent: readonly string[];
    try {
      sent = await applyCertTransaction(sessions, file, setCmd, commitCmd, bundle.leaf);
      report.verified = true;
    } catch (e) {
      const failure = e as HapopsError & { sent?: readonly string[] };
      report.sent = [...(failure.sent ?? [])];
      await opts.journal.result(step, "failed", report.sent, failure, detail);
      throw e;
    }
    report.sent = [...sent];
    let persisted: PersistResult | null = null;
    if (opts.persist) {
      try {
        persisted = persistPem(file, bundle.payload);
      } catch (e) {
        await opts.journal.result(
          step,
          "failed",
          sent,
          new VerificationError(`committed, but writing ${file} failed: ${(e as Error).message}`),
          detail,
        );
        throw new VerificationError(
          `the new certificate is serving, but writing ${file} failed (${(e as Error).message}); a reload would bring the old one back — fix the file or rotate again with --persist`,
        );
      }
    }
    report.persisted = persisted;
    await opts.journal.result(step, "ok", sent, undefined, {
      ...detail,
      persisted: persisted !== null,
    });
    out(c.green(`verified: HAProxy serves serial ${bundle.leaf.serial} for ${file}`));
    out(
      persisted
        ? `persisted: ${file} (mode ${persisted.mode.toString(8).padStart(4, "0")}; previous kept as ${persisted.backup})`
        : c.yellow(
            "not persisted: a reload will bring the old certificate back (use --persist, or certs.persist in the config)",
          ),
    );
    if (settings.json) io.out(renderJson(report));
  } finally {
    await held?.release().catch(() => undefined);
    await sessions.close();
  }
}
