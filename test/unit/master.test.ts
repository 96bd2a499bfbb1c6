import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { onWorker, reload, showInfo, showProc } from "../../src/commands/builders.js";
import { resolveSettings, type Environment } from "../../src/config/settings.js";
import { masterCli } from "../../src/engine/master.js";
import {
  HaproxyError,
  LevelError,
  ProtocolError,
  TimeoutError,
  UsageError,
} from "../../src/errors.js";
import { masterExchange } from "../../src/runtime/master.js";
import { connect } from "../../src/transport/connect.js";

/**
 * The master CLI client on a fake socket, for what the real master cannot be made to do on
 * demand (stall, cut an answer); real answers are in test/e2e/reload.test.ts. Like the master,
 * the fake keeps its side open after the client's end of input (allowHalfOpen), and answers
 * once that end arrives.
 */
interface FakeSocket {
  readonly path: string;
  received(): string;
  close(): Promise<void>;
}

async function startFakeSocket(
  respond: (socket: Socket, got: string) => void,
): Promise<FakeSocket> {
  const dir = mkdtempSync(join(tmpdir(), "hapops-fake-master-"));
  const path = join(dir, "master.sock");
  let received = "";
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    let mine = "";
    socket.on("data", (d: Buffer) => {
      received += d.toString();
      mine += d.toString();
    });
    socket.on("end", () => respond(socket, mine));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

let fake: FakeSocket | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function exchange(
  respond: Parameters<typeof startFakeSocket>[0],
  line = showProc(),
  timeoutMs = 2000,
) {
  fake = await startFakeSocket(respond);
  const stream = await connect({ kind: "unix", path: fake.path }, { connectTimeoutMs: 1000 });
  return masterExchange(stream, line, { target: fake.path, timeoutMs });
}

const PROC = [
  "#<PID>          <type>          <reloads>       <uptime>        <version>      ",
  "4873            master          0 [failed: 0]   0d00h00m00s     2.6.12-1+deb12u4",
  "# workers",
  "4877            worker          0               0d00h00m00s     2.6.12-1+deb12u4",
  "",
  "",
].join("\n");

describe("masterExchange", () => {
  it("sends one command and reads the answer to the close", async () => {
    const lines = await exchange((s, got) => {
      if (got.endsWith("show proc\n")) s.end(PROC);
    });
    expect(fake!.received()).toBe("show proc\n");
    expect(lines).toEqual(PROC.split("\n").slice(0, 4));
  });

  it("an answer in pieces is one answer", async () => {
    const lines = await exchange((s) => {
      let i = 0;
      const next = () => {
        if (i >= PROC.length) return void s.end();
        s.write(PROC.slice(i, i + 7));
        i += 7;
        setImmediate(next);
      };
      next();
    });
    expect(lines).toHaveLength(4);
  });

  it("2.6's reload: the master closes without a word, which is an empty answer", async () => {
    expect(await exchange((s) => s.destroy(), reload())).toEqual([]);
  });

  it("Permission denied is a level error that names the level needed", async () => {
    const e = await exchange((s) => s.end("Permission denied\n\n")).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LevelError);
    expect((e as Error).message).toMatch(/needs level 'operator'/);
  });

  it("a pid that is not a worker is HAProxy's refusal, in its words", async () => {
    const e = await exchange(
      (s) => s.end("Can't find the target PID matching the prefix '@!1'\n"),
      onWorker({ pid: 1 }, showInfo()),
    ).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HaproxyError);
    expect((e as HaproxyError).haproxyMessage).toMatch(/Can't find the target PID/);
  });

  it("a master that stalls times out", async () => {
    const e = await exchange(() => undefined, showProc(), 200).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TimeoutError);
  });

  it("an answer cut short is not a show proc", async () => {
    fake = await startFakeSocket((s) => s.end(PROC.slice(0, 60)));
    const cli = masterCli({ connectTimeoutMs: 1000, commandTimeoutMs: 1000 } as never, fake.path);
    await expect(cli.showProc()).rejects.toBeInstanceOf(ProtocolError);
  });
});

describe("master: in the settings", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const env = (): Environment => ({
    env: {},
    stdoutIsTTY: false,
    stderrIsTTY: false,
    euid: 1000,
    sudo: false,
  });
  function config(text: string): string {
    dir = mkdtempSync(join(tmpdir(), "hapops-master-"));
    const path = join(dir, "hapops.yaml");
    writeFileSync(path, text);
    return path;
  }

  it("takes --master, else the target's master:, else the file's", async () => {
    const path = config(
      "socket: /run/a.sock\nmaster: /run/a-master.sock\ntargets:\n  b:\n    socket: /run/b.sock\n    master: unix:/run/b-master.sock\n  c:\n    socket: /run/c.sock\n",
    );
    expect((await resolveSettings({ config: path }, env())).master).toBe("/run/a-master.sock");
    expect((await resolveSettings({ config: path, socket: "b" }, env())).master).toBe(
      "/run/b-master.sock",
    );
    expect((await resolveSettings({ config: path, master: "/tmp/m.sock" }, env())).master).toBe(
      "/tmp/m.sock",
    );
    // A target without its own master does not borrow another HAProxy's.
    const c = await resolveSettings({ config: path, socket: "c" }, env());
    expect(c.master === undefined || c.master === "/run/haproxy-master.sock").toBe(true);
  });

  it("refuses a master CLI over the network", async () => {
    const path = config("master: tcp://127.0.0.1:9999\n");
    await expect(resolveSettings({ config: path }, env())).rejects.toBeInstanceOf(UsageError);
    await expect(
      resolveSettings({ config: path, master: "tls://10.0.0.1:1" }, env()),
    ).rejects.toThrow(/unix socket on this host/);
  });

  it("refuses an unknown key beside it, as for every key", async () => {
    const path = config("targets:\n  a:\n    socket: /x\n    mastr: /y\n");
    await expect(resolveSettings({ config: path }, env())).rejects.toThrow(/mastr/);
  });
});
