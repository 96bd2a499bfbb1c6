import { describe, expect, it } from "vitest";
import { GRAMMAR } from "../../src/commands/grammar.js";
import { parseRaw } from "../../src/commands/raw.js";
import { ResponseFramer, type ResponseShape } from "../../src/runtime/framer.js";

/**
 * Before 3.0, some answers of `add server` and `del server` end without the empty line that ends
 * every other answer, so in prompt mode the next prompt follows at once (captured from 2.4, 2.6
 * and 2.8: test/fixtures/haproxy-<v>/lifecycle-transcript.txt).
 */
function frame(chunks: readonly string[], shapes: readonly ResponseShape[]) {
  const responses: string[][] = [];
  let current: string[] = [];
  let i = 0;
  const framer = new ResponseFramer({
    next: () => shapes[i],
    line: (l) => current.push(l),
    end: () => {
      responses.push(current);
      current = [];
      i++;
    },
    unexpected: () => undefined,
  });
  for (const c of chunks) framer.push(Buffer.from(c));
  return { responses, mid: framer.midResponse, pending: framer.pending };
}

const PROMPTED: ResponseShape = { promptBefore: true, payloadPrompts: false };
const OPEN: ResponseShape = { ...PROMPTED, unterminated: true };

describe("answers without their empty line (add server, del server before 3.0)", () => {
  // del server (2.6: "Server deleted." and the next prompt), then show cli level.
  const wire = "> Server deleted.\n> admin\n\n> ";

  it("end at the next prompt, whatever the chunking", () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = frame([wire.slice(0, cut), wire.slice(cut)], [OPEN, PROMPTED]);
      expect(r.responses, `cut at ${cut}`).toEqual([["Server deleted."], ["admin"]]);
      expect(r.mid).toBe(false);
    }
  });

  it("end at the prompt left at the end of what arrived (the last command sent)", () => {
    const r = frame(
      ["> Backend must use a dynamic load balancing to support dynamic servers.\n> "],
      [OPEN],
    );
    expect(r.responses).toEqual([
      ["Backend must use a dynamic load balancing to support dynamic servers."],
    ]);
    expect(r.mid).toBe(false);
    expect(r.pending).toBe("> ");
  });

  it("still end at the empty line when there is one (3.0 and later)", () => {
    const r = frame(["> Server deleted.\n\n> admin\n\n> "], [OPEN, PROMPTED]);
    expect(r.responses).toEqual([["Server deleted."], ["admin"]]);
  });

  it("are waited for as before for any other command", () => {
    const r = frame(["> Server deleted.\n> "], [PROMPTED]);
    expect(r.responses).toEqual([]);
    expect(r.mid).toBe(true);
  });

  it("are expected of add server and del server, also when sent through raw", () => {
    expect(GRAMMAR.addServer.unterminated).toBe(true);
    expect(GRAMMAR.delServer.unterminated).toBe(true);
    expect(parseRaw("del server be_app/app1").spec.unterminated).toBe(true);
    expect(parseRaw("show servers conn").spec.unterminated).toBeUndefined();
  });
});
