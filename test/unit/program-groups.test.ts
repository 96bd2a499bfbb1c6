import { Command, CommanderError } from "commander";
import { afterEach, describe, expect, it } from "vitest";
import { io } from "../../src/cli/context.js";
import { buildProgram, COMMAND_GROUPS, commandFirst, commandsFor } from "../../src/cli/main.js";

/** Every name and alias at the top of a program, in order. */
function topNames(program: Command): string[] {
  return program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
}

/** Every command's path below the program: ["table"], ["table", "show"], ... */
function paths(c: Command, above: string[] = []): string[][] {
  return c.commands.flatMap((s) => [[...above, s.name()], ...paths(s, [...above, s.name()])]);
}

const saved = { ...io };
afterEach(() => Object.assign(io, saved));

/** What the program prints and how it ends for argv that stop before any action (help, usage). */
async function parse(program: Command, argv: string[]) {
  let out = "";
  let err = "";
  io.out = (t) => void (out += t);
  io.err = (t) => void (err += t);
  let code: number | string = "no exit";
  try {
    await program.parseAsync(commandFirst(program, argv), { from: "user" });
  } catch (e) {
    code = e instanceof CommanderError ? `${e.exitCode} ${e.code}` : String(e);
  } finally {
    Object.assign(io, saved);
  }
  return { out, err, code };
}

describe("COMMAND_GROUPS: the commands by the function that registers them", () => {
  it("names what each function registers, and together every command, in --help's order", () => {
    for (const [names, register] of COMMAND_GROUPS) {
      const alone = new Command("hapops");
      register(alone);
      expect(topNames(alone)).toEqual(names);
    }
    expect(COMMAND_GROUPS.flatMap(([names]) => names)).toEqual(topNames(buildProgram()));
  });
});

describe("commandsFor: only the command argv runs, when that is sure", () => {
  const group = (name: string) => COMMAND_GROUPS.find(([names]) => names.includes(name));
  const program = buildProgram(false, []);

  it.each([
    [["info"], "info"],
    [["-s", "/run/haproxy/admin.sock", "--json", "stat", "be_app"], "stat"],
    [["--socket=/x.sock", "--timeout", "5s", "drain", "be/a", "--wait"], "drain"],
    [["-s", "info", "enable", "be/a"], "enable"],
    [["-t", "lb1,lb2", "servers"], "servers"],
    [["drain", "--help"], "drain"],
  ])("%j: the group of %s", (argv, name) => {
    expect(commandsFor(program, argv)).toEqual([group(name)]);
  });

  it("needs no command for --version among the program's options", () => {
    expect(commandsFor(program, ["--version"])).toEqual([]);
    expect(commandsFor(program, ["-s", "x", "-V", "drain"])).toEqual([]);
  });

  it.each([
    [[]],
    [["-s", "x"]],
    [["-s", "--version"]],
    [["--dry-run", "drain", "be/a"]],
    [["--reason", "x", "drain", "be/a"]],
    [["infoo"]],
    [["help", "drain"]],
    [["-h", "drain"]],
    [["--help"]],
    [["--", "info"]],
    [["completion", "bash"]],
    [["__complete", "dr"]],
    [["-s", "x", "shell"]],
  ])("%j: every command", (argv) => {
    expect(commandsFor(program, argv)).toBeUndefined();
  });
});

describe("a program with only the command argv names says the same as the whole program", () => {
  // __complete has no help and takes any flag: it would run.
  const all = paths(buildProgram()).filter((p) => p[0] !== "__complete");

  it("in every command's help", async () => {
    expect(all.length).toBeGreaterThan(40);
    for (const path of all) {
      const argv = [...path, "--help"];
      const whole = await parse(buildProgram(), argv);
      expect(whole.out).toContain("Usage: hapops");
      expect(await parse(buildProgram(false, argv), argv)).toEqual(whole);
    }
  });

  it("in its usage errors, in text and in JSON", async () => {
    for (const path of all)
      for (const argv of [
        ["-s", "/x.sock", ...path, "--no-such-flag"],
        ["--json", ...path, "--wai"],
      ]) {
        const json = argv.includes("--json");
        const whole = await parse(buildProgram(json), argv);
        expect(whole.code).toMatch(/^1 commander\./);
        expect(await parse(buildProgram(json, argv), argv)).toEqual(whole);
      }
  });
});
