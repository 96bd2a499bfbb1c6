import { describe, expect, it } from "vitest";
import { ExitCode, InterruptedError } from "../../src/errors.js";
import {
  describeRemaining,
  realClock,
  waitForDrain,
  type Clock,
  type DrainProgress,
} from "../../src/engine/wait.js";

/**
 * A clock that only moves when something sleeps (or a poll takes time): `now()` is a counter that
 * `sleep` advances by exactly the time asked for. It starts far from 0 so that elapsed times are
 * measured from the start, not from the epoch.
 */
class FakeClock implements Clock {
  t = 1_700_000_000_000;
  readonly start = this.t;
  readonly sleeps: number[] = [];
  readonly signals: (AbortSignal | undefined)[] = [];
  /** Called after each sleep with the number of sleeps so far. */
  onSleep: (count: number) => void = () => {};

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    this.signals.push(signal);
    this.t += ms;
    this.onSleep(this.sleeps.length);
    return Promise.resolve();
  }

  get elapsed(): number {
    return this.t - this.start;
  }
}

/** A poll that answers each call with the next map of the script, then repeats the last one. */
function scripted(...script: Record<string, number>[]) {
  const calls = { count: 0 };
  const poll = (): Promise<ReadonlyMap<string, number>> => {
    const next = script[Math.min(calls.count, script.length - 1)]!;
    calls.count++;
    return Promise.resolve(new Map(Object.entries(next)));
  };
  return { poll, calls };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("waitForDrain", () => {
  it("returns drained at once when there are no sessions, without sleeping", async () => {
    const clock = new FakeClock();
    const { poll, calls } = scripted({ "be_app/app1": 0, "be_app/app2": 0 });
    const result = await waitForDrain(poll, { timeoutMs: 30_000, intervalMs: 1000, clock });
    expect(result).toMatchObject({ drained: true, total: 0, elapsedMs: 0, timeoutMs: 30_000 });
    expect([...result.remaining]).toEqual([
      ["be_app/app1", 0],
      ["be_app/app2", 0],
    ]);
    expect(calls.count).toBe(1);
    expect(clock.sleeps).toEqual([]);
  });

  it("is drained for an empty set of servers", async () => {
    const clock = new FakeClock();
    const { poll } = scripted({});
    const result = await waitForDrain(poll, { timeoutMs: 1000, intervalMs: 100, clock });
    expect(result).toMatchObject({ drained: true, total: 0 });
    expect(clock.sleeps).toEqual([]);
  });

  it("polls every interval until the sessions reach 0", async () => {
    const clock = new FakeClock();
    const { poll, calls } = scripted(
      { "be_app/app1": 5, "be_app/app2": 2 },
      { "be_app/app1": 3, "be_app/app2": 0 },
      { "be_app/app1": 1, "be_app/app2": 0 },
      { "be_app/app1": 0, "be_app/app2": 0 },
      { "be_app/app1": 9, "be_app/app2": 9 },
    );
    const result = await waitForDrain(poll, { timeoutMs: 60_000, intervalMs: 2000, clock });
    expect(result).toMatchObject({ drained: true, total: 0, elapsedMs: 6000 });
    expect(calls.count).toBe(4);
    expect(clock.sleeps).toEqual([2000, 2000, 2000]);
  });

  it("calls onProgress on every poll, the last one included", async () => {
    const clock = new FakeClock();
    const { poll } = scripted({ "b/s": 4 }, { "b/s": 2 }, { "b/s": 0 });
    const seen: DrainProgress[] = [];
    await waitForDrain(poll, {
      timeoutMs: 10_000,
      intervalMs: 500,
      clock,
      onProgress: (p) => seen.push(p),
    });
    expect(seen.map((p) => [p.total, p.elapsedMs, p.timeoutMs])).toEqual([
      [4, 0, 10_000],
      [2, 500, 10_000],
      [0, 1000, 10_000],
    ]);
    expect(seen.map((p) => p.remaining.get("b/s"))).toEqual([4, 2, 0]);
  });

  it("times out with drained:false and what is left once the deadline passes", async () => {
    const clock = new FakeClock();
    const { poll, calls } = scripted({ "be_app/app1": 7, "be_app/app2": 0, "be_api/api1": 1 });
    const result = await waitForDrain(poll, { timeoutMs: 1000, intervalMs: 300, clock });
    expect(result.drained).toBe(false);
    expect(result.total).toBe(8);
    expect(result.elapsedMs).toBe(1000);
    expect(Object.fromEntries(result.remaining)).toEqual({
      "be_app/app1": 7,
      "be_app/app2": 0,
      "be_api/api1": 1,
    });
    // The last sleep is cut short so that the final poll happens at the deadline, not after it.
    expect(clock.sleeps).toEqual([300, 300, 300, 100]);
    expect(calls.count).toBe(5);
    expect(clock.elapsed).toBe(1000);
  });

  it("counts the time polls take against the deadline", async () => {
    const clock = new FakeClock();
    const { poll: inner, calls } = scripted({ "b/s": 1 });
    const slowPoll = () => {
      clock.t += 400;
      return inner();
    };
    const result = await waitForDrain(slowPoll, { timeoutMs: 1000, intervalMs: 500, clock });
    expect(result).toMatchObject({ drained: false, elapsedMs: 1300 });
    expect(clock.sleeps).toEqual([500]);
    expect(calls.count).toBe(2);
  });

  it("a zero timeout polls once and returns", async () => {
    const clock = new FakeClock();
    const { poll, calls } = scripted({ "b/s": 3 });
    const result = await waitForDrain(poll, { timeoutMs: 0, intervalMs: 500, clock });
    expect(result).toMatchObject({ drained: false, total: 3, elapsedMs: 0 });
    expect(calls.count).toBe(1);
    expect(clock.sleeps).toEqual([]);
  });

  it("drains on the very poll at the deadline", async () => {
    const clock = new FakeClock();
    const { poll } = scripted({ "b/s": 1 }, { "b/s": 1 }, { "b/s": 0 });
    const result = await waitForDrain(poll, { timeoutMs: 1000, intervalMs: 500, clock });
    expect(result).toMatchObject({ drained: true, elapsedMs: 1000 });
  });

  it("passes the signal to sleep, so Ctrl-C can cut a sleep short", async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const { poll } = scripted({ "b/s": 1 }, { "b/s": 0 });
    await waitForDrain(poll, { timeoutMs: 1000, intervalMs: 100, clock, signal: ac.signal });
    expect(clock.signals).toEqual([ac.signal]);
  });

  it("Ctrl-C during a sleep raises InterruptedError naming each busy server", async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    clock.onSleep = (n) => {
      if (n === 2) ac.abort();
    };
    const { poll, calls } = scripted(
      { "be_app/app1": 5, "be_app/app2": 1 },
      { "be_app/app1": 3, "be_app/app2": 1, "be_app/app3": 0 },
    );
    const e = await rejection(
      waitForDrain(poll, { timeoutMs: 60_000, intervalMs: 1000, clock, signal: ac.signal }),
    );
    expect(e).toBeInstanceOf(InterruptedError);
    const err = e as InterruptedError;
    expect(err.exitCode).toBe(ExitCode.interrupted);
    expect(err.code).toBe("INTERRUPTED");
    expect(err.message).toContain("Ctrl-C");
    expect(err.message).toContain("be_app/app1 has 3 sessions");
    expect(err.message).toContain("be_app/app2 has 1 session");
    expect(err.message).not.toContain("be_app/app3");
    expect(err.message).toContain("DRAIN");
    expect(err.details["remaining"]).toEqual({
      "be_app/app1": 3,
      "be_app/app2": 1,
      "be_app/app3": 0,
    });
    expect(typeof err.details["elapsedMs"]).toBe("number");
    // No poll after the interruption.
    expect(calls.count).toBe(2);
    expect(clock.sleeps).toHaveLength(2);
  });

  it("an already aborted signal stops after the first poll, without sleeping", async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    ac.abort();
    const { poll, calls } = scripted({ "be_app/app1": 2 });
    const progress: number[] = [];
    const e = await rejection(
      waitForDrain(poll, {
        timeoutMs: 60_000,
        intervalMs: 1000,
        clock,
        signal: ac.signal,
        onProgress: (p) => progress.push(p.total),
      }),
    );
    expect(e).toBeInstanceOf(InterruptedError);
    expect((e as Error).message).toContain("be_app/app1 has 2 sessions");
    expect(calls.count).toBe(1);
    expect(progress).toEqual([2]);
    expect(clock.sleeps).toEqual([]);
  });

  it("an aborted signal does not hide that the servers are already drained", async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    ac.abort();
    const { poll } = scripted({ "be_app/app1": 0 });
    const result = await waitForDrain(poll, {
      timeoutMs: 1000,
      intervalMs: 100,
      clock,
      signal: ac.signal,
    });
    expect(result.drained).toBe(true);
  });

  it("lets a poll error through untouched", async () => {
    const clock = new FakeClock();
    const boom = new Error("socket closed");
    const e = await rejection(
      waitForDrain(() => Promise.reject(boom), { timeoutMs: 1000, intervalMs: 100, clock }),
    );
    expect(e).toBe(boom);
  });
});

describe("describeRemaining", () => {
  it("says nothing is left for an empty map or all zeros", () => {
    expect(describeRemaining(new Map())).toBe("no sessions left");
    expect(describeRemaining(new Map([["b/s", 0]]))).toBe("no sessions left");
  });

  it("names each busy server with its count, singular and plural", () => {
    const remaining = new Map([
      ["be_app/app1", 1],
      ["be_app/app2", 0],
      ["be_api/api1", 12],
    ]);
    expect(describeRemaining(remaining)).toBe(
      "be_app/app1 has 1 session, be_api/api1 has 12 sessions",
    );
  });
});

describe("realClock", () => {
  it("reads the wall clock", () => {
    const before = Date.now();
    const now = realClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it("sleep resolves at once for an already aborted signal", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(realClock.sleep(3_600_000, ac.signal)).resolves.toBeUndefined();
  });

  it("sleep resolves early, without throwing, when the signal aborts", async () => {
    const ac = new AbortController();
    const sleeping = realClock.sleep(3_600_000, ac.signal);
    ac.abort();
    await expect(sleeping).resolves.toBeUndefined();
  });
});

describe("waitForDrain: whether it waited", () => {
  it("says it waited when the first poll found sessions, however short the wait", async () => {
    const clock = new FakeClock();
    const { poll } = scripted({ "be/a": 1 }, { "be/a": 0 });
    const r = await waitForDrain(poll, { timeoutMs: 60_000, intervalMs: 10, clock });
    expect(r).toMatchObject({ drained: true, waited: true, elapsedMs: 10 });
  });

  it("says it did not wait when the servers were already empty", async () => {
    const clock = new FakeClock();
    const { poll } = scripted({ "be/a": 0 });
    const r = await waitForDrain(poll, { timeoutMs: 60_000, intervalMs: 10, clock });
    expect(r).toMatchObject({ drained: true, waited: false, elapsedMs: 0 });
  });
});
