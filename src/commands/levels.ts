/** CLI session levels, lowest first (management.txt 9.3, "Permission denied"). */
export const LEVELS = ["user", "operator", "admin"] as const;
export type Level = (typeof LEVELS)[number];

export function levelRank(level: Level): number {
  return LEVELS.indexOf(level);
}

export function isLevel(s: string): s is Level {
  return (LEVELS as readonly string[]).includes(s);
}

export function levelAtLeast(have: Level, need: Level): boolean {
  return levelRank(have) >= levelRank(need);
}
