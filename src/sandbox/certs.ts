import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EnvironmentError } from "../errors.js";
import { runToolAsync } from "../util/tools.js";

export interface IssuedCert {
  /** Certificate (PEM). */
  readonly cert: string;
  /** Private key (PEM). */
  readonly key: string;
  /** Certificate followed by key, the form HAProxy's `crt` loads. */
  readonly bundle: string;
}

export interface CertRequest {
  readonly cn: string;
  /** subjectAltName entries, e.g. ["DNS:example.com", "IP:127.0.0.1"]. */
  readonly san?: readonly string[];
  readonly days?: number;
  /** "serverAuth" or "clientAuth". */
  readonly usage?: "serverAuth" | "clientAuth";
  /** Fixed validity (openssl's YYYYMMDDHHMMSSZ), e.g. to issue an already expired certificate. */
  readonly validity?: { readonly start: string; readonly end: string };
  /** Issue a CA certificate (for chains): basicConstraints CA:TRUE. */
  readonly ca?: boolean;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await runToolAsync("openssl", "openssl", args, { cwd });
  } catch (e) {
    if (e instanceof EnvironmentError) throw e;
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    throw new EnvironmentError(`openssl ${args[0]} failed: ${err.stderr ?? err.message}`);
  }
}

/** A throwaway CA in `dir` that issues real certificates with the openssl command. */
export class TestCa {
  private serial = 1;
  private constructor(
    private readonly dir: string,
    readonly caCert: string,
    readonly caPath: string,
  ) {}

  static async create(dir: string, name = "hapops sandbox CA"): Promise<TestCa> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await openssl(
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        `/CN=${name}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      dir,
    );
    const caPath = join(dir, "ca.pem");
    return new TestCa(dir, await readFile(caPath, "utf8"), caPath);
  }

  /** A CA from an issued CA certificate and its key (an intermediate, for chain tests). */
  static async from(dir: string, issued: IssuedCert): Promise<TestCa> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, "ca.pem"), issued.cert);
    await writeFile(join(dir, "ca.key"), issued.key, { mode: 0o600 });
    return new TestCa(dir, issued.cert, join(dir, "ca.pem"));
  }

  async issue(req: CertRequest): Promise<IssuedCert> {
    const base = `leaf-${this.serial++}`;
    const ext = (
      req.ca
        ? ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
        : [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            `extendedKeyUsage=${req.usage ?? "serverAuth"}`,
            ...(req.san && req.san.length > 0 ? [`subjectAltName=${req.san.join(",")}`] : []),
          ]
    ).join("\n");
    await writeFile(join(this.dir, `${base}.ext`), ext + "\n");
    await openssl(
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${base}.key`,
        "-out",
        `${base}.csr`,
        "-subj",
        `/CN=${req.cn}`,
      ],
      this.dir,
    );
    if (req.validity) {
      // `openssl x509` cannot backdate; `openssl ca` can, with a throwaway database.
      await writeFile(join(this.dir, "index.txt"), "");
      await writeFile(
        join(this.dir, "ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n",
      );
      // openssl reads the serial file as hex with an even number of digits.
      const hex = (Date.now() * 1000 + this.serial).toString(16);
      await writeFile(join(this.dir, "serial"), `${hex.length % 2 ? "0" : ""}${hex}\n`);
      await openssl(
        [
          "ca",
          "-batch",
          "-notext",
          "-config",
          "ca.cnf",
          "-cert",
          "ca.pem",
          "-keyfile",
          "ca.key",
          "-in",
          `${base}.csr`,
          "-out",
          `${base}.pem`,
          "-extfile",
          `${base}.ext`,
          "-startdate",
          req.validity.start,
          "-enddate",
          req.validity.end,
        ],
        this.dir,
      );
    } else {
      await openssl(
        [
          "x509",
          "-req",
          "-in",
          `${base}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-set_serial",
          String(Date.now() * 1000 + this.serial),
          "-days",
          String(req.days ?? 90),
          "-extfile",
          `${base}.ext`,
          "-out",
          `${base}.pem`,
        ],
        this.dir,
      );
    }
    const cert = await readFile(join(this.dir, `${base}.pem`), "utf8");
    const key = await readFile(join(this.dir, `${base}.key`), "utf8");
    await Promise.all(
      [".csr", ".ext", ".pem", ".key"].map((s) => rm(join(this.dir, base + s), { force: true })),
    );
    return { cert, key, bundle: cert + key };
  }
}
