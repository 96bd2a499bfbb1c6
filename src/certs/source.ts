import { join } from "node:path";
import type { InputFiles } from "../host/input-files.js";
import { parsePem, type PemBlock } from "./pem.js";

/** Where the new certificate comes from: exactly one of the three forms. */
export type CertSource =
  | { readonly kind: "pem"; readonly pem: string }
  | {
      readonly kind: "parts";
      readonly cert: string;
      readonly key: string;
      readonly chain?: string | undefined;
    }
  | { readonly kind: "certbot"; readonly dir: string };

/** Read and normalise the new bundle; nothing here touches HAProxy. */
export function loadBlocks(source: CertSource, files: InputFiles): PemBlock[] {
  const readSource = (path: string, what: string) => files.readText(path, what);
  switch (source.kind) {
    case "pem":
      return parsePem(readSource(source.pem, "--pem"), source.pem);
    case "parts":
      return [
        ...parsePem(readSource(source.cert, "--cert"), source.cert),
        ...(source.chain ? parsePem(readSource(source.chain, "--chain"), source.chain) : []),
        ...parsePem(readSource(source.key, "--key"), source.key),
      ];
    case "certbot": {
      // certbot's live directory: fullchain.pem (leaf then chain) and privkey.pem.
      const full = join(source.dir, "fullchain.pem");
      const key = join(source.dir, "privkey.pem");
      return [
        ...parsePem(readSource(full, "certbot fullchain"), full),
        ...parsePem(readSource(key, "certbot privkey"), key),
      ];
    }
  }
}
