import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { persistPem } from "../../src/certs/persist.js";

const OLD = "-----BEGIN CERTIFICATE-----\nT0xE\n-----END CERTIFICATE-----\n";
const NEW = "-----BEGIN CERTIFICATE-----\nTkVX\n-----END CERTIFICATE-----\n";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hapops-persist-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A file with exactly `mode`, whatever the umask. */
function oldFile(name: string, mode: number, content = OLD): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o7777;
}

describe("persistPem", () => {
  it("replaces the file and keeps the old content in .bak", () => {
    const path = oldFile("site.pem", 0o640);
    const result = persistPem(path, NEW);
    expect(result).toEqual({ path, backup: `${path}.bak`, mode: 0o640 });
    expect(readFileSync(path, "utf8")).toBe(NEW);
    expect(readFileSync(`${path}.bak`, "utf8")).toBe(OLD);
  });

  it.each([0o640, 0o600, 0o660, 0o400])("keeps mode %s on the new file and the backup", (mode) => {
    const path = oldFile("site.pem", mode);
    persistPem(path, NEW);
    expect(modeOf(path)).toBe(mode);
    expect(modeOf(`${path}.bak`)).toBe(mode);
  });

  it("drops world access from a world-readable file (0644 gives 0640)", () => {
    const path = oldFile("site.pem", 0o644);
    expect(persistPem(path, NEW).mode).toBe(0o640);
    expect(modeOf(path)).toBe(0o640);
    // The backup holds the old private key too; persist.ts never gives it world access either.
    expect(modeOf(`${path}.bak`)).toBe(0o640);
    expect(readFileSync(`${path}.bak`, "utf8")).toBe(OLD);
  });

  it("drops world write and execute bits too (0777 gives 0770)", () => {
    const path = oldFile("site.pem", 0o777);
    persistPem(path, NEW);
    expect(modeOf(path)).toBe(0o770);
  });

  it("keeps the owner and group", () => {
    const path = oldFile("site.pem", 0o640);
    const before = statSync(path);
    persistPem(path, NEW);
    for (const p of [path, `${path}.bak`]) {
      const after = statSync(p);
      expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    }
  });

  it("leaves no temp files behind", () => {
    const path = oldFile("site.pem", 0o644);
    oldFile("other.pem", 0o600, "unrelated\n");
    persistPem(path, NEW);
    expect(readdirSync(dir).sort()).toEqual(["other.pem", "site.pem", "site.pem.bak"]);
    expect(readFileSync(join(dir, "other.pem"), "utf8")).toBe("unrelated\n");
  });

  it("replaces an older backup", () => {
    const path = oldFile("site.pem", 0o600);
    oldFile("site.pem.bak", 0o644, "older\n");
    persistPem(path, NEW);
    expect(readFileSync(`${path}.bak`, "utf8")).toBe(OLD);
    expect(modeOf(`${path}.bak`)).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(["site.pem", "site.pem.bak"]);
  });

  it("writes a large payload completely", () => {
    const path = oldFile("site.pem", 0o600);
    const big = `${"A".repeat(64)}\n`.repeat(20_000);
    persistPem(path, big);
    expect(readFileSync(path, "utf8")).toBe(big);
  });

  it("throws on a missing path and leaves nothing behind", () => {
    const path = join(dir, "missing.pem");
    expect(() => persistPem(path, NEW)).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(readdirSync(dir)).toEqual([]);
  });

  it("throws on a missing directory", () => {
    expect(() => persistPem(join(dir, "nope", "site.pem"), NEW)).toThrow(
      expect.objectContaining({ code: "ENOENT" }),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a symlink and leaves it and its target alone", () => {
    const target = oldFile("real.pem", 0o600);
    const link = join(dir, "site.pem");
    symlinkSync(target, link);
    expect(() => persistPem(link, NEW)).toThrow(`${link} is not a regular file`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, "utf8")).toBe(OLD);
    expect(readdirSync(dir).sort()).toEqual(["real.pem", "site.pem"]);
  });

  it("refuses a directory", () => {
    const path = join(dir, "site.pem");
    mkdirSync(path);
    expect(() => persistPem(path, NEW)).toThrow(`${path} is not a regular file`);
    expect(readdirSync(dir)).toEqual(["site.pem"]);
  });

  it("leaves the old file in place and no temp file when the write fails", () => {
    const path = oldFile("site.pem", 0o600);
    // Occupy the temp name persist.ts writes to, so its exclusive open fails after the backup.
    oldFile(`.site.pem.hapops-${process.pid}`, 0o600, "stale\n");
    expect(() => persistPem(path, NEW)).toThrow(expect.objectContaining({ code: "EEXIST" }));
    expect(readFileSync(path, "utf8")).toBe(OLD);
    expect(modeOf(path)).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(["site.pem", "site.pem.bak"]);
  });
});
