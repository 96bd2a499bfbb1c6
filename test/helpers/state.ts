import { showServersState } from "../../src/commands/builders.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";

/**
 * Raw `show servers state`, minus the columns HAProxy changes on its own: time since last change
 * (ticks every second) and the health-check progress fields (srv_check_status .. srv_agent_state,
 * which flip while a check runs). Admin state, operational state and weights stay in, so two
 * snapshots are equal exactly when nothing was changed.
 */
export async function rawServersState(socketPath: string): Promise<string> {
  const socket = await connect({ kind: "unix", path: socketPath }, { connectTimeoutMs: 2000 });
  const s = RuntimeSession.start(socket, { target: "test", timeoutMs: 5000 });
  try {
    const lines = await s.run(showServersState());
    return lines
      .map((l) =>
        l
          .split(" ")
          .filter((_, i) => i < 9 || i > 14)
          .join(" "),
      )
      .join("\n");
  } finally {
    await s.close();
  }
}
