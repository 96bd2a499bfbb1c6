/**
 * Telling HAProxy's refusals from its answers. Errors are plain text, not status codes; with
 * `set severity-output number` messages start with "[N]: " (3 = error, 6 = info), but an
 * unknown command still comes back as "[6]: Unknown command..." (DESIGN.md), so known refusal
 * texts are recognised too, with or without a prefix.
 */
export interface Classified {
  /** Severity from the "[N]: " prefix, when present (syslog numbering: 0 emerg .. 7 debug). */
  readonly severity?: number;
  /** Lines with the prefix removed from the first one. */
  readonly lines: readonly string[];
  readonly error: boolean;
}

const SEVERITY_RE = /^\[([0-7])\]: ?/;

/** Starts of HAProxy refusal messages (2.4-3.2), as printed by the CLI handlers. */
const REFUSALS: readonly string[] = [
  "Permission denied",
  "Unknown command",
  "Can't allocate memory",
  "Can't find backend",
  "Can't find frontend",
  "Can't find proxy",
  "No such backend",
  "No such frontend",
  "No such proxy",
  "No such server",
  "No such table",
  "Unknown table",
  "Require ",
  "Requires ",
  "Invalid ",
  "Missing ",
  "Unknown ",
  "Unable to ",
  "Can't ",
  "Cannot ",
  "Failed ",
  "Error ",
  "Absolute weight can only be",
  "Relative weight can only be",
  "Backend is using a static LB algorithm",
  "Only IPv4 or IPv6",
  "No ongoing transaction",
  "Operation already in progress",
  "Another transaction",
  "Busy",
  "This command is restricted",
  "Value out of range",
  "'set ssl cert' expects",
  "'commit ssl cert' expects",
  "unable to",
  "error:",
];

export function splitSeverity(line: string): { severity?: number; text: string } {
  const m = SEVERITY_RE.exec(line);
  if (!m) return { text: line };
  return { severity: Number(m[1]), text: line.slice(m[0].length) };
}

export function isRefusalText(text: string): boolean {
  return REFUSALS.some((r) => text.startsWith(r));
}

export function classifyResponse(lines: readonly string[]): Classified {
  const first = lines[0];
  if (first === undefined) return { lines, error: false };
  const { severity, text } = splitSeverity(first);
  const rest = [text, ...lines.slice(1)];
  if (severity !== undefined) {
    const error = severity <= 3 || isRefusalText(text);
    return { severity, lines: rest, error };
  }
  return { lines: rest, error: isRefusalText(text) };
}

/** "Permission denied" is HAProxy's only answer to a command above the session's level. */
export function isPermissionDenied(text: string): boolean {
  return text.startsWith("Permission denied");
}
