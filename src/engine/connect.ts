import type { Settings } from "../config/settings.js";
import { RuntimeSession } from "../runtime/session.js";
import { connect } from "../transport/connect.js";

/** Connect to the configured target and start a session (its handshake is pipelined). */
export async function openSession(settings: Settings, purpose: string): Promise<RuntimeSession> {
  const socket = await connect(settings.target, {
    connectTimeoutMs: settings.connectTimeoutMs,
    tls: settings.tls,
    insecureTcp: settings.insecureTcp,
  });
  return RuntimeSession.start(socket, {
    target: settings.targetText,
    timeoutMs: settings.commandTimeoutMs,
    purpose,
  });
}

/** Open a session, run `fn`, and always close the connection. */
export async function withSession<T>(
  settings: Settings,
  purpose: string,
  fn: (session: RuntimeSession) => Promise<T>,
): Promise<T> {
  const session = await openSession(settings, purpose);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}
