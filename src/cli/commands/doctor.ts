import type { Check } from "../../host/doctor.js";
import { colors, renderJson } from "../output.js";

export function printDoctor(
  checks: readonly Check[],
  opts: { json: boolean; color: boolean },
): string {
  if (opts.json) return renderJson(checks);
  const c = colors(opts.color);
  const tag = { ok: c.green("ok  "), warn: c.yellow("warn"), fail: c.red("fail") };
  return checks
    .map(
      (k) =>
        `${tag[k.status]}  ${k.check.padEnd(16)} ${k.message}${k.fix ? c.dim(`\n      ${"".padEnd(16)} fix: ${k.fix}`) : ""}\n`,
    )
    .join("");
}
