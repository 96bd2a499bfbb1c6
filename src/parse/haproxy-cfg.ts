/**
 * Stick-table definitions from an HAProxy configuration file: what the runtime API does not say.
 * `show table` gives a table's key type but not the length of string keys nor the data types it
 * stores (2.6), and HAProxy silently truncates an over-long string key. Read from the config,
 * hapops checks both before sending.
 */
export interface StickTableDef {
  readonly name: string;
  readonly type: string;
  /** `len` of string and binary keys (HAProxy's default is 32). */
  readonly len: number | undefined;
  /** Data types stored (`store gpc0,conn_rate(10s)` gives gpc0, conn_rate). */
  readonly store: readonly string[];
}

function splitOutsideParens(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const SECTION =
  /^(frontend|backend|listen|peers|defaults|global|resolvers|userlist|program|http-errors|ring|cache|mailers)\b\s*(\S+)?/;

function parseDef(name: string, words: readonly string[]): StickTableDef | undefined {
  const typeAt = words.indexOf("type");
  if (typeAt < 0) return undefined;
  const type = words[typeAt + 1];
  if (!type) return undefined;
  const lenAt = words.indexOf("len");
  const len = lenAt >= 0 ? Number(words[lenAt + 1]) : undefined;
  // `store` may appear more than once; its list splits on commas outside parentheses
  // (`gpc_rate(2,10s)` is one type with two arguments).
  const store: string[] = [];
  words.forEach((w, i) => {
    if (w !== "store") return;
    for (const item of splitOutsideParens(words[i + 1] ?? "")) {
      const name = item.replace(/\(.*$/, "").trim();
      if (name) store.push(name);
    }
  });
  return { name, type, len: len !== undefined && Number.isFinite(len) ? len : undefined, store };
}

export function parseStickTables(text: string): Map<string, StickTableDef> {
  const out = new Map<string, StickTableDef>();
  let section: { kind: string; name: string | undefined } | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line.length === 0) continue;
    const m = SECTION.exec(line);
    if (m && !raw.startsWith(" ") && !raw.startsWith("\t")) {
      section = { kind: m[1]!, name: m[2] };
      continue;
    }
    const words = line.split(/\s+/);
    if (words[0] === "stick-table" && section?.name && section.kind !== "defaults") {
      const def = parseDef(section.name, words.slice(1));
      if (def) out.set(def.name, def);
    } else if (words[0] === "table" && section?.kind === "peers" && words[1]) {
      // In a peers section, `table <name> type ...` declares a table of its own.
      const def = parseDef(`${section.name}/${words[1]}`, words.slice(2));
      if (def) out.set(def.name, def);
    }
  }
  return out;
}

/** HAProxy's limit on runtime API connections at once without `stats maxconn` (configuration.txt 3.1). */
export const DEFAULT_STATS_MAXCONN = 10;

export interface StatsSocketLine {
  /** The address as written: `/run/haproxy/admin.sock`, `ipv4@127.0.0.1:9999`. */
  readonly address: string;
  /** `maxconn` on the line: this socket's own limit, within `stats maxconn`. */
  readonly maxconn: number | undefined;
  readonly level: string | undefined;
}

/**
 * The runtime API's connection limits, from the global section. `stats maxconn` (default 10)
 * caps the connections of all `stats socket` lines together, and a line's own `maxconn` (a bind
 * option, configuration.txt 5.1) caps that socket; measured on 2.6, a connection beyond either waits in the kernel's backlog,
 * unanswered, until one closes.
 */
export interface StatsLimits {
  /** The last `stats maxconn`, if any. */
  readonly maxconn: number | undefined;
  readonly sockets: readonly StatsSocketLine[];
}

function count(word: string | undefined): number | undefined {
  return word !== undefined && /^\d+$/.test(word) ? Number(word) : undefined;
}

export function parseStatsLimits(text: string): StatsLimits {
  let maxconn: number | undefined;
  const sockets: StatsSocketLine[] = [];
  let inGlobal = false;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line.length === 0) continue;
    const m = SECTION.exec(line);
    if (m && !raw.startsWith(" ") && !raw.startsWith("\t")) {
      inGlobal = m[1] === "global";
      continue;
    }
    const words = line.split(/\s+/);
    if (!inGlobal || words[0] !== "stats") continue;
    if (words[1] === "maxconn") maxconn = count(words[2]) ?? maxconn;
    else if (words[1] === "socket" && words[2]) {
      const opts = words.slice(3);
      const at = (name: string) => {
        const i = opts.indexOf(name);
        return i >= 0 ? opts[i + 1] : undefined;
      };
      sockets.push({ address: words[2], maxconn: count(at("maxconn")), level: at("level") });
    }
  }
  return { maxconn, sockets };
}
