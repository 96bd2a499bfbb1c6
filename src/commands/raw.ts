import { ValidationError } from "../errors.js";
import type { RuntimeCommand } from "./builders.js";
import { GRAMMAR, type CommandName, type CommandSpec } from "./grammar.js";
import type { Level } from "./levels.js";

/**
 * Which word of a raw line (counted after its command words) names the object it changes, and
 * what kind of object that is: what a policy's scope is checked against. `backend` is a whole
 * backend, named `<backend>/*` (in a scope limited to `be_app/app1` it is not). `unnamed` says
 * why no scope can name what the command changes (a frontend, the whole process, a session id).
 */
export type RawObjects =
  | {
      readonly kind: "servers" | "backend" | "tables" | "maps" | "certs";
      readonly at: number;
      /** `add|clear map|acl [@<ver>] <map>`: the map comes after an optional version. */
      readonly afterVersion?: boolean;
    }
  | { readonly kind: "unnamed"; readonly why: string };

interface RawEntry {
  readonly words: string;
  readonly level: Level;
  /** Versions that want more (grammar.ts CommandSpec.levels). */
  readonly levels?: CommandSpec["levels"];
  readonly mutates: boolean;
  /** What a change touches; reads touch nothing. */
  readonly objects?: RawObjects;
  /** Its answer may lack the empty line that ends it (grammar.ts CommandSpec). */
  readonly unterminated?: true;
}

/**
 * A command hapops also sends itself: its words, level and effect come from the grammar table,
 * the one source of those facts; the raw table adds only what a raw line names.
 */
function known(name: CommandName, objects?: RawObjects): RawEntry {
  const spec = GRAMMAR[name];
  return {
    words: spec.words,
    level: spec.level,
    ...(spec.levels ? { levels: spec.levels } : {}),
    mutates: spec.mutates,
    ...(spec.mutates && objects ? { objects } : {}),
    ...("unterminated" in spec && spec.unterminated ? { unterminated: true as const } : {}),
  };
}

function read(words: string, level: Level): RawEntry {
  return { words, level, mutates: false };
}

function change(words: string, level: Level, objects: RawObjects): RawEntry {
  return { words, level, mutates: true, objects };
}

const server = { kind: "servers", at: 0 } as const;
const table = { kind: "tables", at: 0 } as const;
const map = { kind: "maps", at: 0 } as const;
const versionedMap = { kind: "maps", at: 0, afterVersion: true } as const;
const frontend = { kind: "unnamed", why: "changes a frontend, which no scope names" } as const;
const wholeProcess = { kind: "unnamed", why: "changes the whole process" } as const;

/**
 * Runtime commands `hapops raw` accepts, by their leading words (management.txt 9.3), with the
 * level each needs, whether it changes state, and which of its words name what it changes.
 * Anything else is refused: an unknown verb, a payload, and the commands that change the session
 * or the process in ways an audited one-shot should not (prompt, expert-mode, experimental-mode,
 * debug, master CLI `@` prefixes).
 */
// Levels measured on 2.6 where they differ from what one might expect: map and ACL changes
// answer at user level; `show table <name>` lists entries only from operator level.
const RAW: readonly RawEntry[] = [
  known("showInfo"),
  known("showStat"),
  known("showServersState"),
  known("showServersConn"),
  known("showBackend"),
  known("showTable"),
  known("showCliLevel"),
  known("showCliSockets"),
  read("show env", "operator"),
  known("showErrors"),
  known("showSess"),
  read("show pools", "user"),
  read("show resolvers", "user"),
  read("show threads", "operator"),
  read("show tasks", "operator"),
  read("show activity", "operator"),
  read("show fd", "operator"),
  read("show peers", "user"),
  read("show startup-logs", "operator"),
  read("show schema json", "user"),
  read("show version", "user"),
  known("showMap"),
  known("showAcl"),
  known("showSslCert"),
  read("show ssl crt-list", "operator"),
  read("show ssl ca-file", "operator"),
  read("show ssl crl-file", "operator"),
  known("getMap"),
  known("getAcl"),
  read("get weight", "user"),
  read("help", "user"),
  known("setServerState", server),
  change("set weight", "admin", server),
  known("setMaxconnServer", server),
  known("setMaxconnFrontend", frontend),
  known("setMaxconnGlobal", wholeProcess),
  change("set rate-limit", "admin", wholeProcess),
  known("setTable", table),
  known("setMap", map),
  // This session's idle timeout only.
  known("setTimeoutCli"),
  change("enable server", "admin", server),
  change("disable server", "admin", server),
  change("enable frontend", "admin", frontend),
  change("disable frontend", "admin", frontend),
  known("enableHealth", server),
  known("disableHealth", server),
  known("enableAgent", server),
  known("disableAgent", server),
  change("enable dynamic-cookie backend", "admin", { kind: "backend", at: 0 }),
  change("disable dynamic-cookie backend", "admin", { kind: "backend", at: 0 }),
  change("clear counters", "operator", {
    kind: "unnamed",
    why: "resets the counters of every proxy and server",
  }),
  // `clear counters all` also resets the max values and needs admin (measured on 2.6).
  change("clear counters all", "admin", {
    kind: "unnamed",
    why: "resets every counter and maximum of the process",
  }),
  known("clearTable", table),
  known("clearMap", versionedMap),
  known("clearAcl", versionedMap),
  known("addMap", versionedMap),
  known("addAcl", versionedMap),
  known("delMap", map),
  known("delAcl", map),
  change("shutdown session", "admin", {
    kind: "unnamed",
    why: "names a stream by its id, not the server or frontend it belongs to",
  }),
  known("shutdownSessionsServer", server),
  known("addServer", server),
  known("delServer", server),
  change("shutdown frontend", "admin", frontend),
  known("abortSslCert", { kind: "certs", at: 0 }),
];

/** Refused outright, with the reason (checked before the table). */
const FORBIDDEN: readonly (readonly [string, string])[] = [
  ["expert-mode", "expert mode unlocks commands that can crash HAProxy"],
  ["experimental-mode", "experimental mode unlocks unfinished commands"],
  ["debug", "debug commands can crash or stall HAProxy"],
  ["prompt", "it changes the session hapops manages"],
  ["user", "it changes the session's level"],
  ["operator", "it changes the session's level"],
  ["quit", "hapops closes the session itself"],
];

/** Printable ASCII without `;` (command separator) and `\` (escape). */
const TOKEN = /^[\x21-\x3a\x3c-\x5b\x5d-\x7e]+$/;

/**
 * What a raw line changes, named from its words as the table says: `servers` as
 * `backend/server` (a whole backend as `backend/*`), `tables`, `maps` (files or `#<id>`),
 * `certs` (files). `unnamed` says why the line's objects cannot all be named.
 */
export interface RawTouched {
  readonly servers?: readonly string[];
  readonly tables?: readonly string[];
  readonly maps?: readonly string[];
  readonly certs?: readonly string[];
  readonly unnamed?: string;
}

export interface RawCommand extends RuntimeCommand {
  readonly mutates: boolean;
  /** Reads touch nothing. */
  readonly touches: RawTouched;
}

const NOUN = {
  servers: "server as backend/server",
  backend: "backend",
  tables: "stick table",
  maps: "map or ACL",
  certs: "certificate file",
} as const;

/** Name what `args` (the words after the command's own) touch, as the entry says. */
function touched(entry: RawEntry, args: readonly string[]): RawTouched {
  const o = entry.objects;
  if (o === undefined) return {};
  if (o.kind === "unnamed") return { unnamed: `"${entry.words}" ${o.why}` };
  const at = o.afterVersion && args[o.at]?.startsWith("@") ? o.at + 1 : o.at;
  const word = args[at];
  const named =
    word === undefined
      ? undefined
      : o.kind === "servers"
        ? /^[^/]+\/[^/]+$/.test(word)
          ? word
          : undefined
        : o.kind === "backend"
          ? word.includes("/")
            ? undefined
            : `${word}/*`
          : word;
  if (named === undefined) return { unnamed: `"${entry.words}" names no ${NOUN[o.kind]}` };
  return o.kind === "backend" ? { servers: [named] } : { [o.kind]: [named] };
}

export function parseRaw(text: string): RawCommand {
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ";")
      throw new ValidationError("raw takes one command: ';' would start a second one");
    if (ch === "\n" || ch === "\r")
      throw new ValidationError(
        "raw takes one command on one line: a newline would start a second one",
      );
    if (cp < 0x20 || cp === 0x7f)
      throw new ValidationError(
        `raw command contains control character U+${cp.toString(16).padStart(4, "0").toUpperCase()}`,
      );
    if (cp > 0x7e) throw new ValidationError(`raw command contains non-ASCII character '${ch}'`);
  }
  const tokens = text.trim().split(/\s+/).filter(Boolean);
  if (tokens.length === 0)
    throw new ValidationError('raw needs a command, e.g. hapops raw "show pools"');
  if (tokens[0]!.startsWith("@"))
    throw new ValidationError(
      "master CLI prefixes (@, @!, @@) are refused: hapops talks to one process's runtime API",
    );
  // `<<` opens a payload (2.6: a word ending in `<<`; 3.x also `<<PATTERN`): refused anywhere.
  if (tokens.some((t) => t.includes("<<")))
    throw new ValidationError(
      "payload commands (<<) are refused in raw: use the named operations (rotate-cert, map replace)",
    );
  for (const t of tokens)
    if (!TOKEN.test(t))
      throw new ValidationError(`raw command word ${JSON.stringify(t)} contains a backslash`);
  const lower = tokens.map((t) => t.toLowerCase());
  const forbidden = FORBIDDEN.find(([w]) => lower[0] === w);
  if (forbidden) throw new ValidationError(`raw refuses "${forbidden[0]}": ${forbidden[1]}`);
  let best: RawEntry | undefined;
  for (const entry of RAW) {
    const words = entry.words.split(" ");
    if (
      words.every((w, i) => lower[i] === w) &&
      (!best || words.length > best.words.split(" ").length)
    )
      best = entry;
  }
  if (!best)
    throw new ValidationError(
      `raw does not know "${tokens.slice(0, 3).join(" ")}": only runtime commands from its table are sent (see hapops raw --help)`,
    );
  const spec: CommandSpec = {
    words: best.words,
    level: best.level,
    ...(best.levels ? { levels: best.levels } : {}),
    mutates: best.mutates,
    usage: best.words,
    ...(best.unterminated ? { unterminated: true as const } : {}),
  };
  const args = tokens.slice(best.words.split(" ").length);
  return {
    name: "raw",
    spec,
    line: tokens.join(" "),
    mutates: best.mutates,
    touches: touched(best, args),
  };
}

export function rawCommandWords(): string[] {
  return RAW.map((e) => e.words);
}
