import { describe, expect, it } from "vitest";
import { tlsReason } from "../../src/errors.js";

describe("tlsReason", () => {
  it("turns OpenSSL's alert into words", () => {
    expect(
      tlsReason(
        "808CA6B9937F0000:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 48",
      ),
    ).toBe(
      'TLS alert "unknown ca": the socket does not trust the CA that signed the client certificate',
    );
  });

  it("keeps the routine's reason when there is no alert, and plain messages as they are", () => {
    expect(
      tlsReason(
        "40E7:error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/x.c:1",
      ),
    ).toBe("certificate verify failed");
    expect(tlsReason("socket hang up")).toBe("socket hang up");
  });
});
