import { levelRank, type Level } from "./levels.js";

/**
 * The runtime commands hapops sends, as data: HAProxy's own words (grep management.txt 9.3 for
 * them), the least level each needs, and whether it changes state. Levels were measured on every
 * version from 2.4 to 3.4 by scripts/capture-level-fixtures.sh (test/fixtures/haproxy-<version>/
 * levels.txt; test/unit/grammar-levels.test.ts holds this table to them): `show table <name>`
 * lists entries only at operator level ("# contents not dumped due to insufficient privileges"
 * below that), `show ssl cert` at user level answers "Can't allocate memory!", and from 3.4 every
 * map and ACL command, reads included, needs admin (`levels`).
 */
export interface CommandSpec {
  readonly words: string;
  /** The least level any version takes it at: below it, every version refuses it. */
  readonly level: Level;
  /**
   * Versions that want more than `level`, as `[since, level]` from the first version measured to
   * want it (`[["3.4", "admin"]]`): the level is per version. See levelOn and sessionLevel.
   */
  readonly levels?: readonly (readonly [since: string, level: Level])[];
  readonly mutates: boolean;
  readonly usage: string;
  /**
   * Some answers end without the empty line that ends every answer (2.4 to 2.8, measured): the
   * framer then takes the next prompt as the end (runtime/framer.ts, ResponseShape).
   */
  readonly unterminated?: true;
}

function spec(
  words: string,
  level: Level,
  mutates: boolean,
  usage: string,
  unterminated?: true,
): CommandSpec {
  return unterminated
    ? { words, level, mutates, usage, unterminated }
    : { words, level, mutates, usage };
}

/**
 * Maps and ACLs: HAProxy 2.4 to 3.2 take every map and ACL command at user level, changes
 * included; 3.4.0 answers "Permission denied" to all of them below admin, `show map` too
 * (measured: test/fixtures/haproxy-3.4/levels.txt). 3.3 was not measured.
 */
function mapSpec(words: string, mutates: boolean, usage: string): CommandSpec {
  return { ...spec(words, "user", mutates, usage), levels: [["3.4", "admin"]] };
}

/** `major.minor` of a version ("3.4.0-64a335366", "2.6.12-1+deb12u4", "3.4"), or undefined. */
function majorMinor(version: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function atLeast(version: readonly [number, number], since: string): boolean {
  const s = majorMinor(since);
  if (!s) return false;
  return version[0] > s[0] || (version[0] === s[0] && version[1] >= s[1]);
}

/**
 * The level `spec` needs on one HAProxy version (as `show info` prints it). For an unknown
 * version, the highest any version needs: hapops does not guess down.
 */
export function levelOn(spec: CommandSpec, version: string | undefined): Level {
  const v = version === undefined ? undefined : majorMinor(version);
  if (v === undefined) return sessionLevel(spec);
  let level = spec.level;
  for (const [since, l] of spec.levels ?? []) if (atLeast(v, since)) level = l;
  return level;
}

/**
 * The level a session that sends `spec` is never lowered below: the highest any version needs.
 * A session cannot raise its level back (`user`/`operator` only lower it), so a read lowered to
 * `spec.level` would be refused on the versions that want more (`show map` on 3.4). The check
 * before sending uses `spec.level`: below that, every version refuses.
 */
export function sessionLevel(spec: CommandSpec): Level {
  let level = spec.level;
  for (const [, l] of spec.levels ?? []) if (levelRank(l) > levelRank(level)) level = l;
  return level;
}

/** `'admin' from HAProxy 3.4 ('user' before)`, or `'operator'`: for messages. */
export function describeLevels(spec: CommandSpec): string {
  if (!spec.levels || spec.levels.length === 0) return `'${spec.level}'`;
  const parts = spec.levels.map(([since, l]) => `'${l}' from HAProxy ${since}`);
  return `${parts.join(", ")} ('${spec.level}' before)`;
}

export const GRAMMAR = {
  prompt: spec("prompt", "user", false, "prompt"),
  quit: spec("quit", "user", false, "quit"),
  setSeverityOutput: spec(
    "set severity-output",
    "user",
    false,
    "set severity-output none|number|string",
  ),
  user: spec("user", "user", false, "user"),
  operator: spec("operator", "operator", false, "operator"),
  showCliLevel: spec("show cli level", "user", false, "show cli level"),
  showCliSockets: spec("show cli sockets", "user", false, "show cli sockets"),
  showInfo: spec("show info", "user", false, "show info"),
  showStat: spec("show stat", "user", false, "show stat [<proxy> <type> <sid>]"),
  showServersState: spec("show servers state", "user", false, "show servers state [<backend>]"),
  showBackend: spec("show backend", "user", false, "show backend"),
  showSslCert: spec("show ssl cert", "operator", false, "show ssl cert [[*]<filename>]"),
  showTableList: spec("show table", "user", false, "show table"),
  showTable: spec(
    "show table",
    "operator",
    false,
    "show table <table> [key <key>|data.<type> <op> <value>]",
  ),
  // Measured on 2.6: set/clear table need operator.
  setTable: spec(
    "set table",
    "operator",
    true,
    "set table <table> key <key> [data.<type> <value>]*",
  ),
  clearTable: spec(
    "clear table",
    "operator",
    true,
    "clear table <table> [key <key>|data.<type> <op> <value>]",
  ),
  // Measured on 2.6: `set server ... state|weight` need admin; operator gets "Permission denied".
  setServerState: spec(
    "set server",
    "admin",
    true,
    "set server <backend>/<server> state ready|drain|maint",
  ),
  setServerWeight: spec(
    "set server",
    "admin",
    true,
    "set server <backend>/<server> weight <0-256>",
  ),
  setSslCert: spec("set ssl cert", "admin", true, "set ssl cert <filename> <<payload"),
  commitSslCert: spec("commit ssl cert", "admin", true, "commit ssl cert <filename>"),
  abortSslCert: spec("abort ssl cert", "admin", true, "abort ssl cert <filename>"),
  // Raises the idle cut-off for this session only (default 10 s or `stats timeout`).
  setTimeoutCli: spec("set timeout cli", "user", false, "set timeout cli <seconds>"),
  // Maps and ACLs: user level up to 3.2, changes included; admin from 3.4 (mapSpec).
  showMap: mapSpec("show map", false, "show map [<map>]"),
  showAcl: mapSpec("show acl", false, "show acl [<acl>]"),
  getMap: mapSpec("get map", false, "get map <map> <value>"),
  getAcl: mapSpec("get acl", false, "get acl <acl> <value>"),
  addMap: mapSpec(
    "add map",
    true,
    "add map [@<ver>] <map> <key> <value> | add map @<ver> <map> <<",
  ),
  addAcl: mapSpec("add acl", true, "add acl [@<ver>] <acl> <pattern> | add acl @<ver> <acl> <<"),
  setMap: mapSpec("set map", true, "set map <map> <key> <value>"),
  delMap: mapSpec("del map", true, "del map <map> <key>"),
  delAcl: mapSpec("del acl", true, "del acl <acl> <pattern>"),
  prepareMap: mapSpec("prepare map", true, "prepare map <map>"),
  prepareAcl: mapSpec("prepare acl", true, "prepare acl <acl>"),
  commitMap: mapSpec("commit map", true, "commit map @<ver> <map>"),
  commitAcl: mapSpec("commit acl", true, "commit acl @<ver> <acl>"),
  // Empties one version: what a replace that fails before its commit leaves (management.txt 9.3).
  // 3.4.0 answers it and leaves the version's entries (measured; ops/map.ts reads back).
  clearMap: mapSpec("clear map", true, "clear map [@<ver>] <map>"),
  clearAcl: mapSpec("clear acl", true, "clear acl [@<ver>] <acl>"),
  // The master CLI (HAProxy started with -W/-Ws and -S <socket>; management.txt 9.4). Measured:
  // `show proc` answers at user level on 2.6 but "Permission denied" below operator on 3.4;
  // `reload` answers "Permission denied" at user level and reloads at operator (2.6 and 3.4).
  showProc: spec("show proc", "operator", false, "show proc"),
  reload: spec("reload", "operator", true, "reload"),
  // `@<relative pid> <command>` / `@!<pid> <command>`: one command of the grammar, sent to a
  // worker through the master. The worker runs it at the master session's level; below operator
  // the master answers "Permission denied" to any prefix (measured on 2.6 and 3.4). A pid that
  // is not a worker gets "Can't find the target PID matching the prefix" and the connection closes.
  masterRoute: spec("@", "operator", false, "@<relative pid> <command> | @!<pid> <command>"),
  // A server's life (management.txt 9.3): dynamic servers (2.4+; 2.4 and 2.5 need
  // `experimental-mode on` in the session first), addresses, checks, sessions, limits.
  // Before 3.0 some of their answers lack the empty line ("Server deleted.\n> "; measured on
  // 2.4, 2.6 and 2.8): `unterminated`.
  addServer: spec(
    "add server",
    "admin",
    true,
    "add server <backend>/<server> <addr>[:<port>] [<keyword> [<value>]]*",
    true,
  ),
  delServer: spec("del server", "admin", true, "del server <backend>/<server>", true),
  experimentalMode: spec("experimental-mode", "admin", false, "experimental-mode on|off"),
  setServerAddr: spec(
    "set server",
    "admin",
    true,
    "set server <backend>/<server> addr <ip> [port <port>]",
  ),
  enableHealth: spec("enable health", "admin", true, "enable health <backend>/<server>"),
  disableHealth: spec("disable health", "admin", true, "disable health <backend>/<server>"),
  enableAgent: spec("enable agent", "admin", true, "enable agent <backend>/<server>"),
  disableAgent: spec("disable agent", "admin", true, "disable agent <backend>/<server>"),
  shutdownSessionsServer: spec(
    "shutdown sessions server",
    "admin",
    true,
    "shutdown sessions server <backend>/<server>",
  ),
  setMaxconnServer: spec(
    "set maxconn server",
    "admin",
    true,
    "set maxconn server <backend>/<server> <maxconn>",
  ),
  setMaxconnFrontend: spec(
    "set maxconn frontend",
    "admin",
    true,
    "set maxconn frontend <frontend> <maxconn>",
  ),
  setMaxconnGlobal: spec("set maxconn global", "admin", true, "set maxconn global <maxconn>"),
  showSess: spec("show sess", "operator", false, "show sess [<id>|all]"),
  showErrors: spec(
    "show errors",
    "operator",
    false,
    "show errors [<iid>|<proxy>] [request|response]",
  ),
  showServersConn: spec("show servers conn", "user", false, "show servers conn [<backend>]"),
  // 3.0+: returns once the server can be deleted (maint, no connections) or after the delay.
  waitSrvRemovable: spec("wait", "admin", false, "wait <delay> srv-removable <backend>/<server>"),
  // `hapops raw`: the real words, level and effect come from commands/raw.ts per command.
  raw: spec("", "admin", true, "<a command from the raw table>"),
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof GRAMMAR;
