import { runToolAsync } from "../util/tools.js";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { hostname } from "node:os";

/**
 * A copy of each audit record off this file (RFC 5424), so that deleting the newest lines of
 * the file, which the hash chain cannot show, is visible against the copy.
 */
export type SyslogTarget =
  | { readonly kind: "local" }
  | { readonly kind: "udp" | "tcp"; readonly host: string; readonly port: number };

export function parseSyslogTarget(text: string): SyslogTarget {
  if (text === "local") return { kind: "local" };
  const m = /^(udp|tcp):\/\/(?:\[([0-9a-fA-F:.]+)\]|([^:/]+)):(\d{1,5})$/.exec(text);
  if (!m)
    throw new Error(
      `audit.syslog must be "local", udp://host:port or tcp://host:port, not ${JSON.stringify(text)}`,
    );
  return { kind: m[1] as "udp" | "tcp", host: m[2] ?? m[3]!, port: Number(m[4]) };
}

/** auth (4) / notice (5): security-relevant, normal. PRI = facility * 8 + severity. */
const PRI = 4 * 8 + 5;

/** RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`. */
export function formatRfc5424(message: string, ts: string, pid: number): string {
  return `<${PRI}>1 ${ts} ${hostname() || "-"} hapops ${pid} audit - ${message}`;
}

export function sendSyslog(
  target: SyslogTarget,
  line: string,
  ts: string,
  timeoutMs = 2000,
): Promise<void> {
  if (target.kind === "local") {
    // /dev/log is a unix datagram socket, which Node cannot open; logger(1) can.
    return new Promise((resolve, reject) => {
      runToolAsync(
        "logger",
        "bsdutils",
        ["--rfc5424=notq", "-u", "/dev/log", "-p", "auth.notice", "-t", "hapops", "--", line],
        { timeoutMs },
      ).then(
        () => resolve(),
        (err: Error) => reject(new Error(err.message)),
      );
    });
  }
  const msg = formatRfc5424(line, ts, process.pid);
  if (target.kind === "udp") {
    return new Promise((resolve, reject) => {
      const sock = createSocket(target.host.includes(":") ? "udp6" : "udp4");
      sock.send(msg, target.port, target.host, (err) => {
        sock.close();
        if (err) reject(err);
        else resolve();
      });
    });
  }
  return new Promise((resolve, reject) => {
    const sock = connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => sock.destroy(new Error("timed out")), timeoutMs);
    sock.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // RFC 6587 octet counting: "LEN SP MSG".
    sock.end(`${Buffer.byteLength(msg)} ${msg}`, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
