import type { Duplex } from "node:stream";
import {
  encodeCommand,
  lowerLevel,
  prompt,
  quit,
  setSeverityOutput,
  showCliLevel,
  type RuntimeCommand,
} from "../commands/builders.js";
import { describeLevels, sessionLevel } from "../commands/grammar.js";
import { isLevel, levelAtLeast, levelRank, type Level } from "../commands/levels.js";
import {
  HaproxyError,
  LevelError,
  ProtocolError,
  SocketError,
  TimeoutError,
  TruncatedResponseError,
  tlsReason,
  ValidationError,
  type HapopsError,
} from "../errors.js";
import { classifyResponse, isPermissionDenied, splitSeverity } from "./classify.js";
import { ResponseFramer, type ResponseShape } from "./framer.js";

export interface SessionOptions {
  /** Human name of the target, for messages. */
  readonly target: string;
  /** Longest silence while an answer is awaited. */
  readonly timeoutMs: number;
  /** What the user asked for ("hapops certs"), for level messages. */
  readonly purpose?: string;
  /** Milliseconds from some fixed point (injected by tests; Date.now by default). */
  readonly now?: () => number;
}

/**
 * Whether the consumer of a streamed answer can take more: undefined when it can, else a promise
 * that resolves once it can (stdout drained). Asked after each read from the socket that gave
 * the answer lines, so what is held between the socket and the consumer is one read's worth.
 */
export type Backpressure = () => Promise<void> | undefined;

export interface StreamOptions {
  /**
   * While it says wait, the socket is not read: HAProxy's output buffer fills and it stops
   * sending, and no answer timeout runs (the wait is the reader's, not HAProxy's).
   */
  readonly backpressure?: Backpressure | undefined;
}

/**
 * A wait for the reader of hapops' output at least this long, followed by the connection
 * closing mid-answer, is taken as its cause: HAProxy closes a CLI connection that takes no data
 * for its `stats timeout` (10 s by default, 30 s in Debian's config; measured on 2.6: the
 * connection is closed mid-answer once a client has read nothing for that long).
 */
export const SLOW_READER_MS = 1000;

/** Receives one response's lines as they arrive. */
interface Pending extends ResponseShape {
  readonly command: RuntimeCommand;
  /** Called with each line; the first line has its severity prefix removed. */
  onLine(line: string): void;
  resolve(): void;
  reject(e: HapopsError): void;
  started: boolean;
  /** Pass lines through untouched (handshake answers). */
  readonly raw: boolean;
  /** A refusal's lines, kept to build the error. */
  head: string[];
  severity?: number;
  refusal: boolean;
  /** Bytes of the command as written; counted in flight until its answer ends. */
  readonly bytes: number;
  readonly backpressure?: Backpressure | undefined;
}

/**
 * At most this many bytes of commands are written and unanswered at once. HAProxy reads a CLI
 * connection into one buffer (`tune.bufsize`, 16 KiB by default): 3.2.0 aborts the whole
 * process ("A bogus APPCTX is spinning") when about 20 KiB of `set server` lines arrive at once
 * (measured), and 2.6 drops the connection on a 20 KiB payload. A window well under the buffer
 * keeps every version safe and still pipelines (measured cost: see bench/).
 */
export const WINDOW_BYTES = 4096;

/** The longest command line (payload apart) hapops writes: HAProxy cannot take much more. */
export const MAX_LINE_BYTES = 8192;

/**
 * A prompt-mode runtime API session. Commands are pipelined: each is written as soon as it is
 * asked for and answers are matched to commands in order. The handshake (`prompt`,
 * `set severity-output number`, `show cli level`) goes out in the same write as the first
 * commands, so a one-shot read costs one round trip.
 */
export class RuntimeSession {
  private readonly queue: Pending[] = [];
  /** Commands queued behind the window, written in order as answers free room. */
  private readonly backlog: { readonly text: string; readonly pending: Pending }[] = [];
  private inFlight = 0;
  private readonly framer: ResponseFramer;
  private timer: NodeJS.Timeout | undefined;
  private failure: HapopsError | undefined;
  private closing = false;
  private corked = false;
  private promptOn = false;
  /** Level the socket gave this session, from `show cli level` in the handshake. */
  private openedAt: Level | undefined;
  /** Level this session lowered itself to with `user` / `operator`. */
  private lowered: Level | undefined;
  private readonly handshake: Promise<void>;
  /** The backpressure of the answer the socket read being handled gave lines to. */
  private fed: Backpressure | undefined;
  /** The socket is not read until the consumer has room (see StreamOptions). */
  private paused = false;
  /** The longest wait for a consumer so far, in ms (see SLOW_READER_MS). */
  private longestWait = 0;
  private readonly now: () => number;

  private constructor(
    private readonly socket: Duplex,
    private readonly opts: SessionOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.framer = new ResponseFramer({
      next: () => this.queue[0],
      line: (l) => this.onLine(l),
      end: () => this.onEnd(),
      unexpected: (l) =>
        this.fail(
          new ProtocolError(
            `unexpected text from ${opts.target} while no command was pending: ${JSON.stringify(l.slice(0, 80))}; is this an HAProxy runtime API socket?`,
          ),
        ),
    });
    socket.on("data", (chunk: Buffer) => {
      this.armTimer();
      this.framer.push(chunk);
      if (this.fed !== undefined) this.awaitRoom();
    });
    socket.on("end", () => this.onEof());
    socket.on("close", () => this.onEof());
    socket.on("error", (err: NodeJS.ErrnoException) => this.onError(err));
    this.handshake = this.startHandshake();
    // Rejections surface through the commands that follow; never leave this one unhandled.
    this.handshake.catch(() => undefined);
  }

  /** Start a session on an open stream. Resolves at once; the handshake is pipelined. */
  static start(stream: Duplex, opts: SessionOptions): RuntimeSession {
    return new RuntimeSession(stream, opts);
  }

  private async startHandshake(): Promise<void> {
    // The answer to `prompt` is empty; anything else means this is not a runtime API socket.
    const promptReply = this.enqueue(prompt(), () => this.notRuntimeApi(), true);
    this.promptOn = true;
    let first = true;
    const replies = [
      promptReply,
      this.collect(setSeverityOutput("number")),
      // Learnt as the line arrives, not after the handshake's awaits: a refusal of a command
      // pipelined behind it is then explained with the level the socket really has.
      this.enqueue(
        showCliLevel(),
        (line) => {
          const text = splitSeverity(line).text.trim();
          if (first && isLevel(text)) this.openedAt = text;
          first = false;
        },
        true,
      ),
    ] as const;
    // Attach handlers at once: a failure rejects all three, and only the first is reported.
    for (const r of replies) r.catch(() => undefined);
    await replies[0];
    await replies[1].catch(() => undefined);
    await replies[2];
  }

  private notRuntimeApi(): void {
    this.fail(
      new ProtocolError(
        `${this.opts.target} did not answer like an HAProxy runtime API socket (unexpected text in reply to "prompt"); check the socket path or address`,
      ),
    );
  }

  /** The session's current level, once the handshake is done (undefined on HAProxy < 2.x). */
  async level(): Promise<Level | undefined> {
    await this.handshake;
    return this.effectiveLevel();
  }

  /** Level of the socket itself, before this session lowered it. */
  async socketLevel(): Promise<Level | undefined> {
    await this.handshake;
    return this.openedAt;
  }

  private effectiveLevel(): Level | undefined {
    const opened = this.openedAt;
    const lowered = this.lowered;
    if (opened === undefined) return lowered;
    if (lowered === undefined) return opened;
    return levelRank(lowered) < levelRank(opened) ? lowered : opened;
  }

  /**
   * Lower the session to `to` when it is above it, so that a read-only command cannot change
   * anything even if hapops had a bug. `user` is always allowed and is queued at once, without
   * waiting for the handshake; `operator` waits to learn the socket's level.
   */
  lowerTo(to: Exclude<Level, "admin">): Promise<void> {
    if (to === "user") {
      this.lowered = "user";
      return this.collect(lowerLevel("user")).then(() => undefined);
    }
    return this.handshake.then(async () => {
      const now = this.effectiveLevel();
      if (now === undefined || levelRank(now) <= levelRank(to)) return;
      this.lowered = to;
      await this.collect(lowerLevel(to));
    });
  }

  /**
   * Send a command and return its answer's lines (severity prefix removed). A user-level
   * command is written at once; others first wait for the handshake to check the level.
   */
  run(command: RuntimeCommand): Promise<string[]> {
    return this.whenAllowed(command, () => this.collect(command));
  }

  /** Send several commands in one write; answers come back in the same order. */
  pipeline(commands: readonly RuntimeCommand[]): Promise<string[][]> {
    const needsCheck = commands.some((c) => c.spec.level !== "user");
    if (!needsCheck) return Promise.all(commands.map((c) => this.collect(c)));
    return this.handshake.then(() => {
      for (const c of commands) this.assertLevel(c);
      return Promise.all(commands.map((c) => this.collect(c)));
    });
  }

  /**
   * Send a command and hand each line of the answer to `onLine` as it arrives, so that a
   * `show table` of a million entries is never held in memory as text; with `backpressure`,
   * nor held as output a slow reader has not taken yet.
   */
  stream(
    command: RuntimeCommand,
    onLine: (line: string) => void,
    opts: StreamOptions = {},
  ): Promise<void> {
    return this.whenAllowed(command, () => this.enqueue(command, onLine, false, opts.backpressure));
  }

  private whenAllowed<T>(command: RuntimeCommand, send: () => Promise<T>): Promise<T> {
    if (command.spec.level === "user") return send();
    return this.handshake.then(() => {
      this.assertLevel(command);
      return send();
    });
  }

  private assertLevel(command: RuntimeCommand): void {
    const have = this.effectiveLevel();
    if (have !== undefined && !levelAtLeast(have, command.spec.level))
      throw this.levelError(command);
  }

  /** Say goodbye and close; safe to call more than once. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.clearTimer();
    if (this.failure || this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      this.socket.once("close", done);
      this.socket.end(encodeCommand(quit()));
      // A peer that ignores `quit` must not keep the process alive.
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, this.opts.timeoutMs).unref();
    });
  }

  private levelError(command: RuntimeCommand): LevelError {
    const need = command.spec.level;
    const have = this.effectiveLevel();
    const purpose = this.opts.purpose
      ? `${this.opts.purpose} (${command.spec.words})`
      : `"${command.spec.words}"`;
    const socketLevel = this.openedAt ?? have;
    const levelText =
      socketLevel === undefined ? "below what it needs" : `at level '${socketLevel}'`;
    // HAProxy said "Permission denied" although the least level the grammar knows is met: this
    // version asks for more. Either the grammar knows it (3.4 wants admin for map and ACL
    // commands, measured), or this version was never measured and wants more than any did.
    if (have !== undefined && levelAtLeast(have, need)) {
      const known = sessionLevel(command.spec);
      const more = levelRank(known) > levelRank(have) ? known : "admin";
      const why =
        more === known
          ? `it needs ${describeLevels(command.spec)}`
          : `this HAProxy version needs a higher level for it than the ${describeLevels(command.spec)} measured on 2.4 to 3.4`;
      return new LevelError(
        `HAProxy answered "Permission denied" to ${purpose} at level '${have}': ${why} — use a socket whose \`stats socket\` line has \`level ${more}\``,
        { target: this.opts.target, level: have, needs: more, command: command.line },
      );
    }
    return new LevelError(
      `socket ${this.opts.target} is ${levelText}; ${purpose} needs '${need}' — use a socket whose \`stats socket\` line has \`level ${need}\` or higher`,
      { target: this.opts.target, level: socketLevel, needs: need, command: command.line },
    );
  }

  private collect(command: RuntimeCommand, opts: { raw?: boolean } = {}): Promise<string[]> {
    const lines: string[] = [];
    return this.enqueue(command, (l) => lines.push(l), opts.raw ?? false).then(() => lines);
  }

  private enqueue(
    command: RuntimeCommand,
    onLine: (line: string) => void,
    raw: boolean,
    backpressure?: Backpressure,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const text = encodeCommand(command);
    if (Buffer.byteLength(command.line) > MAX_LINE_BYTES)
      return Promise.reject(
        new ValidationError(
          `a command of ${Buffer.byteLength(command.line)} bytes is longer than HAProxy's CLI can take (${MAX_LINE_BYTES}); nothing was sent`,
        ),
      );
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        command,
        promptBefore: this.promptOn && command.name !== "prompt",
        payloadPrompts: command.payload !== undefined,
        unterminated: command.spec.unterminated === true,
        onLine,
        resolve,
        reject,
        raw,
        started: false,
        head: [],
        refusal: false,
        bytes: Buffer.byteLength(text),
        backpressure,
      };
      this.queue.push(pending);
      this.armTimer();
      // The first command always goes; others wait while the window is full.
      if (
        this.backlog.length === 0 &&
        (this.inFlight === 0 || this.inFlight + pending.bytes <= WINDOW_BYTES)
      ) {
        this.inFlight += pending.bytes;
        this.write(text);
      } else this.backlog.push({ text, pending });
    });
  }

  /** An answer ended: its bytes leave the window, and what waited behind it goes out. */
  private release(p: Pending): void {
    this.inFlight -= p.bytes;
    while (this.backlog.length > 0) {
      const next = this.backlog[0]!;
      if (this.inFlight > 0 && this.inFlight + next.pending.bytes > WINDOW_BYTES) break;
      this.backlog.shift();
      this.inFlight += next.pending.bytes;
      this.write(next.text);
    }
  }

  /**
   * Commands asked for in the same tick go out in one write (cork until the next tick): one
   * syscall for a 1,000-command pipeline, and a peer that answers and hangs up at once cannot
   * make a later part of the write fail with EPIPE before its answer is read.
   */
  private write(text: string): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(text);
  }

  private onLine(line: string): void {
    const p = this.queue[0];
    if (!p) return;
    if (p.raw) {
      p.onLine(line);
      return;
    }
    if (!p.started) {
      p.started = true;
      const c = classifyResponse([line]);
      if (c.severity !== undefined) p.severity = c.severity;
      p.refusal = c.error;
      line = c.lines[0] ?? "";
    }
    if (p.refusal) p.head.push(line);
    else {
      if (p.backpressure !== undefined) this.fed = p.backpressure;
      p.onLine(line);
    }
  }

  /**
   * After a socket read that gave a streamed answer lines: while its consumer has no room, stop
   * reading (net.Socket stops reading the fd once its own small buffer is full) and stop the
   * answer timeout; HAProxy waits for room in its turn. Reading resumes when the consumer has
   * room.
   */
  private awaitRoom(): void {
    const hook = this.fed!;
    this.fed = undefined;
    if (this.failure) return;
    const wait = hook();
    if (wait === undefined) return;
    this.paused = true;
    this.clearTimer();
    this.socket.pause();
    const since = this.now();
    const resume = () => {
      this.paused = false;
      this.longestWait = Math.max(this.longestWait, this.now() - since);
      if (this.failure) return;
      this.armTimer();
      this.socket.resume();
    };
    wait.then(resume, resume);
  }

  private onEnd(): void {
    const p = this.queue.shift();
    if (!p) return;
    this.release(p);
    if (this.queue.length === 0) this.clearTimer();
    else this.armTimer();
    if (!p.refusal) {
      p.resolve();
      return;
    }
    const message = p.head.join("\n");
    if (isPermissionDenied(message) || this.isLevelSymptom(p.command, message)) {
      p.reject(this.levelError(p.command));
      return;
    }
    const firstLine = p.head[0] ?? "";
    p.reject(
      new HaproxyError(
        p.command.line,
        message,
        /^Unknown command/.test(firstLine)
          ? unknownCommand(p.command)
          : `HAProxy refused "${p.command.line}": ${firstLine}`,
      ),
    );
  }

  /**
   * Some commands do not say "Permission denied" below their level: `show ssl cert` at user
   * level answers "Can't allocate memory!" (measured on 2.6 and 3.2).
   */
  private isLevelSymptom(command: RuntimeCommand, message: string): boolean {
    if (command.spec.level === "user" || !/^Can't allocate memory/.test(message)) return false;
    const have = this.effectiveLevel();
    return have === undefined || !levelAtLeast(have, command.spec.level);
  }

  private onEof(): void {
    if (this.failure) return;
    if (this.queue.length === 0) {
      // Closed while idle (HAProxy restarted, or its idle timeout passed): later commands
      // fail at once with this, rather than waiting for a timeout on a dead socket.
      if (!this.closing)
        this.failure = new TruncatedResponseError(
          `${this.opts.target} closed the connection while it was idle (HAProxy restarted, or \`stats timeout\` / \`set timeout cli\` elapsed)`,
          { target: this.opts.target },
        );
      return;
    }
    const p = this.queue[0]!;
    const where = this.framer.midResponse
      ? `in the middle of the answer to "${p.command.line}"`
      : `before answering "${p.command.line}"`;
    if (this.longestWait >= SLOW_READER_MS) {
      this.fail(this.slowReaderError(p, where));
      return;
    }
    this.fail(
      new TruncatedResponseError(
        `${this.opts.target} closed the connection ${where} (${this.framer.received} bytes received); HAProxy may have restarted or hit \`stats timeout\` — run the command again`,
        { target: this.opts.target, command: p.command.line },
      ),
    );
  }

  private onError(err: NodeJS.ErrnoException): void {
    if (err.code === "EPIPE" || err.code === "ECONNRESET") {
      const p = this.queue[0];
      if (p && this.longestWait >= SLOW_READER_MS) {
        this.fail(
          this.slowReaderError(p, `(${err.code}) during the answer to "${p.command.line}"`),
        );
        return;
      }
      this.fail(
        new TruncatedResponseError(
          `${this.opts.target} closed the connection (${err.code}) before answering "${p?.command.line ?? "?"}" (${this.framer.received} bytes received); is it an HAProxy runtime API socket, and did HAProxy restart?`,
          { target: this.opts.target, errno: err.code },
        ),
      );
      return;
    }
    const tls = /SSL|TLS|alert|certificate/i.test(err.message);
    this.fail(
      new SocketError(
        tls ? "TLS_FAILED" : "CONNECT_FAILED",
        tls
          ? `TLS session with ${this.opts.target} failed: ${tlsReason(err.message)} (is the client certificate signed by the CA in the socket's \`ca-file\`?)`
          : `connection to ${this.opts.target} failed: ${err.message}`,
        { target: this.opts.target, errno: err.code },
        { cause: err },
      ),
    );
  }

  /**
   * The connection was cut after hapops had waited for its reader: the likely cause is HAProxy's
   * `stats timeout`, which closes a CLI connection that takes nothing for that long.
   */
  private slowReaderError(p: Pending, where: string): TruncatedResponseError {
    const waited = Math.round(this.longestWait / 100) / 10;
    return new TruncatedResponseError(
      `${this.opts.target} closed the connection ${where} after hapops had waited ${waited} s for its output to be read: the output was read too slowly (HAProxy closes a CLI connection that takes no data for its \`stats timeout\`); write it to a file first, or raise \`stats timeout\``,
      {
        target: this.opts.target,
        command: p.command.line,
        waitedMs: Math.round(this.longestWait),
      },
    );
  }

  private fail(e: HapopsError): HapopsError {
    if (this.failure) return this.failure;
    this.failure = e;
    this.clearTimer();
    const pending = this.queue.splice(0);
    this.backlog.length = 0;
    for (const p of pending) p.reject(e);
    this.socket.destroy();
    return e;
  }

  private armTimer(): void {
    this.clearTimer();
    if (this.queue.length === 0 || this.closing || this.paused) return;
    this.timer = setTimeout(() => {
      const p = this.queue[0];
      this.fail(
        new TimeoutError(
          `${this.opts.target} did not answer "${p?.command.line ?? "?"}" within ${this.opts.timeoutMs} ms; HAProxy may be overloaded or stuck (--timeout raises the limit)`,
          { target: this.opts.target, command: p?.command.line },
        ),
      );
    }, this.opts.timeoutMs);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * "Unknown command, but maybe one of the following ones is a better match:" and a list: this
 * HAProxy has no such command. Say which and why it may be, not HAProxy's suggestions (measured:
 * 2.4.0 built without OpenSSL answers so to `show ssl cert`).
 */
function unknownCommand(command: RuntimeCommand): string {
  const words = command.spec.words;
  return / ssl /.test(` ${words} `)
    ? `this HAProxy does not know "${words}" (Unknown command): it was built without TLS (OpenSSL), so it has no certificates to show or change; run this against a build with TLS`
    : `this HAProxy does not know "${words}" (Unknown command): its version is older than the command, or it was built without the feature; see hapops info for the version`;
}
