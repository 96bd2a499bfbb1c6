import { isIP } from "node:net";
import { ValidationError } from "../errors.js";
import { GRAMMAR, type CommandName, type CommandSpec } from "./grammar.js";
import { levelRank, type Level } from "./levels.js";
import {
  validateFilename,
  refusePayloadMarker,
  validateName,
  validateTableDataType,
  validateTableDataValue,
  validateTableFilterOp,
  validateTableKey,
  type TableKeySpec,
} from "./validate.js";

/**
 * A runtime command ready to send. Only the builders below create these: nothing else in
 * hapops concatenates text for the socket.
 */
export interface RuntimeCommand {
  readonly name: CommandName;
  readonly spec: CommandSpec;
  /** The command line without its trailing newline. */
  readonly line: string;
  /** Payload lines sent after `<<`; never contains an empty line (it would end the payload). */
  readonly payload?: readonly string[];
}

/** The one place lines are assembled. Builders validate each word first; this is the backstop. */
function build(name: CommandName, args: readonly string[] = []): RuntimeCommand {
  const spec = GRAMMAR[name];
  for (const [i, word] of args.entries()) {
    // The payload marker is a builder's own last word, never part of an argument.
    if (word === "<<" && i === args.length - 1) continue;
    if (word.length === 0 || /[\s;\\]|<</.test(word) || /[^\x21-\x7e]/.test(word))
      throw new ValidationError(
        `${JSON.stringify(word)} cannot be sent as a word of '${spec.words}': it is empty or contains a space, ';', '\\', '<<' or a control or non-ASCII character`,
      );
  }
  const line = [spec.words, ...args].join(" ");
  return { name, spec, line };
}

export function prompt(): RuntimeCommand {
  return build("prompt");
}

export function quit(): RuntimeCommand {
  return build("quit");
}

export function setSeverityOutput(format: "none" | "number" | "string"): RuntimeCommand {
  return build("setSeverityOutput", [format]);
}

/** `user` / `operator`: lower the session's level (management.txt 9.3). */
export function lowerLevel(to: Exclude<Level, "admin">): RuntimeCommand {
  return build(to);
}

export function showCliLevel(): RuntimeCommand {
  return build("showCliLevel");
}

export function showCliSockets(): RuntimeCommand {
  return build("showCliSockets");
}

export function showInfo(): RuntimeCommand {
  return build("showInfo");
}

/** `show stat [<proxy> -1 -1]`: all objects of one proxy, or everything. */
export function showStat(proxy?: string): RuntimeCommand {
  if (proxy === undefined) return build("showStat");
  return build("showStat", [validateName("proxy name", proxy), "-1", "-1"]);
}

export function showServersState(backend?: string): RuntimeCommand {
  if (backend === undefined) return build("showServersState");
  return build("showServersState", [validateName("backend name", backend)]);
}

export function showBackend(): RuntimeCommand {
  return build("showBackend");
}

/** `show ssl cert [<file>]`; a leading `*` shows the pending transaction for that file. */
export function showSslCert(filename?: string): RuntimeCommand {
  if (filename === undefined) return build("showSslCert");
  return build("showSslCert", [validateFilename("certificate file name", filename, true)]);
}

/** `show table`: the list of tables with their type, size and use. */
export function showTables(): RuntimeCommand {
  return build("showTableList");
}

export interface TableFilter {
  readonly type: string;
  readonly op: string;
  readonly value: string;
}

/** What `show table` / `clear table` select: everything, one key, or a data filter. */
export type TableSelection =
  | { readonly key: { readonly value: string; readonly spec: TableKeySpec } }
  | { readonly filter: TableFilter }
  | Record<string, never>;

function selectionArgs(table: string, sel: TableSelection): string[] {
  if ("key" in sel) return ["key", validateTableKey(table, sel.key.spec, sel.key.value)];
  if ("filter" in sel) {
    const f = sel.filter;
    return [
      `data.${validateTableDataType(table, f.type)}`,
      validateTableFilterOp(f.op),
      validateTableDataValue(f.type, f.value),
    ];
  }
  return [];
}

/** `show table <table> [key <key> | data.<type> <op> <value>]`. */
export function showTable(table: string, sel: TableSelection = {}): RuntimeCommand {
  const name = validateName("table name", table);
  return build("showTable", [name, ...selectionArgs(name, sel)]);
}

/** `set table <table> key <key> data.<type> <value>...`, each checked against the table. */
export function setTable(
  table: string,
  key: { value: string; spec: TableKeySpec },
  data: readonly { type: string; value: string }[],
  stored?: readonly string[],
): RuntimeCommand {
  const name = validateName("table name", table);
  if (data.length === 0)
    throw new ValidationError("set table needs at least one data.<type>=<value>");
  const args = ["key", validateTableKey(name, key.spec, key.value)];
  for (const d of data)
    args.push(
      `data.${validateTableDataType(name, d.type, stored)}`,
      validateTableDataValue(d.type, d.value),
    );
  return build("setTable", [name, ...args]);
}

/** `clear table <table> [key <key> | data.<type> <op> <value>]`; without either, every entry. */
export function clearTable(table: string, sel: TableSelection = {}): RuntimeCommand {
  const name = validateName("table name", table);
  return build("clearTable", [name, ...selectionArgs(name, sel)]);
}

export type ServerAdminState = "ready" | "drain" | "maint";

const SERVER_STATES: readonly ServerAdminState[] = ["ready", "drain", "maint"];

function serverRef(backend: string, server: string): string {
  return `${validateName("backend name", backend)}/${validateName("server name", server)}`;
}

/** `set server <b>/<s> state ready|drain|maint` (management.txt 9.3). */
export function setServerState(
  backend: string,
  server: string,
  state: ServerAdminState,
): RuntimeCommand {
  if (!SERVER_STATES.includes(state))
    throw new ValidationError(
      `server state must be ready, drain or maint, not ${JSON.stringify(state)}`,
    );
  return build("setServerState", [serverRef(backend, server), "state", state]);
}

/** `set server <b>/<s> weight <w>` with an absolute weight 0-256 (HAProxy's range). */
export function setServerWeight(backend: string, server: string, weight: number): RuntimeCommand {
  if (!Number.isInteger(weight) || weight < 0 || weight > 256)
    throw new ValidationError(`weight must be a whole number from 0 to 256, not ${weight}`);
  return build("setServerWeight", [serverRef(backend, server), "weight", String(weight)]);
}

/**
 * `set ssl cert <file> <<` with a PEM payload. HAProxy 2.6 ends a payload at the first empty
 * line and runs every following line as a command, so the payload must hold PEM lines only.
 */
export function setSslCert(filename: string, pem: string): RuntimeCommand {
  const file = validateFilename("certificate file name", filename);
  const lines = pem.replace(/\r\n?/g, "\n").split("\n");
  const payload = lines.filter((l) => l.trim().length > 0);
  for (const l of payload) {
    if (!/^[A-Za-z0-9+/=\- ]+$/.test(l) || l.length > 1024)
      throw new ValidationError(
        `certificate payload for ${file} contains a line that is not PEM; refusing to send it`,
      );
  }
  if (payload.length === 0) throw new ValidationError(`certificate payload for ${file} is empty`);
  return { ...build("setSslCert", [file, "<<"]), payload };
}

/** `commit ssl cert <file>`: apply the open transaction ("Success!" when it worked). */
export function commitSslCert(filename: string): RuntimeCommand {
  return build("commitSslCert", [validateFilename("certificate file name", filename)]);
}

/** `abort ssl cert <file>`: drop the open transaction; the old certificate keeps serving. */
export function abortSslCert(filename: string): RuntimeCommand {
  return build("abortSslCert", [validateFilename("certificate file name", filename)]);
}

/** `show proc` on the master CLI: the master, its workers and the old ones still finishing. */
export function showProc(): RuntimeCommand {
  return build("showProc");
}

/** `reload` on the master CLI: a soft reload (-sf) of every worker (management.txt 9.4). */
export function reload(): RuntimeCommand {
  return build("reload");
}

/** A worker as the master CLI names it: by its place (1 = the newest) or by its pid. */
export type WorkerRef = { readonly relative: number } | { readonly pid: number };

/**
 * `@<n> <command>` / `@!<pid> <command>`: a command of the grammar sent to one worker through the
 * master CLI. Only one-line worker commands: no payload, and never a master command or a prefix.
 */
export function onWorker(worker: WorkerRef, command: RuntimeCommand): RuntimeCommand {
  const n = "pid" in worker ? worker.pid : worker.relative;
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff)
    throw new ValidationError(
      `${"pid" in worker ? "a worker pid" : "a relative worker number"} is a whole number from 1, not ${n}`,
    );
  if (
    command.payload !== undefined ||
    command.line.startsWith("@") ||
    ["showProc", "reload", "masterRoute"].includes(command.name)
  )
    throw new ValidationError(
      `'${command.spec.words}' cannot be sent to a worker through the master CLI`,
    );
  const route = build("masterRoute");
  const prefix = "pid" in worker ? `@!${n}` : `@${n}`;
  return {
    name: command.name,
    spec: {
      ...command.spec,
      level:
        levelRank(command.spec.level) < levelRank(route.spec.level)
          ? route.spec.level
          : command.spec.level,
    },
    line: `${prefix} ${command.line}`,
  };
}

/** The bytes written to the socket for a command. */
export function encodeCommand(cmd: RuntimeCommand): string {
  if (!cmd.payload) return `${cmd.line}\n`;
  return `${cmd.line}\n${cmd.payload.join("\n")}\n\n`;
}

export type MapKind = "map" | "acl";

/** A map or ACL as the runtime API names it: its file, or `#<id>`. */
export function validateMapRef(kind: MapKind, ref: string): string {
  if (/^#-?\d+$/.test(ref)) return ref;
  return validateFilename(`${kind} file name`, ref);
}

/** Map keys, values and ACL patterns: printable ASCII without space, `;` or backslash. */
const MAP_WORD = /^[\x21-\x3a\x3c-\x5b\x5d-\x7e]+$/;

export function validateMapWord(what: string, value: string): string {
  if (value.length === 0) throw new ValidationError(`${what} is empty`);
  refusePayloadMarker(what, value);
  if (!MAP_WORD.test(value)) {
    const bad = [...value].find((ch) => !MAP_WORD.test(ch)) ?? "";
    const named =
      bad === " "
        ? "a space"
        : bad === ";"
          ? "';' (a command separator)"
          : bad === "\\"
            ? "a backslash"
            : `character ${JSON.stringify(bad)}`;
    throw new ValidationError(`${what} ${JSON.stringify(value)} contains ${named}`);
  }
  return value;
}

const MAP_NAMES = {
  map: {
    show: "showMap",
    get: "getMap",
    add: "addMap",
    del: "delMap",
    prepare: "prepareMap",
    commit: "commitMap",
    clear: "clearMap",
  },
  acl: {
    show: "showAcl",
    get: "getAcl",
    add: "addAcl",
    del: "delAcl",
    prepare: "prepareAcl",
    commit: "commitAcl",
    clear: "clearAcl",
  },
} as const;

export function showMaps(kind: MapKind): RuntimeCommand {
  return build(MAP_NAMES[kind].show);
}

export function showMap(kind: MapKind, ref: string, version?: number): RuntimeCommand {
  return build(MAP_NAMES[kind].show, [
    ...(version !== undefined ? [`@${version}`] : []),
    validateMapRef(kind, ref),
  ]);
}

export function getMap(kind: MapKind, ref: string, value: string): RuntimeCommand {
  return build(MAP_NAMES[kind].get, [
    validateMapRef(kind, ref),
    validateMapWord("lookup value", value),
  ]);
}

/**
 * `add map [@<ver>] <map> <key> <value>` / `add acl [@<ver>] <acl> <pattern>`. With a version,
 * the entry goes into a prepared version (2.6 to 3.4 take no payload for `add acl`, so an ACL
 * replace fills its version one pattern per line).
 */
export function addMapEntry(
  kind: MapKind,
  ref: string,
  key: string,
  value?: string,
  version?: number,
): RuntimeCommand {
  const args = [
    ...(version !== undefined ? [mapVersion(version)] : []),
    validateMapRef(kind, ref),
    validateMapWord(kind === "map" ? "key" : "pattern", key),
  ];
  if (kind === "map") args.push(validateMapWord("value", value ?? ""));
  return build(MAP_NAMES[kind].add, args);
}

export function setMapEntry(ref: string, key: string, value: string): RuntimeCommand {
  return build("setMap", [
    validateMapRef("map", ref),
    validateMapWord("key", key),
    validateMapWord("value", value),
  ]);
}

export function delMapEntry(kind: MapKind, ref: string, key: string): RuntimeCommand {
  return build(MAP_NAMES[kind].del, [
    validateMapRef(kind, ref),
    validateMapWord(kind === "map" ? "key" : "pattern", key),
  ]);
}

export function prepareMap(kind: MapKind, ref: string): RuntimeCommand {
  return build(MAP_NAMES[kind].prepare, [validateMapRef(kind, ref)]);
}

/**
 * `add map @<ver> <map> <<` with "key value" lines (ACL: one pattern per line). Keys and patterns
 * have no spaces; a value is the rest of its line. No line may be empty: it would end the payload.
 */
export function addMapVersion(
  kind: MapKind,
  version: number,
  ref: string,
  entries: readonly { key: string; value?: string | undefined }[],
): RuntimeCommand {
  const payload = entries.map((e) => {
    const key = validateMapWord(kind === "map" ? "key" : "pattern", e.key);
    if (kind === "acl") return key;
    const value = e.value ?? "";
    if (value.length === 0 || !/^[\x20-\x7e]+$/.test(value) || value.trim() !== value)
      throw new ValidationError(
        `value for ${key} must be printable ASCII without leading or trailing spaces`,
      );
    return `${key} ${value}`;
  });
  if (payload.length === 0) throw new ValidationError(`the new ${kind} has no entries`);
  return {
    ...build(MAP_NAMES[kind].add, [`@${version}`, validateMapRef(kind, ref), "<<"]),
    payload,
  };
}

export function commitMap(kind: MapKind, version: number, ref: string): RuntimeCommand {
  return build(MAP_NAMES[kind].commit, [`@${version}`, validateMapRef(kind, ref)]);
}

/** `clear map @<ver> <map>`: empty a prepared version that will not be committed. */
export function clearMapVersion(kind: MapKind, version: number, ref: string): RuntimeCommand {
  return build(MAP_NAMES[kind].clear, [mapVersion(version), validateMapRef(kind, ref)]);
}

/** Version numbers are unsigned 32-bit (management.txt 9.3, "prepare map"). */
function mapVersion(version: number): string {
  if (!Number.isInteger(version) || version < 0 || version > 0xffffffff)
    throw new ValidationError(`a map version is a whole number 0-4294967295, not ${version}`);
  return `@${version}`;
}

/** A server's address as `add server` and `set server ... addr` take it: an IP, and a port. */
export interface ServerAddress {
  readonly ip: string;
  readonly port?: number | undefined;
}

function validateServerAddress(what: string, a: ServerAddress): ServerAddress {
  if (isIP(a.ip) === 0)
    throw new ValidationError(
      `${what} ${JSON.stringify(a.ip)} is not an IP address (HAProxy does not resolve names given at runtime)`,
    );
  if (a.port !== undefined && (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535))
    throw new ValidationError(
      `${what}: port must be a whole number from 1 to 65535, not ${a.port}`,
    );
  return a;
}

/**
 * The address word of `add server`: `10.0.0.5:8080`, `ipv6@2001:db8::5:8080` for IPv6 (HAProxy
 * takes the last `:` as the port separator, so a bare IPv6 address would lose its last group).
 */
function addressWord(a: ServerAddress): string {
  const host = isIP(a.ip) === 6 ? `ipv6@${a.ip}` : a.ip;
  return a.port === undefined ? host : `${host}:${a.port}`;
}

/** A keyword of `add server` and its value, when it takes one (`weight 10`, `check`). */
export type ServerKeyword = readonly [keyword: string, value?: string];

/**
 * `add server <b>/<s> <addr> [<kw> [<value>]]*`. Keywords are checked by the operation against
 * the list the running version accepts; here each word is checked to be one word.
 */
export function addServer(
  backend: string,
  server: string,
  address: ServerAddress,
  keywords: readonly ServerKeyword[] = [],
): RuntimeCommand {
  const words: string[] = [
    serverRef(backend, server),
    addressWord(validateServerAddress("server address", address)),
  ];
  for (const [kw, value] of keywords) {
    if (!/^[a-z][a-z0-9-]*$/.test(kw))
      throw new ValidationError(`${JSON.stringify(kw)} is not a server keyword`);
    words.push(kw);
    if (value !== undefined) words.push(refusePayloadMarker(kw, value));
  }
  return build("addServer", words);
}

/** `del server <b>/<s>`: only a server in maintenance with no connections (HAProxy checks). */
export function delServer(backend: string, server: string): RuntimeCommand {
  return build("delServer", [serverRef(backend, server)]);
}

/** `experimental-mode on`: this session only; `add server` needs it on 2.4 and 2.5. */
export function experimentalModeOn(): RuntimeCommand {
  return build("experimentalMode", ["on"]);
}

/** `set server <b>/<s> addr <ip> [port <port>]`. */
export function setServerAddr(
  backend: string,
  server: string,
  address: ServerAddress,
): RuntimeCommand {
  const a = validateServerAddress("server address", address);
  return build("setServerAddr", [
    serverRef(backend, server),
    "addr",
    a.ip,
    ...(a.port !== undefined ? ["port", String(a.port)] : []),
  ]);
}

/** `enable|disable health|agent <b>/<s>`: the server's health or agent check. */
export function setCheck(
  check: "health" | "agent",
  on: boolean,
  backend: string,
  server: string,
): RuntimeCommand {
  const name =
    check === "health"
      ? on
        ? "enableHealth"
        : "disableHealth"
      : on
        ? "enableAgent"
        : "disableAgent";
  return build(name, [serverRef(backend, server)]);
}

/** `shutdown sessions server <b>/<s>`: cut every session on the server now. */
export function shutdownSessionsServer(backend: string, server: string): RuntimeCommand {
  return build("shutdownSessionsServer", [serverRef(backend, server)]);
}

function validateMaxconn(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff)
    throw new ValidationError(`maxconn must be a whole number from 0 to 2147483647, not ${n}`);
  return String(n);
}

/** `set maxconn server <b>/<s> <n>` (0: no limit). */
export function setMaxconnServer(backend: string, server: string, n: number): RuntimeCommand {
  return build("setMaxconnServer", [serverRef(backend, server), validateMaxconn(n)]);
}

/** `set maxconn frontend <name> <n>`. */
export function setMaxconnFrontend(frontend: string, n: number): RuntimeCommand {
  return build("setMaxconnFrontend", [validateName("frontend name", frontend), validateMaxconn(n)]);
}

/** `set maxconn global <n>`. */
export function setMaxconnGlobal(n: number): RuntimeCommand {
  return build("setMaxconnGlobal", [validateMaxconn(n)]);
}

/**
 * `show sess`: every stream, with client, frontend, backend, server and age; `show sess <id>`:
 * one stream in full (its byte counts), by the pointer `show sess` prints. Never `all`, which
 * management.txt warns is "highly CPU intensive".
 */
export function showSess(id?: string): RuntimeCommand {
  if (id === undefined) return build("showSess");
  if (!/^0x[0-9a-f]{1,16}$/.test(id))
    throw new ValidationError(`${JSON.stringify(id)} is not a stream id (0x and hex digits)`);
  return build("showSess", [id]);
}

/**
 * `show errors [<proxy>] [request|response]`: the last invalid request and response captured
 * per proxy; with a proxy, those it kept and those where it was the other side.
 */
export function showErrors(proxy?: string, which?: "request" | "response"): RuntimeCommand {
  if (proxy === undefined && which === undefined) return build("showErrors");
  // HAProxy reads `-1` as every proxy (management.txt 9.3, show errors).
  return build("showErrors", [
    proxy === undefined ? "-1" : validateName("proxy name", proxy),
    ...(which === undefined ? [] : [which]),
  ]);
}

/** `show servers conn [<backend>]`: idle and used connections per server. */
export function showServersConn(backend?: string): RuntimeCommand {
  return build(
    "showServersConn",
    backend === undefined ? [] : [validateName("backend name", backend)],
  );
}

/** `wait <ms>ms srv-removable <b>/<s>` (3.0+): returns once the server may be deleted. */
export function waitSrvRemovable(
  timeoutMs: number,
  backend: string,
  server: string,
): RuntimeCommand {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000)
    throw new ValidationError(`the wait must be from 1 ms to 1 h, not ${timeoutMs} ms`);
  return build("waitSrvRemovable", [`${timeoutMs}ms`, "srv-removable", serverRef(backend, server)]);
}
