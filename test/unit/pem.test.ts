import { describe, expect, it } from "vitest";
import { ExitCode, ValidationError } from "../../src/errors.js";
import { isKeyLabel, parsePem } from "../../src/certs/pem.js";

// parsePem never decodes the base64, so short made-up bodies keep these tests readable.
const CERT = [
  "-----BEGIN CERTIFICATE-----",
  "MIIBszCCAVmgAwIBAgIUAAECAwQFBgcICQoLDA0ODxAREhMwCgYIKoZIzj0EAwIw",
  "GDEWMBQGA1UEAwwNZXhhbXBsZS5jb20=",
  "-----END CERTIFICATE-----",
  "",
].join("\n");
const KEY = [
  "-----BEGIN PRIVATE KEY-----",
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
  "-----END PRIVATE KEY-----",
  "",
].join("\n");

/** Runs parsePem on input it must refuse and returns the error for a closer look. */
function refusal(text: string, source = "new.pem"): ValidationError {
  try {
    parsePem(text, source);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return e as ValidationError;
  }
  throw new Error("parsePem accepted input it should refuse");
}

describe("parsePem: splitting and normalising", () => {
  it("splits a file into labelled blocks, each ending in a newline", () => {
    expect(parsePem(CERT + KEY, "site.pem")).toEqual([
      { label: "CERTIFICATE", text: CERT },
      { label: "PRIVATE KEY", text: KEY },
    ]);
  });

  it("turns CRLF into LF", () => {
    const blocks = parsePem((CERT + KEY).replace(/\n/g, "\r\n"), "site.pem");
    expect(blocks.map((b) => b.text)).toEqual([CERT, KEY]);
    expect(blocks.some((b) => b.text.includes("\r"))).toBe(false);
  });

  it("drops blank lines between and inside blocks, and trailing spaces", () => {
    const messy = [
      "",
      "-----BEGIN CERTIFICATE-----  ",
      "MIIBszCCAVmgAwIBAgIUAAECAwQFBgcICQoLDA0ODxAREhMwCgYIKoZIzj0EAwIw\t",
      "",
      "   ",
      "GDEWMBQGA1UEAwwNZXhhbXBsZS5jb20=   ",
      "-----END CERTIFICATE----- ",
      "",
      "",
      "-----BEGIN PRIVATE KEY-----",
      "",
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
      "-----END PRIVATE KEY-----",
      "",
      "",
    ].join("\r\n");
    const blocks = parsePem(messy, "site.pem");
    expect(blocks.map((b) => b.text)).toEqual([CERT, KEY]);
    const payload = blocks.map((b) => b.text).join("");
    // An empty line ends a runtime API payload; every line after it would run as a command.
    expect(payload).not.toMatch(/\n\n|^\n/);
    expect(payload).not.toMatch(/[\t\r]| \n/);
  });

  it("accepts a file without a final newline", () => {
    expect(parsePem(CERT.trimEnd(), "site.pem")).toEqual([{ label: "CERTIFICATE", text: CERT }]);
  });

  it("skips the attribute lines openssl writes before blocks", () => {
    const fromPkcs12 = [
      "Bag Attributes",
      "    localKeyID: 01 02 03 04",
      "    friendlyName: example.com",
      "subject=/CN=example.com",
      "",
      "issuer=/CN=Example CA",
      CERT.trimEnd(),
      "Key Attributes: <No Attributes>",
      KEY,
    ].join("\n");
    const blocks = parsePem(fromPkcs12, "site.pem");
    expect(blocks.map((b) => b.text)).toEqual([CERT, KEY]);
    const payload = blocks.map((b) => b.text).join("");
    for (const word of ["Bag", "localKeyID", "friendlyName", "subject", "issuer", "Attributes"])
      expect(payload).not.toContain(word);
  });
});

describe("parsePem: text outside a block", () => {
  it("refuses a runtime command after a blank line, naming the file and line", () => {
    const err = refusal(`${CERT}\ndisable server be/s\n${KEY}`, "/etc/haproxy/site.pem");
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.exitCode).toBe(2);
    expect(err.code).toBe("INVALID_INPUT");
    expect(err.message).toContain("/etc/haproxy/site.pem line 6");
    expect(err.message).toContain("text outside a PEM block");
    expect(err.message).toContain('"disable server be/s"');
  });

  it("counts lines the same in a CRLF file", () => {
    const err = refusal(`${CERT}\ndisable server be/s\n${KEY}`.replace(/\n/g, "\r\n"), "a.pem");
    expect(err.message).toContain("a.pem line 6");
  });

  it("refuses a stray word before the first block", () => {
    const err = refusal(`hello\n${CERT}`, "a.pem");
    expect(err.message).toMatch(/^a\.pem line 1: text outside a PEM block \("hello"\)/);
  });

  it("refuses a stray word after the last block", () => {
    expect(refusal(`${CERT}${KEY}oops\n`, "a.pem").message).toContain("a.pem line 8");
  });

  it("refuses an END line with no BEGIN", () => {
    expect(refusal("-----END CERTIFICATE-----\n", "a.pem").message).toContain(
      "a.pem line 1: text outside a PEM block",
    );
  });

  it("refuses a BEGIN line with text after it", () => {
    expect(refusal(CERT.replace("-----BEGIN CERTIFICATE-----", "$& x"), "a.pem").message).toContain(
      "a.pem line 1: text outside a PEM block",
    );
  });
});

describe("parsePem: broken blocks", () => {
  it("refuses an END label that does not match the BEGIN", () => {
    const err = refusal(CERT.replace("END CERTIFICATE", "END PRIVATE KEY"), "a.pem");
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe("a.pem line 4: END PRIVATE KEY closes a BEGIN CERTIFICATE block");
  });

  it("refuses a block with no END line", () => {
    const err = refusal(CERT + KEY.split("\n").slice(0, 2).join("\n"), "a.pem");
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(
      "a.pem: the PRIVATE KEY block has no END line (is the file truncated?)",
    );
  });

  it("refuses a BEGIN inside a block (the END of the first is missing)", () => {
    const err = refusal(CERT.replace("-----END CERTIFICATE-----\n", "") + KEY, "a.pem");
    expect(err.message).toBe("a.pem line 4: not base64 inside a CERTIFICATE block");
  });

  it("refuses an empty block", () => {
    const err = refusal("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "a.pem");
    expect(err.message).toBe("a.pem line 3: the CERTIFICATE block is empty");
  });

  it("refuses text that is not base64 inside a block", () => {
    const err = refusal(CERT.replace("GDEW", "GD EW"), "a.pem");
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe("a.pem line 3: not base64 inside a CERTIFICATE block");
  });

  it("refuses a runtime command after a blank line inside a block", () => {
    const injected = CERT.replace("-----END", "\ndisable server be/s\n-----END");
    expect(refusal(injected, "a.pem").message).toBe(
      "a.pem line 5: not base64 inside a CERTIFICATE block",
    );
  });

  it("refuses a base64 line longer than 128 characters", () => {
    const long = CERT.replace("GDEW", "A".repeat(129));
    expect(refusal(long, "a.pem").message).toContain("not base64 inside a CERTIFICATE block");
  });

  it("refuses an encrypted key (RFC 1421 headers) with a hint to decrypt it", () => {
    const encrypted = [
      "-----BEGIN EC PRIVATE KEY-----",
      "Proc-Type: 4,ENCRYPTED",
      "DEK-Info: AES-256-CBC,89A321F5D1F7183FCD3CB50689777122",
      "",
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
      "-----END EC PRIVATE KEY-----",
      "",
    ].join("\n");
    const err = refusal(encrypted, "key.pem");
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(
      /^key\.pem line 2: the EC PRIVATE KEY block has headers \(Proc-Type\)/,
    );
    expect(err.message).toContain("encrypted key cannot be loaded by HAProxy");
    expect(err.message).toContain("openssl pkey");
  });

  it.each([
    ["empty", ""],
    ["blank lines only", "\n\r\n  \n"],
    ["attribute lines only", "Bag Attributes\n    localKeyID: 01\nsubject=/CN=x\n"],
  ])("refuses a file with no blocks (%s)", (_name, text) => {
    const err = refusal(text, "empty.pem");
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe("empty.pem: no PEM blocks found");
  });
});

describe("isKeyLabel", () => {
  it.each(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])(
    "%s is a key",
    (label) => expect(isKeyLabel(label)).toBe(true),
  );

  it.each(["CERTIFICATE", "PUBLIC KEY", "EC PARAMETERS", "X509 CRL", "PRIVATE KEY INFO"])(
    "%s is not a key",
    (label) => expect(isKeyLabel(label)).toBe(false),
  );
});
