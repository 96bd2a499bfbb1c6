import type { DriftReport } from "../../ops/drift.js";
import { colors, renderJson, renderTable } from "../output.js";

function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The drift table for people, or the report as JSON (one stable shape, see README). */
export function printDrift(report: DriftReport, opts: { json: boolean; color: boolean }): string {
  if (opts.json) return renderJson(report);
  const c = colors(opts.color);
  const { checked } = report;
  const what = [
    counted(checked.servers, "server"),
    counted(checked.certs, "certificate"),
    counted(checked.maps, "map"),
    counted(checked.acls, "ACL file"),
  ].join(", ");
  let out = "";
  if (report.objects.length === 0) {
    out += `no drift: HAProxy's memory and the files a reload would load agree (${what} compared)\n`;
  } else {
    out += renderTable(
      ["KIND", "OBJECT", "RUNTIME", "DISK/CONFIG", "A RELOAD WOULD"],
      report.objects.map((o) => [
        o.kind,
        o.object,
        o.runtime,
        o.disk,
        o.status === "drift" ? c.yellow(o.reload) : c.dim(o.reload),
      ]),
    );
    const drifted = report.objects.filter((o) => o.status === "drift").length;
    const unknown = report.objects.length - drifted;
    out += `${drifted > 0 ? c.yellow(`${counted(drifted, "object")} would change at a reload`) : "no drift found"}${unknown > 0 ? `, ${unknown} could not be compared` : ""} (${what} compared)\n`;
    const kinds = new Set(report.objects.filter((o) => o.status === "drift").map((o) => o.kind));
    const hints: string[] = [];
    if (kinds.has("server"))
      hints.push(
        "keep servers: hapops reload (it saves their state first), or hapops state save before another reload",
      );
    if (kinds.has("cert"))
      hints.push("keep certificates: rotate-cert --persist writes the served one to its file");
    if (kinds.has("map") || kinds.has("acl"))
      hints.push("keep maps and ACLs: map|acl replace <file> --from <new> --persist");
    for (const h of hints) out += c.dim(`${h}\n`);
  }
  for (const n of report.notes) out += c.dim(`note: ${n}\n`);
  return out;
}
