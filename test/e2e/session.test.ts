import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  abortSslCert,
  setSslCert,
  showCliLevel,
  showInfo,
  showServersState,
  showSslCert,
} from "../../src/commands/builders.js";
import { HaproxyError, LevelError } from "../../src/errors.js";
import { parseServersState } from "../../src/parse/servers-state.js";
import { parseSslCertList } from "../../src/parse/ssl-cert.js";
import { RuntimeSession } from "../../src/runtime/session.js";
import { connect } from "../../src/transport/connect.js";
import { useLab } from "../helpers/lab.js";

const lab = useLab();
const open: RuntimeSession[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function session(path: string): Promise<RuntimeSession> {
  const socket = await connect({ kind: "unix", path }, { connectTimeoutMs: 2000 });
  const s = RuntimeSession.start(socket, { target: path, timeoutMs: 5000 });
  open.push(s);
  return s;
}

describe("RuntimeSession against HAProxy", () => {
  it("matches 1,000 pipelined answers to their commands, in order", async () => {
    const s = await session(lab().sockets.user);
    const backends = ["be_app", "be_api", "be_static"];
    const cmds = Array.from({ length: 1000 }, (_, i) => showServersState(backends[i % 3]));
    const answers = await s.pipeline(cmds);
    expect(answers).toHaveLength(1000);
    answers.forEach((lines, i) => {
      const servers = parseServersState(lines);
      expect(new Set(servers.map((x) => x.backend))).toEqual(new Set([backends[i % 3]]));
    });
  });

  it("learns the socket's level in the handshake", async () => {
    expect(await (await session(lab().sockets.user)).level()).toBe("user");
    expect(await (await session(lab().sockets.operator)).level()).toBe("operator");
    expect(await (await session(lab().sockets.admin)).level()).toBe("admin");
  });

  it("lowers itself, and HAProxy agrees", async () => {
    const s = await session(lab().sockets.admin);
    await s.lowerTo("user");
    expect(await s.level()).toBe("user");
    const [answer] = await s.run(showCliLevel());
    expect(answer).toBe("user");
  });

  it("refuses a command above the session's level before sending it", async () => {
    const s = await session(lab().sockets.user);
    await expect(s.run(showSslCert())).rejects.toThrow(LevelError);
    // The session is still usable: nothing was sent, nothing is out of step.
    expect((await s.run(showInfo()))[0]).toBe("Name: HAProxy");
  });

  it("keeps HAProxy's words when it refuses", async () => {
    const s = await session(lab().sockets.user);
    const err = await s.run(showServersState("be_nope")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaproxyError);
    expect((err as HaproxyError).haproxyMessage).toBe("Can't find backend.");
    expect(parseServersState(await s.run(showServersState("be_api")))).toHaveLength(2);
  });

  it("sends a payload and stays in step with the commands after it", async () => {
    const s = await session(lab().sockets.admin);
    const file = join(lab().certDir, "example.com.pem");
    // A real certificate and key, with CRLF line ends and a blank line that must not reach HAProxy.
    const pem = readFileSync(file, "utf8")
      .replace(/\n/g, "\r\n")
      .replace("-----\r\n-----", "-----\r\n\r\n-----");
    const [created, list, aborted, after] = await s.pipeline([
      setSslCert(file, pem),
      showSslCert(),
      abortSslCert(file),
      showSslCert(),
    ]);
    expect(created).toEqual([`Transaction created for certificate ${file}!`]);
    expect(parseSslCertList(list!).transactions).toEqual([file]);
    expect(aborted?.[0]).toMatch(/^Transaction aborted for certificate/);
    expect(parseSslCertList(after!).transactions).toEqual([]);
  });
});
