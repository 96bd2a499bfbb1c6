import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePem, type PemBlock } from "../../src/certs/pem.js";
import {
  certFacts,
  covers,
  namesOf,
  normaliseSerial,
  validateBundle,
  type ValidateOptions,
} from "../../src/certs/validate.js";
import { ExitCode, ValidationError } from "../../src/errors.js";
import { TestCa, type IssuedCert } from "../../src/sandbox/certs.js";

// Every certificate below is valid for 2020 only, so `now` fully decides the date checks.
const VALIDITY = { start: "20200101000000Z", end: "20210101000000Z" } as const;
const MID_2020 = new Date("2020-06-01T00:00:00Z");
const OPTS: ValidateOptions = { now: MID_2020, minDays: 7, mustCover: [], force: false };

let dir: string;
let root: TestCa;
let unrelated: TestCa;
let intermediate: IssuedCert;
/** Issued by root: names a.example (SAN in mixed case) and an IP SAN. */
let leaf: IssuedCert;
/** Issued by root, for a key that does not match `leaf`. */
let other: IssuedCert;
/** Issued by the intermediate. */
let chained: IssuedCert;
/** Issued by root with no subjectAltName at all. */
let noSan: IssuedCert;
/** `leaf`'s key encrypted as PKCS#8 (ENCRYPTED PRIVATE KEY). */
let encryptedKey: string;

function openssl(args: readonly string[], input: string): string {
  return execFileSync("openssl", args, { input, encoding: "utf8" });
}

function pem(...texts: string[]): PemBlock[] {
  return texts.flatMap((t, i) => parsePem(t, `input-${i + 1}.pem`));
}

/** Runs validateBundle on a bundle it must refuse and returns the error. */
function refusal(
  blocks: readonly PemBlock[],
  opts: Partial<ValidateOptions> = {},
): ValidationError {
  try {
    validateBundle(blocks, { ...OPTS, ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).exitCode).toBe(ExitCode.usage);
    return e as ValidationError;
  }
  throw new Error("validateBundle accepted a bundle it should refuse");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hapops-cert-validate-"));
  [root, unrelated] = await Promise.all([
    TestCa.create(join(dir, "root"), "hapops test root"),
    TestCa.create(join(dir, "unrelated"), "hapops unrelated CA"),
  ]);
  // One CA issues one certificate at a time: they share its serial and index files.
  intermediate = await root.issue({ cn: "hapops test intermediate", ca: true, validity: VALIDITY });
  leaf = await root.issue({
    cn: "a.example",
    san: ["DNS:a.example", "DNS:Www.A.Example", "IP:127.0.0.1"],
    validity: VALIDITY,
  });
  other = await root.issue({ cn: "a.example", san: ["DNS:a.example"], validity: VALIDITY });
  noSan = await root.issue({ cn: "NoSan.Example", validity: VALIDITY });
  const sub = await TestCa.from(join(dir, "intermediate"), intermediate);
  chained = await sub.issue({ cn: "b.example", san: ["DNS:b.example"], validity: VALIDITY });
  encryptedKey = openssl(
    ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:secret"],
    leaf.key,
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("validateBundle: a valid bundle", () => {
  it("gives the leaf's facts as HAProxy prints them", () => {
    const { leaf: facts, chain } = validateBundle(pem(leaf.cert, leaf.key), OPTS);
    const serial = openssl(["x509", "-noout", "-serial"], leaf.cert).trim();
    const sha1 = openssl(["x509", "-noout", "-fingerprint", "-sha1"], leaf.cert).trim();
    expect(serial).toMatch(/^serial=[0-9A-F]+$/);
    expect(facts.serial).toBe(serial.slice("serial=".length).replace(/^0+/, ""));
    expect(facts.serial).toMatch(/^[1-9A-F][0-9A-F]*$/);
    expect(facts.sha1).toBe(sha1.slice(sha1.indexOf("=") + 1).replace(/:/g, ""));
    expect(facts.sha1).toMatch(/^[0-9A-F]{40}$/);
    expect(facts.sha256).toMatch(/^[0-9A-F]{64}$/);
    expect(facts.sans).toEqual(["a.example", "www.a.example"]);
    expect(facts.subject).toBe("CN=a.example");
    expect(facts.issuer).toBe("CN=hapops test root");
    expect(facts.notBefore.toISOString()).toBe("2020-01-01T00:00:00.000Z");
    expect(facts.notAfter.toISOString()).toBe("2021-01-01T00:00:00.000Z");
    expect(chain).toEqual([]);
  });

  it("sends leaf, chain, key in that order with LF and no blank lines, whatever the input order", () => {
    const crlf = (s: string): string => s.replace(/\n/g, "\r\n\r\n");
    const result = validateBundle(
      pem(crlf(chained.key), `${crlf(chained.cert)}\n\n${crlf(intermediate.cert)}`),
      OPTS,
    );
    expect(result.payload).toBe(chained.cert + intermediate.cert + chained.key);
    expect(result.payload).not.toMatch(/\r|\n\n|^\n/);
    expect(result.payload.endsWith("-----END PRIVATE KEY-----\n")).toBe(true);
    expect(result.leaf.subject).toBe("CN=b.example");
    expect(result.chain.map((c) => c.subject)).toEqual(["CN=hapops test intermediate"]);
  });

  it("accepts a full chain in order, up to the root", () => {
    const result = validateBundle(
      pem(chained.cert, intermediate.cert, root.caCert, chained.key),
      OPTS,
    );
    expect(result.chain.map((c) => c.subject)).toEqual([
      "CN=hapops test intermediate",
      "CN=hapops test root",
    ]);
    expect(result.payload).toBe(chained.cert + intermediate.cert + root.caCert + chained.key);
  });
});

describe("validateBundle: the key", () => {
  it("refuses a key that does not match the leaf", () => {
    expect(refusal(pem(leaf.cert, other.key)).message).toBe(
      "the private key does not match the certificate (their public keys differ)",
    );
  });

  it("refuses a bundle with no key", () => {
    expect(refusal(pem(leaf.cert)).message).toMatch(/^no private key in the files given/);
  });

  it("refuses a bundle with two keys", () => {
    expect(refusal(pem(leaf.cert, leaf.key, other.key)).message).toBe(
      "2 private keys given; a certificate has one",
    );
  });

  it("refuses an encrypted PKCS#8 key with a hint to decrypt it", () => {
    const blocks = pem(leaf.cert, encryptedKey);
    expect(blocks[1]?.label).toBe("ENCRYPTED PRIVATE KEY");
    const err = refusal(blocks);
    expect(err.message).toMatch(/^the private key is encrypted; HAProxy cannot load it/);
    expect(err.message).toContain("openssl pkey");
  });

  it("refuses a key only", () => {
    expect(refusal(pem(leaf.key)).message).toBe("no certificate in the files given");
  });

  it("refuses a block that is neither a certificate nor a key", () => {
    const csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
    expect(refusal(pem(leaf.cert, csr, leaf.key)).message).toMatch(
      /^unexpected PEM block CERTIFICATE REQUEST/,
    );
  });
});

describe("validateBundle: order and chain", () => {
  it("refuses a CA certificate first when the key is not its own (a chain in the wrong order)", () => {
    expect(refusal(pem(root.caCert, leaf.cert, leaf.key)).message).toBe(
      "the first certificate (CN=hapops test root) is a CA and the key is not its own; the leaf must come first, then its chain",
    );
  });

  it("accepts a lone self-signed certificate with CA:TRUE whose key matches (openssl req -x509)", () => {
    const key = readFileSync(join(dir, "root", "ca.key"), "utf8");
    const { leaf: facts, chain } = validateBundle(pem(root.caCert, key), {
      ...OPTS,
      now: new Date(),
    });
    expect(chain).toHaveLength(0);
    expect(facts.subject).toContain("hapops test root");
  });

  it("refuses a chain from an unrelated CA, naming which did not issue which", () => {
    expect(refusal(pem(chained.cert, unrelated.caCert, chained.key)).message).toBe(
      "chain certificate 1 (CN=hapops unrelated CA) did not issue the leaf (CN=b.example); put the chain in order, leaf first",
    );
  });

  it("refuses a chain out of order", () => {
    expect(refusal(pem(chained.cert, root.caCert, intermediate.cert, chained.key)).message).toMatch(
      /^chain certificate 1 \(CN=hapops test root\) did not issue the leaf \(CN=b\.example\)/,
    );
  });

  it("names the chain certificate when a later link is wrong", () => {
    expect(
      refusal(pem(chained.cert, intermediate.cert, unrelated.caCert, chained.key)).message,
    ).toMatch(
      /^chain certificate 2 \(CN=hapops unrelated CA\) did not issue chain certificate 1 \(CN=hapops test intermediate\)/,
    );
  });
});

describe("validateBundle: dates", () => {
  it("refuses a certificate that is not valid yet", () => {
    const now = new Date("2019-12-31T23:59:59Z");
    expect(refusal(pem(leaf.cert, leaf.key), { now }).message).toBe(
      "the certificate is not valid yet: it starts 2020-01-01T00:00:00.000Z",
    );
  });

  it("refuses an expired certificate", () => {
    for (const now of [new Date("2021-01-01T00:00:00Z"), new Date("2024-06-01T00:00:00Z")])
      expect(refusal(pem(leaf.cert, leaf.key), { now }).message).toBe(
        "the certificate expired on 2021-01-01T00:00:00.000Z",
      );
  });

  it("refuses a certificate that expires within --min-days", () => {
    const now = new Date("2020-12-22T00:00:00Z");
    expect(refusal(pem(leaf.cert, leaf.key), { now, minDays: 30 }).message).toBe(
      "the certificate expires in 10 days (2021-01-01T00:00:00.000Z); --min-days is 30",
    );
    const lastDay = new Date("2020-12-30T12:00:00Z");
    expect(refusal(pem(leaf.cert, leaf.key), { now: lastDay, minDays: 30 }).message).toMatch(
      /^the certificate expires in 1 day \(/,
    );
  });

  it("accepts a certificate with exactly --min-days left", () => {
    const now = new Date("2020-12-02T00:00:00Z");
    expect(
      validateBundle(pem(leaf.cert, leaf.key), { ...OPTS, now, minDays: 30 }).leaf.serial,
    ).toBe(certFacts(new X509Certificate(leaf.cert)).serial);
  });
});

describe("validateBundle: names the live certificate covers", () => {
  it("accepts a certificate that covers every live name, in any case", () => {
    expect(() =>
      validateBundle(pem(leaf.cert, leaf.key), {
        ...OPTS,
        mustCover: ["A.EXAMPLE", "www.a.example"],
      }),
    ).not.toThrow();
  });

  it("refuses dropping a live name, listing it", () => {
    const err = refusal(pem(leaf.cert, leaf.key), {
      mustCover: ["a.example", "old.a.example", "*.a.example"],
    });
    expect(err.message).toBe(
      "the new certificate does not cover old.a.example, *.a.example, which the live one does (new: a.example, www.a.example); pass --force to drop them",
    );
  });

  it("refuses dropping a single name", () => {
    expect(
      refusal(pem(leaf.cert, leaf.key), { mustCover: ["a.example", "old.a.example"] }).message,
    ).toMatch(/does not cover old\.a\.example, .*pass --force to drop it$/);
  });

  it("a certificate with no name in common is called the wrong file, with no --force advice", () => {
    const err = refusal(pem(leaf.cert, leaf.key), { mustCover: ["other.org", "*.other.org"] });
    expect(err.message).toBe(
      "the new certificate covers none of the names the live one serves (other.org, *.other.org; new: a.example, www.a.example): is it the wrong file? Check the domain and --pem/--cert",
    );
    expect(err.message).not.toMatch(/--force/);
  });

  it("drops the names with --force", () => {
    const result = validateBundle(pem(leaf.cert, leaf.key), {
      ...OPTS,
      mustCover: ["old.a.example"],
      force: true,
    });
    expect(result.leaf.sans).toEqual(["a.example", "www.a.example"]);
  });

  it("uses the CN of a certificate without SANs", () => {
    expect(() =>
      validateBundle(pem(noSan.cert, noSan.key), { ...OPTS, mustCover: ["nosan.example"] }),
    ).not.toThrow();
  });
});

describe("certFacts and namesOf on a real certificate", () => {
  it("falls back to the CN, lower-cased, when there are no SANs", () => {
    const facts = certFacts(new X509Certificate(noSan.cert));
    expect(facts.sans).toEqual([]);
    expect(facts.subject).toBe("CN=NoSan.Example");
    expect(namesOf(facts)).toEqual(["nosan.example"]);
  });

  it("uses only DNS SANs, lower-cased", () => {
    expect(namesOf(certFacts(new X509Certificate(leaf.cert)))).toEqual([
      "a.example",
      "www.a.example",
    ]);
  });
});

describe("namesOf", () => {
  it.each([
    ["CN=example.com", ["example.com"]],
    ["/CN=example.com", ["example.com"]],
    ["/C=FR/O=Acme/CN=Example.COM", ["example.com"]],
    ["/C=FR/CN=example.com/emailAddress=ops@example.com", ["example.com"]],
    // A subject joined with ", " is ambiguous ("O=Acme, CN=x" inside O), so it is not parsed.
    ["C=FR, O=Acme, CN=www.example.com", []],
    ["C=FR\nO=Acme\nCN=www.example.com", ["www.example.com"]],
    ["/C=FR/O=Acme", []],
    ["", []],
  ])("subject %j with no SANs gives %j", (subject, names) => {
    expect(namesOf({ sans: [], subject })).toEqual(names);
  });

  it("prefers SANs over the CN", () => {
    expect(namesOf({ sans: ["a.example", "b.example"], subject: "/CN=c.example" })).toEqual([
      "a.example",
      "b.example",
    ]);
  });

  it.each([
    ["/O=Acme, CN=evil.example/CN=real.example"],
    ["/O=Acme\\/CN=evil.example/CN=real.example"],
  ])("takes the CN attribute, not 'CN=' text inside another attribute's value (%s)", (subj) => {
    const keyDir = mkdtempSync(join(tmpdir(), "hapops-cn-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          join(keyDir, "k.pem"),
          "-out",
          join(keyDir, "c.pem"),
          "-days",
          "1",
          "-subj",
          subj,
        ],
        { stdio: "ignore" },
      );
      const cert = new X509Certificate(execFileSync("cat", [join(keyDir, "c.pem")]));
      expect(namesOf(certFacts(cert))).toEqual(["real.example"]);
    } finally {
      rmSync(keyDir, { recursive: true, force: true });
    }
  });

  it("reads HAProxy's /-separated subject field by field", () => {
    expect(namesOf({ sans: [], subject: "/O=Acme, CN=evil.example/CN=real.example" })).toEqual([
      "real.example",
    ]);
  });

  it("returns a copy", () => {
    const sans = ["a.example"];
    const names = namesOf({ sans, subject: "" });
    names.push("x");
    expect(sans).toEqual(["a.example"]);
  });
});

describe("covers", () => {
  it.each([
    ["example.com", "example.com", true],
    ["Example.COM", "example.com", true],
    ["example.com", "EXAMPLE.com", true],
    ["example.com", "www.example.com", false],
    ["www.example.com", "example.com", false],
    ["*.example.com", "www.example.com", true],
    ["*.Example.com", "WWW.example.COM", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "a.b.example.com", false],
    ["*.example.com", ".example.com", false],
    ["*.example.com", "wwwexample.com", false],
    ["*.example.com", "www.example.org", false],
    ["*.example.com", "*.example.com", true],
    ["*.EXAMPLE.com", "*.example.COM", true],
    ["www.example.com", "*.example.com", false],
    ["*.com", "*.example.com", false],
    ["*.example.com", "*.b.example.com", false],
    ["*.b.example.com", "*.example.com", false],
  ])("covers(%j, %j) is %s", (pattern, name, expected) => {
    expect(covers(pattern, name)).toBe(expected);
  });
});

describe("normaliseSerial", () => {
  it.each([
    ["0185AB", "185AB"],
    ["01:85:ab", "185AB"],
    ["00:00:0F", "F"],
    ["7F", "7F"],
    ["00", "0"],
    ["0", "0"],
  ])("%j becomes %j", (serial, expected) => {
    expect(normaliseSerial(serial)).toBe(expected);
  });
});
