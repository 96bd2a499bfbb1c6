import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.js";
import type { ConfigFile } from "./schema.js";

export const SYSTEM_CONFIG = "/etc/hapops/hapops.yaml";

/** Read and validate a config file. js-yaml and zod are loaded only when a file exists. */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === "ENOENT"
        ? "no such file"
        : err.code === "EACCES"
          ? "permission denied"
          : err.message;
    throw new ConfigError(`cannot read config ${path}: ${why}`, { path });
  }
  // js-yaml rather than yaml: half the start-up cost on every command (measured in bench/).
  const [{ load }, { configSchemaFor }] = await Promise.all([
    import("js-yaml"),
    import("./schema.js"),
  ]);
  let data: unknown;
  try {
    data = load(text) ?? {};
  } catch (e) {
    throw new ConfigError(
      `config ${path} is not valid YAML: ${(e as Error).message.split("\n")[0]}`,
      { path },
    );
  }
  const result = configSchemaFor(data).safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
    const msg =
      issue.code === "unrecognized_keys"
        ? `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`
        : issue.message;
    throw new ConfigError(`config ${path}: ${where}: ${msg}`, {
      path,
      issues: result.error.issues,
    });
  }
  return result.data;
}
