import type { Settings } from "../config/settings.js";
import { SocketError, TimeoutError, TruncatedResponseError } from "../errors.js";
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

/**
 * After an answer timed out or the connection was cut: is HAProxy still there? A process that
 * died under a command (3.2.0 aborted on a flood of pipelined lines) leaves a socket that
 * refuses connections, and the operator must hear that, not only "did not answer".
 */
export async function explainLostAnswer(settings: Settings, e: unknown): Promise<unknown> {
  if (!(e instanceof TimeoutError || e instanceof TruncatedResponseError)) return e;
  try {
    const socket = await connect(settings.target, {
      connectTimeoutMs: Math.min(1000, settings.connectTimeoutMs),
      tls: settings.tls,
      insecureTcp: settings.insecureTcp,
    });
    socket.destroy();
    return e;
  } catch (probe) {
    if (!(probe instanceof SocketError)) return e;
    return new SocketError(
      "HAPROXY_GONE",
      `${e.message}; and ${settings.targetText} now refuses connections: HAProxy stopped or died during the command (check its logs and state before trying again)`,
      { ...e.details, probe: probe.code },
      { cause: e },
    );
  }
}
