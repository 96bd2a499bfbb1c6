import type { Journal } from "../../audit/journal.js";
import { persistFile, type PersistResult } from "../../certs/persist.js";
import { ownFiles, type InputFiles } from "../../host/input-files.js";
import {
  addMapEntry,
  addMapVersion,
  commitMap,
  delMapEntry,
  getMap,
  prepareMap,
  setMapEntry,
  showMap,
  showMaps,
  validateMapRef,
  type MapKind,
  type RuntimeCommand,
} from "../../commands/builders.js";
import type { Settings } from "../../config/settings.js";
import { checkWriteLevel, openChangeSessions } from "../../engine/change.js";
import { withSession } from "../../engine/connect.js";
import {
  ProtocolError,
  UsageError,
  ValidationError,
  VerificationError,
  type HapopsError,
} from "../../errors.js";
import { parseMapEntry, parseMapList, type MapEntry, type MapInfo } from "../../parse/map.js";
import type { RuntimeSession } from "../../runtime/session.js";
import { suggestion } from "../../util/suggest.js";
import { renderJson, renderTable } from "../output.js";
import type { Io } from "../context.js";

async function findMap(session: RuntimeSession, kind: MapKind, ref: string): Promise<MapInfo> {
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

async function entries(
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

export async function runMapShow(
  settings: Settings,
  kind: MapKind,
  ref: string | undefined,
): Promise<string> {
  return withSession(settings, `hapops ${kind} show`, async (session) => {
    void session.lowerTo("user").catch(() => undefined);
    if (ref === undefined) {
      const maps = parseMapList(await session.run(showMaps(kind)));
      if (settings.json) return renderJson(maps);
      return renderTable(
        ["ID", "FILE", "ENTRIES", "DESCRIPTION"],
        maps.map((m) => [
          `#${m.id}`,
          m.file || "-",
          String(m.entries ?? "-"),
          m.description.slice(0, 70),
        ]),
      );
    }
    await findMap(session, kind, ref);
    const list = await entries(session, kind, ref);
    if (settings.json) return list.map((e) => JSON.stringify(e) + "\n").join("");
    return renderTable(
      kind === "map" ? ["KEY", "VALUE"] : ["PATTERN"],
      list.map((e) => (kind === "map" ? [e.key, e.value ?? ""] : [e.key])),
    );
  });
}

export async function runMapGet(
  settings: Settings,
  kind: MapKind,
  ref: string,
  value: string,
): Promise<string> {
  const cmd = getMap(kind, ref, value);
  return withSession(settings, `hapops ${kind} get`, async (session) => {
    void session.lowerTo("user").catch(() => undefined);
    await findMap(session, kind, ref);
    const answer = (await session.run(cmd)).join(" ");
    const found = /found=yes/.test(answer);
    const mapped = /(?:^|, )value="([^"]*)"/.exec(answer)?.[1];
    if (settings.json)
      return renderJson({
        [kind]: ref,
        lookup: value,
        found,
        value: found ? (mapped ?? null) : null,
      });
    return found ? `${value} -> ${mapped ?? "(matched)"}\n` : `${value}: no match\n`;
  });
}

export interface MapChange {
  readonly kind: MapKind;
  readonly op: "add" | "set" | "del";
  readonly ref: string;
  readonly key: string;
  readonly value?: string | undefined;
  readonly dryRun: boolean;
  readonly journal: Journal;
}

/** One entry: add, set (existing key) or del, recorded and read back. */
export async function runMapChange(settings: Settings, req: MapChange, io: Io): Promise<void> {
  const cmd: RuntimeCommand =
    req.op === "add"
      ? addMapEntry(req.kind, req.ref, req.key, req.value)
      : req.op === "set"
        ? setMapEntry(req.ref, req.key, req.value ?? "")
        : delMapEntry(req.kind, req.ref, req.key);
  const out = (t: string) => {
    if (!settings.json) io.out(t + "\n");
  };
  const sessions = await openChangeSessions(settings, `hapops ${req.kind} ${req.op}`);
  try {
    await findMap(sessions.read, req.kind, req.ref);
    const before = await entries(sessions.read, req.kind, req.ref);
    const had = before.filter((e) => e.key === req.key);
    if (req.op === "set" && had.length === 0)
      throw new UsageError(`${req.ref} has no key ${req.key}; use hapops map add to add it`);
    if (req.op === "del" && had.length === 0)
      throw new UsageError(
        `${req.ref} has no ${req.kind === "map" ? "key" : "pattern"} ${req.key}`,
      );
    if (req.dryRun) {
      out(`dry run: would send:\n  ${cmd.line}`);
      await req.journal.single("ok", [cmd.line]);
      return;
    }
    const step = await req.journal.intent([cmd.line], { [req.kind]: req.ref });
    try {
      await sessions.write.run(cmd);
      const after = (await entries(sessions.read, req.kind, req.ref)).filter(
        (e) => e.key === req.key,
      );
      const ok =
        req.op === "del"
          ? after.length < had.length
          : req.op === "add"
            ? after.length > had.length &&
              (req.kind === "acl" || after.some((e) => e.value === req.value))
            : after.every((e) => e.value === req.value);
      if (!ok)
        throw new VerificationError(
          `${req.ref}: ${req.key} is not as asked after ${req.op} (read back: ${after.map((e) => e.value ?? e.key).join(", ") || "absent"})`,
        );
      await req.journal.result(step, "ok", [cmd.line]);
      out(
        `${req.ref}: ${req.op} ${req.key}${req.value !== undefined ? ` ${req.value}` : ""}\nverified: read back from HAProxy (not written to the file; a reload restores it — use ${req.kind} replace --persist to keep changes)`,
      );
      if (settings.json)
        io.out(renderJson({ [req.kind]: req.ref, op: req.op, sent: [cmd.line], entries: after }));
    } catch (e) {
      await req.journal.result(step, "failed", [cmd.line], e as HapopsError);
      throw e;
    }
  } finally {
    await sessions.close();
  }
}

/** Read a map file ("key value", value = rest of line) or ACL file (one pattern per line). */
export function readMapFile(kind: MapKind, path: string, files: InputFiles = ownFiles): MapEntry[] {
  const text = files.readText(path, "--from");
  const out: MapEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith("#")) return;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    if (kind === "map" && !m[2])
      throw new ValidationError(`${path} line ${i + 1}: "${line}" has a key but no value`);
    // HAProxy reads a whole ACL line as one pattern; one with spaces cannot be sent on the CLI.
    if (kind === "acl" && m[2])
      throw new ValidationError(
        `${path} line ${i + 1}: the pattern "${line}" contains a space, which the runtime API cannot take`,
      );
    out.push({ key: m[1]!, value: kind === "map" ? m[2]! : undefined });
  });
  return out;
}

export interface MapDiff {
  readonly added: MapEntry[];
  readonly removed: MapEntry[];
  readonly changed: { key: string; from: string | undefined; to: string | undefined }[];
}

export function diffMaps(current: readonly MapEntry[], next: readonly MapEntry[]): MapDiff {
  // HAProxy keeps duplicate keys (a lookup answers the first); extra copies count as removed.
  const cur = new Map<string, string | undefined>();
  const duplicates: MapEntry[] = [];
  for (const e of current) {
    if (cur.has(e.key)) duplicates.push(e);
    else cur.set(e.key, e.value);
  }
  const nxt = new Map(next.map((e) => [e.key, e.value]));
  return {
    added: next.filter((e) => !cur.has(e.key)),
    removed: [...current.filter((e) => !nxt.has(e.key) && !duplicates.includes(e)), ...duplicates],
    changed: next
      .filter((e) => cur.has(e.key) && cur.get(e.key) !== e.value)
      .map((e) => ({ key: e.key, from: cur.get(e.key), to: e.value })),
  };
}

/** Bytes of payload per `add map @ver` command, well under the default tune.bufsize of 16384. */
const PAYLOAD_BUDGET = 12_000;

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

export interface MapReplace {
  readonly kind: MapKind;
  readonly ref: string;
  readonly from: string;
  readonly persist: boolean;
  readonly dryRun: boolean;
  readonly journal: Journal;
  /** Opens --from (as the operator under sudo). */
  readonly files: InputFiles;
}

/**
 * Replace a whole map or ACL as one atomic swap: `prepare map` makes a new version, `add map
 * @<ver> <map> <<` fills it, `commit map @<ver> <map>` makes it current at once (management.txt
 * 9.3): a reader sees the old contents or the new ones, never a mix. The diff is shown first.
 */
export async function runMapReplace(settings: Settings, req: MapReplace, io: Io): Promise<void> {
  const next = readMapFile(req.kind, req.from, req.files);
  const out = (t: string) => {
    if (!settings.json) io.out(t + "\n");
  };
  const sessions = await openChangeSessions(settings, `hapops ${req.kind} replace`);
  try {
    const level = await checkWriteLevel(
      sessions.write,
      "user",
      settings.targetText,
      `${req.kind} replace`,
    );
    if (level.error) throw level.error;
    const info = await findMap(sessions.read, req.kind, req.ref);
    if (req.persist && !info.file)
      throw new UsageError(`--persist: ${req.ref} was not loaded from a file`);
    if (req.persist && settings.target.kind !== "unix")
      throw new UsageError(
        `--persist writes ${info.file} on this machine, but HAProxy is reached over ${settings.target.kind}://`,
      );
    // Before anything is sent: a write that would be refused must not follow a committed swap.
    if (req.persist && info.file) req.files.checkNotOperatorWritable(info.file, "--persist target");
    const current = await entries(sessions.read, req.kind, req.ref);
    const diff = diffMaps(current, next);
    const show = (sign: string, list: string[]) => {
      for (const l of list.slice(0, 20)) out(`  ${sign} ${l}`);
      if (list.length > 20) out(`  ${sign} ... ${list.length - 20} more`);
    };
    out(
      `${req.ref}: ${current.length} -> ${next.length} entries (${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed)`,
    );
    show(
      "+",
      diff.added.map((e) => `${e.key}${e.value !== undefined ? ` ${e.value}` : ""}`),
    );
    show(
      "-",
      diff.removed.map((e) => `${e.key}${e.value !== undefined ? ` ${e.value}` : ""}`),
    );
    show(
      "~",
      diff.changed.map((c) => `${c.key} ${c.from} -> ${c.to}`),
    );
    const summary = {
      [req.kind]: req.ref,
      added: diff.added.length,
      removed: diff.removed.length,
      changed: diff.changed.length,
      entries: next.length,
    };
    const planned = [
      `prepare ${req.kind} ${req.ref}`,
      `add ${req.kind} @<ver> ${req.ref} <<`,
      `commit ${req.kind} @<ver> ${req.ref}`,
    ];
    if (req.dryRun) {
      out(
        `dry run: would send:\n  ${planned.join("\n  ")}\n  (payload: ${next.length} lines, elided)`,
      );
      addMapVersion(req.kind, 0, req.ref, next); // validates every line, sends nothing
      await req.journal.single("ok", planned, undefined, summary);
      if (settings.json) io.out(renderJson({ dryRun: true, ...summary, diff }));
      return;
    }
    if (diff.added.length + diff.removed.length + diff.changed.length === 0) {
      out("already identical; nothing sent");
      await req.journal.single("noop", [], undefined, summary);
      return;
    }
    const step = await req.journal.intent(planned, summary);
    const sent: string[] = [];
    try {
      const prep = prepareMap(req.kind, req.ref);
      sent.push(prep.line);
      const created = (await sessions.write.run(prep)).join(" ");
      const ver = /New version created: (\d+)/.exec(created);
      if (!ver) throw new ProtocolError(`unexpected answer to "${prep.line}": ${created}`);
      const version = Number(ver[1]);
      // The CLI takes at most tune.bufsize (16 kB by default) per command, payload included
      // (management.txt 9.3): fill the new version in chunks, still invisible until the commit.
      for (const chunk of chunkEntries(next, PAYLOAD_BUDGET)) {
        const add = addMapVersion(req.kind, version, req.ref, chunk);
        sent.push(add.line);
        await sessions.write.run(add);
      }
      const commit = commitMap(req.kind, version, req.ref);
      sent.push(commit.line);
      await sessions.write.run(commit);
      const after = await entries(sessions.read, req.kind, req.ref);
      const left = diffMaps(after, next);
      if (left.added.length + left.removed.length + left.changed.length > 0)
        throw new VerificationError(
          `${req.ref} differs from ${req.from} after the commit (${left.added.length} missing, ${left.removed.length} extra, ${left.changed.length} different)`,
        );
      let persisted: PersistResult | null = null;
      if (req.persist) {
        const body =
          next.map((e) => (e.value !== undefined ? `${e.key} ${e.value}` : e.key)).join("\n") +
          "\n";
        persisted = persistFile(info.file, body, { private: false });
      }
      await req.journal.result(step, "ok", sent, undefined, {
        ...summary,
        persisted: persisted !== null,
      });
      out(`verified: HAProxy's ${req.kind} now equals ${req.from} (version ${version})`);
      out(
        persisted
          ? `persisted: ${info.file} (previous kept as ${persisted.backup})`
          : `not persisted: a reload restores ${info.file || "the old contents"} (use --persist)`,
      );
      if (settings.json)
        io.out(renderJson({ dryRun: false, ...summary, version, sent, persisted }));
    } catch (e) {
      await req.journal.result(step, "failed", sent, e as HapopsError, summary);
      throw e;
    }
  } finally {
    await sessions.close();
  }
}
