import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { ValidationError } from "../errors.js";
import { isKeyLabel, type PemBlock } from "./pem.js";

/** What a certificate looks like to an operator and to HAProxy's `show ssl cert`. */
export interface CertFacts {
  /** Upper-case hex without leading zeros, as HAProxy prints it. */
  readonly serial: string;
  /** Upper-case hex SHA-1 without colons (HAProxy's "SHA1 FingerPrint"). */
  readonly sha1: string;
  readonly sha256: string;
  readonly subject: string;
  /** The subject's common name, read field by field (not by searching the joined text). */
  readonly cn: string | undefined;
  readonly issuer: string;
  /** DNS names from subjectAltName (HAProxy prints only these). */
  readonly sans: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface ValidatedBundle {
  readonly leaf: CertFacts;
  readonly chain: readonly CertFacts[];
  /** Leaf, chain, key: LF line ends, no blank lines; what `set ssl cert` receives. */
  readonly payload: string;
}

export interface ValidateOptions {
  readonly now: Date;
  readonly minDays: number;
  /** Names the live certificate covers; the new one must cover them all unless `force`. */
  readonly mustCover: readonly string[];
  readonly force: boolean;
}

export function normaliseSerial(serial: string): string {
  return serial
    .replace(/:/g, "")
    .toUpperCase()
    .replace(/^0+(?=.)/, "");
}

export function certFacts(cert: X509Certificate): CertFacts {
  return {
    serial: normaliseSerial(cert.serialNumber),
    sha1: cert.fingerprint.replace(/:/g, "").toUpperCase(),
    sha256: cert.fingerprint256.replace(/:/g, "").toUpperCase(),
    subject: cert.subject.replace(/\n/g, ", "),
    // Node gives one field per line; a CN inside another field's value stays on its line.
    cn: cert.subject
      .split("\n")
      .find((f) => f.startsWith("CN="))
      ?.slice(3)
      .trim(),
    issuer: cert.issuer.replace(/\n/g, ", "),
    sans: (cert.subjectAltName ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.startsWith("DNS:"))
      .map((s) => s.slice(4).toLowerCase()),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/**
 * The names a certificate answers for: its DNS SANs, or its CN when it has none. `cn` comes from
 * certFacts; HAProxy's `show ssl cert` prints the subject as "/O=.../CN=name", read the same way,
 * field by field, so that "O=Acme, CN=evil.example" is never taken for a CN.
 */
export function namesOf(facts: {
  readonly sans: readonly string[];
  readonly subject: string;
  readonly cn?: string | undefined;
}): string[] {
  if (facts.sans.length > 0) return [...facts.sans];
  const cn =
    facts.cn ??
    facts.subject
      .split(/[\n/]/)
      .filter((f) => f.startsWith("CN="))
      .pop()
      ?.slice(3)
      .trim();
  return cn ? [cn.toLowerCase()] : [];
}

/**
 * Whether a certificate name covers `name`: equal, or a wildcard for exactly one label
 * (`*.example.com` covers `www.example.com`, not `example.com` or `a.b.example.com`). A wildcard
 * is only covered by the same wildcard.
 */
export function covers(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  if (!p.startsWith("*.") || n.startsWith("*.")) return false;
  const rest = p.slice(1);
  return n.endsWith(rest) && !n.slice(0, -rest.length).includes(".") && n.length > rest.length;
}

const DAY = 86_400_000;
const PAYLOAD_LIMIT = 15_000;

/**
 * Check a new certificate bundle before anything is sent: leaf first, a key that matches it,
 * valid now and for at least `minDays`, each chain certificate the issuer of the one before,
 * and every name the live certificate covers still covered.
 */
export function validateBundle(
  blocks: readonly PemBlock[],
  opts: ValidateOptions,
): ValidatedBundle {
  const certBlocks = blocks.filter((b) => b.label === "CERTIFICATE");
  const keyBlocks = blocks.filter((b) => isKeyLabel(b.label));
  const other = blocks.filter((b) => b.label !== "CERTIFICATE" && !isKeyLabel(b.label));
  if (other.length > 0)
    throw new ValidationError(
      `unexpected PEM block ${other[0]!.label}: a certificate bundle holds certificates and one private key`,
    );
  if (certBlocks.length === 0) throw new ValidationError("no certificate in the files given");
  if (keyBlocks.length !== 1)
    throw new ValidationError(
      keyBlocks.length === 0
        ? "no private key in the files given (use --key, or a --pem with the key)"
        : `${keyBlocks.length} private keys given; a certificate has one`,
    );
  if (keyBlocks[0]!.label === "ENCRYPTED PRIVATE KEY")
    throw new ValidationError(
      "the private key is encrypted; HAProxy cannot load it — decrypt it first (openssl pkey -in key.pem -out plain.pem)",
    );

  const certs = certBlocks.map((b, i) => {
    try {
      return new X509Certificate(b.text);
    } catch (e) {
      throw new ValidationError(`certificate ${i + 1} does not parse: ${(e as Error).message}`);
    }
  });
  let key: KeyObject;
  try {
    key = createPrivateKey(keyBlocks[0]!.text);
  } catch (e) {
    throw new ValidationError(`the private key does not parse: ${(e as Error).message}`);
  }
  const leafCert = certs[0]!;
  // The key decides which certificate is the leaf. A CA first whose key is not the one given is
  // a chain in the wrong order; a self-signed certificate whose key matches is a leaf, even
  // with CA:TRUE (OpenSSL 3's `req -x509` sets it), and HAProxy serves it.
  if (!leafCert.checkPrivateKey(key))
    throw new ValidationError(
      leafCert.ca
        ? `the first certificate (${leafCert.subject.replace(/\n/g, ", ")}) is a CA and the key is not its own; the leaf must come first, then its chain`
        : "the private key does not match the certificate (their public keys differ)",
    );

  const leaf = certFacts(leafCert);
  if (opts.now < leaf.notBefore)
    throw new ValidationError(
      `the certificate is not valid yet: it starts ${leaf.notBefore.toISOString()}`,
    );
  const daysLeft = Math.floor((leaf.notAfter.getTime() - opts.now.getTime()) / DAY);
  if (opts.now >= leaf.notAfter)
    throw new ValidationError(`the certificate expired on ${leaf.notAfter.toISOString()}`);
  if (daysLeft < opts.minDays)
    throw new ValidationError(
      `the certificate expires in ${daysLeft} day${daysLeft === 1 ? "" : "s"} (${leaf.notAfter.toISOString()}); --min-days is ${opts.minDays}`,
    );

  for (let i = 1; i < certs.length; i++) {
    const child = certs[i - 1]!;
    const parent = certs[i]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey))
      throw new ValidationError(
        `chain certificate ${i} (${parent.subject.replace(/\n/g, ", ")}) did not issue ${i === 1 ? "the leaf" : `chain certificate ${i - 1}`} (${child.subject.replace(/\n/g, ", ")}); put the chain in order, leaf first`,
      );
  }

  const newNames = namesOf(leaf);
  const dropped = opts.mustCover.filter((n) => !newNames.some((p) => covers(p, n)));
  // Not one name in common: almost surely the wrong file, not a certificate that drops a name;
  // --force is no advice for that (it still passes it, on purpose).
  if (dropped.length > 0 && dropped.length === opts.mustCover.length && !opts.force)
    throw new ValidationError(
      `the new certificate covers none of the names the live one serves (${dropped.join(", ")}; new: ${newNames.join(", ") || "no names"}): is it the wrong file? Check the domain and --pem/--cert`,
    );
  if (dropped.length > 0 && !opts.force)
    throw new ValidationError(
      `the new certificate does not cover ${dropped.join(", ")}, which the live one does (new: ${newNames.join(", ") || "no names"}); pass --force to drop ${dropped.length === 1 ? "it" : "them"}`,
    );

  const payload = [...certBlocks.map((b) => b.text), keyBlocks[0]!.text].join("");
  // The CLI takes one command of at most tune.bufsize (16 kB by default), payload included;
  // HAProxy drops the connection past it (management.txt 9.3, measured).
  if (payload.length > PAYLOAD_LIMIT)
    throw new ValidationError(
      `the certificate, chain and key make ${payload.length} bytes, more than the ${PAYLOAD_LIMIT} a runtime API command can carry with the default tune.bufsize; shorten the chain (leave out the root)`,
    );
  return { leaf, chain: certs.slice(1).map(certFacts), payload };
}
