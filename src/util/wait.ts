export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** What is awaited, for the timeout message ("HAProxy socket to answer"). */
  readonly what: string;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly sleep?: Sleep;
  readonly now?: () => number;
}

/**
 * Poll `check` until it returns a value other than undefined, or throw after the deadline with
 * the last reason seen. Never a fixed sleep: it returns as soon as the condition holds.
 */
export async function waitUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  opts: WaitOptions,
): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? realSleep;
  const deadline = now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (now() >= deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${why}`, {
        cause: last,
      });
    }
    await sleep(opts.intervalMs ?? 50);
  }
}
