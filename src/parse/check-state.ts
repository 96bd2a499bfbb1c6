import { ProtocolError } from "../errors.js";

/** Which of a server's two checks: the health check (`check`) or the agent (`agent-check`). */
export type CheckKind = "health" | "agent";

export interface CheckFlag {
  readonly bit: number;
  readonly name: string;
  readonly meaning: string;
}

/**
 * The CHK_ST_* bits `show servers state` prints as `srv_check_state` and `srv_agent_state`
 * (include/haproxy/check-t.h). dump_servers_state() (src/proxy.c) prints `check.state & 0x0F`
 * and `agent.state & 0x1F`, so only these bits appear; the same in 2.4 to 3.4. Measured on 2.6,
 * 2.8, 3.0, 3.2 and 3.4: a server with `check` reads 6, and 2 once `disable health` ran; one
 * with `agent-check` reads 22 for its agent, 18 once `disable agent` ran; a server without the
 * check reads 0. `disable health|agent` clears ENABLED only, and HAProxy refuses to enable a
 * check that is not CONFIGURED ("Health check was not configured on this server, cannot
 * enable.", "Agent was not configured on this server, cannot enable.").
 */
export const CHECK_FLAGS: readonly CheckFlag[] = [
  { bit: 0x01, name: "INPROGRESS", meaning: "a check is running right now" },
  { bit: 0x02, name: "CONFIGURED", meaning: "configured (check or agent-check on the server)" },
  { bit: 0x04, name: "ENABLED", meaning: "enabled (not stopped by disable health|agent)" },
  { bit: 0x08, name: "PAUSED", meaning: "paused while the server is in maintenance" },
  { bit: 0x10, name: "AGENT", meaning: "an agent check" },
];

const CONFIGURED = 0x02;
const ENABLED = 0x04;
const PAUSED = 0x08;

/** What operators ask of a check: is it there, and is it on. */
export type CheckStatus = "enabled" | "disabled" | "not configured";

export interface CheckState {
  readonly bits: number;
  readonly flags: readonly string[];
  readonly configured: boolean;
  readonly enabled: boolean;
  /** Health checks pause while the server is in maintenance (enabled all the same). */
  readonly paused: boolean;
  readonly status: CheckStatus;
}

export function decodeCheckState(bits: number): CheckState {
  const flags = CHECK_FLAGS.filter((f) => (bits & f.bit) !== 0).map((f) => f.name);
  const configured = (bits & CONFIGURED) !== 0;
  const enabled = configured && (bits & ENABLED) !== 0;
  return {
    bits,
    flags,
    configured,
    enabled,
    paused: (bits & PAUSED) !== 0,
    status: !configured ? "not configured" : enabled ? "enabled" : "disabled",
  };
}

const COLUMN: Readonly<Record<CheckKind, string>> = {
  health: "srv_check_state",
  agent: "srv_agent_state",
};

/**
 * A server's health or agent check state from its `show servers state` row (the parsed row's
 * `fields`, by column name). A row without the column, or with something other than a number in
 * it, is not an answer hapops can verify a check change against.
 */
export function checkStateOf(
  fields: Readonly<Record<string, string>>,
  kind: CheckKind,
): CheckState {
  const column = COLUMN[kind];
  const value = fields[column];
  if (value === undefined)
    throw new ProtocolError(`show servers state has no ${column} column`, { column });
  if (!/^\d+$/.test(value))
    throw new ProtocolError(`show servers state column ${column} is not a number: ${value}`, {
      column,
      value,
    });
  return decodeCheckState(Number(value));
}
