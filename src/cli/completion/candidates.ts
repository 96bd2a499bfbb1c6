import type { Argument, Command, Option } from "commander";
import type { GlobalFlags } from "../../config/settings.js";

/**
 * Shell completion, the pure part: which word of which command the cursor is on, and what can
 * go there. Commands, aliases, subcommands and flags are read from the commander program itself
 * (cli/main.ts's buildProgram), so a command added there completes without a line here; the
 * names HAProxy and the config know (servers, tables, targets...) are handed in (names.ts).
 */

/** What a word names, and so where its candidates come from. */
export type ValueKind =
  /** `backend/server`, `backend/*`, `*\/server` (drain, maint, ...). */
  | "selector"
  /** `backend/server`, an existing server. */
  | "server"
  /** A backend, or `backend/server` once a `/` is typed (stat). */
  | "proxy"
  | "backend"
  | "table"
  | "map"
  | "acl"
  /** A loaded certificate: its file, or a domain it covers (rotate-cert). */
  | "cert"
  /** A target named in the config, or a socket path (-s). */
  | "socket"
  /** Comma-separated names from the config (-t lb1,lb2; -g edge). */
  | "targets"
  | "groups"
  | "file"
  | "dir";

/**
 * What an argument takes, by the name its command declares (`.argument("<table>")`): a new
 * command that names its arguments this way completes them with no change here.
 */
const ARGUMENT_KINDS: Readonly<Record<string, ValueKind>> = {
  selector: "selector",
  sel: "selector",
  "backend/server": "server",
  server: "server",
  "backend[/server]": "proxy",
  backend: "backend",
  // errors [proxy]: a frontend or a backend; the names read hold backends only.
  proxy: "backend",
  table: "table",
  map: "map",
  acl: "acl",
  "domain|file": "cert",
  domain: "cert",
  cert: "cert",
  file: "file",
  path: "file",
  dir: "dir",
  directory: "dir",
};

/**
 * The program's own options whose value is a name from the config. Keyed by long flag, and only
 * for options of the program itself: setup's `-g, --group <group>` is a unix group.
 */
const PROGRAM_OPTION_KINDS: Readonly<Record<string, ValueKind>> = {
  "--socket": "socket",
  "--target": "targets",
  "--group": "groups",
};

/**
 * Words an option takes that it does not declare with commander's `.choices()` (which is read
 * first). Better moved there; kept here so these complete meanwhile.
 */
const OPTION_CHOICES: Readonly<Record<string, readonly string[]>> = {
  "--then": ["maint"],
  "--on-error": ["stop", "continue"],
};

/**
 * A value: of an option or an argument. `prefix` is what stays in front of the value in the word
 * (`--socket=`).
 */
export interface ValueSlot {
  readonly type: "value";
  readonly kind: ValueKind | undefined;
  readonly choices: readonly string[] | undefined;
  readonly prefix: string;
}

/** Where the cursor is. */
export type Slot =
  /**
   * A subcommand of `command` (or, after `help`, any of its commands); `value` when the
   * command also takes an argument there (`sessions [selector]` beside `sessions kill`).
   */
  | { readonly type: "command"; readonly command: Command; readonly value?: ValueSlot }
  /** A flag of `command` or of the commands above it; `used` are already on the line. */
  | { readonly type: "flag"; readonly command: Command; readonly used: ReadonlySet<Option> }
  | ValueSlot
  | { readonly type: "none" };

export interface Analysis {
  readonly slot: Slot;
  /** The word being completed, unquoted, without a `--flag=` in front of it. */
  readonly current: string;
  /** The program's own options on the line (-s, -c, -t...): where live names come from. */
  readonly globals: GlobalFlags;
}

/** One candidate; `description` shows in zsh and fish. */
export interface Candidate {
  readonly word: string;
  readonly description?: string;
}

/** The answer: candidates, and whether the shell should also offer files or directories. */
export interface Completion {
  readonly candidates: readonly Candidate[];
  readonly directive: "files" | "dirs" | undefined;
}

/** The names completion can offer. Missing: not read (no socket, not needed, timed out). */
export interface Names {
  /** `backend/server`. */
  readonly servers?: readonly string[];
  readonly backends?: readonly string[];
  readonly tables?: readonly string[];
  readonly maps?: readonly string[];
  readonly acls?: readonly string[];
  readonly certFiles?: readonly string[];
  readonly certDomains?: readonly string[];
  readonly targets?: readonly { readonly name: string; readonly socket: string }[];
  readonly groups?: readonly { readonly name: string; readonly members: readonly string[] }[];
}

/**
 * A word as the shell shows it, quotes and backslashes removed. Lenient: the word under the
 * cursor is often half typed (`'be_app/`). A leading `~/` is the home directory, as the shell
 * would make it when the command runs.
 */
export function unquote(word: string, home?: string): string {
  let out = "";
  let quote: string | undefined;
  for (let i = 0; i < word.length; i++) {
    const ch = word[i]!;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else out += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && i + 1 < word.length && '"\\$`'.includes(word[i + 1]!))
        out += word[++i];
      else out += ch;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "\\") {
      if (i + 1 < word.length) out += word[++i];
    } else out += ch;
  }
  if (home !== undefined && (word === "~" || word.startsWith("~/"))) return home + out.slice(1);
  return out;
}

function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/** Every option of a command and of the commands above it, nearest first. */
function chainOptions(cmd: Command): { option: Option; owner: Command }[] {
  const out: { option: Option; owner: Command }[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) {
    const help = c.createHelp();
    for (const option of help.visibleOptions(c)) out.push({ option, owner: c });
  }
  return out;
}

function matches(o: Option, flag: string): boolean {
  return o.long === flag || o.short === flag;
}

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/** An option anywhere in the program, for flags typed before their command (commandFirst). */
function findAnywhere(cmd: Command, flag: string): Option | undefined {
  const own = cmd.options.find((o) => matches(o, flag));
  if (own) return own;
  for (const sub of cmd.commands) {
    const found = findAnywhere(sub, flag);
    if (found) return found;
  }
  return undefined;
}

interface FoundOption {
  readonly option: Option;
  readonly owner: Command | undefined;
  /** The value in the same word: `--socket=/x`, `-s/x`. */
  readonly value: string | undefined;
}

function findOption(cmd: Command, word: string): FoundOption | undefined {
  const eq = word.startsWith("--") ? word.indexOf("=") : -1;
  const flag = eq > 0 ? word.slice(0, eq) : word;
  const inline = eq > 0 ? word.slice(eq + 1) : undefined;
  for (const { option, owner } of chainOptions(cmd))
    if (matches(option, flag)) return { option, owner, value: inline };
  // `-sVALUE`: a short option with its value attached.
  if (!word.startsWith("--") && word.length > 2) {
    const short = word.slice(0, 2);
    for (const { option, owner } of chainOptions(cmd))
      if (option.short === short && takesValue(option))
        return { option, owner, value: word.slice(2) };
  }
  const elsewhere = findAnywhere(rootOf(cmd), flag);
  return elsewhere ? { option: elsewhere, owner: undefined, value: inline } : undefined;
}

/** Commander's implicit `help [command]`, which commands with subcommands and no action get. */
function hasHelpCommand(cmd: Command): boolean {
  return cmd
    .createHelp()
    .visibleCommands(cmd)
    .some((c) => c.name() === "help");
}

function subcommand(cmd: Command, word: string): Command | undefined {
  return cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
}

/** The placeholder in an option's flags: `--pem <file>` gives "file". */
function placeholder(o: Option): string | undefined {
  const m = /[<[](.*?)(?:\.\.\.)?[>\]]$/.exec(o.flags);
  return m?.[1];
}

function optionSlot(o: Option, owner: Command | undefined, prefix: string): ValueSlot {
  const isProgram = owner !== undefined && owner.parent === null;
  const kind =
    (isProgram && o.long ? PROGRAM_OPTION_KINDS[o.long] : undefined) ??
    ARGUMENT_KINDS[placeholder(o) ?? ""];
  const choices = o.argChoices ?? (o.long ? OPTION_CHOICES[o.long] : undefined);
  return { type: "value", kind: choices ? undefined : kind, choices, prefix };
}

const SEPARATOR = /\s*\|\s*|\s*,\s*|\s+or\s+/;

/**
 * The words an argument takes when its description is nothing but them: `start | stop |
 * status`, `enable or disable` (commander's `.choices()`, read first, is the better way).
 */
function choicesIn(description: string): string[] | undefined {
  const words = description.trim().split(SEPARATOR);
  return words.length > 1 && words.every((w) => /^[a-z][\w-]*$/.test(w)) ? words : undefined;
}

function argumentSlot(a: Argument): ValueSlot {
  const choices = a.argChoices ?? choicesIn(a.description);
  return {
    type: "value",
    kind: choices ? undefined : ARGUMENT_KINDS[a.name()],
    choices,
    prefix: "",
  };
}

/**
 * Which word the cursor is on. `words` are the words after `hapops`, as the shell has them
 * (quoted as typed); the last one is the word being completed ("" after a space).
 */
export function analyse(program: Command, words: readonly string[], home?: string): Analysis {
  const plain = words.map((w) => unquote(w, home));
  const current = plain.at(-1) ?? "";
  const globals: Record<string, string | boolean> = {};
  const used = new Set<Option>();
  const record = (
    found: { option: Option; owner: Command | undefined },
    value: string | boolean,
  ) => {
    if (found.owner === program) globals[found.option.attributeName()] = value;
  };
  let cmd = program;
  let operands = 0;
  let helpMode = false;
  let dashDash = false;
  let pending: { option: Option; owner: Command | undefined } | undefined;
  let variadic: { option: Option; owner: Command | undefined } | undefined;
  const result = (slot: Slot, cur = current): Analysis => ({
    slot,
    current: cur,
    globals,
  });

  for (const w of plain.slice(0, -1)) {
    if (pending && !(pending.option.optional && w.startsWith("-"))) {
      record(pending, w);
      pending = undefined;
      continue;
    }
    pending = undefined;
    if (!dashDash && w === "--") {
      dashDash = true;
      variadic = undefined;
      continue;
    }
    if (!dashDash && w.startsWith("-") && w.length > 1) {
      variadic = undefined;
      const found = findOption(cmd, w);
      if (!found) continue;
      used.add(found.option);
      if (found.value !== undefined) record(found, found.value);
      else if (takesValue(found.option)) pending = found;
      else record(found, !found.option.negate);
      if (found.option.variadic) variadic = found;
      continue;
    }
    if (variadic) continue;
    if (operands === 0 && !helpMode && cmd.commands.length > 0) {
      const sub = subcommand(cmd, w);
      if (sub) {
        cmd = sub;
        continue;
      }
      if (w === "help" && hasHelpCommand(cmd)) {
        helpMode = true;
        continue;
      }
      if (cmd.registeredArguments.length === 0) return result({ type: "none" });
    }
    operands++;
  }

  if (pending && !(pending.option.optional && current.startsWith("-")))
    return result(optionSlot(pending.option, pending.owner, ""));
  if (!dashDash && current.startsWith("-")) {
    const eq = current.startsWith("--") ? current.indexOf("=") : -1;
    if (eq > 0) {
      const found = findOption(cmd, current.slice(0, eq));
      if (!found || !takesValue(found.option)) return result({ type: "none" });
      return result(
        optionSlot(found.option, found.owner, current.slice(0, eq + 1)),
        current.slice(eq + 1),
      );
    }
    return result({ type: "flag", command: cmd, used });
  }
  if (variadic) return result(optionSlot(variadic.option, variadic.owner, ""));
  if (helpMode)
    return result(operands === 0 ? { type: "command", command: cmd } : { type: "none" });
  const args = cmd.registeredArguments;
  const last = args.at(-1);
  const arg = args[operands] ?? (last?.variadic ? last : undefined);
  const value = arg ? argumentSlot(arg) : undefined;
  if (cmd.commands.length > 0 && operands === 0)
    return result({ type: "command", command: cmd, ...(value ? { value } : {}) });
  return result(value ?? { type: "none" });
}

/** A description short enough for one line of a menu. */
function brief(text: string): string | undefined {
  let t = text.split("\n")[0]!.trim();
  const cut = t.search(/ \(|; /);
  if (cut > 0) t = t.slice(0, cut);
  if (t.length > 60) t = `${t.slice(0, t.lastIndexOf(" ", 59))}…`;
  return t.length > 0 ? t : undefined;
}

function candidate(word: string, description?: string): Candidate {
  const d = description === undefined ? undefined : brief(description);
  return d === undefined ? { word } : { word, description: d };
}

function commandCandidates(cmd: Command, current: string): Candidate[] {
  const visible = cmd.createHelp().visibleCommands(cmd);
  const byName = visible.filter((c) => c.name().startsWith(current));
  // Aliases (disable, enable) only when no name fits: they would double every list.
  const list =
    byName.length > 0
      ? byName.map((c) => ({ word: c.name(), c }))
      : visible.flatMap((c) =>
          c
            .aliases()
            .filter((a) => a.startsWith(current))
            .map((a) => ({ word: a, c })),
        );
  return list.map(({ word, c }) => candidate(word, c.summary() || c.description()));
}

function flagCandidates(cmd: Command, used: ReadonlySet<Option>, current: string): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  const usedNames = new Set([...used].map((o) => o.attributeName()));
  for (const { option, owner } of chainOptions(cmd)) {
    const flag = option.long ?? option.short;
    if (flag === undefined || seen.has(flag)) continue;
    seen.add(flag);
    // --help and --version of the commands above are not this command's flags.
    if (owner !== cmd && (option.long === "--help" || option.long === "--version")) continue;
    if (usedNames.has(option.attributeName()) && !option.variadic) continue;
    // A short flag only when it is what was typed: `-` lists the long ones.
    const word =
      current.length === 2 && !current.startsWith("--") && option.short === current
        ? option.short
        : flag;
    if (word.startsWith(current)) out.push(candidate(word, option.description));
  }
  return out;
}

/** `lb1,lb2,l`: names not yet in the list, after what is typed. */
function listCandidates(
  current: string,
  items: readonly { name: string; description: string }[],
): Candidate[] {
  const comma = current.lastIndexOf(",");
  const head = current.slice(0, comma + 1);
  const taken = new Set(head.split(",").filter(Boolean));
  return items
    .filter((i) => !taken.has(i.name))
    .map((i) => candidate(head + i.name, i.description));
}

function serverCandidates(
  current: string,
  names: Names,
  opts: { wildcards: boolean; bareBackends: boolean },
): Candidate[] {
  const servers = names.servers ?? [];
  const backends = names.backends ?? [];
  const slash = current.indexOf("/");
  if (slash < 0) {
    // Backends first, each a prefix to go on from: 10,000 servers would not fit a screen.
    const out = backends.map((b) => ({ word: opts.bareBackends ? b : `${b}/` }));
    if (opts.wildcards) out.push({ word: "*/" });
    return out;
  }
  const backend = current.slice(0, slash);
  if (backend === "*") {
    if (!opts.wildcards) return [];
    const unique = [...new Set(servers.map((s) => s.slice(s.indexOf("/") + 1)))];
    return [...unique.map((s) => ({ word: `*/${s}` })), { word: "*/*" }];
  }
  const out: Candidate[] = servers
    .filter((s) => s.startsWith(`${backend}/`))
    .map((s) => ({ word: s }));
  if (opts.wildcards && (out.length > 0 || backends.includes(backend)))
    out.push({ word: `${backend}/*` });
  return out;
}

function valueCandidates(kind: ValueKind | undefined, current: string, names: Names): Completion {
  const words = (list: readonly string[] | undefined): Completion => ({
    candidates: (list ?? []).map((word) => ({ word })),
    directive: undefined,
  });
  const targets = (names.targets ?? []).map((t) => ({ name: t.name, description: t.socket }));
  switch (kind) {
    case "selector":
    case "server":
    case "proxy":
      return {
        candidates: serverCandidates(current, names, {
          wildcards: kind === "selector",
          bareBackends: kind === "proxy",
        }),
        directive: undefined,
      };
    case "backend":
      return words(names.backends);
    case "table":
      return words(names.tables);
    case "map":
      return words(names.maps);
    case "acl":
      return words(names.acls);
    case "cert":
      return words([...new Set([...(names.certDomains ?? []), ...(names.certFiles ?? [])])]);
    case "socket":
      return {
        candidates: targets.map((t) => candidate(t.name, t.description)),
        directive: "files",
      };
    case "targets":
      return { candidates: listCandidates(current, targets), directive: undefined };
    case "groups":
      return {
        candidates: listCandidates(
          current,
          (names.groups ?? []).map((g) => ({ name: g.name, description: g.members.join(", ") })),
        ),
        directive: undefined,
      };
    case "file":
      return { candidates: [], directive: "files" };
    case "dir":
      return { candidates: [], directive: "dirs" };
    case undefined:
      return { candidates: [], directive: undefined };
  }
}

function valueComplete(slot: ValueSlot, current: string, names: Names): Completion {
  const out = slot.choices
    ? { candidates: slot.choices.map((word) => ({ word })), directive: undefined }
    : valueCandidates(slot.kind, current, names);
  return {
    candidates: out.candidates
      .filter((c) => c.word.startsWith(current))
      .map((c) => ({ ...c, word: slot.prefix + c.word })),
    directive: out.directive,
  };
}

/** The candidates for an analysed line, given the names that could be read. */
export function complete(analysis: Analysis, names: Names = {}): Completion {
  const { slot, current } = analysis;
  switch (slot.type) {
    case "none":
      return { candidates: [], directive: undefined };
    case "command": {
      const commands = commandCandidates(slot.command, current);
      if (!slot.value) return { candidates: commands, directive: undefined };
      const values = valueComplete(slot.value, current, names);
      return { candidates: [...commands, ...values.candidates], directive: values.directive };
    }
    case "flag":
      return { candidates: flagCandidates(slot.command, slot.used, current), directive: undefined };
    case "value":
      return valueComplete(slot, current, names);
  }
}

/** Which names a slot needs, so only those are read (and nothing for a flag). */
export function kindOf(slot: Slot): ValueKind | undefined {
  const value = slot.type === "command" ? slot.value : slot.type === "value" ? slot : undefined;
  return value && value.choices === undefined ? value.kind : undefined;
}

/**
 * What `hapops __complete` prints: a candidate per line (a tab, then its description, when it
 * has one), then one last line `:files`, `:dirs` or `:` saying what the shell adds itself. A
 * word that could not go on one line (a file name with a newline) is left out.
 */
export function formatCompletion(c: Completion): string {
  const lines = c.candidates
    .filter((x) => !/[\t\n\r]/.test(x.word))
    .map((x) =>
      x.description === undefined
        ? x.word
        : `${x.word}\t${x.description.replace(/[\t\n\r]+/g, " ")}`,
    );
  lines.push(`:${c.directive ?? ""}`);
  return lines.join("\n") + "\n";
}
