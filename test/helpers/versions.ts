import { describe, it } from "vitest";
import { haproxyBuild } from "../../src/sandbox/supervisor.js";

/**
 * The HAProxy the whole suite runs on: HAPOPS_TEST_HAPROXY names a binary (such as
 * ../shared/haproxy/haproxy-3.2.0); without it, Debian's /usr/sbin/haproxy (found by the lab).
 * Its version decides which tests skip, each saying why (`lacks`).
 */
export interface TestHaproxy {
  /** The binary to start, or undefined for the system's. */
  readonly bin: string | undefined;
  /** "2.6.12", "3.2.0", ... as `haproxy -v` prints it. */
  readonly version: string;
  /** Built with OpenSSL: TLS binds, `show ssl cert`, certificate rotation. */
  readonly tls: boolean;
}

let cached: TestHaproxy | undefined;

export function testHaproxy(): TestHaproxy {
  if (cached) return cached;
  const env = process.env.HAPOPS_TEST_HAPROXY || undefined;
  // The sandbox's own reading of `haproxy -vv` (version, built with OpenSSL).
  const { version, tls } = haproxyBuild(env ?? "/usr/sbin/haproxy");
  cached = { bin: env, version, tls };
  return cached;
}

/** Whether the suite's HAProxy is at least `want` ("3.0"). */
export function atLeast(want: string, version = testHaproxy().version): boolean {
  const a = version.split(".").map(Number);
  const b = want.split(".").map(Number);
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i]!;
  }
  return true;
}

/**
 * Why the suite's HAProxy cannot run a test, or undefined when it can: `lacks("tls")` on a build
 * without OpenSSL, `lacks("3.0", "wait srv-removable")` before 3.0. For `it.skipIf(...)` titles
 * and the skip's reason.
 */
export function lacks(feature: "tls"): string | undefined;
export function lacks(since: string, what: string): string | undefined;
export function lacks(a: string, what?: string): string | undefined {
  const h = testHaproxy();
  if (a === "tls") return h.tls ? undefined : `HAProxy ${h.version} is built without TLS`;
  return atLeast(a) ? undefined : `${what} needs HAProxy ${a}+, this is ${h.version}`;
}

/** Lab options for the suite's HAProxy: its binary, and no TLS binds on a build without it. */
export function labHaproxy(): { haproxyBin?: string; tls?: boolean } {
  const h = testHaproxy();
  return { ...(h.bin ? { haproxyBin: h.bin } : {}), ...(h.tls ? {} : { tls: false }) };
}

/**
 * `it` where the suite's HAProxy has what a test needs, else a skipped test whose title says
 * why: `itWhere(lacks("tls"))("reads over mTLS", ...)` on 2.4.0 reports
 * "reads over mTLS [skipped: HAProxy 2.4.0 is built without TLS]".
 */
export function itWhere(why: string | undefined) {
  return (name: string, fn: () => Promise<void> | void, timeout?: number): void => {
    if (why === undefined) it(name, fn, timeout);
    else it.skip(`${name} [skipped: ${why}]`, fn, timeout);
  };
}

/** `describe` likewise: a whole group skipped where the suite's HAProxy lacks what it needs. */
export function describeWhere(why: string | undefined) {
  return (name: string, fn: () => void): void => {
    if (why === undefined) describe(name, fn);
    else describe.skip(`${name} [skipped: ${why}]`, fn);
  };
}
