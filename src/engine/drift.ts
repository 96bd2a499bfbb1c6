import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { showInfo, showMaps, showSslCert, type MapKind } from "../commands/builders.js";
import type { Settings } from "../config/settings.js";
import { parsePem } from "../certs/pem.js";
import { certFacts, normaliseSerial } from "../certs/validate.js";
import { HaproxyError, LevelError } from "../errors.js";
import { readServerConfig, readStateFile } from "../host/state-file.js";
import {
  buildDriftReport,
  compareCerts,
  compareMaps,
  compareServers,
  configChangedSince,
  type CertDisk,
  type CertRuntime,
  type DriftReport,
  type MapRuntime,
} from "../ops/drift.js";
import { readEntries } from "../ops/map.js";
import { backendStatePath } from "../parse/haproxy-cfg.js";
import { parseMapList } from "../parse/map.js";
import { parseInfo } from "../parse/info.js";
import type { ServerState } from "../parse/servers-state.js";
import type { StatRow } from "../parse/stat.js";
import { parseSslCertDetail, parseSslCertList } from "../parse/ssl-cert.js";
import type { StateFileRead } from "../parse/state-file.js";
import { withSession } from "./connect.js";
import { fetchServers } from "./state.js";

/**
 * `hapops drift`'s reads: HAProxy's memory over one session, each read at the least level it
 * needs (maps and ACLs at the socket's own level, since 3.4 wants admin for them; then
 * operator for `show ssl cert`; then user for `show servers state`), and the files a reload
 * would load from this host. The comparison itself is ops/drift.ts.
 */

interface RuntimeFacts {
  readonly servers: ServerState[];
  readonly stats: ReadonlyMap<string, StatRow>;
  /** When the process HAProxy answers from started (`show info` Start_time_sec). */
  readonly startSec: number | undefined;
  readonly certs: CertRuntime[];
  readonly maps: MapRuntime[];
  readonly notes: string[];
}

async function readRuntime(settings: Settings): Promise<RuntimeFacts> {
  return withSession(settings, "hapops drift", async (session) => {
    const notes: string[] = [];
    const maps: MapRuntime[] = [];
    for (const kind of ["map", "acl"] as MapKind[]) {
      try {
        const list = parseMapList(await session.run(showMaps(kind)));
        // Inline ACLs (no file) come from haproxy.cfg itself: nothing on disk to differ from.
        for (const m of list.filter((x) => x.file !== ""))
          maps.push({ kind, file: m.file, entries: await readEntries(session, kind, `#${m.id}`) });
      } catch (e) {
        if (!(e instanceof LevelError)) throw e;
        notes.push(`${kind}s not compared: ${e.message}`);
      }
    }
    await session.lowerTo("operator");
    const certs: CertRuntime[] = [];
    try {
      const list = parseSslCertList(await session.run(showSslCert()));
      const answers = await session.pipeline(list.files.map((f) => showSslCert(f)));
      for (const lines of answers) {
        const d = parseSslCertDetail(lines);
        certs.push({
          file: d.filename,
          serial: d.serial === undefined ? undefined : normaliseSerial(d.serial),
          sha1: d.sha1Fingerprint?.replace(/:/g, "").toUpperCase(),
        });
      }
      if (list.transactions.length > 0)
        notes.push(
          `an uncommitted certificate transaction is open for ${list.transactions.join(", ")}: compared with what HAProxy serves, not with it`,
        );
    } catch (e) {
      // An HAProxy built without OpenSSL (the matrix's 2.4.0) has no `show ssl cert`: it
      // answers "Unknown command" (measured), and serves no certificate to compare.
      if (e instanceof HaproxyError && /^Unknown command/.test(e.haproxyMessage))
        notes.push(
          "certificates not compared: this HAProxy has no `show ssl cert` (built without TLS)",
        );
      else if (!(e instanceof LevelError)) throw e;
      else notes.push(`certificates not compared: ${e.message}`);
    }
    await session.lowerTo("user");
    const [views, info] = await Promise.all([
      fetchServers(session),
      session.run(showInfo()).then(parseInfo),
    ]);
    const stats = new Map<string, StatRow>();
    for (const v of views) if (v.stat) stats.set(`${v.backend}/${v.server}`, v.stat.row);
    const start = Number(info["Start_time_sec"]);
    return {
      servers: views,
      stats,
      startSec: Number.isInteger(start) && start > 0 ? start : undefined,
      certs,
      maps,
      notes,
    };
  });
}

/**
 * The newest modification time among configuration files (a directory counts with every file
 * in it, as HAProxy loads a directory's files), or undefined when one cannot be read.
 */
export function newestMtimeMs(paths: readonly string[]): number | undefined {
  let newest = 0;
  try {
    for (const p of paths) {
      const st = statSync(p);
      newest = Math.max(newest, st.mtimeMs);
      if (st.isDirectory())
        for (const f of readdirSync(p)) newest = Math.max(newest, statSync(join(p, f)).mtimeMs);
    }
  } catch {
    return undefined;
  }
  return newest;
}

/** The leaf certificate in a file, read as HAProxy would at a reload (links followed). */
function readCertFile(path: string): CertDisk {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      missing: code === "ENOENT",
      error: code === "ENOENT" ? "missing" : `cannot read it (${code ?? "error"})`,
    };
  }
  try {
    const leaf = parsePem(text, path).find((b) => b.label === "CERTIFICATE");
    if (!leaf) return { missing: false, error: "holds no certificate" };
    const facts = certFacts(new X509Certificate(leaf.text));
    return { serial: facts.serial, sha1: facts.sha1 };
  } catch {
    // Never quote the file: it holds a private key, and drift may run as root.
    return { missing: false, error: "holds no certificate hapops can read" };
  }
}

function readText(path: string): { text: string } | { error: string } {
  try {
    return { text: readFileSync(path, "utf8") };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { error: code === "ENOENT" ? "missing" : `cannot read it (${code ?? "error"})` };
  }
}

export async function runDrift(settings: Settings): Promise<DriftReport> {
  const runtime = await readRuntime(settings);
  const notes = [...runtime.notes];
  if (settings.target.kind !== "unix")
    notes.push(
      `HAProxy is reached over ${settings.target.kind}://: the files compared are this host's, which may not be the ones it loads`,
    );

  const cfg = readServerConfig(settings.haproxyConfig);
  const stateFiles = new Map<string, StateFileRead>();
  if (cfg.config)
    for (const b of cfg.config.backends.values()) {
      const path = backendStatePath(cfg.config, b);
      if (path !== undefined && !stateFiles.has(path)) stateFiles.set(path, readStateFile(path));
    }

  // A relative certificate name is under crt-base, as HAProxy looks it up.
  const crtBase = cfg.config?.crtBase;
  const certDisk = new Map<string, CertDisk>();
  for (const c of runtime.certs) {
    if (!isAbsolute(c.file) && crtBase === undefined) {
      notes.push(`${c.file}: a relative name without crt-base, not compared`);
      continue;
    }
    certDisk.set(c.file, readCertFile(isAbsolute(c.file) ? c.file : join(crtBase!, c.file)));
  }
  const mapDisk = new Map<string, { text: string } | { error: string }>();
  for (const m of runtime.maps) {
    if (isAbsolute(m.file)) mapDisk.set(m.file, readText(m.file));
    else notes.push(`${m.file}: a relative ${m.kind} file name, not compared`);
  }

  return buildDriftReport(settings.targetText, {
    servers: compareServers({
      runtime: runtime.servers,
      config: cfg.config,
      configPath: cfg.path,
      configError: cfg.error,
      stateFiles,
      configChanged: configChangedSince(newestMtimeMs([cfg.path]), runtime.startSec),
      stats: runtime.stats,
    }),
    certs: compareCerts(runtime.certs, certDisk),
    maps: compareMaps(runtime.maps, mapDisk),
    checked: {
      servers: runtime.servers.length,
      certs: runtime.certs.length,
      maps: runtime.maps.filter((m) => m.kind === "map").length,
      acls: runtime.maps.filter((m) => m.kind === "acl").length,
    },
    notes,
    sources: {
      haproxyConfig: cfg.config ? cfg.path : null,
      stateFiles: [...stateFiles.keys()],
    },
  });
}
