import { resolveIdentity, systemProbe, throughAccount, type Identity } from "../audit/identity.js";
import { Journal } from "../audit/journal.js";
import { AuditLog } from "../audit/log.js";
import { parseSyslogTarget } from "../audit/syslog.js";
import type { Settings } from "../config/settings.js";
import { ConfigError, isHapopsError, type HapopsError } from "../errors.js";
import { operatorFiles, ownFiles, type Credentials, type InputFiles } from "../host/input-files.js";
import { runTool } from "../util/tools.js";
import type { Scope } from "./operation.js";
import { enforcePolicy, type PolicyRequest } from "../policy/policy.js";

/**
 * Identity, policy and audit for one run, in the order DESIGN.md gives: who is acting, whether
 * they may, and a journal opened before anything is sent (fail closed: exit 5 if it cannot be).
 */
export interface RunContext {
  readonly identity: Identity | undefined;
  readonly journal: Journal | undefined;
  /**
   * The journal of one target of a fleet run: its own records (target, opId), the run id of
   * this run. Undefined when the run is not audited.
   */
  journalFor(target: string): Journal | undefined;
  /**
   * Files the operator names (--pem, --from...): under sudo, opened with the rights of the
   * account the run acts through (identity.ts).
   */
  readonly files: InputFiles;
  /** Check one operation of a plan, on everything the plan touches, against the policy. */
  authorize(op: string, scope: Scope): void;
  /** Record how the run ended when it ended in an error, then release the log. */
  fail(error: unknown): Promise<void>;
  close(): void;
}

export interface RunRequest {
  /** CLI command name, as the policy spells it ("drain", "table show"). */
  readonly op: string;
  readonly readOnly: boolean;
  readonly args: readonly string[];
  readonly reason: string | undefined;
  readonly dryRun: boolean;
  readonly force: boolean;
  /** Refuse this run, recording why (audited even for a read-only command). */
  readonly refusal?: HapopsError | undefined;
}

function groupId(name: string): number {
  try {
    const line = runTool("getent", "libc-bin", ["group", "--", name], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const gid = Number(line.split(":")[2]);
    if (Number.isInteger(gid)) return gid;
  } catch {
    // handled below
  }
  throw new ConfigError(`audit.group ${name} is not a group on this system`);
}

/**
 * What the policy is asked about a run by this identity: the operator's groups and, when the run
 * acts through another account (sudo's user, or the real user, while the login uid names the
 * operator), that account's groups too, so a login uid never widens what the account may do.
 * Undefined for root acting as itself (not through sudo): it already owns the socket and the
 * config, a policy cannot bind it, and pretending otherwise would only break root's own work.
 */
export function policyRequestFor(
  identity: Identity,
  op: string,
  readOnly: boolean,
): PolicyRequest | undefined {
  const through = throughAccount(identity);
  if (!identity.sudo && through.uid === 0) return undefined;
  return {
    operator: identity.operator,
    groups: identity.groups,
    op,
    readOnly,
    ...(through.name !== identity.operator
      ? {
          through: {
            user: through.name,
            groups: through.groups,
            role: identity.sudo ? "the user sudo authenticated" : "the real user",
          },
        }
      : {}),
  };
}

/**
 * Whose rights open the files an operator names, under sudo: the account sudo vouched for when
 * sudo is the direct parent, the login uid's user when SUDO_* are set without it. Undefined
 * without sudo: the process's own rights are the operator's already.
 */
export function fileCredentials(identity: Identity): Credentials | undefined {
  if (!identity.sudo) return undefined;
  const through = throughAccount(identity);
  return { user: through.name, uid: through.uid, gid: through.gid };
}

export async function startRun(
  settings: Settings,
  req: RunRequest,
  env: NodeJS.ProcessEnv,
  warn: (message: string) => void,
): Promise<RunContext> {
  const audited = !req.readOnly || settings.audit.reads || req.refusal !== undefined;
  // Reads with no policy and no read auditing need no identity: no passwd lookups, fast start.
  if (!audited && settings.policy === undefined)
    return {
      identity: undefined,
      journal: undefined,
      journalFor: () => undefined,
      files: ownFiles,
      authorize: () => undefined,
      fail: () => Promise.resolve(),
      close: () => undefined,
    };

  const identity = resolveIdentity(systemProbe(env));
  let log: AuditLog | undefined;
  let journal: Journal | undefined;
  if (audited) {
    log = AuditLog.open({
      path: settings.audit.path,
      createDir: settings.audit.createDir,
      group: settings.audit.group
        ? { name: settings.audit.group, gid: groupId(settings.audit.group) }
        : undefined,
    });
    let syslog;
    try {
      syslog = settings.audit.syslog ? parseSyslogTarget(settings.audit.syslog) : undefined;
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    journal = await Journal.start(
      log,
      {
        identity,
        target: settings.targetText,
        op: req.op,
        args: req.args,
        reason: req.reason,
        dryRun: req.dryRun,
        force: req.force,
      },
      syslog,
      warn,
    );
  }
  const policyRequest = policyRequestFor(identity, req.op, req.readOnly);
  const credentials = fileCredentials(identity);
  const ctx: RunContext = {
    identity,
    journal,
    journalFor: (target) => journal?.sibling(target),
    files: credentials ? operatorFiles(credentials) : ownFiles,
    authorize: (op, scope) => {
      if (!policyRequest) return;
      enforcePolicy(settings.policy, { ...policyRequest, op, scope });
    },
    fail: async (error) => {
      if (!journal || !isHapopsError(error)) return;
      try {
        await journal.finish(error);
      } catch (e) {
        warn(`audit: could not record the outcome: ${(e as Error).message}`);
      }
    },
    close: () => log?.close(),
  };
  try {
    if (req.refusal) throw req.refusal;
    if (policyRequest) enforcePolicy(settings.policy, policyRequest);
  } catch (e) {
    await ctx.fail(e);
    ctx.close();
    throw e;
  }
  return ctx;
}
