import { lstatSync, readFileSync } from "node:fs";
import {
  addMapEntry,
  addMapVersion,
  clearMapVersion,
  commitMap,
  delMapEntry,
  encodeCommand,
  prepareMap,
  setMapEntry,
  showMap,
  showMaps,
  validateMapRef,
  type MapKind,
  type RuntimeCommand,
} from "../commands/builders.js";
import { GRAMMAR, sessionLevel } from "../commands/grammar.js";
import { levelRank, type Level } from "../commands/levels.js";
import type { ChangeSessions } from "../engine/change.js";
import type { Guard, Operation, Plan, Step, Verification } from "../engine/operation.js";
import {
  GuardError,
  HaproxyError,
  isHapopsError,
  ProtocolError,
  UsageError,
  ValidationError,
  type HapopsError,
} from "../errors.js";
import type { InputFiles } from "../host/input-files.js";
import { parseMapEntry, parseMapList, type MapEntry, type MapInfo } from "../parse/map.js";
import { MAX_LINE_BYTES, WINDOW_BYTES, type RuntimeSession } from "../runtime/session.js";
import { suggestion } from "../util/suggest.js";

/**
 * Maps and ACLs as engine operations: `map|acl add|set|del` (one entry) and `map|acl replace`
 * (an atomic swap: prepare a version, fill it, commit it). Reading is I/O; planning is pure.
 */

/**
 * The most bytes one command may take, payload included: a command and its payload are read into
 * one buffer of `tune.bufsize` (16384 by default; 2.6 drops the connection on a 20 KB payload and
 * 3.2.0 aborts, measured), so hapops stays at half of it, as the session does for a line.
 */
export const COMMAND_BUDGET = MAX_LINE_BYTES;

/**
 * Entries are packed into `add map @<ver>` payloads of at most the session's pipelining window;
 * an entry bigger than that goes alone, up to COMMAND_BUDGET.
 */
export const CHUNK_BYTES = WINDOW_BYTES;

/** The longest a version number can print (unsigned 32-bit), for sizing lines before `prepare`. */
const WIDEST_VERSION = 0xffffffff;

// ---- reads --------------------------------------------------------------------------------

/** The map or ACL `ref` names (its file or `#<id>`), from `show map|acl`. */
export async function findMap(
  session: RuntimeSession,
  kind: MapKind,
  ref: string,
): Promise<MapInfo> {
  validateMapRef(kind, ref);
  const maps = parseMapList(await session.run(showMaps(kind)));
  const found = ref.startsWith("#")
    ? maps.find((m) => `#${m.id}` === ref)
    : maps.find((m) => m.file === ref);
  if (!found)
    throw new UsageError(
      `HAProxy has no ${kind} ${ref}; ${suggestion(
        ref,
        maps.filter((m) => m.file).map((m) => m.file),
      )}`,
    );
  return found;
}

/** The entries of the live version (or of `version`), in HAProxy's order. */
export async function readEntries(
  session: RuntimeSession,
  kind: MapKind,
  ref: string,
  version?: number,
): Promise<MapEntry[]> {
  const out: MapEntry[] = [];
  await session.stream(showMap(kind, ref, version), (l) => {
    const e = parseMapEntry(l, kind === "map");
    if (e) out.push(e);
  });
  return out;
}

/**
 * `get map` answers `found=yes|no` with the value; `get acl` answers `match=yes|no` (measured on
 * 2.6 and 3.2).
 */
export function parseLookup(answer: string): {
  found: boolean;
  value: string | undefined;
  pattern: string | undefined;
} {
  const found = /(?:^|[\s,])(?:found|match)=yes\b/.test(answer);
  const field = (name: string) =>
    found ? new RegExp(`(?:^|, )${name}="([^"]*)"`).exec(answer)?.[1] : undefined;
  return { found, value: field("value"), pattern: field("pattern") };
}

// ---- pure helpers -------------------------------------------------------------------------

/** What a policy's `scope.maps` is checked against: the file, or `#<id>` for an inline ACL. */
export function mapScopeName(info: MapInfo): string {
  return info.file || `#${info.id}`;
}

/**
 * Parse the text of a map file ("key value", the value the rest of the line) or of an ACL file
 * (one pattern per line), skipping blank lines and `#` comments. `source` names it in errors.
 */
export function parseMapText(kind: MapKind, text: string, source: string): MapEntry[] {
  const out: MapEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith("#")) return;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    if (kind === "map" && !m[2])
      throw new ValidationError(`${source} line ${i + 1}: "${line}" has a key but no value`);
    // HAProxy reads a whole ACL line as one pattern; one with spaces cannot be sent on the CLI.
    if (kind === "acl" && m[2])
      throw new ValidationError(
        `${source} line ${i + 1}: the pattern "${line}" contains a space, which the runtime API cannot take`,
      );
    out.push({ key: m[1]!, value: kind === "map" ? m[2]! : undefined });
  });
  return out;
}

/** The file hapops writes for `entries` (what --persist puts on disk). */
export function renderMapText(entries: readonly MapEntry[]): string {
  return (
    entries.map((e) => (e.value !== undefined ? `${e.key} ${e.value}` : e.key)).join("\n") + "\n"
  );
}

export interface MapDiff {
  readonly added: MapEntry[];
  readonly removed: MapEntry[];
  readonly changed: { key: string; from: string | undefined; to: string | undefined }[];
}

export function diffMaps(current: readonly MapEntry[], next: readonly MapEntry[]): MapDiff {
  // HAProxy keeps duplicate keys and a lookup answers the first: keys are compared by their first
  // entry, and the extra copies as entries, present or not.
  const cur = splitFirsts(current);
  const nxt = splitFirsts(next);
  return {
    added: [
      ...nxt.firsts.filter((e) => !cur.values.has(e.key)),
      ...extraOnly(nxt.extra, cur.extra),
    ],
    removed: [
      ...cur.firsts.filter((e) => !nxt.values.has(e.key)),
      ...extraOnly(cur.extra, nxt.extra),
    ],
    changed: nxt.firsts
      .filter((e) => cur.values.has(e.key) && cur.values.get(e.key) !== e.value)
      .map((e) => ({ key: e.key, from: cur.values.get(e.key), to: e.value })),
  };
}

function splitFirsts(list: readonly MapEntry[]): {
  firsts: MapEntry[];
  extra: MapEntry[];
  values: Map<string, string | undefined>;
} {
  const values = new Map<string, string | undefined>();
  const firsts: MapEntry[] = [];
  const extra: MapEntry[] = [];
  for (const e of list) {
    if (values.has(e.key)) extra.push(e);
    else {
      values.set(e.key, e.value);
      firsts.push(e);
    }
  }
  return { firsts, extra, values };
}

/** The entries of `a` that `b` does not also hold (as a multiset). */
function extraOnly(a: readonly MapEntry[], b: readonly MapEntry[]): MapEntry[] {
  const left = new Map<string, number>();
  for (const e of b) left.set(entryText(e), (left.get(entryText(e)) ?? 0) + 1);
  return a.filter((e) => {
    const n = left.get(entryText(e)) ?? 0;
    if (n > 0) left.set(entryText(e), n - 1);
    return n === 0;
  });
}

function diffSize(d: MapDiff): number {
  return d.added.length + d.removed.length + d.changed.length;
}

/** Split entries into runs whose payload ("key value\n") stays within `budget` bytes. */
export function chunkEntries(list: readonly MapEntry[], budget: number): MapEntry[][] {
  const chunks: MapEntry[][] = [];
  let cur: MapEntry[] = [];
  let size = 0;
  for (const e of list) {
    const len = e.key.length + (e.value?.length ?? 0) + 2;
    if (cur.length > 0 && size + len > budget) {
      chunks.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(e);
    size += len;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** Bytes a command takes on the wire, payload included. */
export function commandBytes(cmd: RuntimeCommand): number {
  return Buffer.byteLength(encodeCommand(cmd));
}

function tooBig(what: string, bytes: number): ValidationError {
  return new ValidationError(
    `${what} makes a command of ${bytes} bytes; HAProxy reads a command into one buffer of tune.bufsize (16384 bytes by default) and hapops keeps each under ${COMMAND_BUDGET}: refusing before anything is sent`,
    { bytes, limit: COMMAND_BUDGET },
  );
}

function shorten(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** The level a socket needs for all of `commands`: the highest the grammar table gives any. */
function levelOf(commands: readonly RuntimeCommand[]): Level {
  return commands.reduce<Level>(
    (l, c) => (levelRank(c.spec.level) > levelRank(l) ? c.spec.level : l),
    "user",
  );
}

function entryText(e: MapEntry): string {
  return e.value !== undefined ? `${e.key} ${e.value}` : e.key;
}

// ---- add / set / del ----------------------------------------------------------------------

export interface MapEntryRequest {
  readonly kind: MapKind;
  readonly op: "add" | "set" | "del";
  /** The map as the operator named it: its file or `#<id>`. */
  readonly ref: string;
  readonly key: string;
  readonly value?: string | undefined;
  /** The HAProxy target, for the plan. */
  readonly target: string;
}

/** What a single-entry change is planned from: the map and its live entries. */
export interface MapState {
  readonly info: MapInfo;
  readonly entries: readonly MapEntry[];
}

export interface MapEntryBody {
  readonly request: MapEntryRequest;
  /** The map's file ("" for an ACL written inline in the config). */
  readonly file: string;
  readonly command: RuntimeCommand | undefined;
  /** The entries with this key before the change. */
  readonly before: readonly MapEntry[];
}

/**
 * Plan one entry's change. `set` and `del` of a key that is not there are usage errors (exit 2);
 * `map add` of a key that is there is refused (exit 3): HAProxy would keep both, and lookups
 * answer the first, so the new value would never be used. An ACL pattern already there is a
 * no-op. A line HAProxy could not take whole is refused before anything is sent.
 */
export function planMapEntry(state: MapState, req: MapEntryRequest): Plan<MapEntryBody> {
  const { kind, op, ref, key } = req;
  const noun = kind === "map" ? "key" : "pattern";
  const before = state.entries.filter((e) => e.key === key);
  const file = mapScopeName(state.info);
  const guards: Guard[] = [];
  const describe: string[] = [];
  let command: RuntimeCommand | undefined;

  if (op === "add") {
    const value = kind === "map" ? (req.value ?? "") : undefined;
    command = addMapEntry(kind, ref, key, value);
    if (before.length > 0 && kind === "acl") {
      command = undefined;
      describe.push(`${ref}: ${key} is already in it (nothing sent)`);
    } else if (before.length === 1 && (before[0]!.value ?? "") === value) {
      // What was asked is already so: a no-op, as for an acl pattern or a ready server.
      command = undefined;
      describe.push(`${ref}: ${key} is already ${value} (nothing sent)`);
    } else if (before.length > 0) {
      const reason = `${ref} already has the key ${key} (${before.map((e) => e.value ?? "").join(", ")}); a second entry would never be used, since lookups answer the first`;
      guards.push({
        name: "existing-key",
        ok: false,
        forced: false,
        reason,
        error: new GuardError(
          `${reason}. Use \`hapops map set ${ref} ${key} ${value}\` to change its value`,
          { [kind]: ref, key, values: before.map((e) => e.value ?? "") },
        ),
      });
      describe.push(`${ref}: add ${key} ${value}`);
    } else {
      describe.push(`${ref}: add ${key}${value !== undefined ? ` ${value}` : ""}`);
    }
  } else if (op === "set") {
    if (before.length === 0)
      throw new UsageError(`${ref} has no key ${key}; use hapops map add to add it`);
    const value = req.value ?? "";
    command = setMapEntry(ref, key, value);
    if (before.every((e) => e.value === value)) {
      command = undefined;
      describe.push(`${ref}: ${key} is already ${value} (nothing sent)`);
    } else {
      const from = [...new Set(before.map((e) => e.value ?? ""))].join(", ");
      describe.push(`${ref}: set ${key} ${from} -> ${value}`);
    }
  } else {
    if (before.length === 0) throw new UsageError(`${ref} has no ${noun} ${key}`);
    command = delMapEntry(kind, ref, key);
    describe.push(`${ref}: del ${before.map(entryText).join(", ")}`);
  }

  if (command && commandBytes(command) > COMMAND_BUDGET)
    throw tooBig(`the ${noun} ${shorten(key)}`, commandBytes(command));

  const steps: Step[] = command ? [{ kind: "send", op: `${kind} ${op}`, commands: [command] }] : [];
  return {
    version: 1,
    op: `${kind} ${op}`,
    target: req.target,
    level: levelOf(command ? [command] : []),
    mutates: command !== undefined,
    scope: { maps: [file] },
    steps,
    guards,
    describe,
    json: {
      [kind]: ref,
      file: state.info.file,
      key,
      ...(req.value !== undefined ? { value: req.value } : {}),
      before,
    },
    report: { [kind]: ref, key, ...(req.value !== undefined ? { value: req.value } : {}) },
    detail: { [kind]: ref, file: state.info.file },
    body: { request: req, file: state.info.file, command, before },
  };
}

/** What a single-entry change should leave, compared with the entries read back for its key. */
export function checkMapEntry(body: MapEntryBody, after: readonly MapEntry[]): string[] {
  const { kind, op, ref, key } = body.request;
  const got = after.map((e) => e.value ?? e.key).join(", ") || "absent";
  const ok =
    op === "del"
      ? after.length === 0
      : op === "add"
        ? kind === "acl"
          ? after.length > 0
          : after.length === 1 && after[0]!.value === body.request.value
        : after.length > 0 && after.every((e) => e.value === body.request.value);
  return ok ? [] : [`${ref}: ${key} is not as asked after ${op} (read back: ${got})`];
}

export function mapEntryOperation(req: MapEntryRequest): Operation<MapState, MapEntryBody> {
  return {
    op: `${req.kind} ${req.op}`,
    // Never below what some version needs for map reads (grammar.ts): admin, as HAProxy 3.4
    // answers "Permission denied" to every map and ACL command below it; 2.4-3.2 take user.
    readLevel: sessionLevel(GRAMMAR.showMap),
    async read(sessions) {
      const info = await findMap(sessions.read, req.kind, req.ref);
      return { info, entries: await readEntries(sessions.read, req.kind, req.ref) };
    },
    plan: (state) => planMapEntry(state, req),
    async verify(sessions: ChangeSessions, plan: Plan<MapEntryBody>): Promise<Verification> {
      const after = (await readEntries(sessions.read, req.kind, req.ref)).filter(
        (e) => e.key === req.key,
      );
      const file = plan.body.file;
      return {
        mismatches: checkMapEntry(plan.body, after),
        summary: [
          "verified: read back from HAProxy",
          file
            ? `runtime only: a reload undoes this (HAProxy loads ${file} again); to keep it, write the file too: hapops ${req.kind} replace ${req.ref} --from <file> --persist`
            : `runtime only: a reload undoes this (the entries are written in haproxy.cfg); to keep it, edit haproxy.cfg`,
        ],
        json: { entries: after },
      };
    },
  };
}

// ---- replace ------------------------------------------------------------------------------

export interface MapReplaceRequest {
  readonly kind: MapKind;
  readonly ref: string;
  /** Where the new contents came from (--from), for messages. */
  readonly from: string;
  readonly next: readonly MapEntry[];
  /** --force: let a replace empty a map that has entries. */
  readonly force: boolean;
  /** --persist: write the file too. `remote` names the transport when HAProxy is not local. */
  readonly persist?:
    { readonly files: InputFiles; readonly remote?: string | undefined } | undefined;
  readonly target: string;
}

export interface ReplaceState extends MapState {
  /** The file as it is on disk (read for --persist only); undefined when it cannot be read. */
  readonly disk?: string | undefined;
  /** Why root may not write the file (under sudo): found before anything is sent. */
  readonly unsafe?: HapopsError | undefined;
}

export interface MapReplaceBody {
  readonly request: MapReplaceRequest;
  readonly file: string;
  readonly diff: MapDiff;
  /** The version is filled (an HAProxy transaction runs). */
  readonly swap: boolean;
  /** The file is written (it differs from the new contents). */
  readonly write: boolean;
}

/** The commands that fill version `version`: payload chunks for a map, a line per ACL pattern. */
export function fillCommands(
  kind: MapKind,
  ref: string,
  version: number,
  next: readonly MapEntry[],
): RuntimeCommand[] {
  if (kind === "acl") {
    // 2.6 to 3.4 answer "'add acl' expects two parameters" to `add acl @<ver> <acl> <<`.
    return next.map((e) => {
      const cmd = addMapEntry("acl", ref, e.key, undefined, version);
      if (commandBytes(cmd) > COMMAND_BUDGET)
        throw tooBig(`the pattern ${shorten(e.key)}`, commandBytes(cmd));
      return cmd;
    });
  }
  // Payload budget: what is left once the command line and the ending empty line are counted.
  const head = commandBytes(addMapVersion("map", WIDEST_VERSION, ref, [{ key: "k", value: "v" }]));
  const budget = CHUNK_BYTES - head + 4;
  return chunkEntries(next, budget).map((chunk) => {
    const cmd = addMapVersion("map", version, ref, chunk);
    if (commandBytes(cmd) > COMMAND_BUDGET)
      throw tooBig(`the entry for ${shorten(chunk[0]!.key)}`, commandBytes(cmd));
    return cmd;
  });
}

function sameEntries(a: readonly MapEntry[], b: readonly MapEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.key === b[i]!.key && e.value === b[i]!.value);
}

/** Whether the file on disk already holds `next` (in order: the first of a duplicate key wins). */
function diskHolds(kind: MapKind, disk: string | undefined, next: readonly MapEntry[]): boolean {
  if (disk === undefined) return false;
  try {
    return sameEntries(parseMapText(kind, disk, "the file"), next);
  } catch {
    return false;
  }
}

/**
 * Plan a whole-map replace: the diff against the live version; one transaction (prepare, fill,
 * commit) when HAProxy's contents differ; with --persist, a write of the file when the file
 * differs, whether or not HAProxy already serves the new contents. Every line is built and
 * sized here, so a bad or oversized entry is refused before anything is sent.
 */
export function planMapReplace(state: ReplaceState, req: MapReplaceRequest): Plan<MapReplaceBody> {
  const { kind, ref, next } = req;
  const file = state.info.file;
  if (req.persist && !file) throw new UsageError(`--persist: ${ref} was not loaded from a file`);
  if (req.persist?.remote !== undefined)
    throw new UsageError(
      `--persist writes ${file} on this machine, but HAProxy is reached over ${req.persist.remote}://`,
    );

  const diff = diffMaps(state.entries, next);
  // Order matters too: the first of a duplicate key wins, and map_beg/map_reg match in order.
  const reordered = diffSize(diff) === 0 && !sameEntries(state.entries, next);
  const swap = diffSize(diff) > 0 || reordered;
  // Built now (with the widest version number) so that every line is checked and sized.
  const fill = fillCommands(kind, ref, WIDEST_VERSION, next);
  const write = req.persist !== undefined && !diskHolds(kind, state.disk, next);

  const lines = [
    prepareMap(kind, ref).line,
    ...(kind === "acl"
      ? next.map((e) => `add acl @<ver> ${ref} ${e.key}`)
      : fill.map(() => `add map @<ver> ${ref} <<`)),
    `commit ${kind} @<ver> ${ref}`,
  ];
  const steps: Step[] = [];
  if (swap)
    steps.push({
      kind: "transaction",
      op: `${kind} replace`,
      lines,
      ...(kind === "map"
        ? {
            payloadNote: `${next.length} entr${next.length === 1 ? "y" : "ies"} in ${fill.length} command${fill.length === 1 ? "" : "s"} of at most ${Math.max(0, ...fill.map(commandBytes))} bytes`,
          }
        : {}),
      run: (sessions, sent) => runReplace(sessions.write, kind, ref, next, sent),
    });
  if (write)
    steps.push({
      kind: "write-file",
      op: `${kind} replace`,
      path: file,
      private: false,
      payload: renderMapText(next),
    });

  const guards: Guard[] = [];
  if (next.length === 0 && state.entries.length > 0) {
    const reason = `${req.from} has no entries: the replace would remove all ${state.entries.length} entries of ${ref}`;
    guards.push({
      name: "empties",
      ok: false,
      forced: req.force,
      reason,
      ...(req.force
        ? {}
        : {
            error: new GuardError(
              `refusing ${kind} replace: ${reason}. Pass --force to do it anyway (it is recorded).`,
            ),
          }),
    });
  }
  if (req.persist && state.unsafe)
    guards.push({
      name: "persist-target",
      ok: false,
      forced: false,
      reason: state.unsafe.message,
      error: state.unsafe,
    });

  const describe: string[] = [];
  if (swap) {
    describe.push(
      `${ref}: ${state.entries.length} -> ${next.length} entries (${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed${reordered ? "; the order differs" : ""})`,
    );
    const show = (sign: string, list: string[]) => {
      for (const l of list.slice(0, 20)) describe.push(`  ${sign} ${l}`);
      if (list.length > 20) describe.push(`  ${sign} ... ${list.length - 20} more`);
    };
    show("+", diff.added.map(entryText));
    show("-", diff.removed.map(entryText));
    show(
      "~",
      diff.changed.map((c) => `${c.key} ${c.from} -> ${c.to}`),
    );
  } else {
    describe.push(
      `${ref}: HAProxy already serves the ${next.length} entr${next.length === 1 ? "y" : "ies"} of ${req.from} (nothing sent)`,
    );
  }
  if (req.persist)
    describe.push(
      write
        ? `${file}: differs from ${req.from} on disk; ${swap ? "after the commit, " : ""}write it (the previous file is kept in the backup directory)`
        : `${file}: already holds these entries on disk (not written)`,
    );

  const counts = {
    added: diff.added.length,
    removed: diff.removed.length,
    changed: diff.changed.length,
    entries: next.length,
  };
  return {
    version: 1,
    op: `${kind} replace`,
    target: req.target,
    level: levelOf([prepareMap(kind, ref), ...fill.slice(0, 1), commitMap(kind, 0, ref)]),
    mutates: swap || write,
    scope: { maps: [mapScopeName(state.info)] },
    steps,
    guards,
    describe,
    json: {
      [kind]: ref,
      file,
      from: req.from,
      ...counts,
      diff,
      persist: req.persist !== undefined,
    },
    report: { [kind]: ref, ...counts, version: null, persisted: null },
    detail: { [kind]: ref, file, from: req.from, ...counts, persist: req.persist !== undefined },
    body: { request: req, file, diff, swap, write },
  };
}

/**
 * Send `commands` pipelined, keeping at most `budget` bytes unanswered, and stop at the first
 * refusal or failure (what is in flight is still awaited): a replace that failed does not keep
 * filling a version it is about to clear. The session windows its writes too; this one also
 * knows when to stop. Each line goes to `sent` as it is handed to the session.
 */
export async function sendWindowed(
  session: Pick<RuntimeSession, "run">,
  commands: readonly RuntimeCommand[],
  budget: number,
  sent: string[],
): Promise<void> {
  let inFlight = 0;
  let failure: Error | undefined;
  const pending = new Set<Promise<void>>();
  for (const cmd of commands) {
    const size = commandBytes(cmd);
    while (failure === undefined && pending.size > 0 && inFlight + size > budget)
      await Promise.race(pending);
    if (failure !== undefined) break;
    inFlight += size;
    sent.push(cmd.line);
    const p: Promise<void> = session.run(cmd).then(
      () => undefined,
      (e: unknown) => {
        failure ??= e instanceof Error ? e : new Error(String(e));
      },
    );
    const tracked = p.finally(() => {
      inFlight -= size;
      pending.delete(tracked);
    });
    pending.add(tracked);
  }
  await Promise.all(pending);
  if (failure !== undefined) throw failure;
}

/**
 * The atomic swap (management.txt 9.3): `prepare` makes version V, `add @V` fills it, invisible
 * until `commit @V` makes it current at once. If anything fails before the commit took effect,
 * `clear @V` empties the version so no orphan entries stay behind (the old contents keep
 * serving), and the error says so. A commit whose answer was lost is not cleared: if it took
 * effect, V is the live version.
 */
export async function runReplace(
  write: Pick<RuntimeSession, "run">,
  kind: MapKind,
  ref: string,
  next: readonly MapEntry[],
  sent: string[],
): Promise<string[]> {
  const prep = prepareMap(kind, ref);
  sent.push(prep.line);
  const answer = (await write.run(prep)).join(" ");
  const created = /New version created: (\d+)/.exec(answer);
  if (!created) throw new ProtocolError(`unexpected answer to "${prep.line}": ${answer}`);
  const version = Number(created[1]);
  let committing = false;
  try {
    await sendWindowed(write, fillCommands(kind, ref, version, next), WINDOW_BYTES, sent);
    const commit = commitMap(kind, version, ref);
    committing = true;
    sent.push(commit.line);
    await write.run(commit);
  } catch (e) {
    // A commit HAProxy refused did not happen; one whose answer never came may have.
    if (committing && !(e instanceof HaproxyError)) {
      amend(
        e,
        `the answer to the commit of version ${version} was lost, so whether ${ref} now serves it is unknown: check with hapops ${kind} show ${ref}`,
        { version, cleared: false },
      );
      throw e;
    }
    const clear = clearMapVersion(kind, version, ref);
    sent.push(clear.line);
    try {
      await write.run(clear);
      // Read back: HAProxy 3.4.0 answers `clear map|acl @<ver>` and leaves the version's entries
      // (measured; 2.4 to 3.2 empty it). They serve nothing, and the next commit of this map
      // drops every older version (measured on 3.4.0 too).
      const left = await write.run(showMap(kind, ref, version)).then(
        (lines) => lines.filter((l) => parseMapEntry(l, kind === "map") !== undefined).length,
        () => 0,
      );
      if (left > 0)
        amend(
          e,
          `nothing was committed (${ref} serves its old contents); HAProxy answered \`${clear.line}\` but the uncommitted version ${version} still holds ${left} ${left === 1 ? "entry" : "entries"} (HAProxy 3.4.0 does not empty a version this way): they serve nothing, and the next commit of this ${kind} (another replace) drops them`,
          { version, cleared: false, left, compensation: [clear.line] },
        );
      else
        amend(
          e,
          `nothing was committed (${ref} serves its old contents) and the uncommitted version ${version} was cleared`,
          { version, cleared: true, compensation: [clear.line] },
        );
    } catch {
      amend(
        e,
        `nothing was committed (${ref} serves its old contents), but clearing the uncommitted version ${version} failed: its entries stay until the next commit (another replace), or run \`hapops raw "${clear.line}"\``,
        { version, cleared: false, compensation: [clear.line] },
      );
    }
    throw e;
  }
  return [];
}

function amend(e: unknown, note: string, details: Record<string, unknown>): void {
  if (!isHapopsError(e)) return;
  e.message = `${e.message.replace(/\.$/, "")}; ${note}`;
  Object.assign(e.details, details);
}

/** --persist replaces a regular file in place (certs/persist.ts); say so before sending. */
function checkRegularFile(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    throw new GuardError(
      `--persist target ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file on this machine (is HAProxy on another host?)" : (e as Error).message}`,
    );
  }
  if (!st.isFile())
    throw new GuardError(
      `--persist target ${path} is ${st.isSymbolicLink() ? "a symbolic link" : "not a regular file"}; hapops replaces only a regular file in place`,
    );
}

function readDisk(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function mapReplaceOperation(
  req: MapReplaceRequest,
): Operation<ReplaceState, MapReplaceBody> {
  return {
    op: `${req.kind} replace`,
    // Never below what some version needs for map reads (grammar.ts): admin, as HAProxy 3.4
    // answers "Permission denied" to every map and ACL command below it; 2.4-3.2 take user.
    readLevel: sessionLevel(GRAMMAR.showMap),
    async read(sessions) {
      const info = await findMap(sessions.read, req.kind, req.ref);
      const entries = await readEntries(sessions.read, req.kind, req.ref);
      if (!req.persist || !info.file) return { info, entries };
      // Before anything is sent: a write that would be refused must not follow a committed swap.
      try {
        req.persist.files.checkNotOperatorWritable(info.file, "--persist target");
        checkRegularFile(info.file);
      } catch (e) {
        if (!isHapopsError(e)) throw e;
        return { info, entries, unsafe: e };
      }
      return { info, entries, disk: readDisk(info.file) };
    },
    plan: (state) => planMapReplace(state, req),
    async verify(sessions, plan): Promise<Verification> {
      const { kind, ref, from, next } = req;
      const { file, swap, write } = plan.body;
      const info = await findMap(sessions.read, kind, ref);
      const after = await readEntries(sessions.read, kind, ref);
      const left = diffMaps(after, next);
      const mismatches: string[] = [];
      // Compared in order, duplicates included: HAProxy lists a version in the order it was filled.
      if (!sameEntries(after, next))
        mismatches.push(
          diffSize(left) > 0
            ? `${ref} differs from ${from} after the commit (${left.added.length} missing, ${left.removed.length} extra, ${left.changed.length} different)`
            : `${ref} holds the entries of ${from}, but not in its order`,
        );
      if (write && !diskHolds(kind, readDisk(file), next))
        mismatches.push(`${file} on disk does not hold ${from} after it was written`);
      const summary = [
        swap
          ? `verified: HAProxy's ${kind} now equals ${from} (version ${info.currentVersion ?? "?"})`
          : `verified: HAProxy's ${kind} equals ${from} (unchanged)`,
      ];
      if (!req.persist)
        summary.push(
          `not persisted: a reload restores ${file || "the old contents"} (use --persist)`,
        );
      return {
        mismatches,
        summary,
        // The engine's write step reports what it wrote (path, backup, mode).
        json: { version: info.currentVersion ?? null, ...(write ? {} : { persisted: null }) },
      };
    },
  };
}
