import { ProtocolError } from "../errors.js";

/**
 * The master CLI's `show proc` (management.txt 9.4, master CLI): a "#<PID> <type> <reloads>
 * <uptime> <version>" header, the master's row, then sections "# workers", "# old workers" and
 * (up to 3.0) "# programs". Measured on 2.6, 2.8, 3.0, 3.2 and 3.4:
 * - the master's reloads cell is "N [failed: F]": F counts reloads that did not load;
 * - a worker's reloads cell counts the reloads it has lived through (0 for the newest);
 * - after a failed reload 2.6 to 3.0 keep the serving worker under "# workers", while 3.2 and
 *   3.4 list it under "# old workers" and leave "# workers" empty;
 * - 3.2 and later print no "# programs" section.
 */
export interface Proc {
  readonly pid: number;
  /** "master", "worker", or a program's name. */
  readonly type: string;
  readonly reloads: number;
  /** As printed ("0d00h00m01s"). */
  readonly uptime: string;
  readonly uptimeSec: number | undefined;
  readonly version: string;
}

export interface Master extends Proc {
  /** Reloads that failed to load a new worker (the "[failed: N]" cell). */
  readonly failed: number;
}

export interface ProcList {
  readonly master: Master;
  /** Under "# workers": the current worker(s). */
  readonly workers: readonly Proc[];
  /** Under "# old workers": previous workers still finishing their connections. */
  readonly oldWorkers: readonly Proc[];
  readonly programs: readonly Proc[];
}

/** "0d00h01m30s" (and the "1d 2h..." forms) to seconds; undefined if it does not read. */
export function parseUptime(text: string): number | undefined {
  const m = /^(\d+)d\s*(\d+)h(\d+)m(\d+)s$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

function row(line: string): Proc & { failed: number | undefined } {
  // The reloads cell of the master holds spaces ("0 [failed: 0]"): take it out first.
  const failedMatch = /\s\[failed:\s*(\d+)\]/.exec(line);
  const plain = failedMatch ? line.replace(failedMatch[0], "") : line;
  const cells = plain.trim().split(/\s+/);
  const [pid, type, reloads, uptime, version] = cells;
  if (
    pid === undefined ||
    !/^\d+$/.test(pid) ||
    type === undefined ||
    reloads === undefined ||
    !/^\d+$/.test(reloads) ||
    uptime === undefined
  )
    throw new ProtocolError("show proc row does not read as <pid> <type> <reloads> <uptime>", {
      line: line.slice(0, 200),
    });
  return {
    pid: Number(pid),
    type,
    reloads: Number(reloads),
    uptime,
    uptimeSec: parseUptime(uptime),
    version: version ?? "",
    failed: failedMatch ? Number(failedMatch[1]) : undefined,
  };
}

export function parseShowProc(lines: readonly string[]): ProcList {
  let master: Master | undefined;
  const workers: Proc[] = [];
  const oldWorkers: Proc[] = [];
  const programs: Proc[] = [];
  let section: "head" | "workers" | "old" | "programs" | "other" = "head";
  let header = false;
  for (const line of lines) {
    if (line.trim().length === 0) continue;
    if (line.startsWith("#<PID>")) {
      header = true;
      continue;
    }
    if (line.startsWith("#")) {
      const name = line.slice(1).trim();
      section =
        name === "workers"
          ? "workers"
          : name === "old workers"
            ? "old"
            : name === "programs"
              ? "programs"
              : "other";
      continue;
    }
    if (!header)
      throw new ProtocolError('not a show proc answer: no "#<PID>" header', {
        line: line.slice(0, 200),
      });
    const r = row(line);
    const { failed, ...proc } = r;
    if (section === "head" && r.type === "master") master = { ...proc, failed: failed ?? 0 };
    else if (section === "workers") workers.push(proc);
    else if (section === "old") oldWorkers.push(proc);
    else if (section === "programs") programs.push(proc);
  }
  if (!master)
    throw new ProtocolError("show proc answer has no master row", {
      lines: lines.slice(0, 3).map((l) => l.slice(0, 200)),
    });
  return { master, workers, oldWorkers, programs };
}

/**
 * The master CLI's answer to `reload`. From 2.7 it waits for the new worker and answers
 * "Success=1" or "Success=0", a "--" line, then the start-up logs of that reload (the same lines
 * `show startup-logs` prints). 2.6 answers nothing: the master re-executes itself and the
 * connection closes (measured), so the outcome can only be read from `show proc` afterwards.
 */
export interface ReloadAnswer {
  /** undefined when HAProxy said nothing (2.6). */
  readonly success: boolean | undefined;
  readonly logs: readonly string[];
}

export function parseReloadAnswer(lines: readonly string[]): ReloadAnswer {
  const text = lines.filter((l) => l.length > 0);
  const first = text[0];
  if (first === undefined) return { success: undefined, logs: [] };
  const m = /^Success=([01])$/.exec(first.trim());
  if (!m)
    throw new ProtocolError(`unexpected answer to reload: ${JSON.stringify(first.slice(0, 200))}`, {
      line: first.slice(0, 200),
    });
  const rest = text.slice(1);
  return { success: m[1] === "1", logs: rest[0] === "--" ? rest.slice(1) : rest };
}

/**
 * The lines of start-up logs that say what went wrong: HAProxy's ALERTs (a config that does not
 * parse) and the master's verdict ("Loading failure!", "Failed to load worker ...").
 */
export function failureLines(logs: readonly string[]): string[] {
  return logs.filter(
    (l) => /^\[(ALERT|EMERG)\]/.test(l) || /Loading failure|Failed to load/.test(l),
  );
}
