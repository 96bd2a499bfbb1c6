import type { Command } from "commander";

/** sessions, sessions kill, errors (issue 14). */
export function registerSessionCommands(_program: Command): void {}
