import type { Command } from "commander";

/** server add|del|set-addr (issue 14). */
export function registerLifecycleCommands(_program: Command): void {}
