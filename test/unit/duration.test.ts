import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { formatDuration, parseDuration } from "../../src/util/duration.js";
import { thrown } from "../helpers/thrown.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["10s", 10_000],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["30d", 30 * 86_400_000],
    ["1.5s", 1500],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it("refuses a bare number, naming the option and the units to use (a cron job in days must not check seconds)", () => {
    const e = thrown(UsageError, () => parseDuration("30", "--expiring"));
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe('--expiring "30" has no unit; write it with one, e.g. 30s, 30m or 30d');
  });

  it.each(["", "10x", "s", "10 s", "-5s"])("refuses %j", (text) => {
    expect(thrown(UsageError, () => parseDuration(text)).message).toMatch(/duration|no unit/);
  });
});

describe("formatDuration", () => {
  it.each([
    [999, "999ms"],
    [1000, "1s"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
