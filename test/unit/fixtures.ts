import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The HAProxy versions whose captured answers live in test/fixtures/haproxy-<version>/. */
export const VERSIONS = ["2.6", "3.2"] as const;
export type Version = (typeof VERSIONS)[number];

/**
 * A captured answer as the runtime layer hands it to a parser: split on "\n", without the empty
 * line(s) that end every answer.
 */
export function fixtureLines(version: Version, name: string): string[] {
  const path = join(import.meta.dirname, "..", "fixtures", `haproxy-${version}`, name);
  return toLines(readFileSync(path, "utf8"));
}

export function toLines(text: string): string[] {
  const lines = text.split("\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}
