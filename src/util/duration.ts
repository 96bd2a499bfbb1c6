import { UsageError } from "../errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parse "500ms", "10s", "2m", "1h30m", "7d". Returns milliseconds. A bare number is refused:
 * `certs --expiring 30` meant as days would otherwise check a 30-second window and never fire.
 */
export function parseDuration(text: string, what = "duration"): number {
  const value = text.trim();
  if (/^\d+(\.\d+)?$/.test(value))
    throw new UsageError(
      `${what} ${JSON.stringify(text)} has no unit; write it with one, e.g. ${value}s, ${value}m or ${value}d`,
    );
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (end === 0 || end !== value.length)
    throw new UsageError(
      `${what} ${JSON.stringify(text)} is not a duration; use e.g. 500ms, 10s, 5m, 1h`,
    );
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
}
