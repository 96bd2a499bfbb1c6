import { ProtocolError } from "../errors.js";

/**
 * `show errors` (management.txt 9.3; cli_io_handler_show_errors in src/proxy.c): the last
 * invalid request each frontend saw and the last invalid response each backend saw, with the
 * buffer HAProxy kept. Measured the same on 2.6, 2.8, 3.0, 3.2 and 3.4:
 *
 *   Total events captured on [02/Dec/2026:10:18:28.124] : 1
 *    (a line of one space)
 *   [02/Dec/2026:10:18:27.823] frontend fe_http (#2): invalid request
 *     backend <NONE> (#-1), server <NONE> (#-1), event #0, src 127.0.0.1:34470
 *     buffer starts at 0 (including 0 out), 16329 free,
 *     len 55, wraps at 16336, error at position 41
 *     H1 connection flags 0x00000100, H1 stream flags 0x00000810     (the mux's own lines)
 *     ...
 *     (a line of two spaces)
 *     00000  GET /bad HTTP/1.1\r\n
 *     00019  Host: example.com\r\n
 *
 * An invalid response is headed `backend <name> (#id): invalid response`, then `frontend ...`.
 * Buffer lines are `<offset>  <text>`, and `<offset>+ <text>` continues a line cut at 79
 * columns; the text escapes \t \n \r \e \\ and other bytes as \xNN.
 */

export interface BufferLine {
  readonly offset: number;
  /** As HAProxy printed it (escaped). */
  readonly text: string;
  /** This line continues the one before (a line cut at 79 columns). */
  readonly continued: boolean;
}

export interface ErrorEvent {
  /** When HAProxy captured it, as printed ("02/Dec/2026:10:18:27.823", local time). */
  readonly when: string;
  /** request: a frontend's invalid request; response: a backend's invalid response. */
  readonly direction: "request" | "response";
  /** The proxy that kept it: the frontend (request) or backend (response). */
  readonly proxy: string;
  readonly proxyId: number;
  /** The other side: the backend of a request, the frontend of a response; undefined: <NONE>. */
  readonly other: string | undefined;
  readonly server: string | undefined;
  readonly event: number;
  /** `src` as printed ("127.0.0.1:34470"). */
  readonly source: string;
  readonly length: number | undefined;
  /** Where in the buffer the error is (`error at position N`). */
  readonly errorAt: number | undefined;
  /** The mux's lines between the header and the buffer (H1 flags and states). */
  readonly details: readonly string[];
  readonly buffer: readonly BufferLine[];
  /** HAProxy's "update detected on this snapshot, dump interrupted" warning, when given. */
  readonly warning?: string;
}

export interface ErrorsAnswer {
  /** When HAProxy answered ("Total events captured on [...]"). */
  readonly capturedAt: string;
  /** Events since HAProxy started (error_snapshot_id), not those still kept. */
  readonly total: number;
  readonly events: readonly ErrorEvent[];
}

const TOTAL = /^Total events captured on \[([^\]]+)\] : (\d+)$/;
const HEAD = /^\[([^\]]+)\] (frontend|backend) (\S+) \(#(-?\d+)\): invalid (request|response)$/;
const SIDES =
  /^ {2}(?:backend|frontend) (\S+) \(#-?\d+\), server (\S+) \(#-?\d+\), event #(\d+), src (\S*)$/;
const LENGTH = /^ {2}len (\d+), wraps at \d+, error at position (\d+)$/;
const BUFFER = /^ {2}(\d{5,})([+ ]) (.*)$/;

interface Building {
  when: string;
  direction: "request" | "response";
  proxy: string;
  proxyId: number;
  other: string | undefined;
  server: string | undefined;
  event: number;
  source: string;
  length: number | undefined;
  errorAt: number | undefined;
  details: string[];
  buffer: BufferLine[];
  warning?: string;
  /** Past the header's blank line: what follows is the buffer. */
  inBuffer: boolean;
}

const orNone = (v: string | undefined) => (v === undefined || v === "<NONE>" ? undefined : v);

/** Throws ProtocolError when the text is not a `show errors` answer. */
export function parseErrors(lines: readonly string[]): ErrorsAnswer {
  const head = TOTAL.exec(lines[0] ?? "");
  if (!head)
    throw new ProtocolError('not a show errors answer: no "Total events captured" line', {
      line: (lines[0] ?? "").slice(0, 200),
    });
  const events: ErrorEvent[] = [];
  let cur: Building | undefined;
  const flush = () => {
    if (!cur) return;
    const { inBuffer, ...event } = cur;
    void inBuffer;
    events.push(event);
    cur = undefined;
  };
  for (const line of lines.slice(1)) {
    const h = HEAD.exec(line);
    if (h) {
      flush();
      cur = {
        when: h[1]!,
        direction: h[5] === "request" ? "request" : "response",
        proxy: h[3]!,
        proxyId: Number(h[4]),
        other: undefined,
        server: undefined,
        event: 0,
        source: "",
        length: undefined,
        errorAt: undefined,
        details: [],
        buffer: [],
        inBuffer: false,
      };
      continue;
    }
    if (!cur || line.trim().length === 0) {
      if (cur && line.length > 0) cur.inBuffer = true;
      continue;
    }
    if (line.includes("WARNING! update detected on this snapshot")) {
      cur.warning = line.trim();
      continue;
    }
    const sides = SIDES.exec(line);
    if (sides && cur.source === "") {
      cur.other = orNone(sides[1]);
      cur.server = orNone(sides[2]);
      cur.event = Number(sides[3]);
      cur.source = sides[4]!;
      continue;
    }
    const len = LENGTH.exec(line);
    if (len && !cur.inBuffer) {
      cur.length = Number(len[1]);
      cur.errorAt = Number(len[2]);
      continue;
    }
    const buf = cur.inBuffer ? BUFFER.exec(line) : undefined;
    if (buf) {
      cur.buffer.push({ offset: Number(buf[1]), text: buf[3]!, continued: buf[2] === "+" });
      continue;
    }
    if (!cur.inBuffer && !line.startsWith("  buffer starts at")) cur.details.push(line.trim());
  }
  flush();
  return { capturedAt: head[1]!, total: Number(head[2]), events };
}

/** The bytes an escaped buffer line stands for (dump_text_line in src/tools.c, reversed). */
export function unescapeBuffer(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|[tnre\\])/g, (_, e: string) => {
    switch (e) {
      case "t":
        return "\t";
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "e":
        return "\x1b";
      case "\\":
        return "\\";
      default:
        return String.fromCharCode(parseInt(e.slice(1), 16));
    }
  });
}

/**
 * The buffer line that holds the error, and the offending character (escaped as HAProxy would
 * print it), or undefined when the buffer does not reach it.
 */
export function errorLine(
  e: ErrorEvent,
): { line: BufferLine; char: string; column: number } | undefined {
  if (e.errorAt === undefined) return undefined;
  const line = [...e.buffer].reverse().find((l) => l.offset <= e.errorAt!);
  if (!line) return undefined;
  const column = e.errorAt - line.offset;
  const bytes = unescapeBuffer(line.text);
  if (column >= bytes.length) return undefined;
  const c = bytes[column]!;
  const code = c.charCodeAt(0);
  const char =
    c === "\t"
      ? "\\t"
      : c === "\n"
        ? "\\n"
        : c === "\r"
          ? "\\r"
          : c === "\\"
            ? "\\\\"
            : code < 0x20 || code > 0x7e
              ? `\\x${code.toString(16).padStart(2, "0")}`
              : c;
  return { line, char, column };
}
