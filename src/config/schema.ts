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
  tls: z.optional(tls),
  insecureTcp: z.optional(z.boolean()),
});

/** hapops.yaml. Unknown keys are errors: a typo must not silently fall back to a default. */
export const configSchema = z.strictObject({
  /** Default target: a socket (`/path`, `unix:`, `tcp://`, `tls://`) or the name of a target. */
  socket: z.optional(text),
  tls: z.optional(tls),
  insecureTcp: z.optional(z.boolean()),
  targets: z.optional(z.record(z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/)), target)),
  timeouts: z.optional(
    z.strictObject({
      connect: z.optional(duration),
      command: z.optional(duration),
    }),
  ),
});

export type ConfigFile = z.infer<typeof configSchema>;
