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

/** `load-server-state-from-file` (configuration.txt 4.2): where a backend's state comes from. */
export type StateLoad = "global" | "local" | "none";

/** A `server` line as the configuration sets it up (what a reload restores). */
export interface ConfigServer {
  readonly name: string;
  /** `weight`, else the backend's `default-server` weight, else HAProxy's default of 1. */
  readonly weight: number;
  /** `disabled` (or a `default-server disabled` not undone by `enabled`): starts in MAINT. */
  readonly disabled: boolean;
}

export interface ConfigBackend {
  readonly name: string;
  /** From the backend or its defaults section; HAProxy's default is none. */
  readonly loadState: StateLoad;
  /** `server-state-file-name <file>`, for `local`; undefined means the backend's name. */
  readonly stateFileName: string | undefined;
  readonly servers: readonly ConfigServer[];
}

/**
 * What a reload would set up for servers: each backend's (and listen section's) servers with
 * their configured weight and `disabled`, and the server-state file settings of the global
 * section and of each backend. `server-template` lines expand to their names (`web1`..`web3`).
 */
export interface ServerConfig {
  /** Global `server-state-file`, as written. */
  readonly stateFile: string | undefined;
  /** Global `server-state-base`, as written. */
  readonly stateBase: string | undefined;
  /** Global `crt-base`: where relative certificate names are looked up. */
  readonly crtBase: string | undefined;
  readonly backends: ReadonlyMap<string, ConfigBackend>;
}

interface ServerDefaults {
  weight?: number;
  disabled?: boolean;
  loadState?: StateLoad;
  stateFileName?: string | undefined;
}

/** `weight N`, `disabled` and `enabled` among a server line's options (later words win). */
function serverOptions(words: readonly string[], base: ServerDefaults): ServerDefaults {
  const out: ServerDefaults = { ...base };
  words.forEach((w, i) => {
    if (w === "weight") {
      const n = count(words[i + 1]);
      if (n !== undefined) out.weight = n;
    } else if (w === "disabled") out.disabled = true;
    else if (w === "enabled") out.disabled = false;
  });
  return out;
}

/** `server-template <prefix> <num | low-high> <fqdn>[:port]`: the names HAProxy gives them. */
function templateNames(prefix: string, range: string | undefined): string[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(range ?? "");
  if (!m) return [];
  const [low, high] = m[2] === undefined ? [1, Number(m[1])] : [Number(m[1]), Number(m[2])];
  if (high - low > 100_000) return [];
  const out: string[] = [];
  for (let n = low; n <= high; n++) out.push(`${prefix}${n}`);
  return out;
}

function stateLoad(word: string | undefined): StateLoad | undefined {
  return word === "global" || word === "local" || word === "none" ? word : undefined;
}

/**
 * Read the server side of a configuration: see ServerConfig. A proxy section takes the last
 * `defaults` section before it, or the named one its `from` gives (2.6); `default-server` in
 * either sets what its servers start from.
 */
export function parseServerConfig(text: string): ServerConfig {
  let stateFile: string | undefined;
  let stateBase: string | undefined;
  let crtBase: string | undefined;
  const backends = new Map<string, ConfigBackend>();
  const named = new Map<string, ServerDefaults>();
  let lastDefaults: ServerDefaults = {};
  let section: "global" | "defaults" | "proxy" | "other" = "other";
  let defaults: ServerDefaults = {};
  let proxy:
    | { name: string; base: ServerDefaults; own: ServerDefaults; servers: ConfigServer[] }
    | undefined;
  const close = () => {
    if (!proxy) return;
    const s = { ...proxy.base, ...proxy.own };
    backends.set(proxy.name, {
      name: proxy.name,
      loadState: s.loadState ?? "none",
      stateFileName: s.stateFileName,
      servers: proxy.servers,
    });
    proxy = undefined;
  };
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line.length === 0) continue;
    const words = line.split(/\s+/);
    const m = SECTION.exec(line);
    if (m && !raw.startsWith(" ") && !raw.startsWith("\t")) {
      close();
      const kind = m[1]!;
      if (kind === "global") section = "global";
      else if (kind === "defaults") {
        // `defaults [<name>] [from <name>]` (2.6): a named one can be a later section's `from`.
        section = "defaults";
        const fromAt = words.indexOf("from");
        defaults = { ...(fromAt > 0 ? named.get(words[fromAt + 1] ?? "") : undefined) };
        lastDefaults = defaults;
        if (words[1] && words[1] !== "from") named.set(words[1], defaults);
      } else if ((kind === "backend" || kind === "listen") && m[2]) {
        section = "proxy";
        const fromAt = words.indexOf("from");
        const base = (fromAt > 0 ? named.get(words[fromAt + 1] ?? "") : undefined) ?? lastDefaults;
        proxy = { name: m[2], base: { ...base }, own: {}, servers: [] };
      } else section = "other";
      continue;
    }
    if (section === "global") {
      if (words[0] === "server-state-file" && words[1]) stateFile = words[1];
      else if (words[0] === "server-state-base" && words[1]) stateBase = words[1];
      else if (words[0] === "crt-base" && words[1]) crtBase = words[1];
      continue;
    }
    const target = section === "defaults" ? defaults : section === "proxy" ? proxy?.own : undefined;
    if (!target) continue;
    if (words[0] === "load-server-state-from-file") {
      const load = stateLoad(words[1]);
      if (load) target.loadState = load;
    } else if (words[0] === "server-state-file-name") {
      target.stateFileName =
        words[1] === undefined || words[1] === "use-backend-name" ? undefined : words[1];
    } else if (words[0] === "default-server") {
      Object.assign(target, serverOptions(words.slice(1), {}));
    } else if (proxy && (words[0] === "server" || words[0] === "server-template")) {
      const base = { ...proxy.base, ...proxy.own };
      const template = words[0] === "server-template";
      const opts = serverOptions(words.slice(template ? 4 : 3), {
        ...(base.weight !== undefined ? { weight: base.weight } : {}),
        ...(base.disabled !== undefined ? { disabled: base.disabled } : {}),
      });
      const names = template ? templateNames(words[1] ?? "", words[2]) : [words[1] ?? ""];
      for (const name of names.filter(Boolean))
        proxy.servers.push({ name, weight: opts.weight ?? 1, disabled: opts.disabled ?? false });
    }
  }
  close();
  return { stateFile, stateBase, crtBase, backends };
}

/**
 * Where HAProxy opens a server-state file (srv_state_get_filepath in src/server_state.c): an
 * absolute name as it is, otherwise under `server-state-base` when there is one. Undefined for
 * a relative name without a base: HAProxy opens it from its own working directory, which hapops
 * cannot know.
 */
export function stateFilePath(name: string, base: string | undefined): string | undefined {
  if (name.startsWith("/")) return name;
  if (base === undefined) return undefined;
  return `${base}${base.endsWith("/") ? "" : "/"}${name}`;
}

/** The file a backend's state is loaded from at a reload, or undefined (none, or unknown). */
export function backendStatePath(cfg: ServerConfig, backend: ConfigBackend): string | undefined {
  if (backend.loadState === "global")
    return cfg.stateFile === undefined ? undefined : stateFilePath(cfg.stateFile, cfg.stateBase);
  if (backend.loadState === "local")
    return stateFilePath(backend.stateFileName ?? backend.name, cfg.stateBase);
  return undefined;
}
