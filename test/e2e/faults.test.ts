import { afterEach, describe, expect, it } from "vitest";
import { hapops, json } from "../helpers/cli.js";
import { HANDSHAKE_REPLY, startFakeSocket, type FakeSocket } from "../helpers/fake-socket.js";

let fake: FakeSocket | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const INFO_HEAD = "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nPid: 42\n";

describe("faults HAProxy cannot produce on demand", () => {
  it("a connection closed mid-answer is reported as cut off (exit 4)", async () => {
    fake = await startFakeSocket((socket, got) => {
      if (got.includes("show info\n")) {
        socket.write(HANDSHAKE_REPLY + "\n> " + INFO_HEAD.slice(0, 30));
        socket.destroy();
      }
    });
    const r = await hapops(["-s", fake.path, "info"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/closed the connection in the middle of the answer to "show info"/);
  });

  it("a socket that stalls past --timeout is a timeout (exit 4), not a hang", async () => {
    fake = await startFakeSocket((socket, got) => {
      if (got.includes("show info\n")) socket.write(HANDSHAKE_REPLY + "\n> " + INFO_HEAD);
    });
    const started = Date.now();
    const r = await hapops(["-s", fake.path, "--timeout", "300ms", "info", "--json"]);
    expect(r.code).toBe(4);
    expect(json<{ error: { code: string } }>(r).error.code).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("garbage instead of the runtime API is a protocol error (exit 4)", async () => {
    fake = await startFakeSocket((socket) => {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    const r = await hapops(["-s", fake.path, "servers"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/did not answer like an HAProxy runtime API socket/);
  });

  it("an invalid name is refused without connecting at all (exit 2)", async () => {
    fake = await startFakeSocket(() => undefined);
    const r = await hapops(["-s", fake.path, "stat", "be app"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/contains a space/);
    expect(fake.connections()).toBe(0);
    expect(fake.received()).toBe("");
  });

  it("sends one handshake and the command in a single round trip", async () => {
    fake = await startFakeSocket((socket, got) => {
      if (got.endsWith("quit\n")) socket.end();
    });
    await hapops(["-s", fake.path, "--timeout", "500ms", "info"]);
    expect(fake.received()).toBe(
      "prompt\nset severity-output number\nshow cli level\nuser\nshow info\n",
    );
  });
});
