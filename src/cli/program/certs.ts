import type { Command } from "commander";
import { runEngineCommand } from "../engine.js";

interface RotateFlags {
  pem?: string;
  cert?: string;
  key?: string;
  chain?: string;
  certbotDir?: string;
  persist?: boolean;
  minDays?: string;
  abortStale?: boolean;
  dryRun?: boolean;
  force?: boolean;
  reason?: string;
}

/** rotate-cert. */
export function registerCertCommands(program: Command): void {
  program
    .command("rotate-cert")
    .description(
      "replace a loaded certificate without a reload: validate, set, verify, commit (or abort), persist",
    )
    .argument(
      "<domain|file>",
      "a file HAProxy loaded (show ssl cert), or a domain one of them covers",
    )
    .option("--pem <file>", "the new certificate, its chain and key in one PEM file")
    .option("--cert <file>", "the new certificate (leaf first; may include the chain)")
    .option("--key <file>", "its private key")
    .option("--chain <file>", "the intermediate certificates")
    .option("--certbot-dir <dir>", "a certbot live directory (fullchain.pem + privkey.pem)")
    .option(
      "--persist",
      "after the commit, write the new PEM over the file (the previous one is kept in the backup directory)",
    )
    .option("--no-persist", "do not write the file, even if certs.persist is set")
    .option("--min-days <n>", "refuse a certificate that expires within n days")
    .option("--abort-stale", "abort another open certificate transaction first (recorded)")
    .option(
      "-n, --dry-run",
      "run every check and show what would be sent; send nothing that changes state",
    )
    .option("--force", "allow the new certificate to drop names the live one covers (recorded)")
    .option("--reason <text>", "why (recorded in the audit log)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ hapops rotate-cert example.com --certbot-dir /etc/letsencrypt/live/example.com --persist\n  $ hapops rotate-cert /etc/haproxy/certs/api.pem --cert new.crt --key new.key --chain chain.pem -n\n",
    )
    .action((target: string, flags: RotateFlags, cmd: Command) =>
      runRotateCommand(target, flags, cmd),
    );
}

async function runRotateCommand(target: string, flags: RotateFlags, cmd: Command): Promise<void> {
  await runEngineCommand(
    cmd,
    { op: "rotate-cert", dryRun: flags.dryRun, reason: flags.reason, force: flags.force },
    async (s, run) => {
      const { UsageError } = await import("../../errors.js");
      const forms = [
        flags.pem !== undefined,
        flags.cert !== undefined || flags.key !== undefined,
        flags.certbotDir !== undefined,
      ].filter(Boolean).length;
      if (forms !== 1)
        throw new UsageError(
          "give the new certificate one way: --pem F, --cert F --key F [--chain F], or --certbot-dir D",
        );
      if ((flags.cert === undefined) !== (flags.key === undefined))
        throw new UsageError("--cert and --key go together");
      if (flags.chain !== undefined && flags.cert === undefined)
        throw new UsageError("--chain goes with --cert and --key");
      const minDays = flags.minDays === undefined ? s.certs.minDays : Number(flags.minDays);
      if (!Number.isInteger(minDays) || minDays < 0)
        throw new UsageError(`--min-days ${flags.minDays}: a whole number of days`);
      const source =
        flags.pem !== undefined
          ? ({ kind: "pem", pem: flags.pem } as const)
          : flags.certbotDir !== undefined
            ? ({ kind: "certbot", dir: flags.certbotDir } as const)
            : ({ kind: "parts", cert: flags.cert!, key: flags.key!, chain: flags.chain } as const);
      const [{ loadBlocks }, { rotateCertOperation }] = await Promise.all([
        import("../../certs/source.js"),
        import("../../ops/cert.js"),
      ]);
      return rotateCertOperation({
        target,
        // The operator's files, opened with their own rights under sudo.
        blocks: loadBlocks(source, run.files),
        persist: flags.persist ?? s.certs.persist,
        minDays,
        force: flags.force ?? false,
        abortStale: flags.abortStale ?? false,
        now: new Date(),
        files: run.files,
        socket: s.target,
        targetText: s.targetText,
        operator: run.identity?.operator,
      });
    },
  );
}
