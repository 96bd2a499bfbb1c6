import { ValidationError } from "../errors.js";
import type { RuntimeCommand } from "./builders.js";
import type { CommandSpec } from "./grammar.js";
import type { Level } from "./levels.js";

/**
 * Runtime commands `hapops raw` accepts, by their leading words (management.txt 9.3), with the
 * level each needs and whether it changes state. Anything else is refused: an unknown verb, a
 * payload, and the commands that change the session or the process in ways an audited one-shot
 * should not (prompt, expert-mode, experimental-mode, debug, master CLI `@` prefixes).
 */
// Levels measured on 2.6 where they differ from what one might expect: map and ACL changes
// answer at user level; `show table <name>` lists entries only from operator level.
const RAW: readonly (readonly [words: string, level: Level, mutates: boolean])[] = [
  ["show info", "user", false],
  ["show stat", "user", false],
  ["show servers state", "user", false],
  ["show servers conn", "user", false],
  ["show backend", "user", false],
  ["show table", "operator", false],
  ["show cli level", "user", false],
  ["show cli sockets", "user", false],
  ["show env", "operator", false],
  ["show errors", "operator", false],
  ["show sess", "operator", false],
  ["show pools", "user", false],
  ["show resolvers", "user", false],
  ["show threads", "operator", false],
  ["show tasks", "operator", false],
  ["show activity", "operator", false],
  ["show fd", "operator", false],
  ["show peers", "user", false],
  ["show startup-logs", "operator", false],
  ["show schema json", "user", false],
  ["show version", "user", false],
  ["show map", "user", false],
  ["show acl", "user", false],
  ["show ssl cert", "operator", false],
  ["show ssl crt-list", "operator", false],
  ["show ssl ca-file", "operator", false],
  ["show ssl crl-file", "operator", false],
  ["get map", "user", false],
  ["get acl", "user", false],
  ["get weight", "user", false],
  ["help", "user", false],
  ["set server", "admin", true],
  ["set weight", "admin", true],
  ["set maxconn server", "admin", true],
  ["set maxconn frontend", "admin", true],
  ["set maxconn global", "admin", true],
  ["set rate-limit", "admin", true],
  ["set table", "operator", true],
  ["set map", "user", true],
  ["set timeout cli", "user", false],
  ["enable server", "admin", true],
  ["disable server", "admin", true],
  ["enable frontend", "admin", true],
  ["disable frontend", "admin", true],
  ["enable health", "admin", true],
  ["disable health", "admin", true],
  ["enable agent", "admin", true],
  ["disable agent", "admin", true],
  ["enable dynamic-cookie backend", "admin", true],
  ["disable dynamic-cookie backend", "admin", true],
  ["clear counters", "operator", true],
  ["clear table", "operator", true],
  ["clear map", "user", true],
  ["clear acl", "user", true],
  ["add map", "user", true],
  ["add acl", "user", true],
  ["del map", "user", true],
  ["del acl", "user", true],
  ["shutdown session", "admin", true],
  ["shutdown sessions server", "admin", true],
  ["shutdown frontend", "admin", true],
  ["abort ssl cert", "admin", true],
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

export interface RawCommand extends RuntimeCommand {
  readonly mutates: boolean;
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
  let best: (typeof RAW)[number] | undefined;
  for (const entry of RAW) {
    const words = entry[0].split(" ");
    if (
      words.every((w, i) => lower[i] === w) &&
      (!best || words.length > best[0].split(" ").length)
    )
      best = entry;
  }
  if (!best)
    throw new ValidationError(
      `raw does not know "${tokens.slice(0, 3).join(" ")}": only runtime commands from its table are sent (see hapops raw --help)`,
    );
  const spec: CommandSpec = { words: best[0], level: best[1], mutates: best[2], usage: best[0] };
  return { name: "raw", spec, line: tokens.join(" "), mutates: best[2] };
}

export function rawCommandWords(): string[] {
  return RAW.map(([w]) => w);
}
