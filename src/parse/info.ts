import { splitKeyValue } from "./key-value.js";

/**
 * `show info`: one "Key: value" per line. Every field is kept, including ones this version of
 * hapops does not know (3.2 adds e.g. "TotalWarnings", "BootTime_ms"; 2.6 spells
 * "TotalSplicdedBytesOut" where 3.2 has "TotalSplicedBytesOut").
 */
export function parseInfo(lines: readonly string[]): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of lines) {
    const pair = splitKeyValue(line);
    if (pair === undefined) continue;
    const [key, value] = pair;
    if (!Object.hasOwn(info, key)) info[key] = value;
  }
  return info;
}

export interface HaproxyVersion {
  major: number;
  minor: number;
  /** The `Version` field as printed ("2.6.12-1+deb12u4", "3.2.0-e134140d2"). */
  text: string;
}

/** The running version from `show info`'s `Version` field, or undefined when it is absent. */
export function parseVersion(info: Record<string, string>): HaproxyVersion | undefined {
  const text = info["Version"];
  if (text === undefined) return undefined;
  const match = /^(\d+)\.(\d+)/.exec(text);
  if (match === null) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), text };
}
