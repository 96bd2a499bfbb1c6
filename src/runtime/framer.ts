import { StringDecoder } from "node:string_decoder";

/** What the framer needs to know about the response it is about to read. */
export interface ResponseShape {
  /** Prompt mode was on when the command was sent: its answer starts with "> ". */
  readonly promptBefore: boolean;
  /** The command had a payload: in prompt mode HAProxy echoes "+ " per payload line. */
  readonly payloadPrompts: boolean;
  /**
   * The answer may end without its empty line: before 3.0, `add server` and `del server` print
   * some messages without their own newline ("Server deleted.", "Backend must use a dynamic
   * load balancing..."), so in prompt mode the next prompt follows at once ("Server
   * deleted.\n> "; measured on 2.4, 2.6 and 2.8). With promptBefore, a line that starts with
   * "> ", or a lone "> " left at the end of what arrived, then ends the answer.
   */
  readonly unterminated?: boolean;
}

export interface FrameHandler {
  /** The shape of the next expected response, or undefined when nothing is pending. */
  next(): ResponseShape | undefined;
  line(text: string): void;
  end(): void;
  /** Text arrived while no response was pending. */
  unexpected(text: string): void;
}

/**
 * Splits the CLI's byte stream into responses. "haproxy uses the empty line as a delimiter to
 * mark an end of output for each command, and takes care of ensuring that no command can emit
 * an empty line on output" (management.txt 9.3). In prompt mode each answer is preceded by
 * "> ", and by one "+ " per payload line. Lines are handed on one by one, so a large answer
 * is never held here.
 */
export class ResponseFramer {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private inResponse = false;
  /** The shape of the answer being read. */
  private current: ResponseShape | undefined;
  private bytes = 0;

  constructor(private readonly handler: FrameHandler) {}

  /** Bytes received so far (for error messages). */
  get received(): number {
    return this.bytes;
  }

  /** Whether a response has started but not ended, or an incomplete line is buffered. */
  get midResponse(): boolean {
    return this.inResponse;
  }

  /** Unterminated text at the end of the stream (normally "" or the final "> "). */
  get pending(): string {
    return this.partial;
  }

  push(chunk: Buffer | string): void {
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    const text = this.partial + (typeof chunk === "string" ? chunk : this.decoder.write(chunk));
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (nl < 0) break;
      this.take(text.slice(start, nl));
      start = nl + 1;
    }
    this.partial = start === 0 ? text : text.slice(start);
    // The prompt of the next command: an answer without its empty line is over.
    if (this.partial === "> " && this.unterminated()) this.finish();
  }

  private unterminated(): boolean {
    return this.inResponse && this.current?.unterminated === true && this.current.promptBefore;
  }

  private finish(): void {
    this.inResponse = false;
    this.current = undefined;
    this.handler.end();
  }

  private take(raw: string): void {
    let line = raw;
    if (line.startsWith("> ") && this.unterminated()) this.finish();
    if (!this.inResponse) {
      const shape = this.handler.next();
      if (shape === undefined) {
        this.handler.unexpected(line);
        return;
      }
      if (shape.promptBefore && line.startsWith("> ")) line = line.slice(2);
      if (shape.payloadPrompts) while (line.startsWith("+ ")) line = line.slice(2);
      this.inResponse = true;
      this.current = shape;
    }
    if (line.length === 0) {
      this.finish();
      return;
    }
    this.handler.line(line);
  }
}
