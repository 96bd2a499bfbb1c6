import * as z from "zod/mini";

const text = z.string().check(z.minLength(1));

const tls = z.strictObject({
  cert: text,
  key: text,
  ca: text,
  servername: z.optional(text),
});

const duration = z.union([text, z.number().check(z.positive())]);

const target = z.strictObject({
  socket: text,
  /** The master CLI of this HAProxy (`-S <socket>`): `show proc`, `reload`. */
  master: z.optional(text),
  tls: z.optional(tls),
  insecureTcp: z.optional(z.boolean()),
});

const groupRule = z.union([
  z.array(text),
  z.strictObject({
    allow: z.array(text),
    /** The same as scope.servers (kept from the first release). */
    selectors: z.optional(z.array(text)),
    scope: z.optional(
      z.strictObject({
        servers: z.optional(z.array(text)),
        tables: z.optional(z.array(text)),
        maps: z.optional(z.array(text)),
        certs: z.optional(z.array(text)),
      }),
    ),
  }),
]);

/** hapops.yaml. Unknown keys are errors: a typo must not silently fall back to a default. */
export const configSchema = z.strictObject({
  /** Default target: a socket (`/path`, `unix:`, `tcp://`, `tls://`) or the name of a target. */
  socket: z.optional(text),
  /** The master CLI socket (HAProxy started with -W/-Ws and -S <socket>), for `hapops reload`. */
  master: z.optional(text),
  tls: z.optional(tls),
  insecureTcp: z.optional(z.boolean()),
  targets: z.optional(z.record(z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)), target)),
  /** Named lists of targets, for `-g <group>`: `edge: [lb1, lb2]`. */
  groups: z.optional(
    z.record(
      z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)),
      z.array(z.string().check(z.minLength(1))),
    ),
  ),
  timeouts: z.optional(
    z.strictObject({
      connect: z.optional(duration),
      command: z.optional(duration),
    }),
  ),
  audit: z.optional(
    z.strictObject({
      /** Default: /var/log/hapops/audit.jsonl for root, ~/.local/state/hapops/audit.jsonl otherwise. */
      path: z.optional(text),
      /** Unix group that may read the log (mode 0640 instead of 0600). */
      group: z.optional(text),
      /** A copy of every record: "local" (/dev/log), udp://host:port or tcp://host:port. */
      syslog: z.optional(text),
      /** Also record read-only commands. */
      reads: z.optional(z.boolean()),
    }),
  ),
  /** Where --persist keeps previous files (default /var/lib/hapops/backups for root). */
  backupDir: z.optional(text),
  /** HAProxy's own config, read for what the runtime API does not say (stick-table len, store). */
  haproxyConfig: z.optional(text),
  certs: z.optional(
    z.strictObject({
      /** rotate-cert writes the new PEM to disk after a successful commit (default false). */
      persist: z.optional(z.boolean()),
      /** Refuse a new certificate that expires within this many days (default 7). */
      minDays: z.optional(z.number().check(z.nonnegative())),
    }),
  ),
  servers: z.optional(
    z.strictObject({
      /** Save the server-state file after every verified server change (default false). */
      saveState: z.optional(z.boolean()),
    }),
  ),
  policy: z.optional(
    z.strictObject({
      groups: z.record(z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)), groupRule),
    }),
  ),
});

export type ConfigFile = z.infer<typeof configSchema>;
