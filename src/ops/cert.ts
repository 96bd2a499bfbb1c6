import { X509Certificate } from "node:crypto";
import { lstatSync } from "node:fs";
import { parsePem, type PemBlock } from "../certs/pem.js";
import {
  certFacts,
  covers,
  namesOf,
  normaliseSerial,
  validateBundle,
  type CertFacts,
  type ValidatedBundle,
} from "../certs/validate.js";
import { abortSslCert, commitSslCert, setSslCert, showSslCert } from "../commands/builders.js";
import {
  acquireCertLock,
  certLockHere,
  certLockTarget,
  describeTakenOver,
  ensureCertLockDir,
  lockRefusal,
  peekCertLock,
  peekDeadCertLock,
  type CertLockOwner,
} from "../engine/cert-lock.js";
import { applyCertTransaction } from "../engine/cert-transaction.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Step, Verification } from "../engine/operation.js";
import {
  GuardError,
  HaproxyError,
  UsageError,
  ValidationError,
  type HapopsError,
} from "../errors.js";
import type { InputFiles } from "../host/input-files.js";
import { ownFiles } from "../host/input-files.js";
import { parseSslCertDetail, parseSslCertList, type SslCertDetail } from "../parse/ssl-cert.js";
import type { Target } from "../transport/target.js";

/** A certificate rotation, as the command line asked for it. */
export interface RotateRequest {
  /** A loaded file (`show ssl cert`) or a domain one of them covers. */
  readonly target: string;
  /** The new bundle, read (with the operator's rights) and split into PEM blocks. */
  readonly blocks: readonly PemBlock[];
  readonly persist: boolean;
  readonly minDays: number;
  readonly force: boolean;
  readonly abortStale: boolean;
  readonly now: Date;
  /** Checks a --persist target under sudo (not writable by the operator). */
  readonly files: InputFiles;
  readonly socket: Target;
  readonly targetText: string;
  /** Who is acting (the operator under sudo), for the lock others will find. */
  readonly operator?: string | undefined;
}

/** What HAProxy and the disk say before a rotation. */
export interface CertState {
  readonly file: string;
  readonly live: SslCertDetail;
  /** Open certificate transactions (`show ssl cert` lists them with a `*`). */
  readonly transactions: readonly string[];
  /** The certificate in the file on disk, for --persist; a string says why it cannot be read. */
  readonly disk: (CertFacts & { readonly certificates: number }) | string | undefined;
  /** Another hapops run rotating on this HAProxy now. */
  readonly otherRun: CertLockOwner | undefined;
  /** A hapops run that held the lock and is gone (its transaction may be the open one). */
  readonly deadRun: CertLockOwner | undefined;
}

interface CertBody {
  readonly file: string;
  readonly leaf: CertFacts;
  /** --persist found the new certificate already in the file: nothing to write. */
  readonly alreadyOnDisk: boolean;
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
  const names = (d: SslCertDetail) => namesOf({ sans: d.sans, subject: d.subject ?? "" });
  const matching = details.filter((d) => names(d).some((n) => covers(n, target)));
  if (matching.length === 1) return { file: matching[0]!.filename, live: matching[0]! };
  if (matching.length === 0)
    throw new UsageError(
      `no loaded certificate covers ${target}; loaded: ${details.map((d) => `${d.filename} (${names(d).join(", ")})`).join("; ")}`,
    );
  throw new UsageError(
    `${matching.length} loaded certificates cover ${target}: ${matching.map((d) => d.filename).join(", ")}; name the file instead`,
  );
}

/** The certificate in a PEM file on disk; errors name the file, never quote it (read as root). */
function diskLeaf(path: string): (CertFacts & { readonly certificates: number }) | string {
  try {
    if (!lstatSync(path).isFile()) return `${path} is not a regular file (a symbolic link?)`;
    const certs = parsePem(ownFiles.readText(path, "the certificate file"), path).filter(
      (b) => b.label === "CERTIFICATE",
    );
    const first = certs[0];
    if (!first) return `${path} holds no certificate`;
    return { ...certFacts(new X509Certificate(first.text)), certificates: certs.length };
  } catch {
    return `${path} on disk does not hold a certificate hapops can read`;
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
 * "Success!", and read back. Any failure aborts the transaction (a failed commit leaves it open —
 * management.txt 9.3, commit ssl cert). One transaction per HAProxy at a time: hapops runs hold
 * a host-wide lock from the set to the commit (and the persist).
 */
export function rotateCertOperation(req: RotateRequest): Operation<CertState, CertBody> {
  const lockTarget = certLockTarget(req.socket);
  return {
    op: "rotate-cert",
    readLevel: "operator",
    async read(sessions) {
      const list = parseSslCertList(await sessions.read.run(showSslCert()));
      const { file, live } = await findTarget(sessions, req.target, list.files);
      return {
        file,
        live,
        transactions: list.transactions,
        disk: req.persist ? diskLeaf(file) : undefined,
        otherRun: peekCertLock(certLockHere().dir, lockTarget),
        deadRun: peekDeadCertLock(certLockHere().dir, lockTarget),
      };
    },
    plan(state): Plan<CertBody> {
      const { file, live } = state;
      const liveNames = namesOf({ sans: live.sans, subject: live.subject ?? "" });
      const bundle: ValidatedBundle = validateBundle([...req.blocks], {
        now: req.now,
        minDays: req.minDays,
        mustCover: liveNames,
        force: req.force,
      });
      const old = {
        serial: normaliseSerial(live.serial ?? ""),
        sha1: live.sha1Fingerprint ?? null,
        notAfter: live.notAfter?.toISOString() ?? null,
      };
      const fresh = {
        serial: bundle.leaf.serial,
        sha1: bundle.leaf.sha1,
        sha256: bundle.leaf.sha256,
        notAfter: bundle.leaf.notAfter.toISOString(),
        names: namesOf(bundle.leaf),
        chain: bundle.chain.length,
      };
      // The same leaf with another chain (an intermediate added) is still a change to send.
      const serving =
        (live.sha1Fingerprint ?? "").toUpperCase() === bundle.leaf.sha1 &&
        live.chain.length === bundle.chain.length;
      const guards: Guard[] = [];
      const steps: Step[] = [];

      // --persist writes as root: only a local, regular file root alone can change, and only
      // over the certificate HAProxy serves (a file changed behind its back is not overwritten).
      let persist = req.persist;
      let alreadyOnDisk = false;
      if (req.persist) {
        if (req.socket.kind !== "unix")
          throw new UsageError(
            `--persist writes ${file} on this machine, but HAProxy is reached over ${req.socket.kind}://; run hapops on the HAProxy host to persist, or rotate without --persist`,
          );
        req.files.checkNotOperatorWritable(file, "--persist target");
        const disk = state.disk;
        if (typeof disk === "string")
          throw new GuardError(`--persist: ${disk}; fix the file, or rotate without --persist`);
        const onDiskIsNew =
          disk !== undefined &&
          disk.sha1 === bundle.leaf.sha1 &&
          disk.serial === bundle.leaf.serial &&
          disk.certificates === 1 + bundle.chain.length;
        if (
          disk &&
          !onDiskIsNew &&
          disk.sha1 !== (live.sha1Fingerprint ?? "").toUpperCase() &&
          !serving
        )
          guards.push({
            name: "disk",
            ok: false,
            forced: false,
            reason: `${file} on disk holds serial ${disk.serial}, not the certificate HAProxy serves (${old.serial})`,
            error: new GuardError(
              `--persist: ${file} on disk holds serial ${disk.serial}, not the certificate HAProxy serves (${old.serial}); refusing to overwrite a file that changed behind HAProxy's back (rotate without --persist, or reload first)`,
            ),
          });
        // Already on disk: nothing to write.
        if (onDiskIsNew) {
          persist = false;
          alreadyOnDisk = true;
        }
      }

      const setCmd = setSslCert(file, bundle.payload);
      const commitCmd = commitSslCert(file);
      if (!serving && state.otherRun) {
        // Another hapops run is in its transaction: it is the one open, and it is not ours.
        guards.push({
          name: "lock",
          ok: false,
          forced: false,
          reason: `hapops run pid ${state.otherRun.pid} (user ${state.otherRun.user}) is rotating ${state.otherRun.file} on this HAProxy now`,
          error: lockRefusal(certLockHere().dir, lockTarget, state.otherRun),
        });
      } else if (!serving) {
        for (const stale of state.transactions) {
          if (req.abortStale) {
            const abort = abortSslCert(stale);
            steps.push({
              kind: "transaction",
              op: "rotate-cert",
              lines: [abort.line],
              run: async (sessions, sent) => {
                sent.push(abort.line);
                const answer = (await sessions.write.run(abort)).join(" ").trim();
                if (!answer.startsWith("Transaction aborted"))
                  throw new HaproxyError(
                    abort.line,
                    answer,
                    `could not abort the stale transaction for ${stale}: HAProxy answered "${answer}"; nothing else was sent, run again to see what is open now`,
                  );
                const serving = await sessions.read
                  .run(showSslCert(stale))
                  .then(
                    (l) =>
                      `it serves serial ${normaliseSerial(parseSslCertDetail(l).serial ?? "?")}, read back`,
                  )
                  .catch(
                    (e: unknown) =>
                      `what it serves could not be read back: ${(e as Error).message}`,
                  );
                return [`aborted the stale transaction for ${stale} (${serving})`];
              },
            });
            continue;
          }
          guards.push({
            name: "transaction",
            ok: false,
            forced: false,
            reason: `a certificate transaction is already open for ${stale}`,
            error: new GuardError(
              `a certificate transaction is already open for ${stale} (${
                state.deadRun?.file === stale
                  ? `most likely left by hapops run pid ${state.deadRun.pid}, which is gone`
                  : "no hapops run on this host holds the certificate lock: another tool, a set ssl cert by hand, or a run on another host"
              }); see it with: hapops raw "show ssl cert *${stale}"; finish it, or if nobody is using it pass --abort-stale to abort it first (recorded)`,
              { transaction: stale },
            ),
          });
        }
      }
      if (!serving) {
        steps.push({
          kind: "transaction",
          op: "rotate-cert",
          lines: [setCmd.line, commitCmd.line],
          payloadNote: `${1 + bundle.chain.length} certificate(s) and the key, ${setCmd.payload?.length ?? 0} lines`,
          run: async (sessions, sent) => {
            // The list read before the lock may be stale: a transaction opened since is not ours.
            const open = parseSslCertList(await sessions.read.run(showSslCert())).transactions;
            if (open.length > 0 && !req.abortStale)
              throw new GuardError(
                `a certificate transaction was opened for ${open.join(", ")} since the plan was made; nothing was sent for this rotation; see it with: hapops raw "show ssl cert *${open[0]}"`,
              );
            try {
              sent.push(
                ...(await applyCertTransaction(sessions, file, setCmd, commitCmd, bundle.leaf)),
              );
            } catch (e) {
              sent.push(...((e as HapopsError & { sent?: readonly string[] }).sent ?? []));
              throw e;
            }
          },
        });
      }
      if (persist)
        steps.push({
          kind: "write-file",
          op: "rotate-cert",
          path: file,
          private: true,
          payload: bundle.payload,
        });

      const describe = [
        file,
        `  now:  serial ${short(old.serial)}  expires ${live.notAfter ? day(live.notAfter) : "?"}  names ${liveNames.join(", ")}`,
        `  new:  serial ${short(bundle.leaf.serial)}  expires ${day(bundle.leaf.notAfter)}  names ${fresh.names.join(", ")}${bundle.chain.length ? `  (+${bundle.chain.length} chain)` : ""}`,
        ...(live.notAfter && bundle.leaf.notAfter < live.notAfter
          ? [
              `  warning: the new certificate expires sooner (${day(bundle.leaf.notAfter)}) than the one serving now (${day(live.notAfter)})`,
            ]
          : []),
        ...(serving
          ? [
              persist
                ? "HAProxy already serves this certificate; the file on disk still holds the old one, so only the file is written"
                : "HAProxy already serves this certificate; nothing sent",
            ]
          : []),
      ];
      return {
        version: 1,
        op: "rotate-cert",
        target: req.targetText,
        level: "admin",
        mutates: true,
        scope: { certs: [{ file, names: [...new Set([...liveNames, ...fresh.names])] }] },
        steps,
        guards,
        describe,
        json: { file, old, new: fresh, persist },
        report: { file, old, new: fresh, persisted: null },
        detail: { file, old, new: fresh },
        body: { file, leaf: bundle.leaf, alreadyOnDisk },
      };
    },
    async lock(plan) {
      const here = certLockHere();
      ensureCertLockDir(here.dir, here.uid);
      const held = await acquireCertLock({
        dir: here.dir,
        target: lockTarget,
        file: plan.body.file,
        uid: here.uid,
        user: req.operator ?? here.user,
      });
      return {
        notice: held.tookOver ? `took over ${describeTakenOver(held.tookOver)}` : undefined,
        release: () => held.release(),
      };
    },
    async verify(sessions, plan): Promise<Verification> {
      const { file, leaf } = plan.body;
      const after = parseSslCertDetail(await sessions.read.run(showSslCert(file)));
      const serial = normaliseSerial(after.serial ?? "");
      const ok =
        serial === leaf.serial && (after.sha1Fingerprint ?? "").toUpperCase() === leaf.sha1;
      const persisting = plan.steps.some((s) => s.kind === "write-file");
      return {
        mismatches: ok ? [] : [`${file} serves serial ${serial}, not ${leaf.serial}`],
        summary: [
          // Only the file was written when HAProxy already served it.
          ...(plan.steps.some((s) => s.kind === "transaction") ? [] : []),
          `verified: HAProxy serves serial ${leaf.serial} for ${file}`,
          ...(persisting
            ? []
            : plan.body.alreadyOnDisk
              ? [`${file} on disk already holds this certificate (not written)`]
              : [
                  "not persisted: a reload will bring the old certificate back (use --persist, or certs.persist in the config)",
                ]),
        ],
        json: {},
      };
    },
  };
}

export { ValidationError };
