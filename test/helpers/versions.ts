import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * HAProxy binaries for the version matrix, named by HAPOPS_TEST_HAPROXY_DIR (a directory of
 * `haproxy-X.Y.Z` files, such as ../shared/haproxy) or HAPOPS_TEST_HAPROXY (colon-separated
 * paths). CI has neither, and runs Debian's binary only; the binaries are never copied here.
 */
export function haproxyBinaries(opts: { tls?: boolean } = {}): { version: string; bin: string }[] {
  const paths: string[] = [];
  const dir = process.env.HAPOPS_TEST_HAPROXY_DIR;
  if (dir && existsSync(dir))
    for (const f of readdirSync(dir).sort()) if (/^haproxy-\d/.test(f)) paths.push(join(dir, f));
  for (const p of (process.env.HAPOPS_TEST_HAPROXY ?? "").split(":")) if (p) paths.push(p);
  return paths
    .map((bin) => ({ bin, version: /haproxy-([\d.]+)$/.exec(bin)?.[1] ?? bin }))
    .filter((b) => !(opts.tls ?? true) || b.version !== "2.4.0");
}
