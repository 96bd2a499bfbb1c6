/**
 * Splits "Key: value" (`show info`, `show ssl cert <file>`) at the first ": ". Keys may contain
 * spaces ("Unstoppable Jobs") and values may contain ": " ("Subject Alternative Name: DNS:a").
 * A line that ends with ":" has an empty value. Undefined for a line that is not "Key: value".
 */
export function splitKeyValue(line: string): [key: string, value: string] | undefined {
  const at = line.indexOf(": ");
  if (at > 0) return [line.slice(0, at), line.slice(at + 2)];
  if (line.length > 1 && line.endsWith(":")) return [line.slice(0, -1), ""];
  return undefined;
}
