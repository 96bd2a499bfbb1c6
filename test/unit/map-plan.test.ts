import { describe, expect, it } from "vitest";
import type { RuntimeCommand } from "../../src/commands/builders.js";
import type { InputFiles } from "../../src/host/input-files.js";
import {
  ExitCode,
  GuardError,
  HaproxyError,
  TruncatedResponseError,
  UsageError,
  ValidationError,
  type HapopsError,
} from "../../src/errors.js";
import {
  checkMapEntry,
  CHUNK_BYTES,
  COMMAND_BUDGET,
  commandBytes,
  diffMaps,
  fillCommands,
  parseLookup,
  planMapEntry,
  planMapReplace,
  renderMapText,
  runReplace,
  sendWindowed,
  type MapEntryRequest,
  type MapReplaceRequest,
  type MapState,
  type ReplaceState,
} from "../../src/ops/map.js";
import type { Step } from "../../src/engine/operation.js";
import type { MapEntry, MapInfo } from "../../src/parse/map.js";
import { thrown } from "../helpers/thrown.js";

const FILE = "/etc/haproxy/hosts.map";
const ACL = "/etc/haproxy/blocked.acl";

function info(id: number, file: string, over: Partial<MapInfo> = {}): MapInfo {
  return {
    id,
    file,
    description: `pattern loaded from file '${file}'`,
    entries: undefined,
    currentVersion: 0,
    nextVersion: 0,
    ...over,
  };
}

const e = (key: string, value?: string): MapEntry => ({ key, value });

const HOSTS: MapState = {
  info: info(2, FILE),
  entries: [e("example.com", "gold"), e("other.org", "silver")],
};
const BLOCKED: MapState = { info: info(0, ACL), entries: [e("192.0.2.66")] };

function entry(over: Partial<MapEntryRequest> & Pick<MapEntryRequest, "op">): MapEntryRequest {
  return { kind: "map", ref: FILE, key: "new.example", value: "bronze", target: "t", ...over };
}

function sendLines(steps: readonly Step[]): string[] {
  return steps.flatMap((s) => (s.kind === "send" ? s.commands.map((c) => c.line) : []));
}

describe("planMapEntry", () => {
  it("plans one add line at user level, scoped to the map's file", () => {
    const plan = planMapEntry(HOSTS, entry({ op: "add" }));
    expect(sendLines(plan.steps)).toEqual([`add map ${FILE} new.example bronze`]);
    expect(plan).toMatchObject({
      op: "map add",
      level: "user",
      mutates: true,
      scope: { maps: [FILE] },
      guards: [],
    });
    expect(plan.describe).toEqual([`${FILE}: add new.example bronze`]);
  });

  it("resolves a #<id> reference to the file, so policy globs over files apply", () => {
    const plan = planMapEntry(HOSTS, entry({ op: "add", ref: "#2" }));
    expect(plan.scope).toEqual({ maps: [FILE] });
    expect(sendLines(plan.steps)).toEqual(["add map #2 new.example bronze"]);
  });

  it("scopes an inline ACL (no file) by its #<id>", () => {
    const inline: MapState = { info: info(1, ""), entries: [] };
    const plan = planMapEntry(
      inline,
      entry({ kind: "acl", op: "add", ref: "#1", key: "10.0.0.1" }),
    );
    expect(plan.scope).toEqual({ maps: ["#1"] });
    expect(sendLines(plan.steps)).toEqual(["add acl #1 10.0.0.1"]);
  });

  it("map add of a key that already has that value sends nothing (a no-op, exit 0)", () => {
    const plan = planMapEntry(HOSTS, entry({ op: "add", key: "example.com", value: "gold" }));
    expect(plan.guards).toEqual([]);
    expect(sendLines(plan.steps)).toEqual([]);
    expect(plan.describe.join("\n")).toMatch(/example\.com is already gold \(nothing sent\)/);
  });

  it("refuses map add of a key that is there (exit 3), pointing at map set", () => {
    const plan = planMapEntry(HOSTS, entry({ op: "add", key: "example.com", value: "platinum" }));
    expect(plan.guards).toHaveLength(1);
    const g = plan.guards[0]!;
    expect(g).toMatchObject({ name: "existing-key", ok: false, forced: false });
    expect(g.error).toBeInstanceOf(GuardError);
    expect(g.error!.exitCode).toBe(ExitCode.guard);
    expect(g.error!.message).toMatch(/already has the key example\.com \(gold\)/);
    expect(g.error!.message).toMatch(
      /hapops map set \/etc\/haproxy\/hosts\.map example\.com platinum/,
    );
    // The dry run still shows the line it refuses.
    expect(sendLines(plan.steps)).toEqual([`add map ${FILE} example.com platinum`]);
  });

  it("treats acl add of a pattern that is there as done: nothing to send", () => {
    const plan = planMapEntry(
      BLOCKED,
      entry({ kind: "acl", op: "add", ref: ACL, key: "192.0.2.66", value: undefined }),
    );
    expect(plan.steps).toEqual([]);
    expect(plan.mutates).toBe(false);
    expect(plan.guards).toEqual([]);
    expect(plan.describe[0]).toMatch(/already in it \(nothing sent\)/);
  });

  it("sets an existing key, and says when it already has the value", () => {
    const plan = planMapEntry(HOSTS, entry({ op: "set", key: "example.com", value: "platinum" }));
    expect(sendLines(plan.steps)).toEqual([`set map ${FILE} example.com platinum`]);
    expect(plan.describe).toEqual([`${FILE}: set example.com gold -> platinum`]);
    const same = planMapEntry(HOSTS, entry({ op: "set", key: "example.com", value: "gold" }));
    expect(same.steps).toEqual([]);
    expect(same.describe[0]).toMatch(/already gold \(nothing sent\)/);
  });

  it.each([
    [
      { op: "set" as const, key: "missing.example" },
      /has no key missing\.example; use hapops map add/,
    ],
    [{ op: "del" as const, key: "missing.example" }, /has no key missing\.example/],
  ])("refuses %j of a key that is not there (exit 2)", (over, message) => {
    const err = thrown(UsageError, () => planMapEntry(HOSTS, entry(over)));
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.message).toMatch(message);
  });

  it("deletes every entry of a key", () => {
    const dup: MapState = { ...HOSTS, entries: [e("a", "1"), e("a", "2")] };
    const plan = planMapEntry(dup, entry({ op: "del", key: "a", value: undefined }));
    expect(sendLines(plan.steps)).toEqual([`del map ${FILE} a`]);
    expect(plan.describe).toEqual([`${FILE}: del a 1, a 2`]);
  });

  it("refuses a line HAProxy could not take whole, before anything is sent (exit 2)", () => {
    const err = thrown(ValidationError, () =>
      planMapEntry(HOSTS, entry({ op: "add", value: "v".repeat(9000) })),
    );
    expect(err.message).toMatch(/tune\.bufsize/);
  });

  it("checks what add, set and del leave for the key", () => {
    const body = (over: Partial<MapEntryRequest> & Pick<MapEntryRequest, "op">) =>
      planMapEntry(
        over.op === "add" ? HOSTS : { ...HOSTS, entries: [e("new.example", "x")] },
        entry(over),
      ).body;
    expect(checkMapEntry(body({ op: "add" }), [e("new.example", "bronze")])).toEqual([]);
    expect(checkMapEntry(body({ op: "add" }), [])).toHaveLength(1);
    expect(checkMapEntry(body({ op: "set" }), [e("new.example", "bronze")])).toEqual([]);
    expect(checkMapEntry(body({ op: "set" }), [e("new.example", "x")])).toHaveLength(1);
    expect(checkMapEntry(body({ op: "del", value: undefined }), [])).toEqual([]);
    expect(
      checkMapEntry(body({ op: "del", value: undefined }), [e("new.example", "x")]),
    ).toHaveLength(1);
  });
});

const files = (unsafe?: HapopsError): InputFiles => ({
  readText: () => "",
  list: () => [],
  checkNotOperatorWritable: () => {
    if (unsafe) throw unsafe;
  },
});

function replace(over: Partial<MapReplaceRequest> = {}): MapReplaceRequest {
  return {
    kind: "map",
    ref: FILE,
    from: "new.map",
    next: [e("example.com", "platinum"), e("third.example", "bronze")],
    force: false,
    target: "t",
    ...over,
  };
}

function txn(steps: readonly Step[]): Extract<Step, { kind: "transaction" }> | undefined {
  return steps.find((s): s is Extract<Step, { kind: "transaction" }> => s.kind === "transaction");
}

describe("planMapReplace", () => {
  it("shows the diff and plans one transaction: prepare, fill in chunks, commit", () => {
    const plan = planMapReplace(HOSTS, replace());
    expect(plan.describe).toEqual([
      `${FILE}: 2 -> 2 entries (1 added, 1 removed, 1 changed)`,
      "  + third.example bronze",
      "  - other.org silver",
      "  ~ example.com gold -> platinum",
    ]);
    expect(plan.steps.map((s) => s.kind)).toEqual(["transaction"]);
    expect(txn(plan.steps)!.lines).toEqual([
      `prepare map ${FILE}`,
      `add map @<ver> ${FILE} <<`,
      `commit map @<ver> ${FILE}`,
    ]);
    expect(plan).toMatchObject({
      op: "map replace",
      level: "user",
      mutates: true,
      scope: { maps: [FILE] },
      report: { map: FILE, added: 1, removed: 1, changed: 1, entries: 2 },
    });
    expect(plan.json.diff).toEqual({
      added: [e("third.example", "bronze")],
      removed: [e("other.org", "silver")],
      changed: [{ key: "example.com", from: "gold", to: "platinum" }],
    });
  });

  it("fills an ACL one pattern per line (2.6 takes no payload for add acl)", () => {
    const plan = planMapReplace(
      BLOCKED,
      replace({ kind: "acl", ref: ACL, next: [e("192.0.2.1"), e("10.0.0.0/8")] }),
    );
    expect(txn(plan.steps)!.lines).toEqual([
      `prepare acl ${ACL}`,
      `add acl @<ver> ${ACL} 192.0.2.1`,
      `add acl @<ver> ${ACL} 10.0.0.0/8`,
      `commit acl @<ver> ${ACL}`,
    ]);
    expect(plan.report).toMatchObject({ acl: ACL, added: 2, removed: 1 });
  });

  it("sends nothing when HAProxy already serves the new contents", () => {
    const plan = planMapReplace(HOSTS, replace({ next: HOSTS.entries }));
    expect(plan.steps).toEqual([]);
    expect(plan.mutates).toBe(false);
    expect(plan.describe).toEqual([
      `${FILE}: HAProxy already serves the 2 entries of new.map (nothing sent)`,
    ]);
  });

  it("swaps when only the order differs: the first of a duplicate key wins, map_reg matches in order", () => {
    const plan = planMapReplace(HOSTS, replace({ next: [...HOSTS.entries].reverse() }));
    expect(plan.steps.map((s) => s.kind)).toEqual(["transaction"]);
    expect(plan.describe[0]).toBe(
      `${FILE}: 2 -> 2 entries (0 added, 0 removed, 0 changed; the order differs)`,
    );
  });

  it("--persist writes the file when it differs, even if HAProxy already serves the contents", () => {
    const state: ReplaceState = { ...HOSTS, disk: "example.com gold\n" };
    const plan = planMapReplace(
      state,
      replace({ next: HOSTS.entries, persist: { files: files() } }),
    );
    expect(plan.steps).toEqual([
      {
        kind: "write-file",
        op: "map replace",
        path: FILE,
        private: false,
        payload: "example.com gold\nother.org silver\n",
      },
    ]);
    expect(plan.mutates).toBe(true);
    expect(plan.describe[1]).toMatch(/differs from new\.map on disk; write it/);
  });

  it("--persist writes after the commit, and not at all when the file already holds the contents", () => {
    const differs = planMapReplace(
      { ...HOSTS, disk: "example.com gold\nother.org silver\n" },
      replace({ persist: { files: files() } }),
    );
    expect(differs.steps.map((s) => s.kind)).toEqual(["transaction", "write-file"]);
    const holds = planMapReplace(
      { ...HOSTS, disk: "# managed\nexample.com platinum\n\nthird.example   bronze\n" },
      replace({ persist: { files: files() } }),
    );
    expect(holds.steps.map((s) => s.kind)).toEqual(["transaction"]);
    expect(holds.describe.at(-1)).toMatch(/already holds these entries on disk \(not written\)/);
    const unreadable = planMapReplace(
      { ...HOSTS, disk: undefined },
      replace({ next: HOSTS.entries, persist: { files: files() } }),
    );
    expect(unreadable.steps.map((s) => s.kind)).toEqual(["write-file"]);
  });

  it("refuses --persist for a map without a file, or HAProxy on another host (exit 2)", () => {
    const inline: ReplaceState = { info: info(1, ""), entries: [] };
    expect(
      thrown(UsageError, () =>
        planMapReplace(inline, replace({ ref: "#1", persist: { files: files() } })),
      ).message,
    ).toMatch(/--persist: #1 was not loaded from a file/);
    const err = thrown(UsageError, () =>
      planMapReplace(HOSTS, replace({ persist: { files: files(), remote: "tls" } })),
    );
    expect(err.message).toMatch(/reached over tls:\/\//);
  });

  it("turns an unsafe --persist target into a guard that refuses before anything is sent", () => {
    const unsafe = new GuardError(
      "--persist target /etc/haproxy/hosts.map goes through a symbolic link",
    );
    const plan = planMapReplace({ ...HOSTS, unsafe }, replace({ persist: { files: files() } }));
    expect(plan.guards).toEqual([
      { name: "persist-target", ok: false, forced: false, reason: unsafe.message, error: unsafe },
    ]);
  });

  it("refuses to empty a map unless forced", () => {
    const plan = planMapReplace(HOSTS, replace({ next: [] }));
    expect(plan.guards[0]).toMatchObject({ name: "empties", ok: false, forced: false });
    expect(plan.guards[0]!.error?.exitCode).toBe(ExitCode.guard);
    const forced = planMapReplace(HOSTS, replace({ next: [], force: true }));
    expect(forced.guards[0]).toMatchObject({ name: "empties", ok: false, forced: true });
    expect(forced.guards[0]!.error).toBeUndefined();
    expect(txn(forced.steps)!.lines).toEqual([`prepare map ${FILE}`, `commit map @<ver> ${FILE}`]);
    // An empty map replaced by an empty file is simply already so.
    expect(planMapReplace({ ...HOSTS, entries: [] }, replace({ next: [] })).guards).toEqual([]);
  });

  it("refuses an entry HAProxy could not take in one command (exit 2), naming it", () => {
    const err = thrown(ValidationError, () =>
      planMapReplace(HOSTS, replace({ next: [e("a", "1"), e("big.example", "v".repeat(20_000))] })),
    );
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.message).toMatch(/the entry for big\.example makes a command of \d+ bytes/);
    // Also when HAProxy already serves it: the dry run and the real run agree.
    const big = [e("big.example", "v".repeat(20_000))];
    thrown(ValidationError, () =>
      planMapReplace({ ...HOSTS, entries: big }, replace({ next: big })),
    );
  });

  it("refuses a bad word before anything is sent", () => {
    thrown(ValidationError, () =>
      planMapReplace(HOSTS, replace({ next: [e("a;clear map x", "1")] })),
    );
  });
});

describe("diffMaps with duplicate keys", () => {
  it("compares a key by its first entry and extra copies as entries", () => {
    const dup = [e("a", "1"), e("a", "2"), e("b", "3")];
    expect(diffMaps(dup, dup)).toEqual({ added: [], removed: [], changed: [] });
    expect(diffMaps(dup, [e("a", "1"), e("b", "3")])).toEqual({
      added: [],
      removed: [e("a", "2")],
      changed: [],
    });
    expect(diffMaps([e("a", "1")], [e("a", "9"), e("a", "1")])).toEqual({
      added: [e("a", "1")],
      removed: [],
      changed: [{ key: "a", from: "1", to: "9" }],
    });
  });
});

describe("fillCommands", () => {
  it("keeps every map command, payload included, within the budget", () => {
    const next = Array.from({ length: 3000 }, (_, i) =>
      e(`host${i}.example`, `tier-${"x".repeat(i % 90)}`),
    );
    const cmds = fillCommands("map", FILE, 4294967295, next);
    expect(cmds.length).toBeGreaterThan(10);
    // Packed up to the pipelining window; only an entry bigger than that goes alone.
    for (const c of cmds) expect(commandBytes(c)).toBeLessThanOrEqual(CHUNK_BYTES);
    expect(cmds.flatMap((c) => c.payload ?? [])).toEqual(next.map((x) => `${x.key} ${x.value}`));
    expect(cmds[0]!.line).toBe(`add map @4294967295 ${FILE} <<`);
  });

  it("takes an entry that nearly fills a command alone, and refuses one that does not fit", () => {
    const room = COMMAND_BUDGET - commandBytes(fillCommands("map", FILE, 1, [e("k", "v")])[0]!);
    const fits = fillCommands("map", FILE, 4294967295, [
      e("a", "1"),
      e("k", "v".repeat(room - 10)),
      e("b", "2"),
    ]);
    expect(fits.map((c) => c.payload?.length)).toEqual([1, 1, 1]);
    expect(() => fillCommands("map", FILE, 1, [e("k", "v".repeat(COMMAND_BUDGET))])).toThrow(
      ValidationError,
    );
  });

  it("builds one versioned add per ACL pattern", () => {
    expect(
      fillCommands("acl", ACL, 7, [e("192.0.2.1"), e("10.0.0.0/8")]).map((c) => c.line),
    ).toEqual([`add acl @7 ${ACL} 192.0.2.1`, `add acl @7 ${ACL} 10.0.0.0/8`]);
  });
});

describe("renderMapText", () => {
  it("writes one entry per line, ending with a newline", () => {
    expect(renderMapText([e("a", "1 2"), e("b", "3")])).toBe("a 1 2\nb 3\n");
    expect(renderMapText([e("10.0.0.1")])).toBe("10.0.0.1\n");
  });
});

/** A write session that answers from a script and tracks the bytes it has not answered yet. */
function scripted(answer: (cmd: RuntimeCommand) => string[] | Error) {
  const log: string[] = [];
  let inFlight = 0;
  let peak = 0;
  return {
    log,
    peak: () => peak,
    run(cmd: RuntimeCommand): Promise<string[]> {
      log.push(cmd.line);
      const size = commandBytes(cmd);
      inFlight += size;
      peak = Math.max(peak, inFlight);
      return new Promise((resolve, reject) =>
        setImmediate(() => {
          inFlight -= size;
          const a = answer(cmd);
          if (a instanceof Error) reject(a);
          else resolve(a);
        }),
      );
    },
  };
}

const refuse = (cmd: RuntimeCommand, message: string) =>
  new HaproxyError(cmd.line, message, `HAProxy refused "${cmd.line}": ${message}`);

describe("sendWindowed", () => {
  const lines = (n: number) =>
    fillCommands(
      "acl",
      ACL,
      3,
      Array.from({ length: n }, (_, i) => e(`10.0.${i >> 8}.${i & 255}`)),
    );

  it("never keeps more than the budget unanswered, and sends every line in order", async () => {
    const s = scripted(() => []);
    const sent: string[] = [];
    const cmds = lines(2000);
    await sendWindowed(s, cmds, 4096, sent);
    expect(sent).toEqual(cmds.map((c) => c.line));
    expect(s.peak()).toBeLessThanOrEqual(4096);
    expect(s.peak()).toBeGreaterThan(2048);
  });

  it("stops at the first refusal and reports it", async () => {
    const cmds = lines(500);
    const s = scripted((c) => (c.line === cmds[100]!.line ? refuse(c, "bad pattern") : []));
    const sent: string[] = [];
    await expect(sendWindowed(s, cmds, 1024, sent)).rejects.toBeInstanceOf(HaproxyError);
    expect(sent.length).toBeLessThan(500);
    expect(sent.length).toBeGreaterThan(100);
  });
});

describe("runReplace (the transaction and its compensation)", () => {
  const next = [e("a.example", "1"), e("b.example", "2")];
  const prepared = (cmd: RuntimeCommand) =>
    cmd.line.startsWith("prepare") ? ["New version created: 5"] : [];

  it("prepares, fills and commits the version HAProxy created", async () => {
    const s = scripted(prepared);
    const sent: string[] = [];
    await runReplace(s, "map", FILE, next, sent);
    expect(sent).toEqual([`prepare map ${FILE}`, `add map @5 ${FILE} <<`, `commit map @5 ${FILE}`]);
    expect(s.log).toEqual(sent);
  });

  it("clears the version when a fill is refused, and says so", async () => {
    const s = scripted((c) =>
      c.line.startsWith("add")
        ? refuse(c, "'x' is not a valid IPv4 or IPv6 address.")
        : prepared(c),
    );
    const sent: string[] = [];
    const err = (await runReplace(s, "acl", ACL, [e("192.0.2.1"), e("x")], sent).catch(
      (x: unknown) => x,
    )) as HapopsError;
    expect(err).toBeInstanceOf(HaproxyError);
    expect(sent.at(-1)).toBe(`clear acl @5 ${ACL}`);
    expect(sent).not.toContain(`commit acl @5 ${ACL}`);
    expect(err.message).toMatch(/address; nothing was committed .* version 5 was cleared$/);
    expect(err.details).toMatchObject({
      version: 5,
      cleared: true,
      compensation: [`clear acl @5 ${ACL}`],
    });
  });

  it("says so when the clear leaves the version's entries (HAProxy 3.4.0), and that the next commit drops them", async () => {
    const s = scripted((c) =>
      c.line.startsWith("add")
        ? refuse(c, "'x' is not a valid IPv4 or IPv6 address.")
        : c.line === `show acl @5 ${ACL}`
          ? ["0x55ffa82e9320 192.0.2.1"]
          : prepared(c),
    );
    const sent: string[] = [];
    const err = (await runReplace(s, "acl", ACL, [e("192.0.2.1"), e("x")], sent).catch(
      (x: unknown) => x,
    )) as HapopsError;
    expect(sent.at(-1)).toBe(`clear acl @5 ${ACL}`);
    expect(s.log.at(-1)).toBe(`show acl @5 ${ACL}`);
    expect(err.message).toMatch(
      /nothing was committed .*; HAProxy answered `clear acl @5 .*` but the uncommitted version 5 still holds 1 entry .*the next commit of this acl \(another replace\) drops them$/,
    );
    expect(err.details).toMatchObject({ version: 5, cleared: false, left: 1 });
  });

  it("clears the version when HAProxy refuses the commit", async () => {
    const s = scripted((c) =>
      c.line.startsWith("commit") ? refuse(c, "Version number out of range.") : prepared(c),
    );
    const sent: string[] = [];
    await expect(runReplace(s, "map", FILE, next, sent)).rejects.toBeInstanceOf(HaproxyError);
    expect(sent.slice(-2)).toEqual([`commit map @5 ${FILE}`, `clear map @5 ${FILE}`]);
  });

  it("never clears a version whose commit answer was lost: it may be the live one", async () => {
    const s = scripted((c) =>
      c.line.startsWith("commit") ? new TruncatedResponseError("closed mid-answer") : prepared(c),
    );
    const sent: string[] = [];
    const err = (await runReplace(s, "map", FILE, next, sent).catch(
      (x: unknown) => x,
    )) as HapopsError;
    expect(err).toBeInstanceOf(TruncatedResponseError);
    expect(sent.some((l) => l.startsWith("clear"))).toBe(false);
    expect(err.message).toMatch(/whether .* now serves it is unknown/);
  });

  it("says what is left when the clear fails too", async () => {
    const s = scripted((c) =>
      c.line.startsWith("add") || c.line.startsWith("clear") ? refuse(c, "nope") : prepared(c),
    );
    const err = (await runReplace(s, "map", FILE, next, []).catch(
      (x: unknown) => x,
    )) as HapopsError;
    expect(err.message).toMatch(/clearing the uncommitted version 5 failed/);
    expect(err.details).toMatchObject({ cleared: false });
  });

  it("sends nothing more when prepare gets an unexpected answer", async () => {
    const s = scripted(() => ["Unknown command"]);
    const sent: string[] = [];
    await expect(runReplace(s, "map", FILE, next, sent)).rejects.toThrow(/unexpected answer/);
    expect(sent).toEqual([`prepare map ${FILE}`]);
  });
});

describe("parseLookup (get map / get acl)", () => {
  it("reads a map's found=yes and its value", () => {
    expect(
      parseLookup(
        'type=str, case=sensitive, found=yes, idx=tree, key="example.com", value="gold", type="str"',
      ),
    ).toEqual({ found: true, value: "gold", pattern: undefined });
    expect(parseLookup("type=str, case=sensitive, found=no")).toEqual({
      found: false,
      value: undefined,
      pattern: undefined,
    });
  });

  it("reads an ACL's match=yes (HAProxy says match, not found, for ACLs)", () => {
    expect(
      parseLookup('type=ip, case=sensitive, match=yes, idx=tree, pattern="10.0.0.0/8"'),
    ).toEqual({ found: true, value: undefined, pattern: "10.0.0.0/8" });
    expect(parseLookup("type=ip, case=sensitive, match=no").found).toBe(false);
  });
});
