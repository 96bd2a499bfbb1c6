import { PolicyError } from "../errors.js";

/** Every object a plan touches, by kind: what a policy's scope is checked against. */
export interface Scope {
  /** `backend/server` */
  readonly servers?: readonly string[];
  /** stick-table names */
  readonly tables?: readonly string[];
  /** map and ACL files (or `#<id>` references) */
  readonly maps?: readonly string[];
  /** certificate files and the DNS names they cover */
  readonly certs?: readonly { readonly file: string; readonly names: readonly string[] }[];
  /** A raw line whose objects could not all be named: only an unscoped group may send it. */
  readonly unnamed?: string;
}

/**
 * Who may run what: `policy.groups.<unix group>` lists operations (CLI command names, `read`
 * for every read-only command, or `*`), optionally limited to a scope per kind of object.
 * Without a policy, anyone who can run hapops may run everything (single-admin setups).
 */
export interface GroupScope {
  /** `backend/server` patterns (`*` allowed per part); `selectors:` in the config means this. */
  readonly servers?: readonly string[] | undefined;
  /** stick-table names (glob) */
  readonly tables?: readonly string[] | undefined;
  /** map and ACL files (glob, `*` crosses `/`) */
  readonly maps?: readonly string[] | undefined;
  /** certificate files (glob), or DNS names every name of the certificate must match */
  readonly certs?: readonly string[] | undefined;
}

export interface GroupRule {
  readonly allow: readonly string[];
  readonly scope?: GroupScope | undefined;
}

export type Policy = Readonly<Record<string, GroupRule>>;

export const READ_OPS = ["info", "stat", "servers", "certs", "table show", "audit"] as const;

export interface PolicyRequest {
  readonly operator: string;
  readonly groups: readonly string[];
  /** The CLI command ("drain", "table set", ...). */
  readonly op: string;
  readonly readOnly: boolean;
  /** What a change touches; reads have none. */
  readonly scope?: Scope | undefined;
  /**
   * The account the run acts through when it is not the operator (the user sudo authenticated,
   * or the real user, while the login uid names the operator): the run must be allowed for its
   * groups as well. A process whose login uid is unset may set it once without privilege, so a
   * login uid alone must never widen what that account may do.
   */
  readonly through?: PolicyAccount | undefined;
}

export interface PolicyAccount {
  readonly user: string;
  readonly groups: readonly string[];
  /** Who that account is, for the refusal ("the user sudo authenticated"). */
  readonly role: string;
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

/** `*` matches any run of characters (across `/` too), `?` one; the rest literally. */
function glob(pattern: string, value: string, star = ".*"): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, star)
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(value);
}

type Kind = "servers" | "tables" | "maps" | "certs";

/** The objects of one kind in `scope` that `limits` does not cover. */
function outside(kind: Kind, limits: readonly string[], scope: Scope): string[] {
  switch (kind) {
    case "servers":
      return (scope.servers ?? []).filter((s) => !limits.some((p) => patternMatches(p, s)));
    case "tables":
      return (scope.tables ?? []).filter((t) => !limits.some((p) => glob(p, t)));
    case "maps":
      return (scope.maps ?? []).filter((m) => !limits.some((p) => glob(p, m)));
    case "certs":
      // A certificate is in scope by its file, or when a pattern covers every name it holds
      // (`*.example.com` covers www.example.com, and the wildcard name itself).
      return (scope.certs ?? [])
        .filter(
          (c) =>
            !limits.some((p) => glob(p, c.file)) &&
            !(c.names.length > 0 && c.names.every((n) => limits.some((p) => glob(p, n, "[^.]*")))),
        )
        .map((c) => c.file);
  }
}

const KINDS: readonly Kind[] = ["servers", "tables", "maps", "certs"];
const NOUN: Record<Kind, string> = {
  servers: "servers",
  tables: "tables",
  maps: "maps and ACLs",
  certs: "certificates",
};

/**
 * Whether the policy allows the request: for the operator's groups and, when the run acts
 * through another account, for that account's groups too.
 */
export function decide(policy: Policy | undefined, req: PolicyRequest): PolicyDecision {
  if (policy === undefined) return { allowed: true, rule: "no policy configured" };
  const mine = decideFor(policy, req);
  const through = req.through;
  if (!mine.allowed || through === undefined || through.user === req.operator) return mine;
  const theirs = decideFor(policy, { ...req, operator: through.user, groups: through.groups });
  if (!theirs.allowed)
    return {
      allowed: false,
      rule: `${req.operator}'s groups allow it, but it runs through ${through.user} (${through.role}), whose groups must allow it too: ${theirs.rule}`,
    };
  return { allowed: true, rule: `${mine.rule}, and for ${through.user} ${theirs.rule}` };
}

function decideFor(policy: Policy, req: PolicyRequest): PolicyDecision {
  // Own keys only: a unix group called "constructor" must not find Object.prototype's.
  const mine = req.groups.filter((g) => Object.hasOwn(policy, g));
  if (mine.length === 0)
    return {
      allowed: false,
      rule: `${req.operator} is in none of the groups the policy names (${Object.keys(policy).join(", ") || "none"})`,
    };
  const scope = req.scope ?? {};
  const reasons: string[] = [];
  for (const g of mine) {
    const rule = policy[g]!;
    if (!opAllowed(rule, req.op, req.readOnly)) {
      reasons.push(`group ${g} does not allow ${req.op}`);
      continue;
    }
    const limits = rule.scope ?? {};
    const limited = KINDS.filter((k) => limits[k] !== undefined && limits[k].length > 0);
    if (req.readOnly || limited.length === 0)
      return { allowed: true, rule: `group ${g} allows ${req.op}` };
    if (scope.unnamed !== undefined) {
      reasons.push(
        `group ${g} is limited to ${limited.map((k) => NOUN[k]).join(", ")}, and ${scope.unnamed}`,
      );
      continue;
    }
    // A scoped group reaches only the kinds of objects its scope names: limited to servers,
    // it may not touch a table, a map or a certificate at all.
    const touched = KINDS.filter((k) => (scope[k]?.length ?? 0) > 0);
    const unlisted = touched.filter((k) => !limited.includes(k));
    if (unlisted.length > 0) {
      reasons.push(
        `group ${g} is limited to ${limited.map((k) => `${NOUN[k]} ${limits[k]!.join(", ")}`).join("; ")}, and ${req.op} touches ${unlisted.map((k) => NOUN[k]).join(", ")} outside that scope`,
      );
      continue;
    }
    const out = limited.flatMap((k) => {
      const o = outside(k, limits[k]!, scope);
      return o.length > 0 ? [{ k, o }] : [];
    });
    if (out.length === 0)
      return {
        allowed: true,
        rule: `group ${g} allows ${req.op} on ${limited.map((k) => limits[k]!.join(", ")).join("; ")}`,
      };
    for (const { k, o } of out)
      reasons.push(
        `group ${g} allows ${req.op} only on ${limits[k]!.join(", ")}, not ${o.slice(0, 3).join(", ")}${o.length > 3 ? ", ..." : ""}`,
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
      ...(req.through !== undefined && req.through.user !== req.operator
        ? { through: { user: req.through.user, groups: req.through.groups } }
        : {}),
    });
  return d;
}
