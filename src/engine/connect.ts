import type { Settings } from "../config/settings.js";
import { RuntimeSession } from "../runtime/session.js";
import { connect } from "../transport/connect.js";

/** Open a session to the configured target, run `fn`, and always close the connection. */
export async function withSession<T>(
  settings: Settings,
  purpose: string,
  fn: (session: RuntimeSession) => Promise<T>,
): Promise<T> {
  const socket = await connect(settings.target, {
    connectTimeoutMs: settings.connectTimeoutMs,
    tls: settings.tls,
    insecureTcp: settings.insecureTcp,
  });
  const session = RuntimeSession.start(socket, {
    target: settings.targetText,
    timeoutMs: settings.commandTimeoutMs,
    purpose,
  });
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}
