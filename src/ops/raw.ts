import { sessionLevel } from "../commands/grammar.js";
import type { RawCommand } from "../commands/raw.js";
import type { Operation, Plan, Scope } from "../engine/operation.js";

/** What a raw line touches, as the policy checks it (certificates by their file only). */
export function rawScope(cmd: RawCommand): Scope {
  const t = cmd.touches;
  return {
    ...(t.servers ? { servers: t.servers } : {}),
    ...(t.tables ? { tables: t.tables } : {}),
    ...(t.maps ? { maps: t.maps } : {}),
    ...(t.certs ? { certs: t.certs.map((file) => ({ file, names: [] })) } : {}),
    ...(t.unnamed !== undefined ? { unnamed: t.unnamed } : {}),
  };
}

export interface RawBody {
  readonly command: RawCommand;
  /** HAProxy's answer, once the line has been sent. */
  answer: readonly string[] | undefined;
}

/**
 * The plan of one raw line (pure): its level and effect from the raw table, its scope. A dry
 * run says the level and effect; a real run says nothing before HAProxy's answer.
 */
export function planRaw(cmd: RawCommand, target: string, dryRun = false): Plan<RawBody> {
  const body: RawBody = { command: cmd, answer: undefined };
  return {
    version: 1,
    op: "raw",
    target,
    level: cmd.spec.level,
    mutates: cmd.mutates,
    scope: rawScope(cmd),
    steps: [
      {
        kind: "send",
        op: "raw",
        commands: [cmd],
        onAnswers: (answers) => {
          body.answer = [...(answers[0] ?? [])];
        },
      },
    ],
    guards: [],
    describe: dryRun
      ? [`raw: level ${cmd.spec.level}, ${cmd.mutates ? "changes state" : "read-only"}`]
      : [],
    json: { command: cmd.line },
    report: { command: cmd.line, level: cmd.spec.level, mutates: cmd.mutates },
    detail: { level: cmd.spec.level, mutates: cmd.mutates },
    body,
  };
}

/**
 * `hapops raw`: one line from the raw table, sent over one connection lowered to the line's own
 * level (a read never goes out at admin level), like a read command. HAProxy's answer is printed
 * as it is; a raw change is not verified (hapops does not know what it should have done), and
 * the report says so.
 */
export function rawOperation(
  cmd: RawCommand,
  target: string,
  dryRun = false,
): Operation<undefined, RawBody> {
  return {
    op: "raw",
    readLevel: "user",
    // Never below what some version needs (sessionLevel): 3.4 wants admin for `show map`.
    oneSession: sessionLevel(cmd.spec),
    read: () => Promise.resolve(undefined),
    plan: () => planRaw(cmd, target, dryRun),
    verify(_sessions, plan) {
      const answer = plan.body.answer ?? [];
      const summary = !cmd.mutates
        ? []
        : [
            answer.length > 0
              ? "raw changes are not verified: check with hapops servers or stat"
              : "sent; HAProxy answered nothing (raw changes are not verified: check with hapops servers or stat)",
            "runtime only: a reload undoes this unless haproxy.cfg (or a file it loads) says the same; server state survives with hapops reload or hapops state save, maps with map replace --persist",
          ];
      return Promise.resolve({
        mismatches: [],
        output: answer,
        summary,
        json: { answer },
        verified: false,
      });
    },
  };
}
