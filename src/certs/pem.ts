import { ValidationError } from "../errors.js";

export interface PemBlock {
  /** "CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", ... */
  readonly label: string;
  /** The block with LF line ends and no blank lines, ending in a newline. */
  readonly text: string;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END = /^-----END ([A-Z0-9 ]+)-----$/;
const BASE64 = /^[A-Za-z0-9+/=]+$/;

/**
 * Split a PEM file into blocks, normalised the way a runtime API payload must be: LF line ends
 * and no blank lines, because in HAProxy 2.6 an empty line ends the payload and every line after
 * it runs as a command (DESIGN.md). Anything outside a block other than blank lines and the
 * "Bag Attributes"/"subject=" headers openssl writes is refused, never passed on.
 */
export function parsePem(text: string, source: string): PemBlock[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks: PemBlock[] = [];
  let current: { label: string; body: string[] } | undefined;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const where = `${source} line ${i + 1}`;
    if (current) {
      if (line.length === 0) return;
      const end = END.exec(line);
      if (end) {
        if (end[1] !== current.label)
          throw new ValidationError(
            `${where}: END ${end[1]} closes a BEGIN ${current.label} block`,
          );
        if (current.body.length === 0)
          throw new ValidationError(`${where}: the ${current.label} block is empty`);
        blocks.push({
          label: current.label,
          text: [
            `-----BEGIN ${current.label}-----`,
            ...current.body,
            `-----END ${current.label}-----`,
            "",
          ].join("\n"),
        });
        current = undefined;
        return;
      }
      if (line.includes(":")) {
        // RFC 1421 headers (Proc-Type: 4,ENCRYPTED) mean an encrypted key HAProxy cannot load.
        throw new ValidationError(
          `${where}: the ${current.label} block has headers (${line.split(":")[0]}); an encrypted key cannot be loaded by HAProxy — decrypt it first (openssl pkey -in key.pem -out plain.pem)`,
        );
      }
      if (!BASE64.test(line) || line.length > 128)
        throw new ValidationError(`${where}: not base64 inside a ${current.label} block`);
      current.body.push(line);
      return;
    }
    if (line.length === 0) return;
    const begin = BEGIN.exec(line);
    if (begin) {
      current = { label: begin[1]!, body: [] };
      return;
    }
    // openssl pkcs12 and x509 write these before a block (attributes, indented); not sent.
    if (/^(Bag Attributes|Key Attributes|subject=|issuer=|\s+\S)/.test(raw)) return;
    throw new ValidationError(
      `${where}: text outside a PEM block (${JSON.stringify(raw.slice(0, 40))}); a certificate file must hold PEM blocks only, and this is never sent to HAProxy`,
    );
  });
  if (current)
    throw new ValidationError(
      `${source}: the ${current.label} block has no END line (is the file truncated?)`,
    );
  if (blocks.length === 0) throw new ValidationError(`${source}: no PEM blocks found`);
  return blocks;
}

export function isKeyLabel(label: string): boolean {
  return label.endsWith("PRIVATE KEY");
}
