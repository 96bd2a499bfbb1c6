import { PolicyError } from "../errors.js";

/**
 * Who may run what: `policy.groups.<unix group>` lists operations (CLI command names, `read`
 * for every read-only command, or `*`), optionally limited to selectors such as `be_app/*`.
 * Without a policy, anyone who can run hapops may run everything (single-admin setups).
 */
export interface GroupRule {
  readonly allow: readonly string[];
  /** `backend/server` patterns (`*` allowed per part) the group's changes must stay within. */
  readonly selectors?: readonly string[] | undefined;
}

export type Policy = Readonly<Record<string, GroupRule>>;

export const READ_OPS = ["info", "stat", "servers", "certs", "table show", "audit"] as const;

export interface PolicyRequest {
  readonly operator: string;
  readonly groups: readonly string[];
  /** The CLI command ("drain", "table set", ...). */
  readonly op: string;
  readonly readOnly: boolean;
  /** The servers a change touches, as `backend/server`; empty for reads. */
  readonly servers?: readonly string[];
}

export interface PolicyDecision {
  readonly allowed: boolean;
  /** The rule that allowed it, or why nothing did. */
  readonly rule: string;
}

function opAllowed(rule: GroupRule, op: string, readOnly: boolean): boolean {
  return rule.allow.some((a) => a === "*" || a === op || (readOnly && a === "read"));
}

function patternMatches(pattern: string, server: string): boolean {
  const [pb, ps] = pattern.split("/");
  const [sb, ss] = server.split("/");
  return (pb === "*" || pb === sb) && (ps === undefined || ps === "*" || ps === ss);
}

export function decide(policy: Policy | undefined, req: PolicyRequest): PolicyDecision {
  if (policy === undefined) return { allowed: true, rule: "no policy configured" };
  // Own keys only: a unix group called "constructor" must not find Object.prototype's.
  const mine = req.groups.filter((g) => Object.hasOwn(policy, g));
  if (mine.length === 0)
    return {
      allowed: false,
      rule: `${req.operator} is in none of the groups the policy names (${Object.keys(policy).join(", ") || "none"})`,
    };
  const servers = req.servers ?? [];
  const reasons: string[] = [];
  for (const g of mine) {
    const rule = policy[g]!;
    if (!opAllowed(rule, req.op, req.readOnly)) {
      reasons.push(`group ${g} does not allow ${req.op}`);
      continue;
    }
    const limits = rule.selectors;
    if (req.readOnly || limits === undefined || limits.length === 0)
      return { allowed: true, rule: `group ${g} allows ${req.op}` };
    const outside = servers.filter((s) => !limits.some((p) => patternMatches(p, s)));
    if (outside.length === 0)
      return { allowed: true, rule: `group ${g} allows ${req.op} on ${limits.join(", ")}` };
    reasons.push(
      `group ${g} allows ${req.op} only on ${limits.join(", ")}, not ${outside.slice(0, 3).join(", ")}${outside.length > 3 ? ", ..." : ""}`,
    );
  }
  return { allowed: false, rule: reasons.join("; ") };
}

export function enforcePolicy(policy: Policy | undefined, req: PolicyRequest): PolicyDecision {
  const d = decide(policy, req);
  if (!d.allowed)
    throw new PolicyError(`policy refuses ${req.op} for ${req.operator}: ${d.rule}`, {
      operator: req.operator,
      groups: req.groups,
      op: req.op,
    });
  return d;
}
