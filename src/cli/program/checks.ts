import type { Command } from "commander";

/** health and agent enable|disable, maxconn (issue 14). */
export function registerCheckCommands(_program: Command): void {}
