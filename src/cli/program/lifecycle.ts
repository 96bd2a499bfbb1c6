import type { Command } from "commander";
import { paintFor, runEngineCommand } from "../engine.js";

interface ApplyFlags {
  dryRun?: boolean;
  force?: boolean;
  reason?: string;
}

interface AddFlags extends ApplyFlags {
  weight?: string;
  check?: boolean;
  maxconn?: string;
  ssl?: boolean;
  sni?: string;
  track?: string;
  backup?: boolean;
  agentPort?: string;
  kw?: string[];
  maint?: boolean;
  waitUp?: boolean;
  waitTimeout?: string;
  pollInterval?: string;
}

interface DelFlags extends ApplyFlags {
  wait?: boolean;
  waitTimeout?: string;
  killAfter?: string;
  pollInterval?: string;
}

const applyOptions = (cmd: Command, force: boolean) => {
  cmd
    .option("-n, --dry-run", "show the plan and the exact lines; send nothing that changes state")
    .option("--reason <text>", "why you are doing this (recorded in the audit log)");
  if (force) cmd.option("--force", "override a safety guard (recorded in the audit log)");
  return cmd;
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A wait's bounds, checked before anything is reached (the same limits as drain's). */
async function waitBounds(
  timeout: string,
  poll: string,
): Promise<{ timeoutMs: number; pollMs: number }> {
  const [{ parseDuration }, { UsageError }] = await Promise.all([
    import("../../util/duration.js"),
    import("../../errors.js"),
  ]);
  const timeoutMs = parseDuration(timeout, "--wait-timeout");
  const pollMs = parseDuration(poll, "--poll-interval");
  if (timeoutMs > 24 * 3_600_000)
    throw new UsageError(`--wait-timeout ${timeout} is over the limit of 24h`);
  if (pollMs < 100) throw new UsageError(`--poll-interval ${poll} is under the floor of 100ms`);
  return { timeoutMs, pollMs };
}

/** server add|del|set-addr (issue 14). */
export function registerLifecycleCommands(program: Command): void {
  const server = program
    .command("server")
    .description("a server's life at runtime: add one, delete one, move it to a new address");

  applyOptions(
    server
      .command("add")
      .argument("<server>", "<backend>/<name> of the new server")
      .argument("<address>", "<ip>[:<port>] (IPv6 with a port: [2001:db8::5]:8080)"),
    false,
  )
    .description(
      "add a server to a backend (add server), enable its checks, make it ready; verified",
    )
    .option(
      "--weight <0-256>",
      "its weight (HAProxy's default is 1; default-server does not apply)",
    )
    .option("--check", "health-check it (enabled after add server: checks start disabled)")
    .option("--maxconn <n>", "connections it takes at once")
    .option("--ssl", "TLS to the server")
    .option(
      "--sni <expression>",
      "SNI sent with --ssl: a sample expression, as str(www.example.com)",
    )
    .option("--track <backend/server>", "follow another server's checks (not a dynamic one)")
    .option("--backup", "a backup server")
    .option("--agent-port <port>", "agent check on this port (agent-check agent-port <port>)")
    .option(
      "--kw <keyword[=value]>",
      "another server keyword add server takes on this version (repeatable): --kw inter=2s --kw rise=3",
      collect,
    )
    .option("--maint", "keep it in maintenance: no traffic until hapops ready")
    .option(
      "--wait-up",
      "with --check: check it in maintenance and let traffic in only once a check passed",
    )
    .option("--wait-timeout <dur>", "with --wait-up: give up after this long (exit 6)", "1m")
    .option("--poll-interval <dur>", "with --wait-up: how often to read the check", "500ms")
    .addHelpText(
      "after",
      "\nHAProxy adds a server in maintenance with its checks off. hapops enables its checks\n(--check, --agent-port), then makes it ready (set server ... state ready), unless --maint;\n--wait-up first waits for a check to pass. The backend's balance must be dynamic\n(roundrobin, leastconn, first, random, or a consistent hash). Before HAProxy 2.6, hapops\nsends experimental-mode on first (this connection only). A reload drops a server that is\nnot in haproxy.cfg. Policy operation: server add.\n\nExamples:\n  $ hapops server add be_app/app4 10.0.0.14:8080 --weight 100 --check --wait-up\n  $ hapops server add be_app/app5 10.0.0.15:8443 --ssl --sni 'str(app.example.com)' --kw verify=none\n  $ hapops server add be_app/app6 10.0.0.16:8080 --maint --dry-run\n",
    )
    .action((ref: string, address: string, flags: AddFlags, cmd: Command) =>
      runEngineCommand(
        cmd,
        { op: "server add", dryRun: flags.dryRun, reason: flags.reason },
        async (s) => {
          const [lc, { validateServerKeywords }] = await Promise.all([
            import("../../ops/server-lifecycle.js"),
            import("../../ops/server-keywords.js"),
          ]);
          const keywords: (readonly [string, string?])[] = [];
          if (flags.weight !== undefined) keywords.push(["weight", flags.weight]);
          if (flags.check) keywords.push(["check"]);
          if (flags.maxconn !== undefined) keywords.push(["maxconn", flags.maxconn]);
          if (flags.ssl) keywords.push(["ssl"]);
          if (flags.sni !== undefined) keywords.push(["sni", flags.sni]);
          if (flags.track !== undefined) keywords.push(["track", flags.track]);
          if (flags.backup) keywords.push(["backup"]);
          if (flags.agentPort !== undefined)
            keywords.push(["agent-check"], ["agent-port", flags.agentPort]);
          for (const k of flags.kw ?? []) keywords.push(lc.parseKeywordFlag(k));
          const req = {
            ref: lc.parseServerRef(ref, "server add"),
            address: lc.parseServerAddress(address),
            // What does not depend on the version is refused before HAProxy is reached.
            keywords: validateServerKeywords(keywords, undefined),
            maint: flags.maint ?? false,
            waitUp: flags.waitUp
              ? await waitBounds(flags.waitTimeout ?? "1m", flags.pollInterval ?? "500ms")
              : undefined,
            target: s.targetText,
            paint: paintFor(s),
          };
          return lc.serverAddOperation(req);
        },
      ),
    );

  applyOptions(
    server.command("del").argument("<server>", "<backend>/<name> of the server to delete"),
    true,
  )
    .description(
      "delete a server safely: agent off, maintenance, wait until it has no connection, del server; verified",
    )
    .option("--wait", "wait for its sessions to end (without it, a server in use is refused)")
    .option(
      "--wait-timeout <dur>",
      "give up waiting after this long (exit 6; it stays MAINT)",
      "10m",
    )
    .option(
      "--kill-after <dur>",
      "cut the sessions still there after this long (shutdown sessions server; policy: sessions kill too); implies --wait",
    )
    .option("--poll-interval <dur>", "how often to look while waiting", "500ms")
    .addHelpText(
      "after",
      "\nThe safe order: the last-serving guard (exit 3 unless --force); disable agent when it\nhas one (an agent could take it out of maintenance); set server ... state maint; wait\nuntil HAProxy could delete it (no session, queued request or connection: wait\nsrv-removable from HAProxy 3.0, show stat and show servers conn before); after\n--kill-after, shutdown sessions server; del server; read back that it is gone. A server\nHAProxy will never delete (tracked by another, or from haproxy.cfg on 2.4) is put back as\nit was. Policy operation: server del.\n\nExamples:\n  $ hapops server del be_app/app4 --wait --kill-after 5m\n  $ hapops server del be_app/app4 --dry-run\n",
    )
    .action((ref: string, flags: DelFlags, cmd: Command) =>
      runEngineCommand(
        cmd,
        { op: "server del", dryRun: flags.dryRun, reason: flags.reason, force: flags.force },
        async (s) => {
          const [lc, { parseKillAfter }] = await Promise.all([
            import("../../ops/server-lifecycle.js"),
            import("../change-args.js"),
          ]);
          const bounds = await waitBounds(
            flags.waitTimeout ?? "10m",
            flags.pollInterval ?? "500ms",
          );
          return lc.serverDelOperation({
            ref: lc.parseServerRef(ref, "server del"),
            wait: flags.wait ?? false,
            ...bounds,
            killAfterMs: parseKillAfter(flags.killAfter),
            force: flags.force ?? false,
            target: s.targetText,
            paint: paintFor(s),
          });
        },
      ),
    );

  applyOptions(
    server
      .command("set-addr")
      .argument("<server>", "<backend>/<name>")
      .argument("<address>", "<ip>[:<port>]; without a port the server keeps its own"),
    false,
  )
    .description("move a server to another address (set server ... addr ... port ...); verified")
    .addHelpText(
      "after",
      "\nSessions on the old address stay there until they end; new ones go to the new address.\nA reload brings back haproxy.cfg's address (a server-state file keeps the port, not the\nIP). Policy operation: server set-addr.\n\nExamples:\n  $ hapops server set-addr be_app/app1 10.0.0.21:8080\n  $ hapops server set-addr be_app/app1 10.0.0.21 --dry-run\n",
    )
    .action((ref: string, address: string, flags: ApplyFlags, cmd: Command) =>
      runEngineCommand(
        cmd,
        { op: "server set-addr", dryRun: flags.dryRun, reason: flags.reason },
        async (s) => {
          const lc = await import("../../ops/server-lifecycle.js");
          return lc.serverSetAddrOperation({
            ref: lc.parseServerRef(ref, "server set-addr"),
            address: lc.parseServerAddress(address),
            target: s.targetText,
            paint: paintFor(s),
          });
        },
      ),
    );
}
