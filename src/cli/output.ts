import Table from "cli-table3";
import { createColors } from "picocolors";

export type Colors = ReturnType<typeof createColors>;

export function colors(enabled: boolean): Colors {
  return createColors(enabled);
}

const NO_BORDER = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
};

/** A borderless, aligned table in the style of kubectl get; colour codes do not break alignment. */
export function renderTable(headers: readonly string[], rows: readonly string[][]): string {
  const table = new Table({
    head: [...headers],
    chars: NO_BORDER,
    style: { "padding-left": 0, "padding-right": 0, head: [], border: [], compact: true },
  });
  for (const r of rows) table.push(r);
  return (
    table
      .toString()
      .split("\n")
      .map((l) => l.trimEnd())
      .join("\n") + "\n"
  );
}

/** "key: value" lines with aligned values. */
export function renderPairs(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}\n`).join("");
}

export function renderJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/** Colour for a server or proxy status word. */
export function colorStatus(c: Colors, status: string): string {
  const s = status.toUpperCase();
  if (
    s.startsWith("UP") ||
    s === "READY" ||
    s === "OPEN" ||
    s.startsWith("L7OK") ||
    s.startsWith("L4OK")
  )
    return c.green(status);
  if (
    s.startsWith("DOWN") ||
    s.startsWith("L4") ||
    s.startsWith("L7") ||
    s.startsWith("L6") ||
    s === "STOPPED"
  )
    return c.red(status);
  if (
    s.startsWith("MAINT") ||
    s.startsWith("DRAIN") ||
    s.startsWith("NOLB") ||
    s === "STARTING" ||
    s === "STOPPING"
  )
    return c.yellow(status);
  return status;
}
