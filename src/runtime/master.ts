import type { Duplex } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { encodeCommand, type RuntimeCommand } from "../commands/builders.js";
import { HaproxyError, LevelError, TimeoutError, type HapopsError } from "../errors.js";
import { classifyResponse, isPermissionDenied } from "./classify.js";

export interface MasterExchangeOptions {
  /** Human name of the master socket, for messages. */
  readonly target: string;
  /** Longest silence while the answer is awaited. */
  readonly timeoutMs: number;
}

/**
 * One command to the master CLI on one connection, in its non-interactive mode: the command, then
 * end of input; the master answers and closes. One connection per command because the master
 * closes the connection by itself after some answers: on 2.6 `reload` closes it at once (the
 * master re-executes itself), and "Can't find the target PID matching the prefix" ends the
 * session with no empty line after it (measured on 2.6 to 3.4). The answer is every line up to
 * the close, without the empty line(s) that end it.
 *
 * The session is not lowered first, unlike reads on a worker socket: on 3.0.0 the master CLI
 * mis-reads the line after `operator` or `user` (no answer at all in non-interactive mode;
 * "Unknown command: 'w'" for `show proc` in prompt mode, measured). The builders are the only
 * source of these lines, and the reads among them change nothing.
 */
export function masterExchange(
  stream: Duplex,
  command: RuntimeCommand,
  opts: MasterExchangeOptions,
): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const decoder = new StringDecoder("utf8");
    let text = "";
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (e?: HapopsError) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      stream.destroy();
      if (e) {
        reject(e);
        return;
      }
      text += decoder.end();
      const lines = text.split("\n");
      while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
      const refusal = refusalOf(command, lines, opts);
      if (refusal) reject(refusal);
      else resolve(lines);
    };
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(
        () =>
          finish(
            new TimeoutError(
              `the master CLI ${opts.target} did not finish answering "${command.line}" within ${opts.timeoutMs} ms (--timeout raises the limit)`,
              { target: opts.target, command: command.line },
            ),
          ),
        opts.timeoutMs,
      );
    };
    stream.on("data", (chunk: Buffer) => {
      arm();
      text += decoder.write(chunk);
    });
    stream.once("end", () => finish());
    stream.once("close", () => finish());
    // A reset after the answer (the master re-executing) is the end of the answer.
    stream.once("error", () => finish());
    arm();
    stream.end(encodeCommand(command));
  });
}

/** HAProxy's refusal in an answer, as the error hapops reports (in its words). */
function refusalOf(
  command: RuntimeCommand,
  lines: readonly string[],
  opts: MasterExchangeOptions,
): HapopsError | undefined {
  const c = classifyResponse(lines);
  if (!c.error) return undefined;
  const message = c.lines.join("\n");
  if (isPermissionDenied(message))
    return new LevelError(
      `the master CLI ${opts.target} answered "Permission denied" to "${command.line}": hapops needs level '${command.spec.level}' there (the level option of -S; the default is admin)`,
      { target: opts.target, needs: command.spec.level, command: command.line },
    );
  return new HaproxyError(
    command.line,
    message,
    `the master CLI ${opts.target} refused "${command.line}": ${c.lines[0] ?? ""}`,
  );
}
