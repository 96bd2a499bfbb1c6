import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomic } from "../certs/persist.js";
import { showServersState } from "../commands/builders.js";
import type { Guard, Operation, Plan, Verification } from "../engine/operation.js";
import { isHapopsError, PolicyError, type HapopsError } from "../errors.js";
import type { InputFiles } from "../host/input-files.js";
import { renderStateFile, type StateTarget } from "../host/state-file.js";
import { parseServersState, type ServerState } from "../parse/servers-state.js";
import type { RuntimeSession } from "../runtime/session.js";

/**
 * `hapops state save`: HAProxy's `show servers state`, read at user level, written atomically to
 * the server-state file its configuration names, so that a reload by any means (a deploy
 * pipeline, systemctl) keeps drains, maintenance and weights: HAProxy applies the file to the
 * backends with `load-server-state-from-file` when it starts (management.txt 9.3, show servers
 * state; configuration.txt 3.1, server-state-file). It changes this host, not HAProxy, and is
 * audited like any change.
 */

/** A new state file's mode: HAProxy reads it when it starts; it holds no secret. */
export const STATE_FILE_MODE = 0o644;

/**
 * Under sudo hapops writes as root, so it writes only where the root-owned configuration says:
 * `--file` naming another path is refused (exit 3), like `doctor --haproxy-config`.
 */
export function stateFileRefusal(sudo: boolean, target: StateTarget): PolicyError | undefined {
  if (!sudo || target.source !== "--file" || target.path === target.configured) return undefined;
  return new PolicyError(
    `--file ${target.path} is refused under sudo: hapops writes only the server-state-file haproxy.cfg names (${target.configured ?? "it names none"})`,
  );
}

export interface StateSaveRequest {
  readonly target: string;
  readonly file: StateTarget;
  /** Under sudo: the checks that the operator cannot redirect root's write. */
  readonly files: InputFiles;
}

export interface StateSaveState {
  readonly lines: readonly string[];
  readonly servers: readonly ServerState[];
  /** Why root may not write there (under sudo), found before anything is written. */
  readonly unsafe?: HapopsError | undefined;
}

export interface StateSaveBody {
  readonly path: string;
  readonly payload: string;
  readonly servers: number;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Plan the write (pure): where, how many servers, the guard a sudo check found. */
export function planStateSave(state: StateSaveState, req: StateSaveRequest): Plan<StateSaveBody> {
  const { path, source } = req.file;
  const payload = renderStateFile(state.lines);
  const backends = new Set(state.servers.map((s) => s.backend)).size;
  const guards: Guard[] = state.unsafe
    ? [
        {
          name: "state-file",
          ok: false,
          forced: false,
          reason: state.unsafe.message,
          error: state.unsafe,
        },
      ]
    : [];
  const counts = { servers: state.servers.length, backends };
  return {
    version: 1,
    op: "state save",
    target: req.target,
    level: "user",
    mutates: true,
    scope: {},
    steps: [
      {
        kind: "write-file",
        op: "state save",
        path,
        private: false,
        payload,
        snapshot: { mode: STATE_FILE_MODE },
        what: `saving the server state to ${path}`,
      },
    ],
    guards,
    describe: [
      `server state: ${plural(counts.servers, "server")} in ${plural(backends, "backend")} -> ${path} (${source})`,
    ],
    json: { file: path, source, ...counts, bytes: Buffer.byteLength(payload) },
    report: { file: path, ...counts },
    detail: { file: path, source, ...counts },
    body: { path, payload, servers: counts.servers },
  };
}

/** Where a reload takes this file from, said after it is written. */
function loadNote(file: StateTarget): string[] {
  if (file.loadedBy === undefined)
    return file.source === "--file" && file.path !== file.configured
      ? [
          `note: ${file.path} is not the server-state-file haproxy.cfg names${file.configured ? ` (${file.configured})` : ""}; HAProxy does not read it at a reload`,
        ]
      : [];
  if (file.loadedBy.length === 0)
    return [
      "note: no backend of haproxy.cfg has load-server-state-from-file global, so a reload does not apply this file (set it in defaults)",
    ];
  return [];
}

export function stateSaveOperation(
  req: StateSaveRequest,
): Operation<StateSaveState, StateSaveBody> {
  return {
    op: "state save",
    readLevel: "user",
    // One connection, lowered to user: this reads HAProxy and changes nothing in it.
    oneSession: "user",
    async read(sessions) {
      const lines = await sessions.read.run(showServersState());
      const servers = parseServersState(lines);
      let unsafe: HapopsError | undefined;
      try {
        // The file may not exist yet: then its directory is what must not be the operator's.
        req.files.checkNotOperatorWritable(
          existsSync(req.file.path) ? req.file.path : dirname(req.file.path),
          "server-state file",
        );
      } catch (e) {
        if (!isHapopsError(e)) throw e;
        unsafe = e;
      }
      return { lines, servers, unsafe };
    },
    plan: (state) => planStateSave(state, req),
    verify(_sessions, plan: Plan<StateSaveBody>): Promise<Verification> {
      const { path, payload, servers } = plan.body;
      let back: string | undefined;
      try {
        back = readFileSync(path, "utf8");
      } catch {
        back = undefined;
      }
      return Promise.resolve({
        mismatches: back === payload ? [] : [`${path} does not hold what was written`],
        summary: [
          `verified: ${path} holds the state of ${plural(servers, "server")}; HAProxy applies it when it starts or reloads`,
          ...loadNote(req.file),
        ],
        json: { file: path, servers, bytes: Buffer.byteLength(payload) },
      });
    },
  };
}

/** What servers.saveState did after a verified server change. */
export interface SavedState {
  readonly path: string;
  readonly servers: number;
}

/**
 * Save the server state after a verified server change (`servers.saveState: true`): the same
 * read and the same atomic write as `state save`, on the change's read session.
 */
export async function saveServerState(read: RuntimeSession, path: string): Promise<SavedState> {
  const lines = await read.run(showServersState());
  const servers = parseServersState(lines).length;
  writeFileAtomic(path, renderStateFile(lines), STATE_FILE_MODE);
  return { path, servers };
}
