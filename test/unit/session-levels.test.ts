import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { showMaps, showStat } from "../../src/commands/builders.js";
import { LevelError } from "../../src/errors.js";
import { RuntimeSession } from "../../src/runtime/session.js";

/**
 * A socket opened at `level` that answers the handshake and then "Permission denied" to `denied`,
 * all in one write, as HAProxy does to a pipelined handshake and command.
 */
function deniedAt(level: string, denied: string): Duplex {
  let got = "";
  let answered = false;
  const d: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      got += chunk.toString();
      if (!answered && got.includes(`${denied}\n`)) {
        answered = true;
        d.push(`\n> \n> [6]: ${level}\n\n> [3]: Permission denied\n\n> `);
      }
      cb();
    },
    final(cb) {
      d.push(null);
      cb();
    },
  });
  return d;
}

describe("a Permission denied explained with the level the socket really has", () => {
  it("names the level a newer version wants (show map on 3.4 at operator)", async () => {
    const s = RuntimeSession.start(deniedAt("operator", "show map"), {
      target: "lb1",
      timeoutMs: 2000,
    });
    const e = await s.run(showMaps("map")).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LevelError);
    expect((e as LevelError).message).toBe(
      `HAProxy answered "Permission denied" to "show map" at level 'operator': it needs 'admin' from HAProxy 3.4 ('user' before) — use a socket whose \`stats socket\` line has \`level admin\``,
    );
    expect((e as LevelError).details).toMatchObject({ level: "operator", needs: "admin" });
  });

  it("says a version wants more than was ever measured when the grammar does not know it", async () => {
    const s = RuntimeSession.start(deniedAt("user", "show stat"), {
      target: "lb1",
      timeoutMs: 2000,
    });
    const e = await s.run(showStat()).catch((x: unknown) => x);
    expect((e as LevelError).message).toMatch(
      /^HAProxy answered "Permission denied" to "show stat" at level 'user': this HAProxy version needs a higher level for it than the 'user' measured on 2\.4 to 3\.4 — use a socket whose `stats socket` line has `level admin`$/,
    );
  });
});
