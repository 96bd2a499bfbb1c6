import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { connect as tlsConnect, type PeerCertificate } from "node:tls";
import { expect, it } from "vitest";
import { parsePem } from "../../src/certs/pem.js";
import { certFacts } from "../../src/certs/validate.js";
import { X509Certificate } from "node:crypto";
import { commitSslCert, setSslCert, showSslCert } from "../../src/commands/builders.js";
import { applyCertTransaction } from "../../src/engine/cert-transaction.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { HaproxyError } from "../../src/errors.js";
import { parseSslCertList } from "../../src/parse/ssl-cert.js";
import type { IssuedCert } from "../../src/sandbox/certs.js";
import { hapops, json, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { describeWhere, lacks } from "../helpers/versions.js";

const lab = useLab({
  backends: [{ name: "be_app", servers: [{ name: "app1" }, { name: "app2" }] }],
});

const EXAMPLE = () => join(lab().certDir, "example.com.pem");
const OTHER = () => join(lab().certDir, "other.org.pem");

let n = 0;
/** Write PEM parts into a fresh directory; returns their paths. */
function files(parts: Record<string, string>): Record<string, string> {
  const dir = join(lab().dir, `rot-${++n}`);
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const [name, text] of Object.entries(parts)) {
    out[name] = join(dir, name);
    writeFileSync(out[name], text, { mode: 0o600 });
  }
  return out;
}

function config(extra = ""): string {
  const dir = join(lab().dir, `cfg-${++n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "hapops.yaml"),
    `socket: ${lab().sockets.admin}\naudit:\n  path: ${join(dir, "audit.jsonl")}\nbackupDir: ${join(dir, "backups")}\n${extra}`,
  );
  return join(dir, "hapops.yaml");
}

const run = (args: readonly string[], cfg = config()): Promise<CliResult> =>
  hapops(args, { env: { HAPOPS_CONFIG: cfg } });

/** What a real TLS client sees for a name: the serial HAProxy serves (and its issuer chain). */
function served(
  servername: string,
): Promise<PeerCertificate & { issuerCertificate?: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host: "127.0.0.1", port: lab().httpsPort, servername, rejectUnauthorized: false },
      () => {
        const cert = s.getPeerCertificate(true);
        s.end();
        resolve(cert);
      },
    );
    s.on("error", reject);
  });
}

const serialOf = (c: IssuedCert) => certFacts(new X509Certificate(c.cert)).serial;
const norm = (s: string) => s.toUpperCase().replace(/^0+/, "");

async function openTransactions(): Promise<string[]> {
  const socket = await connect(
    { kind: "unix", path: lab().sockets.admin },
    { connectTimeoutMs: 2000 },
  );
  const s = RuntimeSession.start(socket, { target: "t", timeoutMs: 5000 });
  try {
    return parseSslCertList(await s.run(showSslCert())).transactions;
  } finally {
    await s.close();
  }
}

const fullNames = ["DNS:example.com", "DNS:www.example.com"];

describeWhere(lacks("tls"))("rotate-cert", () => {
  it("rotates without a reload: a TLS client with SNI sees the new serial; the log has fingerprints, no key", async () => {
    const next = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 60 });
    const f = files({ "new.crt": next.cert, "new.key": next.key });
    const cfg = config();
    const r = await run(
      [
        "rotate-cert",
        "www.example.com",
        "--cert",
        f["new.crt"]!,
        "--key",
        f["new.key"]!,
        "--reason",
        "renewal",
      ],
      cfg,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `verified: HAProxy serves serial ${serialOf(next)} for ${EXAMPLE()}`,
    );
    expect(r.stdout).toMatch(/not persisted: a reload will bring the old certificate back/);
    expect(norm((await served("example.com")).serialNumber)).toBe(serialOf(next));
    expect(await openTransactions()).toEqual([]);

    const log = readFileSync(join(cfg, "..", "audit.jsonl"), "utf8");
    expect(log).not.toContain("BEGIN");
    expect(log).not.toContain(next.key.split("\n")[1]!);
    expect(log).not.toContain(next.cert.split("\n")[2]!);
    const [intent, result] = log
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            phase: string;
            commands: string[];
            detail: { new: { serial: string; sha256: string } };
          },
      );
    expect(intent).toMatchObject({
      phase: "intent",
      commands: [`set ssl cert ${EXAMPLE()} <<`, `commit ssl cert ${EXAMPLE()}`],
    });
    expect(intent!.detail.new).toMatchObject({
      serial: serialOf(next),
      sha256: certFacts(new X509Certificate(next.cert)).sha256,
    });
    expect(result).toMatchObject({ phase: "result", outcome: "ok" });
  });

  it("--persist refuses when the file on disk is not what HAProxy serves (exit 3)", async () => {
    // The rotation above was not persisted: memory and disk now differ.
    const next = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 61 });
    const f = files({ "bundle.pem": next.cert + next.key });
    const r = await run(["rotate-cert", EXAMPLE(), "--pem", f["bundle.pem"]!, "--persist"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /--persist: .*example\.com\.pem on disk holds serial \w+, not the certificate HAProxy serves/,
    );
    // Serving the file's own certificate again brings memory and disk back together.
    expect((await run(["rotate-cert", EXAMPLE(), "--pem", EXAMPLE()])).code).toBe(0);
  });

  it("--persist writes the file atomically, keeps the old one in the backup directory (not where HAProxy loads certificates) with its mode, never world-readable", async () => {
    const before = readFileSync(EXAMPLE(), "utf8");
    const oldMode = statSync(EXAMPLE()).mode & 0o777;
    const next = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 61 });
    const f = files({ "bundle.pem": next.cert + next.key });
    const r = await run(["rotate-cert", EXAMPLE(), "--pem", f["bundle.pem"]!, "--persist"]);
    expect(r.code, r.stderr).toBe(0);
    const kept =
      /persisted: .*example\.com\.pem \(mode 0600; previous kept as (\/.*\/backups\/example\.com\.pem\.[^ ]+\.bak)\)/.exec(
        r.stdout,
      )?.[1];
    expect(kept, r.stdout).toBeDefined();
    expect(readFileSync(kept!, "utf8")).toBe(before);
    expect(statSync(kept!).mode & 0o777).toBe(oldMode);
    // Nothing beside the certificate: HAProxy loads every file of its crt directory.
    expect(readdirSync(dirname(EXAMPLE())).filter((f) => f.startsWith("example.com"))).toEqual([
      "example.com.pem",
    ]);
    expect(statSync(EXAMPLE()).mode & 0o007).toBe(0);
    const onDisk = parsePem(readFileSync(EXAMPLE(), "utf8"), "disk");
    expect(onDisk.map((b) => b.label)).toEqual(["CERTIFICATE", "PRIVATE KEY"]);
    expect(certFacts(new X509Certificate(onDisk[0]!.text)).serial).toBe(serialOf(next));
  });

  it("accepts a certbot live directory with its chain, and serves the chain", async () => {
    const inter = await lab().ca.issue({ cn: "hapops test intermediate", ca: true, days: 365 });
    const { TestCa } = await import("../../src/sandbox/certs.js");
    const interCa = await TestCa.from(join(lab().dir, `inter-${++n}`), inter);
    const leaf = await interCa.issue({ cn: "example.com", san: fullNames, days: 80 });
    const dir = join(lab().dir, `certbot-${++n}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "fullchain.pem"), leaf.cert + inter.cert);
    writeFileSync(join(dir, "privkey.pem"), leaf.key, { mode: 0o600 });
    const r = await run(["rotate-cert", "example.com", "--certbot-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    const peer = await served("example.com");
    expect(norm(peer.serialNumber)).toBe(serialOf(leaf));
    expect(peer.issuerCertificate?.subject.CN).toBe("hapops test intermediate");
  });

  it("adding the missing intermediate to the same leaf is a change, not 'already serves'", async () => {
    const inter = await lab().ca.issue({ cn: "hapops test intermediate", ca: true, days: 365 });
    const { TestCa } = await import("../../src/sandbox/certs.js");
    const interCa = await TestCa.from(join(lab().dir, `inter-${++n}`), inter);
    const leaf = await interCa.issue({ cn: "example.com", san: fullNames, days: 81 });
    const alone = files({ "alone.pem": leaf.cert + leaf.key });
    expect((await run(["rotate-cert", "example.com", "--pem", alone["alone.pem"]!])).code).toBe(0);
    const withChain = files({
      "leaf.crt": leaf.cert,
      "leaf.key": leaf.key,
      "chain.pem": inter.cert,
    });
    const r = await run([
      "rotate-cert",
      "example.com",
      "--cert",
      withChain["leaf.crt"]!,
      "--key",
      withChain["leaf.key"]!,
      "--chain",
      withChain["chain.pem"]!,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/already serves/);
    expect(r.stdout).toMatch(/verified: HAProxy serves serial/);
    expect((await served("example.com")).issuerCertificate?.subject.CN).toBe(
      "hapops test intermediate",
    );
  });

  it("normalises CRLF and blank lines (which would end a 2.6 payload early) and rotates", async () => {
    const next = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 62 });
    const messy = (next.cert + "\n\n" + next.key)
      .replace(/\n/g, "\r\n")
      .replace("-----\r\nMI", "-----\r\n\r\nMI");
    const f = files({ "messy.pem": messy });
    const r = await run(["rotate-cert", "example.com", "--pem", f["messy.pem"]!]);
    expect(r.code, r.stderr).toBe(0);
    expect(norm((await served("example.com")).serialNumber)).toBe(serialOf(next));
    expect(await openTransactions()).toEqual([]);
  });

  it.each([
    [
      "a key that does not match",
      async () => {
        const a = await lab().ca.issue({ cn: "example.com", san: fullNames });
        const b = await lab().ca.issue({ cn: "example.com", san: fullNames });
        return { pem: a.cert + b.key };
      },
      /the private key does not match the certificate/,
    ],
    [
      "an expired certificate",
      async () => {
        const c = await lab().ca.issue({
          cn: "example.com",
          san: fullNames,
          validity: { start: "20200101000000Z", end: "20210101000000Z" },
        });
        return { pem: c.cert + c.key };
      },
      /the certificate expired on 2021-01-01/,
    ],
    [
      "a certificate that expires within --min-days",
      async () => {
        const c = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 3 });
        return { pem: c.cert + c.key };
      },
      /expires in [23] days .*--min-days is 7/,
    ],
    [
      "a certificate that drops a name",
      async () => {
        const c = await lab().ca.issue({ cn: "example.com", san: ["DNS:example.com"] });
        return { pem: c.cert + c.key };
      },
      /does not cover www\.example\.com, which the live one does .*--force/,
    ],
    [
      "a chain that did not issue the leaf",
      async () => {
        const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
        return { pem: c.cert + lab().rogueCa.caCert + c.key };
      },
      /chain certificate 1 \(CN=untrusted CA\) did not issue the leaf/,
    ],
    [
      "the chain before the leaf",
      async () => {
        const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
        return { pem: lab().ca.caCert + c.cert + c.key };
      },
      /is a CA and the key is not its own; the leaf must come first/,
    ],
    [
      "a command hidden after a blank line",
      async () => {
        const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
        return { pem: c.cert + "\ndisable server be_app/app1\n" + c.key };
      },
      /text outside a PEM block \("disable server be_app\/app1"\)/,
    ],
  ])(
    "refuses %s (exit 2): nothing sent, the old certificate keeps serving",
    async (_what, make, message) => {
      const { pem } = await make();
      const f = files({ "bad.pem": pem });
      const before = norm((await served("www.example.com")).serialNumber);
      const cfg = config();
      const r = await run(["rotate-cert", "example.com", "--pem", f["bad.pem"]!], cfg);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(norm((await served("www.example.com")).serialNumber)).toBe(before);
      expect(await openTransactions()).toEqual([]);
      const servers = json<{ admin: string }[]>(
        await hapops(["-s", lab().sockets.admin, "servers", "be_app", "--json"]),
      );
      expect(servers.every((s) => s.admin === "READY")).toBe(true);
      const rec = JSON.parse(readFileSync(join(cfg, "..", "audit.jsonl"), "utf8").trim()) as {
        outcome: string;
        commands: string[];
      };
      expect(rec).toMatchObject({ outcome: "refused", commands: [] });
    },
  );

  it.each([
    [
      ["rotate-cert", "example.com", "--pem", "/nonexistent/new.pem"],
      /cannot read --pem \/nonexistent\/new\.pem: no such file/,
    ],

    [
      ["rotate-cert", "example.com", "--pem", "a.pem", "--cert", "b.pem", "--key", "c.pem"],
      /give the new certificate one way/,
    ],
    [["rotate-cert", "example.com", "--cert", "b.pem"], /--cert and --key go together/],
  ])("refuses %j (exit 2)", async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("names the candidates when no loaded certificate covers the domain (exit 2)", async () => {
    const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
    const f = files({ "ok.pem": c.cert + c.key });
    const r = await run(["rotate-cert", "nothing.example.net", "--pem", f["ok.pem"]!]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /no loaded certificate covers nothing\.example\.net; loaded: .*example\.com\.pem \(example\.com, www\.example\.com\).*other\.org\.pem \(other\.org, \*\.other\.org\)/,
    );
  });

  it("--dry-run runs every check and shows what would be sent, sending nothing", async () => {
    const before = norm((await served("example.com")).serialNumber);
    const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
    const f = files({ "ok.pem": c.cert + c.key });
    const r = await run(["rotate-cert", "example.com", "--pem", f["ok.pem"]!, "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`set ssl cert ${EXAMPLE()} <<`);
    expect(r.stdout).toMatch(/<payload: 1 certificate\(s\) and the key, \d+ lines, elided>/);
    expect(r.stdout).not.toContain("BEGIN");
    expect(norm((await served("example.com")).serialNumber)).toBe(before);
  });

  it("refuses while another transaction is open (exit 3), and --abort-stale aborts it first", async () => {
    const socket = await connect(
      { kind: "unix", path: lab().sockets.admin },
      { connectTimeoutMs: 2000 },
    );
    const s = RuntimeSession.start(socket, { target: "t", timeoutMs: 5000 });
    await s.run(setSslCert(OTHER(), readFileSync(OTHER(), "utf8")));
    await s.close();
    expect(await openTransactions()).toEqual([OTHER()]);
    const c = await lab().ca.issue({ cn: "example.com", san: fullNames });
    const f = files({ "ok.pem": c.cert + c.key });
    const refused = await run(["rotate-cert", "example.com", "--pem", f["ok.pem"]!]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(
      new RegExp(
        `a certificate transaction is already open for ${OTHER().replace(/[.]/g, "\\.")}.*--abort-stale`,
      ),
    );
    const cfg = config();
    const r = await run(
      ["rotate-cert", "example.com", "--pem", f["ok.pem"]!, "--abort-stale"],
      cfg,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/aborted the stale transaction for .*other\.org\.pem/);
    expect(await openTransactions()).toEqual([]);
    const recs = readFileSync(join(cfg, "..", "audit.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { commands: string[] });
    // One intent for the whole plan: the stale abort first, then the rotation.
    expect(recs[0]!.commands).toEqual([
      `abort ssl cert ${OTHER()}`,
      `set ssl cert ${EXAMPLE()} <<`,
      `commit ssl cert ${EXAMPLE()}`,
    ]);
  });

  it("a commit HAProxy refuses is aborted: no open transaction, the old serial still serving", async () => {
    // Local validation would catch this key; the transaction engine is driven directly to get a
    // real refusal from HAProxy at commit (it accepts a mismatched key at `set`).
    const before = norm((await served("example.com")).serialNumber);
    const a = await lab().ca.issue({ cn: "example.com", san: fullNames });
    const b = await lab().ca.issue({ cn: "example.com", san: fullNames });
    const [read, write] = await Promise.all(
      [0, 1].map(async () =>
        RuntimeSession.start(
          await connect({ kind: "unix", path: lab().sockets.admin }, { connectTimeoutMs: 2000 }),
          {
            target: "t",
            timeoutMs: 5000,
          },
        ),
      ),
    );
    const sessions = { read: read!, write: write!, close: () => Promise.resolve() };
    const err = await applyCertTransaction(
      sessions,
      EXAMPLE(),
      setSslCert(EXAMPLE(), a.cert + b.key),
      commitSslCert(EXAMPLE()),
      certFacts(new X509Certificate(a.cert)),
    ).catch((e: unknown) => e);
    await Promise.all([read!.close(), write!.close()]);
    expect(err).toBeInstanceOf(HaproxyError);
    expect((err as HaproxyError).message).toMatch(
      /HAProxy refused "commit ssl cert .*": .*; the transaction was aborted and the old certificate keeps serving/,
    );
    expect((err as { sent: string[] }).sent).toEqual([
      `set ssl cert ${EXAMPLE()} <<`,
      `commit ssl cert ${EXAMPLE()}`,
      `abort ssl cert ${EXAMPLE()}`,
    ]);
    expect(await openTransactions()).toEqual([]);
    expect(norm((await served("example.com")).serialNumber)).toBe(before);
  });

  it("--force allows dropping a name, recorded", async () => {
    const c = await lab().ca.issue({ cn: "example.com", san: ["DNS:example.com"] });
    const f = files({ "narrow.pem": c.cert + c.key });
    const r = await run(["rotate-cert", "example.com", "--pem", f["narrow.pem"]!, "--force"]);
    expect(r.code, r.stderr).toBe(0);
    expect(norm((await served("example.com")).serialNumber)).toBe(serialOf(c));
  });

  it("needs an admin socket (exit 4 from an operator socket)", async () => {
    const c = await lab().ca.issue({ cn: "example.com", san: ["DNS:example.com"] });
    const f = files({ "ok.pem": c.cert + c.key });
    const r = await hapops([
      "-s",
      lab().sockets.operator,
      "rotate-cert",
      "example.com",
      "--pem",
      f["ok.pem"]!,
    ]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/is at level 'operator'; 'rotate-cert' needs 'admin'/);
  });
});

describeWhere(lacks("tls"))("certs --expiring", () => {
  it("exits 1 when a certificate expires within the window, 0 otherwise", async () => {
    const soon = await hapops(["-s", lab().sockets.operator, "certs", "--expiring", "30d"]);
    expect(soon.code).toBe(1);
    expect(soon.stdout).toMatch(/1 certificate\(s\) expire within the window: .*other\.org\.pem/);
    const later = await hapops(["-s", lab().sockets.operator, "certs", "--expiring", "10d"]);
    expect(later.code, later.stderr).toBe(0);
    expect(later.stdout).toMatch(/no certificate expires within the window/);
    const js = await hapops(["-s", lab().sockets.operator, "certs", "--expiring", "30d", "--json"]);
    expect(js.code).toBe(1);
    expect(json<{ expiring: string[] }>(js).expiring).toEqual([OTHER()]);
  });
});
