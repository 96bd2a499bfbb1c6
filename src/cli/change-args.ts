import { UsageError } from "../errors.js";
import { parseWeight, type ChangeRequest, type WeightSpec } from "../ops/plan.js";
import { parseAddrSelector, parseSelector } from "../ops/selector.js";
import { parseDuration } from "../util/duration.js";

export interface ChangeFlags {
  addr?: string;
  wait?: boolean;
  waitTimeout?: string;
  then?: string;
  pollInterval?: string;
  killAfter?: string;
  rampTo?: string;
  step?: string;
  every?: string;
}

export const SELECTOR_HELP =
  "backend/server, backend/*, */server or */*; or --addr <ip>[:port] for every server with that address";

export interface ParsedChange {
  readonly request: ChangeRequest;
  readonly ramp: { to: WeightSpec; step: number; everyMs: number } | undefined;
  readonly waitTimeoutMs: number;
  readonly pollMs: number;
  /** drain --kill-after: cut the sessions left after this long (undefined: never). */
  readonly killAfterMs: number | undefined;
}

/** Turn the CLI's words into a validated change request; nothing is sent if this throws. */
export function buildChangeRequest(
  op: "drain" | "maint" | "ready" | "weight",
  selectorArg: string | undefined,
  weightArg: string | undefined,
  flags: ChangeFlags,
  force: boolean,
): ParsedChange {
  // With --addr the first positional is the weight: `hapops weight --addr 10.0.0.5 50`.
  let weightText = weightArg;
  let selText = selectorArg;
  if (flags.addr !== undefined && op === "weight" && weightText === undefined) {
    weightText = selText;
    selText = undefined;
  }
  if (flags.addr !== undefined && selText !== undefined)
    throw new UsageError(
      `give a selector or --addr, not both (got ${selText} and --addr ${flags.addr})`,
    );
  if (flags.addr === undefined && selText === undefined)
    throw new UsageError(`${op} needs a selector (${SELECTOR_HELP})`);
  const selector =
    flags.addr !== undefined ? parseAddrSelector(flags.addr) : parseSelector(selText!);
  if (flags.then !== undefined && flags.then !== "maint")
    throw new UsageError(`--then ${flags.then}: the only follow-up is maint`);

  let request: ChangeRequest;
  let ramp: ParsedChange["ramp"];
  if (op === "weight") {
    if (flags.rampTo !== undefined) {
      const step = Number(flags.step);
      if (!Number.isInteger(step) || step < 1 || step > 256)
        throw new UsageError(`--step ${flags.step}: a whole number from 1 to 256`);
      ramp = {
        to: parseWeight(flags.rampTo),
        step,
        everyMs: parseDuration(flags.every ?? "30s", "--every"),
      };
    } else if (weightText === undefined) {
      throw new UsageError("weight needs a weight (0-256 or N%), or --ramp-to to ramp");
    }
    const weight =
      weightText !== undefined ? parseWeight(weightText) : { to: ramp!.to, step: ramp!.step };
    request = { op, selector, weight, force };
  } else {
    if (weightText !== undefined) throw new UsageError(`unexpected argument ${weightText}`);
    request = { op, selector, force };
  }
  // A wait holds two runtime API connections and polls HAProxy: bounded, so that no run (an
  // operator's mistake or not) can hold the socket for days or poll it in a tight loop.
  const waitTimeoutMs = parseDuration(flags.waitTimeout ?? "10m", "--wait-timeout");
  const pollMs = parseDuration(flags.pollInterval ?? "500ms", "--poll-interval");
  if (waitTimeoutMs > 24 * 3_600_000)
    throw new UsageError(`--wait-timeout ${flags.waitTimeout} is over the limit of 24h`);
  if (pollMs < 100)
    throw new UsageError(`--poll-interval ${flags.pollInterval} is under the floor of 100ms`);
  if (ramp && ramp.everyMs > 24 * 3_600_000)
    throw new UsageError(`--every ${flags.every} is over the limit of 24h`);
  const killAfterMs = parseKillAfter(flags.killAfter);
  if (killAfterMs !== undefined && op !== "drain")
    throw new UsageError(`--kill-after is for drain (and server del), not ${op}`);
  return { request, ramp, waitTimeoutMs, pollMs, killAfterMs };
}

/**
 * `--kill-after <dur>`: how long a wait lets sessions finish before cutting them. Bounded like
 * --wait-timeout; 0 cuts at once.
 */
export function parseKillAfter(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = text.trim() === "0" ? 0 : parseDuration(text, "--kill-after");
  if (ms > 24 * 3_600_000) throw new UsageError(`--kill-after ${text} is over the limit of 24h`);
  return ms;
}
