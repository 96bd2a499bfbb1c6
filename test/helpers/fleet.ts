import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type Lab, type LabOptions } from "../../src/sandbox/lab.js";
import { startTestLab } from "./lab.js";

/** Several real HAProxy instances, each with its own mTLS admin listener, as one fleet. */
export interface FleetLab {
  readonly dir: string;
  readonly labs: readonly Lab[];
  /** Target names in the config: lb1, lb2, ... */
  readonly names: readonly string[];
  /** A hapops config naming every instance as a target (tls://, mTLS), with `groups`. */
  readonly config: string;
  readonly audit: string;
  lab(name: string): Lab;
}

export interface FleetOptions extends Omit<LabOptions, "dir" | "tlsSocket"> {
  /** Groups in the config; default `all` (every target) and `pair` (lb1, lb2). */
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  /** More YAML for the config (a policy...). */
  readonly extra?: string;
}

/** The config of a fleet: one target per lab, over its mTLS listener. */
export function fleetConfig(
  labs: readonly Lab[],
  names: readonly string[],
  audit: string,
  backups: string,
  groups: Readonly<Record<string, readonly string[]>>,
  extra = "",
): string {
  const targets = labs
    .map(
      (lab, i) =>
        `  ${names[i]}:\n    socket: ${lab.sockets.tls}\n    tls: { cert: ${lab.tls.clientCert}, key: ${lab.tls.clientKey}, ca: ${lab.tls.ca} }\n`,
    )
    .join("");
  const g = Object.entries(groups)
    .map(([k, v]) => `  ${k}: [${v.join(", ")}]\n`)
    .join("");
  return `audit:\n  path: ${audit}\nbackupDir: ${backups}\ntargets:\n${targets}groups:\n${g}${extra}`;
}

/**
 * `n` labs started before the tests of one file (in parallel), stopped and removed after, even
 * when a test fails.
 */
export function useFleet(n: number, opts: FleetOptions = {}): () => FleetLab {
  let fleet: FleetLab | undefined;
  const started: Lab[] = [];
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hapops-fleet-"));
    const names = Array.from({ length: n }, (_, i) => `lb${i + 1}`);
    const { groups, extra, ...labOpts } = opts;
    const labs = await Promise.all(
      names.map(async (name) => {
        const lab = await startTestLab({ ...labOpts, dir: join(dir!, name), tlsSocket: true });
        started.push(lab);
        return lab;
      }),
    );
    const audit = join(dir, "audit.jsonl");
    const config = join(dir, "hapops.yaml");
    writeFileSync(
      config,
      fleetConfig(
        labs,
        names,
        audit,
        join(dir, "backups"),
        groups ?? { all: names, pair: names.slice(0, 2) },
        extra,
      ),
    );
    fleet = {
      dir,
      labs,
      names,
      config,
      audit,
      lab: (name) => labs[names.indexOf(name)]!,
    };
  }, 120_000);
  afterAll(async () => {
    await Promise.all(started.map((l) => l.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!fleet) throw new Error("fleet not started");
    return fleet;
  };
}
