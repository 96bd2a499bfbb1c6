import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/errors.js";
import {
  parseCertDate,
  parseSans,
  parseSslCertDetail,
  parseSslCertList,
} from "../../src/parse/ssl-cert.js";
import { fixtureLines, VERSIONS } from "./fixtures.js";

describe.each(VERSIONS)("show ssl cert on %s", (version) => {
  it("lists the loaded files, no transaction open", () => {
    expect(parseSslCertList(fixtureLines(version, "show-ssl-cert.txt"))).toEqual({
      files: ["/srv/demo/certs/example.com.pem", "/srv/demo/certs/other.org.pem"],
      transactions: [],
    });
  });

  it("reads a certificate's details", () => {
    const detail = parseSslCertDetail(fixtureLines(version, "show-ssl-cert-file.txt"));
    expect(detail).toMatchObject({
      filename: "/srv/demo/certs/example.com.pem",
      status: "Used",
      subject: "/CN=example.com",
      issuer: "/CN=example.com",
      algorithm: "RSA2048",
    });
    expect(detail.serial).toMatch(/^[0-9A-F]{40}$/);
    expect(detail.sha1Fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(detail.fields["OCSP Response Key"]).toBe("");
  });
});

describe("show ssl cert <file> differences between versions", () => {
  it("2.6: dates in UTC, one SAN", () => {
    const detail = parseSslCertDetail(fixtureLines("2.6", "show-ssl-cert-file.txt"));
    expect(detail.serial).toBe("6A65274B359B460382866C3905AC7800EE523E3B");
    expect(detail.notBefore?.toISOString()).toBe("2026-11-24T22:31:17.000Z");
    expect(detail.notAfter?.toISOString()).toBe("2027-02-22T22:31:17.000Z");
    expect(detail.sans).toEqual(["example.com"]);
    expect(detail.sha1Fingerprint).toBe("B497963052286A52AC7DD71BAA7029486C772B5B");
  });

  it("3.2: keeps the extra file name lines in fields, two SANs", () => {
    const detail = parseSslCertDetail(fixtureLines("3.2", "show-ssl-cert-file.txt"));
    expect(detail.notAfter?.toISOString()).toBe("2026-12-24T22:31:09.000Z");
    expect(detail.sans).toEqual(["example.com", "www.example.com"]);
    expect(detail.fields["Crt filename"]).toBe("/srv/demo/certs/example.com.pem");
    expect(detail.fields["Key filename"]).toBe("/srv/demo/certs/example.com.pem");
    expect(detail.fields["OCSP filename"]).toBe("/srv/demo/certs/example.com.pem.ocsp");
    expect(detail.fields["SCTL filename"]).toBe("/srv/demo/certs/example.com.pem.sctl");
    expect(detail.filename).toBe("/srv/demo/certs/example.com.pem");
  });
});

describe("show ssl cert captured on 2.6", () => {
  it("lists an open transaction apart from the files, without its '*'", () => {
    expect(parseSslCertList(fixtureLines("2.6", "captured-show-ssl-cert-transaction.txt"))).toEqual(
      {
        files: ["/srv/demo/certs/example.com.pem", "/srv/demo/certs/example.net.pem"],
        transactions: ["/srv/demo/certs/example.com.pem"],
      },
    );
  });

  it("reads the pending certificate of a transaction", () => {
    const detail = parseSslCertDetail(
      fixtureLines("2.6", "captured-show-ssl-cert-file-pending.txt"),
    );
    expect(detail).toMatchObject({
      filename: "*/srv/demo/certs/example.com.pem",
      status: "Unused",
      serial: "1005",
      sans: ["example.com"],
    });
    expect(detail.notBefore?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
    expect(detail.notAfter?.toISOString()).toBe("2031-01-01T00:00:00.000Z");
  });

  it("reads a leaf with its chain: first Chain Subject/Issuer kept, repeats ignored", () => {
    const detail = parseSslCertDetail(fixtureLines("2.6", "captured-show-ssl-cert-file-chain.txt"));
    expect(detail).toMatchObject({
      filename: "/srv/demo/certs/example.net.pem",
      status: "Used",
      serial: "1003",
      subject: "/C=FR/O=Hapops Test/CN=example.net",
      issuer: "/CN=Hapops Test Intermediate",
      algorithm: "EC256",
    });
    expect(detail.fields["Chain Subject"]).toBe("/CN=Hapops Test Intermediate");
    expect(detail.fields["Chain Issuer"]).toBe("/CN=Hapops Test Root");
  });

  it("reads a day of month padded with a space", () => {
    const detail = parseSslCertDetail(fixtureLines("2.6", "captured-show-ssl-cert-file-chain.txt"));
    expect(detail.fields["notBefore"]).toBe("Mar  1 12:00:00 2025 GMT");
    expect(detail.notBefore?.toISOString()).toBe("2025-03-01T12:00:00.000Z");
    expect(detail.notAfter?.toISOString()).toBe("2027-03-15T08:30:05.000Z");
  });

  it("drops the empty items HAProxy prints for IP SANs", () => {
    // The certificate holds DNS:example.net, DNS:www.example.net, IP:127.0.0.1 and IP:::1.
    const detail = parseSslCertDetail(fixtureLines("2.6", "captured-show-ssl-cert-file-chain.txt"));
    expect(detail.fields["Subject Alternative Name"]).toBe(
      "DNS:example.net, DNS:www.example.net, , ",
    );
    expect(detail.sans).toEqual(["example.net", "www.example.net"]);
  });
});

describe("parseSslCertDetail format checks", () => {
  it("refuses text without a Filename line", () => {
    expect(() =>
      parseSslCertDetail([
        "Can't display the certificate: Not found or the certificate is a bundle!",
      ]),
    ).toThrow(ProtocolError);
  });

  it("leaves absent and empty fields undefined", () => {
    const detail = parseSslCertDetail([
      "Filename: /c.pem",
      "Status: ",
      "Subject Alternative Name: ",
    ]);
    expect(detail).toMatchObject({
      filename: "/c.pem",
      status: undefined,
      serial: undefined,
      notAfter: undefined,
      sans: [],
    });
  });
});

describe("parseSans", () => {
  it("strips OpenSSL type labels", () => {
    expect(parseSans("DNS:example.com, DNS:www.example.com, IP Address:127.0.0.1")).toEqual([
      "example.com",
      "www.example.com",
      "127.0.0.1",
    ]);
    expect(parseSans("IP Address:0:0:0:0:0:0:0:1, DNS:*.example.com")).toEqual([
      "0:0:0:0:0:0:0:1",
      "*.example.com",
    ]);
  });

  it("is empty for an empty value", () => {
    expect(parseSans("")).toEqual([]);
  });
});

describe("parseCertDate", () => {
  it("reads fractional seconds", () => {
    expect(parseCertDate("Dec 31 23:59:59.5 2049 GMT")?.toISOString()).toBe(
      "2049-12-31T23:59:59.500Z",
    );
  });

  it("is undefined for what it does not know", () => {
    expect(parseCertDate("2027-02-22T22:31:17Z")).toBeUndefined();
    expect(parseCertDate("Foo 22 22:31:17 2027 GMT")).toBeUndefined();
  });
});
