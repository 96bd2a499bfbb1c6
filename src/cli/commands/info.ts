import type { InfoResult } from "../../engine/reads.js";
import { renderJson, renderPairs } from "../output.js";

/** The fields an operator looks at first; `--full` prints every field HAProxy reports. */
const SUMMARY: readonly (readonly [string, (i: Record<string, string>) => string | undefined])[] = [
  ["Target", () => undefined],
  ["Version", (i) => i["Version"]],
  ["Node", (i) => i["node"]],
  ["Pid", (i) => i["Pid"]],
  ["Uptime", (i) => i["Uptime"]],
  ["Threads", (i) => i["Nbthread"]],
  [
    "Connections",
    (i) =>
      i["CurrConns"] !== undefined ? `${i["CurrConns"]} / ${i["Maxconn"] ?? "?"} max` : undefined,
  ],
  [
    "Conn rate",
    (i) =>
      i["ConnRate"] !== undefined
        ? `${i["ConnRate"]}/s (max ${i["MaxConnRate"] ?? "?"})`
        : undefined,
  ],
  ["Requests", (i) => i["CumReq"]],
  ["SSL conns", (i) => i["CurrSslConns"]],
  ["Idle", (i) => (i["Idle_pct"] !== undefined ? `${i["Idle_pct"]}%` : undefined)],
  [
    "Stopping",
    (i) => (i["Stopping"] === "1" ? "yes (old process finishing after a reload)" : undefined),
  ],
];

export function printInfo(result: InfoResult, opts: { json: boolean; all: boolean }): string {
  if (opts.json) return renderJson(result.info);
  if (opts.all) return renderPairs(Object.entries(result.info));
  const pairs: [string, string][] = [];
  for (const [label, get] of SUMMARY) {
    const v = label === "Target" ? result.target : get(result.info);
    if (v !== undefined) pairs.push([label, v]);
  }
  return renderPairs(pairs);
}

/** One row per target when many answer: the fields that tell load balancers apart. */
export const INFO_HEADERS = [
  "VERSION",
  "UPTIME",
  "CONNECTIONS",
  "CONN RATE",
  "REQUESTS",
  "STOPPING",
] as const;

/** One row of the info table, under INFO_HEADERS. */
export function infoCells(i: Readonly<Record<string, string>>): string[] {
  return [
    i["Version"] ?? "-",
    i["Uptime"] ?? "-",
    i["CurrConns"] !== undefined ? `${i["CurrConns"]}/${i["Maxconn"] ?? "?"}` : "-",
    i["ConnRate"] !== undefined ? `${i["ConnRate"]}/s` : "-",
    i["CumReq"] ?? "-",
    i["Stopping"] === "1" ? "yes" : "no",
  ];
}
