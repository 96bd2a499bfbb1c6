import { Duplex, PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { showTable } from "../../src/commands/builders.js";
import { drained } from "../../src/cli/context.js";
import { TimeoutError, TruncatedResponseError } from "../../src/errors.js";
import { RuntimeSession } from "../../src/runtime/session.js";

const HANDSHAKE = "\n> \n> [6]: admin\n\n> ";

/** A socket the test feeds by hand; what hapops writes is ignored. */
function peer(): Duplex {
  return new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

/** The handshake's answers; `show table` (operator) is sent once they are in. */
async function handshake(socket: Duplex): Promise<void> {
  socket.push(HANDSHAKE);
  await settle();
}

/** Lets the session's socket deliver what was pushed (stream events run on later ticks). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await vi.advanceTimersByTimeAsync(0);
}

describe("a streamed answer whose consumer is full", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stops reading until the consumer has room, with no timeout meanwhile, and loses nothing", async () => {
    const socket = peer();
    const s = RuntimeSession.start(socket, { target: "lb1", timeoutMs: 1000 });
    const lines: string[] = [];
    let full = true;
    let room: () => void = () => undefined;
    const asked: number[] = [];
    const done = s.stream(showTable("t"), (l) => lines.push(l), {
      backpressure: () => {
        asked.push(lines.length);
        return full ? new Promise<void>((r) => (room = r)) : undefined;
      },
    });
    let settled = false;
    void done.then(
      () => (settled = true),
      () => (settled = true),
    );
    await handshake(socket);
    socket.push("# table: t, type: ip\n0x1: key=10.0.0.1 use=0\n");
    await settle();
    expect(asked).toEqual([2]);
    expect(socket.isPaused()).toBe(true);
    // The rest arrives while the consumer is full: held by the socket, not handed on.
    socket.push("0x2: key=10.0.0.2 use=0\n\n> ");
    await settle();
    expect(lines).toHaveLength(2);
    // Ten minutes in `less`: far beyond the answer timeout, which does not run while waiting.
    await vi.advanceTimersByTimeAsync(600_000);
    expect(settled).toBe(false);
    full = false;
    room();
    await settle();
    await done;
    expect(lines).toEqual([
      "# table: t, type: ip",
      "0x1: key=10.0.0.1 use=0",
      "0x2: key=10.0.0.2 use=0",
    ]);
    expect(socket.isPaused()).toBe(false);
  });

  it("times out as before once reading resumes and HAProxy says nothing", async () => {
    const socket = peer();
    const s = RuntimeSession.start(socket, { target: "lb1", timeoutMs: 1000 });
    let room: () => void = () => undefined;
    let first = true;
    const done = s
      .stream(showTable("t"), () => undefined, {
        backpressure: () =>
          first ? ((first = false), new Promise<void>((r) => (room = r))) : undefined,
      })
      .catch((e: unknown) => e);
    await handshake(socket);
    socket.push("# table: t, type: ip\n");
    await settle();
    await vi.advanceTimersByTimeAsync(5000);
    room();
    await vi.advanceTimersByTimeAsync(1001);
    expect(await done).toBeInstanceOf(TimeoutError);
  });

  it("says the output was read too slowly when HAProxy cut the answer during a long wait", async () => {
    const socket = peer();
    const s = RuntimeSession.start(socket, { target: "lb1", timeoutMs: 1000 });
    let room: () => void = () => undefined;
    let first = true;
    const done = s
      .stream(showTable("t"), () => undefined, {
        backpressure: () =>
          first ? ((first = false), new Promise<void>((r) => (room = r))) : undefined,
      })
      .catch((e: unknown) => e);
    await handshake(socket);
    socket.push("# table: t, type: ip\n0x1: key=10.0.0.1 use=0\n");
    await settle();
    // HAProxy's `stats timeout` passed: it closed the connection mid-answer.
    socket.push("0x2: key=10.0.0.2 use=0\n");
    socket.push(null);
    await vi.advanceTimersByTimeAsync(30_000);
    room();
    await settle();
    const e = (await done) as TruncatedResponseError;
    expect(e).toBeInstanceOf(TruncatedResponseError);
    expect(e.message).toBe(
      'lb1 closed the connection in the middle of the answer to "show table t" after hapops had waited 30 s for its output to be read: the output was read too slowly (HAProxy closes a CLI connection that takes no data for its `stats timeout`); write it to a file first, or raise `stats timeout`',
    );
    expect(e.message).not.toContain("\n");
    expect(e.details).toMatchObject({ command: "show table t", waitedMs: 30_000 });
  });

  it("keeps the usual message for a cut with no long wait", async () => {
    const socket = peer();
    const s = RuntimeSession.start(socket, { target: "lb1", timeoutMs: 1000 });
    const done = s
      .stream(showTable("t"), () => undefined, { backpressure: () => undefined })
      .catch((e: unknown) => e);
    await handshake(socket);
    socket.push("# table: t, type: ip\n");
    socket.push(null);
    await settle();
    expect(((await done) as Error).message).toMatch(/HAProxy may have restarted/);
  });
});

describe("drained", () => {
  it("is undefined while little is queued, and resolves at 'drain' when much is", async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    expect(drained(out, 64)).toBeUndefined();
    out.write("x".repeat(100));
    const wait = drained(out, 64);
    expect(wait).toBeInstanceOf(Promise);
    out.read();
    await wait;
    expect(out.listenerCount("drain")).toBe(0);
  });

  it("never waits on a stream its reader closed (`| head`): writes are dropped", async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    out.write("x".repeat(100));
    const wait = drained(out, 64);
    out.destroy();
    await wait;
    expect(drained(out, 64)).toBeUndefined();
  });
});
