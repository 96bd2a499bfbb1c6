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
let backups: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hapops-persist-"));
  backups = join(mkdtempSync(join(tmpdir(), "hapops-persist-bak-")), "backups");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(backups, ".."), { recursive: true, force: true });
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

const persist = (path: string, payload = NEW) => persistPem(path, payload, backups);

describe("persistPem", () => {
  it("replaces the file and keeps the old content in the backup directory, not beside it", () => {
    const path = oldFile("site.pem", 0o640);
    const result = persist(path);
    expect(result.path).toBe(path);
    expect(result.mode).toBe(0o640);
    expect(result.backup.startsWith(backups + "/site.pem.")).toBe(true);
    expect(readFileSync(path, "utf8")).toBe(NEW);
    expect(readFileSync(result.backup, "utf8")).toBe(OLD);
    // HAProxy loads every file of a crt directory: nothing but the file itself stays there.
    expect(readdirSync(dir)).toEqual(["site.pem"]);
    expect(modeOf(backups)).toBe(0o700);
  });

  it.each([0o640, 0o600, 0o660, 0o400])("keeps mode %s on the new file and the backup", (mode) => {
    const path = oldFile("site.pem", mode);
    const { backup } = persist(path);
    expect(modeOf(path)).toBe(mode);
    expect(modeOf(backup)).toBe(mode);
  });

  it("drops world access from a world-readable file (0644 gives 0640), backup included", () => {
    const path = oldFile("site.pem", 0o644);
    const r = persist(path);
    expect(r.mode).toBe(0o640);
    expect(modeOf(path)).toBe(0o640);
    expect(modeOf(r.backup)).toBe(0o640);
    expect(readFileSync(r.backup, "utf8")).toBe(OLD);
  });

  it("drops world write and execute bits too (0777 gives 0770)", () => {
    const path = oldFile("site.pem", 0o777);
    persist(path);
    expect(modeOf(path)).toBe(0o770);
  });

  it("keeps the owner and group", () => {
    const path = oldFile("site.pem", 0o640);
    const before = statSync(path);
    const { backup } = persist(path);
    for (const p of [path, backup]) {
      const after = statSync(p);
      expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    }
  });

  it("leaves no temp files behind, and each run keeps its own backup", () => {
    const path = oldFile("site.pem", 0o644);
    oldFile("other.pem", 0o600, "unrelated\n");
    const first = persist(path);
    const second = persist(path, OLD);
    expect(readdirSync(dir).sort()).toEqual(["other.pem", "site.pem"]);
    expect(readFileSync(join(dir, "other.pem"), "utf8")).toBe("unrelated\n");
    expect(first.backup).not.toBe(second.backup);
    expect(readFileSync(second.backup, "utf8")).toBe(NEW);
  });

  it("writes a large payload completely", () => {
    const path = oldFile("site.pem", 0o600);
    const big = `${"A".repeat(64)}\n`.repeat(20_000);
    persist(path, big);
    expect(readFileSync(path, "utf8")).toBe(big);
  });

  it("throws on a missing path and leaves nothing behind", () => {
    const path = join(dir, "missing.pem");
    expect(() => persist(path)).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a symlink and leaves it and its target alone", () => {
    const target = oldFile("real.pem", 0o600);
    const link = join(dir, "site.pem");
    symlinkSync(target, link);
    expect(() => persist(link)).toThrow(`${link} is not a regular file`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, "utf8")).toBe(OLD);
    expect(readdirSync(dir).sort()).toEqual(["real.pem", "site.pem"]);
  });

  it("refuses a directory", () => {
    const path = join(dir, "site.pem");
    mkdirSync(path);
    expect(() => persist(path)).toThrow(`${path} is not a regular file`);
    expect(readdirSync(dir)).toEqual(["site.pem"]);
  });

  it("never follows a link planted at a temp or backup name (names are random, opens exclusive)", () => {
    const path = oldFile("site.pem", 0o600);
    const victim = join(dir, "victim");
    writeFileSync(victim, "untouched\n");
    // The names a guessing attacker would plant under the old scheme.
    for (const n of [
      `.site.pem.hapops-${process.pid}`,
      "site.pem.bak",
      `.site.pem.bak.hapops-${process.pid}`,
    ])
      symlinkSync(victim, join(dir, n));
    persist(path);
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    expect(readFileSync(path, "utf8")).toBe(NEW);
  });

  it("refuses a backup directory that is a symbolic link or writable by others", () => {
    const path = oldFile("site.pem", 0o600);
    mkdirSync(join(backups, ".."), { recursive: true });
    symlinkSync(dir, backups);
    expect(() => persist(path)).toThrow(/backup directory/);
    expect(readFileSync(path, "utf8")).toBe(OLD);
  });
});
