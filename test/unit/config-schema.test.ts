import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readConfigFile } from "../../src/config/load.js";
import { configSchema, configSchemaFor } from "../../src/config/schema.js";

/** Files as YAML reads them: valid, wrong in one place or in many, and not mappings at all. */
const FILES: unknown[] = [
  {},
  { socket: "/run/haproxy/admin.sock" },
  { audit: { path: "/var/log/hapops/audit.jsonl", reads: true } },
  {
    socket: "lb1",
    master: "/run/haproxy-master.sock",
    tls: { cert: "c.pem", key: "k.pem", ca: "ca.pem", servername: "lb" },
    insecureTcp: false,
    targets: { lb1: { socket: "tls://10.0.0.1:9999", master: "/m.sock", insecureTcp: true } },
    groups: { edge: ["lb1"] },
    timeouts: { connect: "3s", command: 10 },
    audit: { path: "/a.jsonl", group: "adm", syslog: "local", reads: false },
    backupDir: "/var/lib/hapops/backups",
    haproxyConfig: "/etc/haproxy/haproxy.cfg",
    certs: { persist: true, minDays: 0 },
    servers: { saveState: true },
    policy: {
      groups: {
        ops: ["read", "drain"],
        dev: { allow: ["read"], selectors: ["be_app/*"], scope: { servers: ["be_app/*"] } },
      },
    },
  },
  { socket: "" },
  { socket: 5 },
  { sockett: "/x" },
  { sockett: "/x", zzz: 1, socket: 3 },
  { audit: { path: "" } },
  { audit: { path: "/a", colour: true } },
  { audit: null },
  { socket: undefined },
  { timeouts: { connect: -1, command: "" } },
  { targets: { "bad name": { socket: "/x" } } },
  { targets: { lb1: { master: "/m" } } },
  { groups: { edge: [""] } },
  { policy: { groups: { ops: { allow: "read" } } } },
  { policy: { groups: { ops: [1] } }, certs: { minDays: -1 }, servers: { saveState: "yes" } },
  { tls: { cert: "c" }, insecureTcp: "no", backupDir: [] },
  { constructor: "x" },
  { __proto__: null, socket: "/x" },
  [],
  ["socket"],
  "socket: /x",
  42,
  null,
  true,
];

describe("configSchemaFor: the schema for the keys a file has", () => {
  it.each(FILES.map((f) => [JSON.stringify(f) ?? String(f), f]))(
    "%s: the same verdict, data and issues as the whole schema",
    (_name, file) => {
      const whole = configSchema().safeParse(file);
      const some = configSchemaFor(file).safeParse(file);
      expect(some.success).toBe(whole.success);
      expect(some.data).toEqual(whole.data);
      expect(some.error?.issues).toEqual(whole.error?.issues);
    },
  );
});

describe("readConfigFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "hapops-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return readConfigFile(path);
  };

  it("reads a file with the keys it has", async () => {
    await expect(read("ok.yaml", "socket: /x.sock\naudit:\n  path: /a.jsonl\n")).resolves.toEqual({
      socket: "/x.sock",
      audit: { path: "/a.jsonl" },
    });
    await expect(read("empty.yaml", "")).resolves.toEqual({});
  });

  it("names the first problem: the key, or the unknown keys", async () => {
    await expect(read("typo.yaml", "sockett: /x\naudit:\n  path: ''\n")).rejects.toThrow(
      /^config .*typo\.yaml: audit\.path: /,
    );
    await expect(read("unknown.yaml", "sockett: /x\nzzz: 1\n")).rejects.toThrow(
      /^config .*unknown\.yaml: \(top level\): unknown keys 'sockett', 'zzz'$/,
    );
    await expect(read("list.yaml", "- socket\n")).rejects.toThrow(
      /^config .*list\.yaml: \(top level\): /,
    );
  });
});
