import { onWorker, reload, showProc, type RuntimeCommand } from "../commands/builders.js";
import type { Settings } from "../config/settings.js";
import { SocketError } from "../errors.js";
import {
  parseReloadAnswer,
  parseShowProc,
  type ProcList,
  type ReloadAnswer,
} from "../parse/proc.js";
import { masterExchange } from "../runtime/master.js";
import { connect } from "../transport/connect.js";

/**
 * The master CLI of an HAProxy in master-worker mode (-W/-Ws with -S <socket>): `show proc`,
 * `reload`, and read-only commands to one worker through `@!<pid>`, one connection each
 * (runtime/master.ts).
 */
export interface MasterCli {
  readonly path: string;
  showProc(): Promise<ProcList>;
  /** `timeoutMs`: how long the answer may take (2.7+ answers once the new worker is up). */
  reload(timeoutMs: number): Promise<ReloadAnswer>;
  /** A read-only command of the grammar, on one worker (by pid). */
  onWorker(pid: number, command: RuntimeCommand): Promise<string[]>;
}

export function masterCli(settings: Settings, path: string): MasterCli {
  const run = async (command: RuntimeCommand, timeoutMs = settings.commandTimeoutMs) => {
    let stream;
    try {
      stream = await connect(
        { kind: "unix", path },
        { connectTimeoutMs: settings.connectTimeoutMs },
      );
    } catch (e) {
      if (e instanceof SocketError)
        throw new SocketError(
          e.code,
          `master CLI: ${e.message}${e.code === "SOCKET_NOT_FOUND" ? " (is HAProxy started with -W/-Ws and -S <socket>? see --master)" : ""}`,
          { ...e.details, master: path },
          { cause: e },
        );
      throw e;
    }
    return masterExchange(stream, command, { target: path, timeoutMs });
  };
  return {
    path,
    showProc: async () => parseShowProc(await run(showProc())),
    // From 2.7 the master answers once the new worker is up or has failed: that can take as long
    // as HAProxy takes to load its configuration, so the answer gets the whole wait.
    reload: async (timeoutMs) => parseReloadAnswer(await run(reload(), timeoutMs)),
    onWorker: (pid, command) => run(onWorker({ pid }, command)),
  };
}
