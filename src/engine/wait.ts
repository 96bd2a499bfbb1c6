import { InterruptedError } from "../errors.js";
import { formatDuration } from "../util/duration.js";

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    }),
};

export interface DrainProgress {
  /** Sessions left per `backend/server`. */
  readonly remaining: ReadonlyMap<string, number>;
  readonly total: number;
  readonly elapsedMs: number;
  readonly timeoutMs: number;
}

export interface DrainWaitOptions {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly clock: Clock;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: (p: DrainProgress) => void;
}

export interface DrainWaitResult extends DrainProgress {
  readonly drained: boolean;
  /** The first poll found sessions: the servers were not empty when the wait began. */
  readonly waited: boolean;
}

/**
 * Poll current sessions until every server has none, or until the deadline. Polls immediately,
 * then every `intervalMs`; returns as soon as the condition holds. Ctrl-C (the signal) stops the
 * wait with an InterruptedError that says what is left.
 */
export async function waitForDrain(
  poll: () => Promise<ReadonlyMap<string, number>>,
  opts: DrainWaitOptions,
): Promise<DrainWaitResult> {
  const start = opts.clock.now();
  let waited: boolean | undefined;
  for (;;) {
    const remaining = await poll();
    const total = [...remaining.values()].reduce((a, b) => a + b, 0);
    const elapsedMs = opts.clock.now() - start;
    const progress = { remaining, total, elapsedMs, timeoutMs: opts.timeoutMs };
    opts.onProgress?.(progress);
    waited ??= total > 0;
    if (total === 0) return { ...progress, drained: true, waited };
    if (elapsedMs >= opts.timeoutMs) return { ...progress, drained: false, waited };
    if (opts.signal?.aborted) throw interrupted(progress);
    await opts.clock.sleep(Math.min(opts.intervalMs, opts.timeoutMs - elapsedMs), opts.signal);
    if (opts.signal?.aborted) throw interrupted(progress);
  }
}

function interrupted(p: DrainProgress): InterruptedError {
  return new InterruptedError(
    `stopped waiting after ${formatDuration(p.elapsedMs)} (Ctrl-C): ${describeRemaining(p.remaining)}; the servers stay DRAIN`,
    { remaining: Object.fromEntries(p.remaining), elapsedMs: p.elapsedMs },
  );
}

export function describeRemaining(remaining: ReadonlyMap<string, number>): string {
  const busy = [...remaining].filter(([, n]) => n > 0);
  if (busy.length === 0) return "no sessions left";
  return busy.map(([k, n]) => `${k} has ${n} session${n === 1 ? "" : "s"}`).join(", ");
}
