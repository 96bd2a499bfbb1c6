import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { certFacts } from "../../src/certs/validate.js";
import { showSslCert } from "../../src/commands/builders.js";
import { certLockHere, certLockPath } from "../../src/engine/cert-lock.js";
import { parseSslCertDetail, parseSslCertList } from "../../src/parse/ssl-cert.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import type { IssuedCert } from "../../src/sandbox/certs.js";
import { connect } from "../../src/transport/connect.js";
import { cliEnv, hapops, HAPOPS, type CliResult } from "../helpers/cli.js";
import { useLab } from "../helpers/lab.js";
import { atLeast } from "../helpers/versions.js";

/**
 * Two hapops runs, or hapops and a hand-typed `set ssl cert`, racing on HAProxy's one certificate
 * transaction. A delaying unix-socket proxy between hapops and the real admin socket holds one
 * line until the other party has acted, so each interleaving happens every time; waits are on
 * conditions with deadlines.
 */

const lab = useLab({
  backends: [{ name: "be_app", servers: [{ name: "app1" }] }],
});

const EXAMPLE = () => join(lab().certDir, "example.com.pem");
const OTHER = () => join(lab().certDir, "other.org.pem");
const fullNames = ["DNS:example.com", "DNS:www.example.com"];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const serialOf = (c: IssuedCert) => certFacts(new X509Certificate(c.cert)).serial;
const norm = (s: string) => s.toUpperCase().replace(/^0+/, "");

let n = 0;
function dir(prefix: string): string {
  const d = join(lab().dir, `${prefix}-${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function pemFile(c: IssuedCert): string {
  const f = join(dir("pem"), "new.pem");
  writeFileSync(f, c.cert + c.key, { mode: 0o600 });
  return f;
}

/** A config for runs through `socket`, with a long command timeout (a held line waits). */
function config(socket: string): { path: string; audit: string } {
  const d = dir("cfg");
  const audit = join(d, "audit.jsonl");
  writeFileSync(
    join(d, "hapops.yaml"),
    `socket: ${socket}\naudit:\n  path: ${audit}\ntimeouts:\n  command: 60s\n`,
  );
  return { path: join(d, "hapops.yaml"), audit };
}

/** What a real TLS client with SNI is served: the leaf's serial. */
function served(servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host: "127.0.0.1", port: lab().httpsPort, servername, rejectUnauthorized: false },
      () => {
        const cert = s.getPeerCertificate();
        s.end();
        resolve(norm(cert.serialNumber));
      },
    );
    s.on("error", reject);
  });
}

async function adminSession(): Promise<RuntimeSession> {
  const socket = await connect(
    { kind: "unix", path: lab().sockets.admin },
    { connectTimeoutMs: 2000 },
  );
  return RuntimeSession.start(socket, { target: "t", timeoutMs: 5000 });
}

async function openTransactions(): Promise<string[]> {
  const s = await adminSession();
  try {
    return parseSslCertList(await s.run(showSslCert())).transactions;
  } finally {
    await s.close();
  }
}

async function pendingSerial(file: string): Promise<string | undefined> {
  const s = await adminSession();
  try {
    return parseSslCertDetail(await s.run(showSslCert(`*${file}`))).serial;
  } finally {
    await s.close();
  }
}

/** One line on the admin socket as socat would send it: connect, write, read to EOF. */
function socat(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(lab().sockets.admin);
    let answer = "";
    s.on("data", (d: Buffer) => (answer += d.toString()));
    s.on("error", reject);
    s.on("close", () => resolve(answer));
    s.end(text);
  });
}

/** `set ssl cert F <<` with a PEM payload, by hand, as management.txt 9.3 shows with socat. */
function setByHand(file: string, pem: string): Promise<string> {
  const payload = pem
    .split("\n")
    .filter((l) => l.trim() !== "")
    .join("\n");
  return socat(`set ssl cert ${file} <<\n${payload}\n\n`);
}

interface Traffic {
  readonly conn: number;
  readonly phase: string;
  readonly dir: "up" | "down";
  readonly text: string;
}

/**
 * A unix-socket proxy in front of HAProxy's admin socket. Every connection is tagged with the
 * proxy's `phase` when it is accepted (the run that opened it). Lines from the client are
 * forwarded one by one and recorded; `hold` names a gate for a line to wait at (each gate
 * catches one line, once) until `release(gate)`. Answers are forwarded as they come and
 * recorded too.
 */
class DelayProxy {
  readonly path: string;
  phase = "";
  readonly traffic: Traffic[] = [];
  /** Lines caught by each gate. */
  readonly held = new Map<string, Traffic>();
  private server: Server | undefined;
  private waiters = new Set<() => void>();
  private gates = new Map<string, () => void>();
  private released = new Set<string>();
  private conns = 0;
  private sockets = new Set<Socket>();
  private open: string[] = [];

  constructor(
    readonly upstream: string,
    private readonly hold: (t: Traffic) => string | undefined,
  ) {
    this.path = join(dir("proxy"), "p.sock");
  }

  async start(): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.path, resolve);
    });
  }

  private changed(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolve when `pred` holds; reject at the deadline, saying what was awaited. */
  until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; traffic:\n${this.dump()}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Re-check waiters on something outside the proxy (a child's exit). */
  poke(): void {
    this.changed();
  }

  /** Let a gate's line go (now, or as soon as it arrives). */
  release(gate: string): void {
    this.released.add(gate);
    this.gates.get(gate)?.();
    this.gates.delete(gate);
  }

  /** Client connections of a phase that are still open. */
  openConnections(phase: string): number {
    return this.open.filter((p) => p === phase).length;
  }

  /** Whether a `phase` connection got an answer matching `re`. */
  answered(phase: string, re: RegExp): boolean {
    return this.traffic.some((t) => t.phase === phase && t.dir === "down" && re.test(t.text));
  }

  lines(phase: string, re: RegExp): string[] {
    return this.traffic
      .filter((t) => t.phase === phase && t.dir === "up" && re.test(t.text))
      .map((t) => t.text);
  }

  dump(): string {
    return this.traffic
      .filter((t) => !/^[A-Za-z0-9+/=]{20,}$/.test(t.text))
      .map((t) => `${t.phase}#${t.conn} ${t.dir === "up" ? ">" : "<"} ${t.text.slice(0, 120)}`)
      .join("\n");
  }

  private accept(client: Socket): void {
    const conn = ++this.conns;
    const phase = this.phase;
    const up = netConnect(this.upstream);
    this.sockets.add(client).add(up);
    this.open.push(phase);
    let buf = "";
    let waiting = false;
    let clientEnded = false;
    let closed = false;
    const record = (t: Traffic) => {
      this.traffic.push(t);
      this.changed();
    };
    const pump = async () => {
      if (waiting) return;
      for (;;) {
        const i = buf.indexOf("\n");
        if (i < 0) break;
        const line = buf.slice(0, i);
        const t: Traffic = { conn, phase, dir: "up", text: line };
        const gate = this.hold(t);
        if (gate !== undefined && !this.held.has(gate)) {
          this.held.set(gate, t);
          this.changed();
          if (!this.released.has(gate)) {
            waiting = true;
            await new Promise<void>((r) => this.gates.set(gate, r));
            waiting = false;
          }
          // A client that died while held never gets its line sent.
          if (closed || client.destroyed) return;
        }
        buf = buf.slice(i + 1);
        record(t);
        up.write(line + "\n");
      }
      if (clientEnded) up.end(buf);
    };
    client.on("data", (d: Buffer) => {
      buf += d.toString();
      void pump();
    });
    client.on("end", () => {
      clientEnded = true;
      void pump();
    });
    client.on("close", () => {
      closed = true;
      this.open.splice(this.open.indexOf(phase), 1);
      if (waiting) up.destroy();
      this.changed();
    });
    client.on("error", () => up.destroy());
    up.on("data", (d: Buffer) => {
      for (const l of d.toString().split("\n"))
        if (l) record({ conn, phase, dir: "down", text: l });
      if (!client.destroyed) client.write(d);
    });
    up.on("end", () => client.end());
    up.on("error", () => client.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const g of [...this.gates.keys()]) this.release(g);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

interface Child {
  readonly pid: number;
  exited: CliResult | undefined;
  readonly done: Promise<CliResult>;
  kill(): void;
}

/** A hapops run that is not awaited (the other run must act while it is held). */
function start(args: readonly string[], cfg: string, onExit: () => void): Child {
  const child = spawn(process.execPath, [HAPOPS, ...args], {
    env: { ...cliEnv(), HAPOPS_CONFIG: cfg },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const c: Child = {
    pid: child.pid!,
    exited: undefined,
    done: new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => {
        c.exited = { code, stdout, stderr };
        onExit();
        resolve(c.exited);
      });
    }),
    kill: () => child.kill("SIGKILL"),
  };
  return c;
}

const proxies: DelayProxy[] = [];
async function proxy(hold: (t: Traffic) => string | undefined): Promise<DelayProxy> {
  const p = new DelayProxy(lab().sockets.admin, hold);
  await p.start();
  proxies.push(p);
  return p;
}

afterEach(async () => {
  for (const p of proxies.splice(0)) await p.stop();
  // Leave HAProxy without a transaction for the next test, whatever happened.
  for (const t of await openTransactions()) await socat(`abort ssl cert ${t}\n`);
});

interface AuditLine {
  pid: number;
  phase: string;
  outcome?: string;
  commands: string[];
}

function auditRecords(path: string): AuditLine[] {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as AuditLine);
}

/** The gates of two racing rotations: run 1's set and commit, run 2's set. */
function raceGates(t: Traffic): string | undefined {
  if (t.phase === "run1" && t.text.startsWith("set ssl cert")) return "set1";
  if (t.phase === "run1" && t.text.startsWith("commit ssl cert")) return "commit1";
  if (t.phase === "run2" && t.text.startsWith("set ssl cert")) return "set2";
  return undefined;
}

/**
 * Two rotations interleaved the way that, without a lock, commits the wrong certificate: run 2
 * looks for open transactions while run 1's `set ssl cert` is held, so both find none; run 1
 * sets and reaches its commit, which is held until run 2's set has been answered ("Transaction
 * updated": run 2's certificate is now the pending one); then run 1 commits. Every step waits
 * for the one before it, or for run 2 to have exited (refused).
 */
async function race(
  p: DelayProxy,
  cfg: string,
  args1: readonly string[],
  args2: readonly string[],
  meanwhile?: (run1: Child) => Promise<void>,
): Promise<{ run1: Child; run2: Child; r1: CliResult; r2: CliResult }> {
  p.phase = "run1";
  const run1 = start(args1, cfg, () => p.poke());
  await p.until(() => p.held.has("set1") || run1.exited !== undefined, "run 1's set ssl cert");
  expect(run1.exited, run1.exited?.stderr).toBeUndefined();
  await meanwhile?.(run1);
  p.phase = "run2";
  const run2 = start(args2, cfg, () => p.poke());
  const run2Gone = () => run2.exited !== undefined;
  await p.until(() => p.held.has("set2") || run2Gone(), "run 2's set ssl cert, or its exit");
  p.release("set1");
  await p.until(() => p.held.has("commit1") || run1.exited !== undefined, "run 1's commit");
  p.release("set2");
  await p.until(
    () => p.answered("run2", /^Transaction /) || run2Gone(),
    "an answer to run 2's set ssl cert, or its exit",
  );
  p.release("commit1");
  const [r1, r2] = await Promise.all([run1.done, run2.done]);
  return { run1, run2, r1, r2 };
}

describe("rotate-cert: certificate transactions are exclusive", () => {
  it("two concurrent rotations: the second run is refused (exit 3, nothing sent) and the first run's certificate serves", async () => {
    const p = await proxy(raceGates);
    const cfg = config(p.path);
    const first = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 70 });
    const second = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 71 });
    const secondPem = pemFile(second);
    let dry: CliResult | undefined;

    const { run1, run2, r1, r2 } = await race(
      p,
      cfg.path,
      ["rotate-cert", "example.com", "--pem", pemFile(first)],
      ["rotate-cert", "example.com", "--pem", secondPem],
      async () => {
        // A dry run meanwhile says a rotation is under way.
        p.phase = "dry";
        dry = await hapops(["rotate-cert", "example.com", "--pem", secondPem, "--dry-run"], {
          env: { HAPOPS_CONFIG: cfg.path },
        });
      },
    );

    expect(r2.code, r2.stderr).toBe(3);
    expect(r2.stderr).toMatch(
      new RegExp(
        `another hapops run \\(pid ${run1.pid}, user \\w+, since [\\d:]+ UTC\\) is rotating ${esc(EXAMPLE())} on .*; .*wait for that run to finish and run again \\(nothing was sent`,
      ),
    );
    expect(r2.stderr.trim().split("\n")).toHaveLength(1);
    expect(p.lines("run2", /^(set|commit|abort) ssl cert/)).toEqual([]);
    expect(auditRecords(cfg.audit).filter((r) => r.pid === run2.pid)).toMatchObject([
      { outcome: "refused", commands: [] },
    ]);

    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toContain(
      `verified: HAProxy serves serial ${serialOf(first)} for ${EXAMPLE()}`,
    );
    expect(await served("example.com")).toBe(serialOf(first));
    expect(await openTransactions()).toEqual([]);
    // The lock went with run 1.
    const here = certLockHere();
    expect(existsSync(certLockPath(here.dir, realpathSync(p.path)))).toBe(false);

    // The dry run meanwhile gets the verdict the real run got: refused while run 1 holds the lock.
    expect(dry?.code, dry?.stderr).toBe(3);
    expect(dry?.stdout).toMatch(
      new RegExp(
        `guard lock: hapops run pid ${run1.pid} \\(user \\w+\\) is rotating ${esc(EXAMPLE())}`,
      ),
    );
    expect(dry?.stderr).toMatch(new RegExp(`another hapops run \\(pid ${run1.pid},`));
  });

  it("the lock is per HAProxy, not per file: a rotation of another file at the same time is refused (exit 3, nothing sent)", async () => {
    // On 2.6 a `set ssl cert` for any file while a transaction is open updates that transaction
    // (see the last test): without this, example.com would be committed with other.org's
    // certificate.
    const p = await proxy(raceGates);
    const cfg = config(p.path);
    const before = await served("other.org");
    const ex = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 72 });
    const other = await lab().ca.issue({
      cn: "other.org",
      san: ["DNS:other.org", "DNS:*.other.org"],
      days: 72,
    });
    const { run1, r1, r2 } = await race(
      p,
      cfg.path,
      ["rotate-cert", "example.com", "--pem", pemFile(ex)],
      ["rotate-cert", "other.org", "--pem", pemFile(other)],
    );
    expect(r2.code, r2.stderr).toBe(3);
    expect(r2.stderr).toMatch(
      new RegExp(`another hapops run \\(pid ${run1.pid}.*\\) is rotating ${esc(EXAMPLE())}`),
    );
    expect(p.lines("run2", /^(set|commit|abort) ssl cert/)).toEqual([]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(await served("example.com")).toBe(serialOf(ex));
    expect(await served("other.org")).toBe(before);
  });

  it("a run killed mid-transaction: its lock is taken over, its transaction is named as its own and needs --abort-stale", async () => {
    const p = await proxy((t) =>
      t.phase === "run1" && t.text.startsWith("commit ssl cert") ? "commit1" : undefined,
    );
    const cfg = config(p.path);
    const before = await served("example.com");
    const doomed = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 73 });
    const next = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 74 });
    p.phase = "run1";
    const run1 = start(["rotate-cert", "example.com", "--pem", pemFile(doomed)], cfg.path, () =>
      p.poke(),
    );
    await p.until(() => p.held.has("commit1") || run1.exited !== undefined, "run 1's commit");
    run1.kill();
    await run1.done;
    // Its held commit is dropped with its connections, never sent.
    await p.until(() => p.openConnections("run1") === 0, "run 1's connections to close");
    expect(await openTransactions()).toEqual([EXAMPLE()]);
    expect(await served("example.com")).toBe(before);

    p.phase = "run2";
    const r2 = await hapops(["rotate-cert", "example.com", "--pem", pemFile(next)], {
      env: { HAPOPS_CONFIG: cfg.path },
    });
    // Refused before anything is taken or sent: the dead run's lock is still there to name it.
    expect(r2.code, r2.stderr).toBe(3);
    expect(r2.stderr).toMatch(
      new RegExp(
        `a certificate transaction is already open for ${esc(EXAMPLE())} \\(most likely left by hapops run pid ${run1.pid}, which is gone\\); see it with: hapops raw "show ssl cert \\*${esc(EXAMPLE())}".*--abort-stale`,
      ),
    );
    expect(p.lines("run2", /^(set|commit|abort) ssl cert/)).toEqual([]);

    p.phase = "run3";
    const r3 = await hapops(
      ["rotate-cert", "example.com", "--pem", pemFile(next), "--abort-stale"],
      {
        env: { HAPOPS_CONFIG: cfg.path },
      },
    );
    expect(r3.code, r3.stderr).toBe(0);
    expect(r3.stdout).toMatch(
      new RegExp(
        `took over the lock of hapops run pid ${run1.pid}, .*, which was rotating ${esc(EXAMPLE())} and is gone`,
      ),
    );
    expect(r3.stdout).toMatch(
      new RegExp(
        `aborted the stale transaction for ${esc(EXAMPLE())} \\(it serves serial ${before}, read back\\)`,
      ),
    );
    expect(await served("example.com")).toBe(serialOf(next));
  });

  it("'Transaction updated' (someone's set ssl cert by hand on the same file): exit 3, their transaction is neither committed nor aborted, the message says what it now holds and what serves", async () => {
    const p = await proxy((t) =>
      t.phase === "run" && t.text.startsWith("set ssl cert") ? "set" : undefined,
    );
    const cfg = config(p.path);
    const before = await served("example.com");
    const theirs = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 75 });
    const ours = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 76 });
    p.phase = "run";
    const run = start(["rotate-cert", "example.com", "--pem", pemFile(ours)], cfg.path, () =>
      p.poke(),
    );
    await p.until(() => p.held.has("set") || run.exited !== undefined, "hapops' set ssl cert");
    expect(run.exited, run.exited?.stderr).toBeUndefined();
    // Between hapops' checks and its set, someone opens a transaction on the same file.
    expect(await setByHand(EXAMPLE(), theirs.cert + theirs.key)).toMatch(
      /^Transaction created for certificate /,
    );
    p.release("set");
    const r = await run.done;

    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `another certificate transaction was already open on ${esc(EXAMPLE())} .*"Transaction updated".*it now holds the certificate we sent \\(serial ${serialOf(ours)}, read back\\); hapops committed nothing and aborted nothing of it, and the old certificate keeps serving for ${esc(EXAMPLE())} \\(serial ${before}, read back\\); committing that transaction would make ${esc(EXAMPLE())} serve what it holds; see it with: hapops raw "show ssl cert \\*${esc(EXAMPLE())}".*hapops rotate-cert ${esc(EXAMPLE())} .* --abort-stale`,
      ),
    );
    expect(p.lines("run", /^(commit|abort) ssl cert/)).toEqual([]);
    // Still pending, and, as management.txt 9.3 says of an update, it holds our payload now.
    expect(await openTransactions()).toEqual([EXAMPLE()]);
    expect(norm((await pendingSerial(EXAMPLE())) ?? "")).toBe(serialOf(ours));
    expect(await served("example.com")).toBe(before);
    const recs = auditRecords(cfg.audit);
    expect(recs[recs.length - 1]).toMatchObject({
      phase: "result",
      outcome: "failed",
      commands: [`set ssl cert ${EXAMPLE()} <<`],
    });
  });

  it("a transaction open on another file: 2.6 to 3.0 put our payload into it ('Transaction updated'), 3.2+ refuse ours; exit 3, nothing of it aborted, said truthfully", async () => {
    const p = await proxy((t) =>
      t.phase === "run" && t.text.startsWith("set ssl cert") ? "set" : undefined,
    );
    const cfg = config(p.path);
    const beforeEx = await served("example.com");
    const beforeOther = await served("other.org");
    const ours = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 77 });
    p.phase = "run";
    const run = start(["rotate-cert", "example.com", "--pem", pemFile(ours)], cfg.path, () =>
      p.poke(),
    );
    await p.until(() => p.held.has("set") || run.exited !== undefined, "hapops' set ssl cert");
    expect(await setByHand(OTHER(), readFileSync(OTHER(), "utf8"))).toMatch(
      new RegExp(`^Transaction created for certificate ${esc(OTHER())}!`),
    );
    p.release("set");
    const r = await run.done;

    expect(r.code, r.stderr).toBe(3);
    if (atLeast("3.2"))
      expect(r.stderr.trim()).toMatch(
        new RegExp(
          `^hapops: a certificate transaction is already open on ${esc(OTHER())} \\(another tool, or a set ssl cert by hand\\), and HAProxy takes one at a time: it refused the certificate sent for ${esc(EXAMPLE())} \\("The ongoing transaction is about '${esc(OTHER())}' but you are trying to set '${esc(EXAMPLE())}' Can't update ${esc(EXAMPLE())}!"\\); hapops committed nothing and aborted nothing of it, and the old certificate keeps serving for ${esc(EXAMPLE())} \\(serial ${beforeEx}, read back\\); see it with: hapops raw "show ssl cert \\*${esc(OTHER())}"; when it is finished, or if nobody is using it, run again`,
        ),
      );
    else
      expect(r.stderr).toMatch(
        new RegExp(
          `a certificate transaction was already open on ${esc(OTHER())} .*HAProxy put the certificate sent for ${esc(EXAMPLE())} into that transaction \\("Transaction updated for certificate ${esc(OTHER())}".*it now holds the certificate we sent \\(serial ${serialOf(ours)}, read back\\); hapops committed nothing and aborted nothing of it, and the old certificate keeps serving for ${esc(EXAMPLE())} \\(serial ${beforeEx}, read back\\); committing that transaction would make ${esc(OTHER())} serve what it holds; see it with: hapops raw "show ssl cert \\*${esc(OTHER())}"`,
        ),
      );
    expect(p.lines("run", /^(commit|abort) ssl cert/)).toEqual([]);
    expect(await openTransactions()).toEqual([OTHER()]);
    expect(await served("example.com")).toBe(beforeEx);
    expect(await served("other.org")).toBe(beforeOther);
  });

  it("a set ssl cert by hand lands in hapops' own transaction before its check: aborted, and what serves is read back and said (exit 1)", async () => {
    const p = await proxy((t) =>
      t.phase === "run" && t.text.startsWith("show ssl cert *") ? "pending" : undefined,
    );
    const cfg = config(p.path);
    const before = await served("example.com");
    const ours = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 78 });
    const theirs = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 79 });
    p.phase = "run";
    const run = start(["rotate-cert", "example.com", "--pem", pemFile(ours)], cfg.path, () =>
      p.poke(),
    );
    await p.until(() => p.held.has("pending") || run.exited !== undefined, "hapops' check");
    expect(await setByHand(EXAMPLE(), theirs.cert + theirs.key)).toMatch(
      /^Transaction updated for certificate /,
    );
    p.release("pending");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `the pending certificate for ${esc(EXAMPLE())} is serial ${serialOf(theirs)} .*not the one sent \\(${serialOf(ours)}, .*another set ssl cert changed the transaction; the transaction was aborted and the old certificate keeps serving for ${esc(EXAMPLE())} \\(serial ${before}, read back\\)`,
      ),
    );
    expect(p.lines("run", /^(commit|abort) ssl cert/)).toEqual([`abort ssl cert ${EXAMPLE()}`]);
    expect(await openTransactions()).toEqual([]);
    expect(await served("example.com")).toBe(before);
  });

  it("a set ssl cert by hand between hapops' check and its commit: HAProxy commits it, and hapops says which serial serves, never 'the old one' (exit 1)", async () => {
    const p = await proxy((t) =>
      t.phase === "run" && t.text.startsWith("commit ssl cert") ? "commit" : undefined,
    );
    const cfg = config(p.path);
    const ours = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 80 });
    const theirs = await lab().ca.issue({ cn: "example.com", san: fullNames, days: 81 });
    p.phase = "run";
    const run = start(["rotate-cert", "example.com", "--pem", pemFile(ours)], cfg.path, () =>
      p.poke(),
    );
    await p.until(() => p.held.has("commit") || run.exited !== undefined, "hapops' commit");
    expect(await setByHand(EXAMPLE(), theirs.cert + theirs.key)).toMatch(
      /^Transaction updated for certificate /,
    );
    p.release("commit");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `after the commit ${esc(EXAMPLE())} serves serial ${serialOf(theirs)} \\(SHA-1 [0-9A-F]{40}, read back\\), not ours \\(${serialOf(ours)}\\): another set ssl cert changed the transaction between our check and the commit`,
      ),
    );
    expect(r.stderr).not.toMatch(/old certificate keeps serving/);
    expect(p.lines("run", /^abort ssl cert/)).toEqual([]);
    expect(await served("example.com")).toBe(serialOf(theirs));
  });
});
