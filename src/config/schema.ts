import * as z from "zod/mini";

/**
 * Each schema is built on first use: building all of hapops.yaml's took ~3 ms of every start
 * with a config file (zod runs cold then), and a file names a few of its keys.
 */
function once<T>(make: () => T): () => T {
  let made: T | undefined;
  return () => (made ??= make());
}

const text = once(() => z.string().check(z.minLength(1)));

const tls = once(() =>
  z.strictObject({
    cert: text(),
    key: text(),
    ca: text(),
    servername: z.optional(text()),
  }),
);

const duration = () => z.union([text(), z.number().check(z.positive())]);

const target = () =>
  z.strictObject({
    socket: text(),
    /** The master CLI of this HAProxy (`-S <socket>`): `show proc`, `reload`. */
    master: z.optional(text()),
    tls: z.optional(tls()),
    insecureTcp: z.optional(z.boolean()),
  });

const groupRule = () =>
  z.union([
    z.array(text()),
    z.strictObject({
      allow: z.array(text()),
      /** The same as scope.servers (kept from the first release). */
      selectors: z.optional(z.array(text())),
      scope: z.optional(
        z.strictObject({
          servers: z.optional(z.array(text())),
          tables: z.optional(z.array(text())),
          maps: z.optional(z.array(text())),
          certs: z.optional(z.array(text())),
        }),
      ),
    }),
  ]);

/**
 * hapops.yaml, key by key, in order; every key is optional (strictShape). Unknown keys are
 * errors: a typo must not silently fall back to a default.
 */
const KEYS = {
  /** Default target: a socket (`/path`, `unix:`, `tcp://`, `tls://`) or the name of a target. */
  socket: text,
  /** The master CLI socket (HAProxy started with -W/-Ws and -S <socket>), for `hapops reload`. */
  master: text,
  tls,
  insecureTcp: () => z.boolean(),
  targets: () => z.record(z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)), target()),
  /** Named lists of targets, for `-g <group>`: `edge: [lb1, lb2]`. */
  groups: () =>
    z.record(
      z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)),
      z.array(z.string().check(z.minLength(1))),
    ),
  timeouts: () =>
    z.strictObject({
      connect: z.optional(duration()),
      command: z.optional(duration()),
    }),
  audit: () =>
    z.strictObject({
      /** Default: /var/log/hapops/audit.jsonl for root, ~/.local/state/hapops/audit.jsonl otherwise. */
      path: z.optional(text()),
      /** Unix group that may read the log (mode 0640 instead of 0600). */
      group: z.optional(text()),
      /** A copy of every record: "local" (/dev/log), udp://host:port or tcp://host:port. */
      syslog: z.optional(text()),
      /** Also record read-only commands. */
      reads: z.optional(z.boolean()),
    }),
  /** Where --persist keeps previous files (default /var/lib/hapops/backups for root). */
  backupDir: text,
  /** HAProxy's own config, read for what the runtime API does not say (stick-table len, store). */
  haproxyConfig: text,
  certs: () =>
    z.strictObject({
      /** rotate-cert writes the new PEM to disk after a successful commit (default false). */
      persist: z.optional(z.boolean()),
      /** Refuse a new certificate that expires within this many days (default 7). */
      minDays: z.optional(z.number().check(z.nonnegative())),
    }),
  servers: () =>
    z.strictObject({
      /** Save the server-state file after every verified server change (default false). */
      saveState: z.optional(z.boolean()),
    }),
  policy: () =>
    z.strictObject({
      groups: z.record(z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)), groupRule()),
    }),
};

type Key = keyof typeof KEYS;
type Shape = { [K in Key]: z.ZodMiniOptional<ReturnType<(typeof KEYS)[K]>> };

function strictShape(keys: readonly Key[]) {
  const shape: Partial<Record<Key, z.ZodMiniOptional>> = {};
  for (const k of keys) shape[k] = z.optional(KEYS[k]());
  return z.strictObject(shape as Shape);
}

/** The whole schema of hapops.yaml. */
export function configSchema(): ReturnType<typeof z.strictObject<Shape>> {
  return strictShape(Object.keys(KEYS) as Key[]);
}

/**
 * The schema to check `data` (the file, as YAML read it) with: the whole schema, with only the
 * keys `data` has. A strict object checks each key of its shape in order, then names the keys
 * it does not know, and an optional key that is absent passes: so this gives the same verdict,
 * data and issues, in the same order, as configSchema(). Anything but a mapping gets the whole
 * schema.
 */
export function configSchemaFor(data: unknown): ReturnType<typeof z.strictObject<Shape>> {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return configSchema();
  const present = new Set(Object.keys(data));
  return strictShape((Object.keys(KEYS) as Key[]).filter((k) => present.has(k)));
}

export type ConfigFile = z.infer<ReturnType<typeof configSchema>>;
