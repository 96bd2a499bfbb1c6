/** Names from `candidates` closest to `input`, for "did you mean" messages. */
export function closest(input: string, candidates: readonly string[], max = 3): string[] {
  const scored = candidates
    .map((c) => ({ c, d: distance(input.toLowerCase(), c.toLowerCase()) }))
    .filter(({ c, d }) => d <= Math.max(2, Math.floor(Math.max(input.length, c.length) / 2)));
  scored.sort((a, b) => a.d - b.d || a.c.localeCompare(b.c));
  return scored.slice(0, max).map(({ c }) => c);
}

/** "did you mean a, b?" or a listing of what exists when nothing is close. */
export function suggestion(input: string, candidates: readonly string[]): string {
  const near = closest(input, candidates);
  if (near.length > 0) return `did you mean ${near.join(", ")}?`;
  if (candidates.length === 0) return "there are none";
  const shown = candidates.slice(0, 8).join(", ");
  return `known: ${shown}${candidates.length > 8 ? `, ... (${candidates.length} in all)` : ""}`;
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}
