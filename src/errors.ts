/**
 * Every failure hapops reports is a HapopsError: a stable `code`, the exit code from DESIGN.md,
 * and a message that says what to do next. Only cli/main.ts turns these into a process exit.
 */
export const ExitCode = {
  ok: 0,
  refusedOrUnverified: 1,
  usage: 2,
  guard: 3,
  socket: 4,
  audit: 5,
  waitTimeout: 6,
  /** Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class HapopsError extends Error {
  abstract readonly code: string;
  abstract readonly exitCode: ExitCode;
  /** Extra fields for --json error output. */
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.details = details;
  }
}

/** Bad input or usage: nothing was sent. */
export class UsageError extends HapopsError {
  readonly code = "USAGE";
  readonly exitCode = ExitCode.usage;
}

/** A name or value that fails the runtime API grammar: nothing was sent. */
export class ValidationError extends HapopsError {
  readonly code = "INVALID_INPUT";
  readonly exitCode = ExitCode.usage;
}

/** The config file is missing, unreadable or does not match the schema. */
export class ConfigError extends HapopsError {
  readonly code = "CONFIG";
  readonly exitCode = ExitCode.usage;
}

/** Transport-level failures: the socket could not be reached or used. */
export class SocketError extends HapopsError {
  readonly exitCode = ExitCode.socket;
  constructor(
    readonly code:
      | "SOCKET_NOT_FOUND"
      | "NOT_A_SOCKET"
      | "HAPROXY_GONE"
      | "CONNECTION_REFUSED"
      | "SOCKET_PERMISSION"
      | "CONNECT_FAILED"
      | "TLS_FAILED"
      | "INSECURE_TCP",
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, details, options);
  }
}

export class TimeoutError extends HapopsError {
  readonly code = "TIMEOUT";
  readonly exitCode = ExitCode.socket;
}

/** The connection closed before the answer was complete. */
export class TruncatedResponseError extends HapopsError {
  readonly code = "RESPONSE_CUT_OFF";
  readonly exitCode = ExitCode.socket;
}

/** The peer does not speak the runtime API (garbage, or not an HAProxy stats socket). */
export class ProtocolError extends HapopsError {
  readonly code = "PROTOCOL";
  readonly exitCode = ExitCode.socket;
}

/** The socket's level is below what the command needs. */
export class LevelError extends HapopsError {
  readonly code = "LEVEL_TOO_LOW";
  readonly exitCode = ExitCode.socket;
}

/** HAProxy answered with a refusal; `haproxyMessage` keeps its exact words. */
export class HaproxyError extends HapopsError {
  readonly code = "HAPROXY_REFUSED";
  readonly exitCode = ExitCode.refusedOrUnverified;
  constructor(
    readonly command: string,
    readonly haproxyMessage: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, { command, haproxyMessage }, options);
  }
}

/** A bug in hapops itself. */
export class InternalError extends HapopsError {
  readonly code = "INTERNAL";
  readonly exitCode = ExitCode.refusedOrUnverified;
}

export function isHapopsError(e: unknown): e is HapopsError {
  return e instanceof HapopsError;
}

/** Refused by a safety guard or by policy: nothing was sent. */
export class GuardError extends HapopsError {
  readonly code = "GUARD";
  readonly exitCode = ExitCode.guard;
}

/** The machine lacks something hapops needs (the haproxy binary, openssl) or a process failed. */
export class EnvironmentError extends HapopsError {
  readonly code = "ENVIRONMENT";
  readonly exitCode = ExitCode.refusedOrUnverified;
}

/** The change was sent but HAProxy's state, read back, is not what the plan expected. */
export class VerificationError extends HapopsError {
  readonly code = "VERIFY_FAILED";
  readonly exitCode = ExitCode.refusedOrUnverified;
}

/**
 * HAProxy's own configuration does not pass `haproxy -c`: a reload is refused before anything is
 * sent. `lines` are HAProxy's words (its ALERT lines).
 */
export class HaproxyConfigError extends HapopsError {
  readonly code = "HAPROXY_CONFIG_INVALID";
  readonly exitCode = ExitCode.usage;
}

/**
 * A reload that did not bring up a new worker (the master answered Success=0, or counted a
 * failed reload, or no new worker came up in time); the old worker keeps serving.
 */
export class ReloadFailedError extends HapopsError {
  readonly code = "RELOAD_FAILED";
  readonly exitCode = ExitCode.refusedOrUnverified;
}

/** A wait (drain --wait) reached its deadline; the change itself stands. */
export class WaitTimeoutError extends HapopsError {
  readonly code = "WAIT_TIMEOUT";
  readonly exitCode = ExitCode.waitTimeout;
}

/** The operator pressed Ctrl-C during a wait or a ramp; what was done so far stands. */
export class InterruptedError extends HapopsError {
  readonly code = "INTERRUPTED";
  readonly exitCode = ExitCode.interrupted;
}

/** The audit log cannot be opened, written or synced: fail closed, nothing was sent. */
export class AuditError extends HapopsError {
  readonly code = "AUDIT_UNAVAILABLE";
  readonly exitCode = ExitCode.audit;
}

/** Refused by policy (who may run what) or by the sudo lock-down. */
export class PolicyError extends HapopsError {
  readonly code = "POLICY";
  readonly exitCode = ExitCode.guard;
}

/**
 * A result that is not an error but must set the exit code (certs --expiring finds certificates
 * inside the window): the output is already printed, so nothing more is said.
 */
export class ResultExit extends HapopsError {
  readonly code = "RESULT";
  readonly exitCode = ExitCode.refusedOrUnverified;
  readonly silent = true;
}

/**
 * `hapops shell` from a pipe ends with the exit code of its first failed line, which has already
 * said what went wrong.
 */
export class LineFailed extends HapopsError {
  readonly code = "LINE_FAILED";
  readonly silent = true;
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

/**
 * OpenSSL's error text reduced to what an operator can act on: "tlsv1 alert unknown ca" out of
 * "808C…:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/…:SSL alert
 * number 48".
 */
export function tlsReason(message: string): string {
  const alert = /(?:tlsv1|sslv3) alert ([a-z ]+)/i.exec(message);
  if (alert) {
    const what = alert[1]!.trim();
    const meaning: Record<string, string> = {
      "unknown ca": "the socket does not trust the CA that signed the client certificate",
      "bad certificate": "the socket refused the client certificate",
      "certificate required": "the socket wants a client certificate",
      "certificate expired": "a certificate has expired",
      "handshake failure": "no protocol or cipher both sides accept",
    };
    return `TLS alert "${what}"${meaning[what] ? `: ${meaning[what]}` : ""}`;
  }
  const routine = /SSL routines:[^:]*:([^:]+)/.exec(message);
  return routine ? routine[1]!.trim() : message.split("\n")[0]!;
}

/**
 * A change over many targets that did not end ok on every one: the exit code is the worst
 * target's, and the report lists every target (printed with the error under --json). Each
 * target's outcome is already in the audit log, under the run's id.
 */
export class FleetError extends HapopsError {
  readonly code = "FLEET";
  readonly recorded = true;
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly report: object,
  ) {
    super(message);
  }
}

/**
 * A read over many targets that some did not answer: the rows are from the others, and the
 * exit code (4) says the answer is partial. Under --json the output already says which.
 */
export class PartialError extends HapopsError {
  readonly code = "PARTIAL";
  readonly exitCode = ExitCode.socket;
  constructor(
    message: string,
    readonly silent: boolean,
  ) {
    super(message);
  }
}
